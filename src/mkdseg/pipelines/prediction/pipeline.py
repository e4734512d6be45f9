"""Prediction pipeline: a folder of new images -> palette masks, overlays and a status table."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.prediction.nodes import segment_folder


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                segment_folder,
                inputs=["prediction_model", "class_metadata", "params:prediction"],
                outputs=["prediction_table", "prediction_metrics"],
                name="segment_folder",
            ),
        ],
        tags="prediction",
    )
