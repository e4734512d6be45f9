"""Checking every sample of a dataset once, before anything trains on it.

Readers only *list* candidate samples (id, subset, image path, mask path); this module
opens every file, decodes it for real (a truncated JPEG only fails on decode), checks the
mask against the image and the class list, and counts pixels per class on the way, so
the manifest costs one pass over the data. Bad samples are either reported all at once
(``on_bad_sample: fail``) or left out and listed in a quarantine table (``skip``).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from mkdseg.core.image_io import IGNORE_INDEX, LUT_SIZE, MaskEncoding, decode_mask, read_raw_mask

SUBSETS = ("train", "val")
ON_BAD_SAMPLE = ("fail", "skip")
QUARANTINE_COLUMNS = ["id", "subset", "path", "reason"]
IGNORE_COLUMN = "px_ignore"
MAX_WORKERS = 8  # PIL decoding releases the GIL, so a few threads speed up the single pass
MAX_LISTED_VALUES = 8  # how many offending label values an error message shows


@dataclass(frozen=True)
class Sample:
    """One candidate sample as a reader found it; paths may not exist (validation says so)."""

    id: str
    subset: str
    image_path: Path
    mask_path: Path | None


@dataclass(frozen=True)
class ReaderResult:
    """What a reader hands to validation: the candidates and how to interpret their masks."""

    samples: list[Sample]
    class_names: list[str]
    colours: list[list[int]]
    encoding: MaskEncoding


@dataclass(frozen=True)
class Problem:
    """One bad sample: a row of the quarantine table."""

    id: str
    subset: str
    path: str
    reason: str


class DatasetValidationError(ValueError):
    """Raised with every bad sample listed, so a user fixes them all in one go."""

    def __init__(self, problems: Sequence[Problem], hint: str | None = None) -> None:
        self.problems = list(problems)
        lines = [f"{len(self.problems)} bad sample(s) in the dataset:"] if self.problems else []
        lines += [f"  - id={p.id!r} ({p.subset}) file={p.path}: {p.reason}" for p in self.problems]
        lines.append(
            hint
            or "Fix or remove these files, or set `dataset.on_bad_sample: skip` in "
            "conf/base/parameters_ingestion.yml to leave them out (they are then listed in "
            "the quarantine table)."
        )
        super().__init__("\n".join(lines))


def pixel_columns(class_names: Sequence[str]) -> list[str]:
    """Manifest column names holding per-class pixel counts (ignore last)."""
    return [f"px_{name}" for name in class_names] + [IGNORE_COLUMN]


def check_on_bad_sample(value: str) -> str:
    if value not in ON_BAD_SAMPLE:
        raise ValueError(f"dataset.on_bad_sample must be one of {ON_BAD_SAMPLE}, got {value!r}")
    return value


def _posix(path: Path | None) -> str:
    return Path(path).resolve().as_posix() if path is not None else ""


def _decode_image(path: Path) -> tuple[int, int]:
    """Fully decode an image (``load`` catches truncated data) and return (height, width)."""
    with Image.open(path) as img:
        img.load()
        img.convert("RGB")  # fails on modes that cannot become RGB
        width, height = img.size
    return height, width


def _label_problem(
    raw: np.ndarray, labels: np.ndarray, encoding: MaskEncoding, n_classes: int
) -> str | None:
    """Say which stored values are neither a class nor ignore, or None when all are fine."""
    if encoding.kind == "index":
        values = np.unique(raw)
        bad = values[(values >= n_classes) & (values != IGNORE_INDEX)]
    elif encoding.kind == "lut":
        values = np.unique(raw)
        bad = values[(values < 0) | (values >= LUT_SIZE)]
    else:
        bad = np.unique(labels[(labels >= n_classes) & (labels != IGNORE_INDEX)])
    if bad.size == 0:
        return None
    shown = ", ".join(str(int(v)) for v in bad[:MAX_LISTED_VALUES])
    more = " ..." if bad.size > MAX_LISTED_VALUES else ""
    return (
        f"mask has label values {shown}{more} that are neither a class id (0..{n_classes - 1}) "
        f"nor {IGNORE_INDEX} (ignore)"
    )


def check_sample(
    sample: Sample, encoding: MaskEncoding, class_names: Sequence[str]
) -> dict | Problem:
    """Validate one sample; return its manifest row (with pixel counts) or its problem."""

    def bad(path: Path | None, reason: str) -> Problem:
        return Problem(sample.id, sample.subset, _posix(path), reason)

    if not sample.image_path.is_file():
        return bad(sample.image_path, "image file is missing (named by a list file or layout)")
    if sample.mask_path is None or not sample.mask_path.is_file():
        return bad(sample.mask_path or sample.image_path, "mask file is missing")
    try:
        height, width = _decode_image(sample.image_path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means an unusable image
        return bad(sample.image_path, f"image cannot be decoded ({type(exc).__name__}: {exc})")
    try:
        raw = read_raw_mask(sample.mask_path)
        labels = decode_mask(raw, encoding)
    except Exception as exc:  # noqa: BLE001 - unreadable or wrongly shaped mask
        return bad(sample.mask_path, f"mask cannot be read ({type(exc).__name__}: {exc})")
    if labels.shape != (height, width):
        return bad(
            sample.mask_path,
            f"mask size {labels.shape[1]}x{labels.shape[0]} "
            f"differs from image size {width}x{height}",
        )
    problem = _label_problem(raw, labels, encoding, len(class_names))
    if problem:
        return bad(sample.mask_path, problem)
    counts = np.bincount(labels.ravel(), minlength=LUT_SIZE)
    row = {
        "id": sample.id,
        "subset": sample.subset,
        "image_path": _posix(sample.image_path),
        "mask_path": _posix(sample.mask_path),
        "height": height,
        "width": width,
    }
    row.update({f"px_{name}": int(counts[c]) for c, name in enumerate(class_names)})
    row[IGNORE_COLUMN] = int(counts[IGNORE_INDEX])
    return row


def duplicate_problems(samples: Iterable[Sample]) -> tuple[list[Sample], list[Problem]]:
    """Split off every sample whose id occurs more than once: which copy is right is unknowable."""
    samples = list(samples)
    counts = Counter(s.id for s in samples)
    unique = [s for s in samples if counts[s.id] == 1]
    problems = [
        Problem(
            s.id, s.subset, _posix(s.image_path), f"duplicate id: {counts[s.id]} samples share it"
        )
        for s in samples
        if counts[s.id] > 1
    ]
    return unique, problems


def validate_samples(
    result: ReaderResult, workers: int | None = None
) -> tuple[list[dict], list[Problem]]:
    """Check every candidate; return manifest rows of good samples and the problems found."""
    unique, problems = duplicate_problems(result.samples)
    workers = workers or min(MAX_WORKERS, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(
            pool.map(lambda s: check_sample(s, result.encoding, result.class_names), unique)
        )
    rows = [o for o in outcomes if isinstance(o, dict)]
    problems += [o for o in outcomes if isinstance(o, Problem)]
    return rows, problems


def quarantine_frame(problems: Sequence[Problem]) -> pd.DataFrame:
    """The quarantine table (always with its columns, even when empty)."""
    frame = pd.DataFrame([p.__dict__ for p in problems], columns=QUARANTINE_COLUMNS)
    return frame.sort_values(["subset", "id", "path"], kind="stable").reset_index(drop=True)


def check_not_empty(rows: Sequence[dict], source: str, n_quarantined: int) -> None:
    """A dataset needs both train and val samples; skipping bad ones cannot fix that."""
    missing = [s for s in SUBSETS if not any(r["subset"] == s for r in rows)]
    if missing:
        raise DatasetValidationError(
            [],
            hint=(
                f"dataset (source {source!r}) has no usable {' or '.join(missing)} samples "
                f"({n_quarantined} quarantined). Check `dataset.root` and the dataset's layout "
                "and list files; `dataset.on_bad_sample: skip` cannot help here."
            ),
        )
