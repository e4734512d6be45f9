"""The evaluation pipeline."""

from mkdseg.pipelines.evaluation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
