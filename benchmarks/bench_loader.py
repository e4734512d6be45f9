"""Data-loader throughput for ``bench.py``: random JPEGs and palette masks, larger than the
crop as real images are, decoded and cropped by the training loaders."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mkdseg.core.config import AugmentConfig
from mkdseg.core.data import LabeledDataset, UnlabeledDataset, make_train_loader
from mkdseg.core.image_io import MaskEncoding, write_palette_mask


def write_images(
    root: Path, count: int, size: int, classes: int
) -> tuple[list[tuple[str, str]], list[str]]:
    """Random JPEG images and palette masks, larger than the crop as real images are."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        image, mask = root / f"{i:04d}.jpg", root / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            image, quality=90
        )
        write_palette_mask(
            rng.integers(0, classes, (size, size)), [[i, i, i] for i in range(classes)], mask
        )
        samples.append((str(image), str(mask)))
    return samples, [s[0] for s in samples]


def bench_loader(preset: dict, workers: int, batches: int = 20) -> float:
    """Images/s the data loaders deliver (labeled + unlabeled), decoding and geometry included."""
    crop, b = preset["crop"], preset["batch"]
    with tempfile.TemporaryDirectory() as tmp:
        samples, images = write_images(Path(tmp), 32, int(crop * 1.25), preset["classes"])
        geometry = AugmentConfig(crop_size=crop).geometry  # the spec's rescale and flip
        args = {
            "batch_size": b,
            "start_iteration": 0,
            "total_iterations": batches,
            "num_workers": workers,
        }
        lab = make_train_loader(LabeledDataset(samples, MaskEncoding(), geometry), seed=0, **args)
        unl = make_train_loader(UnlabeledDataset(images, geometry), seed=1, **args)
        it = zip(lab, unl, strict=False)
        next(it)  # worker start-up is not throughput
        start = time.perf_counter()
        n = sum(1 for _ in it)
        return n * 2 * b / (time.perf_counter() - start)
