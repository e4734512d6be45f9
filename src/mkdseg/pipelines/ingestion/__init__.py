"""Ingestion: read a dataset source, validate every sample, write the manifest."""

from mkdseg.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
