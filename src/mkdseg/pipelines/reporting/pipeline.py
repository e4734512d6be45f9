"""Reporting pipeline: evaluation, training history, the images to label next and the
experiment's runs -> HTML and Markdown report."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.reporting.nodes import build_report


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                build_report,
                inputs=[
                    "evaluation_metrics",
                    "confusion_matrix",
                    "training_history",
                    "prediction_examples",
                    "experiment_runs",
                    "class_metadata",
                    "split_metrics",
                    "labelling_table",
                    "proposed_masks",
                    "params:training",
                    "params:splits",
                    "params:evaluation",
                    "params:labelling",
                ],
                outputs="report",
                name="build_report",
            ),
        ],
        tags="reporting",
    )
