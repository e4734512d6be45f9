"""write_report: the files exist, the HTML is self-contained and escaped, the Markdown has the
tables."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mkdseg.reporting.report import (
    FIGURE_FILES,
    LABELLING_HEADING,
    REPORT_HTML,
    SUMMARY_MD,
    ToLabel,
    write_report,
)

NAMES = ["background", "aeroplane", "<cat & dog>"]
IOU = np.array([0.9, np.nan, 0.6])
MATRIX = np.array([[90, 5, 5], [0, 0, 0], [10, 0, 30]])
SUMMARY = {"method": "mkd", "split": "voc_92", "training": {"lr": 0.0025, "crop": [64, 64]}}
METRICS = {"val_mIoU_whole": 0.73456, "val_pixel_acc": 0.912}


def _history() -> pd.DataFrame:
    steps = np.arange(0, 40, 4)
    return pd.DataFrame({"step": steps, "loss": 1.0 / (1 + steps), "lr": 0.01 * (1 - steps / 40)})


def _comparison() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "method": ["supervised", "mkd"],
            "labeled": ["92", "92"],
            "runs": [2, 3],
            "mIoU_mean": [0.52, 0.64],
            "mIoU_std": [0.02, 0.04],
            "gain_over_supervised": [0.0, 0.12],
        }
    )


def _to_label(scores: list[float]) -> ToLabel:
    table = pd.DataFrame({"rank": [1, 2], "id": ["b", "a"], "score": [0.9, 0.5]})
    grid = np.zeros((24, 40, 3), dtype=np.uint8)
    return ToLabel(table, grid if scores else None, np.asarray(scores), "entropy")


def _full_report(out_dir: Path) -> dict[str, Path]:
    grid = np.zeros((20, 30, 3), dtype=np.uint8)
    return write_report(
        out_dir,
        SUMMARY,
        METRICS,
        NAMES,
        IOU,
        MATRIX,
        _history(),
        grid,
        _comparison(),
        to_label=_to_label([0.9, 0.5, 0.2, 0.1]),
    )


def test_write_report_writes_every_file(tmp_path: Path) -> None:
    out = tmp_path / "report"
    paths = _full_report(out)
    assert paths["report"] == out / REPORT_HTML and paths["summary"] == out / SUMMARY_MD
    for key, filename in FIGURE_FILES.items():
        assert paths[key] == out / filename
        with Image.open(paths[key]) as image:
            image.load()
            assert image.format == "PNG"
            width, height = image.size
        assert 20 <= width <= 2400 and 20 <= height <= 2400, (key, image.size)
    with Image.open(paths["predictions"]) as image:
        assert image.size == (30, 20)  # the grid is written as given, not resampled
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*FIGURE_FILES.values(), REPORT_HTML, SUMMARY_MD]
    )


def test_html_is_self_contained_escaped_and_has_the_values(tmp_path: Path) -> None:
    text = _full_report(tmp_path)["report"].read_text(encoding="utf-8")
    assert "0.7346" in text  # the metric, formatted
    assert "mIoU 0.7500 over 2 of 3 classes" in text  # headline: mean over present classes
    for name in ["background", "aeroplane"]:
        assert name in text
    assert "&lt;cat &amp; dog&gt;" in text and "<cat & dog>" not in text
    assert "training.lr" in text and "0.0025" in text and "64, 64" in text
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == len(FIGURE_FILES)
    for encoded in images:
        Image.open(io.BytesIO(base64.b64decode(encoded))).verify()
    assert 'src="per_class_iou.png"' not in text  # nothing loaded from disk


def test_markdown_has_the_tables_and_links(tmp_path: Path) -> None:
    text = _full_report(tmp_path)["summary"].read_text(encoding="utf-8")
    assert "| metric | value |" in text
    assert "| val_mIoU_whole | 0.7346 |" in text
    assert "| val_pixel_acc | 0.9120 |" in text
    assert "| aeroplane | absent |" in text
    assert "| mkd | 92 | 3 | 0.6400 | 0.0400 | 0.1200 |" in text
    for filename in FIGURE_FILES.values():
        assert f"]({filename})" in text


def test_optional_parts_are_skipped_and_stale_figures_removed(tmp_path: Path) -> None:
    _full_report(tmp_path)
    paths = write_report(tmp_path, SUMMARY, METRICS, NAMES, IOU, MATRIX, None, None, None)
    assert set(paths) == {"report", "summary", "per_class_iou", "confusion_matrix"}
    for key in ("training_curves", "predictions", "comparison"):
        assert not (tmp_path / FIGURE_FILES[key]).exists()
    markdown = paths["summary"].read_text(encoding="utf-8")
    assert "training_curves.png" not in markdown and "## Comparison" not in markdown
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_history_without_curves_and_empty_comparison_are_skipped(tmp_path: Path) -> None:
    history = pd.DataFrame({"step": [0, 1], "unrelated": [1.0, 2.0]})
    empty = _comparison().iloc[:0]
    paths = write_report(tmp_path, {}, {}, NAMES, IOU, MATRIX, history, None, empty)
    assert "training_curves" not in paths and "comparison" not in paths
    alone = _comparison().iloc[:1].assign(runs=1)  # this run alone: nothing to compare with
    paths = write_report(tmp_path, {}, {}, NAMES, IOU, MATRIX, None, None, alone)
    assert "comparison" not in paths
    assert "## Comparison" not in paths["summary"].read_text(encoding="utf-8")


def test_the_report_names_its_mlflow_run_when_one_is_active(
    tmp_path: Path, isolated_mlflow: None
) -> None:
    import mlflow

    from mkdseg.catalog import ReportDataset

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow.create_experiment("report-link")
    content = {"summary": {"method": "mkd"}, "metrics": METRICS, "class_names": NAMES,
               "iou": IOU, "matrix": MATRIX}  # fmt: skip
    with mlflow.start_run(experiment_id=experiment) as run:
        ReportDataset(str(tmp_path / "report")).save(content)
    markdown = (tmp_path / "report" / "summary.md").read_text(encoding="utf-8")
    assert f"| mlflow_run.id | {run.info.run_id} |" in markdown
    page = f"#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
    assert page in markdown
    ReportDataset(str(tmp_path / "plain")).save(content)  # no active run: no run row
    assert "mlflow_run" not in (tmp_path / "plain" / "summary.md").read_text(encoding="utf-8")


def test_bad_inputs_raise_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="class_names has 3"):
        write_report(tmp_path, SUMMARY, METRICS, NAMES, np.ones(2), MATRIX)
    with pytest.raises(ValueError, match="must be a number"):
        write_report(tmp_path, SUMMARY, {"val_mIoU_whole": "high"}, NAMES, IOU, MATRIX)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NotADirectoryError, match="out_dir"):
        write_report(blocker, SUMMARY, METRICS, NAMES, IOU, MATRIX)


def test_atomic_write_leaves_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "x.md"
    target.write_text("old")

    def fail(*_args: object) -> None:
        raise OSError("disk full")

    from mkdseg.core import atomic

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic.atomic_write_bytes(target, b"new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.md"]


def test_per_class_iou_is_one_table_followed_by_its_chart(tmp_path: Path) -> None:
    html_text = _full_report(tmp_path)["report"].read_text(encoding="utf-8")
    assert html_text.count("<h2>Per-class IoU</h2>") == 1
    section = html_text.split("<h2>Per-class IoU</h2>")[1].split("<h2>")[0]
    assert section.index("<table>") < section.index("<img") and "0.6000" in section
    markdown = (tmp_path / SUMMARY_MD).read_text(encoding="utf-8")
    per_class = markdown.split("## Per-class IoU")[1].split("## ")[0]
    assert "| aeroplane | absent |" in per_class and per_class.index("|") < per_class.index(
        "](per_class_iou.png)"
    )


def _no_pool(names: list[str]) -> tuple:
    """The labelling node's outputs for a run without unlabeled images."""
    from mkdseg.labelling import Proposals, empty_table

    return empty_table(names), Proposals({}, {})


SPLIT_METRICS = {
    "n_labeled": 10.0,
    "n_unlabeled": 35.0,
    "n_val": 4.0,
    "n_unlabeled_masked": 0.0,
    "n_unlabeled_no_mask": 30.0,
    "n_unlabeled_extra": 5.0,
    "share_l1_distance": 0.1,
}


def test_report_node_keeps_per_class_iou_out_of_the_metrics_table() -> None:
    from mkdseg.pipelines.reporting.nodes import build_report

    metrics = {
        "val_mIoU_whole": 0.5,
        "val_pixel_acc_whole": 0.9,
        "val_IoU_whole.background": 0.8,
        "val_IoU_whole.disc": 0.2,
    }
    content = build_report(
        metrics,
        pd.DataFrame(np.eye(2)),
        _history(),
        np.zeros((4, 4, 3), np.uint8),
        pd.DataFrame(),
        {"names": ["background", "disc"], "source": "synthetic"},
        SPLIT_METRICS,
        *_no_pool(["background", "disc"]),
        {"method": "mkd", "seed": 0},
        {"labeled": 0.0625},
        {"mode": "whole"},
        {"score": "entropy"},
    )
    assert content["metrics"] == {"val_mIoU_whole": 0.5, "val_pixel_acc_whole": 0.9}
    assert content["summary"]["data"] == {
        "labeled images (with a mask)": 10,
        "unlabeled images": 35,
        "unlabeled: masked, not drawn (benchmark protocol)": 0,
        "unlabeled: no mask": 30,
        "unlabeled: unlabeled pool": 5,
        "validation images (evaluated on)": 4,
    }
    np.testing.assert_allclose(content["iou"], [0.8, 0.2])


def test_report_lists_only_the_trained_architectures_model_settings() -> None:
    from mkdseg.pipelines.reporting.nodes import build_report

    model = {"architecture": "dilated_fcn", "backbone": "resnet50", "aspp_channels": 256,
             "decoder_channels": 32, "stem_channels": 16, "dilations": [1, 2]}  # fmt: skip
    content = build_report(
        {"val_mIoU_whole": 0.5},
        pd.DataFrame(np.eye(2)),
        _history(),
        np.zeros((4, 4, 3), np.uint8),
        pd.DataFrame(),
        {"names": ["background", "disc"], "source": "textures"},
        SPLIT_METRICS,
        *_no_pool(["background", "disc"]),
        {"method": "mkd", "seed": 0, "model": model},
        {"labeled": 0.0625},
        {"mode": "whole"},
        {"score": "entropy"},
    )
    assert content["title"] == ("mkdseg report: mkd, 1/16 of the labels (10 of 45 training images)")
    assert content["summary"]["model"] == {
        "architecture": "dilated_fcn",
        "stem_channels": 16,
        "decoder_channels": 32,
        "dilations": [1, 2],
    }


def test_several_seeds_of_one_configuration_are_still_compared(tmp_path: Path) -> None:
    seeds = _comparison().iloc[:1].assign(runs=3)  # one row holding three runs (its seeds)
    paths = write_report(tmp_path, {}, {}, NAMES, IOU, MATRIX, None, None, seeds)
    assert "comparison" in paths


def test_a_one_row_history_still_says_its_values(tmp_path: Path) -> None:
    history = pd.DataFrame({"step": [1], "loss": [2.5], "lr": [0.01]})
    paths = write_report(tmp_path, {}, {}, NAMES, IOU, MATRIX, history)
    assert "training_curves" in paths  # every column is constant: one text panel, not nothing


def test_the_labelling_section_lists_the_proposed_images_before_the_comparison(
    tmp_path: Path,
) -> None:
    _full_report(tmp_path)
    markdown = (tmp_path / SUMMARY_MD).read_text(encoding="utf-8")
    section = markdown.split(f"## {LABELLING_HEADING}", 1)[1]
    assert section.index("| 1 | b | 0.9000 |") < section.index("| 2 | a | 0.5000 |")
    assert "![Images to label next" in section and "score_distribution.png" in section
    assert section.index("to_label.png") < section.index("## Comparison")


def test_a_run_without_unlabeled_images_says_so_and_draws_no_labelling_figure(
    tmp_path: Path,
) -> None:
    _full_report(tmp_path)  # an earlier report with the figures
    write_report(tmp_path, SUMMARY, METRICS, NAMES, IOU, MATRIX, to_label=_to_label([]))
    markdown = (tmp_path / SUMMARY_MD).read_text(encoding="utf-8")
    assert "no unlabeled images: nothing to rank" in markdown
    assert not (tmp_path / "to_label.png").exists()
    assert not (tmp_path / "score_distribution.png").exists()
