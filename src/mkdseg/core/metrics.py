"""Confusion-matrix segmentation metrics (mIoU over classes, ignore 255; spec §6).

One matrix accumulates all evaluation pixels (not a per-image average), the usual
definition of mIoU for Pascal VOC and Cityscapes. Under DDP each rank accumulates its
share and ``reduce`` sums the matrices.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.distributed as dist

from mkdseg.core.image_io import IGNORE_INDEX


class ConfusionMatrix:
    """A CxC int64 confusion matrix; rows are ground truth, columns predictions."""

    def __init__(
        self, num_classes: int, ignore_index: int = IGNORE_INDEX, device: str | torch.device = "cpu"
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.matrix.zero_()

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add pixels; ``pred`` and ``target`` hold class ids, as many of each."""
        if pred.numel() != target.numel():
            raise ValueError(
                f"prediction has {pred.numel()} pixels but target has {target.numel()}: "
                "resize the prediction to the mask size first"
            )
        pred = pred.reshape(-1).to(self.matrix.device, torch.int64)
        target = target.reshape(-1).to(self.matrix.device, torch.int64)
        keep = target != self.ignore_index
        pred, target = pred[keep], target[keep]
        num = self.num_classes
        if bool(((target < 0) | (target >= num) | (pred < 0) | (pred >= num)).any()):
            raise ValueError(
                f"class ids must be in 0..{num - 1} (or {self.ignore_index} = ignore): "
                "check the mask encoding and num_classes"
            )
        counts = torch.bincount(target * num + pred, minlength=num * num)
        self.matrix += counts.reshape(num, num)

    def reduce(self) -> None:
        """Sum the matrices of all ranks (no-op outside torch.distributed)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)

    def compute(self) -> dict:
        """``iou`` per class (NaN when a class is in neither prediction nor target), ``miou``
        (mean over non-NaN), ``pixel_accuracy`` and ``matrix`` (np.int64)."""
        matrix = self.matrix.cpu().numpy().astype(np.int64)
        true_pos = np.diag(matrix).astype(np.float64)
        union = matrix.sum(axis=0) + matrix.sum(axis=1) - true_pos
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = np.where(union > 0, true_pos / union, np.nan)
        total = matrix.sum()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN -> NaN, quietly
            miou = float(np.nanmean(iou)) if iou.size else float("nan")
        accuracy = float(true_pos.sum() / total) if total > 0 else float("nan")
        return {"iou": iou, "miou": miou, "pixel_accuracy": accuracy, "matrix": matrix}
