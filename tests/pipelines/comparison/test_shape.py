"""Where the comparison pipelines' shape comes from: settings.COMPARISON_GRIDS names each grid's
pipeline and environment, and the registry builds each from that environment's parameters
(sessions: tests/pipelines/test_comparison_pipeline.py)."""

from __future__ import annotations

import pytest
from kedro.framework.startup import bootstrap_project

from mkdseg import pipeline_registry
from mkdseg.pipelines.comparison import shape
from mkdseg.pipelines.comparison.variants import Built, Grid
from tests.conftest import PROJECT_ROOT

ISSUE_VARIANTS = {
    "sup_1_16",
    "sup_all",
    "mt_1_16",
    "cps_1_16",
    "mkd_1_16",
    "unimatch_1_16",
    "mkd_nofa_1_16",
    "mkd_noteacher_1_16",
    "mkd_nostudent_1_16",
    "sup_1_8",
    "mkd_1_8",
}
TINY_RUNS = (("sup_1_16", 0), ("mkd_1_16", 0))
PIPELINES = PROJECT_ROOT / "src/mkdseg/pipelines"


@pytest.fixture
def project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KEDRO_ENV", raising=False)
    bootstrap_project(PROJECT_ROOT)


def _runs(pipeline) -> set[tuple[str, int]]:
    names = {n.namespace for n in pipeline.nodes if n.name.endswith(".train")}
    return {(ns.split(".")[1], int(ns.rsplit("_", 1)[1])) for ns in names}


def test_every_grid_is_registered_with_its_environments_runs(project: None) -> None:
    registered = pipeline_registry.register_pipelines()
    grids = shape.comparison_grids()
    assert grids["comparison"] is None and set(grids) >= {"comparison", "comparison_tiny"}
    packages = {p.name for p in PIPELINES.iterdir() if p.name.startswith("comparison")}
    assert packages == set(grids)  # a package per grid: Kedro finds each by its name
    for name, env in grids.items():
        assert _runs(registered[name]) == set(shape.grid_in(env).runs), name
        assert "build_manifest" in {n.name for n in registered[name].nodes}  # ingestion first
    base = shape.grid_in(None)
    assert set(base.variants) == ISSUE_VARIANTS and base.seeds == (0, 1, 2)
    assert shape.grid_in("comparison_tiny").runs == TINY_RUNS


def test_a_run_checks_that_the_session_has_the_grid_it_was_built_from(project: None) -> None:
    """A subset or a superset of the built runs is as wrong as another grid: both fail."""
    spec = {"seeds": [0], "variants": {name: {"labeled": 0.0625} for name, _ in TINY_RUNS}}
    tiny = Grid.from_parameters(spec)
    tiny.check_built(Built("comparison_tiny", TINY_RUNS), "comparison_tiny")  # the same: no error
    more_seeds = Grid.from_parameters({**spec, "seeds": [0, 1]})
    with pytest.raises(ValueError, match=r"built from the 2 runs .* this session's has 4"):
        more_seeds.check_built(Built("comparison_tiny", TINY_RUNS), "comparison_tiny")
    with pytest.raises(ValueError, match="`kedro run --env tuning --pipelines comparison_tuning`"):
        tiny.check_built(Built("comparison_tuning", TINY_RUNS[:1]), "tuning")
    with pytest.raises(ValueError, match="`kedro run --pipelines comparison`"):
        tiny.check_built(Built("comparison", (("sup_1_16", 0), ("mkd_1_16", 1))), None)
    assert shape.pipeline_for("tuning") == "comparison_tuning"
    assert shape.pipeline_for("local") == shape.pipeline_for(None) == "comparison"
