"""Evaluation + reporting pipelines (DataCatalog + SequentialRunner): the tiny trained model's
metrics and curves -> a report folder with its mIoU, per-class table and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mkdseg.catalog import ReportDataset
from mkdseg.pipelines import evaluation, reporting
from tests.pipelines.conftest import (
    TINY_EVALUATION,
    TINY_LABELED,
    KeptDataset,
    tiny_training_params,
)

FIGURES = ("per_class_iou.png", "confusion_matrix.png", "training_curves.png", "predictions.png")
# An earlier finished run of the experiment, as MlflowRunsDataset reads it.
EARLIER_RUN = {
    "run_id": "earlier",
    "status": "FINISHED",
    "params.training.method": "supervised",
    "params.splits.labeled": str(TINY_LABELED),
    "params.training.seed": "0",
    "start_time": pd.Timestamp("2026-01-01", tz="UTC"),
    "metrics.val_mIoU_whole": 0.125,
}


@pytest.fixture(scope="module")
def reported(
    trained_tiny: dict, tiny_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, float], Path]:
    folder = tmp_path_factory.mktemp("reporting") / "report"
    inputs = {
        "student_model": trained_tiny["student_model"],
        "training_history": trained_tiny["training_history"],
        "experiment_runs": pd.DataFrame([EARLIER_RUN]),
        "params:training": tiny_training_params(folder.parent / "checkpoints"),
        "params:splits": {"labeled": TINY_LABELED, "seed": 0, "draw": "uniform"},
        "params:evaluation": TINY_EVALUATION,
        **{
            name: tiny_inputs[name]
            for name in ("manifest", "class_metadata", "val_ids", "split_metrics")
        },
    }
    catalog = DataCatalog(
        {
            **{name: MemoryDataset(value) for name, value in inputs.items()},
            "evaluation_metrics": KeptDataset(),
            "report": ReportDataset(str(folder)),
        }
    )
    SequentialRunner().run(evaluation.create_pipeline() + reporting.create_pipeline(), catalog)
    return catalog.load("evaluation_metrics"), folder


def test_the_report_shows_the_model_miou_and_one_row_per_class(
    reported: tuple[dict[str, float], Path], tiny_inputs: dict[str, Any]
) -> None:
    metrics, folder = reported
    miou = f"{metrics['val_mIoU_whole']:.4f}"
    html = (folder / "report.html").read_text(encoding="utf-8")
    markdown = (folder / "summary.md").read_text(encoding="utf-8")
    assert miou in html and miou in markdown
    for name in tiny_inputs["class_metadata"]["names"]:
        assert f"| {name} |" in markdown
    for figure in FIGURES:
        assert (folder / figure).stat().st_size > 0, figure
    n_labeled, n_val = len(tiny_inputs["labeled_ids"]), len(tiny_inputs["val_ids"])
    n_unlabeled = len(tiny_inputs["unlabeled_ids"])
    assert f"| data.labeled images (with a mask) | {n_labeled} |" in markdown
    assert f"| data.unlabeled: masked, not drawn (benchmark protocol) | {n_unlabeled} |" in markdown
    assert f"| data.validation images (evaluated on) | {n_val} |" in markdown


def test_the_comparison_puts_this_run_beside_the_earlier_ones(
    reported: tuple[dict[str, float], Path],
) -> None:
    metrics, folder = reported
    rows = {
        line.split(" | ")[0].removeprefix("| "): line
        for line in (folder / "summary.md").read_text(encoding="utf-8").splitlines()
        if line.startswith(("| supervised |", "| mkd |"))
    }
    assert " | 0.1250 | " in rows["supervised"]
    miou = metrics["val_mIoU_whole"]
    assert f" | {miou:.4f} | " in rows["mkd"]
    assert f" | {miou - EARLIER_RUN['metrics.val_mIoU_whole']:.4f} | " in rows["mkd"]  # the gain
