"""Solver2, the memory around the Policy: the bank of verified solutions (`memory`), the task
keys, retrieval gate and success rule that read and fill it (`retrieval`), and the solved
training tasks recalled at evaluation (`recall`).

Imports model, data and errors only: nothing of training, inference or reporting.
"""
