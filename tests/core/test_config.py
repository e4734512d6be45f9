"""Method records, parameter layering and validation, plain data and resume identity."""

import pytest

from mkdseg.core.config import TrainConfig, config_from_dict, config_to_dict, resume_identity
from mkdseg.core.methods import METHODS, method_named


@pytest.mark.parametrize(
    ("method", "students", "teachers", "unlabeled"),
    [
        ("supervised", 1, False, False),
        ("mean_teacher", 1, True, True),
        ("cps", 2, False, True),
        ("mkd", 2, True, True),
    ],
)
def test_methods_are_records_of_one_configuration(method, students, teachers, unlabeled):
    cfg = config_from_dict({"method": method})
    assert (cfg.num_students, cfg.uses_teachers, cfg.uses_unlabeled) == (
        students,
        teachers,
        unlabeled,
    )
    record = method_named(method)
    assert (record.students, record.teachers, record.unlabeled) == (students, teachers, unlabeled)
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_mkd_ablation_switches_are_kept_and_round_trip():
    cfg = config_from_dict(
        {"method": "mkd", "mkd": {"teacher_term": False, "confidence_threshold": 0.95}}
    )
    assert not cfg.uses_teachers and cfg.method.confidence_threshold == 0.95
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"method": "fixmatch"}, "training.method must be one of"),
        ({"mkd": {"lamda_end": 1}}, "training.mkd.lamda_end"),
        ({"consistency": {"name": "cps"}}, "training.consistency.name"),
        ({"unlabeled_batch_size": 1}, "training.unlabeled_batch_size.*CutMix"),
        ({"iterations": 0}, "training.iterations must be >= 1"),
        ({"consistency": {"confidence_threshold": 1.5}}, "training.consistency.confidence_thr"),
        ({"cps": {"confidence_threshold": 1.5}}, "training.cps.confidence_threshold"),
        ({"precision": "fp8"}, "training.precision"),
        ({"memory_format": "nhwc"}, "training.memory_format must be one of"),
        ({"threads": 0}, "training.threads must be >= 1 or null"),
        ({"augment": {"strong_ops": {"greyscale": 0.5}}}, "training.augment.strong_ops"),
        ({"augment": {"strong_ops": {"blur": 0.0}}}, "positive sum"),
    ],
)
def test_bad_parameters_name_what_to_fix(params, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(params)


def test_strong_ops_default_to_the_spec_and_leave_out_what_is_not_named():
    assert config_from_dict({}).augment.strong_weights == (0.3, 0.5, 0.1, 0.1, 0.5)
    cfg = config_from_dict({"augment": {"strong_ops": {"equalize": 0.1, "blur": 0.5}}})
    assert cfg.augment.strong_weights == (0.0, 0.5, 0.1, 0.0, 0.0)
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_baselines_carry_their_published_values_and_ignore_mkds_block():
    mt = config_from_dict(
        {"method": "mean_teacher", "mkd": {"ema_momentum_end": 0.6, "weight_teacher": 1.5}}
    )
    assert (
        mt.method.ema_momentum_end,
        mt.method.confidence_threshold,
        mt.method.threshold_average,
        mt.method.weight_teacher,
        mt.method.mixed_view,
        mt.method.consistency_scale,
    ) == (0.99, 0.95, "valid", 1.0, "strong", 4.0)
    cps = config_from_dict(
        {"method": "cps", "mkd": {"weight_student": 2.0, "consistency_scale": 0.5}}
    )
    assert (
        cps.method.cps_targets,
        cps.method.mixed_view,
        cps.method.weight_student,
        cps.method.consistency_scale,
        cps.uses_teachers,
    ) == ("unmixed", "weak", 1.0, 4.0, False)
    mkd = config_from_dict({"method": "mkd"})
    assert (mkd.method.cps_targets, mkd.method.ema_momentum_end, mkd.method.weight_student) == (
        "mixed",
        0.6,
        1.0,
    )


def test_a_methods_block_overrides_its_published_values_but_not_its_defining_switches():
    params = {
        "method": "mean_teacher",
        "mean_teacher": {"ema_momentum_end": 0.6, "threshold_average": "kept"},
        "cps": {"weight_student": 3.0},
    }  # another method's block is not used
    cfg = config_from_dict(params)
    assert (cfg.method.ema_momentum_end, cfg.method.threshold_average) == (0.6, "kept")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="training.cps.cps_targets: 'mixed' contradicts"):
        config_from_dict({"method": "cps", "cps": {"cps_targets": "mixed"}})
    with pytest.raises(ValueError, match="training.mean_teacher.ema_momentm_end"):
        config_from_dict({"method": "mean_teacher", "mean_teacher": {"ema_momentm_end": 0.6}})


def test_shared_switches_reach_every_method_over_its_published_values():
    shared = {"consistency": {"consistency_rampup": 7, "consistency_scale": 1.0}}
    for name in METHODS:
        cfg = config_from_dict({"method": name, **shared})
        assert (cfg.method.consistency_rampup, cfg.method.consistency_scale) == (7, 1.0), name
    own = config_from_dict({"method": "cps", **shared, "cps": {"consistency_scale": 2.0}})
    assert own.method.consistency_scale == 2.0  # the method's own block over the shared one


def test_a_user_set_switch_the_method_fixes_is_an_error_naming_both():
    message = (
        r"training.consistency.teacher_term: True contradicts training.method: cps, "
        r"which fixes teacher_term: False"
    )
    with pytest.raises(ValueError, match=message):
        config_from_dict({"method": "cps", "consistency": {"teacher_term": True}})
    with pytest.raises(ValueError, match="training.mean_teacher.mixed_view: 'weak' contradicts"):
        config_from_dict({"method": "mean_teacher", "mean_teacher": {"mixed_view": "weak"}})
    agreeing = config_from_dict({"method": "cps", "consistency": {"teacher_term": False}})
    assert not agreeing.uses_teachers  # the same value is no conflict
    ablation = config_from_dict({"method": "mkd", "consistency": {"teacher_term": False}})
    assert not ablation.uses_teachers and ablation.num_students == 2


def test_resume_identity_leaves_out_only_what_does_not_change_the_computation():
    cfg = config_to_dict(TrainConfig())
    identity = resume_identity(cfg)
    assert set(cfg) - set(identity) == {
        "iterations",
        "device",
        "num_workers",
        "loader_cache_mb",
        "log_every",
        "threads",
        "checkpoint_every",
        "memory_format",  # a layout: the same arithmetic to rounding, as device and threads
    }
    assert identity["method"] == "mkd" and identity["mkd"]["weight_teacher"] == 1.5


def test_aspp_rates_are_resolved_from_the_rule_and_the_crop():
    assert config_from_dict({"augment": {"crop_size": 64}}).model.aspp_rates == (6, 12, 18)
    small = config_from_dict({"augment": {"crop_size": 64}, "model": {"aspp_rule": "feature_map"}})
    assert small.model.aspp_rates == (1, 2, 3)
    assert config_from_dict(config_to_dict(small)) == small
    explicit = config_from_dict({"model": {"aspp_rates": [2, 4]}})
    assert explicit.model.aspp_rates == (2, 4)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mkd": {"threshold_average": "all"}}, "training.mkd.threshold_average"),
        ({"consistency": {"target_mixing": "image"}}, "training.consistency.target_mixing"),
        ({"consistency": {"label_sampling": "middle"}}, "training.consistency.label_sampling"),
        ({"mkd": {"consistency_scale": 5}}, "training.mkd.consistency_scale"),
        ({"model": {"aspp_rule": "clip"}}, "training.model.aspp_rule"),
        ({"augment": {"blur_reference_crop": 0}}, "training.augment.blur_reference_crop"),
    ],
)
def test_issue_12_switches_are_validated(params, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(params)


@pytest.mark.parametrize("method", ["supervised", "mean_teacher", "cps", "unimatch"])
def test_only_the_chosen_methods_block_is_read(method) -> None:
    """``training.mkd`` (or any other method's block) does not reach another method."""
    other = config_from_dict({"method": method, "mkd": {"consistency_rampup": 5}})
    assert other.method.consistency_rampup == 0
    shared = config_from_dict({"method": method, "consistency": {"consistency_rampup": 5}})
    assert shared.method.consistency_rampup == 5


def test_the_mkd_block_may_set_shared_settings_for_mkd_and_its_own_switches_for_any_method() -> (
    None
):
    assert config_from_dict({"mkd": {"consistency_rampup": 5}}).method.consistency_rampup == 5
    cps = config_from_dict({"method": "cps", "mkd": {"ema_momentum_end": 0.5}})  # read by mkd only
    assert cps.method.ema_momentum_end == 0.6


def test_an_unknown_lambda_schedule_fails_when_the_config_is_built() -> None:
    with pytest.raises(ValueError, match=r"training\.mkd\.lambda_schedule must be one of cosine"):
        config_from_dict({"mkd": {"lambda_schedule": "exponential"}})
