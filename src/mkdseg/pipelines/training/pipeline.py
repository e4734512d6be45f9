"""Training pipeline: split + manifest -> student 1 (file and MLflow model), history, metrics."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.training.nodes import export_model, train_model


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                train_model,
                inputs=[
                    "manifest",
                    "class_metadata",
                    "labeled_ids",
                    "unlabeled_ids",
                    "params:training",
                ],
                outputs=["student_model", "training_history", "training_metrics"],
                name="train_model",
            ),
            node(
                export_model,
                inputs=["student_model", "params:mlflow"],
                outputs="mlflow_student_model",
                name="log_model_to_mlflow",
            ),
        ],
        tags="training",
    )
