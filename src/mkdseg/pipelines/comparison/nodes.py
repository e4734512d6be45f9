"""Comparison nodes: thin wrappers that bind one variant and seed to the training and
evaluation nodes, and the summary over all runs; the settings logic is ``variants``, the
arithmetic ``summary``."""

from __future__ import annotations

import logging
from io import BytesIO
from typing import Any

import pandas as pd
from PIL import Image

from mkdseg import splitting
from mkdseg.catalog.paths import project_root
from mkdseg.pipelines.comparison.shape import comparison_grids
from mkdseg.pipelines.comparison.summary import (
    RunResult,
    headline_metrics,
    per_run_table,
    reported_table,
    results_frame,
    runs_without_test,
)
from mkdseg.pipelines.comparison.variants import Built, Grid, RunIdentity, deep_merge
from mkdseg.pipelines.evaluation.nodes import evaluate_model
from mkdseg.pipelines.training.nodes import train_model
from mkdseg.reporting.figures import close_figure, comparison_chart, figure_to_png_bytes
from mkdseg.sources.validation import TEST_SUBSET

Bundle = dict[str, Any]
log = logging.getLogger(__name__)


def prepare(
    manifest: pd.DataFrame,
    class_metadata: dict,
    comparison: dict,
    training: dict,
    *,
    variant: str,
    seed: int,
    built: Built,
) -> tuple[list[str], list[str], list[str], list[str], dict[str, Any], RunIdentity]:
    """The run's split (its budget, drawn with its seed; val and, where the set has one, the
    test images), training settings and identity.

    Settings are computed here, not in the training node, so the training node's MLflow run
    logs the settings it really used rather than the base ``params:training``.
    """
    grid = Grid.from_parameters(comparison)
    grid.check_built(built, comparison_grids().get(built.pipeline))
    labeled = grid.variant(variant).labeled
    names = class_metadata["names"]
    ids = splitting.make_split(manifest, names, labeled, seed, project_root(), grid.split_draw)
    settings = grid.settings(training, variant, seed)
    test_ids = sorted(manifest.loc[manifest["subset"] == TEST_SUBSET, "id"])  # none: no test split
    return ids[0], ids[1], ids[2], test_ids, settings, grid.identity(variant, settings)


def train_variant(
    manifest: pd.DataFrame,
    class_metadata: dict,
    labeled_ids: list[str],
    unlabeled_ids: list[str],
    settings: dict,
    identity: RunIdentity,
) -> tuple[Bundle, pd.DataFrame, dict[str, float], dict[str, Any]]:
    """The training node; also returns the settings it used (logged as the run's params)."""
    bundle, _, history, metrics = train_model(
        manifest, class_metadata, labeled_ids, unlabeled_ids, settings
    )
    return bundle, history, metrics, deep_merge(identity.params(), {"training": settings})


def evaluate_variant(
    student_model: Bundle,
    manifest: pd.DataFrame,
    class_metadata: dict,
    val_ids: list[str],
    test_ids: list[str],
    evaluation: dict,
    identity: RunIdentity,
) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """The metrics on val and, if the set has one, on test (``test_mIoU_whole``, ...), and the
    run's identity as params (both for MLflow), and the two together for the summary (the run's
    result file)."""
    inputs = (student_model, manifest, class_metadata)
    metrics, _, _ = evaluate_model(*inputs, val_ids, evaluation)
    if test_ids:
        metrics |= evaluate_model(*inputs, test_ids, evaluation, TEST_SUBSET)[0]
    return metrics, identity.params(), RunResult(identity, metrics).as_dict()


def summarise(
    evaluation: dict, *results: dict[str, Any] | None, runs: tuple[str, ...]
) -> tuple[pd.DataFrame, pd.DataFrame, str, Image.Image, dict[str, float]]:
    """Per-run results, the mean +- std table (CSV and Markdown), its chart and headline metrics,
    over the runs that finished; the others (``None``: no result file yet, e.g. a job still to
    run or one that failed) are named under the Markdown table and in the log, never counted.
    The table reports test mIoU where every run has it, with val's mean beside it."""
    mode = evaluation.get("mode", "whole")
    frame = results_frame(RunResult.from_dict(r) for r in results if r is not None)
    missing = [run for run, result in zip(runs, results, strict=True) if result is None]
    metric, table, markdown = reported_table(frame, mode)
    if (lacking := runs_without_test(frame, mode)) and len(lacking) < len(frame):
        log.warning("comparison: reporting val, not test: no test mIoU for %s", ", ".join(lacking))
    figure = comparison_chart(table, title=f"{metric}: mean ± std over seeds")
    chart = Image.open(BytesIO(figure_to_png_bytes(figure)))
    close_figure(figure)
    if missing:
        log.warning("comparison: %d run(s) not finished: %s", len(missing), ", ".join(missing))
        markdown += f"\nNot finished, so not in the table: {', '.join(missing)}.\n"
    shown = dict.fromkeys([metric, f"val_mIoU_{mode}"])
    return per_run_table(frame, *shown), table, markdown, chart, headline_metrics(table)
