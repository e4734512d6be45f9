"""Checking every sample of a dataset once, before anything trains on it.

Readers only *list* candidate samples (id, subset, image path, mask path, origin); this
module opens every file, decodes it for real (a truncated JPEG only fails on decode), checks
the mask against the image and the class list, and counts pixels per class on the way, so
the manifest costs one pass over the data. A training image without a mask (origin
``no_mask`` or ``extra``) is an unlabeled image: only its image is checked, and no mask is
ever looked for. Bad samples are either reported all at once (``on_bad_sample: fail``) or
left out and listed in a quarantine table (``skip``). A ``ValidationCache`` lets a re-run
re-read only the files that changed.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image

from mkdseg.core.image_io import IGNORE_INDEX, LUT_SIZE, MaskEncoding, decode_mask, read_raw_mask

if TYPE_CHECKING:
    from mkdseg.sources.validation_cache import ValidationCache

SUBSETS = ("train", "val")  # the subsets every dataset needs; a generated set may add "test"
TEST_SUBSET = "test"  # a generated set's images no choice reads: the comparison reports them
SUBSET_WORDS = {"val": "validation"}  # how messages name a subset
# Where a training image came from (the manifest's ``origin`` column):
MASKED = "mask"  # it has a mask (every validation image has one)
NO_MASK = "no_mask"  # an image beside the masked ones, without a mask of its own: unlabeled
EXTRA = "extra"  # an image from an unlabeled pool (unlabeled/, train_extra, VOC's unlisted)
ORIGINS = (MASKED, NO_MASK, EXTRA)
ON_BAD_SAMPLE = ("fail", "skip")
QUARANTINE_COLUMNS = ["id", "subset", "path", "reason"]
IGNORE_COLUMN = "px_ignore"
MAX_WORKERS = 8  # PIL decoding releases the GIL, so a few threads speed up the single pass
MAX_LISTED_VALUES = 8  # how many offending label values an error message shows


@dataclass(frozen=True)
class Problem:
    """One bad sample: a row of the quarantine table."""

    id: str
    subset: str
    path: str
    reason: str


@dataclass(frozen=True)
class Sample:
    """One candidate sample as a reader found it; paths may not exist (validation says so)."""

    id: str
    subset: str
    image_path: Path
    mask_path: Path | None  # None for an image without a mask (origin no_mask / extra)
    origin: str = MASKED

    @property
    def has_mask(self) -> bool:
        return self.origin == MASKED


@dataclass(frozen=True)
class ReaderResult:
    """What a reader hands to validation: the candidates and how to interpret their masks,
    plus what a reader already knows is wrong (a mask without an image)."""

    samples: list[Sample]
    class_names: list[str]
    colours: list[list[int]]
    encoding: MaskEncoding
    problems: list[Problem] = field(default_factory=list)


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


def _missing_mask_reason(sample: Sample) -> str:
    if sample.subset != "train":
        subset = SUBSET_WORDS.get(sample.subset, sample.subset)
        return (
            f"mask file is missing: every {subset} image needs a mask (add it, or move the "
            "image to the training images, where an image without a mask is unlabeled)"
        )
    return "mask file is missing"


def _row(
    sample: Sample, height: int, width: int, counts: Sequence[int], columns: Sequence[str]
) -> dict:
    """A manifest row; ``counts`` holds one pixel count per class, then the ignore count."""
    row = {
        "id": sample.id,
        "subset": sample.subset,
        "image_path": _posix(sample.image_path),
        "mask_path": _posix(sample.mask_path) if sample.has_mask else "",
        "origin": sample.origin,
        "height": height,
        "width": width,
    }
    return row | dict(zip(columns, counts, strict=True))


def check_sample(
    sample: Sample, encoding: MaskEncoding, class_names: Sequence[str]
) -> dict | Problem:
    """Validate one sample; return its manifest row (with pixel counts) or its problem.

    An image without a mask is only decoded: its pixel counts are zero and nothing looks for
    a mask next to it.
    """

    def bad(path: Path | None, reason: str) -> Problem:
        return Problem(sample.id, sample.subset, _posix(path), reason)

    if sample.origin not in ORIGINS:
        raise ValueError(f"sample {sample.id!r} has origin {sample.origin!r}, not one of {ORIGINS}")
    if not sample.image_path.is_file():
        return bad(sample.image_path, "image file is missing (named by a list file or layout)")
    if sample.has_mask and (sample.mask_path is None or not sample.mask_path.is_file()):
        return bad(sample.mask_path or sample.image_path, _missing_mask_reason(sample))
    try:
        height, width = _decode_image(sample.image_path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure means an unusable image
        return bad(sample.image_path, f"image cannot be decoded ({type(exc).__name__}: {exc})")
    columns = pixel_columns(class_names)
    if not sample.has_mask:
        return _row(sample, height, width, [0] * len(columns), columns)
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
    values = [int(counts[c]) for c in range(len(class_names))] + [int(counts[IGNORE_INDEX])]
    return _row(sample, height, width, values, columns)


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
    result: ReaderResult,
    workers: int | None = None,
    cache: ValidationCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[dict], list[Problem]]:
    """Check every candidate; return manifest rows of good samples and the problems found.

    Samples whose files ``cache`` knows unchanged (``validation_cache.sample_key``) are not
    opened again.
    ``progress(done, total)`` is called as samples finish (from the calling thread).
    """
    unique, problems = duplicate_problems(result.samples)
    problems = list(result.problems) + problems
    workers = workers or min(MAX_WORKERS, os.cpu_count() or 1)

    def check(sample: Sample) -> dict | Problem:
        if cache is None:
            return check_sample(sample, result.encoding, result.class_names)
        key = cache.key(sample)  # before reading: a file changing meanwhile gets a new key
        if (known := cache.lookup(key)) is not None:
            return known
        outcome = check_sample(sample, result.encoding, result.class_names)
        cache.store(key, outcome)
        return outcome

    outcomes = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done, outcome in enumerate(pool.map(check, unique), start=1):
            outcomes.append(outcome)
            if progress is not None:
                progress(done, len(unique))
    rows = [o for o in outcomes if isinstance(o, dict)]
    problems += [o for o in outcomes if isinstance(o, Problem)]
    return rows, problems


def quarantine_frame(problems: Sequence[Problem]) -> pd.DataFrame:
    """The quarantine table (always with its columns, even when empty)."""
    frame = pd.DataFrame([p.__dict__ for p in problems], columns=QUARANTINE_COLUMNS)
    return frame.sort_values(["subset", "id", "path"], kind="stable").reset_index(drop=True)


def check_usable(rows: Sequence[dict], source: str, n_quarantined: int) -> None:
    """A dataset needs validation images and at least one masked training image; skipping
    bad ones cannot fix that."""
    missing = [s for s in SUBSETS if not any(r["subset"] == s for r in rows)]
    if not missing and not any(r["subset"] == "train" and r["origin"] == MASKED for r in rows):
        missing = ["masked training"]
    if missing:
        raise DatasetValidationError(
            [],
            hint=(
                f"dataset (source {source!r}) has no usable {' or '.join(missing)} samples "
                f"({n_quarantined} quarantined). Check `dataset.root` and the dataset's layout "
                "and list files (at least one training image needs a mask to learn from); "
                "`dataset.on_bad_sample: skip` cannot help here."
            ),
        )
