"""Pure tracking helpers: flattening, metric picking, history points, artifact paths."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
import pytest

from mkdseg.catalog.paths import tracking_uri
from mkdseg.tracking import conventions


def test_flatten_params_nested_and_empty() -> None:
    params = {
        "training": {"method": "mkd", "optim": {"lr": 0.0025}},
        "crop": [512, 512],
        "extra": {},
    }
    assert conventions.flatten_params(params) == {
        "training.method": "mkd",
        "training.optim.lr": 0.0025,
        "crop": [512, 512],
        "extra": {},
    }
    assert conventions.flatten_params({"a": {"b": 1}}, sep="/") == {"a/b": 1}


def test_node_params_picks_params_inputs_only() -> None:
    inputs = {
        "params:dataset": {"source": "synthetic", "synthetic": {"seed": 3}},
        "params:splits.labeled": 0.5,
        "manifest": pd.DataFrame({"id": ["a"]}),
    }
    assert conventions.node_params(inputs) == {
        "dataset.source": "synthetic",
        "dataset.synthetic.seed": 3,
        "splits.labeled": 0.5,
    }
    assert conventions.node_params({"parameters": {"x": {"y": 1}}}) == {"x.y": 1}


def test_truncate_and_param_strings() -> None:
    assert conventions.truncate("abcdef", 10) == "abcdef"
    assert conventions.truncate("abcdefghijkl", 8) == "abcde..."
    assert conventions.param_strings({"a": 1.5, "b": "x" * 20}, limit=10) == {
        "a": "1.5",
        "b": "xxxxxxx...",
    }


def test_sanitize_key() -> None:
    assert conventions.sanitize_key("val/mIoU whole:1.a-b") == "val/mIoU whole:1.a-b"
    assert conventions.sanitize_key("iou[cat]@0.5") == "iou_cat__0.5"
    assert conventions.pick_metrics("x_metrics", {"iou[cat]": 1}) == {"iou_cat_": 1.0}


def test_pick_metrics_keeps_numbers_of_metrics_outputs() -> None:
    data = {"n_train": 8, "mIoU": np.float32(0.5), "ok": True, "name": "x"}
    assert conventions.pick_metrics("ingestion_metrics", data) == {"n_train": 8.0, "mIoU": 0.5}
    assert conventions.pick_metrics("ingestion_stats", data) == {}
    assert conventions.pick_metrics("val_metrics", [1, 2]) == {}


def test_history_points_every_numeric_column() -> None:
    history = pd.DataFrame(
        {"step": [0, 10], "loss": [1.0, float("nan")], "lr": [0.1, 0.05], "phase": ["a", "b"]}
    )
    assert conventions.is_history("train_history", history)
    assert not conventions.is_history("train_history", history.drop(columns="step"))
    assert not conventions.is_history("train_log", history)
    assert conventions.history_points(history) == [
        ("loss", 1.0, 0),
        ("lr", 0.1, 0),
        ("lr", 0.05, 10),
    ]
    with pytest.raises(ValueError, match="'step' column"):
        conventions.history_points(history.drop(columns="step"))


def test_chunked() -> None:
    assert conventions.chunked(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert conventions.chunked([], 3) == []
    with pytest.raises(ValueError, match="chunk size"):
        conventions.chunked([1], 0)


class _Fake:
    def __init__(self, **attrs: object) -> None:
        self.__dict__.update(attrs)


def test_dataset_local_path_conventions() -> None:
    assert conventions.dataset_local_path(_Fake(_filepath=PurePosixPath("/d/m.csv"))) == Path(
        "/d/m.csv"
    )
    assert conventions.dataset_local_path(_Fake(filepath="/d/x")) == Path("/d/x")
    assert conventions.dataset_local_path(_Fake(_filepath="b/m.csv", _protocol="s3")) is None
    assert conventions.dataset_local_path(_Fake(data=1)) is None
    versioned = _Fake(
        _filepath=PurePosixPath("/d/m.csv"), _version=object(), resolve_save_version=lambda: "v1"
    )
    assert conventions.dataset_local_path(versioned) == Path("/d/m.csv/v1/m.csv")


def test_tracking_uri_anchors_relative_sqlite_paths(tmp_path: Path) -> None:
    assert (
        tracking_uri("sqlite:///mlflow.db", root=tmp_path)
        == f"sqlite:///{tmp_path.as_posix()}/mlflow.db"
    )
    assert tracking_uri("runs.db", root=tmp_path) == f"sqlite:///{tmp_path.as_posix()}/runs.db"
    assert tracking_uri("sqlite:////abs/runs.db", root=tmp_path) == "sqlite:////abs/runs.db"
    assert tracking_uri("http://localhost:5000", root=tmp_path) == "http://localhost:5000"
    with pytest.raises(ValueError, match="empty"):
        tracking_uri(" ")


def test_pick_params_flattens_params_outputs_only() -> None:
    identity = {
        "variant": "mkd_1_16",
        "training": {"method": "mkd", "seed": 2},
        "splits": {"labeled": 0.0625},
    }
    assert conventions.pick_params("comparison.mkd_1_16.seed_2.evaluation_params", identity) == {
        "variant": "mkd_1_16",
        "training.method": "mkd",
        "training.seed": "2",
        "splits.labeled": "0.0625",
    }
    assert conventions.pick_params("run_identity", identity) == {}
    assert conventions.pick_params("x_params", ["not", "a", "dict"]) == {}


def test_parent_metric_keys_carry_the_namespace() -> None:
    assert conventions.parent_metric_keys({"val_mIoU_whole": 0.5}, None) == {"val_mIoU_whole": 0.5}
    assert conventions.parent_metric_keys(
        {"val_mIoU_whole": 0.5}, "comparison.sup_1_16.seed_0"
    ) == {"comparison.sup_1_16.seed_0.val_mIoU_whole": 0.5}


def test_runner_label_reads_like_a_class_name() -> None:
    from kedro.runner import SequentialRunner

    from mkdseg.tracking.conventions import runner_label

    repr_text = "<kedro.runner.sequential_runner.SequentialRunner object at 0x7f1727d4a710>"
    assert runner_label(repr_text) == "SequentialRunner"
    assert runner_label(SequentialRunner()) == "SequentialRunner"
    assert runner_label("ThreadRunner") == "ThreadRunner" and runner_label(None) == ""


def _mlflow_conf(runtime_params: dict[str, str] | None = None) -> dict:
    """conf/base's mlflow.yml as kedro-mlflow reads it (the project's resolvers)."""
    from kedro.config import OmegaConfigLoader

    from mkdseg import settings
    from tests.conftest import PROJECT_ROOT

    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"),
        runtime_params=runtime_params or {},
        **settings.CONFIG_LOADER_ARGS,
    )
    loader.config_patterns.update({"mlflow": ["mlflow*", "mlflow*/**"]})
    return loader["mlflow"]


def test_the_store_is_the_parameter_then_mlflow_tracking_uri_then_the_project_sqlite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tracking server named by MLFLOW_TRACKING_URI (``make mlflow-server``) takes the runs and,
    for an experiment created there, their artifacts; ``--params`` still wins."""
    from mkdseg.catalog.paths import artifact_location, project_root

    def store(**params: str) -> tuple[str, str | None]:
        conf = _mlflow_conf(params)
        kwargs = conf["tracking"]["experiment"]["create_experiment_kwargs"]
        return conf["server"]["mlflow_tracking_uri"], kwargs["artifact_location"]

    root = project_root()
    assert store() == (f"sqlite:///{(root / 'mlflow.db').as_posix()}", f"{root}/mlartifacts")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert store() == ("http://127.0.0.1:5000", None)
    assert store(mlflow_tracking_uri="sqlite:////tmp/x.db")[0] == "sqlite:////tmp/x.db"
    assert artifact_location("https://mlflow.example", "mlartifacts") is None
    assert artifact_location("sqlite:////tmp/x.db", "/tmp/art") == "/tmp/art"


LOCK_HELD_S = 7.0  # longer than SQLite's default 5 s busy timeout


def test_a_locked_sqlite_store_makes_a_writer_wait_not_fail(tmp_path: Path) -> None:
    """Several jobs writing one SQLite store (no server): a writer that finds the database locked
    by another process's transaction waits for it and its run is stored (MLflow retries)."""
    import sqlite3
    import threading
    import time

    from mlflow.tracking import MlflowClient

    db = tmp_path / "mlflow.db"
    client = MlflowClient(tracking_uri=tracking_uri(str(db)))
    experiment = client.create_experiment("jobs", artifact_location=str(tmp_path / "art"))
    locked = threading.Event()

    def hold_the_lock() -> None:  # another writer's long transaction
        connection = sqlite3.connect(db, timeout=1)
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(LOCK_HELD_S)
        connection.commit()
        connection.close()

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    locked.wait()
    started = time.monotonic()
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "val_mIoU_whole", 0.5)
    waited = time.monotonic() - started
    holder.join()
    assert waited >= LOCK_HELD_S - 1.0  # it waited for the lock instead of failing
    assert client.get_run(run.info.run_id).data.metrics == {"val_mIoU_whole": 0.5}
