"""Cityscapes reader: ``leftImg8bit`` images with ``gtFine`` labelIds masks (spec §7).

The 34 label ids are mapped to the 19 standard train ids through a lookup-table mask
encoding; every other id (void, rare classes) becomes 255 = ignore, as in cityscapesScripts.
"""

from __future__ import annotations

from pathlib import Path

from mkdseg.core.image_io import IGNORE_INDEX, LUT_SIZE, MaskEncoding
from mkdseg.sources.validation import EXTRA, SUBSETS, ReaderResult, Sample

# (label id, name, colour) from cityscapesScripts' labels.py; the train id is the position.
CITYSCAPES_TRAIN_CLASSES = [
    (7, "road", (128, 64, 128)),
    (8, "sidewalk", (244, 35, 232)),
    (11, "building", (70, 70, 70)),
    (12, "wall", (102, 102, 156)),
    (13, "fence", (190, 153, 153)),
    (17, "pole", (153, 153, 153)),
    (19, "traffic light", (250, 170, 30)),
    (20, "traffic sign", (220, 220, 0)),
    (21, "vegetation", (107, 142, 35)),
    (22, "terrain", (152, 251, 152)),
    (23, "sky", (70, 130, 180)),
    (24, "person", (220, 20, 60)),
    (25, "rider", (255, 0, 0)),
    (26, "car", (0, 0, 142)),
    (27, "truck", (0, 0, 70)),
    (28, "bus", (0, 60, 100)),
    (31, "train", (0, 80, 100)),
    (32, "motorcycle", (0, 0, 230)),
    (33, "bicycle", (119, 11, 32)),
]
CITYSCAPES_CLASSES = [name for _, name, _ in CITYSCAPES_TRAIN_CLASSES]
CITYSCAPES_COLOURS = [list(colour) for _, _, colour in CITYSCAPES_TRAIN_CLASSES]
IMAGE_DIR = "leftImg8bit"
MASK_DIR = "gtFine"
IMAGE_SUFFIX = "_leftImg8bit.png"
MASK_SUFFIX = "_gtFine_labelIds.png"
EXTRA_SUBSET = "train_extra"  # 19,998 images with coarse masks only: unlabeled here

LAYOUT = (
    "Cityscapes layout expected under dataset.root: "
    "leftImg8bit/{train,val}/<city>/<name>_leftImg8bit.png and "
    "gtFine/{train,val}/<city>/<name>_gtFine_labelIds.png; with "
    "dataset.cityscapes.train_extra also leftImg8bit/train_extra/<city>/ (no masks needed)."
)


def cityscapes_lut() -> tuple[int, ...]:
    """label id -> train id (255 for every id that is not one of the 19 classes)."""
    lut = [IGNORE_INDEX] * LUT_SIZE
    for train_id, (label_id, _, _) in enumerate(CITYSCAPES_TRAIN_CLASSES):
        lut[label_id] = train_id
    return tuple(lut)


def cityscapes_encoding() -> MaskEncoding:
    return MaskEncoding(kind="lut", lut=cityscapes_lut())


def _extra_samples(root: Path) -> list[Sample]:
    """leftImg8bit/train_extra: unlabeled training images (their coarse masks are not read)."""
    folder = root / IMAGE_DIR / EXTRA_SUBSET
    if not folder.is_dir():
        raise FileNotFoundError(
            f"dataset.cityscapes.train_extra is true but {folder} does not exist: extract "
            "leftImg8bit_trainextra.zip into dataset.root, or set it to false. " + LAYOUT
        )
    return [
        Sample(
            f"{image.parent.name}/{image.name[: -len(IMAGE_SUFFIX)]}", "train", image, None, EXTRA
        )
        for image in sorted(folder.glob(f"*/*{IMAGE_SUFFIX}"))
    ]


def read_cityscapes(root: Path, train_extra: bool = False) -> ReaderResult:
    """List Cityscapes samples; id = ``<city>/<name>`` (names could repeat across cities).
    ``train_extra`` adds leftImg8bit/train_extra as unlabeled training images."""
    if not isinstance(train_extra, bool):
        raise ValueError(
            f"dataset.cityscapes.train_extra must be true or false, got {train_extra!r}"
        )
    root = Path(root)
    missing = [p for p in (root / IMAGE_DIR, root / MASK_DIR) if not p.is_dir()]
    if not root.is_dir() or missing:
        raise FileNotFoundError(
            f"dataset.root {root} is not a Cityscapes folder (missing: "
            f"{', '.join(str(p) for p in missing) or root}). {LAYOUT}"
        )
    samples = []
    for subset in SUBSETS:
        for image in sorted((root / IMAGE_DIR / subset).glob(f"*/*{IMAGE_SUFFIX}")):
            city, name = image.parent.name, image.name[: -len(IMAGE_SUFFIX)]
            mask = root / MASK_DIR / subset / city / f"{name}{MASK_SUFFIX}"
            samples.append(Sample(f"{city}/{name}", subset, image, mask))
    if train_extra:
        samples += _extra_samples(root)
    return ReaderResult(
        samples=samples,
        class_names=list(CITYSCAPES_CLASSES),
        colours=[list(c) for c in CITYSCAPES_COLOURS],
        encoding=cityscapes_encoding(),
    )
