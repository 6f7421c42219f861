"""Compatibility entry point: `from dataset_arc import ARCDataset` from the repo root."""

from arc_efe.dataset import ARCDataset, split_tasks

__all__ = ["ARCDataset", "split_tasks"]
