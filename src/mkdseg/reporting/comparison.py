"""Cross-run comparison: the table of mIoU by method and label budget, and a Markdown formatter.

Input is the DataFrame ``mlflow.search_runs`` returns for the parent runs; this module only
needs pandas, so it works on any such table (or a hand-made one in a test). MLflow stores
params as strings, so the label budget stays a string and is ordered numerically when it
parses as a count or a fraction ("662", "0.0625", "1/16").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import pandas as pd

DEFAULT_METRIC = "val_mIoU_whole"
SUPERVISED_METHOD = "supervised"  # the baseline every gain is measured against
FINISHED = "FINISHED"
METHOD_COLUMN = "params.training.method"
LABELED_COLUMN = "params.splits.labeled"
SEED_COLUMN = "params.training.seed"
VARIANT_COLUMN = (
    "params.variant"  # the comparison pipeline's variant (e.g. mkd_nofa_1_16); optional
)
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
STD_DDOF = 1  # sample standard deviation over seeds; a single run has no spread (NaN)

MARKDOWN_FLOAT_FORMAT = "{:.4f}"
MARKDOWN_MISSING = "n/a"


def _empty_table() -> pd.DataFrame:
    return pd.DataFrame({column: [] for column in OUTPUT_COLUMNS})


def _budget_sort_key(value: str) -> tuple[int, float, str]:
    """Numeric budgets first, in increasing order; anything else after, alphabetically."""
    try:
        return (0, float(Fraction(value.strip())), value)
    except (ValueError, ZeroDivisionError):
        return (1, math.inf, value)


def _latest_per_seed(runs: pd.DataFrame) -> pd.DataFrame:
    """A re-run of the same (method, budget, seed) replaces the older one instead of counting twice."""
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
    """mIoU mean/std per (variant, label budget) over FINISHED runs, with the gain over ``baseline``.

    The variant is ``params.variant`` where a run has one (the comparison pipeline's ablations
    share a method), else the method. ``gain_over_supervised`` is the difference of the means;
    ``gain_std`` the spread of the per-seed differences where both ran with the same seed
    (paired: the comparison draws one labeled split per seed for every variant).
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
    baseline_mean = base.groupby("labeled")["value"].mean()
    table["gain_over_supervised"] = table["mIoU_mean"] - table["labeled"].map(baseline_mean)
    table["gain_std"] = gains
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
    """Finished runs with a finite metric, a method and a budget; columns variant/method/labeled/value."""
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
    """The baseline method's runs; of several baseline variants per budget, the first in name order."""
    base = data[data["method"] == baseline]
    first = base.groupby("labeled")["variant"].min()
    return base[base["variant"] == base["labeled"].map(first)]


def _paired_gain(data: pd.DataFrame, variant: str, labeled: str, base: pd.DataFrame) -> float:
    """Sample std of (variant - baseline) over the seeds both have; NaN below two pairs."""
    if SEED_COLUMN not in data.columns:
        return float("nan")
    mine = data[(data["variant"] == variant) & (data["labeled"] == labeled)].set_index(SEED_COLUMN)[
        "value"
    ]
    theirs = base[base["labeled"] == labeled].set_index(SEED_COLUMN)["value"]
    paired = (mine - theirs).dropna()
    return float(paired.std(ddof=STD_DDOF)) if len(paired) > STD_DDOF else float("nan")


def _format_cell(value: object, float_format: str, missing: str) -> str:
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return missing
    if value is pd.NA or value is pd.NaT:
        return missing
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        return float_format.format(float(value))
    text = str(value).replace("\r\n", " ").replace("\n", " ")
    return text.replace("|", "\\|")


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def format_cells(
    df: pd.DataFrame,
    float_format: str = MARKDOWN_FLOAT_FORMAT,
    missing: str = MARKDOWN_MISSING,
    escape: Callable[[str], str] | None = None,
) -> list[list[str]]:
    """Every cell of ``df`` as display text (floats formatted, NaN as ``missing``), row by row."""
    rows = []
    for record in df.itertuples(index=False, name=None):
        cells = [_format_cell(value, float_format, missing) for value in record]
        rows.append([escape(c) for c in cells] if escape else cells)
    return rows


def to_markdown_table(
    df: pd.DataFrame, float_format: str = MARKDOWN_FLOAT_FORMAT, missing: str = MARKDOWN_MISSING
) -> str:
    """A GitHub-flavoured Markdown table of ``df`` (no index), without the ``tabulate`` package.

    Numeric columns are right-aligned; ``|`` in cells is escaped; NaN shows as ``missing``.
    """
    if len(df.columns) == 0:
        return ""
    header = [_format_cell(str(c), float_format, missing) for c in df.columns]
    align = ["---:" if _is_numeric(df.iloc[:, i]) else "---" for i in range(len(df.columns))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in format_cells(df, float_format, missing)]
    return "\n".join(lines) + "\n"
