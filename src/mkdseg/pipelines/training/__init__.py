"""The training pipeline."""

from mkdseg.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
