"""The comparison's settings: which training block, split and identity each variant and seed
gets, and the pipeline's shape."""

from __future__ import annotations

import pytest

from mkdseg.pipelines.comparison.pipeline import create_pipeline
from mkdseg.pipelines.comparison.variants import Grid, RunIdentity, namespace

TRAINING = {
    "method": "mkd",
    "iterations": 480,
    "seed": 0,
    "mkd": {"teacher_term": True, "weight_teacher": 1.5},
}
PARAMETERS = {
    "seeds": [0, 1],
    "training": {"iterations": 300},
    "variants": {
        "sup_1_16": {"labeled": 0.0625, "training": {"method": "supervised"}},
        "mkd_noteacher_1_16": {"labeled": 0.0625, "training": {"mkd": {"teacher_term": False}}},
    },
}
GRID = Grid.from_parameters(PARAMETERS)


def test_settings_layer_base_shared_variant_and_seed() -> None:
    settings = GRID.settings(TRAINING, "mkd_noteacher_1_16", 1)
    assert settings == {
        "method": "mkd",
        "iterations": 300,
        "seed": 1,
        "mkd": {"teacher_term": False, "weight_teacher": 1.5},
    }
    assert TRAINING["mkd"]["teacher_term"] is True  # inputs are not modified
    assert PARAMETERS["variants"]["mkd_noteacher_1_16"]["training"]["mkd"]["teacher_term"] is False
    assert GRID.settings(TRAINING, "sup_1_16", 0)["method"] == "supervised"


def test_identity_names_the_run_like_a_plain_kedro_run() -> None:
    identity = GRID.identity("sup_1_16", GRID.settings(TRAINING, "sup_1_16", 1))
    assert identity == RunIdentity(variant="sup_1_16", method="supervised", seed=1, labeled=0.0625)
    assert identity.params() == {
        "variant": "sup_1_16",
        "training": {"method": "supervised", "seed": 1},
        "splits": {"labeled": 0.0625, "draw": "uniform"},
    }
    balanced = Grid.from_parameters({**PARAMETERS, "split_draw": "class_balanced"})
    assert balanced.identity("sup_1_16", {"method": "supervised", "seed": 1}).draw == (
        "class_balanced"
    )
    with pytest.raises(ValueError, match="comparison.split_draw must be one of"):
        Grid.from_parameters({**PARAMETERS, "split_draw": "stratified"})


def test_unknown_or_malformed_variants_are_named_in_the_error() -> None:
    with pytest.raises(ValueError, match="no 'cps_1_16'"):
        GRID.settings(TRAINING, "cps_1_16", 0)
    bad = {"seeds": [0], "variants": {"x": {"training": {"method": "cps"}, "labels": 3}}}
    with pytest.raises(ValueError, match="needs 'labeled'.*labels"):
        Grid.from_parameters(bad)


def test_missing_variants_or_seeds_are_an_error() -> None:
    with pytest.raises(ValueError, match="comparison.variants"):
        Grid.from_parameters({"seeds": [0]})
    with pytest.raises(ValueError, match="comparison.seeds"):
        Grid.from_parameters({"variants": {}, "seeds": ["first"]})


def test_only_selects_variants_in_its_order() -> None:
    grid = Grid.from_parameters({**PARAMETERS, "only": ["mkd_noteacher_1_16"]})
    assert grid.runs == (("mkd_noteacher_1_16", 0), ("mkd_noteacher_1_16", 1))
    assert GRID.runs == (
        ("sup_1_16", 0),
        ("sup_1_16", 1),
        ("mkd_noteacher_1_16", 0),
        ("mkd_noteacher_1_16", 1),
    )
    with pytest.raises(ValueError, match="unknown variants \\['cps_1_16'\\]"):
        Grid.from_parameters({**PARAMETERS, "only": ["cps_1_16"]})


def test_a_variant_may_run_a_subset_of_the_seeds() -> None:
    variants = {**PARAMETERS["variants"], "sup_1_8": {"labeled": 0.125, "seeds": [1]}}
    grid = Grid.from_parameters({**PARAMETERS, "variants": variants})
    assert grid.runs[-1:] == (("sup_1_8", 1),) and len(grid.runs) == 5
    stray = {"sup_1_8": {"labeled": 0.125, "seeds": [1, 7]}}
    with pytest.raises(ValueError, match="sup_1_8.seeds \\[7\\] are not in comparison.seeds"):
        Grid.from_parameters({**PARAMETERS, "variants": stray})


def test_pipeline_has_one_namespace_per_variant_and_seed() -> None:
    pipe = create_pipeline(GRID)
    assert {n.namespace for n in pipe.nodes} == {"comparison"} | {
        namespace(v, s) for v, s in GRID.runs
    }
    summary = next(n for n in pipe.nodes if n.name == "comparison.summarise")
    assert summary.inputs == ["params:evaluation"] + [
        f"{namespace(v, s)}.run_result" for v, s in GRID.runs
    ]
    train = next(n for n in pipe.nodes if n.name == "comparison.sup_1_16.seed_1.train")
    assert not [i for i in train.inputs if i.startswith("params:")]  # logs its real settings
