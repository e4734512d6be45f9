"""In-memory inputs for the pipeline tests: the tiny synthetic set's manifest and split, a tiny
training configuration, and one model trained by the training pipeline (shared by a session).

Everything comes out of the pipelines by dataset name (ingestion + splits, then training), so
these tests follow the catalog's contract rather than the nodes' signatures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline
from kedro.runner import SequentialRunner

from mkdseg.pipelines import ingestion, splits, training
from tests.conftest import TINY_IMAGE_SIZE, tiny_synthetic_params

TINY_LABELED = 4
TINY_ITERATIONS = 3
TINY_SAMPLE_GRID = {"rows": 1, "cols": 1, "tile_size": TINY_IMAGE_SIZE, "alpha": 0.5}
TINY_KEPT_PREDICTIONS = 2
TINY_EVALUATION = {
    "mode": "whole",
    "keep_predictions": TINY_KEPT_PREDICTIONS,
    "device": "cpu",
    "precision": "fp32",
}
# The figures a single run's report draws (the comparison chart needs another finished run).
RUN_REPORT_FIGURES = (
    "per_class_iou.png",
    "confusion_matrix.png",
    "training_curves.png",
    "predictions.png",
    "to_label.png",
    "score_distribution.png",
)
TINY_PROPOSED = 2
TINY_LABELLING = {
    "score": "disagreement",
    "top_share": 1.0,
    "propose": TINY_PROPOSED,
    "batch_size": 4,
    "long_side": None,
    "precision": "fp32",
    "device": "cpu",
    "num_workers": 0,
}
TRAINING_INPUTS = ("manifest", "class_metadata", "labeled_ids", "unlabeled_ids")
TRAINING_OUTPUTS = (
    "student_model",
    "trained_networks",
    "training_history",
    "training_metrics",
    "mlflow_student_model",
)


class KeptDataset(MemoryDataset):
    """A ``MemoryDataset`` that keeps its data when the runner releases it, so that a test can
    read an intermediate output (one a later node consumes) after the run."""

    def _release(self) -> None:
        pass


def run_in_memory(pipeline: Pipeline, inputs: dict[str, Any], outputs: tuple[str, ...]) -> dict:
    """Run ``pipeline`` over a catalog of in-memory ``inputs``; load back the named ``outputs``."""
    catalog = DataCatalog(
        {
            **{name: MemoryDataset(value) for name, value in inputs.items()},
            **{name: KeptDataset() for name in outputs},
        }
    )
    SequentialRunner().run(pipeline, catalog)
    return {name: catalog.load(name) for name in outputs}


def tiny_training_params(checkpoint_root: Path) -> dict[str, Any]:
    """A ``training:`` block that trains the smallest model for a few iterations on a CPU."""
    return {
        "method": "mkd",
        "iterations": TINY_ITERATIONS,
        "batch_size": 2,
        "unlabeled_batch_size": 2,
        "seed": 0,
        "device": "cpu",
        "precision": "fp32",
        "num_workers": 0,
        "log_every": 1,
        "checkpoint_every": TINY_ITERATIONS,
        "checkpoint_root": checkpoint_root.as_posix(),
        "model": {
            "backbone": "resnet18",
            "decoder_channels": 16,
            "aspp_channels": 16,
            "low_level_channels": 8,
        },
        "augment": {"crop_size": TINY_IMAGE_SIZE},
    }


@pytest.fixture(scope="session")
def tiny_inputs(tiny_synthetic_root: Path) -> dict[str, Any]:
    """Manifest, class metadata and labeled / unlabeled / val ids of the tiny synthetic set."""
    return run_in_memory(
        ingestion.create_pipeline() + splits.create_pipeline(),
        {
            "params:dataset": tiny_synthetic_params(tiny_synthetic_root),
            "params:sample_grid": TINY_SAMPLE_GRID,
            "params:splits": {"labeled": TINY_LABELED, "seed": 0, "draw": "uniform"},
        },
        ("manifest", "class_metadata", "labeled_ids", "unlabeled_ids", "val_ids", "split_metrics"),
    )


@pytest.fixture(scope="session")
def trained_tiny(tiny_inputs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The training pipeline's outputs on the tiny set (trained once per session)."""
    checkpoints = tmp_path_factory.mktemp("checkpoints")
    return run_in_memory(
        training.create_pipeline(),
        {
            **{name: tiny_inputs[name] for name in TRAINING_INPUTS},
            "params:training": tiny_training_params(checkpoints),
            "params:mlflow": {"registered_model_name": None},
        },
        TRAINING_OUTPUTS,
    )
