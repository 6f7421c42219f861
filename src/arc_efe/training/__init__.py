"""Training: the `arc-efe train` flags, the training set, setup and the phase-ordered loop, the
guarded optimizer step, stop requests, metrics, accuracy during training and the epoch report.

Imports saved, solver2, model, data, reporting, loss and errors; nothing of inference.
"""
