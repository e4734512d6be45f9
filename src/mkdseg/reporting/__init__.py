"""Run reports as pure functions: figures, Markdown tables, the HTML/Markdown report.

Plain data in, plain data (figures, arrays, DataFrames, files) out: no Kedro, MLflow or torch,
so a thin pipeline node can call these and tests can drive them with hand-made inputs.
"""

from mkdseg.reporting.curves import training_curves
from mkdseg.reporting.figures import (
    comparison_chart,
    confusion_heatmap,
    figure_to_png_bytes,
    per_class_iou_chart,
)
from mkdseg.reporting.markdown import to_markdown_table
from mkdseg.reporting.prediction_grid import prediction_grid
from mkdseg.reporting.report import write_report

__all__ = [
    "comparison_chart",
    "confusion_heatmap",
    "figure_to_png_bytes",
    "per_class_iou_chart",
    "prediction_grid",
    "to_markdown_table",
    "training_curves",
    "write_report",
]
