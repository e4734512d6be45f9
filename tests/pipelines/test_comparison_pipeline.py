"""The comparison pipeline on its tiny grid (conf/comparison_tiny: 2 methods, 1 seed, 3
iterations) through a KedroSession, then the notebook that reads the same runs back from MLflow;
and each grid's pipeline (settings.COMPARISON_GRIDS), with the runs of its environment."""

from __future__ import annotations

from pathlib import Path

import mlflow
import nbformat
import pandas as pd
import pytest
import torch
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro.runner import AbstractRunner, ParallelRunner, ThreadRunner
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from mkdseg.pipelines.comparison.jobs import grid_of, job_lines
from mkdseg.pipelines.comparison.shape import pipeline_for
from mkdseg.pipelines.comparison.variants import Grid
from tests.conftest import PROJECT_ROOT

TINY_ENV = "comparison_tiny"
TINY_PIPELINE = "comparison_tiny"  # settings.COMPARISON_GRIDS
VARIANTS = ["sup_1_16", "mkd_1_16"]
STEPS = ("prepare", "train", "evaluate")
NOTEBOOK = PROJECT_ROOT / "notebooks" / "comparison.ipynb"
NOTEBOOK_TIMEOUT_S = 300


def _params(root: Path) -> dict[str, str]:
    """Runtime params that keep a session's data and MLflow store under ``root``."""
    return {
        "data_root": str(root / "data"),
        "mlflow_tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
        "mlflow_artifact_location": str(root / "mlartifacts"),
    }


def _run_tiny_grid(root: Path, runner: AbstractRunner | None = None, **run: object) -> Path:
    """The tiny comparison grid through a KedroSession (``run``: ``session.run``'s selection,
    e.g. one job's namespace), its data and MLflow store under ``root``; torch's process-wide
    thread count (the grid sets 1) restored afterwards."""
    import mlflow.tracking.fluent as fluent

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("KEDRO_ENV", raising=False)
        try:
            bootstrap_project(PROJECT_ROOT)
            with KedroSession.create(
                project_path=PROJECT_ROOT, env=TINY_ENV, runtime_params=_params(root)
            ) as session:
                session.run(**{"pipeline_names": [TINY_PIPELINE], "runner": runner, **run})
        finally:
            while mlflow.active_run():
                mlflow.end_run("FAILED")
            mlflow.set_tracking_uri(None)
            fluent._active_experiment_id = None
            torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run_tiny_grid(tmp_path_factory.mktemp("comparison"))


def _evaluation_runs(root: Path) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mkdseg").experiment_id])
    return [r for r in runs if r.data.tags.get("kedro.node", "").endswith(".evaluate")]


def test_outputs_hold_one_row_per_run_and_the_summary(compared: Path) -> None:
    out = compared / "data/08_reporting/comparison"
    results = pd.read_csv(out / "results.csv")
    assert sorted(results["variant"]) == sorted(VARIANTS) and set(results["seed"]) == {0}
    table = pd.read_csv(out / "table.csv").set_index("variant")
    assert table.loc["sup_1_16", "gain_over_supervised"] == pytest.approx(0.0)
    # The set has a test split (conf/comparison_tiny: 8 images): the table reports it, val beside
    assert (out / "table.md").read_text().startswith("mIoU: test_mIoU_whole\n")
    for variant in VARIANTS:
        row = results.set_index("variant").loc[variant]
        assert table.loc[variant, "mIoU_mean"] == pytest.approx(row["test_mIoU_whole"])
        assert table.loc[variant, "val_mIoU_mean"] == pytest.approx(row["val_mIoU_whole"])
        assert f"| {variant} |" in (out / "table.md").read_text()
    assert (out / "chart.png").stat().st_size > 1000


def test_each_run_is_identified_in_mlflow(compared: Path) -> None:
    runs = _evaluation_runs(compared)
    assert {r.data.tags["kedro.namespace"] for r in runs} == {
        f"comparison.{v}.seed_0" for v in VARIANTS
    }
    for run in runs:
        variant = run.data.params["variant"]
        assert run.data.params["training.method"] == (
            "supervised" if variant.startswith("sup") else "mkd"
        )
        assert (
            run.data.params["splits.labeled"] == "0.0625"
            and run.data.params["training.seed"] == "0"
        )
        assert 0.0 <= run.data.metrics["val_mIoU_whole"] <= 1.0
    client = MlflowClient(tracking_uri=f"sqlite:///{compared / 'mlflow.db'}")
    parent = client.get_run(runs[0].data.tags["mlflow.parentRunId"])
    assert (
        "comparison.mkd_1_16.seed_0.val_mIoU_whole" in parent.data.metrics
    )  # namespaced on the parent
    assert "val_mIoU_whole" not in parent.data.metrics  # thirty runs do not overwrite one column
    assert "comparison.sup_1_16.mIoU_mean" in parent.data.metrics


@pytest.mark.parametrize(
    "runner",
    [ThreadRunner, ParallelRunner],
    ids=["ThreadRunner", "ParallelRunner"],
)
def test_a_two_worker_grid_computes_and_tracks_what_the_sequential_one_does(
    runner: type[AbstractRunner], compared: Path, tmp_path: Path
) -> None:
    """README "Results": the grid may run two trainings at once (``--runner-params
    max_workers=2``, one torch thread each, as conf/comparison_tiny sets; ParallelRunner's
    workers forked, Linux's default): the same numbers as one at a time, and exactly one
    FINISHED child run per node under the one parent."""
    root = _run_tiny_grid(tmp_path, runner(max_workers=2))
    table = "data/08_reporting/comparison/results.csv"
    pd.testing.assert_frame_equal(pd.read_csv(root / table), pd.read_csv(compared / table))
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("mkdseg").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r is not parent]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children)
    assert all(r.info.status == "FINISHED" for r in runs)
    nodes = sorted(r.data.tags["kedro.node"] for r in children)
    assert nodes == sorted({n.name for n in pipelines[TINY_PIPELINE].nodes})  # each once
    assert {f"comparison.{v}.seed_0.{step}" for v in VARIANTS for step in STEPS} <= set(nodes)
    evaluated = [r for r in children if r.data.tags["kedro.node"].endswith(".evaluate")]
    assert all("val_mIoU_whole" in r.data.metrics for r in evaluated)


def test_the_grid_as_separate_jobs_gives_the_table_of_one_run(
    compared: Path, tmp_path: Path
) -> None:
    """``scripts/comparison_jobs.py``'s jobs, each its own session: the ingestion, one job per
    run (``--namespaces``), the summary (``--nodes``). The summary names the runs that have not
    finished, then gives the same table as the one sequential run once all have."""
    lines = job_lines(grid_of(TINY_ENV), TINY_ENV)
    runs = [f"comparison.{v}.seed_0" for v in VARIANTS]
    assert lines == [
        f"kedro run --env {TINY_ENV} --pipelines ingestion",
        *(f"kedro run --env {TINY_ENV} --pipelines {TINY_PIPELINE} --namespaces {r}" for r in runs),
        f"kedro run --env {TINY_ENV} --pipelines {TINY_PIPELINE} --nodes comparison.summarise",
    ]
    out = tmp_path / "data/08_reporting/comparison"
    _run_tiny_grid(tmp_path, pipeline_names=["ingestion"])
    _run_tiny_grid(tmp_path, namespaces=[runs[0]])
    _run_tiny_grid(tmp_path, node_names=["comparison.summarise"])
    assert f"Not finished, so not in the table: {runs[1]}." in (out / "table.md").read_text()
    assert list(pd.read_csv(out / "results.csv")["variant"]) == VARIANTS[:1]
    _run_tiny_grid(tmp_path, namespaces=[runs[1]])
    _run_tiny_grid(tmp_path, node_names=["comparison.summarise"])
    table = "data/08_reporting/comparison/results.csv"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / table), pd.read_csv(compared / table))
    assert "Not finished" not in (out / "table.md").read_text()


def test_the_notebook_draws_the_same_table_from_mlflow(
    compared: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MKDSEG_TRACKING_URI", f"sqlite:///{compared / 'mlflow.db'}")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=NOTEBOOK_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    markdown = next(
        o["data"]["text/markdown"] for o in outputs if "text/markdown" in o.get("data", {})
    )
    assert markdown == (compared / "data/08_reporting/comparison/table.md").read_text()
    assert any("image/png" in o.get("data", {}) for o in outputs)


@pytest.fixture
def bootstrapped(monkeypatch: pytest.MonkeyPatch, isolated_mlflow: None) -> None:
    """A session-building test's start: no KEDRO_ENV from outside, the project bootstrapped."""
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    bootstrap_project(PROJECT_ROOT)


def _comparison_nodes(env: str | None = None) -> set[str]:
    """The names of the nodes of the comparison pipeline whose grid is ``env``'s."""
    return {n.name for n in pipelines[pipeline_for(env)].nodes}


def _env_params(root: Path, env: str) -> dict:
    """The parameters a session in ``env`` loads."""
    with KedroSession.create(
        project_path=PROJECT_ROOT, env=env, runtime_params=_params(root)
    ) as session:
        return session.load_context().params


def _mkd_scales(params: dict, variants: tuple[str, ...]) -> dict[str, float]:
    """The ``consistency_scale`` each variant's training resolves to under ``params`` (seed 0)."""
    grid = Grid.from_parameters(params["comparison"])
    return {
        v: grid.settings(params["training"], v, 0)["mkd"]["consistency_scale"] for v in variants
    }


def _runs(node_names: set[str]) -> set[str]:
    return {name.rsplit(".", 1)[0] for name in node_names if name.endswith(".evaluate")}


@pytest.mark.filterwarnings(r"ignore:register_new_resolver\(\) is deprecated")  # Kedro's loader
def test_each_grid_is_a_pipeline_of_its_environments_runs(bootstrapped: None) -> None:
    """The pipelines' shape is fixed by settings.COMPARISON_GRIDS, whatever session ran before."""
    tiny, base = _comparison_nodes(TINY_ENV), _comparison_nodes()
    assert _runs(tiny) == {f"comparison.{v}.seed_0" for v in VARIANTS}
    assert len(_runs(base)) == 33 and "comparison.mkd_1_16.seed_2.train" in base  # 11 x 3 seeds
    assert "comparison.mkd_1_8.seed_2.train" in base  # the second budget and ablations: 3 seeds too
    assert "comparison.mkd_nofa_1_16.seed_2.train" in base
    assert _comparison_nodes(TINY_ENV) == tiny and pipeline_for(TINY_ENV) == TINY_PIPELINE
    with pytest.raises(ValueError, match="settings.COMPARISON_GRIDS"):
        pipeline_for("voc")  # no grid there


@pytest.mark.filterwarnings(r"ignore:register_new_resolver\(\) is deprecated")  # Kedro's loader
def test_a_grid_run_outside_its_environment_stops_before_training(
    tmp_path: Path, bootstrapped: None
) -> None:
    """The base grid's runs in the tiny environment (whose params:comparison has one seed):
    the first run's prepare node fails, naming the setting, and nothing trains."""

    def session() -> KedroSession:
        return KedroSession.create(
            project_path=PROJECT_ROOT, env=TINY_ENV, runtime_params=_params(tmp_path)
        )

    with session() as ingestion:
        ingestion.run(pipeline_names=["ingestion"])
    with session() as grid, pytest.raises(ValueError, match="pipeline comparison was built from"):
        grid.run(pipeline_names=["comparison"], namespaces=["comparison.sup_1_16.seed_1"])
    assert not (tmp_path / "data/07_model_output/comparison").exists()


@pytest.mark.filterwarnings(r"ignore:register_new_resolver\(\) is deprecated")  # Kedro's loader
def test_the_tuning_environment_runs_no_reported_seed(tmp_path: Path, bootstrapped: None) -> None:
    """conf/tuning (how conf/base was chosen) must stay off the reported seeds 0/1/2."""
    runs = _runs(_comparison_nodes("tuning"))
    assert runs == {
        f"comparison.{v}.seed_10"
        for v in ("sup_1_16", "sup_all", "cps_1_16", "mkd_1_16")
        + ("mkd_release_1_16", "mkd_nothr_1_16", "mkd_ema06_1_16", "mkd_weak_1_16", "mkd_cs4_1_16")
        + ("mkd_base_1_16", "mkd_bn0001_1_16", "sup_bn0001_1_16")
    }
    params = _env_params(tmp_path, "tuning")
    assert params["dataset"]["textures"]["seed"] == 1  # base: 0
    # the tuning table's MKD rows ran at the release's scale 0.5, conf/base's at the time
    scales = _mkd_scales(params, ("mkd_1_16", "mkd_ema06_1_16", "mkd_cs4_1_16"))
    assert scales == {"mkd_1_16": 0.5, "mkd_ema06_1_16": 0.5, "mkd_cs4_1_16": 4.0}


@pytest.mark.filterwarnings(r"ignore:register_new_resolver\(\) is deprecated")  # Kedro's loader
def test_the_extra_seeds_environment_runs_no_reported_seed(
    tmp_path: Path, bootstrapped: None
) -> None:
    """conf/extra_seeds (choosing the next setting) runs seeds 3/4 only, with MKD at 4 and 0.5."""
    runs = _runs(_comparison_nodes("extra_seeds"))
    assert runs == {
        f"comparison.{v}.seed_{s}"
        for v in ("sup_1_16", "cps_1_16", "mkd_1_16", "mkd_cs05_1_16")
        for s in (3, 4)
    }
    scales = _mkd_scales(_env_params(tmp_path, "extra_seeds"), ("mkd_1_16", "mkd_cs05_1_16"))
    assert scales == {"mkd_1_16": 4.0, "mkd_cs05_1_16": 0.5}  # conf/base's, and the release's
