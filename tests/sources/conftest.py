"""Fixtures that write tiny datasets in the real on-disk formats into tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mkdseg.core.image_io import IGNORE_INDEX, write_palette_mask
from mkdseg.sources.voc import voc_colour_map

HEIGHT, WIDTH = 12, 16  # non-square on purpose: catches height/width swaps
VOC_TRAIN = ["2007_000001", "2007_000002", "2007_000003", "2007_000004"]
VOC_VAL = ["2008_000001", "2008_000002"]


def label_map(seed: int, n_classes: int, shape: tuple[int, int] = (HEIGHT, WIDTH)) -> np.ndarray:
    """Blocky class map with a 255 outline around a box, like VOC's boundaries."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    top, left = int(rng.integers(0, 3)), int(rng.integers(0, 4))
    labels[top + 2 : top + 8, left + 2 : left + 10] = int(rng.integers(1, n_classes))
    labels[top + 1, left + 1 : left + 11] = IGNORE_INDEX
    return labels


def write_rgb(path: Path, seed: int, shape: tuple[int, int] = (HEIGHT, WIDTH)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def write_voc(
    root: Path, train: list[str] = VOC_TRAIN, val: list[str] = VOC_VAL, aug: bool = False
) -> Path:
    """JPEGImages/*.jpg, SegmentationClass/*.png (palette), ImageSets lists; optional Aug set."""
    colours = voc_colour_map(21)
    for i, name in enumerate(train + val):
        write_rgb(root / "JPEGImages" / f"{name}.jpg", i)
        write_palette_mask(label_map(i, 21), colours, root / "SegmentationClass" / f"{name}.png")
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "train.txt").write_text("".join(f"{n}\n" for n in train))
    (lists / "val.txt").write_text("".join(f"{n}\n" for n in val))
    if aug:
        aug_dir = root / "SegmentationClassAug"
        aug_dir.mkdir()
        for i, name in enumerate(train + val):  # grayscale, as SBD conversions ship it
            labels = np.where(label_map(i, 21) == IGNORE_INDEX, 0, label_map(i, 21)).astype(
                np.uint8
            )
            Image.fromarray(labels).save(aug_dir / f"{name}.png")
    return root


def write_cityscapes(root: Path) -> Path:
    """leftImg8bit/{train,val}/<city>/*_leftImg8bit.png and gtFine *_gtFine_labelIds.png."""
    layout = {
        "train": [("aachen", "aachen_000000_000019"), ("bochum", "bochum_000000_000313")],
        "val": [("frankfurt", "frankfurt_000000_000294")],
    }
    for i, (subset, items) in enumerate(layout.items()):
        for j, (city, name) in enumerate(items):
            write_rgb(root / "leftImg8bit" / subset / city / f"{name}_leftImg8bit.png", 10 * i + j)
            ids = np.full((HEIGHT, WIDTH), 7, np.uint8)  # road
            ids[:4] = 23  # sky
            ids[4:6, :5] = 26  # car
            ids[6:8, :3] = 0  # unlabeled -> ignore
            ids[8:, :2] = 5  # dynamic -> ignore
            mask = root / "gtFine" / subset / city / f"{name}_gtFine_labelIds.png"
            mask.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ids).save(mask)
    return root


FOLDER_CLASSES = [
    {"name": "background", "colour": [0, 0, 0]},
    {"name": "leaf", "colour": [0, 200, 0]},
    {"name": "rust", "colour": [200, 80, 0]},
]


def write_folder(root: Path, n: int = 10, rgb: bool = False, split_dirs: bool = False) -> Path:
    """images/<stem>.png + masks/<stem>.png (class ids or class colours)."""
    colours = np.array([c["colour"] for c in FOLDER_CLASSES], np.uint8)
    for i in range(n):
        sub = ("val" if i % 4 == 0 else "train") if split_dirs else ""
        labels = label_map(i, len(FOLDER_CLASSES))
        labels[labels == IGNORE_INDEX] = 0
        write_rgb(root / "images" / sub / f"img{i:02d}.png", i)
        mask_path = root / "masks" / sub / f"img{i:02d}.png"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(colours[labels] if rgb else labels).save(mask_path)
    return root


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    return write_voc(tmp_path / "voc")


@pytest.fixture
def voc_aug_root(tmp_path: Path) -> Path:
    return write_voc(tmp_path / "voc_aug", aug=True)


@pytest.fixture
def cityscapes_root(tmp_path: Path) -> Path:
    return write_cityscapes(tmp_path / "cityscapes")


@pytest.fixture
def folder_root(tmp_path: Path) -> Path:
    return write_folder(tmp_path / "folder")
