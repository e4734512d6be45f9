"""Which unlabeled images to label next: a score per image from the trained networks.

Per pixel, from the K networks' class probabilities p_k and their mean p̄:

- ``entropy``: H(p̄), what the networks together are unsure of (for one network, its own
  entropy);
- ``disagreement``: H(p̄) - mean_k H(p_k), the mutual information between the prediction and the
  network (BALD, Houlsby et al. 2011): uncertainty the networks disagree on, zero where they
  agree however unsure. It needs two networks or more.

An image's score is the mean over its pixels, or over its ``top_share`` most uncertain pixels
(a small hard region in a large easy image then counts). The proposed mask is the networks'
mean prediction, at the image's own size. Scoring keeps only a score and class shares per image
and the masks of the ``propose`` best images, so a 20,000-image pool fits in bounded memory.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mkdseg.core.augmentation import normalize
from mkdseg.core.class_map import class_map
from mkdseg.core.config import PRECISIONS
from mkdseg.core.image_io import to_unit_float
from mkdseg.core.prediction.inference import predict_whole
from mkdseg.core.runtime import autocast, resolve_precision

SCORES = ("entropy", "disagreement")
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ScoreSettings:
    """How images are scored and how many proposed masks are kept (``labelling`` parameters)."""

    score: str = "disagreement"  # conf/base's (chosen on the tuning set); one network: entropy
    top_share: float = 1.0  # share of each image's most uncertain pixels averaged; 1: all
    propose: int = 16  # proposed masks kept for the best-scored images
    batch_size: int = 32  # images of one size per forward pass ...
    batch_pixels: int = 1 << 20  # ... and at most this many pixels: the logits, probabilities and
    # entropy terms of 4 networks x 21 classes are each about 350 MB in float32
    long_side: int | None = None  # as evaluation.long_side: resize before scoring
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"labelling.score must be one of {SCORES}, got {self.score!r}")
        if not 0.0 < self.top_share <= 1.0:
            raise ValueError(f"labelling.top_share must be in (0, 1], got {self.top_share}")
        if self.propose < 0 or self.batch_size < 1 or self.batch_pixels < 1:
            raise ValueError(
                "labelling.propose must be >= 0, labelling.batch_size and labelling.batch_pixels "
                f">= 1, got {self.propose}, {self.batch_size} and {self.batch_pixels}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"labelling.precision must be one of {PRECISIONS}, got {self.precision!r}"
            )


def entropy(probs: Tensor, dim: int) -> Tensor:
    """Shannon entropy (nats) along ``dim``; 0 log 0 = 0."""
    return -(probs * torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))).sum(dim)


def pixel_scores(probs: Tensor, score: str) -> Tensor:
    """(K, B, C, H, W) probabilities of K networks -> (B, H, W) uncertainty per pixel."""
    if score not in SCORES:
        raise ValueError(f"score must be one of {SCORES}, got {score!r}")
    mean_entropy = entropy(probs.mean(0), dim=1)
    if score == "entropy":
        return mean_entropy
    if probs.shape[0] < 2:
        raise ValueError(
            "labelling.score 'disagreement' needs two networks or more; this model has one "
            "(use labelling.score: entropy)"
        )
    return (mean_entropy - entropy(probs, dim=2).mean(0)).clamp_min(0.0)


def image_scores(pixels: Tensor, top_share: float) -> Tensor:
    """(B, H, W) pixel scores -> (B,): the mean of each image's ``top_share`` highest pixels."""
    flat = pixels.flatten(1)
    if top_share >= 1.0:
        return flat.mean(1)
    count = max(1, math.ceil(top_share * flat.shape[1]))
    return flat.topk(count, dim=1).values.mean(1)


@dataclass
class Scored:
    """Scores of a pool of images, in the pool's order, and the best images' proposed masks."""

    scores: np.ndarray  # (N,) float
    class_shares: np.ndarray  # (N, C): share of each image's pixels predicted as each class
    proposals: dict[int, np.ndarray]  # pool index -> (H, W) uint8 mean prediction, best first
    score: str = "entropy"  # the score the images were ranked by

    def ranking(self) -> np.ndarray:
        """Pool indices from the highest score down; ties by pool order (stable)."""
        return np.argsort(-self.scores, kind="stable")


class _TopK:
    """The ``k`` highest-scored masks seen so far (a min-heap; ties keep the earlier image).

    A mask is computed (``make_mask()``) only for an image that enters the top ``k``.
    """

    def __init__(self, k: int) -> None:
        self.k, self.heap = k, []

    def offer(self, score: float, index: int, make_mask: Callable[[], np.ndarray]) -> None:
        key = (score, -index)
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, (key, index, make_mask()))
        elif self.k and key > self.heap[0][0]:
            heapq.heapreplace(self.heap, (key, index, make_mask()))

    def best_first(self) -> dict[int, np.ndarray]:
        return {index: mask for _, index, mask in sorted(self.heap, reverse=True)}


@dataclass
class PoolBatch:
    """Images of one size (uint8 (B, 3, H, W), resized for scoring), their pool indices (B,)
    and each image's size on disk (B, 2), which its proposed mask must have."""

    images: Tensor
    indices: Tensor
    sizes: Tensor


@torch.no_grad()
def score_batch(
    networks: Sequence[nn.Module], images: Tensor, settings: ScoreSettings
) -> tuple[Tensor, Tensor, Tensor]:
    """Normalised images (B, 3, H, W) -> image scores (B,), the networks' mean probabilities
    (B, C, H, W), class shares of their prediction (B, C)."""
    logits = torch.stack([predict_whole(net, images).float() for net in networks])
    probs = logits.softmax(dim=2)
    scores = image_scores(pixel_scores(probs, settings.score), settings.top_share)
    mean = probs.mean(0)
    batch, classes = mean.shape[:2]
    prediction = class_map(mean).flatten(1)
    rows = torch.arange(batch, device=prediction.device)[:, None] * classes
    counts = torch.bincount((rows + prediction).flatten(), minlength=batch * classes)
    return scores, mean, counts.reshape(batch, classes).float() / prediction.shape[1]


def proposed_mask(mean_probs: Tensor, size: tuple[int, int]) -> np.ndarray:
    """(C, H, W) mean probabilities -> uint8 (h, w) classes at the image's own size, resized
    as evaluation resizes logits (bilinear)."""
    probs = mean_probs[None]
    if tuple(probs.shape[-2:]) != size:
        probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
    return class_map(probs)[0].to(torch.uint8).cpu().numpy()


def score_pool(
    networks: Sequence[nn.Module],
    batches: Iterable[PoolBatch],
    total: int,
    num_classes: int,
    settings: ScoreSettings,
    device: torch.device,
    progress: Progress | None = None,
) -> Scored:
    """Score every image of a pool given in batches; keep the ``propose`` best images' masks."""
    if not networks:
        raise ValueError("scoring needs at least one trained network")
    amp_dtype = resolve_precision(settings.precision, device)
    for net in networks:
        net.to(device).eval()
    scores, scored = np.zeros(total), np.zeros(total, dtype=bool)
    shares = np.zeros((total, num_classes))
    best, done = _TopK(settings.propose), 0
    for batch in batches:
        x = normalize(to_unit_float(batch.images.to(device)))
        with autocast(device, amp_dtype):
            batch_scores, mean, batch_shares = score_batch(networks, x, settings)
        for row, index in enumerate(batch.indices.tolist()):
            scores[index], shares[index] = float(batch_scores[row]), batch_shares[row].cpu().numpy()
            scored[index] = True
            size = tuple(batch.sizes[row].tolist())
            best.offer(scores[index], index, partial(proposed_mask, mean[row], size))
        done += len(batch.indices)
        if progress is not None:
            progress(done, total)
    if not scored.all():
        raise ValueError(f"{int((~scored).sum())} of {total} pool images were not scored")
    if not np.isfinite(scores).all():
        raise ValueError(
            f"{int((~np.isfinite(scores)).sum())} pool images got a non-finite score (an overflow "
            f"in {settings.precision!r} precision?): set labelling.precision: fp32"
        )
    return Scored(scores, shares, best.best_first(), settings.score)


def same_size_batches(
    items: Iterable[tuple[Tensor, int, tuple[int, int]]], batch_size: int, batch_pixels: int
) -> Iterable[PoolBatch]:
    """Group consecutive (image (3, H, W), index, size on disk) items of one size into batches
    of up to ``batch_size`` images and ``batch_pixels`` pixels (at least one image): a pool of
    mixed sizes is scored without padding, and large images in small batches."""
    images: list[Tensor] = []
    indices: list[int] = []
    sizes: list[tuple[int, int]] = []

    def full(image: Tensor) -> bool:
        per_image = image.shape[-2] * image.shape[-1]
        return len(images) >= min(batch_size, max(1, batch_pixels // per_image))

    for image, index, size in items:
        if images and (image.shape != images[0].shape or full(images[0])):
            yield PoolBatch(torch.stack(images), torch.tensor(indices), torch.tensor(sizes))
            images, indices, sizes = [], [], []
        images.append(image)
        indices.append(int(index))
        sizes.append((int(size[0]), int(size[1])))
    if images:
        yield PoolBatch(torch.stack(images), torch.tensor(indices), torch.tensor(sizes))
