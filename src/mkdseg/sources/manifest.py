"""From the ``dataset:`` parameters to a validated manifest, class metadata and a quarantine.

This is the one entry point the ingestion pipeline calls: it picks the reader for
``dataset.source``, lists the samples, validates every one (see ``validation``) and returns
plain pandas/JSON data with no Kedro in sight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.progress import CountProgress
from mkdseg.sources import cityscapes, folder, synthetic, textures, voc
from mkdseg.sources.validation import (
    EXTRA,
    MASKED,
    NO_MASK,
    DatasetValidationError,
    ReaderResult,
    check_on_bad_sample,
    check_usable,
    pixel_columns,
    quarantine_frame,
    validate_samples,
)
from mkdseg.sources.validation_cache import ValidationCache, cache_file, identity

logger = logging.getLogger(__name__)

BASE_COLUMNS = ["id", "subset", "image_path", "mask_path", "origin", "height", "width"]
# Fewer validation images than this make mIoU swing by points with one image's result: the run
# says so (a warning), it does not stop.
FEW_VAL_IMAGES = 20
DEFAULT_SOURCE = "synthetic"
DEFAULT_ON_BAD_SAMPLE = "fail"
FOLDER_KEYS = {"classes", "mask_encoding", "val_fraction", "seed"}  # read_folder's options


def _read_synthetic(root: Path, params: dict) -> ReaderResult:
    return synthetic.read_synthetic(root, params.get("synthetic"))


def _read_textures(root: Path, params: dict) -> ReaderResult:
    return textures.TEXTURES.read(root, params.get("textures"))


def _read_voc(root: Path, params: dict) -> ReaderResult:
    if params.get("download", False) and not (voc.resolve_voc_root(root) / voc.IMAGE_DIR).is_dir():
        voc.download_voc(root)
    options = params.get("voc") or {}
    return voc.read_voc(
        root, options.get("augmented", "auto"), options.get("unlisted_unlabeled", False)
    )


def _read_cityscapes(root: Path, params: dict) -> ReaderResult:
    return cityscapes.read_cityscapes(
        root, (params.get("cityscapes") or {}).get("train_extra", False)
    )


def _read_folder(root: Path, params: dict) -> ReaderResult:
    options = dict(params.get("folder") or {})
    if "classes" not in options:
        raise ValueError("dataset.folder.classes is required for dataset.source: folder")
    unknown = sorted(set(options) - FOLDER_KEYS)
    if unknown:
        raise ValueError(f"dataset.folder has unknown keys {unknown}; known: {sorted(FOLDER_KEYS)}")
    return folder.read_folder(root, **options)


READERS: dict[str, tuple[Callable[[Path, dict], ReaderResult], str]] = {
    "synthetic": (_read_synthetic, "generated under dataset.root in the Pascal VOC layout"),
    "textures": (_read_textures, "generated under dataset.root in the Pascal VOC layout"),
    "voc": (_read_voc, voc.LAYOUT),
    "cityscapes": (_read_cityscapes, cityscapes.LAYOUT),
    "folder": (_read_folder, folder.LAYOUT),
}


def _resolve_root(dataset_params: dict, project_root: Path) -> Path:
    if not dataset_params.get("root"):
        raise ValueError("dataset.root is required: the folder holding (or receiving) the dataset")
    root = Path(dataset_params["root"]).expanduser()
    return (root if root.is_absolute() else Path(project_root) / root).resolve()


def _read(dataset_params: dict, root: Path) -> ReaderResult:
    source = dataset_params.get("source", DEFAULT_SOURCE)
    if source not in READERS:
        layouts = "; ".join(f"{name}: {layout}" for name, (_, layout) in READERS.items())
        raise ValueError(
            f"dataset.source must be one of {sorted(READERS)}, got {source!r}. {layouts}"
        )
    reader, layout = READERS[source]
    needs_existing = source == "folder" or source == "cityscapes"
    needs_existing |= source == "voc" and not dataset_params.get("download", False)
    if needs_existing and not root.is_dir():
        raise FileNotFoundError(
            f"dataset.root {root} does not exist (dataset.source {source!r}). {layout}"
        )
    return reader(root, dataset_params)


def class_metadata(result: ReaderResult, source: str, root: Path) -> dict:
    """JSON-able description of the classes and how masks encode them."""
    return {
        "names": list(result.class_names),
        "colours": [list(map(int, c)) for c in result.colours],
        "ignore_index": IGNORE_INDEX,
        "mask_encoding": result.encoding.to_dict(),
        "source": source,
        "root": root.as_posix(),
    }


def manifest_frame(rows: list[dict], class_names: list[str]) -> pd.DataFrame:
    """Rows -> the manifest table with fixed column order, sorted by subset then id."""
    columns = BASE_COLUMNS + pixel_columns(class_names)
    frame = pd.DataFrame(rows, columns=columns)
    int_columns = ["height", "width", *pixel_columns(class_names)]
    frame[int_columns] = frame[int_columns].astype("int64")
    return frame.sort_values(["subset", "id"], kind="stable").reset_index(drop=True)


def _cache_path(dataset_params: dict, project_root: Path, root: Path) -> Path | None:
    """This dataset's file in the ``dataset.validation_cache`` folder (None: no cache)."""
    value = dataset_params.get("validation_cache")
    if not value:
        return None
    folder = Path(value).expanduser()
    folder = folder if folder.is_absolute() else Path(project_root) / folder
    return cache_file(folder, dataset_params.get("source", DEFAULT_SOURCE), root)


def _validate(result: ReaderResult, cache_path: Path | None) -> tuple[list[dict], list]:
    """Validate with a progress bar, through the cache when there is one."""
    cache = (
        ValidationCache.load(cache_path, identity(result.class_names, result.encoding))
        if cache_path is not None
        else None
    )
    with CountProgress(len(result.samples), "validating images") as bar:
        rows, problems = validate_samples(result, cache=cache, progress=bar.update)
    if cache is not None:
        cache.save(cache_path)
        logger.info(
            "validation cache: %d samples unchanged since the last run, %d read",
            cache.hits,
            cache.reads,
        )
    return rows, problems


def log_counts(manifest: pd.DataFrame, source: str, n_quarantined: int) -> None:
    """Say what the run will learn from and evaluate on; warn when validation is tiny."""
    train = manifest[manifest["subset"] == "train"]
    origins = train["origin"].value_counts()
    n_val = int((manifest["subset"] == "val").sum())
    logger.info(
        "dataset %s: %d training images (%d with a mask, %d without, %d from an unlabeled "
        "pool), %d validation images (evaluated on), %d quarantined",
        source,
        len(train),
        int(origins.get(MASKED, 0)),
        int(origins.get(NO_MASK, 0)),
        int(origins.get(EXTRA, 0)),
        n_val,
        n_quarantined,
    )
    if n_val < FEW_VAL_IMAGES:
        logger.warning(
            "only %d validation images: the mIoU measured on them means little (one image "
            "moves it by points). Mask more images; with dataset.source folder, "
            "dataset.folder.val_fraction draws the validation share among the masked ones, "
            "or put them in images/val with their masks in masks/val.",
            n_val,
        )


def build_manifest(
    dataset_params: dict, project_root: Path
) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Read, validate and describe the dataset: (manifest, class_metadata, quarantine)."""
    on_bad = check_on_bad_sample(dataset_params.get("on_bad_sample", DEFAULT_ON_BAD_SAMPLE))
    source = dataset_params.get("source", DEFAULT_SOURCE)
    root = _resolve_root(dataset_params, project_root)
    result = _read(dataset_params, root)
    rows, problems = _validate(result, _cache_path(dataset_params, project_root, root))
    if problems and on_bad == "fail":
        raise DatasetValidationError(problems)
    for problem in problems:
        logger.warning("quarantined %s (%s): %s", problem.id, problem.path, problem.reason)
    check_usable(rows, source, len(problems))
    manifest = manifest_frame(rows, result.class_names)
    log_counts(manifest, source, len(problems))
    return manifest, class_metadata(result, source, root), quarantine_frame(problems)
