"""Parent run names and descriptions: what a run is, as MLflow's run table shows it."""

from __future__ import annotations

import pytest
import yaml

from mkdseg.tracking.run_naming import (
    consumed_groups,
    labels_phrase,
    labels_text,
    pipeline_names_of,
    run_description,
    run_name,
)

from .conftest import PROJECT_ROOT

PARAMS = {
    "dataset": {"source": "synthetic", "root": "data/01_raw/synthetic"},
    "splits": {"labeled": 0.0625, "seed": 0},
    "training": {
        "method": "mkd",
        "seed": 0,
        "iterations": 600,
        "batch_size": 8,
        "unlabeled_batch_size": 8,
        "model": {"backbone": "resnet18"},
    },
    "evaluation": {"mode": "whole"},
    "prediction": {"input_dir": "/imgs/holiday"},
    "comparison": {"seeds": [0, 1, 2], "variants": {"a": {}, "b": {}}},
}
DEFAULT_GROUPS = {"dataset", "sample_grid", "splits", "training", "evaluation"}


@pytest.mark.parametrize(
    ("labeled", "text"),
    [
        (0.0625, "1/16"),
        (0.125, "1/8"),
        ("1/16", "1/16"),
        ("0.25", "1/4"),
        (1.0, "all labels"),
        (92, "92 labels"),
        ("92", "92 labels"),
        (0.3, "3/10"),
        (0.12345, "0.12345"),
        ("data/splits/u2pl_92.txt", "split u2pl_92.txt"),
    ],
)
def test_labels_are_said_as_a_reader_says_them(labeled: object, text: str) -> None:
    assert labels_text(labeled) == text


@pytest.mark.parametrize(
    ("labeled", "phrase"),
    [
        (0.0625, "1/16 of the labels"),
        (92, "92 labeled images"),
        (1.0, "all labels"),
        (0.12345, "0.12345 of the labels"),
        ("splits/u2pl_92.txt", "split u2pl_92.txt"),
    ],
)
def test_labels_in_a_sentence(labeled: object, phrase: str) -> None:
    assert labels_phrase(labeled) == phrase


def test_a_training_run_is_named_by_method_labels_and_seed() -> None:
    assert run_name(["__default__"], DEFAULT_GROUPS, PARAMS) == "mkd 1/16 seed 0"
    assert run_name(None, DEFAULT_GROUPS, PARAMS) == "mkd 1/16 seed 0"
    assert (
        run_name(
            ["training"],
            {"training"},
            {**PARAMS, "training": {**PARAMS["training"], "method": "cps", "seed": 2}},
        )
        == "cps 1/16 seed 2"
    )


@pytest.mark.parametrize(
    ("names", "groups", "expected"),
    [
        (["ingestion"], {"dataset", "sample_grid"}, "ingestion: synthetic"),
        (
            ["ingestion", "splits"],
            {"dataset", "sample_grid", "splits"},
            "ingestion+splits: 1/16 seed 0",
        ),
        (["reporting"], {"training", "splits", "evaluation"}, "reporting: mkd 1/16 seed 0"),
        (["evaluation"], {"evaluation"}, "evaluation: whole images"),
        (["prediction"], {"prediction"}, "prediction: images in holiday"),
        (
            ["comparison"],
            {"dataset", "comparison", "training", "evaluation"},
            "comparison: 2 variants x 3 seeds",
        ),
        (["custom"], set(), "custom"),
    ],
)
def test_other_runs_say_their_pipeline_and_what_it_worked_on(names, groups, expected) -> None:
    assert run_name(names, groups, PARAMS) == expected


def test_description_names_method_labels_dataset_and_the_headline_metric_once_known() -> None:
    before = run_description(None, DEFAULT_GROUPS, PARAMS)
    assert before.startswith("**MKD (Mutual Knowledge Distillation")
    assert (
        "1/16 of the labels of the `synthetic` dataset (`data/01_raw/synthetic`), seed 0" in before
    )
    assert "val_mIoU_whole (not logged by this run so far)" in before
    after = run_description(
        None,
        DEFAULT_GROUPS,
        PARAMS,
        {"val_mIoU_whole": 0.3384, "n_labeled": 125.0, "n_unlabeled": 1875.0},
    )
    assert "(125 of 2000 training images)" in after and after.endswith("val_mIoU_whole **0.338**.")
    other = run_description(["ingestion"], {"dataset"}, PARAMS)
    assert other == (
        "Kedro pipeline `ingestion` on the `synthetic` dataset (`data/01_raw/synthetic`): "
        "ingestion: synthetic."
    )


def test_groups_and_pipeline_names_are_read_like_kedro_mlflow_reads_them() -> None:
    assert consumed_groups(
        ["params:training", "params:training.seed", "manifest", "parameters"]
    ) == {"training"}
    assert pipeline_names_of({"pipeline_names": None}) == ["__default__"]
    assert pipeline_names_of({"pipeline_names": ["a", "b"]}) == ["a", "b"]
    assert pipeline_names_of({"pipeline_name": "a"}) == ["a"]


def test_a_comparison_that_selects_variants_counts_the_selected_ones() -> None:
    params = {**PARAMS, "comparison": {**PARAMS["comparison"], "only": ["b"]}}
    groups = {"dataset", "comparison", "training", "evaluation"}
    assert run_name(["comparison"], groups, params) == "comparison: 1 variants x 3 seeds"


def test_an_empty_selection_counts_no_variants() -> None:
    params = {**PARAMS, "comparison": {**PARAMS["comparison"], "only": []}}
    groups = {"dataset", "comparison", "training", "evaluation"}
    assert run_name(["comparison"], groups, params) == "comparison: 0 variants x 3 seeds"


def test_a_comparison_whose_variants_run_fewer_seeds_counts_its_runs() -> None:
    comparison = {"seeds": [0, 1, 2], "variants": {"a": {}, "b": {"seeds": [0]}}}
    groups = {"dataset", "comparison", "training", "evaluation"}
    params = {**PARAMS, "comparison": comparison}
    assert run_name(["comparison"], groups, params) == "comparison: 2 variants, 4 runs"


def test_masked_budget_and_unlabeled_origins_are_said() -> None:
    assert labels_text("masked") == "all masks"
    assert labels_phrase("masked") == "every image that has a mask"
    params = {**PARAMS, "splits": {"labeled": "masked", "seed": 0}}
    metrics = {
        "n_labeled": 10.0,
        "n_unlabeled": 35.0,
        "n_unlabeled_no_mask": 30.0,
        "n_unlabeled_extra": 5.0,
    }
    text = run_description(["__default__"], {"training"}, params, metrics)
    assert (
        "every image that has a mask (10 of 45 training images; 30 without a mask, "
        "5 from an unlabeled pool)" in text
    )


def test_the_description_names_the_architecture_trained() -> None:
    fcn = {"architecture": "dilated_fcn", "decoder_channels": 32, "dilations": [1, 2, 4, 8]}
    params = {
        **PARAMS,
        "training": {**PARAMS["training"], "model": {**fcn, "backbone": "resnet18"}},
    }
    text = run_description(["__default__"], {"training"}, params)
    assert "dilated FCN (32 channels, dilations 1-2-4-8)" in text and "DeepLab" not in text
    assert "resnet18 DeepLabv3+" in run_description(["__default__"], {"training"}, PARAMS)


def test_the_default_run_describes_the_architecture_conf_base_trains() -> None:
    """The bug report: conf/base trains the dilated FCN, and its run said ``resnet18 DeepLabv3+``
    (the backbone key is still in conf/base, for the other architecture)."""
    conf = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())
    model = conf["training"]["model"]
    assert model["architecture"] == "dilated_fcn"
    params = {**PARAMS, "training": {**PARAMS["training"], "model": model}}
    text = run_description(["__default__"], DEFAULT_GROUPS, params)
    assert f"dilated FCN ({model['decoder_channels']} channels" in text
    assert "DeepLab" not in text and model["backbone"] not in text


def test_the_model_phrase_fills_defaults_and_names_unknown_architectures() -> None:
    from mkdseg.tracking.run_naming import model_phrase

    assert model_phrase({}) == "resnet50 DeepLabv3+"  # ModelConfig's defaults
    assert model_phrase({"architecture": "dilated_fcn"}) == (
        "dilated FCN (256 channels, dilations 1-2-4-8)"
    )
    assert model_phrase({"architecture": "segformer"}) == "segformer"
