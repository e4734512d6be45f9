"""The example-prediction grid: rows of image | ground truth | prediction, checked inputs."""

from __future__ import annotations

import numpy as np
import pytest

from mkdseg.reporting.prediction_grid import prediction_grid, proposal_grid

COLOURS = [(0, 0, 0), (255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_prediction_grid_rows_are_image_gt_prediction() -> None:
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8) for _ in range(2)]
    gts = [rng.integers(0, 4, size=(8, 10)).astype(np.uint8) for _ in range(2)]
    gts[0][0, 0] = 255  # ignore pixel: painted with the ignore colour
    preds = [np.full((8, 10), 1, dtype=np.uint8), np.zeros((8, 10), dtype=np.uint8)]
    grid = prediction_grid(images, gts, preds, np.array(COLOURS), alpha=0.5, pad=2, min_tile_side=1)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * 8 + 3 * 2, 3 * 10 + 4 * 2, 3)
    tile = lambda row, col: grid[2 + row * 10 : 10 + row * 10, 2 + col * 12 : 12 + col * 12]  # noqa: E731
    np.testing.assert_array_equal(tile(0, 0), images[0])
    expected_pred = np.rint(0.5 * images[0] + 0.5 * np.array(COLOURS[1])).astype(np.uint8)
    np.testing.assert_array_equal(tile(0, 2), expected_pred)
    assert tuple(tile(0, 1)[0, 0]) == tuple(
        np.rint(0.5 * images[0][0, 0] + 0.5 * 255).astype(np.uint8)
    )


def test_prediction_grid_checks_inputs() -> None:
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=np.uint8)
    with pytest.raises(ValueError, match="as many images"):
        prediction_grid([image], [mask], [], COLOURS)
    with pytest.raises(ValueError, match="at least one"):
        prediction_grid([], [], [], COLOURS)
    with pytest.raises(ValueError, match=r"predictions\[0\]"):
        prediction_grid([image], [mask], [np.zeros((3, 4), dtype=np.uint8)], COLOURS)
    with pytest.raises(ValueError, match=r"images\[0\] must be uint8"):
        prediction_grid([image.astype(float)], [mask], [mask], COLOURS)


def test_prediction_grid_resizes_to_the_first_image() -> None:
    images = [np.zeros((6, 6, 3), np.uint8), np.zeros((12, 9, 3), np.uint8)]
    masks = [np.zeros(i.shape[:2], np.uint8) for i in images]
    grid = prediction_grid(images, masks, masks, COLOURS, pad=0, min_tile_side=1)
    assert grid.shape == (12, 18, 3)


def test_small_images_are_enlarged_sharply_and_the_legend_names_every_class() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(48, 48, 3), dtype=np.uint8)
    mask = rng.integers(0, 4, size=(48, 48)).astype(np.uint8)
    names = ["background", "stripes", "checks", "dots"]
    plain = prediction_grid([image], [mask], [mask], COLOURS, pad=0, min_tile_side=1)
    grid = prediction_grid([image], [mask], [mask], COLOURS, pad=0, class_names=names)
    factor = 4  # 48 px -> 192 px >= MIN_TILE_SIDE (160), an integer factor
    tiles = grid[: 48 * factor, : 3 * 48 * factor]
    np.testing.assert_array_equal(tiles[::factor, ::factor], plain)  # nearest: every pixel kept
    np.testing.assert_array_equal(tiles[1::factor, 3::factor], plain)
    legend = grid[48 * factor :]
    assert legend.shape[0] > 0 and legend.shape[1] == grid.shape[1]
    for colour in COLOURS[1:]:  # each class's swatch is drawn in its colour
        assert (legend == np.array(colour, np.uint8)).all(axis=-1).sum() >= 10 * 10


def test_proposal_grid_pairs_each_image_with_its_proposal_two_per_row() -> None:
    images = [np.full((4, 6, 3), v, dtype=np.uint8) for v in (10, 20, 30)]
    masks = [np.full((4, 6), c, dtype=np.uint8) for c in (1, 2, 3)]
    grid = proposal_grid(images, masks, COLOURS, min_tile_side=1)
    pad = 2
    assert grid.shape == (2 * 4 + 3 * pad, 4 * 6 + 5 * pad, 3)  # 2 rows of image | proposal x 2

    def tile(row: int, col: int) -> np.ndarray:
        top, left = pad + row * 6, pad + col * 8
        return grid[top : top + 4, left : left + 6]

    np.testing.assert_array_equal(tile(0, 2), images[1])
    expected = np.rint(0.5 * 20 + 0.5 * np.array(COLOURS[2])).astype(np.uint8)
    assert tuple(tile(0, 3)[0, 0]) == tuple(expected)
    with pytest.raises(ValueError, match="as many images"):
        proposal_grid(images, masks[:2], COLOURS)


def test_large_images_are_shrunk_to_the_tile_limit() -> None:
    from mkdseg.reporting.prediction_grid import MAX_TILE_SIDE

    images = [np.zeros((1024, 2048, 3), dtype=np.uint8)]
    grid = proposal_grid(images, [np.zeros((1024, 2048), dtype=np.uint8)], COLOURS)
    assert grid.shape[1] == 2 * MAX_TILE_SIDE + 3 * 2  # two tiles of 384 x 192 and the padding
    assert grid.shape[0] == MAX_TILE_SIDE // 2 + 2 * 2
