"""Report figures: the drawn values match the inputs, PNGs decode at the expected size."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle
from PIL import Image

from mkdseg.reporting import curves, figures
from mkdseg.reporting.curves import ema_smooth, training_curves
from mkdseg.reporting.figures import (
    FIGURE_DPI,
    comparison_chart,
    confusion_heatmap,
    figure_to_png_bytes,
    normalise_confusion,
    per_class_iou_chart,
)

NAMES = ["background", "cat", "dog", "person"]


def _png_size(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    return image.size


def _bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_per_class_iou_chart_draws_present_classes_and_miou_line() -> None:
    iou = np.array([0.9, np.nan, 0.5, 0.25])
    fig = per_class_iou_chart(NAMES, iou, title="val")
    ax = fig.axes[0]
    widths = sorted(bar.get_width() for bar in _bars(ax))
    assert widths == pytest.approx([0.25, 0.5, 0.9])  # the absent class has no bar
    texts = [t.get_text() for t in ax.texts]
    assert "absent" in texts and "0.900" in texts
    miou_line = ax.lines[0]
    assert miou_line.get_xdata()[0] == pytest.approx((0.9 + 0.5 + 0.25) / 3)
    assert [t.get_text() for t in ax.get_yticklabels()] == NAMES
    width, height = _png_size(figure_to_png_bytes(fig))
    assert width == figures.CHART_WIDTH_IN * FIGURE_DPI
    assert 250 <= height <= 400


def test_per_class_iou_chart_grows_with_classes_and_checks_input() -> None:
    small = _png_size(figure_to_png_bytes(per_class_iou_chart(NAMES, np.full(4, 0.5))))
    names = [f"c{i}" for i in range(21)]
    large = _png_size(figure_to_png_bytes(per_class_iou_chart(names, np.full(21, 0.5))))
    assert large[1] > small[1]
    with pytest.raises(ValueError, match="class_names has 4"):
        per_class_iou_chart(NAMES, np.ones(3))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        per_class_iou_chart(NAMES, np.array([0.1, 1.5, 0.2, 0.3]))


def _slow_normalise(matrix: np.ndarray, mode: str) -> np.ndarray:
    out = np.zeros(matrix.shape)
    total = matrix.sum()
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            denom = {"true": matrix[i].sum(), "pred": matrix[:, j].sum(), "all": total}[mode]
            out[i, j] = matrix[i, j] / denom if denom else 0.0
    return out


@pytest.mark.parametrize("mode", ["true", "pred", "all"])
def test_normalise_confusion_matches_direct_division(mode: str) -> None:
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 20, size=(4, 4))
    matrix[2] = 0  # a class never in the ground truth
    matrix[:, 3] = 0  # a class never predicted
    np.testing.assert_allclose(normalise_confusion(matrix, mode), _slow_normalise(matrix, mode))
    np.testing.assert_array_equal(normalise_confusion(matrix, None), matrix)
    with pytest.raises(ValueError, match="normalise must be one of"):
        normalise_confusion(matrix, "rows")


def test_confusion_heatmap_shows_row_normalised_values_with_annotations() -> None:
    matrix = np.array([[8, 2, 0, 0], [1, 3, 0, 0], [0, 0, 0, 0], [0, 0, 5, 5]])
    fig = confusion_heatmap(matrix, NAMES)
    ax = fig.axes[0]
    image = next(child for child in ax.get_children() if isinstance(child, AxesImage))
    np.testing.assert_allclose(image.get_array(), _slow_normalise(matrix, "true"))
    assert len(fig.axes) == 2  # heatmap + colour bar
    assert {"0.80", "0.75", "0.50"} <= {t.get_text() for t in ax.texts}
    assert len(ax.texts) == matrix.size
    width, height = _png_size(figure_to_png_bytes(fig))
    assert 300 <= width <= 800 and 300 <= height <= 800


def test_confusion_heatmap_skips_annotations_for_many_classes_and_checks_shape() -> None:
    n = figures.ANNOTATE_MAX_CLASSES + 1
    fig = confusion_heatmap(np.eye(n, dtype=int), [f"c{i}" for i in range(n)])
    assert len(fig.axes[0].texts) == 0
    figures.close_figure(fig)
    with pytest.raises(ValueError, match="square"):
        confusion_heatmap(np.zeros((3, 4)), NAMES[:3])
    with pytest.raises(ValueError, match="class_names has 4"):
        confusion_heatmap(np.zeros((3, 3)), NAMES)


def test_ema_smooth_matches_the_recursion() -> None:
    values = np.array([4.0, 2.0, 3.0, 10.0, 1.0])
    weight = 0.6
    expected = [values[0]]
    for value in values[1:]:
        expected.append(weight * expected[-1] + (1 - weight) * value)
    np.testing.assert_allclose(ema_smooth(values, weight), expected)
    np.testing.assert_allclose(ema_smooth(values, 0.0), values)
    with pytest.raises(ValueError, match="smoothing"):
        ema_smooth(values, 1.0)


def test_training_curves_one_panel_per_present_column() -> None:
    steps = np.arange(0, 50, 5)
    history = pd.DataFrame(
        {
            "step": steps,
            "loss": np.linspace(3.0, 1.0, len(steps)),
            "lr": np.linspace(0.01, 0.0, len(steps)),
            "teacher_agreement": [np.nan] * len(steps),  # never logged: no panel
            "nonfinite_skipped": 0.0,  # flat: nothing to see, no panel
            "kept_share_st_objects": [np.nan] + [0.0] * (len(steps) - 1),  # flat where logged
            "unrelated": 1.0,
        }
    )
    history.loc[3, "lr"] = np.nan  # logged less often than the loss
    fig = training_curves(history)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["constant over the run", "total loss", "learning rate"]  # flat: one line
    said = fig.axes[0].texts[0].get_text()
    assert "non-finite steps skipped (total): 0" in said and "object targets: 0" in said
    raw, smooth = fig.axes[2].lines
    assert len(raw.get_xdata()) == len(steps) - 1
    np.testing.assert_allclose(smooth.get_ydata(), ema_smooth(raw.get_ydata()))
    width, height = _png_size(figure_to_png_bytes(fig))
    assert width == 3 * curves.CURVE_PANEL_W_IN * FIGURE_DPI
    assert height == curves.CURVE_PANEL_H_IN * FIGURE_DPI


def test_training_curves_rejects_unusable_history() -> None:
    with pytest.raises(ValueError, match="'step'"):
        training_curves(pd.DataFrame({"loss": [1.0]}))
    with pytest.raises(ValueError, match="none of the curve columns"):
        training_curves(pd.DataFrame({"step": [0], "other": [1.0]}))
    with pytest.raises(ValueError, match="no column"):
        training_curves(pd.DataFrame({"step": [0], "loss": [1.0]}), columns=["loss_st"])


def test_comparison_chart_groups_bars_by_budget() -> None:
    table = pd.DataFrame(
        {
            "method": ["supervised", "mkd", "supervised", "mkd"],
            "labeled": ["92", "92", "183", "183"],
            "mIoU_mean": [0.5, 0.6, 0.55, 0.7],
            "mIoU_std": [0.01, np.nan, 0.02, 0.03],
        }
    )
    fig = comparison_chart(table)
    ax = fig.axes[0]
    heights = sorted(round(bar.get_height(), 6) for bar in _bars(ax))
    assert heights == [0.5, 0.55, 0.6, 0.7]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["92", "183"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["supervised", "mkd"]
    width, height = _png_size(figure_to_png_bytes(fig))
    assert width == figures.CHART_WIDTH_IN * FIGURE_DPI
    assert height == figures.COMPARISON_HEIGHT_IN * FIGURE_DPI
    with pytest.raises(ValueError, match="empty"):
        comparison_chart(table.iloc[:0])
    with pytest.raises(ValueError, match="comparison_table"):
        comparison_chart(table.drop(columns="labeled"))


def test_figure_to_png_bytes_closes_pyplot_figures() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(2, 1), dpi=50)
    data = figure_to_png_bytes(fig)
    assert _png_size(data) == (100, 50)
    assert not plt.fignum_exists(fig.number)


def test_score_histogram_counts_every_image_and_marks_the_last_proposal() -> None:
    from mkdseg.reporting.figures import score_histogram

    scores = np.array([0.1, 0.2, 0.2, 0.9, 0.5])
    fig = score_histogram(scores, proposed=2, score_name="entropy")
    ax = fig.axes[0]
    assert sum(patch.get_height() for patch in ax.patches) == len(scores)
    assert ax.lines[0].get_xdata()[0] == 0.5  # the second-highest score
    assert "entropy" in ax.get_xlabel()
    with pytest.raises(ValueError, match="at least one score"):
        score_histogram(np.array([]), proposed=1, score_name="entropy")
