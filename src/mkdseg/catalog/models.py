"""Datasets for trained models and for the experiment's run table.

- ``ModelBundleDataset``: student 1 as a torch bundle file (weights + architecture + classes).
- ``MlflowModelDataset``: the same model logged as an ``mlflow.pytorch`` model with a
  signature and an input example, on the active (parent) run; loadable back with
  ``mlflow.pytorch.load_model`` and ``mlflow.pyfunc.load_model`` (where mkdseg is installed:
  the module is pickled by reference to ``mkdseg.core.export.Segmenter``).
- ``SegmenterSource``: what the prediction pipeline segments with: a bundle file, or an
  MLflow model URI when one is given.
- ``MlflowRunsDataset``: the finished parent runs of the experiment, for the report's
  comparison table.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import ImagePreview
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec

from mkdseg.catalog.datasets import LocalFileDataset
from mkdseg.core.export import Segmenter, load_bundle, save_bundle, segmenter_from_bundle

INPUT_EXAMPLE_SIZE = 64  # pixels; the model takes any size, the example only documents the layout


class ModelBundleDataset(LocalFileDataset):
    """A model bundle (``mkdseg.core.export``) stored with ``torch.save``, written atomically."""

    def load(self) -> dict[str, Any]:
        if not self.filepath.is_file():
            raise DatasetError(f"no trained model at {self.filepath}: run `kedro run --pipeline training` first")
        return load_bundle(self.filepath)

    def save(self, data: dict[str, Any]) -> None:
        save_bundle(data, self.filepath)


class MlflowModelDataset(AbstractDataset):
    """Logs a bundle as an MLflow pytorch model (a ``Segmenter``: RGB floats in [0,1] -> logits)."""

    def __init__(self, artifact_path: str = "model", metadata: dict[str, Any] | None = None) -> None:
        self._artifact_path = artifact_path
        self._model_uri: str | None = None
        self.metadata = metadata

    def save(self, data: dict[str, Any]) -> None:
        if mlflow.active_run() is None:
            raise DatasetError("no active MLflow run to log the model to; run through `kedro run` (kedro-mlflow)")
        segmenter = segmenter_from_bundle(data)
        example = np.zeros((1, 3, INPUT_EXAMPLE_SIZE, INPUT_EXAMPLE_SIZE), dtype=np.float32)
        classes = len(data["class_names"])
        # Batch, height and width are free (-1): the model segments images of any size.
        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, -1, -1))]),
                                   outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, classes, -1, -1))]))
        # pickle, not MLflow 3's default torch.export ("pt2"), which fixes the example's image size.
        info = mlflow.pytorch.log_model(segmenter, name=self._artifact_path, input_example=example,
                                        signature=signature,
                                        serialization_format="pickle")
        self._model_uri = info.model_uri

    def load(self) -> Segmenter:
        if self._model_uri is None:
            raise DatasetError("this run logged no model yet; load one by URI with SegmenterSource")
        return mlflow.pytorch.load_model(self._model_uri)

    def _describe(self) -> dict[str, Any]:
        return {"artifact_path": self._artifact_path, "model_uri": self._model_uri}


class SegmenterSource(AbstractDataset):
    """Read-only: a ``Segmenter`` from an MLflow model URI if given, else from the bundle file."""

    def __init__(self, filepath: str, model_uri: str | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._bundle = ModelBundleDataset(filepath)
        self._model_uri = model_uri or None
        self.metadata = metadata

    def load(self) -> Segmenter:
        if self._model_uri:
            try:
                model = mlflow.pytorch.load_model(self._model_uri)
            except Exception as exc:
                raise DatasetError(f"could not load the MLflow model {self._model_uri!r} ({exc}); "
                                   "copy its URI from the MLflow UI (runs:/<run id>/model)") from exc
            if not isinstance(model, Segmenter):
                raise DatasetError(f"{self._model_uri!r} is not an mkdseg segmentation model")
            return model.eval()
        return segmenter_from_bundle(self._bundle.load())

    def save(self, data: Any) -> None:
        raise DatasetError("SegmenterSource is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"filepath": str(self._bundle.filepath), "model_uri": self._model_uri}


class MlflowRunsDataset(AbstractDataset):
    """Read-only: parent runs of an MLflow experiment as a DataFrame (``mlflow.search_runs``)."""

    def __init__(self, experiment: str = "mkdseg", metadata: dict[str, Any] | None = None) -> None:
        self._experiment = experiment
        self.metadata = metadata

    def load(self) -> pd.DataFrame:
        runs = mlflow.search_runs(experiment_names=[self._experiment], output_format="pandas")
        if runs.empty or "tags.mlflow.parentRunId" not in runs:
            return runs
        return runs[runs["tags.mlflow.parentRunId"].isna()].reset_index(drop=True)

    def save(self, data: Any) -> None:
        raise DatasetError("MlflowRunsDataset is read-only")

    def _describe(self) -> dict[str, Any]:
        return {"experiment": self._experiment}


class ReportDataset(LocalFileDataset):
    """A report folder (HTML, Markdown, figure PNGs) rendered by ``mkdseg.reporting.write_report``.

    The node returns the report's content (a dict of ``write_report`` arguments); this dataset
    renders and writes it, each file atomically. kedro-viz previews the per-class IoU chart.
    """

    def save(self, data: dict[str, Any]) -> None:
        from mkdseg.reporting.report import write_report

        write_report(self.filepath, **data)

    def load(self) -> dict[str, Path]:
        if not self.filepath.is_dir():
            raise DatasetError(f"no report at {self.filepath}: run `kedro run --pipeline reporting` first")
        return {p.name: p for p in sorted(self.filepath.iterdir()) if not p.name.startswith(".")}

    def preview(self) -> ImagePreview:
        chart = self.filepath / "per_class_iou.png"
        return ImagePreview(base64.b64encode(chart.read_bytes()).decode()) if chart.is_file() else ImagePreview("")

    def _exists(self) -> bool:
        return (self.filepath / "report.html").is_file()
