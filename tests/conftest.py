"""Shared fixtures: a tiny synthetic dataset configuration, and the project root."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TINY_IMAGE_SIZE = 32  # the synthetic generator's minimum
TINY_N_TRAIN = 8
TINY_N_VAL = 4


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` as a module, registered before it runs (its dataclasses look it up)."""
    spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def tiny_synthetic_params(root: Path) -> dict:
    """The ``dataset:`` block for a few small synthetic images under ``root``."""
    return {
        "source": "synthetic",
        "root": root.as_posix(),
        "download": False,
        "on_bad_sample": "fail",
        "synthetic": {
            "seed": 0,
            "image_size": TINY_IMAGE_SIZE,
            "n_train": TINY_N_TRAIN,
            "n_val": TINY_N_VAL,
        },
    }


@pytest.fixture
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the tiny synthetic set, shared by a test session (generated once, reused)."""
    return tmp_path_factory.mktemp("synthetic") / "synthetic"


@pytest.fixture
def tiny_dataset_params(tiny_synthetic_root: Path) -> dict:
    return tiny_synthetic_params(tiny_synthetic_root)


@pytest.fixture
def isolated_mlflow(monkeypatch: pytest.MonkeyPatch):
    """Undo the process-wide MLflow state a run leaves (tracking uri, active experiment)."""
    import mlflow
    import mlflow.tracking.fluent as fluent

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    yield
    while mlflow.active_run():
        mlflow.end_run("FAILED")
    mlflow.set_tracking_uri(None)
    fluent._active_experiment_id = None
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
