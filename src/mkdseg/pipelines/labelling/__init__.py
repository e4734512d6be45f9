"""The labelling pipeline."""

from mkdseg.pipelines.labelling.pipeline import create_pipeline

__all__ = ["create_pipeline"]
