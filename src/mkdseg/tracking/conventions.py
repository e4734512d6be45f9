"""Pure helpers behind ``MkdsegTrackingHook``: what to log, decided without touching MLflow.

Conventions (also in ``conf/README.md``), keyed on a node's *output dataset names*:

- ``*_metrics``: a ``dict[str, number]`` -> metrics on the node's child run and the parent run;
- ``*_history``: a DataFrame with a ``step`` column -> step-wise metrics on the child run,
  one metric per other numeric column;
- ``*_params``: a dict -> params on the child run (flattened), for settings a node derives
  itself (the comparison's variant, method, label budget and seed);
- any dataset with a local ``filepath`` -> artifact of the child run once saved.

Node parameters are the ``params:<name>`` inputs (and ``parameters``), flattened with ``.``
the same way kedro-mlflow flattens them on the parent run.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

METRICS_SUFFIX = "_metrics"
PARAMS_SUFFIX = "_params"
HISTORY_SUFFIX = "_history"
STEP_COLUMN = "step"
PARAMS_PREFIX = "params:"
ALL_PARAMETERS = "parameters"
PARAM_SEP = "."
# MLflow's limits: 6000 characters per param value, 1000 metrics / 100 params per log_batch.
MAX_PARAM_VALUE_LENGTH = 6000
METRICS_PER_BATCH = 1000
PARAMS_PER_BATCH = 100
MAX_TAG_LENGTH = 5000
TRUNCATION_MARK = "..."
LOCAL_PROTOCOLS = frozenset({"file", ""})
REPORT_PAGE = "report.html"  # the page of a report folder a person opens
# Characters MLflow accepts in param/metric names (same rule kedro-mlflow applies on the parent).
_INVALID_KEY_CHARS = re.compile(r"[^/\w.\- :]")


def flatten_params(
    params: Mapping[str, Any], sep: str = PARAM_SEP, prefix: str = ""
) -> dict[str, Any]:
    """Flatten nested dicts into ``{"a.b.c": value}``; lists and scalars stay values.

    An empty dict is kept as ``{}`` so that its key still shows up in the run.
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, sep=sep, prefix=name))
        else:
            flat[name] = value
    return flat


def node_params(inputs: Mapping[str, Any], sep: str = PARAM_SEP) -> dict[str, Any]:
    """The parameters a node consumed, flattened: ``params:dataset`` -> ``dataset.source`` ..."""
    consumed: dict[str, Any] = {}
    for name, value in inputs.items():
        if name.startswith(PARAMS_PREFIX):
            consumed[name[len(PARAMS_PREFIX) :]] = value
        elif name == ALL_PARAMETERS:
            consumed.update(value if isinstance(value, Mapping) else {name: value})
    return flatten_params(consumed, sep=sep)


def sanitize_key(key: str) -> str:
    """Replace characters MLflow rejects in a param/metric name by ``_``."""
    return _INVALID_KEY_CHARS.sub("_", str(key))


def truncate(text: Any, limit: int) -> str:
    """``str(text)`` cut to ``limit`` characters, marked with ``...`` when cut."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[: max(limit - len(TRUNCATION_MARK), 0)] + TRUNCATION_MARK


def param_strings(params: Mapping[str, Any], limit: int = MAX_PARAM_VALUE_LENGTH) -> dict[str, str]:
    """Param values as MLflow stores them (strings), truncated to its length limit."""
    return {sanitize_key(key): truncate(value, limit) for key, value in params.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def pick_metrics(dataset_name: str, data: Any) -> dict[str, float]:
    """The metrics in a ``*_metrics`` output: its numeric entries; {} for any other output.

    Non-numeric entries are dropped (booleans too: they are flags, not measurements).
    """
    if not dataset_name.endswith(METRICS_SUFFIX) or not isinstance(data, Mapping):
        return {}
    return {sanitize_key(key): float(value) for key, value in data.items() if _is_number(value)}


def pick_params(dataset_name: str, data: Any) -> dict[str, str]:
    """The params in a ``*_params`` output (a dict), flattened to strings; {} for any other."""
    if not dataset_name.endswith(PARAMS_SUFFIX) or not isinstance(data, Mapping):
        return {}
    return param_strings(flatten_params(data))


def parent_metric_keys(metrics: Mapping[str, float], namespace: str | None) -> dict[str, float]:
    """A namespaced node's metrics carry its namespace on the parent run, so that the thirty
    runs of a comparison do not overwrite one another's ``val_mIoU_whole`` there."""
    if not namespace:
        return dict(metrics)
    return {sanitize_key(f"{namespace}{PARAM_SEP}{key}"): value for key, value in metrics.items()}


def is_history(dataset_name: str, data: Any) -> bool:
    """True for a ``*_history`` DataFrame with a ``step`` column."""
    return (
        dataset_name.endswith(HISTORY_SUFFIX)
        and isinstance(data, pd.DataFrame)
        and STEP_COLUMN in data.columns
    )


def history_points(history: pd.DataFrame) -> list[tuple[str, float, int]]:
    """``(key, value, step)`` for every finite value of every numeric non-step column."""
    if STEP_COLUMN not in history.columns:
        raise ValueError(
            f"a history table needs a {STEP_COLUMN!r} column, got {list(history.columns)}"
        )
    numeric = history.drop(columns=[STEP_COLUMN]).select_dtypes(include="number")
    steps = history[STEP_COLUMN].astype("int64").tolist()
    points: list[tuple[str, float, int]] = []
    for column in numeric.columns:
        for step, value in zip(steps, numeric[column].tolist(), strict=True):
            if value is not None and math.isfinite(float(value)):
                points.append((sanitize_key(column), float(value), int(step)))
    return points


def chunked(items: list[Any], size: int) -> list[list[Any]]:
    """Split ``items`` into consecutive lists of at most ``size`` (MLflow batch limits)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    return [items[start : start + size] for start in range(0, len(items), size)]


def dataset_local_path(dataset: Any) -> Path | None:
    """The local file/folder a dataset writes to, or None (memory, remote or no path).

    Works by convention on ``_filepath``/``filepath`` and ``_protocol``; for a versioned
    dataset it is the path of the version being saved.
    """
    if dataset is None or getattr(dataset, "_protocol", "file") not in LOCAL_PROTOCOLS:
        return None
    raw = getattr(dataset, "_filepath", None) or getattr(dataset, "filepath", None)
    if not raw:
        return None
    path = Path(str(raw))
    if getattr(dataset, "_version", None) and hasattr(dataset, "resolve_save_version"):
        # Kedro's versioned layout: <filepath>/<version>/<filename>
        return path / str(dataset.resolve_save_version()) / path.name
    return path


_OBJECT_REPR = re.compile(r"^<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>$")


def runner_label(runner: Any) -> str:
    """What ran the pipeline, as a tag a person reads: ``SequentialRunner``, not the object's
    ``<kedro.runner.sequential_runner.SequentialRunner object at 0x...>``."""
    if runner is None:
        return ""
    if not isinstance(runner, str):
        return type(runner).__name__
    match = _OBJECT_REPR.match(runner.strip())
    return match.group(1) if match else runner


def closing_lines(
    headline: str, metrics: Mapping[str, float], report: Path | None, run_url: str
) -> list[str]:
    """The last lines of a run on the console: its headline metric, its report, its UI page."""
    lines = []
    if headline in metrics:
        lines.append(f"{headline}: {metrics[headline]:.4f}")
    if report is not None and report.exists():
        page = report / REPORT_PAGE if report.is_dir() else report
        lines.append(f"report: {page}")
    lines.append(f"MLflow run: {run_url} (make mlflow-ui serves it)")
    return lines
