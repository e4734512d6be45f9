"""overlay_mask / image_grid against direct per-pixel computations."""

from __future__ import annotations

import numpy as np
import pytest

from mkdseg.core.visualization import image_grid, overlay_mask

COLOURS = [(0, 0, 0), (200, 0, 0), (0, 100, 250)]


def _slow_overlay(image, mask, colours, alpha, ignore_colour):
    out = np.zeros_like(image)
    for y in range(image.shape[0]):
        for x in range(image.shape[1]):
            colour = ignore_colour if mask[y, x] == 255 else colours[mask[y, x]]
            for c in range(3):
                out[y, x, c] = round((1 - alpha) * int(image[y, x, c]) + alpha * colour[c])
    return out


def test_overlay_matches_per_pixel_blend() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    mask = rng.choice([0, 1, 2, 255], size=(5, 7)).astype(np.uint8)
    got = overlay_mask(image, mask, COLOURS, alpha=0.3, ignore_colour=(255, 255, 0))
    want = _slow_overlay(image, mask, COLOURS, 0.3, (255, 255, 0))
    assert got.dtype == np.uint8 and got.shape == image.shape
    assert np.array_equal(got, want)


def test_overlay_alpha_extremes_and_mask_resize() -> None:
    image = np.full((4, 4, 3), 10, dtype=np.uint8)
    mask = np.array([[1, 2], [255, 0]], dtype=np.uint8)  # half size: resized nearest
    assert np.array_equal(overlay_mask(image, mask, COLOURS, alpha=0.0), image)
    full = overlay_mask(image, mask, COLOURS, alpha=1.0)
    assert tuple(full[0, 0]) == COLOURS[1] and tuple(full[0, 3]) == COLOURS[2]
    assert tuple(full[3, 0]) == (255, 255, 255) and tuple(full[3, 3]) == COLOURS[0]


@pytest.mark.parametrize(
    ("mask", "match"),
    [
        (np.full((2, 2), 3, dtype=np.uint8), "class id 3 but only 3 colours"),
        (np.zeros((2, 2, 1), dtype=np.uint8), "HxW class ids"),
    ],
)
def test_overlay_rejects_bad_masks(mask: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        overlay_mask(np.zeros((2, 2, 3), dtype=np.uint8), mask, COLOURS)


def test_overlay_rejects_bad_alpha_and_dtype() -> None:
    mask = np.zeros((2, 2), dtype=np.uint8)
    with pytest.raises(ValueError, match="alpha"):
        overlay_mask(np.zeros((2, 2, 3), dtype=np.uint8), mask, COLOURS, alpha=1.5)
    with pytest.raises(ValueError, match="uint8"):
        overlay_mask(np.zeros((2, 2, 3), dtype=np.float32), mask, COLOURS)


def test_image_grid_layout() -> None:
    tiles = [np.full((2, 3, 3), value, dtype=np.uint8) for value in (10, 20, 30)]
    tiles.append(np.full((1, 1), 40, dtype=np.uint8))  # smaller and grayscale
    grid = image_grid(tiles, ncols=2, pad=1, pad_value=0)
    assert grid.shape == (2 * 2 + 3 * 1, 2 * 3 + 3 * 1, 3) and grid.dtype == np.uint8
    assert (grid[1:3, 1:4] == 10).all() and (grid[1:3, 5:8] == 20).all()
    assert (grid[4:6, 1:4] == 30).all()
    assert (grid[4, 5] == 40).all() and (grid[4, 6] == 0).all()  # top-left, rest is padding
    assert (grid[0] == 0).all() and (grid[:, 4] == 0).all()


def test_image_grid_fewer_tiles_than_columns_and_errors() -> None:
    grid = image_grid([np.zeros((3, 3, 3), dtype=np.uint8)], ncols=4, pad=2)
    assert grid.shape == (7, 7, 3)
    with pytest.raises(ValueError, match="at least one tile"):
        image_grid([], ncols=2)
    with pytest.raises(ValueError, match="ncols"):
        image_grid([np.zeros((3, 3, 3), dtype=np.uint8)], ncols=0)
