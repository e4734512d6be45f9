"""The reporting pipeline."""

from mkdseg.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
