"""scripts/compile_probe.py: what it changes for the compiler keeps the step's values."""

from __future__ import annotations

import pytest
import torch

from mkdseg.core.feature_augmentation import ClassFeatureStatistics

from .conftest import load_script


def test_the_broadcast_class_weights_are_the_cores() -> None:
    """One comparison gives the core's class-by-class one-hot: 0/1 per class, 0 on ignored
    pixels, contiguous float32; and it still refuses a label past the classes."""
    probe = load_script("compile_probe")
    stats = ClassFeatureStatistics(num_classes=5, channels=4)
    labels = torch.randint(0, 5, (3, 7, 6), generator=torch.Generator().manual_seed(0))
    labels[0, :2] = 255
    ours = probe.broadcast_class_weights(stats, labels)
    core = stats.class_weights(labels)
    assert ours.dtype == core.dtype == torch.float32 and ours.is_contiguous()
    assert torch.equal(ours, core)
    assert ours[0, :, :2].sum() == 0 and ours[1:].sum(1).eq(1).all()
    with pytest.raises(ValueError, match="num_classes"):
        probe.broadcast_class_weights(stats, torch.full((1, 2, 2), 7))


def test_the_plan_cache_builds_each_plan_once_through_the_core() -> None:
    """The compiled steps look up the plan the core's ``resize_plan`` built for the same key; a
    second call finds it without building again."""
    from mkdseg.core import resized_moments

    probe = load_script("compile_probe")
    plans: dict = {}
    plan = probe.cached_plans(plans)
    key = ((48, 48), (12, 12), torch.device("cpu"), torch.float32)
    first = plan(*key)
    assert first is resized_moments.resize_plan(*key) and list(plans) == [key]
    plans[key] = "kept"  # a second call must read the dict, not build
    assert plan(*key) == "kept"
