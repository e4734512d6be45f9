"""Where the comparison pipeline's shape comes from: the latest context's config loader, else a
loader for the default environment (tests/pipelines/test_comparison_pipeline.py runs sessions)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from kedro.framework.startup import bootstrap_project

from mkdseg.pipelines.comparison import shape
from tests.conftest import PROJECT_ROOT

ISSUE_VARIANTS = {
    "sup_1_16",
    "sup_all",
    "mt_1_16",
    "cps_1_16",
    "mkd_1_16",
    "mkd_nofa_1_16",
    "mkd_noteacher_1_16",
    "mkd_nostudent_1_16",
    "sup_1_8",
    "mkd_1_8",
}
TINY_RUNS = (("sup_1_16", 0), ("mkd_1_16", 0))


@pytest.fixture
def no_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in a fresh process: no context created, no comparison pipeline built."""
    monkeypatch.setattr(shape, "_latest", None)
    monkeypatch.setattr(shape, "_built", None)
    monkeypatch.delenv(shape.ENV_VARIABLE, raising=False)


def _context(comparison: dict) -> SimpleNamespace:
    return SimpleNamespace(config_loader={"parameters": {"comparison": comparison}})


def test_without_a_context_the_default_environment_gives_the_shape(
    no_context: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    bootstrap_project(PROJECT_ROOT)  # the project's config loader settings (soft merge)
    grid = shape.pipeline_grid()
    assert len(grid.seeds) >= 3 and set(grid.variants) >= ISSUE_VARIANTS
    monkeypatch.setenv(shape.ENV_VARIABLE, "comparison_tiny")
    assert shape.pipeline_grid().runs == TINY_RUNS


def test_a_context_with_other_runs_makes_kedro_rebuild(
    no_context: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuilt: list[str] = []
    monkeypatch.setattr(shape.pipelines, "configure", rebuilt.append)
    tiny = {"seeds": [0], "variants": {name: {"labeled": 0.0625} for name, _ in TINY_RUNS}}
    hook = shape.ComparisonShapeHook()
    hook.after_context_created(_context(tiny))
    assert shape.pipeline_grid().runs == TINY_RUNS and not rebuilt  # nothing built before
    hook.after_context_created(_context(tiny))
    assert not rebuilt  # same runs: Kedro's pipelines still hold
    hook.after_context_created(_context({**tiny, "seeds": [0, 1]}))
    assert rebuilt == ["mkdseg.pipeline_registry"]
    assert len(shape.pipeline_grid().runs) == 4
