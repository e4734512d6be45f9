"""Implicit semantic data augmentation, diagonal form (spec §5).

Each network owns a ``ClassFeatureStatistics``: running per-class, per-channel mean and
(biased) variance of the decoder features that feed its final 1x1 classifier. The augmented
logit of a pixel with label y is ``z_c + lam/2 * sum_a (W[c,a] - W[y,a])^2 * var[y,a]``; the
added term depends only on (y, c), so it is a C x C table computed once per step and gathered
by label: no (pixels x C x A) tensor is ever built.

The statistics are float64: the count reaches billions of pixels over a run and the merge weight
``n / (n + N)`` becomes tiny, where float32 would lose the update. A batch's sums of ``x`` and
``x^2`` are float32 matmuls (relative rounding ~1e-7, far below the variance's own batch noise),
merged in float64. The training step hands its features at decoder resolution with per-class
weights on the consistency grid (``update_resized``): the sums of the resized maps are taken
without resizing them (``core/resized_moments.py``). The tables are tiny (C x A).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.core.resized_moments import resized_class_sums

STATS_DTYPE = torch.float64


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class ClassFeatureStatistics(nn.Module):
    """Running per-class feature mean/variance/count, merged batch by batch (spec §5).

    Under ``torch.distributed`` every rank must call ``update`` the same number of times: the
    per-class sums are all-reduced first so the estimators stay identical on all ranks.
    """

    mean: Tensor
    var: Tensor
    count: Tensor

    def __init__(self, num_classes: int, channels: int, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        if num_classes < 1 or channels < 1:
            raise ValueError(
                f"ClassFeatureStatistics: num_classes and channels must be >= 1, "
                f"got {num_classes}, {channels}"
            )
        self.num_classes, self.channels, self.ignore_index = num_classes, channels, ignore_index
        self.register_buffer("mean", torch.zeros(num_classes, channels, dtype=STATS_DTYPE))
        self.register_buffer("var", torch.zeros(num_classes, channels, dtype=STATS_DTYPE))
        self.register_buffer("count", torch.zeros(num_classes, dtype=STATS_DTYPE))

    def _check(self, features: Tensor, labels: Tensor) -> None:
        if features.dim() != 2 or features.shape[1] != self.channels:
            raise ValueError(
                f"ClassFeatureStatistics.update: features must be (N, {self.channels}), "
                f"got {tuple(features.shape)}"
            )
        if labels.shape != features.shape[:1]:
            raise ValueError(
                f"ClassFeatureStatistics.update: labels must be ({features.shape[0]},), "
                f"got {tuple(labels.shape)}"
            )

    def check_labels(self, labels: Tensor) -> None:
        """Raise unless every label is a class index or ``ignore_index``."""
        labels = labels.reshape(-1)
        bad = (labels != self.ignore_index) & ((labels < 0) | (labels >= self.num_classes))
        if bool(bad.any()):
            raise ValueError(
                f"ClassFeatureStatistics: labels must be in [0, {self.num_classes}) "
                f"or {self.ignore_index}; check the dataset's num_classes / mask encoding"
            )

    @torch.no_grad()
    def update(self, features: Tensor, labels: Tensor) -> None:
        """Merge one batch of pixels (features (N, A), labels (N,)) into the running statistics:
        ``update_resized`` of the pixels as one (1, A, N, 1) map, which no resize touches."""
        self._check(features, labels)
        maps = features.detach().T[None, :, :, None]
        self.update_resized(maps, self.class_weights(labels.reshape(1, -1, 1)))

    def _merge_batch(self, sums: Tensor) -> None:
        if _distributed():
            dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        self.merge(sums)

    @torch.no_grad()
    def merge(self, sums: Tensor) -> None:
        """Spec §5 merge for every class present (n_c > 0), vectorised over classes.

        A class whose batch sums are not finite (an fp16 overflow, a step the NaN guard will
        skip) is left out, so one bad step cannot poison the statistics for the rest of the run;
        a non-finite feature makes every class's sums of its chunk non-finite (0 * NaN in the
        one-hot matmul), so such a batch is left out whole.
        """
        a = self.channels
        sums = torch.where(torch.isfinite(sums).all(1, keepdim=True), sums, torch.zeros_like(sums))
        n = sums[:, :1]
        present = n > 0
        safe_n = n.clamp(min=1)
        m = sums[:, 1 : 1 + a] / safe_n
        v = (sums[:, 1 + a :] / safe_n - m * m).clamp(min=0)  # biased batch variance
        w = n / (n + self.count[:, None]).clamp(min=1)
        new_var = (1 - w) * self.var + w * v + w * (1 - w) * (self.mean - m) ** 2
        new_mean = (1 - w) * self.mean + w * m
        self.var.copy_(torch.where(present, new_var, self.var))
        self.mean.copy_(torch.where(present, new_mean, self.mean))
        self.count.add_(n[:, 0])

    def class_weights(self, labels: Tensor, check: bool = True) -> Tensor:
        """Labels (B, H, W) -> (B, C, H, W) float32 one-hot, contiguous: the pixel weights of
        each class's sums; an ignored pixel weighs nothing. One comparison per class, written in
        place: a third of a scatter's time on the step's (16, 48, 48) labels. ``check=False``:
        the caller has checked them (``check_labels``), e.g. once a step for four estimators."""
        if check:
            self.check_labels(labels)
        shape = (labels.shape[0], self.num_classes, *labels.shape[1:])
        onehot = torch.empty(shape, dtype=torch.float32, device=labels.device)
        for c in range(self.num_classes):
            torch.eq(labels, c, out=onehot[:, c])
        return onehot

    @torch.no_grad()
    def update_resized(self, features: Tensor, weights: Tensor) -> None:
        """Merge the pixels of ``features`` (B, A, h, w) bilinearly resized to the grid of
        ``weights`` (B, C, H, W, ``class_weights`` of the labels there, 0/1), without resizing
        them (``core/resized_moments.py``): float32 matmuls on a CPU, float64 on CUDA."""
        if features.dim() != 4 or features.shape[1] != self.channels:
            raise ValueError(
                f"ClassFeatureStatistics.update_resized: features must be (B, {self.channels}, "
                f"h, w), got {tuple(features.shape)}"
            )
        if weights.dim() != 4 or weights.shape[:2] != (features.shape[0], self.num_classes):
            raise ValueError(
                f"ClassFeatureStatistics.update_resized: weights must be ({features.shape[0]}, "
                f"{self.num_classes}, H, W), got {tuple(weights.shape)}"
            )
        device = self.mean.device
        wide = STATS_DTYPE if device.type == "cuda" else torch.float32
        features, weights = features.to(device), weights.to(device)
        sums = resized_class_sums(features, weights, torch.promote_types(features.dtype, wide))
        counts = weights.sum((2, 3)).to(STATS_DTYPE).sum(0)[:, None]  # exact: 0/1 per image
        self._merge_batch(torch.cat([counts, sums.to(STATS_DTYPE)], 1))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, channels={self.channels}"


def augmentation_table(weight: Tensor, var: Tensor, lam: float) -> Tensor:
    """``T[y, c] = lam/2 * sum_a (W[c,a] - W[y,a])^2 var[y,a]`` as (C, C), via matmuls.

    Expanding the square gives ``var @ (W^2)^T - 2 (W var) @ W^T + rowsum(W^2 var)``; the
    diagonal is exactly zero and rounding can only make entries slightly negative, so both
    are enforced. W is detached (the augmentation is not a path for gradients).
    """
    if weight.dim() != 2 or var.shape != weight.shape:
        raise ValueError(
            f"augmentation_table: weight and var must both be (C, A), "
            f"got {tuple(weight.shape)} and {tuple(var.shape)}"
        )
    w = weight.detach()
    var = var.detach().to(w.dtype)
    sq = var @ (w * w).T - 2.0 * (w * var) @ w.T + (w * w * var).sum(1, keepdim=True)
    sq = sq.clamp(min=0).fill_diagonal_(0.0)
    return (lam / 2.0) * sq


def augment_logits(
    logits: Tensor,
    labels: Tensor,
    table: Tensor,
    ignore_index: int = IGNORE_INDEX,
    onehot: Tensor | None = None,
) -> Tensor:
    """``z~[b, :, i, j] = z[b, :, i, j] + table[y[b, i, j]]``; ignored pixels unchanged.

    ``onehot``: the labels' ``class_weights`` (B, C, h, w), when the caller has them: the added
    rows are then one (C, C) float32 matmul over the pixels (autocast off), a quarter of the
    gather's time, with the same values for a finite table (each row is one entry times 1 plus
    zeros; a non-finite entry, which the estimators never produce, would reach every pixel)."""
    b, c = logits.shape[:2]
    if labels.shape != (b, *logits.shape[2:]) or table.shape != (c, c):
        raise ValueError(
            f"augment_logits: logits (B, C, h, w), labels (B, h, w), table (C, C) "
            f"must agree, got {tuple(logits.shape)}, {tuple(labels.shape)}, "
            f"{tuple(table.shape)}"
        )
    if onehot is not None:
        if onehot.shape != logits.shape:
            raise ValueError(
                f"augment_logits: onehot must be (B, C, h, w) like the logits "
                f"{tuple(logits.shape)}, got {tuple(onehot.shape)}"
            )
        with torch.autocast(logits.device.type, enabled=False):
            added = table.float().T @ onehot.float().flatten(2)
        return logits + added.view_as(logits).to(logits.dtype)
    # an ignored pixel reads a row of zeros appended to the table: its logits stay as they are
    rows = torch.cat([table.to(logits.dtype), table.new_zeros(1, c).to(logits.dtype)])
    index = torch.where(labels == ignore_index, torch.full_like(labels, c), labels).long()
    added = rows[index]  # (B, h, w, C): one row per pixel, no A dimension
    return logits + added.movedim(-1, 1)
