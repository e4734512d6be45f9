"""The prediction pipeline."""

from mkdseg.pipelines.prediction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
