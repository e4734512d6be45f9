"""The report's tables as text DataFrames: run summary, metrics, per-class IoU.

Values are formatted here once, so the HTML and the Markdown report show the same text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

METRIC_FORMAT = "{:.4f}"
SUMMARY_NUMBER_FORMAT = "{:.6g}"  # params like lr = 2.5e-3 keep their significant digits


def _flatten(mapping: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested parameter dicts become dotted keys, the way MLflow shows params."""
    flat: dict[str, object] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _format_value(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(value) else SUMMARY_NUMBER_FORMAT.format(float(value))
    if isinstance(value, list | tuple):
        return ", ".join(_format_value(v) for v in value)
    return str(value)


def summary_frame(summary: Mapping[str, object]) -> pd.DataFrame:
    """The run summary (method, split, key params) as a two-column text table."""
    flat = _flatten(summary)
    return pd.DataFrame(
        {"parameter": list(flat), "value": [_format_value(v) for v in flat.values()]}
    )


def metrics_frame(metrics: Mapping[str, float]) -> pd.DataFrame:
    """Metric name and value, values as fixed-precision text (so both outputs agree)."""
    values = []
    for name, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metric {name!r} must be a number, got {value!r}") from error
        values.append("n/a" if math.isnan(number) else METRIC_FORMAT.format(number))
    return pd.DataFrame({"metric": [str(k) for k in metrics], "value": values})


def per_class_frame(class_names: Sequence[str], iou: np.ndarray) -> pd.DataFrame:
    """Class name and IoU, with absent classes (NaN) spelled out."""
    values = np.asarray(iou, dtype=np.float64).reshape(-1)
    text = ["absent" if np.isnan(v) else METRIC_FORMAT.format(v) for v in values]
    return pd.DataFrame({"class": [str(c) for c in class_names], "IoU": text})


def mean_iou(iou: np.ndarray) -> float:
    """Mean IoU over the classes present (NaN entries are absent ones); NaN if none is present."""
    values = np.asarray(iou, dtype=np.float64)
    present = values[np.isfinite(values)]
    return float(present.mean()) if present.size else float("nan")
