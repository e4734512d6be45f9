"""Comparison pipeline: one Kedro namespace per variant and seed (split -> train -> evaluate),
then one summary.

Kedro builds pipelines before it loads a run's parameters, so the pipeline's *structure*
(which variants, which seeds) is read from the parameters file when the pipeline is built:
``conf/$KEDRO_ENV/parameters_comparison.yml`` when that environment variable names an
environment that has one, else ``conf/base/parameters_comparison.yml``. ``--env`` and
``--params`` change the variants' settings, not the set of runs. The settings are read at
run time like any parameter."""

from __future__ import annotations

import os
from functools import partial, update_wrapper
from pathlib import Path

import yaml
from kedro.pipeline import Pipeline, node

from mkdseg import comparison as variants
from mkdseg.catalog.paths import project_root
from mkdseg.pipelines.comparison.nodes import evaluate_variant, prepare, summarise, train_variant

CONF_DIR = Path("conf")
BASE_ENV = "base"
GRID_FILE_NAME = "parameters_comparison.yml"
ENV_VARIABLE = "KEDRO_ENV"
SHARED_INPUTS = {"manifest", "class_metadata"}
PARAMETERS = {"params:comparison", "params:training", "params:evaluation"}


def grid_file() -> Path:
    """The parameters file whose variants and seeds make the pipeline (see the module doc)."""
    conf = project_root() / CONF_DIR
    env = os.environ.get(ENV_VARIABLE)
    if env and (conf / env / GRID_FILE_NAME).is_file():
        return conf / env / GRID_FILE_NAME
    return conf / BASE_ENV / GRID_FILE_NAME


def read_grid(path: Path | None = None) -> tuple[list[str], list[int]]:
    """(variant names, seeds) of the comparison parameters file."""
    path = path or grid_file()
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))["comparison"]
        return list(spec["variants"]), [int(seed) for seed in spec["seeds"]]
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            f"{path}: needs comparison.variants (a mapping) and comparison.seeds "
            f"(a list of integers): {exc}"
        ) from exc


def variant_pipeline(variant: str, seed: int) -> Pipeline:
    """prepare (split, settings) -> train -> evaluate for one variant and seed, in namespace comparison.<variant>.seed_<seed>."""
    bound = {"variant": variant, "seed": seed}
    nodes = [
        node(
            update_wrapper(partial(prepare, **bound), prepare),
            ["manifest", "class_metadata", "params:comparison", "params:training"],
            ["labeled_ids", "unlabeled_ids", "val_ids", "training_settings", "run_identity"],
            name="prepare",
        ),
        node(
            train_variant,
            [
                "manifest",
                "class_metadata",
                "labeled_ids",
                "unlabeled_ids",
                "training_settings",
                "run_identity",
            ],
            ["student_model", "training_history", "training_metrics", "training_params"],
            name="train",
        ),
        node(
            evaluate_variant,
            [
                "student_model",
                "manifest",
                "class_metadata",
                "val_ids",
                "params:evaluation",
                "run_identity",
            ],
            ["evaluation_metrics", "evaluation_params"],
            name="evaluate",
        ),
    ]
    return Pipeline(
        nodes,
        namespace=variants.namespace(variant, seed),
        inputs=SHARED_INPUTS,
        parameters=PARAMETERS,
    )


def create_pipeline(
    variant_names: list[str] | None = None, seeds: list[int] | None = None, **kwargs: object
) -> Pipeline:
    if variant_names is None or seeds is None:
        variant_names, seeds = read_grid()
    runs = [variants.namespace(v, s) for v in variant_names for s in seeds]
    root = variants.NAMESPACE_ROOT
    summary = node(
        summarise,
        ["params:evaluation"]
        + [f"{ns}.{name}" for ns in runs for name in ("evaluation_metrics", "evaluation_params")],
        [
            f"{root}.{name}"
            for name in ("results", "table", "table_markdown", "chart", "summary_metrics")
        ],
        name="summarise",
        namespace=root,
    )
    return Pipeline(
        [variant_pipeline(v, s) for v in variant_names for s in seeds] + [summary],
        tags="comparison",
    )
