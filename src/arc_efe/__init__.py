"""arc-efe: train and evaluate ARC-AGI solvers on a Qwen backbone with an EFE objective."""

from .data import Pair, Task
from .dataset import ARCDataset, split_tasks
from .errors import ArcEfeError, DataError, SourceError
from .sources import load_tasks

__version__ = "0.1.0"
__all__ = ["ARCDataset", "ArcEfeError", "DataError", "Pair", "SourceError", "Task", "load_tasks",
           "split_tasks"]
