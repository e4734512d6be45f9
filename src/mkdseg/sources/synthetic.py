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
Generation writes into a temporary folder (so single files need no atomic writes), writes
the ``mkdseg_synthetic.json`` stamp last and renames the folder into place; a matching stamp
means the data is reused.
"""

from __future__ import annotations

import colorsys
import json
import logging
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from mkdseg.core.image_io import IGNORE_INDEX, palette_bytes
from mkdseg.sources.validation import ReaderResult
from mkdseg.sources.voc import IMAGE_DIR, LIST_DIR, MASK_DIR, read_voc, voc_colour_map

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 2  # bump whenever drawing changes, so stale data is regenerated
STAMP_NAME = "mkdseg_synthetic.json"
SYNTHETIC_CLASSES = [
    "background", "disc", "square", "triangle", "ring", "cross", "star", "crescent", "bar",
]  # fmt: skip
SUBSET_CODES = {"train": 0, "val": 1}  # part of each sample's seed
TEXTURES = ("solid", "stripes", "checker", "noise", "gradient")
PROGRESS_STEPS = 10  # log every ~10 %
MIN_IMAGE_SIZE = 32
MAX_JPEG_QUALITY = 95  # PIL's documented useful maximum
COLOUR_MAX = 255.0
CIRCLE_VERTICES = 48  # polygon resolution of round shapes (smooth at <=128 px)
STAR_POINTS = 5

# Shape geometry, in units of the object's radius (ranges are sampled per object).
SQUARE_HALF = 0.8  # keeps a square's area close to a disc's
DISC_ASPECT = (0.85, 1.0)  # a disc stays round; a bar is clearly elongated
BAR_ASPECT = (0.22, 0.35)
RING_HOLE = (0.45, 0.65)
CROSS_ARM = (0.22, 0.38)
STAR_INNER = (0.38, 0.5)
CRESCENT_OFFSET = (0.35, 0.6)
CRESCENT_CUT = (0.8, 1.0)
# Radius multipliers that roughly equalise the mean area of the shapes, so that classes are
# balanced in pixels as well as in object counts (thin shapes get larger outlines).
SHAPE_SIZE = {
    "disc": 0.85, "square": 0.95, "triangle": 1.3, "ring": 1.05,
    "cross": 1.1, "star": 1.4, "crescent": 1.6, "bar": 1.5,
}  # fmt: skip

# Nuisance variation.
STRIPE_PERIOD = (0.12, 0.5)  # in half-image units
CHECKER_PERIOD = (0.12, 0.4)
NOISE_CELLS = (3, 10)  # low-frequency noise: a grid of this many cells, upsampled
BLOB_VERTICES = (6, 12)
BLOB_RADIUS = (0.3, 1.0)  # jagged: per-vertex radius, so blobs never look like a class shape
BLOB_SCALE = (0.05, 0.25)  # of the image size
LINE_WIDTH = (1, 4)
GAIN = (0.6, 1.3)
COLOUR_CAST = (0.85, 1.15)
SHADING = 0.35  # linear illumination slope across the image
NOISE_STD = (2.0, 10.0)  # per-pixel Gaussian noise, grey levels
HUE_TURN = 360.0  # degrees
OBJECT_SATURATION = (0.45, 1.0)
COLOUR_VALUE = (0.25, 1.0)  # HSV value of every texture colour


@dataclass(frozen=True)
class SyntheticParams:
    """The generator's knobs (``dataset.synthetic`` in parameters_ingestion.yml)."""

    seed: int = 0
    image_size: int = 64
    n_train: int = 2000
    n_val: int = 300
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
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"dataset.synthetic has unknown keys {unknown}; known: {sorted(known)}"
            )
        for key, value in data.items():  # YAML may give 96.0 or "96": coerce to the field's type
            kind = type(getattr(cls, key))
            if not isinstance(value, int | float | str) or (kind is int and float(value) % 1):
                raise ValueError(
                    f"dataset.synthetic.{key} must be a {kind.__name__}, got {value!r}"
                )
            data[key] = kind(float(value)) if kind is int else kind(value)
        params = cls(**data)
        params.check()
        return params

    def check(self) -> None:
        problems = []
        if self.image_size < MIN_IMAGE_SIZE:
            problems.append(f"image_size must be >= {MIN_IMAGE_SIZE}")
        if self.n_train < 1 or self.n_val < 1:
            problems.append("n_train and n_val must be >= 1")
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


def synthetic_colours() -> list[list[int]]:
    return voc_colour_map(len(SYNTHETIC_CLASSES))


def sample_id(subset: str, index: int) -> str:
    return f"{subset}_{index:05d}"


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (x, y)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return np.meshgrid(axis, axis)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


# ---------------------------------------------------------------- textures and clutter
def _low_freq_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = int(rng.integers(NOISE_CELLS[0], NOISE_CELLS[1] + 1))
    small = Image.fromarray(rng.random((cells, cells), dtype=np.float32))
    return np.asarray(small.resize((size, size), Image.Resampling.BILINEAR))


def _colours(
    rng: np.random.Generator, hue: float, hue_jitter: float, saturation: tuple[float, float]
) -> np.ndarray:
    """Two RGB colours (2, 3) of one hue family: hue +- jitter degrees, random saturation/value."""
    rows = []
    for _ in range(2):
        h = ((hue + rng.uniform(-hue_jitter, hue_jitter)) % HUE_TURN) / HUE_TURN
        rows.append(colorsys.hsv_to_rgb(h, rng.uniform(*saturation), rng.uniform(*COLOUR_VALUE)))
    return np.asarray(rows, np.float32) * COLOUR_MAX


def _background_colours(rng: np.random.Generator, params: SyntheticParams) -> np.ndarray:
    return _colours(rng, 0.0, HUE_TURN / 2, (0.0, params.background_saturation))


def _class_colours(rng: np.random.Generator, cls: int, params: SyntheticParams) -> np.ndarray:
    hue = (cls - 1) * HUE_TURN / (len(SYNTHETIC_CLASSES) - 1)  # classes evenly round the circle
    return _colours(rng, hue, params.class_hue_jitter, OBJECT_SATURATION)


def _texture(
    rng: np.random.Generator, size: int, colours: np.ndarray, where: np.ndarray | None = None
) -> np.ndarray:
    """A texture between two colours: (size, size, 3), or (n, 3) at the ``where`` pixels.

    Evaluating only the painted pixels keeps drawing fast (most objects are small).
    """
    low, high = colours
    kind = TEXTURES[int(rng.integers(len(TEXTURES)))]
    x, y = _grid(size)
    if where is not None:
        x, y = x[where], y[where]
    angle = rng.uniform(0, math.pi)
    u = x * math.cos(angle) + y * math.sin(angle)
    if kind == "solid":
        mix = np.zeros_like(u)
    elif kind == "stripes":
        mix = (np.sin(2 * math.pi * u / _uniform(rng, STRIPE_PERIOD)) > 0).astype(np.float32)
    elif kind == "checker":
        v = -x * math.sin(angle) + y * math.cos(angle)
        period = _uniform(rng, CHECKER_PERIOD)
        mix = (np.floor(u / period) + np.floor(v / period)) % 2
    elif kind == "noise":
        mix = _low_freq_noise(rng, size)
        mix = mix if where is None else mix[where]
    else:  # gradient
        mix = (u / math.sqrt(2) + 1) / 2
    return low + (high - low) * mix[..., None]


def _polygon_mask(size: int, polygons: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Rasterise (points, fill) polygons in order (fill 0 cuts holes) into a boolean mask."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for points, fill in polygons:
        draw.polygon(points.ravel().tolist(), fill=fill)
    return np.asarray(canvas) > 0


def _paint(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, colours: np.ndarray
) -> None:
    image[mask] = _texture(rng, image.shape[0], colours, mask)


def _background(rng: np.random.Generator, params: SyntheticParams) -> np.ndarray:
    """Textured base, jagged textured blobs and lines: all of it class 'background'."""
    size = params.image_size
    image = _texture(rng, size, _background_colours(rng, params))
    image += (_low_freq_noise(rng, size)[..., None] - 0.5) * rng.uniform(0, COLOUR_MAX / 2, 3)
    n_blobs = int(rng.integers(params.min_distractors, params.max_distractors + 1))
    for _ in range(n_blobs):
        n = int(rng.integers(*BLOB_VERTICES))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = rng.uniform(*BLOB_RADIUS, n) * _uniform(rng, BLOB_SCALE) * size
        centre = rng.uniform(0, size, 2)
        points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        _paint(image, _polygon_mask(size, [(points, 1)]), rng, _background_colours(rng, params))
    canvas = Image.fromarray(np.clip(image, 0, COLOUR_MAX).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, params.max_lines + 1))):
        ends = rng.uniform(0, size, 4).tolist()
        colour = tuple(int(c) for c in _background_colours(rng, params)[0])
        draw.line(ends, fill=colour, width=int(rng.integers(*LINE_WIDTH)))
    return np.asarray(canvas, dtype=np.float32).copy()


# ---------------------------------------------------------------- class shapes
def _circle(aspect: float = 1.0, n: int = CIRCLE_VERTICES) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), aspect * np.sin(t)], 1)


def _shape_polygons(name: str, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Unit-radius polygons (fill 1 = object, 0 = hole) for one class shape."""
    if name == "disc":
        return [(_circle(_uniform(rng, DISC_ASPECT)), 1)]
    if name == "square":
        return [(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float) * SQUARE_HALF, 1)]
    if name == "triangle":
        t = math.pi / 2 + np.arange(3) * 2 * math.pi / 3
        return [(np.stack([np.cos(t), np.sin(t)], 1), 1)]
    if name == "ring":
        return [(_circle(), 1), (_circle() * _uniform(rng, RING_HOLE), 0)]
    if name == "cross":
        w = _uniform(rng, CROSS_ARM)
        arm = np.array([[w, -w], [1, -w], [1, w], [w, w]])
        quarter = np.array([[0.0, -1.0], [1.0, 0.0]])  # 90 degree turn
        return [(np.concatenate([arm @ np.linalg.matrix_power(quarter, k).T for k in range(4)]), 1)]
    if name == "star":
        t = -math.pi / 2 + np.arange(2 * STAR_POINTS) * math.pi / STAR_POINTS
        r = np.where(np.arange(2 * STAR_POINTS) % 2 == 0, 1.0, _uniform(rng, STAR_INNER))
        return [(np.stack([np.cos(t), np.sin(t)], 1) * r[:, None], 1)]
    if name == "crescent":
        offset = np.array([_uniform(rng, CRESCENT_OFFSET), 0.0])
        return [(_circle(), 1), (_circle() * _uniform(rng, CRESCENT_CUT) + offset, 0)]
    if name == "bar":
        return [(_circle(_uniform(rng, BAR_ASPECT)), 1)]
    raise ValueError(f"unknown synthetic shape {name!r}")


def _object_mask(cls: int, rng: np.random.Generator, params: SyntheticParams) -> np.ndarray:
    """One class object at a random place, size and rotation (may be cut by the image edge)."""
    size = params.image_size
    name = SYNTHETIC_CLASSES[cls]
    radius = rng.uniform(params.min_scale, params.max_scale) * size * SHAPE_SIZE[name]
    angle = rng.uniform(0, 2 * math.pi)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = rng.uniform(0.1 * size, 0.9 * size, 2)
    polygons = _shape_polygons(name, rng)
    return _polygon_mask(size, [(pts @ rotation.T * radius + centre, f) for pts, f in polygons])


def _boundary(labels: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` of a different label (a 2*width band, like VOC's 255 outlines)."""
    if width == 0:
        return np.zeros(labels.shape, bool)
    size_y, size_x = labels.shape
    padded = np.pad(labels, width, mode="edge")
    edge = np.zeros(labels.shape, bool)
    for dy in range(-width, width + 1):
        for dx in range(-width, width + 1):
            if dy or dx:
                edge |= (
                    padded[width + dy : width + dy + size_y, width + dx : width + dx + size_x]
                    != labels
                )
    return edge


def _lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x, y = _grid(image.shape[0])
    angle = rng.uniform(0, 2 * math.pi)
    shading = 1 + rng.uniform(-SHADING, SHADING) * (x * math.cos(angle) + y * math.sin(angle))
    gain = _uniform(rng, GAIN) * rng.uniform(*COLOUR_CAST, 3).astype(np.float32)
    image = image * shading[..., None] * gain
    image += rng.standard_normal(image.shape, dtype=np.float32) * _uniform(rng, NOISE_STD)
    return np.clip(image, 0, COLOUR_MAX).astype(np.uint8)


def render_sample(
    params: SyntheticParams, subset: str, index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one sample: (image uint8 HxWx3 before JPEG, mask uint8 HxW with 255 boundaries)."""
    rng = np.random.default_rng([params.seed, SUBSET_CODES[subset], index])
    image = _background(rng, params)
    labels = np.zeros((params.image_size,) * 2, np.uint8)
    for _ in range(int(rng.integers(params.min_objects, params.max_objects + 1))):
        cls = int(rng.integers(1, len(SYNTHETIC_CLASSES)))  # uniform: balanced classes
        mask = _object_mask(cls, rng, params)
        _paint(image, mask, rng, _class_colours(rng, cls, params))
        labels[mask] = cls
    labels[_boundary(labels, params.boundary_width)] = IGNORE_INDEX
    return _lighting(image, rng), labels


# ---------------------------------------------------------------- writing
def _stamp(params: SyntheticParams) -> dict:
    return {"generator": "mkdseg.synthetic", "version": GENERATOR_VERSION, "params": asdict(params)}


def _stamp_matches(root: Path, params: SyntheticParams) -> bool:
    try:
        return json.loads((root / STAMP_NAME).read_text(encoding="utf-8")) == _stamp(params)
    except (OSError, ValueError):
        return False


def _write_all(out: Path, params: SyntheticParams) -> None:
    palette = palette_bytes(synthetic_colours())
    (out / IMAGE_DIR).mkdir(parents=True)
    (out / MASK_DIR).mkdir(parents=True)
    (out / LIST_DIR).mkdir(parents=True)
    total, done, start = params.n_train + params.n_val, 0, time.perf_counter()
    step = max(1, total // PROGRESS_STEPS)
    for subset, count in (("train", params.n_train), ("val", params.n_val)):
        ids = [sample_id(subset, i) for i in range(count)]
        for index, name in enumerate(ids):
            image, labels = render_sample(params, subset, index)
            Image.fromarray(image).save(
                out / IMAGE_DIR / f"{name}.jpg", format="JPEG", quality=params.jpeg_quality
            )
            mask = Image.fromarray(labels)  # mode L; putpalette makes it a VOC-style palette PNG
            mask.putpalette(palette)
            mask.save(out / MASK_DIR / f"{name}.png", format="PNG")
            done += 1
            if done % step == 0 or done == total:
                rate = done / max(time.perf_counter() - start, 1e-9)
                logger.info("synthetic data: %d/%d images (%.0f images/s)", done, total, rate)
        (out / LIST_DIR / f"{subset}.txt").write_text(
            "".join(f"{i}\n" for i in ids), encoding="utf-8"
        )
    stamp = json.dumps(_stamp(params), indent=2, sort_keys=True) + "\n"
    (out / STAMP_NAME).write_text(stamp, encoding="utf-8")  # last: marks the folder complete


def generate_synthetic(root: Path, params: dict | SyntheticParams | None = None) -> bool:
    """Make the synthetic dataset under ``root`` unless a matching one is there; True if written."""
    params = params if isinstance(params, SyntheticParams) else SyntheticParams.from_dict(params)
    params.check()
    root = Path(root)
    if _stamp_matches(root, params):
        logger.info("synthetic data in %s is up to date; reusing it", root)
        return False
    if root.exists() and any(root.iterdir()) and not (root / STAMP_NAME).is_file():
        raise FileExistsError(
            f"dataset.root {root} is not empty and holds no {STAMP_NAME}: it was not made by the "
            "synthetic generator, so it is left alone. Point dataset.root at a new folder or "
            "empty this one."
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    logger.info(
        "generating synthetic data (%d train, %d val) in %s", params.n_train, params.n_val, root
    )
    try:
        _write_all(tmp, params)
        _swap_into_place(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def _swap_into_place(tmp: Path, root: Path) -> None:
    """Replace ``root`` by ``tmp`` with renames, so ``root`` is never a half-written dataset."""
    old = root.parent / f".{root.name}.old-{os.getpid()}"
    if root.exists():
        os.replace(root, old)
    os.replace(tmp, root)
    shutil.rmtree(old, ignore_errors=True)


def read_synthetic(root: Path, params: dict | SyntheticParams | None = None) -> ReaderResult:
    """Generate (or reuse) the synthetic set, then read it with the VOC reader."""
    generate_synthetic(root, params)
    result = read_voc(root, augmented=False)
    return replace(result, class_names=list(SYNTHETIC_CLASSES), colours=synthetic_colours())
