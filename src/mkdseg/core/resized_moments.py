"""Per-class sums of a bilinearly resized feature map, computed at the map's own resolution.

The feature estimators (spec §5) read each network's decoder features resized to the consistency
grid: at conf/base's grid (the input's, 16x the decoder's pixels) that resize is the largest
tensor of the step besides the networks', and it feeds nothing but the estimators' sums. Bilinear
resizing is linear and separable, ``up(f) = R_y f R_x^T``, so both sums are taken without it:

    sum_p w_c[p] up(f)[p]   = sum_q (R_y^T w_c R_x)[q] f[q]
    sum_p w_c[p] up(f)[p]^2 = sum_(d, e) sum_q (R_y^(d)T w_c R_x^(e))[q] f[q] f[q + (d, e)]

with ``R^(d)[P, i] = R[P, i] R[P, i + d]``: each output pixel blends neighbouring source pixels
(``d``, ``e`` within the resize's bandwidth, 1 for bilinear), so the square's cross terms are
products of a map with its shifted self. The same values as resizing first, within float32
rounding (tested), for a few small matmuls at the source resolution; where the grid is coarser
than those maps (the release's, half the decoder's), resizing first is the cheaper and is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor


@lru_cache(maxsize=32)
def resize_matrix(size_out: int, size_in: int, device: torch.device) -> Tensor:
    """(size_out, size_in) float64: ``F.interpolate``'s bilinear weights along one axis
    (``align_corners=False``), read off by resizing the identity."""
    eye = torch.eye(size_in, dtype=torch.float64, device=device)[None, :, :, None]
    resized = F.interpolate(eye, size=(size_out, 1), mode="bilinear", align_corners=False)
    return resized[0, :, :, 0].T.contiguous()


def bandwidth(matrix: Tensor) -> int:
    """The largest distance between two source pixels that one output pixel blends."""
    rows, cols = matrix.nonzero(as_tuple=True)
    if len(cols) == 0:
        return 0
    first = torch.full((matrix.shape[0],), matrix.shape[1], device=matrix.device)
    first = first.scatter_reduce(0, rows, cols, reduce="amin")
    last = torch.zeros_like(first).scatter_reduce(0, rows, cols, reduce="amax")
    return int((last - first).max().clamp(min=0))


def pair_matrix(matrix: Tensor, d: int) -> Tensor:
    """``R[P, i] * R[P, i + d]`` as (size_out, size_in); zero where ``i + d`` is outside."""
    n, out = matrix.shape[1], torch.zeros_like(matrix)
    if d >= 0:
        out[:, : n - d] = matrix[:, : n - d] * matrix[:, d:]
    else:
        out[:, -d:] = matrix[:, -d:] * matrix[:, : n + d]
    return out


def offsets(width: int) -> list[tuple[int, int, float]]:
    """The (d, e) shifts of the square's cross terms, one of each symmetric pair, doubled."""
    pairs = [(d, e) for d in range(width + 1) for e in range(-width, width + 1)]
    return [(d, e, 1.0 if (d, e) == (0, 0) else 2.0) for d, e in pairs if d > 0 or e >= 0]


def pulled_weights(weights: Tensor, ys: Tensor, xs: Tensor) -> Tensor:
    """``ys[k]^T weights xs[l]`` for every k, l in two matmuls: (K, L, C, B, h, w), a view.

    ``weights`` (B, C, H, W); ``ys`` (K, H, h) and ``xs`` (L, W, w) matrices."""
    (b, c, size_y, size_x), (k, _, h), (n_x, _, w) = weights.shape, ys.shape, xs.shape
    along_x = weights.reshape(-1, size_x) @ xs.permute(1, 0, 2).reshape(size_x, -1)
    along_x = along_x.reshape(b * c, size_y, -1).transpose(0, 1).reshape(size_y, -1)
    both = ys.permute(1, 0, 2).reshape(size_y, -1).T @ along_x  # (K h, B C L w)
    return both.reshape(k, h, b, c, n_x, w).permute(0, 4, 3, 2, 1, 5)


@dataclass(frozen=True)
class ResizePlan:
    """One resize's matrices, built once per shape. ``ys`` (1 + width + 1, H, h): R_y, then
    R_y^(d) for d = 0..width; ``xs`` (1 + 2 width + 1, W, w): R_x, then R_x^(e) for
    e = -width..width. Term 0 is the first moment, terms 1.. the square's shifts: ``y_index``,
    ``x_index`` pick each term's pair, ``shifts`` its (d, e), ``factors`` its multiplicity."""

    ys: Tensor
    xs: Tensor
    width: int
    y_index: Tensor
    x_index: Tensor
    shifts: list[tuple[int, int]]
    factors: Tensor


@lru_cache(maxsize=32)
def resize_plan(
    size_out: tuple[int, int], size_in: tuple[int, int], device: torch.device, dtype: torch.dtype
) -> ResizePlan:
    ry = resize_matrix(size_out[0], size_in[0], device).to(dtype)
    rx = resize_matrix(size_out[1], size_in[1], device).to(dtype)
    width = max(bandwidth(ry), bandwidth(rx))
    ys = torch.stack([ry, *(pair_matrix(ry, d) for d in range(width + 1))])
    xs = torch.stack([rx, *(pair_matrix(rx, e) for e in range(-width, width + 1))])
    terms = offsets(width)
    index = [(0, 0)] + [(1 + d, 1 + width + e) for d, e, _ in terms]
    return ResizePlan(
        ys,
        xs,
        width,
        y_index=torch.tensor([y for y, _ in index], device=device),
        x_index=torch.tensor([x for _, x in index], device=device),
        shifts=[(d, e) for d, e, _ in terms],
        factors=torch.tensor([f for *_, f in terms], dtype=dtype, device=device)[:, None, None],
    )


def resized_class_sums(features: Tensor, weights: Tensor, dtype: torch.dtype) -> Tensor:
    """Sums over pixels of ``weights[b, c] * up(f)[b, a]`` and ``* up(f)[b, a]^2`` as (C, 2A).

    ``features`` (B, A, h, w); ``weights`` (B, C, H, W) per-class pixel weights on the grid the
    features are resized to (``up``: bilinear, ``align_corners=False``, as ``to_resolution``);
    ``dtype``: the matmuls' precision. Pulled back to the source where its maps (the features and
    their shifted products) hold fewer pixels than the grid, as at conf/base's input-resolution
    grid; else (a grid as coarse as the release's, half the decoder's) resized first.
    """
    (b, _, h, w), grid = features.shape, tuple(weights.shape[2:])
    if weights.shape[0] != b:
        raise ValueError(
            f"resized_class_sums: features {tuple(features.shape)} and weights "
            f"{tuple(weights.shape)} must have the same batch"
        )
    plan = resize_plan(grid, (h, w), weights.device, dtype)
    if (1 + len(plan.shifts)) * h * w < grid[0] * grid[1]:
        return pulled_class_sums(features, weights, plan)
    return class_sums_after_resizing(features, weights, dtype)


def pulled_class_sums(features: Tensor, weights: Tensor, plan: ResizePlan) -> Tensor:
    """``resized_class_sums`` at the source resolution (module doc), in ``plan``'s dtype."""
    (b, a, h, w), c, dtype = features.shape, weights.shape[1], plan.ys.dtype
    pulled = pulled_weights(weights.to(dtype), plan.ys, plan.xs)
    kernels = pulled[plan.y_index, plan.x_index].reshape(-1, c, b * h * w)  # (1 + S, C, B h w)
    f = features.detach().to(dtype).permute(0, 2, 3, 1).contiguous()  # (B, h, w, A): pixel rows
    p = plan.width
    padded = F.pad(f, (0, 0, p, p, p, p))  # zeros: a product with a pixel outside is 0
    maps = torch.empty((1 + len(plan.shifts), *f.shape), dtype=dtype, device=f.device)
    maps[0] = f  # then f * f shifted, each product written in place (no stack of the shifts)
    for i, (d, e) in enumerate(plan.shifts, start=1):
        torch.mul(padded[:, p + d : p + d + h, p + e : p + e + w], f, out=maps[i])
    sums = torch.bmm(kernels, maps.reshape(-1, b * h * w, a))  # (1 + S, C, A)
    return torch.cat([sums[0], (sums[1:] * plan.factors).sum(0)], 1)


def class_sums_after_resizing(features: Tensor, weights: Tensor, dtype: torch.dtype) -> Tensor:
    """``resized_class_sums`` by resizing the features to the grid first (channels-last, as
    ``to_resolution``), then one matmul per moment."""
    (_, c, size_y, size_x), a = weights.shape, features.shape[1]
    up = features.detach().to(dtype)
    if tuple(up.shape[-2:]) != (size_y, size_x):
        up = up.contiguous(memory_format=torch.channels_last)
        up = F.interpolate(up, size=(size_y, size_x), mode="bilinear", align_corners=False)
    rows = up.permute(0, 2, 3, 1).reshape(-1, a)  # (B H W, A)
    by_class = weights.to(dtype).transpose(0, 1).reshape(c, -1)  # (C, B H W)
    return torch.cat([by_class @ rows, by_class @ (rows * rows)], 1)
