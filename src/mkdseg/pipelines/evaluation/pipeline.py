"""Evaluation pipeline: student 1 on the val split -> metrics, confusion matrix, examples."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.evaluation.nodes import evaluate_model


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                evaluate_model,
                inputs=[
                    "student_model",
                    "manifest",
                    "class_metadata",
                    "val_ids",
                    "params:evaluation",
                ],
                outputs=["evaluation_metrics", "confusion_matrix", "prediction_examples"],
                name="evaluate_model",
            ),
        ],
        tags="evaluation",
    )
