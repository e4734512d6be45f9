"""Method presets and parameter validation."""

import pytest

from mkdseg.core.config import config_from_dict, config_to_dict


@pytest.mark.parametrize(("method", "students", "teachers", "unlabeled"), [
    ("supervised", 1, False, False), ("mean_teacher", 1, True, True), ("cps", 2, False, True), ("mkd", 2, True, True)])
def test_methods_are_presets_of_one_configuration(method, students, teachers, unlabeled):
    cfg = config_from_dict({"method": method})
    assert (cfg.num_students, cfg.uses_teachers, cfg.uses_unlabeled) == (students, teachers, unlabeled)


def test_mkd_ablation_switches_are_kept_and_round_trip():
    cfg = config_from_dict({"method": "mkd", "mkd": {"teacher_term": False, "confidence_threshold": 0.95}})
    assert not cfg.uses_teachers and cfg.method.confidence_threshold == 0.95
    assert config_from_dict(config_to_dict(cfg)) == cfg


@pytest.mark.parametrize(("params", "message"), [
    ({"method": "fixmatch"}, "training.method must be one of"),
    ({"mkd": {"lamda_end": 1}}, "training.mkd.lamda_end"),
    ({"unlabeled_batch_size": 1}, "CutMix"),
    ({"mkd": {"confidence_threshold": 1.5}}, "confidence_threshold"),
    ({"precision": "fp8"}, "training.precision"),
    ({"augment": {"strong_ops": {"greyscale": 0.5}}}, "training.augment.strong_ops"),
    ({"augment": {"strong_ops": {"blur": 0.0}}}, "positive sum"),
])
def test_bad_parameters_name_what_to_fix(params, message):
    with pytest.raises(ValueError, match=message):
        config_from_dict(params)


def test_strong_ops_default_to_the_spec_and_leave_out_what_is_not_named():
    assert config_from_dict({}).augment.strong_weights == (0.3, 0.5, 0.1, 0.1, 0.5)
    cfg = config_from_dict({"augment": {"strong_ops": {"equalize": 0.1, "blur": 0.5}}})
    assert cfg.augment.strong_weights == (0.0, 0.5, 0.1, 0.0, 0.0)
    assert config_from_dict(config_to_dict(cfg)) == cfg
