"""Drawing primitives of the synthetic dataset: textures, clutter, class shapes, lighting.

Each draws only from the ``numpy`` generator it is given, in a fixed order, so a sample is a
function of its generator's seed (``mkdseg.sources.synthetic`` composes them into a sample).
Images are float (H, W, 3) in 0..255 until ``lighting`` makes them uint8.
"""

from __future__ import annotations

import colorsys
import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

TEXTURES = ("solid", "stripes", "checker", "noise", "gradient")
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
COLOUR_VALUE = (0.25, 1.0)  # HSV value of every texture colour


@lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1] (x, y)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    return np.meshgrid(axis, axis)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(*bounds))


def _low_freq_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    cells = int(rng.integers(NOISE_CELLS[0], NOISE_CELLS[1] + 1))
    small = Image.fromarray(rng.random((cells, cells), dtype=np.float32))
    return np.asarray(small.resize((size, size), Image.Resampling.BILINEAR))


def colour_pair(
    rng: np.random.Generator, hue: float, hue_jitter: float, saturation: tuple[float, float]
) -> np.ndarray:
    """Two RGB colours (2, 3) of one hue family: hue +- jitter degrees, random saturation/value."""
    rows = []
    for _ in range(2):
        h = ((hue + rng.uniform(-hue_jitter, hue_jitter)) % HUE_TURN) / HUE_TURN
        rows.append(colorsys.hsv_to_rgb(h, rng.uniform(*saturation), rng.uniform(*COLOUR_VALUE)))
    return np.asarray(rows, np.float32) * COLOUR_MAX


def texture(
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


def polygon_mask(size: int, polygons: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Rasterise (points, fill) polygons in order (fill 0 cuts holes) into a boolean mask."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for points, fill in polygons:
        draw.polygon(points.ravel().tolist(), fill=fill)
    return np.asarray(canvas) > 0


def paint(
    image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, colours: np.ndarray
) -> None:
    """Fill the ``mask`` pixels with a texture between the two ``colours``."""
    image[mask] = texture(rng, image.shape[0], colours, mask)


def background(
    rng: np.random.Generator,
    size: int,
    saturation: float,
    distractors: tuple[int, int],
    max_lines: int,
) -> np.ndarray:
    """Textured base, ``distractors`` (inclusive range) jagged textured blobs and up to
    ``max_lines`` lines, in colours of any hue up to ``saturation``: all of it class
    'background'. Float (size, size, 3)."""

    def colours() -> np.ndarray:
        return colour_pair(rng, 0.0, HUE_TURN / 2, (0.0, saturation))

    image = texture(rng, size, colours())
    image += (_low_freq_noise(rng, size)[..., None] - 0.5) * rng.uniform(0, COLOUR_MAX / 2, 3)
    n_blobs = int(rng.integers(distractors[0], distractors[1] + 1))
    for _ in range(n_blobs):
        n = int(rng.integers(*BLOB_VERTICES))
        angles = np.sort(rng.uniform(0, 2 * math.pi, n))
        radii = rng.uniform(*BLOB_RADIUS, n) * _uniform(rng, BLOB_SCALE) * size
        centre = rng.uniform(0, size, 2)
        points = centre + np.stack([np.cos(angles), np.sin(angles)], 1) * radii[:, None]
        paint(image, polygon_mask(size, [(points, 1)]), rng, colours())
    canvas = Image.fromarray(np.clip(image, 0, COLOUR_MAX).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(0, max_lines + 1))):
        ends = rng.uniform(0, size, 4).tolist()
        colour = tuple(int(c) for c in colours()[0])
        draw.line(ends, fill=colour, width=int(rng.integers(*LINE_WIDTH)))
    return np.asarray(canvas, dtype=np.float32).copy()


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


def shape_mask(
    name: str, rng: np.random.Generator, size: int, scale: tuple[float, float]
) -> np.ndarray:
    """One ``name`` shape at a random place, rotation and radius (a share of ``size`` in
    ``scale``); it may be cut by the image edge."""
    radius = rng.uniform(*scale) * size * SHAPE_SIZE[name]
    angle = rng.uniform(0, 2 * math.pi)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = rng.uniform(0.1 * size, 0.9 * size, 2)
    polygons = _shape_polygons(name, rng)
    return polygon_mask(size, [(pts @ rotation.T * radius + centre, f) for pts, f in polygons])


def boundary(labels: np.ndarray, width: int) -> np.ndarray:
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


def lighting(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Linear shading, a colour cast and sensor noise; the final uint8 image."""
    x, y = _grid(image.shape[0])
    angle = rng.uniform(0, 2 * math.pi)
    shading = 1 + rng.uniform(-SHADING, SHADING) * (x * math.cos(angle) + y * math.sin(angle))
    gain = _uniform(rng, GAIN) * rng.uniform(*COLOUR_CAST, 3).astype(np.float32)
    image = image * shading[..., None] * gain
    image += rng.standard_normal(image.shape, dtype=np.float32) * _uniform(rng, NOISE_STD)
    return np.clip(image, 0, COLOUR_MAX).astype(np.uint8)
