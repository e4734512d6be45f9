"""Whole-image and sliding-window inference returning logits at the requested size.

The caller sets ``model.eval()`` and any autocast; these functions only run the model
without gradients and put its stride-4 logits back on the pixel grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

PAD_VALUE = 0.0  # normalised images: 0 is the mean colour


@torch.no_grad()
def predict_whole(
    model: nn.Module, images: Tensor, out_size: tuple[int, int] | None = None
) -> Tensor:
    """Logits of normalised ``images`` (B,3,H,W), bilinearly resized to ``out_size``
    (default: the input size)."""
    logits = model(images).logits
    size = tuple(out_size) if out_size is not None else tuple(images.shape[-2:])
    if tuple(logits.shape[-2:]) == size:
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def window_starts(length: int, window: int, stride: int) -> list[int]:
    """Window offsets covering ``[0, length)``; the last window is aligned to the end."""
    count = max(length - window + stride - 1, 0) // stride + 1
    return sorted({min(i * stride, length - window) for i in range(count)})


@torch.no_grad()
def predict_sliding(
    model: nn.Module,
    image: Tensor,
    num_classes: int,
    window: int,
    stride: int,
    batch_windows: int = 4,
) -> Tensor:
    """Logits (1,C,H,W) of one image from overlapping ``window`` crops averaged per pixel.

    The image is zero-padded (bottom/right) to at least the window size, as mmseg does.
    """
    _check_sliding_args(image, window, stride, batch_windows)
    height, width = image.shape[-2:]
    pad_h, pad_w = max(window - height, 0), max(window - width, 0)
    padded = F.pad(image, (0, pad_w, 0, pad_h), value=PAD_VALUE)
    full_h, full_w = padded.shape[-2:]
    boxes = [
        (top, left)
        for top in window_starts(full_h, window, stride)
        for left in window_starts(full_w, window, stride)
    ]
    logits = padded.new_zeros((1, num_classes, full_h, full_w), dtype=torch.float32)
    counts = padded.new_zeros((1, 1, full_h, full_w), dtype=torch.float32)
    for first in range(0, len(boxes), batch_windows):
        chunk = boxes[first : first + batch_windows]
        crops = torch.cat([padded[..., t : t + window, s : s + window] for t, s in chunk])
        out = predict_whole(model, crops, (window, window)).float()
        if out.shape[1] != num_classes:
            raise ValueError(f"the model predicts {out.shape[1]} classes, not {num_classes}")
        for crop_logits, (top, left) in zip(out, chunk, strict=True):
            logits[0, :, top : top + window, left : left + window] += crop_logits
            counts[..., top : top + window, left : left + window] += 1
    return (logits / counts)[..., :height, :width]


def _check_sliding_args(image: Tensor, window: int, stride: int, batch_windows: int) -> None:
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f"sliding inference takes one image (1,3,H,W), got {tuple(image.shape)}")
    if window < 1 or batch_windows < 1:
        raise ValueError(f"window and batch_windows must be >= 1, got {window}, {batch_windows}")
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in 1..window ({window}) to cover the image, got {stride}")
