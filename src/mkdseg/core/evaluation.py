"""Evaluate a segmenter on labelled images: mIoU, per-class IoU, pixel accuracy, confusion matrix.

Spec §6: student 1, single scale; the image is resized so its long side is
``long_side`` (None: as is) and the prediction is resized back to the mask.
``sliding`` mode tiles the (resized) image with overlapping windows, as is
usual for Cityscapes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from mkdseg.core.augmentation import normalize
from mkdseg.core.class_map import class_map
from mkdseg.core.config import PRECISIONS
from mkdseg.core.data import EvalDataset, make_eval_loader
from mkdseg.core.image_io import MaskEncoding, to_unit_float
from mkdseg.core.metrics import ConfusionMatrix
from mkdseg.core.prediction.inference import predict_sliding, predict_whole
from mkdseg.core.prediction.segmenter import Segmenter
from mkdseg.core.runtime import autocast, resolve_precision

log = logging.getLogger(__name__)
MODES = ("whole", "sliding")
PROGRESS_EVERY = 0.1  # log progress every 10% of the images


@dataclass
class EvalSettings:
    mode: str = "whole"
    long_side: int | None = None  # spec: 512 for VOC
    window: int = 512  # sliding mode only
    stride: int = 341  # sliding mode only (2/3 of the window, as mmseg's Cityscapes configs)
    batch_windows: int = 4
    keep_predictions: int = 8  # how many predictions to return for the report grid
    precision: str = (
        "auto"  # as training.precision: bf16 where the device has it natively, else fp32
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"evaluation.mode must be one of {MODES}, got {self.mode!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"evaluation.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )


@dataclass
class EvalResult:
    miou: float
    pixel_accuracy: float
    iou: np.ndarray  # per class, NaN where the class is absent from predictions and labels
    matrix: np.ndarray  # (C, C), rows = ground truth
    predictions: list[tuple[int, np.ndarray]] = field(
        default_factory=list
    )  # (sample index, HxW uint8)


def evaluate(
    segmenter: Segmenter,
    samples: Sequence[tuple[str, str]],
    mask_encoding: MaskEncoding,
    num_classes: int,
    settings: EvalSettings,
    device: str | torch.device = "cpu",
) -> EvalResult:
    """Run ``segmenter`` over ``samples`` and accumulate a confusion matrix."""
    if not samples:
        raise ValueError("evaluation needs at least one validation image; the val split is empty")
    device = torch.device(device)
    amp_dtype = resolve_precision(settings.precision, device)
    segmenter = segmenter.to(device).eval()
    net = segmenter.network()
    confusion = ConfusionMatrix(num_classes, device=device)
    loader = make_eval_loader(EvalDataset(samples, mask_encoding, settings.long_side))
    kept: list[tuple[int, np.ndarray]] = []
    step = max(1, math.ceil(len(samples) * PROGRESS_EVERY))
    for n, (image, mask, index) in enumerate(loader, start=1):
        x = normalize(to_unit_float(image.to(device)))
        mask = mask.to(device)
        with autocast(device, amp_dtype):
            if settings.mode == "whole":
                logits = predict_whole(net, x, tuple(mask.shape[-2:])).float()
            else:
                logits = predict_sliding(
                    net, x, num_classes, settings.window, settings.stride, settings.batch_windows
                )
                logits = torch.nn.functional.interpolate(
                    logits, size=mask.shape[-2:], mode="bilinear", align_corners=False
                )
        pred = class_map(logits)
        confusion.update(pred, mask)
        if len(kept) < settings.keep_predictions:
            kept.append((int(index[0]), pred[0].to(torch.uint8).cpu().numpy()))
        if n % step == 0 or n == len(samples):
            log.info("evaluated %d/%d images", n, len(samples))
    confusion.reduce()
    out = confusion.compute()
    return EvalResult(
        float(out["miou"]), float(out["pixel_accuracy"]), out["iou"], out["matrix"], kept
    )


def named_metrics(
    result: EvalResult, class_names: Sequence[str], mode: str, prefix: str = "val"
) -> dict:
    """Flat metric names that carry the mode, comparable across runs (e.g. ``val_mIoU_whole``)."""
    metrics = {
        f"{prefix}_mIoU_{mode}": result.miou,
        f"{prefix}_pixel_acc_{mode}": result.pixel_accuracy,
    }
    for name, value in zip(class_names, result.iou, strict=True):
        if not np.isnan(value):
            metrics[f"{prefix}_IoU_{mode}.{name}"] = float(value)
    return metrics
