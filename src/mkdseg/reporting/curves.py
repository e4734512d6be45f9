"""Training curves: one panel per quantity the training loop logged, raw and smoothed.

A pure function of the training history (a DataFrame with a ``step`` column), drawn like every
report figure (``figures.new_figure``: no pyplot).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mkdseg.reporting.figures import BAR_COLOUR, new_figure

# Columns the training loop logs (step-indexed), in panel order, with their panel titles.
CURVE_TITLES = {
    "loss": "total loss",
    "loss_sup": "supervised loss",
    "loss_st": "student-teacher loss (L_st)",
    "loss_ss": "student-student loss (L_ss)",
    "loss_s1": "first strong view's loss (UniMatch)",
    "loss_s2": "second strong view's loss (UniMatch)",
    "loss_fp": "feature-perturbed view's loss (UniMatch)",
    "lr": "learning rate",
    "lambda": "feature-augmentation lambda",
    "ema_momentum": "EMA momentum",
    "teacher_confidence": "teacher confidence",
    "confident_share": "confident pixel share",
    "teacher_agreement": "teacher agreement",
    "target_alignment": "CutMix target alignment on the grid",
    "kept_share_st_background": "kept share, background targets",
    "kept_share_st_objects": "kept share, object targets",
    "images_per_s": "images / s",
    # also logged by the trainer (beyond the brief's list): cheap to show, useful when debugging
    "peak_memory_mb": "peak memory (MB; on a CPU the process's resident set)",
    "nonfinite_skipped": "non-finite steps skipped (total)",
}
CURVE_COLUMNS = tuple(CURVE_TITLES)
SMOOTHING = 0.6  # TensorBoard's default smoothing weight: light, keeps the trend visible
CURVE_GRID_COLS = 3
CURVE_PANEL_W_IN = 4.0
CURVE_PANEL_H_IN = 2.6
RAW_CURVE_ALPHA = 0.3


def _finite(history: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=np.float64)
    return values[np.isfinite(values)]


def curve_columns(history: pd.DataFrame) -> list[str]:
    """The known training-curve columns of ``history`` that hold at least one finite number."""
    return [c for c in CURVE_COLUMNS if c in history.columns and _finite(history, c).size]


def constant_value(history: pd.DataFrame, column: str) -> float | None:
    """The column's value when it never changed over the run (no step skipped, a kept share
    that stayed 0), else None: such a column is said in one line, not drawn as a flat panel."""
    finite = _finite(history, column)
    if finite.size and finite.min() == finite.max():
        return float(finite[0])
    return None


def ema_smooth(values: np.ndarray, weight: float = SMOOTHING) -> np.ndarray:
    """Exponential moving average s_t = w s_{t-1} + (1 - w) x_t, s_0 = x_0 (TensorBoard style)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    series = pd.Series(np.asarray(values, dtype=np.float64))
    return series.ewm(alpha=1.0 - weight, adjust=False).mean().to_numpy()


def training_curves(
    history: pd.DataFrame, columns: Sequence[str] | None = None, smoothing: float = SMOOTHING
) -> Figure:
    """One small panel per logged quantity: raw values faint, EMA-smoothed values on top."""
    if "step" not in history.columns:
        raise ValueError("training history needs a 'step' column (the optimiser iteration)")
    columns = list(columns) if columns is not None else curve_columns(history)
    missing = [c for c in columns if c not in history.columns]
    if missing:
        raise ValueError(
            f"training history has no column(s) {missing}; it has {list(history.columns)}"
        )
    if not columns:
        raise ValueError(f"training history has none of the curve columns {list(CURVE_COLUMNS)}")
    constants = {c: v for c in columns if (v := constant_value(history, c)) is not None}
    columns = [c for c in columns if c not in constants]
    panels = len(columns) + (1 if constants else 0)
    ncols = min(CURVE_GRID_COLS, panels)
    nrows = -(-panels // ncols)
    fig = new_figure(CURVE_PANEL_W_IN * ncols, CURVE_PANEL_H_IN * nrows)
    steps = pd.to_numeric(history["step"], errors="coerce").to_numpy(dtype=np.float64)
    if constants:
        _constants_panel(fig.add_subplot(nrows, ncols, panels), constants)
    for index, column in enumerate(columns):
        ax = fig.add_subplot(nrows, ncols, index + 1)
        values = pd.to_numeric(history[column], errors="coerce").to_numpy(dtype=np.float64)
        keep = np.isfinite(steps) & np.isfinite(values)
        order = np.argsort(steps[keep], kind="stable")
        x, y = steps[keep][order], values[keep][order]
        ax.plot(x, y, color=BAR_COLOUR, alpha=RAW_CURVE_ALPHA, linewidth=1, label="raw")
        if len(y):
            ax.plot(x, ema_smooth(y, smoothing), color=BAR_COLOUR, linewidth=1.5, label="smoothed")
        ax.set_title(CURVE_TITLES.get(column, column), fontsize="medium")
        ax.set_xlabel("step", fontsize="small")
        ax.grid(alpha=RAW_CURVE_ALPHA)
    return fig


def _constants_panel(ax: Axes, constants: dict[str, float]) -> None:
    """One panel of text: the quantities that kept one value the whole run, and that value."""
    lines = [f"{CURVE_TITLES.get(c, c)}: {v:.6g}" for c, v in constants.items()]
    ax.axis("off")
    ax.set_title("constant over the run", fontsize="medium")
    ax.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize="small",
            transform=ax.transAxes)  # fmt: skip
