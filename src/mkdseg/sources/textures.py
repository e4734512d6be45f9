"""Texture-coded scenes: a class is a texture family, so only texture tells classes apart.

Every object is a random blob filled with one of four texture families (stripes, checks, dots,
blotch) drawn in two random colours, with a random period, orientation and outline, over a
smooth random background. Colour and shape therefore say nothing about the class. This set
separates "labels matter" from "unlabelled data matters": a network trained from scratch
memorises a few labelled images by their colours, but learns the textures from many (README
"Results"; issue 15, whose calibration probe this generator ports: its formulas and the order
of its random draws are kept exactly).

A sample depends only on ``(seed, subset, index)``, so the output is byte-identical for the
same parameters and growing ``n_train`` keeps existing samples. Files are written in Pascal
VOC's layout by the synthetic source's machinery (``GeneratedSource``), with the
``mkdseg_textures.json`` stamp last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mkdseg.core.image_io import IGNORE_INDEX
from mkdseg.sources.generated import (
    MAX_JPEG_QUALITY,
    SUBSET_CODES,
    GeneratedSource,
    params_from_dict,
)
from mkdseg.sources.synthetic_drawing import boundary

GENERATOR_VERSION = 2  # bump whenever drawing changes, so stale data is regenerated
STAMP_NAME = "mkdseg_textures.json"
TEXTURE_CLASSES = ["background", "stripes", "checks", "dots", "blotch"]
MIN_IMAGE_SIZE = 16
MIN_PERIOD = 2.0  # pixels: a shorter period aliases, the texture is gone
DOT_THRESHOLD = 0.45  # dots: where sin^2(pi u/p) * sin^2(pi v/p) exceeds this
BLOTCH_CELLS = 1.2  # blotch: noise cells per period across the image
SECTION = "dataset.textures"


@dataclass(frozen=True)
class TextureParams:
    """The generator's knobs (``dataset.textures`` in parameters_ingestion.yml)."""

    seed: int = 0
    image_size: int = 48
    n_train: int = 2000
    n_val: int = 400
    n_test: int = 400  # the split the comparison reports; no setting is chosen on it
    max_objects: int = 3  # blobs per image: 1..max_objects
    min_radius: float = 10.0  # blob radius, pixels
    max_radius: float = 20.0
    min_period: float = 4.5  # texture period, pixels
    max_period: float = 8.0
    min_contrast: float = 100.0  # RGB distance between a texture's two colours
    max_contrast: float = 220.0
    noise_std: float = 4.0  # Gaussian pixel noise
    max_blur: float = 0.5  # Gaussian blur radius drawn in 0..max_blur
    boundary_width: int = 1  # pixels on each side of a label edge set to 255 (VOC-like band)
    jpeg_quality: int = 95

    @classmethod
    def from_dict(cls, data: dict | None) -> TextureParams:
        return params_from_dict(cls, data, SECTION)

    def check(self) -> None:
        def bad(key: str, allowed: str) -> str:
            return f"{SECTION}.{key} must be {allowed}, got {getattr(self, key)!r}"

        limits = [
            ("seed", self.seed >= 0, ">= 0"),
            ("image_size", self.image_size >= MIN_IMAGE_SIZE, f">= {MIN_IMAGE_SIZE}"),
            ("n_train", self.n_train >= 1, ">= 1"),
            ("n_val", self.n_val >= 1, ">= 1"),
            ("n_test", self.n_test >= 0, ">= 0"),
            ("max_objects", self.max_objects >= 1, ">= 1"),
            ("min_radius", self.min_radius > 0, "> 0"),
            ("max_radius", self.max_radius >= self.min_radius, ">= min_radius"),
            ("min_period", self.min_period >= MIN_PERIOD, f">= {MIN_PERIOD}"),
            ("max_period", self.max_period >= self.min_period, ">= min_period"),
            ("min_contrast", self.min_contrast >= 0, ">= 0"),
            ("max_contrast", self.max_contrast >= self.min_contrast, ">= min_contrast"),
            ("noise_std", self.noise_std >= 0, ">= 0"),
            ("max_blur", self.max_blur >= 0, ">= 0"),
            ("boundary_width", self.boundary_width >= 0, ">= 0"),
            (
                "jpeg_quality",
                1 <= self.jpeg_quality <= MAX_JPEG_QUALITY,
                f"in 1..{MAX_JPEG_QUALITY}",
            ),
        ]
        problems = [bad(key, allowed) for key, ok, allowed in limits if not ok]
        if problems:
            raise ValueError("; ".join(problems))


# ---------------------------------------------------------------- drawing
def texture(
    name: str, size: int, period: float, angle: float, rng: np.random.Generator
) -> np.ndarray:
    """The family's two-tone pattern (bool SxS); ``rng`` is drawn from for blotch only."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    if name == "stripes":
        return np.sin(2 * np.pi * u / period) > 0
    if name == "checks":
        return (np.sin(2 * np.pi * u / period) > 0) ^ (np.sin(2 * np.pi * v / period) > 0)
    if name == "dots":
        return (np.sin(np.pi * u / period) ** 2 * np.sin(np.pi * v / period) ** 2) > DOT_THRESHOLD
    if name == "blotch":  # smooth noise: no period, no orientation, irregular patches
        cells = max(2, round(size / period * BLOTCH_CELLS))
        noise = rng.normal(0, 1, (cells, cells)).astype(np.float32)
        smooth = Image.fromarray(noise, mode="F").resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(smooth) > 0
    raise ValueError(f"unknown texture family {name!r}; known: {TEXTURE_CLASSES[1:]}")


def _pattern(params: TextureParams, name: str, rng: np.random.Generator) -> np.ndarray:
    period = rng.uniform(params.min_period, params.max_period)
    angle = rng.uniform(0, np.pi)
    return texture(name, params.image_size, period, angle, rng)


def _colours(params: TextureParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two random colours a random direction and distance apart: colour carries no class."""
    first = rng.uniform(0, 255, 3)
    direction = rng.normal(0, 1, 3)
    direction /= np.linalg.norm(direction)
    contrast = rng.uniform(params.min_contrast, params.max_contrast)
    return first, np.clip(first + direction * contrast, 0, 255)


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth, desaturated colour field (float32 SxSx3), textureless on purpose."""
    grid = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    field = Image.fromarray(grid).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(field, np.float32) * 0.6 + rng.uniform(40, 200) * 0.4


def _blob(params: TextureParams, rng: np.random.Generator) -> np.ndarray:
    """A random star-shaped polygon (bool SxS): outlines say nothing about the class."""
    size = params.image_size
    radius = rng.uniform(params.min_radius, params.max_radius)
    margin = min(size / 2 - 1, radius * 0.6)
    cx, cy = rng.uniform(margin, size - margin, 2)
    corners = rng.integers(6, 11)
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners))
    radii = radius * rng.uniform(0.6, 1.2, corners)
    xs, ys = cx + radii * np.cos(angles), cy + radii * np.sin(angles)
    points = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
    canvas = Image.new("L", (size, size), 0)
    ImageDraw.Draw(canvas).polygon(points, fill=1)
    return np.asarray(canvas) > 0


def render_sample(params: TextureParams, subset: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one sample: (image uint8 SxSx3 before JPEG, mask uint8 SxS with 255 boundaries)."""
    rng = np.random.default_rng([params.seed, SUBSET_CODES[subset], index])
    image = _background(params.image_size, rng)
    labels = np.zeros((params.image_size, params.image_size), np.uint8)
    for _ in range(rng.integers(1, params.max_objects + 1)):
        cls = int(rng.integers(1, len(TEXTURE_CLASSES)))
        blob = _blob(params, rng)
        first, second = _colours(params, rng)
        pattern = _pattern(params, TEXTURE_CLASSES[cls], rng)
        tex = np.where(pattern[..., None], first, second)
        image[blob] = tex[blob]
        labels[blob] = cls
    image = np.clip(image + rng.normal(0, params.noise_std, image.shape), 0, 255).astype(np.uint8)
    picture = Image.fromarray(image)
    if params.max_blur > 0:
        picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0, params.max_blur)))
    labels[boundary(labels, params.boundary_width)] = IGNORE_INDEX
    return np.asarray(picture), labels


# ---------------------------------------------------------------- the source
# TEXTURES.generate(root, params) writes (or reuses) the set; TEXTURES.read also reads it back.
# 4:4:4: at 4:2:0 a texture whose two colours differ mostly in hue loses its pattern of a few px
TEXTURES = GeneratedSource(
    "textures",
    tuple(TEXTURE_CLASSES),
    GENERATOR_VERSION,
    TextureParams,
    render_sample,
    chroma_subsampling=0,
)
