"""arc-efe: train and evaluate ARC-AGI solvers on a Qwen backbone with an EFE objective."""

from .data.dataset import ARCDataset, split_tasks
from .data.sources import load_tasks
from .data.tasks import Pair, Task
from .errors import ArcEfeError, DataError, SourceError

__version__ = "0.1.0"
__all__ = ["ARCDataset", "ArcEfeError", "DataError", "Pair", "SourceError", "Task", "load_tasks",
           "split_tasks"]
