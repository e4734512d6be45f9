"""CutMix on the unlabeled batch (spec §2).

The mask is the XOR of ``n_boxes`` random boxes per sample: the box-mask generator of French et
al. (2020) as the release runs it (TorchSemiSeg's ``mask_gen.py``, ``BoxMaskGenerator`` with a
random aspect ratio, proportions by area, boxes within bounds). Each box covers an area share
``p ~ U(0.25, 0.5)``; its aspect ratio comes from that area: height share ``p^u`` and width share
``p^(1-u)`` with ``u ~ U(0, 1)``; both are multiplied by ``sqrt(1 / n_boxes)`` (so one box covers
``p / n_boxes`` of the image) and rounded to pixels; the corner is ``round((H - h) * U(0, 1))``,
so the box lies inside the image. A pixel is 1 where an odd number of boxes cover it.

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
    device: torch.device | str | None = None,
) -> Tensor:
    """Boxes (B, n_boxes, 4) int64 as (y0, x0, y1, x1), end exclusive, fully inside the image;
    sides and corners as ``BoxMaskGenerator.generate_params`` draws them, in its order (area,
    aspect, positions)."""
    if n_boxes < 1 or not 0.0 < area[0] <= area[1] <= 1.0:
        raise ValueError(
            f"cutmix: need n_boxes >= 1 and 0 < area[0] <= area[1] <= 1; got {n_boxes}, {area}"
        )
    device = torch.device(device) if device is not None else generator.device
    shape = (batch, n_boxes)
    frac = area[0] + (area[1] - area[0]) * _rand(shape, generator, device)
    h_share = torch.exp(_rand(shape, generator, device) * torch.log(frac))  # p^u
    w_share = frac / h_share  # p^(1-u)
    scale = math.sqrt(1.0 / n_boxes)  # release: sides scaled by sqrt(1/3)
    box_h = torch.round(h_share * scale * height).clamp(1, height).to(torch.int64)
    box_w = torch.round(w_share * scale * width).clamp(1, width).to(torch.int64)
    y0 = torch.round((height - box_h) * _rand(shape, generator, device)).to(torch.int64)
    x0 = torch.round((width - box_w) * _rand(shape, generator, device)).to(torch.int64)
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


def mix(x: Tensor, mask: Tensor, shift: int = 1, out: Tensor | None = None) -> Tensor:
    """``M * x + (1 - M) * x[pi]`` with pi = roll the batch by ``shift``.

    ``M`` is 0/1, so the blend is a select: one pass instead of three, the same values for
    finite inputs and the same gradients (to ``x`` where M is 1, to its partner elsewhere); every
    dtype is kept (images, logits, labels, validity masks). ``out`` (``x`` itself allowed: each
    element is read before it is written) takes the result without a new tensor and without
    gradients.
    """
    m = _mask_for(x, mask)
    return torch.where(m > 0, x, x.roll(shift, dims=0), out=out)


def unmix(weights: Tensor, mask: Tensor, shift: int = 1) -> Tensor:
    """The transpose of ``mix``: per-pixel weights on the mixed images -> the weights of their
    sources' pixels, ``M * w`` on each sample plus its partners' ``(1 - M) * w``, so that
    ``sum(w * f(mix(x))) == sum(unmix(w) * f(x))`` for any pixelwise ``f`` (``mix`` is a select)."""
    m = _mask_for(weights, mask) > 0
    zero = weights.new_zeros(())
    return torch.where(m, weights, zero) + torch.where(m, zero, weights).roll(-shift, dims=0)
