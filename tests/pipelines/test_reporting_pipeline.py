"""Evaluation + labelling + reporting pipelines (DataCatalog + SequentialRunner): the tiny
trained model's metrics, curves and images to label -> a report folder with its mIoU, per-class
table and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mkdseg.catalog import ProposalsDataset, ReportDataset, TableDataset
from mkdseg.pipelines import evaluation, labelling, reporting
from tests.pipelines.conftest import (
    RUN_REPORT_FIGURES,
    TINY_EVALUATION,
    TINY_LABELED,
    TINY_LABELLING,
    TINY_PROPOSED,
    KeptDataset,
    tiny_training_params,
)
from tests.pipelines.test_labelling_pipeline import TABLE_LOAD

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
        "trained_networks": trained_tiny["trained_networks"],
        "params:labelling": TINY_LABELLING,
        "training_history": trained_tiny["training_history"],
        "experiment_runs": pd.DataFrame([EARLIER_RUN]),
        "params:training": tiny_training_params(folder.parent / "checkpoints"),
        "params:splits": {"labeled": TINY_LABELED, "seed": 0, "draw": "uniform"},
        "params:evaluation": TINY_EVALUATION,
        **{
            name: tiny_inputs[name]
            for name in ("manifest", "class_metadata", "val_ids", "unlabeled_ids", "split_metrics")
        },
    }
    catalog = DataCatalog(
        {
            **{name: MemoryDataset(value) for name, value in inputs.items()},
            "evaluation_metrics": KeptDataset(),
            # on disk, as the catalog has them: the report reads what a separate run would read
            "labelling_table": TableDataset(
                str(folder.parent / "ranked.csv"), load_args=TABLE_LOAD
            ),
            "proposed_masks": ProposalsDataset(str(folder.parent / "to_label")),
            "report": ReportDataset(str(folder)),
        }
    )
    pipeline = evaluation.create_pipeline() + labelling.create_pipeline()
    SequentialRunner().run(pipeline + reporting.create_pipeline(), catalog)
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
    for figure in RUN_REPORT_FIGURES:
        assert (folder / figure).stat().st_size > 0, figure
    n_labeled, n_val = len(tiny_inputs["labeled_ids"]), len(tiny_inputs["val_ids"])
    n_unlabeled = len(tiny_inputs["unlabeled_ids"])
    assert f"| data.labeled images (with a mask) | {n_labeled} |" in markdown
    assert f"| data.unlabeled: masked, not drawn (benchmark protocol) | {n_unlabeled} |" in markdown
    assert f"| data.validation images (evaluated on) | {n_val} |" in markdown


def test_the_report_lists_the_images_to_label_next_best_first(
    reported: tuple[dict[str, float], Path], tiny_inputs: dict[str, Any]
) -> None:
    _, folder = reported
    markdown = (folder / "summary.md").read_text(encoding="utf-8")
    section = markdown.split("## Which images to label next", 1)[1].split("## ", 1)[0]
    rows = [row for row in section.splitlines() if row.startswith("| ") and "rank" not in row]
    rows = [row for row in rows if "---" not in row]
    ranks = [int(row.split("|")[1]) for row in rows]
    assert ranks == list(range(1, TINY_PROPOSED + 1))
    scores = [float(row.split("|")[3]) for row in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(row.split("|")[2].strip() in tiny_inputs["unlabeled_ids"] for row in rows)
    assert "![Scores of the unlabeled images" in markdown


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
