"""The comparison's summary: mIoU mean +- std per variant and label budget over seeds, and the
gain over the supervised baseline, paired by seed.

The table is computed from a DataFrame shaped like ``mlflow.search_runs``'s (parent or
evaluation runs), so the pipeline (``results_frame`` of its runs), the single-run report (the
experiment's runs) and the notebook (the runs read back from MLflow) summarise with the same
function. MLflow stores params as strings, so the label budget stays a string and is ordered
numerically when it parses as a count or a fraction ("662", "0.0625", "1/16").
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from mkdseg.pipelines.comparison.variants import RunIdentity
from mkdseg.reporting.markdown import to_markdown_table
from mkdseg.sources.validation import TEST_SUBSET

DEFAULT_METRIC = "val_mIoU_whole"
SUPERVISED_METHOD = "supervised"  # the baseline every gain is measured against
FINISHED = "FINISHED"
METHOD_COLUMN = "params.training.method"
LABELED_COLUMN = "params.splits.labeled"
SEED_COLUMN = "params.training.seed"
VARIANT_COLUMN = "params.variant"  # the pipeline's variant (e.g. mkd_nofa_1_16); optional
START_COLUMN = "start_time"
STATUS_COLUMN = "status"
OUTPUT_COLUMNS = [
    "variant",
    "method",
    "labeled",
    "runs",
    "mIoU_mean",
    "mIoU_std",
    "gain_over_supervised",
    "gain_std",
]
VAL_MEAN_COLUMN = "val_mIoU_mean"  # beside the test table's mIoU_mean
STD_DDOF = 1  # sample standard deviation over seeds; a single run has no spread (NaN)


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in OUTPUT_COLUMNS})


def _budget_sort_key(value: str) -> tuple[int, float, str]:
    """Numeric budgets first, in increasing order; anything else after, alphabetically."""
    try:
        return (0, float(Fraction(value.strip())), value)
    except (ValueError, ZeroDivisionError):
        return (1, math.inf, value)


def _latest_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """A re-run of the same (method, budget, seed) replaces the older one instead of counting
    twice."""
    if SEED_COLUMN not in runs.columns:
        return runs
    seeded = runs[runs[SEED_COLUMN].notna()]
    if START_COLUMN in runs.columns:
        seeded = seeded.sort_values(START_COLUMN, kind="stable")
    seeded = seeded.drop_duplicates(["variant", "labeled", SEED_COLUMN], keep="last")
    return pd.concat([seeded, runs[runs[SEED_COLUMN].isna()]])


def comparison_table(
    runs: pd.DataFrame, metric: str = DEFAULT_METRIC, baseline: str = SUPERVISED_METHOD
) -> pd.DataFrame:
    """mIoU mean/std per (variant, label budget) over FINISHED runs, with the gain over
    ``baseline``.

    The variant is ``params.variant`` where a run has one (the comparison pipeline's ablations
    share a method), else the method. ``gain_over_supervised`` is the mean of the per-seed
    differences over the seeds both ran (paired: the comparison draws one labeled split per seed
    for every variant, so a one-seed ablation is compared with the baseline's run on that seed;
    NaN when no seed is shared), or the difference of the means for runs without seeds;
    ``gain_std`` the spread of those per-seed differences.
    Missing columns or no usable runs give an empty table with the output columns, not an error:
    a fresh experiment has nothing to compare yet.
    """
    data = _usable_runs(runs, f"metrics.{metric}")
    if data.empty:
        return _empty_table()
    grouped = data.groupby(["variant", "method", "labeled"], sort=False)["value"]
    table = pd.DataFrame(
        {
            "runs": grouped.size(),
            "mIoU_mean": grouped.mean(),
            "mIoU_std": grouped.std(ddof=STD_DDOF),
        }
    ).reset_index()
    base = _baseline_runs(data, baseline)
    gains = [_paired_gain(data, row.variant, row.labeled, base) for row in table.itertuples()]
    if SEED_COLUMN in data.columns:  # paired: the mean difference over the seeds both ran
        table["gain_over_supervised"] = [gain.mean() for gain in gains]
    else:
        baseline_mean = base.groupby("labeled")["value"].mean()
        table["gain_over_supervised"] = table["mIoU_mean"] - table["labeled"].map(baseline_mean)
    table["gain_std"] = [_spread(gain) for gain in gains]
    table["runs"] = table["runs"].astype(int)
    order = sorted(
        range(len(table)),
        key=lambda i: (
            _budget_sort_key(table.at[i, "labeled"]),
            table.at[i, "method"] != baseline,
            table.at[i, "method"],
            table.at[i, "variant"],
        ),
    )
    return table.iloc[order].reset_index(drop=True)[OUTPUT_COLUMNS]


def _usable_runs(runs: pd.DataFrame | None, metric_column: str) -> pd.DataFrame:
    """Finished runs with a finite metric, a method and a budget; columns variant, method,
    labeled, value."""
    needed = [STATUS_COLUMN, METHOD_COLUMN, LABELED_COLUMN, metric_column]
    if runs is None or any(column not in runs.columns for column in needed):
        return pd.DataFrame()
    data = runs.copy()
    data["value"] = pd.to_numeric(data[metric_column], errors="coerce")
    data = data[(data[STATUS_COLUMN] == FINISHED) & np.isfinite(data["value"].astype("float64"))]
    data = data[data[METHOD_COLUMN].notna() & data[LABELED_COLUMN].notna()]
    if data.empty:
        return pd.DataFrame()
    data["method"] = data[METHOD_COLUMN].astype(str).str.strip()
    data["labeled"] = data[LABELED_COLUMN].astype(str).str.strip()
    variant = (
        data[VARIANT_COLUMN]
        if VARIANT_COLUMN in data.columns
        else pd.Series(np.nan, index=data.index)
    )
    data["variant"] = variant.where(variant.notna(), data["method"]).astype(str).str.strip()
    return _latest_per_seed(data)


def _baseline_runs(data: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """The baseline method's runs; of several baseline variants per budget, the first in name
    order."""
    base = data[data["method"] == baseline]
    first = base.groupby("labeled")["variant"].min()
    return base[base["variant"] == base["labeled"].map(first)]


def _paired_gain(data: pd.DataFrame, variant: str, labeled: str, base: pd.DataFrame) -> pd.Series:
    """(variant - baseline) per seed, over the seeds both ran (empty without seeds)."""
    if SEED_COLUMN not in data.columns:
        return pd.Series(dtype="float64")
    mine = data[(data["variant"] == variant) & (data["labeled"] == labeled)].set_index(SEED_COLUMN)[
        "value"
    ]
    theirs = base[base["labeled"] == labeled].set_index(SEED_COLUMN)["value"]
    return (mine - theirs).dropna()


def _spread(paired: pd.Series) -> float:
    """Sample std of the paired differences; NaN below two pairs."""
    return float(paired.std(ddof=STD_DDOF)) if len(paired) > STD_DDOF else float("nan")


@dataclass(frozen=True)
class RunResult:
    """One run's evaluation, as the summary reads it: who it is and what it scored."""

    identity: RunIdentity
    metrics: Mapping[str, float]

    def as_dict(self) -> dict[str, Any]:
        """Plain data, as the run's result file stores it."""
        return {"identity": dataclasses.asdict(self.identity), "metrics": dict(self.metrics)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunResult:
        return cls(RunIdentity(**data["identity"]), dict(data["metrics"]))


def results_frame(runs: Iterable[RunResult]) -> pd.DataFrame:
    """The runs as a table shaped like ``mlflow.search_runs``'s, for ``comparison_table``."""
    rows = []
    for run in runs:
        row = {
            STATUS_COLUMN: FINISHED,
            VARIANT_COLUMN: run.identity.variant,
            METHOD_COLUMN: run.identity.method,
            LABELED_COLUMN: str(run.identity.labeled),
            SEED_COLUMN: str(run.identity.seed),
        }
        row.update({f"metrics.{key}": value for key, value in run.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def runs_without_test(runs: pd.DataFrame, mode: str) -> list[str]:
    """The runs the table counts (finished, latest per seed) that have no ``test_mIoU_<mode>``,
    as ``variant seed s``; all of them when no run has one."""
    data = _usable_runs(runs, f"metrics.val_mIoU_{mode}")
    if data.empty:
        return []
    column = f"metrics.{TEST_SUBSET}_mIoU_{mode}"
    lacking = data if column not in data else data[data[column].isna()]
    seeds = lacking.get(SEED_COLUMN, pd.Series("?", index=lacking.index))
    return [f"{v} seed {s}" for v, s in zip(lacking["variant"], seeds, strict=True)]


def reported_metric(runs: pd.DataFrame, mode: str) -> str:
    """What the table reports: ``test_mIoU_<mode>`` when every run it counts has it (a set with
    a test split, on which no setting was chosen; superseded re-runs do not count), else
    ``val_mIoU_<mode>``: a table never mixes the two."""
    counted = _usable_runs(runs, f"metrics.val_mIoU_{mode}")
    if counted.empty or runs_without_test(runs, mode):
        return f"val_mIoU_{mode}"
    return f"{TEST_SUBSET}_mIoU_{mode}"


def reported_table(runs: pd.DataFrame, mode: str) -> tuple[str, pd.DataFrame, str]:
    """The comparison as reported (pipeline and notebook alike): the metric, the table (test
    mIoU where every run has it, with val's mean beside) and its Markdown."""
    metric, val_metric = reported_metric(runs, mode), f"val_mIoU_{mode}"
    table = comparison_table(runs, metric=metric)
    if metric != val_metric:
        table = with_mean_beside(table, runs, val_metric, VAL_MEAN_COLUMN)
    return metric, table, f"mIoU: {metric}\n\n" + to_markdown_table(table)


def with_mean_beside(
    table: pd.DataFrame, runs: pd.DataFrame, metric: str, column: str
) -> pd.DataFrame:
    """``table`` with ``column``: the mean of ``metric`` over the same variant's runs (val
    beside test), NaN where none has it."""
    data = _usable_runs(runs, f"metrics.{metric}")
    means = data.groupby(["variant", "labeled"])["value"].mean() if not data.empty else {}
    table = table.copy()
    keys = zip(table["variant"], table["labeled"], strict=True)
    table[column] = [float(means.get(key, math.nan)) for key in keys]
    return table


def per_run_table(results: pd.DataFrame, *metrics: str) -> pd.DataFrame:
    """One row per run: variant, method, labeled, seed and the metrics (the table's raw data)."""
    columns = {
        VARIANT_COLUMN: "variant",
        METHOD_COLUMN: "method",
        LABELED_COLUMN: "labeled",
        SEED_COLUMN: "seed",
    } | {f"metrics.{metric}": metric for metric in metrics}
    if results.empty:  # no run finished yet
        return pd.DataFrame(columns=list(columns.values()))
    return results[list(columns)].rename(columns=columns).reset_index(drop=True)


def headline_metrics(table: pd.DataFrame) -> dict[str, float]:
    """``<variant>.mIoU_mean`` / ``.mIoU_std`` / ``.gain`` of the summary table (the parent run's
    columns; the reported metric, test where the table reports test) and ``.val_mIoU_mean``
    beside it; NaN entries (one seed: no spread) are left out."""
    out: dict[str, float] = {}
    for row in table.itertuples():
        for key, value in (
            ("mIoU_mean", row.mIoU_mean),
            ("mIoU_std", row.mIoU_std),
            ("gain", row.gain_over_supervised),
            (VAL_MEAN_COLUMN, getattr(row, VAL_MEAN_COLUMN, math.nan)),
        ):
            if np.isfinite(value):
                out[f"{row.variant}.{key}"] = float(value)
    return out
