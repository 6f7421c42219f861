"""Answering tasks: the views of a task, depth-first decoding and likelihoods, test-time
training, product-of-experts selection with votes, one task end to end (`pipeline`), and the
`evaluate`, `solve` and `merge` commands.

Imports saved, solver2, model, data, reporting and errors; nothing of training.
"""
