"""The whole default pipeline through a KedroSession on a tiny configuration (issue: `kedro run`).

Everything goes under tmp_path (data_root, MLflow store and artifacts), so the repo stays clean.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from mlflow.tracking import MlflowClient
from PIL import Image

from tests.conftest import PROJECT_ROOT, TINY_IMAGE_SIZE
from tests.pipelines.conftest import RUN_REPORT_FIGURES

DEFAULT_NODES = {
    "build_manifest",
    "draw_sample_grid",
    "make_split",
    "train_model",
    "log_model_to_mlflow",
    "evaluate_model",
    "rank_unlabeled",
    "build_report",
}
REGISTERED = "mkdseg-test-student"
# A process standing for an environment where mkdseg is not installed: importing it fails.
WITHOUT_MKDSEG = textwrap.dedent("""
    import importlib.abc, sys

    class BlockMkdseg(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "mkdseg" or name.startswith("mkdseg."):
                raise ImportError(f"{name}: not installed here")

    sys.meta_path.insert(0, BlockMkdseg())
""")


def _params(tmp_path: Path, registered_model_name: str | None = None, **training: object) -> dict:
    return {
        "data_root": str(tmp_path / "data"),
        "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "mlflow_artifact_location": str(tmp_path / "mlartifacts"),
        "dataset": {
            "textures": {"image_size": TINY_IMAGE_SIZE, "n_train": 8, "n_val": 4, "n_test": 2}
        },
        "sample_grid": {"rows": 1, "cols": 2, "tile_size": TINY_IMAGE_SIZE},
        "splits": {"labeled": 4},
        "training": {
            "iterations": 4,
            "checkpoint_every": 2,
            "num_workers": 0,
            "batch_size": 2,
            "unlabeled_batch_size": 2,
            "augment": {"crop_size": TINY_IMAGE_SIZE},
            "model": {"decoder_channels": 16, "aspp_channels": 16, "low_level_channels": 8},
            **training,
        },
        "evaluation": {"keep_predictions": 2},
        "prediction": {
            "input_dir": str(tmp_path / "new_images"),
            "output_dir": str(tmp_path / "predicted"),
        },
        "mlflow": {"registered_model_name": registered_model_name},
    }


def _run(params: dict, pipeline: str | None = None) -> None:
    bootstrap_project(PROJECT_ROOT)
    with KedroSession.create(project_path=PROJECT_ROOT, runtime_params=params) as session:
        session.run(pipeline_names=[pipeline] if pipeline else None)


def _parents_and_children(tmp_path: Path) -> tuple[MlflowClient, list, dict]:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("mkdseg")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children: dict[str, list] = {}
    for r in runs:
        children.setdefault(r.data.tags.get("mlflow.parentRunId"), []).append(r)
    return client, parents, children


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One default run, then a resumed run that extends training from 4 to 6 iterations and
    registers its model."""
    import mlflow.tracking.fluent as fluent

    tmp_path = tmp_path_factory.mktemp("default_run")
    try:
        _run(_params(tmp_path))
        (tmp_path / "first_history.csv").write_bytes(
            (tmp_path / "data/07_model_output/training_history.csv").read_bytes()
        )
        _run(_params(tmp_path, REGISTERED, iterations=6, resume=True))
    finally:
        while mlflow.active_run():
            mlflow.end_run("FAILED")
        mlflow.set_tracking_uri(None)
        fluent._active_experiment_id = None
    return tmp_path


def test_each_node_has_a_child_run_and_the_parent_has_comparable_metrics(trained: Path) -> None:
    _, parents, children = _parents_and_children(trained)
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    for parent in parents:
        assert {
            c.data.tags["mlflow.runName"] for c in children[parent.info.run_id]
        } == DEFAULT_NODES
        assert 0.0 <= parent.data.metrics["val_mIoU_whole"] <= 1.0
        assert parent.data.params["training.method"] == "mkd"
        assert parent.data.params["training.mkd.weight_teacher"] == "1.5"


def test_runs_are_named_and_described_and_the_experiment_opens_on_training(trained: Path) -> None:
    client, parents, _ = _parents_and_children(trained)
    assert [p.info.run_name for p in parents] == ["mkd 4 labels seed 0"] * 2
    metrics = json.loads((trained / "data/08_reporting/evaluation_metrics.json").read_text())
    description = parents[-1].data.tags["mlflow.note.content"]
    assert (
        "trained with 4 labeled images (4 of 8 training images) of the `textures` dataset"
        in description
    )
    assert description.endswith(f"val_mIoU_whole **{metrics['val_mIoU_whole']:.3f}**.")
    experiment = client.get_experiment_by_name("mkdseg")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_model_loads_back_from_mlflow_and_predicts_the_right_shape(trained: Path) -> None:
    mlflow.set_tracking_uri(f"sqlite:///{trained / 'mlflow.db'}")
    try:
        _, parents, _ = _parents_and_children(trained)
        uri = f"runs:/{parents[-1].info.run_id}/model"
        model = mlflow.pytorch.load_model(uri)
        # batch, height and width stay free in the pt2 graph; 5 texture classes
        for shape in ((2, 3, 40, 56), (1, 3, 33, 97)):
            assert model(torch.rand(*shape)).shape == (shape[0], 5, *shape[2:])
        pyfunc = mlflow.pyfunc.load_model(uri)
        assert np.asarray(
            pyfunc.predict(np.random.rand(1, 3, 32, 32).astype(np.float32))
        ).shape == (1, 5, 32, 32)
    finally:
        mlflow.set_tracking_uri(None)


def test_logged_model_loads_where_mkdseg_is_not_installed(trained: Path) -> None:
    _, parents, _ = _parents_and_children(trained)
    code = WITHOUT_MKDSEG + textwrap.dedent(f"""
        import mlflow, numpy as np
        mlflow.set_tracking_uri("sqlite:///{trained / "mlflow.db"}")
        model = mlflow.pyfunc.load_model("runs:/{parents[-1].info.run_id}/model")
        out = np.asarray(model.predict(np.random.rand(2, 3, 24, 40).astype(np.float32)))
        print("shape", out.shape, "mkdseg imported:", "mkdseg" in sys.modules)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=trained, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "shape (2, 5, 24, 40) mkdseg imported: False" in done.stdout


def test_registration_is_off_by_default_and_names_the_version_when_asked(trained: Path) -> None:
    client, parents, _ = _parents_and_children(trained)
    (version,) = client.search_model_versions(f"name = '{REGISTERED}'")
    # the second run only
    assert int(version.version) == 1 and version.run_id == parents[-1].info.run_id
    assert "mkdseg.registered_model" not in parents[0].data.tags
    assert parents[-1].data.tags["mkdseg.registered_model"] == f"models:/{REGISTERED}/1"
    assert len(client.search_registered_models()) == 1


def test_training_curves_are_logged_per_iteration(trained: Path) -> None:
    client, parents, children = _parents_and_children(trained)
    train_run = next(
        c
        for c in children[parents[0].info.run_id]
        if c.data.tags["mlflow.runName"] == "train_model"
    )
    steps = [m.step for m in client.get_metric_history(train_run.info.run_id, "loss")]
    assert steps == [1, 2, 3, 4]
    for name in (
        "lr",
        "lambda",
        "ema_momentum",
        "teacher_confidence",
        "teacher_agreement",
        "images_per_s",
    ):
        assert len(client.get_metric_history(train_run.info.run_id, name)) == 4, name


def test_report_contains_the_metrics(trained: Path) -> None:
    report = trained / "data/08_reporting/report"
    metrics = json.loads((trained / "data/08_reporting/evaluation_metrics.json").read_text())
    html = (report / "report.html").read_text()
    assert f"{metrics['val_mIoU_whole']:.4f}" in html
    assert f"{metrics['val_mIoU_whole']:.4f}" in (report / "summary.md").read_text()
    for name in RUN_REPORT_FIGURES:
        assert Image.open(report / name).size[0] > 100
    assert "stripes" in html  # class names appear in the per-class table


def test_the_run_ranks_the_unlabeled_images_and_logs_the_table_and_masks(trained: Path) -> None:
    ranked = pd.read_csv(trained / "data/07_model_output/labelling/ranked.csv")
    assert len(ranked) == 4 and ranked["score"].is_monotonic_decreasing  # 8 training, 4 labeled
    masks = trained / "data/07_model_output/labelling/to_label/masks"
    assert len(list(masks.glob("*.png"))) == 4  # propose: 16, capped by the pool
    client, parents, children = _parents_and_children(trained)
    run = next(c for c in children[parents[-1].info.run_id] if c.info.run_name == "rank_unlabeled")
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"ranked.csv", "to_label"} <= logged
    assert run.data.metrics["scored_images"] == 4.0


def test_a_resumed_run_continues_from_its_checkpoint(trained: Path) -> None:
    first = pd.read_csv(trained / "first_history.csv")
    resumed = pd.read_csv(trained / "data/07_model_output/training_history.csv")
    assert first["step"].tolist() == [1, 2, 3, 4]
    # the checkpoint carries the earlier curve
    assert resumed["step"].tolist() == [1, 2, 3, 4, 5, 6]
    pd.testing.assert_frame_equal(resumed.iloc[:4][["step", "loss"]], first[["step", "loss"]])
    _, parents, _ = _parents_and_children(trained)
    assert [p.data.metrics["train_resumed_from"] for p in parents] == [0.0, 4.0]  # picked up at 4
    checkpoints = list((trained / "data/06_models/checkpoints").glob("mkd-*/checkpoint_*.pt"))
    assert {p.name for p in checkpoints} == {"checkpoint_00000004.pt", "checkpoint_00000006.pt"}


def _prediction_run(trained: Path, **runtime: object) -> pd.DataFrame:
    import mlflow.tracking.fluent as fluent

    try:
        _run({**_params(trained), **runtime}, "prediction")
    finally:
        mlflow.set_tracking_uri(None)
        fluent._active_experiment_id = None
    return pd.read_csv(trained / "data/07_model_output/predictions.csv", keep_default_na=False)


def test_prediction_takes_a_registered_model_uri(trained: Path) -> None:
    folder = trained / "registered_images"
    folder.mkdir(exist_ok=True)
    val = sorted((trained / "data/01_raw/textures/JPEGImages").glob("*.jpg"))[:1]
    (folder / val[0].name).write_bytes(val[0].read_bytes())
    out = trained / "predicted_registered"
    table = _prediction_run(
        trained,
        prediction_model_uri=f"models:/{REGISTERED}/1",
        prediction={"input_dir": str(folder), "output_dir": str(out)},
    )
    assert table["status"].tolist() == ["ok"]
    mask = np.asarray(Image.open(out / f"{val[0].stem}.png"))
    assert mask.shape == (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE) and mask.max() < 5


def test_prediction_refuses_a_model_that_is_not_a_segmenter(trained: Path) -> None:
    from kedro.io import DatasetError
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    mlflow.set_tracking_uri(f"sqlite:///{trained / 'mlflow.db'}")
    try:
        signature = ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 4))]))
        # another experiment keeps mkdseg's run list as it is
        other = MlflowClient().create_experiment("not-segmentation")
        with mlflow.start_run(experiment_id=other) as run:
            mlflow.pytorch.log_model(
                torch.nn.Linear(4, 2),
                name="other",
                signature=signature,
                serialization_format="pickle",
                pip_requirements=[],
            )
    finally:
        mlflow.set_tracking_uri(None)
    with pytest.raises(DatasetError, match="is not an mkdseg segmentation model"):
        _prediction_run(trained, prediction_model_uri=f"runs:/{run.info.run_id}/other")


def test_prediction_skips_a_corrupt_image_and_segments_the_rest(trained: Path) -> None:
    folder = trained / "new_images"
    folder.mkdir(exist_ok=True)
    val = sorted((trained / "data/01_raw/textures/JPEGImages").glob("*.jpg"))[:2]
    for path in val:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    import mlflow.tracking.fluent as fluent

    try:
        _run(_params(trained), "prediction")
    finally:
        mlflow.set_tracking_uri(None)
        fluent._active_experiment_id = None
    table = pd.read_csv(trained / "data/07_model_output/predictions.csv", keep_default_na=False)
    assert sorted(table["status"]) == ["ok", "ok", "skipped"]
    assert "unreadable" in table.loc[table["image"].str.endswith("corrupt.jpg"), "reason"].item()
    for path in val:
        mask = np.asarray(Image.open(trained / "predicted" / f"{path.stem}.png"))
        assert mask.shape == (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE) and mask.max() < 5
        assert (trained / "predicted" / f"{path.stem}_overlay.jpg").is_file()
