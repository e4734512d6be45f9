"""The MLflow UI address that opens the mkdseg runs on the training view (MLflow 3.17 ignores
the tag)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mkdseg.tracking.mlflow_ui import main, training_view_url


def test_training_view_url_selects_the_model_training_workflow() -> None:
    assert (
        training_view_url("http://127.0.0.1:5000/", "7")
        == "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"
    )
    assert (
        training_view_url("http://h:1", None)
        == "http://h:1/#/experiments?workflowType=machine_learning"
    )


def test_main_prints_the_experiment_address_or_says_how_to_create_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    main(["--tracking-uri", uri, "--experiment", "mkdseg"])
    assert "#/experiments?workflowType=machine_learning" in capsys.readouterr().out.splitlines()[0]
    experiment = MlflowClient(tracking_uri=uri).create_experiment("mkdseg")
    main(["--tracking-uri", uri, "--base-url", "http://127.0.0.1:5055"])
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"MLflow UI, mkdseg runs on the training view: "
        f"http://127.0.0.1:5055/#/experiments/{experiment}?workflowType=machine_learning"
    ]


@pytest.mark.parametrize(
    "module",
    [
        "mkdseg.tracking.mlflow_ui",
        "mkdseg.tracking.hooks",
        "mkdseg.catalog",
        "mkdseg.tracking.run_naming",
    ],
)
def test_each_module_imports_on_its_own(module: str) -> None:
    """No import cycle that only works when another module happened to load first."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
