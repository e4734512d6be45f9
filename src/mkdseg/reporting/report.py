"""Write a run's report: a self-contained ``report.html``, a ``summary.md`` and the figure PNGs.

The HTML embeds every figure as a base64 PNG so it can be mailed or attached to an MLflow run
as one file; the Markdown links the PNGs written next to it. Every file goes through a
temporary file and ``os.replace``, so a crash never leaves a half-written report.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mkdseg.core.atomic import atomic_write_bytes
from mkdseg.reporting import curves, figures
from mkdseg.reporting.markdown import format_cells, to_markdown_table
from mkdseg.reporting.prediction_grid import array_to_png_bytes
from mkdseg.reporting.tables import (
    METRIC_FORMAT,
    mean_iou,
    metrics_frame,
    per_class_frame,
    summary_frame,
)

REPORT_HTML = "report.html"
SUMMARY_MD = "summary.md"
FIGURE_FILES = {
    "per_class_iou": "per_class_iou.png",
    "confusion_matrix": "confusion_matrix.png",
    "training_curves": "training_curves.png",
    "predictions": "predictions.png",
    "to_label": "to_label.png",
    "score_distribution": "score_distribution.png",
    "comparison": "comparison.png",
}
FIGURE_CAPTIONS = {
    "per_class_iou": "Per-class IoU (dashed: mIoU over present classes)",
    "confusion_matrix": "Confusion matrix (rows: ground truth, normalised per row)",
    "training_curves": "Training curves (faint: raw, solid: smoothed)",
    "predictions": "Predictions (image | ground truth | prediction)",
    "to_label": "Images to label next, best first (image | proposed mask)",
    "score_distribution": "Scores of the unlabeled images (dashed: the last proposed image)",
    "comparison": "Comparison across runs",
}
LABELLING_HEADING = "Which images to label next"
MIN_COMPARED_ROWS = 2
DEFAULT_TITLE = "mkdseg run report"
STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em}"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "td.num{text-align:right;font-variant-numeric:tabular-nums}th{background:#f2f2f2}"
    "img{max-width:100%;height:auto;border:1px solid #eee}"
    "figure{margin:0.5em 0 1.5em}figcaption{color:#555;font-size:0.9em}"
)


def html_table(df: pd.DataFrame) -> str:
    """An escaped HTML table; numeric columns are right-aligned."""
    numeric = [pd.api.types.is_numeric_dtype(df.iloc[:, i]) for i in range(len(df.columns))]
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = []
    for row in format_cells(df, escape=html.escape):
        cells = (
            f'<td class="num">{cell}</td>' if is_num else f"<td>{cell}</td>"
            for cell, is_num in zip(row, numeric, strict=True)
        )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _render_figures(
    class_names: Sequence[str],
    iou: np.ndarray,
    matrix: np.ndarray,
    history: pd.DataFrame | None,
    prediction_grid: np.ndarray | None,
    comparison: pd.DataFrame | None,
    to_label: ToLabel | None = None,
) -> dict[str, bytes]:
    """PNG bytes per figure key; optional figures are left out when their input is missing."""
    pngs = {
        "per_class_iou": figures.figure_to_png_bytes(figures.per_class_iou_chart(class_names, iou)),
        "confusion_matrix": figures.figure_to_png_bytes(
            figures.confusion_heatmap(matrix, class_names)
        ),
    }
    if history is not None and "step" in history.columns and curves.curve_columns(history):
        pngs["training_curves"] = figures.figure_to_png_bytes(curves.training_curves(history))
    if prediction_grid is not None:
        pngs["predictions"] = array_to_png_bytes(prediction_grid)
    if to_label is not None and to_label.grid is not None:
        pngs["to_label"] = array_to_png_bytes(to_label.grid)
    if to_label is not None and len(to_label.scores):
        histogram = figures.score_histogram(
            to_label.scores, len(to_label.table), to_label.score_name
        )
        pngs["score_distribution"] = figures.figure_to_png_bytes(histogram)
    if _comparable(comparison):
        pngs["comparison"] = figures.figure_to_png_bytes(figures.comparison_chart(comparison))
    return pngs


def _comparable(comparison: pd.DataFrame | None) -> bool:
    """A comparison needs two runs: this run alone is its metrics again. (A row may hold several
    runs of one configuration, its seeds: ``runs``.)"""
    if comparison is None or comparison.empty:
        return False
    runs = comparison["runs"].sum() if "runs" in comparison.columns else len(comparison)
    return len(comparison) >= MIN_COMPARED_ROWS or runs >= MIN_COMPARED_ROWS


@dataclass(frozen=True)
class ToLabel:
    """The labelling section: the images proposed for labelling and every unlabeled score."""

    table: pd.DataFrame  # the proposed images, best first: rank, id, score, predicted classes
    grid: np.ndarray | None  # their proposal_grid mosaic; None without proposals
    scores: np.ndarray  # every unlabeled image's score
    score_name: str


NO_POOL = pd.DataFrame({"note": ["no unlabeled images: nothing to rank"]})


@dataclass(frozen=True)
class Section:
    """One heading of the report: a table, a figure (a ``FIGURE_FILES`` key), or a table and
    its chart."""

    heading: str
    table: pd.DataFrame | None = None
    figure: str | None = None


def _sections(
    summary: Mapping[str, object],
    metrics: Mapping[str, float],
    class_names: Sequence[str],
    iou: np.ndarray,
    comparison: pd.DataFrame | None,
    pngs: Mapping[str, bytes],
    to_label: ToLabel | None = None,
) -> list[Section]:
    """The report's order: what ran, the overall metrics, per-class IoU once (table, then its
    chart), the other figures, which images to label next, and the comparison with other runs
    (table, then its chart)."""
    sections = [
        Section("Run summary", summary_frame(summary)),
        Section("Metrics", metrics_frame(metrics)),
        Section("Per-class IoU", per_class_frame(class_names, iou), "per_class_iou"),
    ]
    sections += [
        Section(FIGURE_CAPTIONS[key], figure=key)
        for key in ("confusion_matrix", "training_curves", "predictions")
        if key in pngs
    ]
    if to_label is not None:
        table = to_label.table if len(to_label.scores) else NO_POOL
        sections.append(
            Section(LABELLING_HEADING, table, "to_label" if "to_label" in pngs else None)
        )
        if "score_distribution" in pngs:
            sections.append(
                Section(FIGURE_CAPTIONS["score_distribution"], figure="score_distribution")
            )
    if _comparable(comparison):
        sections.append(
            Section("Comparison", comparison, "comparison" if "comparison" in pngs else None)
        )
    return sections


def _render_html(
    title: str, headline: str, sections: list[Section], pngs: Mapping[str, bytes]
) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p><strong>{html.escape(headline)}</strong></p>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.heading)}</h2>")
        if section.table is not None:
            parts.append(html_table(section.table))
        if section.figure is not None:
            encoded = base64.b64encode(pngs[section.figure]).decode("ascii")
            caption = html.escape(FIGURE_CAPTIONS[section.figure])
            parts.append(
                f'<figure><img src="data:image/png;base64,{encoded}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _render_markdown(title: str, headline: str, sections: list[Section]) -> str:
    parts = [f"# {title}", "", f"**{headline}**", ""]
    for section in sections:
        parts += [f"## {section.heading}", ""]
        if section.table is not None:
            parts.append(to_markdown_table(section.table))
        if section.figure is not None:
            caption = FIGURE_CAPTIONS[section.figure]
            parts += [f"![{caption}]({FIGURE_FILES[section.figure]})", ""]
    return "\n".join(parts)


def write_report(
    out_dir: Path,
    summary: Mapping[str, object],
    metrics: Mapping[str, float],
    class_names: Sequence[str],
    iou: np.ndarray,
    matrix: np.ndarray,
    history: pd.DataFrame | None = None,
    prediction_grid: np.ndarray | None = None,
    comparison: pd.DataFrame | None = None,
    title: str = DEFAULT_TITLE,
    to_label: ToLabel | None = None,
) -> dict[str, Path]:
    """Write report.html, summary.md and the figure PNGs into ``out_dir``; return name -> path.

    Names are ``report``, ``summary`` and the keys of ``FIGURE_FILES`` that were drawn. A figure
    whose input is missing (no history, no grid, no comparison, no images to label) is skipped,
    and a stale PNG of that name from an earlier report in ``out_dir`` is removed so the folder
    matches the report.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"report out_dir {out_dir} exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = _render_figures(class_names, iou, matrix, history, prediction_grid, comparison, to_label)
    sections = _sections(summary, metrics, class_names, iou, comparison, pngs, to_label)
    present = int(np.isfinite(np.asarray(iou, dtype=np.float64)).sum())
    headline = (
        f"mIoU {METRIC_FORMAT.format(mean_iou(iou))} over {present} of {len(class_names)} classes "
        "present in the ground truth"
    )
    written: dict[str, Path] = {}
    for key, filename in FIGURE_FILES.items():
        path = out_dir / filename
        if key in pngs:
            atomic_write_bytes(path, pngs[key])
            written[key] = path
        else:
            path.unlink(missing_ok=True)
    written["summary"] = out_dir / SUMMARY_MD
    atomic_write_bytes(
        written["summary"], _render_markdown(title, headline, sections).encode("utf-8")
    )
    written["report"] = out_dir / REPORT_HTML
    atomic_write_bytes(
        written["report"], _render_html(title, headline, sections, pngs).encode("utf-8")
    )
    return written
