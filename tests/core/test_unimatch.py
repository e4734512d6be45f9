"""UniMatch (core/methods/unimatch.py): its streams, targets, weights and what each learns from."""

from __future__ import annotations

import pytest
import torch

from mkdseg.core.augmentation import BlurRange
from mkdseg.core.cutmix import mix
from mkdseg.core.methods import unimatch
from mkdseg.core.networks import NetworkPair
from mkdseg.core.trainer import Trainer
from mkdseg.core.views import make_views

from .conftest import TINY_CLASSES, TINY_SIZE, tiny_config


def _batches(seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    shape = (2, 3, TINY_SIZE, TINY_SIZE)
    images = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    labels = torch.randint(0, TINY_CLASSES, (2, TINY_SIZE, TINY_SIZE), generator=g)
    unlabeled = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    valid = torch.ones(2, TINY_SIZE, TINY_SIZE, dtype=torch.bool)
    valid[1, :, -5:] = False  # a padded strip
    return (images, labels), (unlabeled, valid)


def _views(trainer: Trainer, seed: int = 0):
    labeled, unlabeled = _batches(seed)
    g = torch.Generator().manual_seed(seed)
    blur = BlurRange.for_crop(TINY_SIZE, trainer.cfg.augment.blur_reference_crop)
    return make_views(trainer.cfg, labeled, unlabeled, g, trainer.device, blur)


def test_unimatch_is_one_network_without_teachers_or_estimators():
    trainer = Trainer(tiny_config("unimatch"), TINY_CLASSES)
    m = trainer.cfg.method
    assert (len(trainer.nets.students), trainer.nets.teacher_pair) == (1, None)
    assert trainer.nets.student_stats == [] and trainer.nets.teacher_stats == []
    assert (m.confidence_threshold, m.threshold_average) == (0.95, "valid")


def test_unimatch_refuses_a_switch_it_fixes():
    with pytest.raises(ValueError, match=r"training.unimatch.teacher_term.*unimatch"):
        tiny_config("unimatch", unimatch={"teacher_term": True})


def test_a_second_strong_view_leaves_the_first_views_draws_unchanged():
    mkd, uni = (_views(Trainer(tiny_config(m), TINY_CLASSES)) for m in ("mkd", "unimatch"))
    assert mkd.unlabeled.extra == [] and len(uni.unlabeled.extra) == 1
    for a, b in ((mkd.labeled, uni.labeled), (mkd.unlabeled.weak, uni.unlabeled.weak)):
        assert torch.equal(a, b)
    assert torch.equal(mkd.unlabeled.mask, uni.unlabeled.mask)
    assert torch.equal(mkd.unlabeled.mixed, uni.unlabeled.mixed)
    x_s2, mask_2 = uni.unlabeled.extra[0]
    assert x_s2.shape == uni.unlabeled.mixed.shape and not torch.equal(mask_2, uni.unlabeled.mask)


class _Recorder(torch.nn.Module):
    """The student pair, keeping each pass's logits (with their gradients) for inspection."""

    def __init__(self, pair: NetworkPair) -> None:
        super().__init__()
        self.pair, self.logits = pair, []

    def forward(self, *views, perturb: float = 0.0, generator=None):
        out = self.pair(*views, perturb=perturb, generator=generator)
        out[0].logits.retain_grad()
        self.logits.append(out[0].logits)
        return out


def _step(monkeypatch, **own: object) -> tuple:
    """One UniMatch loss on fixed views: (the recorded passes, the CE calls, metrics, views)."""
    trainer = Trainer(tiny_config("unimatch", unimatch=own), TINY_CLASSES)
    recorder = _Recorder(trainer.nets.student_pair)
    trainer.nets.student_pair = recorder
    calls = []
    real_ce = unimatch.pseudo_label_ce

    def ce(student, teacher, ignore, confidence, threshold, average):
        calls.append((student, teacher, ignore, confidence, threshold, average))
        return real_ce(student, teacher, ignore, confidence, threshold, average)

    monkeypatch.setattr(unimatch, "pseudo_label_ce", ce)
    views = _views(trainer)
    total, metrics = unimatch.loss(trainer.nets, views, trainer.cfg.method, t=1)
    return recorder.logits, calls, metrics, views, total


def test_unimatch_loss_is_the_published_weighted_sum(monkeypatch):
    _, calls, metrics, _, total = _step(monkeypatch)
    expected = 0.5 * (
        metrics["loss_sup"]
        + 0.25 * (metrics["loss_s1"] + metrics["loss_s2"])
        + 0.5 * metrics["loss_fp"]
    )
    torch.testing.assert_close(total, expected)
    assert [(c[4], c[5]) for c in calls] == [(0.95, "valid")] * 3


def test_each_strong_view_learns_the_weak_prediction_mixed_with_its_own_mask(monkeypatch):
    _, calls, _, views, _ = _step(monkeypatch)
    u = views.unlabeled
    (_, t1, ig1, c1, *_), (_, t2, ig2, c2, *_), (_, t_fp, ig_fp, c_fp, *_) = calls
    # The perturbed stream learns the weak prediction itself, at input resolution.
    assert t_fp.shape[-2:] == u.weak.shape[-2:] and torch.equal(ig_fp[:, 0], ~u.valid)
    torch.testing.assert_close(c_fp, t_fp.softmax(1).amax(1, keepdim=True))
    for target, ignore, conf, mask in ((t1, ig1, c1, u.mask), (t2, ig2, c2, u.extra[0][1])):
        assert torch.equal(target, mix(t_fp, mask))
        assert torch.equal(conf, mix(c_fp, mask)) and torch.equal(ignore, ~mix(~ig_fp, mask))
    assert not torch.equal(t1, t2)  # two masks, two targets


def test_each_stream_learns_only_from_its_own_term(monkeypatch):
    """Gradients of each term on the logits of the two passes: ``[x_l; x_w]`` clean then
    perturbed, and ``[x_s1; x_s2]``. The weak view's clean prediction is a target (no gradient
    from any unsupervised term); CE_sup reaches only the labeled clean rows. Without the
    threshold, which an untrained network's predictions would not pass."""
    passes, _, metrics, views, _ = _step(monkeypatch, confidence_threshold=None)
    n_l, n_u = views.labeled.shape[0], views.unlabeled.weak.shape[0]
    learns = {"loss_sup": "labeled", "loss_s1": "s1", "loss_s2": "s2", "loss_fp": "perturbed"}
    for term, stream in learns.items():
        grads = torch.autograd.grad(metrics[term], passes, retain_graph=True, allow_unused=True)
        weak, strong = (
            torch.zeros_like(x) if g is None else g for g, x in zip(grads, passes, strict=True)
        )
        by_row = {
            "labeled": weak[:n_l],
            "weak": weak[n_l : n_l + n_u],
            "perturbed_labeled": weak[n_l + n_u : 2 * n_l + n_u],
            "perturbed": weak[2 * n_l + n_u :],
            "s1": strong[:n_u],
            "s2": strong[n_u:],
        }
        for name, grad in by_row.items():
            reached = bool(grad.abs().sum() > 0)
            assert reached == (name == stream), (term, name)


def test_the_perturbed_stream_sees_dropped_channels(monkeypatch):
    (weak_pass, _), *_ = _step(monkeypatch)
    clean, perturbed = weak_pass.chunk(2)
    assert clean.shape == perturbed.shape and not torch.allclose(clean, perturbed)


def test_unimatch_trains_and_logs_its_terms(tiny_data):
    result = Trainer(tiny_config("unimatch", iterations=2), TINY_CLASSES).fit(tiny_data)
    last = result.history[-1]
    assert {"loss_sup", "loss_s1", "loss_s2", "loss_fp", "confident_share"} <= set(last)
    assert all(torch.isfinite(torch.tensor(last[k])) for k in ("loss", "loss_s1", "loss_fp"))
