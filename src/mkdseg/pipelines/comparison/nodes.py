"""Comparison nodes: thin wrappers that bind one variant and seed to the training and
evaluation nodes; the settings logic is ``mkdseg.comparison``."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pandas as pd
from PIL import Image

from mkdseg import comparison as variants
from mkdseg import splitting
from mkdseg.catalog.paths import project_root
from mkdseg.pipelines.evaluation.nodes import evaluate_model
from mkdseg.pipelines.training.nodes import train_model
from mkdseg.reporting.comparison import comparison_table, to_markdown_table
from mkdseg.reporting.figures import close_figure, comparison_chart, figure_to_png_bytes

Bundle = dict[str, Any]


def prepare(
    manifest: pd.DataFrame,
    class_metadata: dict,
    comparison: dict,
    training: dict,
    *,
    variant: str,
    seed: int,
) -> tuple[list[str], list[str], list[str], dict[str, Any], dict[str, Any]]:
    """The run's split (its budget, drawn with its seed), training settings and identity.

    Settings are computed here, not in the training node, so the training node's MLflow run
    logs the settings it really used rather than the base ``params:training``.
    """
    labeled = variants.variant_spec(comparison, variant)["labeled"]
    ids = splitting.make_split(manifest, class_metadata["names"], labeled, seed, project_root())
    settings = variants.variant_training(training, comparison, variant, seed)
    return ids[0], ids[1], ids[2], settings, variants.variant_params(comparison, settings, variant)


def train_variant(
    manifest: pd.DataFrame,
    class_metadata: dict,
    labeled_ids: list[str],
    unlabeled_ids: list[str],
    settings: dict,
    identity: dict,
) -> tuple[Bundle, pd.DataFrame, dict[str, float], dict[str, Any]]:
    """The training node; also returns the settings it used (logged as the run's params)."""
    bundle, history, metrics = train_model(
        manifest, class_metadata, labeled_ids, unlabeled_ids, settings
    )
    return bundle, history, metrics, variants.deep_merge(identity, {"training": settings})


def evaluate_variant(
    student_model: Bundle,
    manifest: pd.DataFrame,
    class_metadata: dict,
    val_ids: list[str],
    evaluation: dict,
    identity: dict,
) -> tuple[dict[str, float], dict[str, Any]]:
    """The evaluation node's metrics, with the run's identity as params."""
    metrics, _, _ = evaluate_model(student_model, manifest, class_metadata, val_ids, evaluation)
    return metrics, identity


def summarise(
    evaluation: dict, *runs: dict
) -> tuple[pd.DataFrame, pd.DataFrame, str, Image.Image, dict[str, float]]:
    """Per-run results, the mean +- std table (CSV and Markdown), its chart and headline metrics.

    ``runs`` alternates (evaluation metrics, run params) per variant and seed.
    """
    metric = f"val_mIoU_{evaluation.get('mode', 'whole')}"
    results = variants.results_frame(zip(runs[1::2], runs[0::2], strict=True))
    table = comparison_table(results, metric=metric)
    figure = comparison_chart(table, title=f"{metric}: mean ± std over seeds")
    chart = Image.open(BytesIO(figure_to_png_bytes(figure)))
    close_figure(figure)
    return (
        variants.per_run_table(results, metric),
        table,
        to_markdown_table(table),
        chart,
        variants.headline_metrics(table),
    )
