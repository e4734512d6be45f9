"""Evaluation pipeline: student 1 on the val split -> metrics, confusion matrix, examples."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.evaluation.nodes import evaluate_model

EVALUATE_INPUTS = ["student_model", "manifest", "class_metadata", "val_ids", "params:evaluation"]
EVALUATE_OUTPUTS = ["evaluation_metrics", "confusion_matrix", "prediction_examples"]


def create_pipeline(**kwargs: object) -> Pipeline:
    evaluate = node(evaluate_model, EVALUATE_INPUTS, EVALUATE_OUTPUTS, name="evaluate_model")
    return Pipeline([evaluate], tags="evaluation")
