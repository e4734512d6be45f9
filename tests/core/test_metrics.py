"""Confusion matrix and IoU against a direct per-class NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mkdseg.core.metrics import ConfusionMatrix

NUM_CLASSES = 5


def direct_iou(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    keep = target != 255
    pred, target = pred[keep], target[keep]
    ious = []
    for c in range(num_classes):
        inter = np.sum((pred == c) & (target == c))
        union = np.sum((pred == c) | (target == c))
        ious.append(inter / union if union else np.nan)
    return np.array(ious)


def test_matches_direct_computation() -> None:
    rng = np.random.default_rng(0)
    metric = ConfusionMatrix(NUM_CLASSES)
    preds, targets = [], []
    for shape in [(2, 7, 9), (1, 13, 4)]:
        pred = rng.integers(0, NUM_CLASSES - 1, shape)  # class 4 never predicted
        target = rng.integers(0, NUM_CLASSES - 1, shape)  # ... nor present
        target[rng.random(shape) < 0.2] = 255
        metric.update(torch.from_numpy(pred), torch.from_numpy(target))
        preds.append(pred.ravel())
        targets.append(target.ravel())
    pred, target = np.concatenate(preds), np.concatenate(targets)
    result = metric.compute()
    expected = direct_iou(pred, target, NUM_CLASSES)
    np.testing.assert_allclose(result["iou"], expected)
    assert np.isnan(result["iou"][4])
    assert result["miou"] == pytest.approx(np.nanmean(expected))
    keep = target != 255
    assert result["pixel_accuracy"] == pytest.approx(np.mean(pred[keep] == target[keep]))
    matrix = result["matrix"]
    assert matrix.dtype == np.int64 and matrix.sum() == keep.sum()
    assert matrix[1, 2] == np.sum((target == 1) & (pred == 2))  # rows are ground truth


def test_errors_reset_and_empty() -> None:
    metric = ConfusionMatrix(2)
    assert np.isnan(metric.compute()["miou"])
    with pytest.raises(ValueError, match="0..1"):
        metric.update(torch.tensor([0, 1]), torch.tensor([0, 7]))
    with pytest.raises(ValueError, match="pixels"):
        metric.update(torch.tensor([0, 1, 1]), torch.tensor([0, 1]))
    metric.update(torch.tensor([[0, 1]]), torch.tensor([[0, 0]]))
    assert metric.compute()["iou"].tolist() == [0.5, 0.0]
    metric.reduce()  # no process group: a no-op
    metric.reset()
    assert metric.compute()["matrix"].sum() == 0
