"""Project settings (https://docs.kedro.org/en/stable/kedro_project_setup/settings.html).

Known third-party warnings that every run would print are silenced first, narrowly
(``mkdseg.warning_filters``): Kedro imports this module before its plugins load.

Hooks: ``MkdsegTrackingHook`` here; kedro-mlflow's ``MlflowHook`` is registered by Kedro
from its ``kedro.hooks`` entry point (it must stay enabled: it opens the parent run that
the per-node runs nest under). kedro-telemetry's project hooks are disabled: this project
has opted out of telemetry and never talks to the network.
"""

from __future__ import annotations

import os

from kedro.config import OmegaConfigLoader

from mkdseg.catalog.paths import artifact_location, resolve_path, tracking_uri
from mkdseg.tracking.hooks import MkdsegTrackingHook
from mkdseg.tracking.parent_run import RunNameHook
from mkdseg.warning_filters import silence_known_third_party_warnings

silence_known_third_party_warnings()

HOOKS = (RunNameHook(), MkdsegTrackingHook())

DISABLE_HOOKS_FOR_PLUGINS = ("kedro-telemetry",)

CONF_SOURCE = "conf"

# The comparison's grids (Kedro's dynamic-pipelines pattern: the pipelines' shape is fixed here,
# each run's settings are parameters): pipeline name -> the environment whose params:comparison
# gives its variants and seeds (None: the default environment). A grid runs in its environment:
# `kedro run --env tuning --pipelines comparison_tuning` (pipelines/comparison/shape.py).
COMPARISON_GRIDS = {
    "comparison": None,  # the reported grid (conf/base)
    "comparison_tuning": "tuning",  # how conf/base was chosen: data seed 1, training seed 10
    "comparison_extra_seeds": "extra_seeds",  # training seeds 3 and 4 on the reported data
    "comparison_tiny": "comparison_tiny",  # the smoke-test grid: seconds
}

CONFIG_LOADER_CLASS = OmegaConfigLoader
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    # conf/voc, conf/cityscapes and conf/local state only what differs from conf/base.
    "merge_strategy": {"parameters": "soft"},
    "custom_resolvers": {
        # ${mkdseg.tracking_uri:sqlite:///mlflow.db} -> sqlite:////<project root>/mlflow.db
        "mkdseg.tracking_uri": tracking_uri,
        # ${mkdseg.path:mlartifacts} -> /<project root>/mlartifacts (absolute paths unchanged)
        "mkdseg.path": lambda path: resolve_path(path).as_posix(),
        # ${mkdseg.env:MLFLOW_TRACKING_URI,default}: the variable when set, else the default
        "mkdseg.env": lambda name, default: os.environ.get(name) or default,
        # ${mkdseg.artifact_location:<tracking uri>,mlartifacts}: None for a tracking server
        "mkdseg.artifact_location": artifact_location,
    },
}
