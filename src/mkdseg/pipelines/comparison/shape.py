"""Which variants and seeds each comparison pipeline has: its shape, fixed in ``settings.py``.

Kedro builds pipelines before any node runs, so a pipeline whose nodes depend on configuration
follows Kedro's dynamic-pipelines pattern: the shape is fixed in ``settings.py`` and each
namespace's settings are parameters. ``settings.COMPARISON_GRIDS`` names one pipeline per grid
and the environment whose ``params:comparison`` gives its variants and seeds; each grid is a
package under ``pipelines/`` (so Kedro's registry finds it by name and loads only the grids a run
names) whose ``create_pipeline`` builds that environment's grid, its parameters read through the
project's config loader as ``KedroSession.create`` would read them. Nothing depends on which
session ran before: ``kedro registry``, ``kedro viz`` and every run see the same pipelines.

At run time each run reads its settings from the session's parameters and checks that the
session's grid is the one its pipeline was built from (``Grid.check_built``), so a grid run in
another environment than its own, or with ``--params`` that change its runs, stops before
training, naming the command to run. The shape is read from the project's ``conf/``
(``settings.CONF_SOURCE``): ``--conf-source`` changes the parameters, not the shape.
"""

from __future__ import annotations

from kedro.framework.project import settings

from mkdseg.catalog.paths import project_root
from mkdseg.pipelines.comparison.variants import NAMESPACE_ROOT, Grid


def comparison_grids() -> dict[str, str | None]:
    """Pipeline name -> the environment its grid comes from (None: Kedro's default one)."""
    return dict(settings.get("COMPARISON_GRIDS", {NAMESPACE_ROOT: None}))


def pipeline_for(env: str | None) -> str:
    """The comparison pipeline whose grid comes from ``env``; an error lists those there are."""
    grids = comparison_grids()
    if env == settings.CONFIG_LOADER_ARGS.get("default_run_env"):
        env = None  # the default environment, named
    names = [name for name, grid_env in grids.items() if grid_env == env]
    if not names:
        raise ValueError(
            f"no comparison pipeline has its grid in environment {env!r}; "
            f"settings.COMPARISON_GRIDS has {grids}: add the environment there"
        )
    return names[0]


def grid_in(env: str | None) -> Grid:
    """The grid ``params:comparison`` defines in ``env`` (None: Kedro's default environment),
    read as ``KedroSession.create`` would read the parameters."""
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project_root() / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )
    return Grid.from_parameters(loader["parameters"].get(NAMESPACE_ROOT))
