"""Training pipeline: split + manifest -> student 1 (file and MLflow model), every trained
network (for scoring), history, metrics."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.training.nodes import export_model, train_model

TRAIN_INPUTS = ["manifest", "class_metadata", "labeled_ids", "unlabeled_ids", "params:training"]
TRAIN_OUTPUTS = ["student_model", "trained_networks", "training_history", "training_metrics"]


def create_pipeline(**kwargs: object) -> Pipeline:
    train = node(train_model, TRAIN_INPUTS, TRAIN_OUTPUTS, name="train_model")
    export = node(
        export_model,
        ["student_model", "params:mlflow"],
        "mlflow_student_model",
        name="log_model_to_mlflow",
    )
    return Pipeline([train, export], tags="training")
