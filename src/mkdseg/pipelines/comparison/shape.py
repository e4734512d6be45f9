"""Which variants and seeds the comparison pipeline has: its shape, from Kedro's config loader.

Kedro builds pipelines before nodes run, so a pipeline whose nodes depend on parameters needs
them when ``register_pipelines`` runs. In Kedro 1.x that call is lazy: ``KedroSession.run``
creates the context (config loader for ``--env``, else ``KEDRO_ENV``, with ``--params``), fires
``after_context_created``, and only then reads ``pipelines[<name>]``, which calls
``register_pipelines`` (``kedro/framework/session/session.py``). So ``ComparisonShapeHook``
reads ``params:comparison`` from the context's config loader in ``after_context_created`` and
``create_pipeline`` builds from it: ``kedro run --env X`` and ``KEDRO_ENV=X kedro run`` give
the same pipeline, and ``--params`` may change the set of runs like any other setting
(``comparison.seeds``, ``comparison.only``: see ``variants.Grid``). The hook is registered in
``settings.HOOKS``.

The hook reads ``context.config_loader``, not ``context.params``: the latter validates the
parameters against the registered pipelines, i.e. would build them first.

Kedro keeps the pipelines it built for the rest of the process; when a later context's runs
differ from those the comparison pipeline was built with, the hook asks Kedro to rebuild.
Before any context exists (``kedro registry``, ``pipelines`` read after
``bootstrap_project``), the shape comes from a config loader made as ``KedroSession.create``
would make it: environment ``KEDRO_ENV``, else Kedro's default run environment.
"""

from __future__ import annotations

import os

from kedro.framework.context import KedroContext
from kedro.framework.hooks import hook_impl
from kedro.framework.project import pipelines, settings

from mkdseg import pipeline_registry
from mkdseg.catalog.paths import project_root
from mkdseg.pipelines.comparison.variants import NAMESPACE_ROOT, Grid

ENV_VARIABLE = "KEDRO_ENV"  # KedroSession.create's fallback for a missing --env

_latest: Grid | None = None  # params:comparison of the latest KedroContext in this process
_built: tuple[tuple[str, int], ...] | None = None  # the runs of the pipeline Kedro holds


class ComparisonShapeHook:
    """Hands each new context's ``params:comparison`` to the comparison pipeline."""

    @hook_impl(tryfirst=True)  # before another hook reads context.params (builds pipelines)
    def after_context_created(self, context: KedroContext) -> None:
        global _latest
        _latest = Grid.from_parameters(context.config_loader["parameters"].get(NAMESPACE_ROOT))
        if _built is not None and _built != _latest.runs:
            pipelines.configure(pipeline_registry.__name__)  # Kedro's registry rebuilds lazily


def pipeline_grid() -> Grid:
    """The grid to build the comparison pipeline from (see the module docstring)."""
    global _built
    grid = _latest or grid_in(os.environ.get(ENV_VARIABLE))
    _built = grid.runs
    return grid


def grid_in(env: str | None) -> Grid:
    """The grid ``params:comparison`` defines in ``env`` (None: Kedro's default environment),
    read as ``KedroSession.create`` would read the parameters."""
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project_root() / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )
    return Grid.from_parameters(loader["parameters"].get(NAMESPACE_ROOT))
