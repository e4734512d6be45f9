"""The comparison's summary: comparison_table arithmetic against hand computations, the
pipeline's runs as a table, the headline metrics."""

from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from mkdseg.pipelines.comparison.summary import (
    OUTPUT_COLUMNS,
    RunResult,
    comparison_table,
    headline_metrics,
    per_run_table,
    reported_metric,
    reported_table,
    results_frame,
    runs_without_test,
)
from mkdseg.pipelines.comparison.variants import RunIdentity
from mkdseg.reporting.markdown import to_markdown_table

METRIC = "metrics.val_mIoU_whole"


def _runs() -> pd.DataFrame:
    rows = [
        # (status, method, labeled, seed, mIoU, start)
        ("FINISHED", "supervised", "92", "0", 0.50, 1),
        ("FINISHED", "supervised", "92", "1", 0.54, 2),
        ("FINISHED", "mkd", "92", "0", 0.60, 3),
        ("FINISHED", "mkd", "92", "1", 0.64, 4),
        ("FINISHED", "mkd", "92", "2", 0.68, 5),
        ("FAILED", "mkd", "92", "3", 0.99, 6),  # not finished: ignored
        ("FINISHED", "mkd", "92", "4", np.nan, 7),  # no metric: ignored
        ("FINISHED", "mkd", "1464", "0", 0.75, 8),  # no supervised row at 1464: gain NaN
        ("FINISHED", "supervised", "183", "0", 0.40, 9),
        ("FINISHED", "supervised", "183", "0", 0.58, 10),  # re-run of seed 0: replaces 0.40
        ("RUNNING", "supervised", "183", "1", 0.10, 11),
    ]
    return pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(len(rows))],
            "status": [r[0] for r in rows],
            "params.training.method": [r[1] for r in rows],
            "params.splits.labeled": [r[2] for r in rows],
            "params.training.seed": [r[3] for r in rows],
            METRIC: [r[4] for r in rows],
            "start_time": pd.to_datetime([r[5] for r in rows], unit="D"),
        }
    )


def test_comparison_table_mean_std_gain() -> None:
    table = comparison_table(_runs())
    assert list(table.columns) == OUTPUT_COLUMNS
    # budgets in numeric order, supervised first within a budget
    assert list(zip(table["method"], table["labeled"], strict=True)) == [
        ("supervised", "92"),
        ("mkd", "92"),
        ("supervised", "183"),
        ("mkd", "1464"),
    ]
    rows = table.set_index(["method", "labeled"])
    mkd = rows.loc[("mkd", "92")]
    assert mkd["runs"] == 3
    assert mkd["mIoU_mean"] == pytest.approx(statistics.mean([0.60, 0.64, 0.68]))
    assert mkd["mIoU_std"] == pytest.approx(statistics.stdev([0.60, 0.64, 0.68]))
    sup = rows.loc[("supervised", "92")]
    assert sup["mIoU_mean"] == pytest.approx(0.52)
    assert sup["gain_over_supervised"] == pytest.approx(0.0)
    # paired on the seeds both ran (0 and 1; seed 2 has no supervised run), not 0.64 - 0.52
    assert mkd["gain_over_supervised"] == pytest.approx(((0.60 - 0.50) + (0.64 - 0.54)) / 2)
    rerun = rows.loc[("supervised", "183")]
    assert rerun["runs"] == 1 and rerun["mIoU_mean"] == pytest.approx(0.58)
    assert np.isnan(rerun["mIoU_std"])  # one run has no spread
    assert np.isnan(rows.loc[("mkd", "1464")]["gain_over_supervised"])
    assert mkd["gain_std"] == pytest.approx(0.0)  # paired by seed: 0.60-0.50 and 0.64-0.54
    assert list(table["variant"]) == list(table["method"])  # no params.variant: the method


def test_variants_of_one_method_are_separate_rows_with_paired_gain_spread() -> None:
    runs = pd.DataFrame(
        {
            "status": "FINISHED",
            "params.variant": [
                "sup",
                "sup",
                "sup",
                "full",
                "full",
                "full",
                "ablated",
                "ablated",
                "ablated",
            ],
            "params.training.method": ["supervised"] * 3 + ["mkd"] * 6,
            "params.splits.labeled": "0.0625",
            "params.training.seed": ["0", "1", "2"] * 3,
            METRIC: [0.30, 0.40, 0.35, 0.36, 0.44, 0.43, 0.31, 0.40, 0.36],
        }
    )
    rows = comparison_table(runs).set_index("variant")
    assert list(rows.index) == ["sup", "ablated", "full"]  # baseline first, then by method and name
    assert rows.loc["full", "gain_over_supervised"] == pytest.approx(0.06)
    assert rows.loc["full", "gain_std"] == pytest.approx(statistics.stdev([0.06, 0.04, 0.08]))
    assert rows.loc["ablated", "gain_std"] == pytest.approx(statistics.stdev([0.01, 0.0, 0.01]))
    assert np.isnan(rows.loc["sup", "gain_std"]) or rows.loc["sup", "gain_std"] == pytest.approx(
        0.0
    )


def test_a_one_seed_variant_gains_over_the_baselines_run_on_that_seed() -> None:
    """An ablation run on seed 0 only is compared with supervised's seed-0 run, not with the
    mean of supervised's three seeds."""
    runs = pd.DataFrame(
        {
            "status": "FINISHED",
            "params.variant": ["sup", "sup", "sup", "ablation"],
            "params.training.method": ["supervised"] * 3 + ["mkd"],
            "params.splits.labeled": "0.0625",
            "params.training.seed": ["0", "1", "2", "0"],
            METRIC: [0.30, 0.50, 0.40, 0.36],
        }
    )
    rows = comparison_table(runs).set_index("variant")
    assert rows.loc["ablation", "gain_over_supervised"] == pytest.approx(0.06)  # not 0.36 - 0.40
    assert np.isnan(rows.loc["ablation", "gain_std"])  # one pair has no spread


def test_comparison_table_without_seed_counts_every_run() -> None:
    runs = _runs().drop(columns=["params.training.seed", "start_time"])
    rows = comparison_table(runs).set_index(["method", "labeled"])
    assert rows.loc[("supervised", "183")]["runs"] == 2
    assert rows.loc[("supervised", "183")]["mIoU_mean"] == pytest.approx(0.49)


def test_comparison_table_orders_fraction_budgets_numerically() -> None:
    runs = _runs()
    runs["params.splits.labeled"] = [
        "1/8",
        "1/8",
        "1/8",
        "1/8",
        "1/8",
        "1/8",
        "1/8",
        "1/2",
        "1/16",
        "1/16",
        "1/16",
    ]
    assert list(dict.fromkeys(comparison_table(runs)["labeled"])) == ["1/16", "1/8", "1/2"]


@pytest.mark.parametrize(
    "drop", ["status", "params.training.method", "params.splits.labeled", METRIC]
)
def test_comparison_table_missing_columns_give_an_empty_table(drop: str) -> None:
    table = comparison_table(_runs().drop(columns=drop))
    assert table.empty and list(table.columns) == OUTPUT_COLUMNS


def test_comparison_table_empty_inputs() -> None:
    assert comparison_table(pd.DataFrame()).empty
    only_failed = _runs().assign(status="FAILED")
    assert comparison_table(only_failed).empty
    assert comparison_table(_runs(), metric="val_mIoU_slide").empty


def test_to_markdown_table_of_a_comparison() -> None:
    text = to_markdown_table(comparison_table(_runs()))
    assert text.splitlines()[0] == "| " + " | ".join(OUTPUT_COLUMNS) + " |"
    assert "| mkd | 92 | 3 | 0.6400 | 0.0400 | 0.1000 |" in text


def test_results_frame_and_per_run_table() -> None:
    runs = [
        RunResult(RunIdentity(v, m, s, 0.0625), {"val_mIoU_whole": 0.1 * (s + 1)})
        for v, m in (("sup_1_16", "supervised"), ("mkd_noteacher_1_16", "mkd"))
        for s in (0, 1)
    ]
    results = results_frame(runs)
    assert len(results) == 4 and set(results["status"]) == {"FINISHED"}
    table = per_run_table(results, "val_mIoU_whole")
    assert list(table.columns) == ["variant", "method", "labeled", "seed", "val_mIoU_whole"]
    assert table.iloc[1].tolist() == ["sup_1_16", "supervised", "0.0625", "1", pytest.approx(0.2)]


def test_results_frame_of_nothing_is_empty() -> None:
    assert results_frame([]).empty and isinstance(results_frame([]), pd.DataFrame)


def test_headline_metrics_skip_missing_spread() -> None:
    table = pd.DataFrame(
        {
            "variant": ["sup_1_16", "mkd_1_16"],
            "mIoU_mean": [0.2, 0.25],
            "mIoU_std": [float("nan"), 0.01],
            "gain_over_supervised": [0.0, 0.05],
        }
    )
    assert headline_metrics(table) == {
        "sup_1_16.mIoU_mean": 0.2,
        "sup_1_16.gain": 0.0,
        "mkd_1_16.mIoU_mean": 0.25,
        "mkd_1_16.mIoU_std": 0.01,
        "mkd_1_16.gain": pytest.approx(0.05),
    }


def test_the_table_reports_test_only_when_every_counted_run_has_it() -> None:
    """A superseded val-only re-run does not count; a counted one without test makes the table
    report val (never a mix) and is named."""

    def frame(*runs: tuple[str, int, dict]) -> pd.DataFrame:
        return results_frame(
            RunResult(RunIdentity(v, "supervised", s, 0.0625), m) for v, s, m in runs
        )

    both = {"val_mIoU_whole": 0.5, "test_mIoU_whole": 0.4}
    runs = frame(("sup_1_16", 0, both), ("sup_1_16", 1, {**both, "test_mIoU_whole": 0.6}))
    metric, table, markdown = reported_table(runs, "whole")
    assert metric == "test_mIoU_whole" and markdown.startswith("mIoU: test_mIoU_whole")
    row = table.iloc[0]
    assert row["mIoU_mean"] == pytest.approx(0.5) and row["val_mIoU_mean"] == pytest.approx(0.5)
    old = frame(("sup_1_16", 0, {"val_mIoU_whole": 0.3})).assign(start_time=0)
    superseded = pd.concat([old, runs.assign(start_time=1)], ignore_index=True)
    assert reported_metric(superseded, "whole") == "test_mIoU_whole"  # the old run is replaced
    lacking = pd.concat([runs, frame(("sup_1_16", 2, {"val_mIoU_whole": 0.3}))])
    assert runs_without_test(lacking, "whole") == ["sup_1_16 seed 2"]
    metric, table, _ = reported_table(lacking, "whole")
    assert metric == "val_mIoU_whole" and "val_mIoU_mean" not in table
    assert table.iloc[0]["mIoU_mean"] == pytest.approx((0.5 + 0.5 + 0.3) / 3)
