"""Compatibility entry point: `from dataset_arc import ARCDataset` from the repo root."""

from arc_efe.data.dataset import ARCDataset, split_tasks

__all__ = ["ARCDataset", "split_tasks"]
