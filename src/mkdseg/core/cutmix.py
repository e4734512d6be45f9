"""CutMix on the unlabeled batch (spec §2).

The mask is the XOR of ``n_boxes`` random boxes per sample (the box-mask generator of
French et al., as in the release): each box covers an area fraction ``U(0.25, 0.5)`` of the image
with a log-uniform aspect ratio (height/width) in ``(0.3, 1/0.3)``, then both sides are multiplied
by ``sqrt(1 / n_boxes)`` (so one box covers ``area / n_boxes`` of the image), and it lies fully
inside the image. A pixel is 1 where an odd number of boxes cover it.

The partner of sample ``i`` is sample ``i - shift`` ("roll the batch by one"), so the same mask and
partner apply to images, teacher logits/probabilities and labels alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

N_BOXES = 3  # spec §2 / release
BOX_AREA = (0.25, 0.5)  # area fraction of each box before the sqrt(1/n_boxes) side scaling
ASPECT_RANGE = (0.3, 1 / 0.3)  # height/width ratio, log-uniform
PARITY = 2
Device = torch.device | str | None


def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def sample_boxes(
    batch: int,
    height: int,
    width: int,
    generator: torch.Generator,
    n_boxes: int = N_BOXES,
    area: tuple[float, float] = BOX_AREA,
    aspect: tuple[float, float] = ASPECT_RANGE,
    device: torch.device | str | None = None,
) -> Tensor:
    """Boxes (B, n_boxes, 4) int64 as (y0, x0, y1, x1), end exclusive, fully inside the image."""
    if n_boxes < 1 or not 0.0 < area[0] <= area[1] <= 1.0 or not 0.0 < aspect[0] <= aspect[1]:
        raise ValueError(
            f"cutmix: need n_boxes >= 1, 0 < area[0] <= area[1] <= 1 and "
            f"0 < aspect[0] <= aspect[1]; got {n_boxes}, {area}, {aspect}"
        )
    device = torch.device(device) if device is not None else generator.device
    shape = (batch, n_boxes)
    frac = area[0] + (area[1] - area[0]) * _rand(shape, generator, device)
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    ratio = torch.exp(log_lo + (log_hi - log_lo) * _rand(shape, generator, device))
    scale = math.sqrt(1.0 / n_boxes)  # release: sides scaled by sqrt(1/3)
    h_frac = (torch.sqrt(frac * ratio) * scale).clamp(max=1.0)
    w_frac = (torch.sqrt(frac / ratio) * scale).clamp(max=1.0)
    box_h = torch.round(h_frac * height).clamp(1, height).to(torch.int64)
    box_w = torch.round(w_frac * width).clamp(1, width).to(torch.int64)
    y0 = torch.floor(_rand(shape, generator, device) * (height - box_h + 1)).to(torch.int64)
    x0 = torch.floor(_rand(shape, generator, device) * (width - box_w + 1)).to(torch.int64)
    y0, x0 = torch.minimum(y0, height - box_h), torch.minimum(x0, width - box_w)
    return torch.stack((y0, x0, y0 + box_h, x0 + box_w), -1)


def boxes_to_mask(boxes: Tensor, height: int, width: int) -> Tensor:
    """XOR of the boxes: (B, n_boxes, 4) -> (B, 1, H, W) float 0/1, without a loop."""
    rows = torch.arange(height, device=boxes.device).view(1, 1, -1, 1)
    cols = torch.arange(width, device=boxes.device).view(1, 1, 1, -1)
    y0, x0, y1, x1 = (v[..., None, None] for v in boxes.unbind(-1))
    inside = (rows >= y0) & (rows < y1) & (cols >= x0) & (cols < x1)  # (B, n, H, W)
    return (inside.sum(1, keepdim=True) % PARITY).float()


def box_mask(
    batch: int, height: int, width: int, generator: torch.Generator, device: Device = None
) -> Tensor:
    """The CutMix mask M (B, 1, H, W) of the spec's boxes: 1 keeps the sample, 0 its partner."""
    return boxes_to_mask(
        sample_boxes(batch, height, width, generator, device=device), height, width
    )


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Nearest resize of a (B, 1, H, W) or (B, H, W) mask to ``size``; dtype is kept."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    squeeze = mask.dim() == 3
    m = mask[:, None] if squeeze else mask
    out = F.interpolate(m.float(), size=tuple(size), mode="nearest").to(mask.dtype)
    return out[:, 0] if squeeze else out


def _mask_for(x: Tensor, mask: Tensor) -> Tensor:
    """Bring the mask to x's layout: (B, 1, H, W) for 4-D x, (B, H, W) for 3-D x."""
    if mask.dim() == 3:
        mask = mask[:, None]
    if mask.dim() != 4 or mask.shape[1] != 1:
        raise ValueError(
            f"cutmix.mix: mask must be (B, 1, H, W) or (B, H, W), got {tuple(mask.shape)}"
        )
    if mask.shape[0] != x.shape[0] or tuple(mask.shape[-2:]) != tuple(x.shape[-2:]):
        raise ValueError(
            f"cutmix.mix: mask {tuple(mask.shape)} does not match input "
            f"{tuple(x.shape)}; use resize_mask(mask, x.shape[-2:]) first"
        )
    if x.dim() == 3:
        return mask[:, 0]
    if x.dim() == 4:
        return mask
    raise ValueError(f"cutmix.mix: input must be (B, C, H, W) or (B, H, W), got {tuple(x.shape)}")


def mix(x: Tensor, mask: Tensor, shift: int = 1) -> Tensor:
    """``M * x + (1 - M) * x[pi]`` with pi = roll the batch by ``shift``.

    ``M`` is 0/1, so the blend is a select: one pass instead of three, the same values for
    finite inputs and the same gradients (to ``x`` where M is 1, to its partner elsewhere); every
    dtype is kept (images, logits, labels, validity masks).
    """
    m = _mask_for(x, mask)
    return torch.where(m > 0, x, x.roll(shift, dims=0))
