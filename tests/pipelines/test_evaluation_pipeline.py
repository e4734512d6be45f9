"""Evaluation pipeline (DataCatalog + SequentialRunner): the tiny trained model on the val split
-> mIoU, per-class IoU, confusion matrix and a grid of example predictions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mkdseg.pipelines.evaluation import create_pipeline
from mkdseg.reporting.prediction_grid import MIN_TILE_SIDE, enlargement
from tests.conftest import TINY_IMAGE_SIZE, TINY_N_VAL
from tests.pipelines.conftest import TINY_EVALUATION, TINY_KEPT_PREDICTIONS, run_in_memory

PAD = 2  # the prediction grid's gutter
OUTPUTS = ("evaluation_metrics", "confusion_matrix", "prediction_examples")


@pytest.fixture(scope="module")
def evaluated(trained_tiny: dict, tiny_inputs: dict[str, Any]) -> dict:
    return run_in_memory(
        create_pipeline(),
        {
            "student_model": trained_tiny["student_model"],
            "manifest": tiny_inputs["manifest"],
            "class_metadata": tiny_inputs["class_metadata"],
            "val_ids": tiny_inputs["val_ids"],
            "params:evaluation": TINY_EVALUATION,
        },
        OUTPUTS,
    )


def test_miou_is_a_fraction_named_after_the_mode(evaluated: dict) -> None:
    metrics = evaluated["evaluation_metrics"]
    assert 0.0 <= metrics["val_mIoU_whole"] <= 1.0
    assert 0.0 <= metrics["val_pixel_acc_whole"] <= 1.0


def test_per_class_table_has_one_row_per_class(evaluated: dict, tiny_inputs: dict) -> None:
    names = tiny_inputs["class_metadata"]["names"]
    confusion = evaluated["confusion_matrix"]
    assert confusion.index.tolist() == names and confusion.columns.tolist() == names
    assert confusion.to_numpy().sum() > 0 and (confusion.to_numpy() >= 0).all()
    per_class = {
        key.removeprefix("val_IoU_whole."): value
        for key, value in evaluated["evaluation_metrics"].items()
        if key.startswith("val_IoU_whole.")
    }
    assert per_class and set(per_class) <= set(names)  # classes absent from both are left out
    assert all(0.0 <= iou <= 1.0 for iou in per_class.values())
    assert np.mean(list(per_class.values())) == pytest.approx(
        evaluated["evaluation_metrics"]["val_mIoU_whole"]
    )


def test_the_examples_grid_shows_the_kept_predictions(evaluated: dict) -> None:
    grid = evaluated["prediction_examples"]  # one row per kept sample: image | truth | prediction
    assert TINY_KEPT_PREDICTIONS < TINY_N_VAL and grid.dtype == np.uint8
    side = TINY_IMAGE_SIZE * enlargement((TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))  # legible size
    tile = side + PAD
    rows = TINY_KEPT_PREDICTIONS * tile + PAD
    assert side >= MIN_TILE_SIDE and grid.shape[1:] == (3 * tile + PAD, 3)
    assert grid.shape[0] > rows  # the tiles, then the class legend below them
    assert (grid[rows:] == 255).mean() > 0.5  # a white legend strip
