"""Training pipeline (DataCatalog + SequentialRunner): the tiny split -> model bundle, history,
metrics, and the hand-over to the MLflow model dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mkdseg.catalog import ModelBundleDataset
from mkdseg.core.prediction.segmenter import segmenter_from_bundle
from tests.conftest import TINY_IMAGE_SIZE
from tests.pipelines.conftest import TINY_ITERATIONS

SUMMARY_KEYS = {
    "train_iterations",
    "train_nonfinite_skipped",
    "train_resumed_from",
    "train_images_per_s",
    "train_final_loss",
}


def test_the_model_bundle_loads_its_trained_weights(trained_tiny: dict, tmp_path: Path) -> None:
    bundle = trained_tiny["student_model"]
    names = bundle["class_names"]
    assert len(names) == len(bundle["colours"])
    saved = ModelBundleDataset(str(tmp_path / "student.pt"))
    saved.save(bundle)  # as the catalog stores it
    segmenter = segmenter_from_bundle(saved.load())
    for key, value in segmenter.model.state_dict().items():
        assert torch.equal(value, bundle["state_dict"][key]), key
    with torch.no_grad():
        logits = segmenter(torch.rand(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    assert logits.shape == (2, len(names), TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)


def test_history_has_one_row_per_iteration_and_metrics_summarise_it(trained_tiny: dict) -> None:
    history = trained_tiny["training_history"]
    assert history["step"].tolist() == list(range(1, TINY_ITERATIONS + 1))
    assert history["loss"].notna().all()
    metrics: dict[str, Any] = trained_tiny["training_metrics"]
    assert set(metrics) == SUMMARY_KEYS
    assert metrics["train_iterations"] == TINY_ITERATIONS
    assert metrics["train_nonfinite_skipped"] == 0.0 and metrics["train_resumed_from"] == 0.0
    assert metrics["train_final_loss"] == history["loss"].iloc[-1]
    assert all(isinstance(value, float) for value in metrics.values())


def test_the_mlflow_dataset_gets_the_bundle_and_no_registry_name(trained_tiny: dict) -> None:
    exported = trained_tiny["mlflow_student_model"]
    assert exported["registered_model_name"] is None
    assert exported["bundle"]["class_names"] == trained_tiny["student_model"]["class_names"]
