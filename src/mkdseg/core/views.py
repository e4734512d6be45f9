"""The images of one training step, augmented once on the training device (spec §2).

``make_views`` turns the loaders' uint8 batches into the typed record every later part of the
step reads: the labeled images and their labels, and (for a method that uses unlabeled images)
the weak view ``x_w``, the CutMix-ed view ``x_mix``, the padding mask and the CutMix mask ``M``.
The generator's draws come in a fixed order (photometric of ``x_l``, the CutMix boxes,
photometric of ``x_u``, the strong view, then each further strong view's boxes and view), so a
step replays from its seed and a method with one strong view draws what it drew before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from mkdseg.core.augmentation import (
    BlurRange,
    PhotometricParams,
    apply_photometric,
    concat_photometric,
    normalize,
    sample_photometric_params,
    strong_augment,
)
from mkdseg.core.config import TrainConfig
from mkdseg.core.cutmix import box_mask, mix
from mkdseg.core.image_io import to_unit_float

Batch = tuple[Tensor, Tensor]  # images (B, 3, H, W) uint8 and labels or padding masks (B, H, W)


@dataclass
class UnlabeledViews:
    """The unlabeled images' views; images normalised, in the networks' memory format."""

    weak: Tensor  # x_w (B_u, 3, H, W): what the teachers (and CPS's unmixed targets) see
    mixed: Tensor  # x_mix = M * x_s + (1 - M) * x_s[pi] (x_s: the strong or the weak view)
    valid: Tensor  # (B_u, H, W) bool: image pixels, not the crop's padding
    mask: Tensor  # M (B_u, 1, H, W) float: 1 keeps the sample, 0 takes its partner
    # Further strong views, each CutMix-ed with its own mask (UniMatch's second): (x_mix, M).
    extra: list[tuple[Tensor, Tensor]] = field(default_factory=list)


@dataclass
class Views:
    """What one step trains on."""

    labeled: Tensor  # x_l (B_l, 3, H, W), photometric-distorted and normalised
    labels: Tensor  # y_l (B_l, H, W), 255 = ignore
    unlabeled: UnlabeledViews | None  # None exactly when the method uses no unlabeled images
    # The step's seeded generator, after the views' draws: a method's own random draws (UniMatch's
    # feature dropout) come from it, not from torch's process-wide generator.
    rng: torch.Generator | None = None


def make_views(
    cfg: TrainConfig,
    labeled: Batch,
    unlabeled: Batch | None,
    generator: torch.Generator,
    device: torch.device,
    blur: BlurRange,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Views:
    """Photometric, strong and CutMix augmentation of one step's batches, on ``device``."""
    x_l, y_l = (v.to(device, non_blocking=True) for v in labeled)
    x_l = to_unit_float(x_l)
    photometric_l = sample_photometric_params(x_l.shape[0], generator, device)
    if not cfg.uses_unlabeled:
        x_l = normalize(apply_photometric(x_l, photometric_l))
        return Views(x_l.contiguous(memory_format=memory_format), y_l, None, generator)
    if unlabeled is None:
        raise ValueError(f"training.method {cfg.method.name!r} needs an unlabeled batch")
    x_u, valid = (v.to(device, non_blocking=True) for v in unlabeled)
    x_u = to_unit_float(x_u)
    mask = box_mask(x_u.shape[0], x_u.shape[-2], x_u.shape[-1], generator, device=device)
    photometric_u = sample_photometric_params(x_u.shape[0], generator, device)
    x_l, weak = _weak_views(x_l, x_u, photometric_l, photometric_u)
    x_l = normalize(x_l).contiguous(memory_format=memory_format)
    if cfg.method.mixed_view == "weak":
        strong = weak
    else:
        strong = strong_augment(x_u, generator, cfg.augment.strong_weights, blur)
    x_w = normalize(weak).contiguous(memory_format=memory_format)
    x_mix = normalize(mix(strong, mask)).contiguous(memory_format=memory_format)
    extra = [
        _strong_mixed(cfg, x_u, generator, blur, memory_format) for _ in range(cfg.strong_views - 1)
    ]
    return Views(x_l, y_l, UnlabeledViews(x_w, x_mix, valid.bool(), mask, extra), generator)


def _weak_views(
    x_l: Tensor, x_u: Tensor, params_l: PhotometricParams, params_u: PhotometricParams
) -> tuple[Tensor, Tensor]:
    """The photometric views of ``x_l`` and ``x_u`` (their own draws), in one pass when they are
    the same size."""
    if x_l.shape[1:] != x_u.shape[1:]:
        return apply_photometric(x_l, params_l), apply_photometric(x_u, params_u)
    both = apply_photometric(torch.cat([x_l, x_u]), concat_photometric(params_l, params_u))
    return both[: x_l.shape[0]], both[x_l.shape[0] :]


def _strong_mixed(
    cfg: TrainConfig,
    x_u: Tensor,
    generator: torch.Generator,
    blur: BlurRange,
    memory_format: torch.memory_format,
) -> tuple[Tensor, Tensor]:
    """Another strong view of ``x_u`` with its own CutMix mask, drawn after the first view's."""
    mask = box_mask(x_u.shape[0], x_u.shape[-2], x_u.shape[-1], generator, device=x_u.device)
    strong = strong_augment(x_u, generator, cfg.augment.strong_weights, blur)
    return normalize(mix(strong, mask)).contiguous(memory_format=memory_format), mask
