"""Kedro-side I/O for mkdseg: atomic local datasets with kedro-viz previews, project paths."""

from mkdseg.catalog.datasets import (
    IdListDataset,
    ImageDataset,
    JSONDataset,
    OptionalJSONDataset,
    TableDataset,
    TextDataset,
)
from mkdseg.catalog.models import (
    MlflowModelDataset,
    MlflowRunsDataset,
    ModelBundleDataset,
    ReportDataset,
    SegmenterSource,
)
from mkdseg.catalog.paths import project_root, resolve_path, tracking_uri
from mkdseg.catalog.proposals import ProposalsDataset
from mkdseg.core.atomic import atomic_path, atomic_write_bytes, atomic_write_text

__all__ = [
    "IdListDataset",
    "ImageDataset",
    "JSONDataset",
    "MlflowModelDataset",
    "MlflowRunsDataset",
    "ModelBundleDataset",
    "OptionalJSONDataset",
    "ProposalsDataset",
    "ReportDataset",
    "SegmenterSource",
    "TableDataset",
    "TextDataset",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "project_root",
    "resolve_path",
    "tracking_uri",
]
