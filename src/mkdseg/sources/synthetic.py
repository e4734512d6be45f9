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

A sample depends only on ``(seed, subset, index)``, so the output is byte-identical for the
same parameters and growing ``n_train`` keeps existing samples. ``render_sample`` composes the
drawing primitives of ``mkdseg.sources.synthetic_drawing``; writing, the stamp and reuse are
``mkdseg.sources.generated``'s, shared with the textures source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.sources.generated import (
    MAX_JPEG_QUALITY,
    SUBSET_CODES,
    GeneratedSource,
    params_from_dict,
)
from mkdseg.sources.synthetic_drawing import (
    HUE_TURN,
    background,
    boundary,
    colour_pair,
    lighting,
    paint,
    shape_mask,
)
from mkdseg.sources.validation import ReaderResult

GENERATOR_VERSION = 2  # bump whenever drawing changes, so stale data is regenerated
STAMP_NAME = "mkdseg_synthetic.json"
SYNTHETIC_CLASSES = [
    "background", "disc", "square", "triangle", "ring", "cross", "star", "crescent", "bar",
]  # fmt: skip
MIN_IMAGE_SIZE = 32
OBJECT_SATURATION = (0.45, 1.0)  # objects are more saturated than the background


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
