"""Schedules: poly learning rate and the feature-augmentation strength ramp."""

from __future__ import annotations

import math

import pytest

from mkdseg.core.schedules import feature_aug_lambda, poly_lr


def test_poly_lr() -> None:
    assert poly_lr(0.01, 0, 100, 0.9) == 0.01
    assert poly_lr(0.01, 100, 100, 0.9) == 0.0
    assert poly_lr(0.01, 50, 100, 0.9) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 50, 100, power=1.0) == pytest.approx(0.005)
    assert poly_lr(0.01, 100, 100, 0.9, min_lr=1e-4) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="iteration must be in"):
        poly_lr(0.01, 101, 100, 0.9)


def test_feature_aug_lambda_schedules() -> None:
    assert feature_aug_lambda(0, 200, 1.5, "cosine") == 0.0
    assert feature_aug_lambda(200, 200, 1.5, "cosine") == pytest.approx(1.5)
    cosine = feature_aug_lambda(50, 200, 1.5, "cosine")
    assert cosine == pytest.approx(1.5 * (1 - math.cos(math.pi / 4)) / 2)
    assert feature_aug_lambda(100, 200, 1.5, "cosine") == pytest.approx(0.75)
    assert feature_aug_lambda(50, 200, 1.5, "linear") == pytest.approx(0.375)
    assert feature_aug_lambda(7, 200, 1.5, "constant") == 1.5


def test_unknown_schedule_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="lambda_schedule must be one of"):
        feature_aug_lambda(1, 10, 1.5, "exp")
    with pytest.raises(ValueError, match="total iterations"):
        feature_aug_lambda(0, 0, 1.5, "cosine")


def test_consistency_rampup_is_the_mean_teacher_sigmoid():
    import math

    from mkdseg.core.schedules import consistency_rampup

    assert consistency_rampup(0, 0) == 1.0 and consistency_rampup(7, 0) == 1.0  # release: no ramp
    assert consistency_rampup(0, 100) == math.exp(-5.0)
    assert consistency_rampup(50, 100) == math.exp(-5.0 * 0.25)
    assert consistency_rampup(100, 100) == 1.0 and consistency_rampup(150, 100) == 1.0
    values = [consistency_rampup(i, 100) for i in range(101)]
    assert values == sorted(values)
    with pytest.raises(ValueError, match="consistency_rampup"):
        consistency_rampup(1, -1)
