"""Report figures as pure functions: plain arrays/DataFrames in, matplotlib Figures out.

Figures are built with ``matplotlib.figure.Figure`` and rendered by the Agg canvas, never
through ``pyplot``: no global backend switch, no window, no figure registry to leak, so a
Kedro node (or a test) can call these from any thread. The caller saves the figure, e.g.
with :func:`figure_to_png_bytes`, which also releases it.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

FIGURE_DPI = 100
CHART_WIDTH_IN = 8.0
MIN_CHART_HEIGHT_IN = 3.0
MAX_FIGURE_SIDE_IN = 24.0  # keeps a 150-class heatmap under ~2400 px a side
BAR_HEIGHT_IN = 0.32  # vertical room per class in the IoU chart
CHART_MARGIN_IN = 1.5  # title, axis label and legend
BAR_COLOUR = "#4C72B0"
MIOU_LINE_COLOUR = "#C44E52"
ABSENT_COLOUR = "grey"
VALUE_LABEL_OFFSET = 0.01  # gap between a bar's end and its value label, in IoU units
IOU_AXIS_LIMIT = 1.12  # room right of a perfect bar for its label

ANNOTATE_MAX_CLASSES = 25  # beyond this the cell labels are unreadable
HEATMAP_CELL_IN = 0.45
HEATMAP_MARGIN_IN = 2.5  # tick labels and the colour bar
HEATMAP_CMAP = "Blues"
DARK_CELL_FRACTION = 0.5  # cells above this share of the colour range get white text
NORMALISATIONS = ("true", "pred", "all", None)

GROUP_WIDTH = 0.8  # share of a label-budget slot taken by its bars
COMPARISON_SLOT_IN = 1.2  # width per (budget, method) bar, before capping
COMPARISON_HEIGHT_IN = 4.5
HISTOGRAM_BINS = 50


def new_figure(width_in: float, height_in: float) -> Figure:
    """A pyplot-free figure with an Agg canvas attached (see the module docstring)."""
    fig = Figure(
        figsize=(min(width_in, MAX_FIGURE_SIDE_IN), min(height_in, MAX_FIGURE_SIDE_IN)),
        dpi=FIGURE_DPI,
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    return fig


def _check_iou(class_names: Sequence[str], iou: np.ndarray) -> tuple[list[str], np.ndarray]:
    names = [str(n) for n in class_names]
    values = np.asarray(iou, dtype=np.float64).reshape(-1)
    if len(names) != len(values):
        raise ValueError(
            f"iou has {len(values)} entries but class_names has {len(names)}: "
            "pass one IoU per class"
        )
    finite = values[np.isfinite(values)]
    if np.any(np.isinf(values)) or np.any((finite < 0) | (finite > 1)):
        raise ValueError("iou values must lie in [0, 1] (NaN marks a class absent from the data)")
    return names, values


def per_class_iou_chart(
    class_names: Sequence[str], iou: np.ndarray, title: str = "Per-class IoU"
) -> Figure:
    """Horizontal IoU bars with their values; absent classes (NaN) are marked, not drawn as 0."""
    names, values = _check_iou(class_names, iou)
    present = np.isfinite(values)
    fig = new_figure(
        CHART_WIDTH_IN, max(MIN_CHART_HEIGHT_IN, BAR_HEIGHT_IN * len(names) + CHART_MARGIN_IN)
    )
    ax = fig.add_subplot()
    rows = np.arange(len(names))
    ax.barh(rows[present], values[present], color=BAR_COLOUR)
    for row, value in zip(rows[present], values[present], strict=True):
        ax.text(value + VALUE_LABEL_OFFSET, row, f"{value:.3f}", va="center", fontsize="small")
    for row in rows[~present]:
        ax.text(VALUE_LABEL_OFFSET, row, "absent", va="center", color=ABSENT_COLOUR, style="italic")
    if present.any():
        miou = float(values[present].mean())
        ax.axvline(miou, linestyle="--", color=MIOU_LINE_COLOUR, label=f"mIoU {miou:.3f}")
        ax.legend(loc="lower right")
    ax.set_yticks(rows, labels=names)
    ax.set_ylim(len(names) - 0.5, -0.5)  # first class on top
    ax.set_xlim(0.0, IOU_AXIS_LIMIT)
    ax.set_xlabel("IoU")
    ax.set_title(title)
    return fig


def _check_confusion(matrix: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square (C, C), got shape {m.shape}")
    if m.shape[0] != len(class_names):
        raise ValueError(
            f"confusion matrix is {m.shape[0]}x{m.shape[0]} but class_names has "
            f"{len(class_names)} names"
        )
    m = m.astype(np.float64)
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ValueError("confusion matrix entries must be finite, non-negative counts")
    return m


def normalise_confusion(matrix: np.ndarray, normalise: str | None = "true") -> np.ndarray:
    """Normalise counts over ground-truth rows ('true'), predicted columns ('pred'), the total
    ('all') or not at all (None); empty rows/columns become 0 rather than NaN."""
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {NORMALISATIONS}, got {normalise!r}")
    m = np.asarray(matrix, dtype=np.float64)
    if normalise is None:
        return m.copy()
    if normalise == "true":
        denom = m.sum(axis=1, keepdims=True)
    elif normalise == "pred":
        denom = m.sum(axis=0, keepdims=True)
    else:
        denom = np.full((1, 1), m.sum())
    denom = np.broadcast_to(denom, m.shape)
    return np.divide(m, denom, out=np.zeros_like(m), where=denom > 0)


def confusion_heatmap(
    matrix: np.ndarray, class_names: Sequence[str], normalise: str | None = "true"
) -> Figure:
    """Heatmap of the confusion matrix (rows = ground truth), annotated when C is small."""
    counts = _check_confusion(matrix, class_names)
    values = normalise_confusion(counts, normalise)
    n = len(class_names)
    side = HEATMAP_CELL_IN * n + HEATMAP_MARGIN_IN
    fig = new_figure(side + 1.0, side)
    ax = fig.add_subplot()
    vmax = 1.0 if normalise is not None else max(float(values.max()), 1.0)
    image = ax.imshow(values, cmap=HEATMAP_CMAP, vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="share of row" if normalise == "true" else "value")
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=[str(c) for c in class_names], rotation=90)
    ax.set_yticks(ticks, labels=[str(c) for c in class_names])
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title("Confusion matrix" + (f" (normalised: {normalise})" if normalise else " (counts)"))
    if n <= ANNOTATE_MAX_CLASSES:
        _annotate_cells(ax, values, vmax, integer=normalise is None)
    return fig


def _annotate_cells(ax: Axes, values: np.ndarray, vmax: float, integer: bool) -> None:
    for (row, col), value in np.ndenumerate(values):
        colour = "white" if value > DARK_CELL_FRACTION * vmax else "black"
        text = f"{int(value)}" if integer else f"{value:.2f}"
        ax.text(col, row, text, ha="center", va="center", color=colour, fontsize="x-small")


def comparison_chart(table: pd.DataFrame, title: str = "mIoU by method and label budget") -> Figure:
    """Grouped bars (one group per label budget, one bar per variant, else per method) of mean
    mIoU with std error bars."""
    required = {"method", "labeled", "mIoU_mean"}
    if not required <= set(table.columns):
        raise ValueError(
            f"comparison table needs columns {sorted(required)}, has {list(table.columns)}; "
            "build it with comparison_table()"
        )
    if table.empty:
        raise ValueError("comparison table is empty: there are no finished runs to compare")
    budgets = list(dict.fromkeys(table["labeled"].astype(str)))
    series = "variant" if "variant" in table.columns else "method"
    methods = list(dict.fromkeys(table[series].astype(str)))
    width = GROUP_WIDTH / len(methods)
    fig = new_figure(
        max(CHART_WIDTH_IN, COMPARISON_SLOT_IN * len(budgets) * len(methods)), COMPARISON_HEIGHT_IN
    )
    ax = fig.add_subplot()
    for m_index, method in enumerate(methods):
        rows = table[table[series].astype(str) == method]
        by_budget = dict(zip(rows["labeled"].astype(str), rows.index, strict=True))
        xs, means, stds = [], [], []
        for b_index, budget in enumerate(budgets):
            if budget in by_budget:
                row = table.loc[by_budget[budget]]
                xs.append(b_index - GROUP_WIDTH / 2 + (m_index + 0.5) * width)
                means.append(float(row["mIoU_mean"]))
                std = float(row["mIoU_std"]) if "mIoU_std" in table.columns else np.nan
                stds.append(std if np.isfinite(std) else 0.0)
        bars = ax.bar(xs, means, width=width, yerr=stds, capsize=3, label=method)
        ax.bar_label(bars, fmt="%.3f", fontsize="x-small", padding=2)
    ax.set_xticks(np.arange(len(budgets)), labels=budgets)
    ax.set_xlabel("labeled images (budget)")
    ax.set_ylabel("mIoU (mean ± std over runs)")
    ax.set_title(title)
    ax.legend(title=series, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # never over a bar
    return fig


def score_histogram(scores: np.ndarray, proposed: int, score_name: str) -> Figure:
    """The unlabeled images' scores, with the lowest score among the ``proposed`` best marked:
    a long right tail means a few images stand out; a flat one, that the ranking matters less."""
    scores = np.asarray(scores, dtype=float)
    if scores.size == 0:
        raise ValueError("score_histogram needs at least one score")
    fig = new_figure(CHART_WIDTH_IN, MIN_CHART_HEIGHT_IN)
    ax = fig.add_subplot()
    ax.hist(scores, bins=min(HISTOGRAM_BINS, max(1, scores.size)), color=BAR_COLOUR)
    if 0 < proposed <= scores.size:
        cutoff = float(np.sort(scores)[::-1][proposed - 1])
        ax.axvline(cutoff, color=MIOU_LINE_COLOUR, linestyle="--", label=f"top {proposed}")
        ax.legend()
    ax.set_xlabel(f"score ({score_name}, higher: label first)")
    ax.set_ylabel("unlabeled images")
    return fig


def close_figure(fig: Figure) -> None:
    """Release a figure, including one a caller made through pyplot (if pyplot is loaded)."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
    fig.clear()


def figure_to_png_bytes(fig: Figure, dpi: float | None = None) -> bytes:
    """Render the figure as PNG bytes (at its own dpi unless given) and close it."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi if dpi is not None else fig.dpi)
    finally:
        close_figure(fig)
    return buffer.getvalue()
