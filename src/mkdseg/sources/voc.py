"""Pascal VOC 2012 reader (also reads the synthetic set, which is written in VOC's layout).

Layout: ``JPEGImages/<id>.jpg``, ``SegmentationClass/<id>.png`` (palette PNG, 255 on
boundaries), ``ImageSets/Segmentation/{train,val}.txt``. The augmented ("blender") set adds
``SegmentationClassAug/<id>.png`` (grayscale) with a ``train_aug.txt`` list; when used, train
samples take their masks from there (spec §7). With ``unlisted_unlabeled`` every
``JPEGImages`` image named in no segmentation list (train, val, train_aug; about 5,000 of
VOC 2012's 17,125 with the augmented set) joins the training set as an unlabeled image.
"""

from __future__ import annotations

from pathlib import Path

from mkdseg.core.image_io import MaskEncoding
from mkdseg.sources.validation import EXTRA, ReaderResult, Sample

VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
]  # fmt: skip
VOC_YEAR = "2012"
VOC_DOWNLOAD_SUBDIR = Path("VOCdevkit") / "VOC2012"  # where torchvision extracts the archive
IMAGE_DIR = "JPEGImages"
MASK_DIR = "SegmentationClass"
AUG_MASK_DIR = "SegmentationClassAug"
LIST_DIR = Path("ImageSets") / "Segmentation"
AUG_TRAIN_LIST = "train_aug.txt"
IMAGE_SUFFIX = ".jpg"
MASK_SUFFIX = ".png"
AUGMENTED_CHOICES = (True, False, "auto")
COLOUR_MAP_BITS = 8  # the VOC devkit's colour map spreads the index bits over 8 levels

LAYOUT = (
    "Pascal VOC layout expected under dataset.root: JPEGImages/<id>.jpg, "
    "SegmentationClass/<id>.png (palette PNG), ImageSets/Segmentation/train.txt and val.txt "
    "(optionally SegmentationClassAug/<id>.png + ImageSets/Segmentation/train_aug.txt); "
    "the folder VOCdevkit/VOC2012 inside dataset.root is also accepted."
)


def voc_colour_map(n: int) -> list[list[int]]:
    """The standard VOC devkit colour map (bit-interleaved index -> RGB)."""
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for j in range(COLOUR_MAP_BITS):
            shift = COLOUR_MAP_BITS - 1 - j
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append([r, g, b])
    return colours


def read_id_list(path: Path) -> list[str]:
    """Ids from a list file: the first token of each non-empty line, reduced to its stem."""
    ids = []
    for line in path.read_text(encoding="utf-8").splitlines():
        tokens = line.split()
        if tokens:
            ids.append(Path(tokens[0]).stem if "/" in tokens[0] else tokens[0])
    return ids


def resolve_voc_root(root: Path) -> Path:
    """Accept both the VOC2012 folder itself and a folder holding VOCdevkit/VOC2012."""
    nested = root / VOC_DOWNLOAD_SUBDIR
    if not (root / IMAGE_DIR).is_dir() and (nested / IMAGE_DIR).is_dir():
        return nested
    return root


def download_voc(root: Path) -> None:
    """Fetch VOC 2012 trainval through torchvision (needs internet; torch imported lazily)."""
    try:
        from torchvision.datasets import VOCSegmentation

        VOCSegmentation(str(root), year=VOC_YEAR, image_set="trainval", download=True)
    except Exception as exc:  # noqa: BLE001 - network, checksum or archive errors alike
        raise RuntimeError(
            f"downloading Pascal VOC {VOC_YEAR} into {root} failed ({type(exc).__name__}: {exc}). "
            "Place the data by hand instead: extract VOCtrainval_11-May-2012.tar so that "
            f"{root / VOC_DOWNLOAD_SUBDIR} exists (or point dataset.root at the VOC2012 folder), "
            "then set `dataset.download: false`."
        ) from exc


def _use_augmented(root: Path, augmented: bool | str) -> bool:
    if augmented not in AUGMENTED_CHOICES:
        raise ValueError(f"dataset.voc.augmented must be true, false or auto, got {augmented!r}")
    present = (root / AUG_MASK_DIR).is_dir()
    if augmented is True and not present:
        raise FileNotFoundError(
            f"dataset.voc.augmented is true but {root / AUG_MASK_DIR} does not exist. {LAYOUT}"
        )
    return present if augmented == "auto" else bool(augmented)


def _check_layout(root: Path) -> None:
    if not root.is_dir():
        raise FileNotFoundError(f"dataset.root {root} does not exist. {LAYOUT}")
    needed = [root / IMAGE_DIR, root / LIST_DIR / "train.txt", root / LIST_DIR / "val.txt"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise FileNotFoundError(f"dataset.root {root} lacks {', '.join(missing)}. {LAYOUT}")


def _augmented_train_ids(root: Path, val_ids: list[str]) -> list[str]:
    """train_aug.txt when present, else every SegmentationClassAug mask that is not a val id."""
    list_file = root / LIST_DIR / AUG_TRAIN_LIST
    if list_file.is_file():
        return read_id_list(list_file)
    val = set(val_ids)
    stems = sorted(p.stem for p in (root / AUG_MASK_DIR).glob(f"*{MASK_SUFFIX}"))
    return [s for s in stems if s not in val]


def _unlisted_samples(root: Path, listed: set[str]) -> list[Sample]:
    """JPEGImages in no segmentation list: unlabeled training images (no mask is read)."""
    images = sorted((root / IMAGE_DIR).glob(f"*{IMAGE_SUFFIX}"))
    return [Sample(p.stem, "train", p, None, EXTRA) for p in images if p.stem not in listed]


def _listed_ids(root: Path) -> set[str]:
    """Every id any segmentation list (or augmented mask) names: those are not unlabeled."""
    listed = set()
    for list_file in (root / LIST_DIR).glob("*.txt"):
        listed.update(read_id_list(list_file))
    if (root / AUG_MASK_DIR).is_dir():
        listed.update(p.stem for p in (root / AUG_MASK_DIR).glob(f"*{MASK_SUFFIX}"))
    return listed


def read_voc(
    root: Path, augmented: bool | str = "auto", unlisted_unlabeled: bool = False
) -> ReaderResult:
    """List VOC samples (train from the augmented masks when asked/available), plus the
    images in no list as unlabeled ones when ``unlisted_unlabeled``."""
    if not isinstance(unlisted_unlabeled, bool):
        raise ValueError(
            f"dataset.voc.unlisted_unlabeled must be true or false, got {unlisted_unlabeled!r}"
        )
    root = resolve_voc_root(Path(root))
    _check_layout(root)
    val_ids = read_id_list(root / LIST_DIR / "val.txt")
    if _use_augmented(root, augmented):
        train_ids, train_masks = _augmented_train_ids(root, val_ids), root / AUG_MASK_DIR
    else:
        train_ids, train_masks = read_id_list(root / LIST_DIR / "train.txt"), root / MASK_DIR
    samples = [
        Sample(i, subset, root / IMAGE_DIR / f"{i}{IMAGE_SUFFIX}", masks / f"{i}{MASK_SUFFIX}")
        for subset, ids, masks in (
            ("train", train_ids, train_masks),
            ("val", val_ids, root / MASK_DIR),
        )
        for i in ids
    ]
    if unlisted_unlabeled:
        samples += _unlisted_samples(root, _listed_ids(root))
    return ReaderResult(
        samples=samples,
        class_names=list(VOC_CLASSES),
        colours=voc_colour_map(len(VOC_CLASSES)),
        encoding=MaskEncoding(kind="index"),
    )
