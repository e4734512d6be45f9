"""Datasets for trained models and for the experiment's run table.

- ``ModelBundleDataset``: student 1 as a torch bundle file (weights + architecture + classes).
- ``MlflowModelDataset``: the same model logged as an ``mlflow.pytorch`` model with a
  signature and an input example, on the active (parent) run, optionally registered in the
  model registry. By default in MLflow's ``pt2`` format (``torch.export``): a graph with free
  batch, height and width, loadable with ``mlflow.pytorch.load_model`` /
  ``mlflow.pyfunc.load_model`` and servable with ``mlflow models serve`` where mkdseg is not
  installed. ``serialization_format: pickle`` logs the ``Segmenter`` module itself instead,
  which needs mkdseg to load.
- ``SegmenterSource``: what the prediction pipeline segments with: a bundle file, or an
  MLflow model URI (``runs:/<run id>/model``, ``models:/<name>/<version>``) when one is given.
- ``MlflowRunsDataset``: the finished parent runs of the experiment, for the report's
  comparison table.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from kedro.io import AbstractDataset, DatasetError
from kedro_datasets._typing import ImagePreview
from mlflow.models import ModelSignature
from mlflow.types import Schema, TensorSpec
from torch import nn

from mkdseg.catalog.datasets import LocalFileDataset
from mkdseg.core.prediction.segmenter import (
    Segmenter,
    load_bundle,
    save_bundle,
    segmenter_from_bundle,
)

log = logging.getLogger(__name__)

# The input example only documents the layout: the model takes any batch and image size. Its
# batch is 2 because torch.export fixes a dimension whose example size is 1.
INPUT_EXAMPLE_BATCH = 2
INPUT_EXAMPLE_SIZE = 64  # pixels
RGB_CHANNELS = 3
FREE = -1  # a free dimension in an MLflow tensor signature
SERIALIZATION_FORMATS = ("pt2", "pickle")
REGISTERED_MODEL_TAG = "mkdseg.registered_model"  # on the parent run: models:/<name>/<version>
REGISTERED_MODEL_PARAMETER = "mlflow.registered_model_name"


def segmenter_signature(classes: int) -> ModelSignature:
    """RGB floats in [0, 1] (B, 3, H, W) -> class logits (B, classes, H, W), every B, H, W free."""
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (FREE, RGB_CHANNELS, FREE, FREE))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (FREE, classes, FREE, FREE))]),
    )


def is_segmenter_signature(signature: ModelSignature | None) -> bool:
    """True for the signature ``MlflowModelDataset`` logs (any number of classes)."""
    if signature is None or signature.inputs is None or not signature.inputs.is_tensor_spec():
        return False
    specs = signature.inputs.inputs
    return len(specs) == 1 and tuple(specs[0].shape) == (FREE, RGB_CHANNELS, FREE, FREE)


class ModelBundleDataset(LocalFileDataset):
    """A model bundle (``core/prediction/segmenter.py``) stored with ``torch.save``, written
    atomically."""

    def load(self) -> dict[str, Any]:
        if not self.filepath.is_file():
            raise DatasetError(
                f"no trained model at {self.filepath}: run `kedro run --pipelines training` first"
            )
        return load_bundle(self.filepath)

    def save(self, data: dict[str, Any]) -> None:
        save_bundle(data, self.filepath)


class MlflowModelDataset(AbstractDataset):
    """Logs a bundle as an MLflow pytorch model (a ``Segmenter``: RGB floats in [0,1] -> logits).

    ``save`` takes ``{"bundle": <model bundle>, "registered_model_name": <name or None>}``; with a
    name the model is also registered (``models:/<name>/<version>``), and the parent run gets
    tag ``mkdseg.registered_model`` with that URI.
    """

    def __init__(
        self,
        artifact_path: str = "model",
        serialization_format: str = "pt2",
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if serialization_format not in SERIALIZATION_FORMATS:
            raise DatasetError(
                "mlflow_student_model: serialization_format must be one of "
                f"{SERIALIZATION_FORMATS}, got {serialization_format!r} (conf/base/catalog.yml)"
            )
        self._artifact_path = artifact_path
        self._format = serialization_format
        self._model_uri: str | None = None
        self.metadata = metadata

    def save(self, data: dict[str, Any]) -> None:
        name = data.get("registered_model_name")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise DatasetError(
                f"{REGISTERED_MODEL_PARAMETER} must be a model name or null, got {name!r} "
                "(conf/base/parameters_training.yml)"
            )
        if mlflow.active_run() is None:
            raise DatasetError(
                "no active MLflow run to log the model to; run through `kedro run` (kedro-mlflow)"
            )
        bundle = data["bundle"]
        segmenter = segmenter_from_bundle(bundle)
        example = np.zeros(
            (INPUT_EXAMPLE_BATCH, RGB_CHANNELS, INPUT_EXAMPLE_SIZE, INPUT_EXAMPLE_SIZE),
            dtype=np.float32,
        )
        info = mlflow.pytorch.log_model(
            segmenter,
            name=self._artifact_path,
            input_example=example,
            signature=segmenter_signature(len(bundle["class_names"])),
            serialization_format=self._format,
            registered_model_name=name,
        )
        self._model_uri = info.model_uri
        if name is not None:
            registered = f"models:/{name}/{info.registered_model_version}"
            mlflow.set_tag(REGISTERED_MODEL_TAG, registered)
            log.info("Registered the trained student as %s", registered)

    def load(self) -> nn.Module:
        if self._model_uri is None:
            raise DatasetError("this run logged no model yet; load one by URI with SegmenterSource")
        return mlflow.pytorch.load_model(self._model_uri)

    def _describe(self) -> dict[str, Any]:
        return {
            "artifact_path": self._artifact_path,
            "serialization_format": self._format,
            "model_uri": self._model_uri,
        }


class SegmenterSource(AbstractDataset):
    """Read-only: a segmentation model from an MLflow model URI if given, else from the bundle file.

    From MLflow, a ``pt2`` model loads as an exported graph (an ``nn.Module`` without
    ``Segmenter``'s helpers, already in inference mode), a ``pickle`` one as a ``Segmenter``.
    """

    def __init__(
        self, filepath: str, model_uri: str | None = None, metadata: dict[str, Any] | None = None
    ) -> None:
        self._bundle = ModelBundleDataset(filepath)
        self._model_uri = model_uri or None
        self.metadata = metadata

    def load(self) -> nn.Module:
        if not self._model_uri:
            return segmenter_from_bundle(self._bundle.load())
        try:
            signature = mlflow.models.get_model_info(self._model_uri).signature
            model = mlflow.pytorch.load_model(self._model_uri)
        except Exception as exc:
            raise DatasetError(
                f"could not load the MLflow model {self._model_uri!r} ({exc}); copy its URI "
                "from the MLflow UI (runs:/<run id>/model or models:/<name>/<version>) into "
                "prediction_model_uri"
            ) from exc
        if not is_segmenter_signature(signature) or not isinstance(model, nn.Module):
            raise DatasetError(
                f"{self._model_uri!r} is not an mkdseg segmentation model (its signature is not "
                "float32 images (-1, 3, -1, -1)); check prediction_model_uri"
            )
        return model.eval() if isinstance(model, Segmenter) else model

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


def with_run_link(report: dict[str, Any]) -> dict[str, Any]:
    """The report's content with the MLflow run it belongs to (id and UI page) in its summary,
    when a run is active (the parent run of a ``kedro run``); nodes do not know it."""
    from mkdseg.tracking.mlflow_ui import DEFAULT_BASE_URL, run_url  # it imports mkdseg.catalog

    run = mlflow.active_run()
    if run is None:
        return report
    page = run_url(DEFAULT_BASE_URL, run.info.experiment_id, run.info.run_id)
    summary = {**report.get("summary", {}), "mlflow_run": {"id": run.info.run_id, "page": page}}
    return {**report, "summary": summary}


class ReportDataset(LocalFileDataset):
    """A report folder (HTML, Markdown, figure PNGs) rendered by ``mkdseg.reporting.write_report``.

    The node returns the report's content (a dict of ``write_report`` arguments); this dataset
    renders and writes it, each file atomically. kedro-viz previews the per-class IoU chart.
    """

    def save(self, data: dict[str, Any]) -> None:
        from mkdseg.reporting.report import write_report

        write_report(self.filepath, **with_run_link(data))

    def load(self) -> dict[str, Path]:
        if not self.filepath.is_dir():
            raise DatasetError(
                f"no report at {self.filepath}: run `kedro run --pipelines reporting` first"
            )
        return {p.name: p for p in sorted(self.filepath.iterdir()) if not p.name.startswith(".")}

    def preview(self) -> ImagePreview:
        chart = self.filepath / "per_class_iou.png"
        return (
            ImagePreview(base64.b64encode(chart.read_bytes()).decode())
            if chart.is_file()
            else ImagePreview("")
        )

    def _exists(self) -> bool:
        return (self.filepath / "report.html").is_file()
