"""Learning-rate and feature-augmentation-strength schedules (spec §5, §6)."""

from __future__ import annotations

import math

LAMBDA_SCHEDULES = ("cosine", "linear", "constant")


def _progress(iteration: int, total: int, name: str) -> float:
    if total < 1:
        raise ValueError(f"{name}: total iterations must be >= 1, got {total}")
    if not 0 <= iteration <= total:
        raise ValueError(f"{name}: iteration must be in [0, {total}], got {iteration}")
    return iteration / total


def poly_lr(base_lr: float, iteration: int, total: int, power: float, min_lr: float = 0.0) -> float:
    """``(base_lr - min_lr) * (1 - iteration/total)^power + min_lr`` (mmseg's poly policy)."""
    return (base_lr - min_lr) * (1.0 - _progress(iteration, total, "poly_lr")) ** power + min_lr


def feature_aug_lambda(iteration: int, total: int, lambda_end: float, schedule: str) -> float:
    """Feature-augmentation strength at ``iteration`` of ``total``.

    cosine (release): ``lambda_end * (1 - cos(pi t / T)) / 2``; linear: ``lambda_end * t / T``;
    constant: ``lambda_end``.
    """
    if schedule not in LAMBDA_SCHEDULES:
        raise ValueError(
            f"lambda_schedule must be one of {', '.join(LAMBDA_SCHEDULES)}, got {schedule!r}"
        )
    t = _progress(iteration, total, "feature_aug_lambda")
    if schedule == "cosine":
        return lambda_end * (1.0 - math.cos(math.pi * t)) / 2.0
    if schedule == "linear":
        return lambda_end * t
    return float(lambda_end)


RAMPUP_SHARPNESS = 5.0  # exp(-5 (1 - t/T)^2): Laine & Aila (2017), used by Mean Teacher


def consistency_rampup(iteration: int, rampup_iterations: int) -> float:
    """Weight factor of the consistency terms: a sigmoid ramp, ~0 to 1 over ``rampup_iterations``.

    0 iterations (the MKD release) means no ramp: always 1. Training from scratch
    needs a ramp, or the untrained teachers' pseudo-labels collapse every network
    onto one class in the first iterations.
    """
    if rampup_iterations < 0:
        raise ValueError(f"consistency_rampup must be >= 0, got {rampup_iterations}")
    if rampup_iterations == 0 or iteration >= rampup_iterations:
        return 1.0
    t = max(iteration, 0) / rampup_iterations
    return math.exp(-RAMPUP_SHARPNESS * (1.0 - t) ** 2)
