"""Ingestion pipeline: ``params:dataset`` -> manifest, class metadata, quarantine, sample grid."""

from __future__ import annotations

from kedro.pipeline import Pipeline, node

from mkdseg.pipelines.ingestion.nodes import build_manifest, draw_sample_grid


def create_pipeline(**kwargs: object) -> Pipeline:
    return Pipeline(
        [
            node(
                build_manifest,
                inputs="params:dataset",
                outputs=["manifest", "class_metadata", "quarantine", "ingestion_metrics"],
                name="build_manifest",
            ),
            node(
                draw_sample_grid,
                inputs=["manifest", "class_metadata", "params:sample_grid"],
                outputs="sample_grid",
                name="draw_sample_grid",
            ),
        ],
        tags="ingestion",
    )
