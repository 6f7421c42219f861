"""Compatibility entry point: `from loss_function import EFELoss` from the repo root."""

from arc_efe.loss import EFELoss, EFEOutput

__all__ = ["EFELoss", "EFEOutput"]
