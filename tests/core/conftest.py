"""Tiny on-disk datasets and configs for trainer tests (seconds on a 2-core CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from mkdseg.core.config import config_from_dict
from mkdseg.core.image_io import MaskEncoding, write_palette_mask
from mkdseg.core.trainer import TrainData

TINY_CLASSES = 3
TINY_SIZE = 32


def write_tiny_dataset(root: Path, count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Images with a bright square (class 1) and a dark disc (class 2) on noise: learnable in a
    few steps."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:TINY_SIZE, :TINY_SIZE]
    samples = []
    for i in range(count):
        image = rng.integers(90, 160, (TINY_SIZE, TINY_SIZE, 3)).astype(np.uint8)
        mask = np.zeros((TINY_SIZE, TINY_SIZE), np.uint8)
        x0, y0 = rng.integers(0, TINY_SIZE // 2, 2)
        mask[y0 : y0 + 12, x0 : x0 + 12] = 1
        cx, cy = rng.integers(8, TINY_SIZE - 8, 2)
        mask[(xx - cx) ** 2 + (yy - cy) ** 2 < 36] = 2
        image[mask == 1] = 230
        image[mask == 2] = 20
        Image.fromarray(image).save(root / f"{i}.png")
        write_palette_mask(mask, [[0, 0, 0], [255, 0, 0], [0, 255, 0]], root / f"{i}_mask.png")
        samples.append((str(root / f"{i}.png"), str(root / f"{i}_mask.png")))
    return samples


@pytest.fixture
def keep_torch_threads():
    """Restore torch's process-wide thread count after a test that sets ``training.threads``."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> TrainData:
    samples = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), 8)
    return TrainData(
        labeled=samples[:4],
        unlabeled=[s[0] for s in samples[4:]],
        mask_encoding=MaskEncoding(),
        num_classes=TINY_CLASSES,
    )


def tiny_config(method: str = "mkd", **overrides: object):
    params = {
        "method": method,
        "iterations": 3,
        "batch_size": 2,
        "unlabeled_batch_size": 2,
        "device": "cpu",
        "precision": "fp32",
        "num_workers": 0,
        "checkpoint_every": 2,
        "seed": 0,
        "model": {
            "backbone": "resnet18",
            "decoder_channels": 16,
            "aspp_channels": 16,
            "low_level_channels": 8,
        },
        "optim": {"lr": 0.01},
        "augment": {"crop_size": TINY_SIZE},
    }
    mkd = overrides.pop("mkd", {})
    params.update(overrides)
    params["mkd"] = mkd
    return config_from_dict(params)
