"""The network and where it runs: the Qwen backbone cut to the ARC vocabulary, the Policy that
writes answer grids, device and dtype, torchrun ranks, FSDP sharding and torch.compile.

Imports data and errors only: nothing of solver2, training, inference or reporting.
"""
