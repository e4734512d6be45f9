"""The report's grids of example predictions and of images to label, as uint8 images, and
their PNG encoding.

An array rather than a matplotlib figure, so the mosaic is saved at its own pixel size: one
pixel per image pixel, with no axes, margins or dpi in between.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from mkdseg.core.visualization import image_grid, overlay_mask

OVERLAY_ALPHA = 0.5
GRID_PAD = 2
GRID_COLUMNS = 3  # image | ground-truth overlay | prediction overlay
PROPOSALS_PER_ROW = 2  # images to label per row of their grid, each as image | proposal overlay
MIN_TILE_SIDE = 160  # px: smaller images are enlarged (an integer factor, nearest) to be legible
MAX_TILE_SIDE = 384  # px: larger ones are shrunk, so 16 Cityscapes frames stay a few MB of report
LEGEND_SWATCH = 14  # px: a class colour's square in the legend
LEGEND_GAP = 6  # px between a swatch and its name, and around the legend
LEGEND_BACKGROUND = 255
LEGEND_TEXT = (0, 0, 0)
LEGEND_CHAR_W = 7  # px per character of PIL's default font, for the legend's width


def _resize_tile(tile: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    if tile.shape[:2] == size_hw:
        return tile
    resized = Image.fromarray(tile).resize((size_hw[1], size_hw[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def _check_sample(index: int, image: np.ndarray, masks: dict[str, np.ndarray]) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"images[{index}] must be uint8 (H, W, 3), got {image.dtype} {image.shape}"
        )
    for name, mask in masks.items():
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{name}[{index}] has shape {mask.shape}; "
                f"it must match its image's {image.shape[:2]}"
            )


def capped(tile_hw: tuple[int, int], max_side: int = MAX_TILE_SIDE) -> tuple[int, int]:
    """``tile_hw`` shrunk, aspect kept, so its long side is at most ``max_side``."""
    scale = min(1.0, max_side / max(tile_hw))
    return max(1, round(tile_hw[0] * scale)), max(1, round(tile_hw[1] * scale))


def enlargement(tile_hw: tuple[int, int], min_side: int = MIN_TILE_SIDE) -> int:
    """The integer factor that brings a tile's shorter side to at least ``min_side`` px."""
    return max(1, -(-min_side // max(1, min(tile_hw))))


def legend(class_names: Sequence[str], colours: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """A white strip of ``width`` px with one colour swatch and name per class, wrapped."""
    entries = [
        (str(name), tuple(int(v) for v in colour))
        for name, colour in zip(class_names, colours, strict=False)
    ]
    row_h = LEGEND_SWATCH + LEGEND_GAP
    positions, x, y = [], LEGEND_GAP, LEGEND_GAP
    for name, _ in entries:
        entry_w = LEGEND_SWATCH + LEGEND_GAP + LEGEND_CHAR_W * len(name) + 2 * LEGEND_GAP
        if x > LEGEND_GAP and x + entry_w > width:
            x, y = LEGEND_GAP, y + row_h
        positions.append((x, y))
        x += entry_w
    strip = Image.new("RGB", (width, y + row_h + LEGEND_GAP), (LEGEND_BACKGROUND,) * 3)
    draw = ImageDraw.Draw(strip)
    for (name, colour), (x, y) in zip(entries, positions, strict=True):
        draw.rectangle([x, y, x + LEGEND_SWATCH - 1, y + LEGEND_SWATCH - 1], fill=colour,
                       outline=LEGEND_TEXT)  # fmt: skip
        draw.text((x + LEGEND_SWATCH + LEGEND_GAP, y + 1), name, fill=LEGEND_TEXT)
    return np.asarray(strip, dtype=np.uint8)


def prediction_grid(
    images: Sequence[np.ndarray],
    ground_truth: Sequence[np.ndarray],
    predictions: Sequence[np.ndarray],
    colours: Sequence[Sequence[int]] | np.ndarray,
    alpha: float = OVERLAY_ALPHA,
    pad: int = GRID_PAD,
    class_names: Sequence[str] | None = None,
    min_tile_side: int = MIN_TILE_SIDE,
) -> np.ndarray:
    """A uint8 mosaic, one row per sample: image | ground-truth overlay | prediction overlay,
    with a class-colour legend below when ``class_names`` is given.

    Tiles are resized to the first image's size so samples of different sizes share a grid, then
    enlarged by an integer factor (nearest: every pixel and label edge stays sharp) until their
    shorter side is at least ``min_tile_side`` px: a 48 px benchmark image is unreadable as is.
    """
    if not (len(images) == len(ground_truth) == len(predictions)):
        raise ValueError(
            f"prediction_grid needs as many images ({len(images)}), ground-truth masks "
            f"({len(ground_truth)}) and predictions ({len(predictions)})"
        )
    if not images:
        raise ValueError("prediction_grid needs at least one image")
    colours = _triples(colours)
    tiles = []
    for index, (image, gt, pred) in enumerate(zip(images, ground_truth, predictions, strict=True)):
        image, gt, pred = np.asarray(image), np.asarray(gt), np.asarray(pred)
        _check_sample(index, image, {"ground_truth": gt, "predictions": pred})
        tiles += [
            image,
            overlay_mask(image, gt, colours, alpha=alpha),
            overlay_mask(image, pred, colours, alpha=alpha),
        ]
    return _mosaic(tiles, GRID_COLUMNS, colours, class_names, min_tile_side, pad)


def proposal_grid(
    images: Sequence[np.ndarray],
    masks: Sequence[np.ndarray],
    colours: Sequence[Sequence[int]] | np.ndarray,
    class_names: Sequence[str] | None = None,
    alpha: float = OVERLAY_ALPHA,
    min_tile_side: int = MIN_TILE_SIDE,
) -> np.ndarray:
    """A uint8 mosaic of images to label, ``PROPOSALS_PER_ROW`` per row, each as image |
    proposed mask overlay, best first, with the class legend below."""
    if len(images) != len(masks) or not images:
        raise ValueError(
            f"proposal_grid needs as many images ({len(images)}) as masks ({len(masks)}), "
            "at least one"
        )
    colours = _triples(colours)
    tiles = []
    for index, (image, mask) in enumerate(zip(images, masks, strict=True)):
        image, mask = np.asarray(image), np.asarray(mask)
        _check_sample(index, image, {"masks": mask})
        tiles += [image, overlay_mask(image, mask, colours, alpha=alpha)]
    columns = 2 * min(PROPOSALS_PER_ROW, len(images))
    return _mosaic(tiles, columns, colours, class_names, min_tile_side, GRID_PAD)


def _triples(colours: Sequence[Sequence[int]] | np.ndarray) -> list[tuple[int, ...]]:
    """overlay_mask takes a sequence of triples; an (C, 3) array would be ambiguous in its
    checks."""
    return [tuple(int(v) for v in colour) for colour in np.asarray(colours).reshape(-1, 3)]


def _mosaic(
    tiles: list[np.ndarray],
    columns: int,
    colours: list[tuple[int, ...]],
    class_names: Sequence[str] | None,
    min_tile_side: int,
    pad: int,
) -> np.ndarray:
    """Tiles resized to the first one's size (its long side shrunk to ``MAX_TILE_SIDE``),
    enlarged (integer factor, nearest) to at least ``min_tile_side``, laid out ``columns`` per
    row, with the legend below when named."""
    tile_hw = capped(tuple(np.asarray(tiles[0]).shape[:2]))
    tiles = [_resize_tile(np.asarray(t, dtype=np.uint8), tile_hw) for t in tiles]
    factor = enlargement(tile_hw, min_tile_side)
    tiles = [np.repeat(np.repeat(t, factor, axis=0), factor, axis=1) for t in tiles]
    grid = np.asarray(image_grid(tiles, ncols=columns, pad=pad), dtype=np.uint8)
    if class_names is None:
        return grid
    return np.concatenate([grid, legend(class_names, colours, grid.shape[1])], axis=0)


def array_to_png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, 3) or (H, W) array as PNG bytes (e.g. a prediction grid)."""
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim not in (2, 3):
        raise ValueError(f"expected a uint8 (H, W[, 3]) image, got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()
