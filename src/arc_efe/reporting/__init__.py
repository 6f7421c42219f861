"""What people read about a run: the diagnosis of its metrics, the HTML report with its plots
and drawn grids, and grids drawn in the terminal.

Reads run folders and task sources from disk; imports data and errors only, nothing of model,
solver2, training or inference.
"""
