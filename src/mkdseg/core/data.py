"""Datasets and loaders (spec §2, shared geometry only).

Photometric, strong and CutMix augmentation run batched on the device elsewhere; the loaders
here only decode files and apply the shared geometry (rescale, crop, flip): uint8 tensors.
The training datasets are indexed by ``(index, aug_seed)`` from ``sampling.IterationSampler``
and draw all their randomness from ``np.random.default_rng(aug_seed)``, so a resumed run sees
exactly the batches an uninterrupted one sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from mkdseg.core.image_io import IGNORE_INDEX, MaskEncoding, read_image, read_mask
from mkdseg.core.runtime import BYTES_PER_MB
from mkdseg.core.sampling import IterationSampler, SampleRef

IMAGE_PAD_VALUE = 0  # spec §2: pad image with 0 ...
MASK_PAD_VALUE = IGNORE_INDEX  # ... and mask with 255


@dataclass(frozen=True)
class Geometry:
    """The shared random geometry (spec §2); ``AugmentConfig.geometry`` holds the values."""

    crop_size: int
    base_size: int | None  # None: rescale relative to each image's own size
    scale_range: tuple[float, float]  # random rescale ratio of the base size
    hflip_prob: float

    def __post_init__(self) -> None:
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be >= 1, got {self.crop_size}")
        if self.base_size is not None and self.base_size < 1:
            raise ValueError(f"base_size must be >= 1 or None, got {self.base_size}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        if not 0.0 <= self.hflip_prob <= 1.0:
            raise ValueError(f"hflip_prob must be in [0, 1], got {self.hflip_prob}")

    def apply(
        self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rescale (bilinear image, nearest mask), pad, crop, flip. Draw order is fixed."""
        height, width = mask.shape
        ratio = rng.uniform(*self.scale_range)
        reference = max(height, width) if self.base_size is None else self.base_size
        scale = reference * ratio / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if size != (width, height):  # PIL's resize to the image's own size is a plain copy
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
        image, mask = _pad_to(image, mask, self.crop_size)
        top = int(rng.integers(0, mask.shape[0] - self.crop_size + 1))
        left = int(rng.integers(0, mask.shape[1] - self.crop_size + 1))
        window = np.s_[top : top + self.crop_size, left : left + self.crop_size]
        image, mask = image[window], mask[window]
        if rng.random() < self.hflip_prob:
            image, mask = image[:, ::-1], mask[:, ::-1]
        return image, mask


def _pad_to(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right up to ``size`` (image 0, mask 255), as mmseg pads after cropping."""
    pad_h, pad_w = max(size - mask.shape[0], 0), max(size - mask.shape[1], 0)
    if pad_h == 0 and pad_w == 0:
        return image, mask
    image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=IMAGE_PAD_VALUE)
    mask = np.pad(mask, ((0, pad_h), (0, pad_w)), constant_values=MASK_PAD_VALUE)
    return image, mask


def _to_chw(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _read_pair(
    image_path: str, mask_path: str, encoding: MaskEncoding
) -> tuple[np.ndarray, np.ndarray]:
    image, mask = read_image(image_path), read_mask(mask_path, encoding)
    if image.shape[:2] != mask.shape:
        raise ValueError(
            f"image {image_path} is {image.shape[1]}x{image.shape[0]} but mask {mask_path} is "
            f"{mask.shape[1]}x{mask.shape[0]}: image and mask must have the same size"
        )
    return image, mask


class DecodedCache:
    """Decoded images (and masks) kept in memory up to ``limit_mb`` per process (0: off): a small
    training set is decoded once instead of at every step. Arrays are read-only: the geometry
    makes new ones."""

    def __init__(self, limit_mb: float = 0.0) -> None:
        if limit_mb < 0:
            raise ValueError(f"training.loader_cache_mb must be >= 0, got {limit_mb}")
        self.limit, self.used = limit_mb * BYTES_PER_MB, 0
        self.items: dict[int, tuple[np.ndarray, ...]] = {}

    def get(self, key: int, read: Callable[[], tuple[np.ndarray, ...]]) -> tuple[np.ndarray, ...]:
        if (hit := self.items.get(key)) is not None:
            return hit
        arrays = read()
        size = sum(a.nbytes for a in arrays)
        if self.used + size <= self.limit:
            for a in arrays:
                a.setflags(write=False)
            self.items[key], self.used = arrays, self.used + size
        return arrays


class LabeledDataset(Dataset):
    """Image/mask pairs with the shared geometry; indexed by ``(index, aug_seed)``."""

    def __init__(
        self,
        samples: Sequence[tuple[str, str]],
        mask_encoding: MaskEncoding,
        geometry: Geometry,
        cache_mb: float = 0.0,
    ) -> None:
        self.samples = [(str(i), str(m)) for i, m in samples]
        self.mask_encoding = mask_encoding
        self.geometry = geometry
        self.cache = DecodedCache(cache_mb)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, ref: SampleRef) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = ref
        image, mask = self.cache.get(
            index, lambda: _read_pair(*self.samples[index], self.mask_encoding)
        )
        image, mask = self.geometry.apply(image, mask, np.random.default_rng(seed))
        return _to_chw(image), torch.from_numpy(mask.astype(np.int64))


class UnlabeledDataset(Dataset):
    """Images with the shared geometry; also returns which pixels are real (not padding)."""

    def __init__(self, samples: Sequence[str], geometry: Geometry, cache_mb: float = 0.0) -> None:
        self.samples = [str(s) for s in samples]
        self.geometry = geometry
        self.cache = DecodedCache(cache_mb)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, ref: SampleRef) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = ref
        (image,) = self.cache.get(index, lambda: (read_image(self.samples[index]),))
        marker = np.zeros(image.shape[:2], dtype=np.uint8)  # padding turns it into 255
        image, marker = self.geometry.apply(image, marker, np.random.default_rng(seed))
        return _to_chw(image), torch.from_numpy(marker != MASK_PAD_VALUE)


def check_long_side(long_side: int | None) -> None:
    if long_side is not None and long_side < 1:
        raise ValueError(f"long_side must be >= 1 or None, got {long_side}")


def resize_long_side(image: np.ndarray, long_side: int | None) -> np.ndarray:
    """A uint8 RGB image resized (bilinear) so its long side is ``long_side``; None: as is."""
    if long_side is None:
        return image
    height, width = image.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


class EvalDataset(Dataset):
    """Evaluation images resized so the long side is ``long_side``, masks at original size.

    Sizes differ between images, so evaluation uses batch size 1 with ``eval_collate``.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, str]],
        mask_encoding: MaskEncoding,
        long_side: int | None,
    ) -> None:
        check_long_side(long_side)
        self.samples = [(str(i), str(m)) for i, m in samples]
        self.mask_encoding = mask_encoding
        self.long_side = long_side

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        image, mask = _read_pair(*self.samples[index], self.mask_encoding)
        image = resize_long_side(image, self.long_side)
        return _to_chw(image), torch.from_numpy(mask.astype(np.int64)), index


class ImagePoolDataset(Dataset):
    """Images without masks (the unlabeled pool to score), resized so the long side is
    ``long_side``; items are (uint8 (3, H, W), index, (height, width) on disk)."""

    def __init__(self, paths: Sequence[str], long_side: int | None) -> None:
        check_long_side(long_side)
        self.paths, self.long_side = [str(p) for p in paths], long_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, tuple[int, int]]:
        image = read_image(self.paths[index])
        size = (image.shape[0], image.shape[1])
        return _to_chw(resize_long_side(image, self.long_side)), index, size


def eval_collate(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack eval samples; sizes usually differ, so use it with batch size 1."""
    images, masks, indices = zip(*batch, strict=True)
    if len({tuple(i.shape) for i in images}) > 1 or len({tuple(m.shape) for m in masks}) > 1:
        raise ValueError("evaluation images differ in size: use an eval DataLoader batch_size of 1")
    return torch.stack(images), torch.stack(masks), torch.tensor(indices, dtype=torch.int64)


def make_eval_loader(dataset: EvalDataset, num_workers: int = 0) -> DataLoader:
    """Batch size 1, in order: every image is evaluated once at its own size."""
    return DataLoader(
        dataset,
        batch_size=1,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=eval_collate,
        persistent_workers=num_workers > 0,
    )


def make_train_loader(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    start_iteration: int,
    total_iterations: int | None,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    pin_memory: bool = False,
) -> DataLoader:
    """A loader yielding one batch per iteration from ``start_iteration`` on (exact resume)."""
    if num_workers < 0:
        raise ValueError(f"num_workers must be >= 0, got {num_workers}")
    sampler = IterationSampler(
        len(dataset), batch_size, seed, start_iteration, total_iterations, rank, world_size
    )
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )
