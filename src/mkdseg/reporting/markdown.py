"""Markdown output: a table as display cells, and a GitHub-flavoured Markdown table.

Without the ``tabulate`` package; used by the HTML/Markdown report and the comparison's
``table.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

MARKDOWN_FLOAT_FORMAT = "{:.4f}"
MARKDOWN_MISSING = "n/a"


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
