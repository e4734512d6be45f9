"""A plain folder of images, masks for some of them, for users' own data.

Layout: ``images/<stem>.{jpg,png}`` + ``masks/<stem>.png``, or ``images/{train,val}/`` with
``masks/{train,val}/`` (falling back to ``masks/<stem>.png``). A training image with a mask
is labeled material; one without a mask is an unlabeled image (origin ``no_mask``). An
optional ``unlabeled/`` folder (images only, nested folders allowed, e.g. video frames) adds
more unlabeled images (origin ``extra``, id ``unlabeled/<relative path without suffix>``).
Validation images need masks: in ``images/val`` a missing mask is a problem naming the image;
without train/val subfolders a seeded ``val_fraction`` of the *masked* images is validation.
A mask without an image is a problem too. Classes and colours come from the parameters;
masks hold class ids (``index``) or class colours (``rgb``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mkdseg.core.image_io import IGNORE_INDEX, MaskEncoding
from mkdseg.sources.validation import (
    EXTRA,
    MASKED,
    NO_MASK,
    SUBSETS,
    Problem,
    ReaderResult,
    Sample,
)

IMAGE_DIR = "images"
MASK_DIR = "masks"
UNLABELED_DIR = "unlabeled"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIX = ".png"
MASK_ENCODINGS = ("index", "rgb")
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_SEED = 0
RGB_CHANNELS = 3
COLOUR_MAX = 255

LAYOUT = (
    "folder layout expected under dataset.root: images/<stem>.jpg|png, masks/<stem>.png for "
    "the images you labeled (or images/{train,val}/ with masks/{train,val}/; every val image "
    "needs a mask), optionally unlabeled/**/*.jpg|png; classes from dataset.folder.classes."
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
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _rank(seed: int, sample_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()


def _val_ids(ids: list[str], val_fraction: float, seed: int) -> set[str]:
    """A seeded share of the distinct ids (at least one, never all) for validation.

    The ids ranked first by a seeded hash of their own name: masking one more image moves at
    most one image in or out of validation, instead of drawing a new validation set.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"dataset.folder.val_fraction must be in (0, 1), got {val_fraction!r}")
    distinct = sorted(set(ids))
    if len(distinct) < len(SUBSETS):
        return set()  # too few images for two subsets: validation reports the empty subset
    n_val = min(max(1, round(val_fraction * len(distinct))), len(distinct) - 1)
    return set(sorted(distinct, key=lambda i: _rank(seed, i))[:n_val])


def _mask_index(root: Path) -> tuple[dict[tuple[str, str], Path], list[Problem]]:
    """Every PNG under masks/ by (subfolder or "", stem), any case of ``.png``; a file of
    another kind there is a problem (a mask saved as JPEG would otherwise be ignored)."""
    index: dict[tuple[str, str], Path] = {}
    problems = []
    folder = root / MASK_DIR
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    for path in files:
        if path.name.startswith("."):
            continue  # .DS_Store and the like
        sub = path.parent.relative_to(folder).as_posix()
        if path.suffix.lower() == MASK_SUFFIX:
            index[("" if sub == "." else sub, path.stem)] = path
        else:
            problems.append(
                _problem(path, f"masks must be PNG files ({MASK_SUFFIX}): convert or remove it")
            )
    return index, problems


def _problem(path: Path, reason: str) -> Problem:
    subset = path.parent.name if path.parent.name in SUBSETS else "train"
    return Problem(path.stem, subset, path.resolve().as_posix(), reason)


def _mask_for(masks: dict, image: Path, subset: str | None) -> Path | None:
    """The image's mask: masks/<subset>/<stem>.png, else masks/<stem>.png; None if neither."""
    return (masks.get((subset, image.stem)) if subset else None) or masks.get(("", image.stem))


def _split_samples(root: Path, masks: dict) -> list[Sample]:
    """images/{train,val}: a train image without a mask is unlabeled; a val one is a problem
    (validation names the mask it looked for)."""
    samples = []
    for subset in SUBSETS:
        for image in _images(root / IMAGE_DIR / subset):
            mask = _mask_for(masks, image, subset)
            if mask is None and subset == "train":
                samples.append(Sample(image.stem, subset, image, None, NO_MASK))
            else:
                expected = root / MASK_DIR / subset / f"{image.stem}{MASK_SUFFIX}"
                samples.append(Sample(image.stem, subset, image, mask or expected, MASKED))
    return samples


def _flat_samples(root: Path, masks: dict, val_fraction: float, seed: int) -> list[Sample]:
    """images/: the validation share is drawn among the masked images only."""
    found = {p: _mask_for(masks, p, None) for p in _images(root / IMAGE_DIR)}
    val = _val_ids([p.stem for p, m in found.items() if m is not None], val_fraction, seed)
    return [
        Sample(p.stem, "val" if p.stem in val else "train", p, m, MASKED)
        if m is not None
        else Sample(p.stem, "train", p, None, NO_MASK)
        for p, m in found.items()
    ]


def _extra_samples(root: Path) -> list[Sample]:
    """unlabeled/**: images only, at any depth; the id keeps the relative path."""
    folder = root / UNLABELED_DIR
    if not folder.is_dir():
        return []
    images = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    return [
        Sample(p.relative_to(root).with_suffix("").as_posix(), "train", p, None, EXTRA)
        for p in images
    ]


def _orphan_masks(masks: dict, samples: list[Sample]) -> list[Problem]:
    """Masks that belong to no image: a typo in a name, or an image that was deleted."""
    used = {s.mask_path for s in samples if s.mask_path is not None}
    stems = {s.id for s in samples if s.origin != EXTRA}
    return [
        _problem(
            mask,
            f"mask has no image: add {IMAGE_DIR}/.../{stem}.jpg|png or remove the mask "
            f"(images in {UNLABELED_DIR}/ never have masks)",
        )
        for (sub, stem), mask in sorted(masks.items())
        if mask not in used and not (sub == "" and stem in stems)
    ]


def _loose_images(root: Path) -> list[Problem]:
    """With images/{train,val}, an image directly in images/ would be silently left out."""
    return [
        _problem(p, f"image outside {IMAGE_DIR}/train and {IMAGE_DIR}/val is not read: move it")
        for p in _images(root / IMAGE_DIR)
    ]


def _samples(
    root: Path, masks: dict, val_fraction: float, seed: int
) -> tuple[list[Sample], list[Problem]]:
    """The layout's samples: images/{train,val}, or images/ with a drawn validation share."""
    present = [s for s in SUBSETS if (root / IMAGE_DIR / s).is_dir()]
    if len(present) == len(SUBSETS):
        return _split_samples(root, masks), _loose_images(root)
    if present:
        missing = (set(SUBSETS) - set(present)).pop()
        raise FileNotFoundError(
            f"dataset.root {root} has {IMAGE_DIR}/{present[0]} but no {IMAGE_DIR}/{missing}: "
            f"use both (every {IMAGE_DIR}/val image needs its mask in {MASK_DIR}/val) or neither "
            f"(then dataset.folder.val_fraction of the masked images is validation). {LAYOUT}"
        )
    return _flat_samples(root, masks, val_fraction, seed), []


def read_folder(
    root: Path,
    classes: object,
    mask_encoding: str = "index",
    val_fraction: float = DEFAULT_VAL_FRACTION,
    seed: int = DEFAULT_SEED,
) -> ReaderResult:
    """List samples of an images/ (+ masks/ for some, + unlabeled/) folder."""
    root = Path(root)
    names, colours = parse_classes(classes)
    encoding = _encoding(mask_encoding, colours)
    if not (root / IMAGE_DIR).is_dir():
        raise FileNotFoundError(f"dataset.root {root} has no {IMAGE_DIR}/ folder. {LAYOUT}")
    masks, problems = _mask_index(root)
    samples, loose = _samples(root, masks, val_fraction, seed)
    problems += loose + _orphan_masks(masks, samples)
    return ReaderResult(
        samples=samples + _extra_samples(root),
        class_names=names,
        colours=colours,
        encoding=encoding,
        problems=problems,
    )
