"""Tasks and what is made of them: reading and validating task files and sources (generated
ones in `synthetic/`), the JSON reader and atomic files, views, tokens, grid places, sequences
and packed batches, the users' `ARCDataset`, and submissions and their score.

Imports only `errors`: nothing of model, solver2, training, inference or reporting.
"""
