"""A plain folder of images and masks, for users' own data.

Layout: ``images/<stem>.{jpg,png}`` + ``masks/<stem>.png``, or ``images/{train,val}/`` with
``masks/{train,val}/`` (falling back to ``masks/<stem>.png``). Classes and colours come from
the parameters; masks hold class ids (``index``) or class colours (``rgb``). Without
train/val subfolders a seeded ``val_fraction`` of the ids becomes the validation set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mkdseg.core.image_io import IGNORE_INDEX, MaskEncoding
from mkdseg.sources.validation import SUBSETS, ReaderResult, Sample

IMAGE_DIR = "images"
MASK_DIR = "masks"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIX = ".png"
MASK_ENCODINGS = ("index", "rgb")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_SEED = 0
RGB_CHANNELS = 3
COLOUR_MAX = 255

LAYOUT = (
    "folder layout expected under dataset.root: images/<stem>.jpg|png with masks/<stem>.png "
    "(or images/{train,val}/ with masks/{train,val}/); classes from dataset.folder.classes."
)


def parse_classes(classes: object) -> tuple[list[str], list[list[int]]]:
    """Check ``dataset.folder.classes`` (a list of {name, colour}) and split it."""
    if not isinstance(classes, list) or not classes:
        raise ValueError(
            "dataset.folder.classes must be a non-empty list of {name: ..., colour: [r, g, b]}"
        )
    names, colours = [], []
    for i, entry in enumerate(classes):
        colour = entry.get("colour") if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        ok_colour = (
            isinstance(colour, list | tuple)
            and len(colour) == RGB_CHANNELS
            and all(isinstance(v, int) and 0 <= v <= COLOUR_MAX for v in colour)
        )
        if not name or not ok_colour:
            raise ValueError(
                f"dataset.folder.classes[{i}] must be "
                "{name: <text>, colour: [r, g, b] in 0..255}, "
                f"got {entry!r}"
            )
        names.append(str(name))
        colours.append([int(v) for v in colour])
    if len(set(names)) != len(names):
        raise ValueError(f"dataset.folder.classes has repeated names: {names}")
    if len(names) >= IGNORE_INDEX:
        raise ValueError(f"dataset.folder.classes allows at most {IGNORE_INDEX} classes")
    return names, colours


def _encoding(kind: str, colours: list[list[int]]) -> MaskEncoding:
    if kind not in MASK_ENCODINGS:
        raise ValueError(f"dataset.folder.mask_encoding must be index or rgb, got {kind!r}")
    if kind == "rgb":
        return MaskEncoding(kind="rgb", colours=tuple(tuple(c) for c in colours))
    return MaskEncoding(kind="index")


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _val_ids(ids: list[str], val_fraction: float, seed: int) -> set[str]:
    """A seeded share of the distinct ids (at least one, never all) for validation."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"dataset.folder.val_fraction must be in (0, 1), got {val_fraction!r}")
    distinct = sorted(set(ids))
    if len(distinct) < len(SUBSETS):
        return set()  # too few images for two subsets: validation reports the empty subset
    n_val = min(max(1, round(val_fraction * len(distinct))), len(distinct) - 1)
    order = np.random.default_rng(seed).permutation(len(distinct))
    return {distinct[i] for i in order[:n_val]}


def _split_samples(root: Path) -> list[Sample]:
    samples = []
    for subset in SUBSETS:
        for image in _images(root / IMAGE_DIR / subset):
            mask = root / MASK_DIR / subset / f"{image.stem}{MASK_SUFFIX}"
            if not mask.is_file():
                mask = root / MASK_DIR / f"{image.stem}{MASK_SUFFIX}"
            samples.append(Sample(image.stem, subset, image, mask))
    return samples


def read_folder(
    root: Path,
    classes: object,
    mask_encoding: str = "index",
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = DEFAULT_SEED,
) -> ReaderResult:
    """List samples of an images/ + masks/ folder."""
    root = Path(root)
    names, colours = parse_classes(classes)
    encoding = _encoding(mask_encoding, colours)
    if not (root / IMAGE_DIR).is_dir():
        raise FileNotFoundError(f"dataset.root {root} has no {IMAGE_DIR}/ folder. {LAYOUT}")
    if all((root / IMAGE_DIR / s).is_dir() for s in SUBSETS):
        samples = _split_samples(root)
    else:
        images = _images(root / IMAGE_DIR)
        val = _val_ids([p.stem for p in images], val_fraction, seed)
        samples = [
            Sample(
                p.stem,
                "val" if p.stem in val else "train",
                p,
                root / MASK_DIR / f"{p.stem}{MASK_SUFFIX}",
            )
            for p in images
        ]
    return ReaderResult(samples=samples, class_names=names, colours=colours, encoding=encoding)
