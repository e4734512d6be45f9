"""The method comparison's settings and results, without Kedro: what each variant trains with,
what it is logged as, and the table of mean +- std over seeds.

A *variant* (``comparison.variants.<name>`` in ``parameters_comparison.yml``) is a label
budget plus training overrides (method, ablation switches). Every variant runs once per seed;
seed ``s`` draws the labeled split with seed ``s`` and trains with seed ``s``, so all variants
of one seed share their labeled images and the gain over the supervised baseline is paired.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from mkdseg.reporting.comparison import (
    FINISHED,
    LABELED_COLUMN,
    METHOD_COLUMN,
    SEED_COLUMN,
    STATUS_COLUMN,
    VARIANT_COLUMN,
)

VARIANT_KEYS = frozenset({"labeled", "training"})
NAMESPACE_ROOT = "comparison"
SEED_PREFIX = "seed_"


def namespace(variant: str, seed: int) -> str:
    """``comparison.<variant>.seed_<seed>``: one Kedro namespace per variant and seed."""
    return f"{NAMESPACE_ROOT}.{variant}.{SEED_PREFIX}{seed}"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursing into dicts (the way conf environments merge)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def variant_spec(comparison: Mapping[str, Any], variant: str) -> Mapping[str, Any]:
    """The ``comparison.variants.<variant>`` block, checked."""
    variants = comparison.get("variants") or {}
    if variant not in variants:
        raise ValueError(
            f"comparison.variants has no {variant!r} (known: {sorted(variants)}); the comparison "
            "pipeline's namespaces come from conf/base/parameters_comparison.yml"
        )
    spec = variants[variant] or {}
    unknown = sorted(set(spec) - VARIANT_KEYS)
    if unknown or "labeled" not in spec:
        raise ValueError(
            f"comparison.variants.{variant} needs 'labeled' and may have 'training'; "
            f"unknown keys: {unknown}"
        )
    return spec


def variant_training(
    training: Mapping[str, Any], comparison: Mapping[str, Any], variant: str, seed: int
) -> dict[str, Any]:
    """The ``training`` block one run uses: base, then the shared overrides, then the variant's."""
    shared = deep_merge(training, comparison.get("training") or {})
    return deep_merge(
        shared, {**(variant_spec(comparison, variant).get("training") or {}), "seed": seed}
    )


def variant_params(
    comparison: Mapping[str, Any], settings: Mapping[str, Any], variant: str
) -> dict[str, Any]:
    """What identifies a run in MLflow: the same keys as a plain ``kedro run`` logs, plus ``variant``.

    ``settings`` is the run's ``variant_training`` block (method and seed are read from it).
    """
    return {
        "variant": variant,
        "training": {"method": settings.get("method"), "seed": settings["seed"]},
        "splits": {"labeled": variant_spec(comparison, variant)["labeled"]},
    }


def results_frame(runs: Iterable[tuple[Mapping[str, Any], Mapping[str, float]]]) -> pd.DataFrame:
    """(variant params, evaluation metrics) pairs as a table shaped like ``mlflow.search_runs``.

    So the pipeline and the notebook (which reads the same runs back from MLflow) summarise
    with the same function.
    """
    rows = []
    for params, metrics in runs:
        row = {
            STATUS_COLUMN: FINISHED,
            VARIANT_COLUMN: params["variant"],
            METHOD_COLUMN: params["training"]["method"],
            LABELED_COLUMN: str(params["splits"]["labeled"]),
            SEED_COLUMN: str(params["training"]["seed"]),
        }
        row.update({f"metrics.{key}": value for key, value in metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def per_run_table(results: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per run: variant, method, labeled, seed and the metric (the table's raw data)."""
    columns = {
        VARIANT_COLUMN: "variant",
        METHOD_COLUMN: "method",
        LABELED_COLUMN: "labeled",
        SEED_COLUMN: "seed",
        f"metrics.{metric}": metric,
    }
    return results[list(columns)].rename(columns=columns).reset_index(drop=True)


def headline_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``<variant>.mIoU_mean`` / ``.mIoU_std`` / ``.gain`` of the summary table (the parent run's
    columns); NaN entries (one seed: no spread) are left out."""
    out: dict[str, float] = {}
    for row in table.itertuples():
        for key, value in (
            ("mIoU_mean", row.mIoU_mean),
            ("mIoU_std", row.mIoU_std),
            ("gain", row.gain_over_supervised),
        ):
            if np.isfinite(value):
                out[f"{row.variant}.{key}"] = float(value)
    return out
