"""The embedded default dataset: procedurally drawn shapes, written in Pascal VOC's layout.

Classes are defined by shape and by a characteristic hue, the way real classes have a
typical appearance: every object of class ``k`` is painted in a random texture whose hue
lies within ``class_hue_jitter`` degrees of the class's own hue (classes are spread evenly
round the hue circle, so with the default jitter neighbouring classes overlap and only shape
tells them apart). The background is a textured, less saturated clutter of blobs and lines
(``background_saturation``), objects occlude each other and vary in scale, rotation and
lighting, and images are JPEG-compressed. ``class_hue_jitter: 180`` makes colour carry no
class information (shape only): calibration showed that networks trained from scratch on a
CPU budget do not learn that task at all, while with class hues they learn quickly and still
profit from more labels (README, "Calibration").

A sample depends only on ``(seed, subset, index)`` (its own random generator), so the output
is byte-identical for the same parameters and growing ``n_train`` keeps existing samples.
``render_sample`` composes the drawing primitives of ``mkdseg.sources.synthetic_drawing``.
Generation writes into a temporary folder (so single files need no atomic writes), writes
the ``mkdseg_synthetic.json`` stamp last and renames the folder into place; a matching stamp
means the data is reused. ``GeneratedSource`` and ``params_from_dict`` are that machinery
without the drawing, shared with the other generated source (``mkdseg.sources.textures``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from mkdseg.core.image_io import IGNORE_INDEX, palette_bytes
from mkdseg.sources.synthetic_drawing import (
    HUE_TURN,
    background,
    boundary,
    colour_pair,
    lighting,
    paint,
    shape_mask,
)
from mkdseg.sources.validation import TEST_SUBSET, ReaderResult, Sample
from mkdseg.sources.voc import (
    IMAGE_DIR,
    IMAGE_SUFFIX,
    LIST_DIR,
    MASK_DIR,
    MASK_SUFFIX,
    read_id_list,
    read_voc,
    voc_colour_map,
)

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # bump whenever drawing changes, so stale data is regenerated
STAMP_NAME = "mkdseg_synthetic.json"
SYNTHETIC_CLASSES = [
    "background", "disc", "square", "triangle", "ring", "cross", "star", "crescent", "bar",
]  # fmt: skip
SUBSET_CODES = {"train": 0, "val": 1, "test": 2}  # part of each sample's seed: own streams
PROGRESS_STEPS = 10  # log every ~10 %
MIN_IMAGE_SIZE = 32
MAX_JPEG_QUALITY = 95  # PIL's documented useful maximum
OBJECT_SATURATION = (0.45, 1.0)  # objects are more saturated than the background
P = TypeVar("P")


@dataclass(frozen=True)
class SyntheticParams:
    """The generator's knobs (``dataset.synthetic`` in parameters_ingestion.yml)."""

    seed: int = 0
    image_size: int = 64
    n_train: int = 2000
    n_val: int = 300
    n_test: int = 0  # a test split, written beside train and val when > 0
    min_objects: int = 1
    max_objects: int = 4
    min_scale: float = 0.12  # object radius as a share of image size
    max_scale: float = 0.3
    min_distractors: int = 2  # background blobs (class: background)
    max_distractors: int = 6
    max_lines: int = 5
    boundary_width: int = 1  # pixels on each side of a label edge set to 255 (VOC-like band)
    jpeg_quality: int = 75
    class_hue_jitter: float = 45.0  # degrees around each class's hue; 180 = colour says nothing
    background_saturation: float = 0.4  # most saturated background colour (objects: 0.45-1)

    @classmethod
    def from_dict(cls, data: dict | None) -> SyntheticParams:
        return params_from_dict(cls, data, "dataset.synthetic")

    def check(self) -> None:
        problems = []
        if self.image_size < MIN_IMAGE_SIZE:
            problems.append(f"image_size must be >= {MIN_IMAGE_SIZE}")
        if self.n_train < 1 or self.n_val < 1 or self.n_test < 0:
            problems.append("n_train and n_val must be >= 1, n_test >= 0")
        if not 1 <= self.min_objects <= self.max_objects:
            problems.append("need 1 <= min_objects <= max_objects")
        if not 0 < self.min_scale <= self.max_scale < 1:
            problems.append("need 0 < min_scale <= max_scale < 1")
        if not 0 <= self.min_distractors <= self.max_distractors or self.max_lines < 0:
            problems.append("need 0 <= min_distractors <= max_distractors and max_lines >= 0")
        if self.boundary_width < 0:
            problems.append("boundary_width must be >= 0")
        if not 0 <= self.class_hue_jitter <= HUE_TURN / 2:
            problems.append("class_hue_jitter must be in 0..180 degrees")
        if not 0 <= self.background_saturation <= 1:
            problems.append("background_saturation must be in 0..1")
        if not 1 <= self.jpeg_quality <= MAX_JPEG_QUALITY:
            problems.append(f"jpeg_quality must be in 1..{MAX_JPEG_QUALITY}")
        if problems:
            raise ValueError(f"dataset.synthetic: {'; '.join(problems)}")


def sample_id(subset: str, index: int) -> str:
    return f"{subset}_{index:05d}"


def render_sample(
    params: SyntheticParams, subset: str, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one sample: (image uint8 HxWx3 before JPEG, mask uint8 HxW with 255 boundaries)."""
    rng = np.random.default_rng([params.seed, SUBSET_CODES[subset], index])
    size = params.image_size
    distractors = (params.min_distractors, params.max_distractors)
    image = background(rng, size, params.background_saturation, distractors, params.max_lines)
    labels = np.zeros((size, size), np.uint8)
    for _ in range(int(rng.integers(params.min_objects, params.max_objects + 1))):
        cls = int(rng.integers(1, len(SYNTHETIC_CLASSES)))  # uniform: balanced classes
        mask = shape_mask(SYNTHETIC_CLASSES[cls], rng, size, (params.min_scale, params.max_scale))
        hue = (cls - 1) * HUE_TURN / (len(SYNTHETIC_CLASSES) - 1)  # classes evenly round the circle
        paint(image, mask, rng, colour_pair(rng, hue, params.class_hue_jitter, OBJECT_SATURATION))
        labels[mask] = cls
    labels[boundary(labels, params.boundary_width)] = IGNORE_INDEX
    return lighting(image, rng), labels


# ---------------------------------------------------------------- shared by generated sources
def params_from_dict(cls: type[P], data: dict | None, section: str) -> P:
    """Build a generator's params from YAML, which may give 96.0 or "96" for an int field."""
    data = dict(data or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{section} has unknown keys {unknown}; known: {sorted(known)}")
    for key, value in data.items():  # coerce to the field's type (the default's type)
        kind = type(getattr(cls, key))
        if not isinstance(value, int | float | str) or (kind is int and float(value) % 1):
            raise ValueError(f"{section}.{key} must be a {kind.__name__}, got {value!r}")
        data[key] = kind(float(value)) if kind is int else kind(value)
    params = cls(**data)
    params.check()
    return params


class GeneratorParams(Protocol):
    """What the shared writer needs of a generator's params dataclass."""

    n_train: int
    n_val: int
    n_test: int
    jpeg_quality: int

    def check(self) -> None: ...


@dataclass(frozen=True)
class GeneratedSource:
    """A generated source: what differs (name, classes, drawing); writing and reading are shared.

    ``name`` gives the stamp file ``mkdseg_<name>.json``, the ``mkdseg.<name>`` generator in it
    and the ``dataset.<name>`` parameter section.
    """

    name: str
    classes: tuple[str, ...]
    version: int  # bump whenever drawing changes, so stale data is regenerated
    params_type: type  # a frozen dataclass with from_dict, check, n_train, n_val, jpeg_quality
    render: Callable[[Any, str, int], tuple[np.ndarray, np.ndarray]]  # (params, subset, index)
    # PIL's JPEG chroma subsampling: -1 its default (4:2:0, colour at half resolution); 0 keeps
    # colour at full resolution (4:4:4), which textures told apart by colour need
    chroma_subsampling: int = -1

    @property
    def stamp_name(self) -> str:
        return f"mkdseg_{self.name}.json"

    def colours(self) -> list[list[int]]:
        return voc_colour_map(len(self.classes))

    def params(self, data: dict | GeneratorParams | None) -> GeneratorParams:
        params = data if isinstance(data, self.params_type) else self.params_type.from_dict(data)
        params.check()
        return params

    def stamp(self, params: GeneratorParams) -> dict:
        return {
            "generator": f"mkdseg.{self.name}",
            "version": self.version,
            "params": asdict(params),
        }

    def generate(self, root: Path, data: dict | GeneratorParams | None = None) -> bool:
        """Write the set under ``root`` in the VOC layout unless a matching one is there; True if
        written. Foreign folders (no stamp of this source) are refused, never overwritten."""
        params, root, label = self.params(data), Path(root), self.name
        stamp = self.stamp(params)
        if _stamp_matches(root, self.stamp_name, stamp):
            logger.info("%s data in %s is up to date; reusing it", label, root)
            return False
        if root.exists() and any(root.iterdir()) and not (root / self.stamp_name).is_file():
            raise FileExistsError(
                f"dataset.root {root} is not empty and holds no {self.stamp_name}: it was not made "
                f"by the {label} generator, so it is left alone. Point dataset.root at a new "
                "folder or empty this one."
            )
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        logger.info(
            "generating %s data (%d train, %d val, %d test) in %s",
            label,
            params.n_train,
            params.n_val,
            params.n_test,
            root,
        )
        try:
            self._write_all(tmp, params)
            text = json.dumps(stamp, indent=2, sort_keys=True) + "\n"
            (tmp / self.stamp_name).write_text(text, encoding="utf-8")  # last: marks it complete
            _swap_into_place(tmp, root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return True

    def read(self, root: Path, data: dict | GeneratorParams | None = None) -> ReaderResult:
        """Generate (or reuse) the set, then read it with the VOC reader; the test split (a
        list VOC's reader does not know) is added here."""
        self.generate(root, data)
        result = read_voc(root, augmented=False)
        samples = result.samples + _test_samples(Path(root))
        return replace(
            result, samples=samples, class_names=list(self.classes), colours=self.colours()
        )

    def _write_all(self, out: Path, params: GeneratorParams) -> None:
        palette = palette_bytes(self.colours())
        for folder in (IMAGE_DIR, MASK_DIR, LIST_DIR):
            (out / folder).mkdir(parents=True)
        counts = {"train": params.n_train, "val": params.n_val, TEST_SUBSET: params.n_test}
        counts = {subset: count for subset, count in counts.items() if count > 0}
        total, done, start = sum(counts.values()), 0, time.perf_counter()
        step = max(1, total // PROGRESS_STEPS)
        for subset, count in counts.items():
            ids = [sample_id(subset, i) for i in range(count)]
            for index, name in enumerate(ids):
                image, labels = self.render(params, subset, index)
                Image.fromarray(image).save(
                    out / IMAGE_DIR / f"{name}.jpg",
                    format="JPEG",
                    quality=params.jpeg_quality,
                    subsampling=self.chroma_subsampling,
                )
                mask = Image.fromarray(labels)  # mode L; putpalette: a VOC-style palette PNG
                mask.putpalette(palette)
                mask.save(out / MASK_DIR / f"{name}.png", format="PNG")
                done += 1
                if done % step == 0 or done == total:
                    rate = done / max(time.perf_counter() - start, 1e-9)
                    logger.info(
                        "%s data: %d/%d images (%.0f images/s)", self.name, done, total, rate
                    )
            (out / LIST_DIR / f"{subset}.txt").write_text(
                "".join(f"{i}\n" for i in ids), encoding="utf-8"
            )


def _test_samples(root: Path) -> list[Sample]:
    """The generated test split (``test.txt``), if the set has one."""
    listed = root / LIST_DIR / f"{TEST_SUBSET}.txt"
    if not listed.is_file():
        return []
    return [
        Sample(
            i,
            TEST_SUBSET,
            root / IMAGE_DIR / f"{i}{IMAGE_SUFFIX}",
            root / MASK_DIR / f"{i}{MASK_SUFFIX}",
        )
        for i in read_id_list(listed)
    ]


def _stamp_matches(root: Path, stamp_name: str, stamp: dict) -> bool:
    try:
        return json.loads((root / stamp_name).read_text(encoding="utf-8")) == stamp
    except (OSError, ValueError):
        return False


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Replace ``root`` by ``tmp`` with renames, so ``root`` is never a half-written dataset."""
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    if root.exists():
        os.replace(root, old)
    os.replace(tmp, root)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- the synthetic source
SYNTHETIC = GeneratedSource(
    "synthetic", tuple(SYNTHETIC_CLASSES), GENERATOR_VERSION, SyntheticParams, render_sample
)


def generate_synthetic(root: Path, params: dict | SyntheticParams | None = None) -> bool:
    """Make the synthetic dataset under ``root`` unless a matching one is there; True if written."""
    return SYNTHETIC.generate(root, params)


def read_synthetic(root: Path, params: dict | SyntheticParams | None = None) -> ReaderResult:
    """Generate (or reuse) the synthetic set, then read it with the VOC reader."""
    return SYNTHETIC.read(root, params)
