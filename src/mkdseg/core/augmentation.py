"""Batched pixel-level augmentation on the training device (spec §2).

Inputs are float images in [0, 1], shape (B, 3, H, W), after the loader's shared geometry.
All randomness comes from an explicit ``torch.Generator`` so a step can be replayed from its
seed. Random parameters are drawn on the generator's device, then moved to the images' device.

Drawing parameters and applying them are separate functions (``sample_*`` / ``apply_*``):
the public ``photometric_distortion`` / ``strong_augment`` compose the two, and tests can
check the application against slow per-image references with known parameters.

Weak view (``photometric_distortion``) follows mmseg's ``PhotoMetricDistortion`` used by the
release: brightness is *additive*, contrast is a plain *multiplication* (no blend with the
mean), saturation scales S and hue shifts H in HSV; contrast comes first or last at random.
Hue is an HSV rotation by a continuous U(-hue_degrees, hue_degrees). Note: mmseg's
``hue_delta=18`` is in OpenCV's 8-bit half-degree units (about ±36 degrees); the spec says
±18 degrees, which is the default here — pass ``hue_degrees=36`` to mimic mmseg literally.

Strong view (``strong_augment``) applies exactly one op per sample, with torchvision semantics:
ColorJitter (factors per sample, random op order per sample), Gaussian blur (reflect padding;
``BlurRange``: either the release's albumentations ``GaussianBlur`` — kernel drawn from 3, 5, 7
and sigma from 0.1-2.0 px independently, both scaled with the crop against the release's 512 px —
or kernel ``2*ceil(3*sigma)+1`` with sigma in pixels at any crop), equalize (uint8 histogram semantics), solarize
(invert pixels >= 0.5, identical to uint8 threshold 128 on images that came from uint8) and
grayscale (ITU-R 601 weights 0.2989/0.587/0.114, three equal channels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mkdseg.core.config import STRONG_OP_WEIGHTS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Weak view (spec §2, mmseg PhotoMetricDistortion in the release).
PHOTOMETRIC_BRIGHTNESS = 32 / 255
PHOTOMETRIC_CONTRAST = (0.5, 1.5)
PHOTOMETRIC_SATURATION = (0.5, 1.5)
PHOTOMETRIC_HUE_DEGREES = 18.0
PHOTOMETRIC_P = 0.5
CONTRAST_FIRST_P = 0.5  # mmseg: contrast before or after the HSV ops with equal chance
DEGREES_PER_TURN = 360.0

# Strong view (spec §2): one op per sample with these selection weights.
STRONG_OPS = tuple(STRONG_OP_WEIGHTS)
STRONG_WEIGHTS = tuple(STRONG_OP_WEIGHTS.values())
JITTER_BRIGHTNESS = 0.5  # torchvision ColorJitter(0.5, 0.5, 0.5, 0.25)
JITTER_CONTRAST = 0.5
JITTER_SATURATION = 0.5
JITTER_HUE = 0.25
JITTER_OPS = 4  # brightness, contrast, saturation, hue, applied in a random order per sample
BLUR_SIGMA = (0.1, 2.0)  # px at the release's 512 px crops (albumentations sigma_limit)
BLUR_RADIUS = (1, 3)  # px: the release's kernel 3-7 (albumentations blur_limit=(3, 7), odd sizes)
BLUR_TRUNCATE = (
    3.0  # without a drawn radius: kernel radius ceil(3 * sigma), i.e. size 2*ceil(3*sigma)+1
)
MIN_BLUR_RADIUS = 1  # a scaled kernel never shrinks below 3 x 3
SOLARIZE_THRESHOLD = 0.5  # on [0, 1]; equals uint8 threshold 128 for images that came from uint8
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale
UINT8_MAX = 255
HIST_BINS = 256
HUE_SECTORS = 6


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
        return (
            self.radius[1]
            if self.radius is not None
            else int(math.ceil(BLUR_TRUNCATE * self.sigma[1]))
        )


# --- colour helpers -------------------------------------------------------------------------
def _rand(shape: tuple[int, ...], generator: torch.Generator, device: torch.device) -> Tensor:
    """U[0, 1) draws on the generator's device, moved to ``device``."""
    return torch.rand(shape, generator=generator, device=generator.device).to(device)


def _uniform(
    n: int, low: float, high: float, generator: torch.Generator, device: torch.device
) -> Tensor:
    return low + (high - low) * _rand((n,), generator, device)


def _per_sample(v: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) so it broadcasts over an image batch."""
    return v.view(-1, 1, 1, 1)


def _check_images(x: Tensor, name: str) -> None:
    if x.dim() != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise ValueError(
            f"{name}: expected float images (B, 3, H, W) in [0, 1], "
            f"got {tuple(x.shape)} {x.dtype}; divide uint8 images by 255 first"
        )


def grayscale(x: Tensor) -> Tensor:
    """Luma (B, 1, H, W) with torchvision's weights."""
    r, g, b = x.unbind(1)
    wr, wg, wb = GRAY_WEIGHTS
    return (wr * r + wg * g + wb * b).unsqueeze(1)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV with H in [0, 1) (Pillow/torchvision algorithm)."""
    r, g, b = x.unbind(1)
    maxc, minc = x.amax(1), x.amin(1)
    equal = maxc == minc
    chroma = maxc - minc
    ones = torch.ones_like(maxc)
    s = chroma / torch.where(equal, ones, maxc)
    div = torch.where(equal, ones, chroma)  # grey pixels: H is 0 whatever the divisor
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / HUE_SECTORS + 1.0, 1.0)
    return torch.stack((h, s, maxc), 1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """Inverse of ``rgb_to_hsv``: pick (R, G, B) from (v, p, q, t) by the hue sector."""
    h, s, v = hsv.unbind(1)
    sector = torch.floor(h * HUE_SECTORS)
    f = h * HUE_SECTORS - sector
    sector = sector.to(torch.int64) % HUE_SECTORS
    p = (v * (1.0 - s)).clamp(0.0, 1.0)
    q = (v * (1.0 - s * f)).clamp(0.0, 1.0)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0.0, 1.0)
    table = torch.stack(
        [  # (3 channels, 6 sectors, B, H, W)
            torch.stack((v, q, p, p, t, v)),
            torch.stack((t, v, v, q, p, p)),
            torch.stack((p, p, t, v, v, q)),
        ]
    )
    index = sector.unsqueeze(0).unsqueeze(0).expand(3, 1, *sector.shape)
    return table.gather(1, index).squeeze(1).movedim(0, 1)


# --- single ops with per-sample parameters ----------------------------------------------------
def blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """torchvision's ``_blend`` with a per-sample factor (B,)."""
    f = _per_sample(factor)
    return (f * x + (1.0 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """torchvision semantics: multiply (blend with black)."""
    return (x * _per_sample(factor)).clamp(0.0, 1.0)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """torchvision semantics: blend with the per-image mean grey level."""
    return blend(x, grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """torchvision semantics: blend with the image's grayscale version."""
    return blend(x, grayscale(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate H in HSV by ``shift`` turns (B,) (torchvision ``adjust_hue`` factor)."""
    h, s, v = rgb_to_hsv(x).unbind(1)
    h = torch.remainder(h + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack((h, s, v), 1))


def gaussian_blur(
    x: Tensor, sigma: Tensor, radius: Tensor | None = None, max_radius: int | None = None
) -> Tensor:
    """Per-sample Gaussian blur with reflect padding; kernel radius ``radius`` (B,), or
    ``ceil(3*sigma)`` (kernel size ``2*ceil(3*sigma)+1``) when None.

    One shared padded width (``max_radius``, default the largest the sigma range allows, capped by
    the image size) with each sample's kernel zero beyond its own radius, so the result equals a
    blur with that sample's kernel.
    """
    n, c, h, w = x.shape
    radii = torch.ceil(BLUR_TRUNCATE * sigma) if radius is None else radius.to(sigma.dtype)
    widest = max_radius if max_radius is not None else int(math.ceil(BLUR_TRUNCATE * BLUR_SIGMA[1]))
    big = min(widest, h - 1, w - 1)
    if big < 1:
        return x
    offsets = torch.arange(-big, big + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (offsets[None] / sigma[:, None]) ** 2)
    kernel = kernel * (offsets.abs()[None] <= radii[:, None])
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n*c, K)
    padded = F.pad(x.reshape(1, n * c, h, w), (big, big, big, big), mode="reflect")
    out = F.conv2d(padded, kernel[:, None, None, :], groups=n * c)
    out = F.conv2d(out, kernel[:, None, :, None], groups=n * c)
    return out.reshape(n, c, h, w)


def equalize(x: Tensor) -> Tensor:
    """Histogram equalisation per image and channel, torchvision's uint8 algorithm, batched.

    Pixels are quantised to uint8 levels (``round(x * 255)``); the output is ``lut[level] / 255``.
    """
    n, c, h, w = x.shape
    levels = (x * UINT8_MAX).round().clamp(0, UINT8_MAX).to(torch.int64).reshape(n * c, h * w)
    hist = torch.zeros(n * c, HIST_BINS, dtype=torch.int64, device=x.device)
    hist.scatter_add_(1, levels, torch.ones_like(levels))
    last = hist.gather(1, levels.amax(1, keepdim=True))  # count of the top non-empty bin
    step = torch.div(h * w - last, UINT8_MAX, rounding_mode="floor")
    safe = step.clamp(min=1)
    lut = torch.div(
        hist.cumsum(1) + torch.div(safe, 2, rounding_mode="floor"), safe, rounding_mode="floor"
    )
    lut = F.pad(lut, (1, 0))[:, :-1].clamp(0, UINT8_MAX)
    out = torch.where(step == 0, levels, lut.gather(1, levels))
    return (out.to(x.dtype) / UINT8_MAX).reshape(n, c, h, w)


def solarize(x: Tensor, threshold: float = SOLARIZE_THRESHOLD) -> Tensor:
    """Invert pixels at or above the threshold (torchvision/PIL semantics)."""
    return torch.where(x >= threshold, 1.0 - x, x)


def to_grayscale(x: Tensor) -> Tensor:
    """Three identical luma channels."""
    return grayscale(x).expand_as(x).contiguous()


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
    brightness: float = PHOTOMETRIC_BRIGHTNESS,
    contrast: tuple[float, float] = PHOTOMETRIC_CONTRAST,
    saturation: tuple[float, float] = PHOTOMETRIC_SATURATION,
    hue_degrees: float = PHOTOMETRIC_HUE_DEGREES,
    p: float = PHOTOMETRIC_P,
) -> PhotometricParams:
    """Draw everything at once, in a fixed order, whatever ``p`` is (reproducible streams)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"photometric_distortion: p must be in [0, 1], got {p}")
    apply = _rand((batch, 4), generator, device) < p
    first = _rand((batch,), generator, device) < CONTRAST_FIRST_P
    turns = hue_degrees / DEGREES_PER_TURN
    return PhotometricParams(
        apply=apply,
        contrast_first=first,
        brightness=_uniform(batch, -brightness, brightness, generator, device),
        contrast=_uniform(batch, *contrast, generator, device),
        saturation=_uniform(batch, *saturation, generator, device),
        hue=_uniform(batch, -turns, turns, generator, device),
    )


def _where(select: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(_per_sample(select), new, old)


def apply_photometric(x: Tensor, prm: PhotometricParams) -> Tensor:
    """mmseg order: brightness, [contrast], saturation, hue, [contrast]; clamp after each."""
    do_b, do_c, do_s, do_h = prm.apply.unbind(1)
    x = _where(do_b, (x + _per_sample(prm.brightness)).clamp(0.0, 1.0), x)
    scale = _per_sample(prm.contrast)
    x = _where(do_c & prm.contrast_first, (x * scale).clamp(0.0, 1.0), x)
    h, s, v = rgb_to_hsv(x).unbind(1)
    s = torch.where(do_s.view(-1, 1, 1), (s * prm.saturation.view(-1, 1, 1)).clamp(0.0, 1.0), s)
    h = torch.where(do_h.view(-1, 1, 1), torch.remainder(h + prm.hue.view(-1, 1, 1), 1.0), h)
    x = _where(do_s | do_h, hsv_to_rgb(torch.stack((h, s, v), 1)), x)
    return _where(do_c & ~prm.contrast_first, (x * scale).clamp(0.0, 1.0), x)


def photometric_distortion(
    x: Tensor,
    generator: torch.Generator,
    brightness: float = PHOTOMETRIC_BRIGHTNESS,
    contrast: tuple[float, float] = PHOTOMETRIC_CONTRAST,
    saturation: tuple[float, float] = PHOTOMETRIC_SATURATION,
    hue_degrees: float = PHOTOMETRIC_HUE_DEGREES,
    p: float = PHOTOMETRIC_P,
) -> Tensor:
    """The labeled / weak view: each of four ops with probability ``p`` per sample."""
    _check_images(x, "photometric_distortion")
    prm = sample_photometric_params(
        x.shape[0], generator, x.device, brightness, contrast, saturation, hue_degrees, p
    )
    return apply_photometric(x, prm)


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


_JITTER_FNS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: Tensor, factors: Tensor, order: Tensor) -> Tensor:
    """torchvision ColorJitter with per-sample factors (B, 4) and per-sample op order (B, 4)."""
    for step in range(JITTER_OPS):
        for k, fn in enumerate(_JITTER_FNS):
            x = _where(order[:, step] == k, fn(x, factors[:, k]), x)
    return x


def _run_op(name: str, x: Tensor, prm: StrongParams, idx: Tensor) -> Tensor:
    if name == "color_jitter":
        return color_jitter(x, prm.jitter[idx], prm.jitter_order[idx])
    if name == "blur":
        radius = prm.radius[idx] if prm.radius is not None else None
        return gaussian_blur(x, prm.sigma[idx], radius, prm.blur.max_radius)
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
