"""Splits pipeline: manifest + ``params:splits`` -> labeled / unlabeled / val id lists."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.splits.nodes import make_split


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                make_split,
                inputs=["manifest", "class_metadata", "params:splits"],
                outputs=["labeled_ids", "unlabeled_ids", "val_ids", "split_stats", "split_metrics"],
                name="make_split",
            ),
        ],
        tags="splits",
    )
