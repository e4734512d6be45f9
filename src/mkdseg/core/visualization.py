"""Pictures of images and masks, in plain numpy/PIL (no matplotlib, no Kedro).

Shared by the ingestion sample grid and the reporting pipeline, so the colours a
reader sees in a report match the ones in the dataset preview.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mkdseg.core.image_io import IGNORE_INDEX

DEFAULT_ALPHA = 0.5
DEFAULT_IGNORE_COLOUR = (255, 255, 255)
DEFAULT_PAD = 2
DEFAULT_PAD_VALUE = 255  # white gutters between tiles
UINT8_MAX = 255


def overlay_mask(
    image: np.ndarray,
    mask: np.ndarray,
    colours: Sequence[Sequence[int]],
    alpha: float = DEFAULT_ALPHA,
    ignore_colour: Sequence[int] = DEFAULT_IGNORE_COLOUR,
) -> np.ndarray:
    """Blend class colours over ``image``: ``(1 - alpha) * image + alpha * colour[mask]``.

    ``mask`` holds class ids (``255`` = ignore, blended with ``ignore_colour``). The mask is
    resized (nearest) to the image when their sizes differ, as dataset masks sometimes are.
    """
    image = _as_rgb(image, "image")
    mask = _mask_like(mask, image.shape[:2])
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    palette = _palette(colours, ignore_colour)
    known = (mask < len(colours)) | (mask == IGNORE_INDEX)
    if not known.all():
        bad = int(mask[~known].max())
        raise ValueError(f"mask has class id {bad} but only {len(colours)} colours were given")
    blended = (1.0 - alpha) * image.astype(np.float64) + alpha * palette[mask].astype(np.float64)
    return np.clip(np.rint(blended), 0, UINT8_MAX).astype(np.uint8)


def image_grid(
    tiles: list[np.ndarray], ncols: int, pad: int = DEFAULT_PAD, pad_value: int = DEFAULT_PAD_VALUE
) -> np.ndarray:
    """Tile images row-major into one uint8 HxWx3 picture with ``pad`` pixel gutters.

    Tiles may differ in size: each cell is as large as the largest tile, and a tile sits
    in its cell's top-left corner. Grayscale (HxW) tiles are repeated to RGB.
    """
    if not tiles:
        raise ValueError("image_grid needs at least one tile")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    rgb = [_as_rgb(tile, f"tile {i}") for i, tile in enumerate(tiles)]
    cell_h = max(t.shape[0] for t in rgb)
    cell_w = max(t.shape[1] for t in rgb)
    ncols = min(ncols, len(rgb))
    nrows = math.ceil(len(rgb) / ncols)
    height = nrows * cell_h + (nrows + 1) * pad
    width = ncols * cell_w + (ncols + 1) * pad
    grid = np.full((height, width, 3), pad_value, dtype=np.uint8)
    for index, tile in enumerate(rgb):
        row, col = divmod(index, ncols)
        top = pad + row * (cell_h + pad)
        left = pad + col * (cell_w + pad)
        grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return grid


def _as_rgb(array: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8, got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"{what} must be HxW or HxWx3, got shape {array.shape}")
    return array


def _mask_like(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be HxW class ids, got shape {mask.shape}")
    if mask.min(initial=0) < 0 or mask.max(initial=0) > UINT8_MAX:
        raise ValueError(f"mask values must be in 0..255, got {mask.min()}..{mask.max()}")
    mask = mask.astype(np.uint8)
    if mask.shape != size:
        resized = Image.fromarray(mask).resize((size[1], size[0]), Image.Resampling.NEAREST)
        mask = np.asarray(resized, dtype=np.uint8)
    return mask


def _palette(colours: Sequence[Sequence[int]], ignore_colour: Sequence[int]) -> np.ndarray:
    """A 256-entry lookup table: class colours, ``ignore_colour`` at 255, black elsewhere."""
    palette = np.zeros((UINT8_MAX + 1, 3), dtype=np.uint8)
    if colours:
        table = np.asarray(colours, dtype=np.int64).reshape(len(colours), -1)
        if (
            table.shape[1] != 3
            or table.min() < 0
            or table.max() > UINT8_MAX
            or len(table) > UINT8_MAX
        ):
            raise ValueError("colours must be at most 255 RGB triples with values in 0..255")
        palette[: len(table)] = table
    palette[IGNORE_INDEX] = np.asarray(ignore_colour, dtype=np.uint8)
    return palette
