"""Batched pixel-level augmentation on the training device (spec §2).

Inputs are float images in [0, 1], shape (B, 3, H, W), after the loader's shared geometry.
All randomness comes from an explicit ``torch.Generator`` so a step can be replayed from its
seed. Random parameters are drawn on the generator's device, then moved to the images' device.

Drawing parameters and applying them are separate functions (``sample_*`` / ``apply_*``):
the public ``photometric_distortion`` / ``strong_augment`` compose the two, and tests can
check the application against slow per-image references with known parameters. The
operations themselves are in ``mkdseg.core.pixel_ops``.

Weak view (``photometric_distortion``) follows mmseg's ``PhotoMetricDistortion`` used by the
release: brightness is *additive*, contrast is a plain *multiplication* (no blend with the
mean), saturation scales S and hue shifts H in HSV; contrast comes first or last at random.
Hue is an HSV rotation by a continuous U(-hue_degrees, hue_degrees). Note: mmseg's
``hue_delta=18`` is in OpenCV's 8-bit half-degree units (about ±36 degrees); the spec says
±18 degrees, which is the default here — set ``hue_degrees=36`` to mimic mmseg literally.

Strong view (``strong_augment``) applies exactly one op per sample, with torchvision semantics:
ColorJitter (factors per sample, random op order per sample), Gaussian blur, equalize, solarize
and grayscale. ``BlurRange`` is either the release's albumentations ``GaussianBlur`` (kernel
drawn from 3, 5, 7 and sigma from 0.1-2.0 px independently, both scaled with the crop against
the release's 512 px) or kernel ``2*ceil(3*sigma)+1`` with sigma in pixels at any crop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from mkdseg.core.config import STRONG_OP_WEIGHTS
from mkdseg.core.pixel_ops import (
    BLUR_TRUNCATE,
    JITTER_OPS,
    color_jitter,
    equalize,
    gaussian_blur,
    hsv_to_rgb,
    per_sample,
    rgb_to_hsv,
    select_per_sample,
    solarize,
    to_grayscale,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CONTRAST_FIRST_P = 0.5  # mmseg: contrast before or after the HSV ops with equal chance
DEGREES_PER_TURN = 360.0

# Strong view (spec §2): one op per sample with these selection weights.
STRONG_OPS = tuple(STRONG_OP_WEIGHTS)
STRONG_WEIGHTS = tuple(STRONG_OP_WEIGHTS.values())
JITTER_BRIGHTNESS = 0.5  # torchvision ColorJitter(0.5, 0.5, 0.5, 0.25)
JITTER_CONTRAST = 0.5
JITTER_SATURATION = 0.5
JITTER_HUE = 0.25
BLUR_SIGMA = (0.1, 2.0)  # px at the release's 512 px crops (albumentations sigma_limit)
BLUR_RADIUS = (1, 3)  # px: the release's kernel 3-7 (albumentations blur_limit=(3, 7), odd sizes)
MIN_BLUR_RADIUS = 1  # a scaled kernel never shrinks below 3 x 3


@dataclass(frozen=True)
class PhotometricRanges:
    """The weak view's ranges (spec §2, mmseg PhotoMetricDistortion in the release) and the
    probability ``p`` with which each of its four ops applies to a sample."""

    brightness: float = 32 / 255  # additive delta in +-brightness
    contrast: tuple[float, float] = (0.5, 1.5)
    saturation: tuple[float, float] = (0.5, 1.5)
    hue_degrees: float = 18.0
    p: float = 0.5


@dataclass(frozen=True)
class BlurRange:
    """Per-sample Gaussian blur draws: sigma uniform in ``sigma``; the kernel radius uniform over
    the integers of ``radius``, or ``ceil(3 sigma)`` when ``radius`` is None."""

    sigma: tuple[float, float] = BLUR_SIGMA
    radius: tuple[int, int] | None = None

    @classmethod
    def for_crop(cls, crop_size: int, reference_crop: int | None) -> BlurRange:
        """The release's blur scaled by ``crop_size / reference_crop`` (its values at the reference
        crop); ``reference_crop`` None: sigma in pixels at any crop, kernel from sigma."""
        if reference_crop is None:
            return cls()
        scale = crop_size / reference_crop
        low, high = (max(MIN_BLUR_RADIUS, round(r * scale)) for r in BLUR_RADIUS)
        return cls(sigma=(BLUR_SIGMA[0] * scale, BLUR_SIGMA[1] * scale), radius=(low, high))

    @property
    def max_radius(self) -> int:
        """The widest kernel radius these draws can give: a batch's shared blur padding."""
        return (
            self.radius[1]
            if self.radius is not None
            else int(math.ceil(BLUR_TRUNCATE * self.sigma[1]))
        )


# --- random draws -----------------------------------------------------------------------------
def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """U[0, 1) draws on the generator's device, moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    return low + (high - low) * _rand((n,), generator, device)


def _check_images(x: Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(
            f"{name}: expected float images (B, 3, H, W) in [0, 1], "
            f"got {tuple(x.shape)} {x.dtype}; divide uint8 images by 255 first"
        )


# --- weak view --------------------------------------------------------------------------------
@dataclass
class PhotometricParams:
    """Per-sample draws of the weak view; masks say which ops apply."""

    apply: Tensor  # (B, 4) bool: brightness, contrast, saturation, hue
    contrast_first: Tensor  # (B,) bool
    brightness: Tensor  # (B,) additive delta
    contrast: Tensor  # (B,) multiplier
    saturation: Tensor  # (B,) multiplier of S
    hue: Tensor  # (B,) shift in turns


def sample_photometric_params(
    batch: int,
    generator: torch.Generator,
    device: torch.device,
    ranges: PhotometricRanges = PhotometricRanges(),
) -> PhotometricParams:
    """Draw everything at once, in a fixed order, whatever ``p`` is (reproducible streams)."""
    if not 0.0 <= ranges.p <= 1.0:
        raise ValueError(f"photometric_distortion: p must be in [0, 1], got {ranges.p}")
    apply = _rand((batch, 4), generator, device) < ranges.p
    first = _rand((batch,), generator, device) < CONTRAST_FIRST_P
    turns = ranges.hue_degrees / DEGREES_PER_TURN
    brightness = ranges.brightness
    return PhotometricParams(
        apply=apply,
        contrast_first=first,
        brightness=_uniform(batch, -brightness, brightness, generator, device),
        contrast=_uniform(batch, *ranges.contrast, generator, device),
        saturation=_uniform(batch, *ranges.saturation, generator, device),
        hue=_uniform(batch, -turns, turns, generator, device),
    )


def concat_photometric(*params: PhotometricParams) -> PhotometricParams:
    """Several batches' draws as one batch's, so their images are distorted in one pass (each op
    is per sample and per pixel: the values of distorting each batch apart)."""
    return PhotometricParams(
        *(torch.cat([getattr(p, f.name) for p in params]) for f in fields(PhotometricParams))
    )


def apply_photometric(x: Tensor, prm: PhotometricParams) -> Tensor:
    """mmseg order: brightness, [contrast], saturation, hue, [contrast]; clamp after each."""
    do_b, do_c, do_s, do_h = prm.apply.unbind(1)
    x = select_per_sample(do_b, (x + per_sample(prm.brightness)).clamp(0.0, 1.0), x)
    scale = per_sample(prm.contrast)
    x = select_per_sample(do_c & prm.contrast_first, (x * scale).clamp(0.0, 1.0), x)
    h, s, v = rgb_to_hsv(x).unbind(1)
    s = torch.where(do_s.view(-1, 1, 1), (s * prm.saturation.view(-1, 1, 1)).clamp(0.0, 1.0), s)
    h = torch.where(do_h.view(-1, 1, 1), torch.remainder(h + prm.hue.view(-1, 1, 1), 1.0), h)
    x = select_per_sample(do_s | do_h, hsv_to_rgb(torch.stack((h, s, v), 1)), x)
    return select_per_sample(do_c & ~prm.contrast_first, (x * scale).clamp(0.0, 1.0), x)


def photometric_distortion(
    x: Tensor, generator: torch.Generator, ranges: PhotometricRanges = PhotometricRanges()
) -> Tensor:
    """The labeled / weak view: each of four ops with probability ``ranges.p`` per sample."""
    _check_images(x, "photometric_distortion")
    return apply_photometric(x, sample_photometric_params(x.shape[0], generator, x.device, ranges))


# --- strong view ------------------------------------------------------------------------------
@dataclass
class StrongParams:
    """Per-sample draws of the strong view (all drawn, only the chosen op's are used)."""

    op: Tensor  # (B,) int64 index into STRONG_OPS
    jitter: Tensor  # (B, 4) brightness, contrast, saturation factors and hue shift
    jitter_order: Tensor  # (B, 4) a permutation of 0..3 per sample
    sigma: Tensor  # (B,)
    blur: BlurRange = BlurRange()
    radius: Tensor | None = None  # (B,) kernel radius when the blur range draws one


def sample_strong_params(
    batch: int,
    generator: torch.Generator,
    device: torch.device,
    weights: tuple[float, ...] = STRONG_WEIGHTS,
    blur: BlurRange = BlurRange(),
) -> StrongParams:
    """Pick one op per sample with probabilities proportional to ``weights``.

    The draws come in a fixed order; the kernel radius, when ``blur`` draws one, comes last, so
    the other draws are those of a pixel-sigma blur.
    """
    if len(weights) != len(STRONG_OPS) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(
            f"strong_augment: weights must be {len(STRONG_OPS)} non-negative numbers "
            f"(for {', '.join(STRONG_OPS)}) with a positive sum, got {weights}"
        )
    probs = torch.tensor(weights, dtype=torch.float64, device=generator.device)
    op = torch.multinomial(probs, batch, replacement=True, generator=generator).to(device)
    jitter = torch.stack(
        [
            _uniform(batch, 1 - JITTER_BRIGHTNESS, 1 + JITTER_BRIGHTNESS, generator, device),
            _uniform(batch, 1 - JITTER_CONTRAST, 1 + JITTER_CONTRAST, generator, device),
            _uniform(batch, 1 - JITTER_SATURATION, 1 + JITTER_SATURATION, generator, device),
            _uniform(batch, -JITTER_HUE, JITTER_HUE, generator, device),
        ],
        1,
    )
    order = _rand((batch, JITTER_OPS), generator, device).argsort(1)
    sigma = _uniform(batch, *blur.sigma, generator, device)
    radius = None
    if blur.radius is not None:
        low, high = blur.radius
        radius = torch.randint(
            low, high + 1, (batch,), generator=generator, device=generator.device
        ).to(device)
    return StrongParams(
        op=op, jitter=jitter, jitter_order=order, sigma=sigma, blur=blur, radius=radius
    )


def _run_op(name: str, x: Tensor, prm: StrongParams, idx: Tensor) -> Tensor:
    if name == "color_jitter":
        return color_jitter(x, prm.jitter[idx], prm.jitter_order[idx])
    if name == "blur":
        radius = prm.radius[idx] if prm.radius is not None else None
        return gaussian_blur(x, prm.sigma[idx], radius, max_radius=prm.blur.max_radius)
    if name == "equalize":
        return equalize(x)
    if name == "solarize":
        return solarize(x)
    return to_grayscale(x)


def apply_strong(x: Tensor, prm: StrongParams) -> Tensor:
    """Group samples by their op and apply each op to its group only."""
    out = x.clone()
    for k, name in enumerate(STRONG_OPS):
        idx = (prm.op == k).nonzero().squeeze(1)
        if idx.numel() > 0:
            out.index_copy_(0, idx, _run_op(name, x.index_select(0, idx), prm, idx).to(x.dtype))
    return out


def strong_augment(
    x: Tensor,
    generator: torch.Generator,
    weights: tuple[float, ...] = STRONG_WEIGHTS,
    blur: BlurRange = BlurRange(),
) -> Tensor:
    """The strong view: exactly one op per sample from ``STRONG_OPS``."""
    _check_images(x, "strong_augment")
    return apply_strong(x, sample_strong_params(x.shape[0], generator, x.device, weights, blur))


def normalize(
    x: Tensor, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD
) -> Tensor:
    """Per-channel standardisation for the ImageNet-pretrained backbone."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s
