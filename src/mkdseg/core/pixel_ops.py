"""Image operations with per-sample parameters, batched, with torchvision semantics.

The building blocks of both augmentation views (``mkdseg.core.augmentation``), each checked in
the tests against torchvision or Python's ``colorsys``: colour-space conversions, ColorJitter's
four adjustments in a per-sample order, Gaussian blur (reflect padding), equalize (uint8
histogram semantics), solarize (invert pixels >= 0.5, identical to uint8 threshold 128 on
images that came from uint8) and grayscale (ITU-R 601 weights 0.2989/0.587/0.114, three equal
channels). Images are floats in [0, 1], shape (B, 3, H, W); a parameter tensor has one entry
per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BLUR_TRUNCATE = 3.0  # without a drawn radius: kernel radius ceil(3 * sigma)
SOLARIZE_THRESHOLD = 0.5  # on [0, 1]; equals uint8 threshold 128 for images that came from uint8
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)  # torchvision rgb_to_grayscale
UINT8_MAX = 255
HIST_BINS = 256
HUE_SECTORS = 6
JITTER_OPS = 4  # brightness, contrast, saturation, hue, applied in a random order per sample


def per_sample(v: Tensor) -> Tensor:
    """(B,) -> (B, 1, 1, 1) so it broadcasts over an image batch."""
    return v.view(-1, 1, 1, 1)


def select_per_sample(select: Tensor, new: Tensor, old: Tensor) -> Tensor:
    """Per sample, ``new`` where ``select`` (B,) holds, else ``old``."""
    return torch.where(per_sample(select), new, old)


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


def blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    """torchvision's ``_blend`` with a per-sample factor (B,)."""
    f = per_sample(factor)
    return (f * x + (1.0 - f) * other).clamp(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """torchvision semantics: multiply (blend with black)."""
    return (x * per_sample(factor)).clamp(0.0, 1.0)


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
    x: Tensor, sigma: Tensor, radius: Tensor | None = None, *, max_radius: int
) -> Tensor:
    """Per-sample Gaussian blur with reflect padding; kernel radius ``radius`` (B,), or
    ``ceil(3*sigma)`` (kernel size ``2*ceil(3*sigma)+1``) when None.

    One shared padded width (``max_radius``, the largest the blur's draws allow, capped by the
    image size) with each sample's kernel zero beyond its own radius, so the result equals a
    blur with that sample's kernel.
    """
    n, c, h, w = x.shape
    radii = torch.ceil(BLUR_TRUNCATE * sigma) if radius is None else radius.to(sigma.dtype)
    big = min(max_radius, h - 1, w - 1)
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


JITTER_FNS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(x: Tensor, factors: Tensor, order: Tensor) -> Tensor:
    """torchvision ColorJitter with per-sample factors (B, 4) and per-sample op order (B, 4).

    An op no sample takes at a position is not computed (selecting none of it keeps ``x``
    exactly); which ones are taken comes to the host in one transfer."""
    taken = (order[..., None] == torch.arange(JITTER_OPS, device=order.device)).any(0).tolist()
    for step in range(JITTER_OPS):
        for k, fn in enumerate(JITTER_FNS):
            if taken[step][k]:
                x = select_per_sample(order[:, step] == k, fn(x, factors[:, k]), x)
    return x
