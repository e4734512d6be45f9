"""The comparison's settings: which training block and split each variant and seed gets."""

from __future__ import annotations

import pandas as pd
import pytest

from mkdseg import comparison
from mkdseg.pipelines.comparison.pipeline import create_pipeline, read_grid

TRAINING = {
    "method": "mkd",
    "iterations": 480,
    "seed": 0,
    "mkd": {"teacher_term": True, "weight_teacher": 1.5},
}
GRID = {
    "seeds": [0, 1],
    "training": {"iterations": 300},
    "variants": {
        "sup_1_16": {"labeled": 0.0625, "training": {"method": "supervised"}},
        "mkd_noteacher_1_16": {"labeled": 0.0625, "training": {"mkd": {"teacher_term": False}}},
    },
}


def test_variant_training_layers_base_shared_variant_and_seed() -> None:
    settings = comparison.variant_training(TRAINING, GRID, "mkd_noteacher_1_16", 1)
    assert settings == {
        "method": "mkd",
        "iterations": 300,
        "seed": 1,
        "mkd": {"teacher_term": False, "weight_teacher": 1.5},
    }
    assert TRAINING["mkd"]["teacher_term"] is True  # inputs are not modified
    assert comparison.variant_training(TRAINING, GRID, "sup_1_16", 0)["method"] == "supervised"


def test_variant_params_name_the_run_like_a_plain_kedro_run() -> None:
    settings = comparison.variant_training(TRAINING, GRID, "sup_1_16", 1)
    assert comparison.variant_params(GRID, settings, "sup_1_16") == {
        "variant": "sup_1_16",
        "training": {"method": "supervised", "seed": 1},
        "splits": {"labeled": 0.0625},
    }


def test_unknown_or_malformed_variants_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="no 'cps_1_16'"):
        comparison.variant_training(TRAINING, GRID, "cps_1_16", 0)
    bad = {"variants": {"x": {"training": {"method": "cps"}, "labels": 3}}}
    with pytest.raises(ValueError, match="needs 'labeled'.*labels"):
        comparison.variant_spec(bad, "x")


def test_results_frame_and_per_run_table() -> None:
    runs = [
        (
            comparison.variant_params(GRID, comparison.variant_training(TRAINING, GRID, v, s), v),
            {"val_mIoU_whole": 0.1 * (s + 1)},
        )
        for v in GRID["variants"]
        for s in GRID["seeds"]
    ]
    results = comparison.results_frame(runs)
    assert len(results) == 4 and set(results["status"]) == {"FINISHED"}
    table = comparison.per_run_table(results, "val_mIoU_whole")
    assert list(table.columns) == ["variant", "method", "labeled", "seed", "val_mIoU_whole"]
    assert table.iloc[1].tolist() == ["sup_1_16", "supervised", "0.0625", "1", pytest.approx(0.2)]


def test_pipeline_has_one_namespace_per_variant_and_seed() -> None:
    pipe = create_pipeline(list(GRID["variants"]), GRID["seeds"])
    namespaces = {n.namespace for n in pipe.nodes}
    assert namespaces == {"comparison"} | {
        comparison.namespace(v, s) for v in GRID["variants"] for s in (0, 1)
    }
    summary = next(n for n in pipe.nodes if n.name == "comparison.summarise")
    assert len(summary.inputs) == 1 + 2 * 4  # params:evaluation, then (metrics, params) per run
    train = next(n for n in pipe.nodes if n.name == "comparison.sup_1_16.seed_1.train")
    assert not [
        i for i in train.inputs if i.startswith("params:")
    ]  # logs its real settings instead


def test_base_grid_is_the_issue_grid() -> None:
    variants, seeds = read_grid()
    assert len(seeds) >= 3
    assert {
        "sup_1_16",
        "sup_all",
        "mt_1_16",
        "cps_1_16",
        "mkd_1_16",
        "mkd_nofa_1_16",
        "mkd_noteacher_1_16",
        "mkd_nostudent_1_16",
        "sup_1_8",
        "mkd_1_8",
    } <= set(variants)


def test_read_grid_error_names_the_file(tmp_path) -> None:
    path = tmp_path / "parameters_comparison.yml"
    path.write_text("comparison: {seeds: [0]}\n")
    with pytest.raises(ValueError, match="parameters_comparison.yml"):
        read_grid(path)


def test_results_frame_of_nothing_is_empty() -> None:
    assert comparison.results_frame([]).empty and isinstance(
        comparison.results_frame([]), pd.DataFrame
    )


def test_headline_metrics_skip_missing_spread() -> None:
    table = pd.DataFrame(
        {
            "variant": ["sup_1_16", "mkd_1_16"],
            "mIoU_mean": [0.2, 0.25],
            "mIoU_std": [float("nan"), 0.01],
            "gain_over_supervised": [0.0, 0.05],
        }
    )
    assert comparison.headline_metrics(table) == {
        "sup_1_16.mIoU_mean": 0.2,
        "sup_1_16.gain": 0.0,
        "mkd_1_16.mIoU_mean": 0.25,
        "mkd_1_16.mIoU_std": 0.01,
        "mkd_1_16.gain": pytest.approx(0.05),
    }
