"""The report's grid of example predictions, as a uint8 image, and its PNG encoding.

An array rather than a matplotlib figure, so the mosaic is saved at its own pixel size: one
pixel per image pixel, with no axes, margins or dpi in between.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mkdseg.visualization import image_grid, overlay_mask

OVERLAY_ALPHA = 0.5
GRID_PAD = 2
GRID_COLUMNS = 3  # image | ground-truth overlay | prediction overlay


def _resize_tile(tile: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    if tile.shape[:2] == size_hw:
        return tile
    resized = Image.fromarray(tile).resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _check_sample(index: int, image: np.ndarray, gt: np.ndarray, pred: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"images[{index}] must be uint8 (H, W, 3), got {image.dtype} {image.shape}"
        )
    for name, mask in (("ground_truth", gt), ("predictions", pred)):
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{name}[{index}] has shape {mask.shape}; "
                f"it must match its image's {image.shape[:2]}"
            )


def prediction_grid(
    images: Sequence[np.ndarray],
    ground_truth: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    colours: Sequence[Sequence[int]] | np.ndarray,
    alpha: float = OVERLAY_ALPHA,
    pad: int = GRID_PAD,
) -> np.ndarray:
    """A uint8 mosaic, one row per sample: image | ground-truth overlay | prediction overlay.

    Tiles are resized to the first image's size so samples of different sizes share a grid.
    """
    if not (len(images) == len(ground_truth) == len(predictions)):
        raise ValueError(
            f"prediction_grid needs as many images ({len(images)}), ground-truth masks "
            f"({len(ground_truth)}) and predictions ({len(predictions)})"
        )
    if not images:
        raise ValueError("prediction_grid needs at least one image")
    # overlay_mask takes a sequence of triples; an (C, 3) array would be ambiguous in its checks
    colours = [tuple(int(v) for v in colour) for colour in np.asarray(colours).reshape(-1, 3)]
    tile_hw = tuple(np.asarray(images[0]).shape[:2])
    tiles = []
    for index, (image, gt, pred) in enumerate(zip(images, ground_truth, predictions, strict=True)):
        image, gt, pred = np.asarray(image), np.asarray(gt), np.asarray(pred)
        _check_sample(index, image, gt, pred)
        row = (
            image,
            overlay_mask(image, gt, colours, alpha=alpha),
            overlay_mask(image, pred, colours, alpha=alpha),
        )
        tiles.extend(_resize_tile(np.asarray(t, dtype=np.uint8), tile_hw) for t in row)
    return np.asarray(image_grid(tiles, ncols=GRID_COLUMNS, pad=pad), dtype=np.uint8)


def array_to_png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, 3) or (H, W) array as PNG bytes (e.g. a prediction grid)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 (H, W[, 3]) image, got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
