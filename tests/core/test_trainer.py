"""The training loop: every method runs, the loss falls, resume is exact, the NaN guard stops."""

from __future__ import annotations

import copy
import dataclasses
import math
import threading

import pytest
import torch
import torch.nn.functional as F

from mkdseg.core import consistency as consistency_module
from mkdseg.core import networks as networks_module
from mkdseg.core import trainer as trainer_module
from mkdseg.core import views as views_module
from mkdseg.core.augmentation import BlurRange
from mkdseg.core.checkpoint import latest_checkpoint
from mkdseg.core.cutmix import mix
from mkdseg.core.feature_augmentation import ClassFeatureStatistics
from mkdseg.core.methods import cps as cps_method
from mkdseg.core.methods import mean_teacher as mean_teacher_method
from mkdseg.core.methods import mkd as mkd_method
from mkdseg.core.methods import supervised as supervised_method
from mkdseg.core.model import SegOutput
from mkdseg.core.optimization import TrainingDivergedError
from mkdseg.core.trainer import Trainer

from .conftest import TINY_CLASSES, tiny_config


@pytest.mark.parametrize("method", ["supervised", "mean_teacher", "cps", "mkd", "unimatch"])
def test_every_method_trains(method, tiny_data):
    cfg = tiny_config(method, iterations=2)
    trainer = Trainer(cfg, TINY_CLASSES)
    result = trainer.fit(tiny_data)
    assert result.iterations == 2 and len(result.history) == 2
    last = result.history[-1]
    assert torch.isfinite(torch.tensor(last["loss"]))
    expected = {
        "supervised": set(),
        "mean_teacher": {
            "loss_st",
            "ema_momentum",
            "teacher_confidence",
            "target_alignment",
            "kept_share_st_background",
            "kept_share_st_objects",
        },
        "cps": {"loss_ss", "target_alignment"},
        "mkd": {
            "loss_st",
            "loss_ss",
            "teacher_agreement",
            "lambda",
            "target_alignment",
            "kept_share_st_background",
        },
        "unimatch": {"loss_s1", "loss_s2", "loss_fp", "confident_share"},
    }[method]
    assert expected <= set(last)
    assert ("target_alignment" in last) == (method not in ("supervised", "unimatch"))
    single = ("supervised", "mean_teacher", "unimatch")
    assert len(trainer.nets.students) == (1 if method in single else 2)
    assert set(result.student) == set(trainer.nets.students[0].state_dict())


@pytest.mark.parametrize("relaid", [False, True])
def test_teachers_get_no_gradients_and_follow_ema(relaid, tiny_data):
    """At the start of step t each teacher becomes m_t * itself + (1 - m_t) * its student, with
    m_t = min(1 - 1/t, ema_momentum_end): a copy at t = 1, the EMA after (0.5 at t = 2, then the
    release's end value 0.6 at t = 3). ``relaid``: the networks moved to another memory format
    after they were built (as the benchmark's variant does), which the EMA must follow."""
    trainer = Trainer(tiny_config("mkd", iterations=3), TINY_CLASSES)
    if relaid:
        for pair in (trainer.nets.student_pair, trainer.nets.teacher_pair):
            pair.to(memory_format=torch.channels_last)
    batches = trainer._batches(tiny_data)
    for t, momentum in ((1, 0.0), (2, 0.5), (3, 0.6)):
        teachers = [{k: v.clone() for k, v in n.named_parameters()} for n in trainer.nets.teachers]
        students = [{k: v.clone() for k, v in n.named_parameters()} for n in trainer.nets.students]
        metrics = trainer.train_step(*next(batches))
        assert metrics["ema_momentum"] == pytest.approx(momentum), t
        for teacher, old, student in zip(trainer.nets.teachers, teachers, students, strict=True):
            for name, p in teacher.named_parameters():
                expected = momentum * old[name] + (1 - momentum) * student[name]
                torch.testing.assert_close(p, expected, msg=f"step {t}: {name}")
    for teacher in trainer.nets.teachers:
        assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_students_start_from_different_heads(tiny_data):
    trainer = Trainer(tiny_config("cps"), TINY_CLASSES)
    s1, s2 = (s.state_dict() for s in trainer.nets.students)
    assert not torch.equal(s1["classifier.weight"], s2["classifier.weight"])


def test_the_supervised_loss_decreases_and_the_ramp_rises(tiny_data):
    # Learning at all; the consistency terms are tested by what they teach (the tests below).
    # From scratch, consistency needs its ramp-up or the untrained teachers collapse every network.
    # Batches of 2 make the per-step loss noisy: 60 steps, averaged over the first and last 10.
    cfg = tiny_config("mkd", iterations=60, optim={"lr": 0.05}, mkd={"consistency_rampup": 60})
    history = Trainer(cfg, TINY_CLASSES).fit(tiny_data).history
    first = sum(h["loss_sup"] for h in history[:10]) / 10
    last = sum(h["loss_sup"] for h in history[-10:]) / 10
    assert last < 0.9 * first
    assert history[0]["consistency_ramp"] < 0.01 and history[-1]["consistency_ramp"] > 0.9


@pytest.mark.parametrize("method", ["mkd", "cps", "mean_teacher"])
def test_the_unlabeled_images_teach_only_through_the_consistency_terms(method, tiny_data):
    """The gradient on the students' unlabeled (mixed) rows is zero with the consistency weights
    at 0 and nonzero with the method's: the terms are in the loss, and nothing else reaches those
    rows. A threshold low enough that an untrained teacher's pixels pass."""
    grads = {}
    for weight in (0.0, 1.0):
        over = {
            "mkd": {"mkd": {"weight_teacher": weight, "weight_student": weight}},
            "cps": {"cps": {"weight_student": weight}},
            "mean_teacher": {"mean_teacher": {"weight_teacher": weight}},
        }[method]
        cfg = tiny_config(method, iterations=1, consistency={"confidence_threshold": 0.2}, **over)
        trainer = Trainer(cfg, TINY_CLASSES)
        seen = []

        def keep_grad(_module, _inputs, output, seen=seen):
            if output.logits.requires_grad:  # not CPS's no-grad pass on the unmixed images
                output.logits.register_hook(lambda g: seen.append(g.detach().clone()))

        trainer.nets.students[0].register_forward_hook(keep_grad)
        trainer.train_step(*next(trainer._batches(tiny_data)))
        n_l = cfg.batch_size
        grads[weight] = seen[-1][n_l:]  # the pass with gradients: [x_l; x_mix]
    assert torch.count_nonzero(grads[0.0]) == 0
    assert torch.count_nonzero(grads[1.0]) > 0


@pytest.mark.parametrize("scale", [0.5, 4.0])  # 4: the grid is the labels' (conf/base's)
def test_a_steps_loss_is_the_methods_equation_of_its_parts(scale, tiny_data):
    """MKD's total is CE_sup + ramp * (w_st * L_st + w_ss * L_ss) of the reported parts, and
    CE_sup is each student's mean CE on the labeled images, recomputed here from its outputs
    (at scale 4, conf/base's, the grid is the labels' resolution)."""
    mkd = {"weight_teacher": 1.5, "weight_student": 0.7, "consistency_scale": scale}
    cfg = tiny_config("mkd", iterations=1, mkd=mkd)
    trainer = Trainer(cfg, TINY_CLASSES)
    outputs, views = [], {}
    for student in trainer.nets.students:
        student.register_forward_hook(lambda _m, _i, out: outputs.append(out.logits.detach()))
    real = trainer_module.make_views

    def record(*args, **kwargs):
        views["v"] = real(*args, **kwargs)
        return views["v"]

    trainer_module.make_views = record
    try:
        metrics = trainer.train_step(*next(trainer._batches(tiny_data)))
    finally:
        trainer_module.make_views = real
    v, n_l = views["v"], cfg.batch_size
    ce = 0.0
    for logits in outputs[-2:]:  # the two students' pass on [x_l; x_mix]
        z = F.interpolate(logits[:n_l], size=v.labels.shape[-2:], mode="bilinear")
        ce += F.cross_entropy(z, v.labels.long(), ignore_index=255).item()
    assert metrics["loss_sup"] == pytest.approx(ce, rel=1e-5)
    assert metrics["consistency_ramp"] == 1.0  # no ramp-up in the tiny config
    expected = metrics["loss_sup"] + 1.5 * metrics["loss_st"] + 0.7 * metrics["loss_ss"]
    assert metrics["loss"] == pytest.approx(expected, rel=1e-6)
    assert metrics["loss_st"] > 0 and metrics["loss_ss"] > 0


def test_a_label_outside_the_classes_is_refused_by_name(tiny_data):
    """The estimators' class weights skip their own check (MKD's step checks the labels once,
    before the supervised CE, whose own error names neither num_classes nor the encoding)."""
    trainer = Trainer(tiny_config("mkd", iterations=1), TINY_CLASSES)
    (images, labels), unlabeled = next(trainer._batches(tiny_data))
    labels = labels.clone()
    labels[0, 0, 0] = TINY_CLASSES + 4
    with pytest.raises(ValueError, match="num_classes / mask encoding"):
        trainer.train_step((images, labels), unlabeled)


def _all_state(trainer: Trainer) -> dict[str, torch.Tensor]:
    state = {}
    for i, net in enumerate(trainer.nets.students + trainer.nets.teachers):
        state.update({f"net{i}.{k}": v for k, v in net.state_dict().items()})
    for i, s in enumerate(trainer.nets.student_stats + trainer.nets.teacher_stats):
        state.update({f"stats{i}.{k}": v for k, v in s.state_dict().items()})
    return state


def test_resume_is_exact(tiny_data, tmp_path):
    straight = Trainer(tiny_config("mkd", iterations=4, checkpoint_every=2), TINY_CLASSES)
    straight.fit(tiny_data)

    def interrupt(iteration, metrics):
        if iteration == 3:  # after the iteration-2 checkpoint: iteration 3's work is lost
            raise KeyboardInterrupt

    interrupted = Trainer(tiny_config("mkd", iterations=4, checkpoint_every=2), TINY_CLASSES)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit(tiny_data, callback=interrupt, checkpoint_dir=tmp_path)
    assert latest_checkpoint(tmp_path).name == "checkpoint_00000002.pt"
    resumed = Trainer(tiny_config("mkd", iterations=4, checkpoint_every=2), TINY_CLASSES)
    result = resumed.fit(tiny_data, checkpoint_dir=tmp_path, resume=True)
    assert result.iterations == 4 and result.resumed_from == 2
    assert [h["step"] for h in result.history] == [
        1.0,
        2.0,
        3.0,
        4.0,
    ]  # the curves survive the interruption
    a, b = _all_state(straight), _all_state(resumed)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_past_the_end_says_what_to_change(tiny_data, tmp_path):
    Trainer(tiny_config("mkd", iterations=4, checkpoint_every=4), TINY_CLASSES).fit(
        tiny_data, checkpoint_dir=tmp_path
    )
    with pytest.raises(ValueError, match="past training.iterations=2"):
        Trainer(tiny_config("mkd", iterations=2), TINY_CLASSES).fit(
            tiny_data, checkpoint_dir=tmp_path, resume=True
        )


def test_resume_refuses_a_different_configuration(tiny_data, tmp_path):
    Trainer(tiny_config("mkd", iterations=2), TINY_CLASSES).fit(tiny_data, checkpoint_dir=tmp_path)
    other = Trainer(tiny_config("mkd", iterations=4, seed=1), TINY_CLASSES)
    with pytest.raises(ValueError, match="training.seed"):
        other.fit(tiny_data, checkpoint_dir=tmp_path, resume=True)
    separate = Trainer(tiny_config("mkd", iterations=4, separate_view_passes=True), TINY_CLASSES)
    with pytest.raises(ValueError, match="training.separate_view_passes"):
        separate.fit(tiny_data, checkpoint_dir=tmp_path, resume=True)


def test_methods_without_feature_augmentation_keep_no_estimators_and_resume_old_checkpoints(
    tiny_data, tmp_path
):
    """Mean teacher and CPS never augment features, so they keep no statistics; a checkpoint
    written when they did (the estimators' entries present) still resumes, to the same weights."""
    for method in ("mean_teacher", "cps"):
        trainer = Trainer(tiny_config(method, iterations=2), TINY_CLASSES)
        assert trainer.nets.student_stats == [] and trainer.nets.teacher_stats == []
        folder = tmp_path / method
        trainer.fit(tiny_data, checkpoint_dir=folder)
        path = latest_checkpoint(folder)
        state = torch.load(path, weights_only=False)
        stats = ClassFeatureStatistics(TINY_CLASSES, 8).state_dict()
        state["student_stats"] = [stats] * len(trainer.nets.students)  # as written before
        state["teacher_stats"] = [stats] * len(trainer.nets.teachers)
        torch.save(state, path)
        resumed = Trainer(tiny_config(method, iterations=2), TINY_CLASSES)
        result = resumed.fit(tiny_data, checkpoint_dir=folder, resume=True)
        assert result.resumed_from == 2
        for key, value in _all_state(trainer).items():
            assert torch.equal(value, _all_state(resumed)[key]), (method, key)


def test_a_checkpoint_older_than_a_model_key_resumes_at_that_keys_default(tiny_data, tmp_path):
    """A checkpoint written before ``training.model.bn_momentum`` existed trained with PyTorch's
    0.1, the default: it resumes; a run with the release's 0.001 refuses it, naming the block."""
    Trainer(tiny_config("mkd", iterations=2), TINY_CLASSES).fit(tiny_data, checkpoint_dir=tmp_path)
    path = latest_checkpoint(tmp_path)
    state = torch.load(path, weights_only=False)
    del state["config"]["model"]["bn_momentum"]
    torch.save(state, path)
    resumed = Trainer(tiny_config("mkd", iterations=3), TINY_CLASSES)
    assert resumed.fit(tiny_data, checkpoint_dir=tmp_path, resume=True).resumed_from == 2
    model = {**dataclasses.asdict(resumed.cfg.model), "bn_momentum": 0.001}
    release = tiny_config("mkd", iterations=4, model=model)
    with pytest.raises(ValueError, match="training.model"):
        Trainer(release, TINY_CLASSES).fit(tiny_data, checkpoint_dir=tmp_path, resume=True)


def test_nonfinite_losses_are_skipped_then_stop(tiny_data, monkeypatch):
    monkeypatch.setattr(  # the supervised method's loss (core/methods/supervised.py)
        supervised_method, "supervised_ce", lambda logits, labels: logits.sum() * float("nan")
    )
    trainer = Trainer(
        tiny_config("supervised", iterations=10, max_nonfinite_in_row=3), TINY_CLASSES
    )
    before = {k: v.clone() for k, v in trainer.nets.students[0].state_dict().items()}
    with pytest.raises(TrainingDivergedError, match="max_nonfinite_in_row=3"):
        trainer.fit(tiny_data)
    assert trainer.optimizer.nonfinite_total == 3
    for k, v in trainer.nets.students[0].named_parameters():
        assert torch.equal(v, before[k]), "a skipped step must not change the weights"


def test_callback_receives_every_logged_metric(tiny_data):
    seen = []
    Trainer(tiny_config("mkd", iterations=2), TINY_CLASSES).fit(
        tiny_data, callback=lambda i, m: seen.append((i, m))
    )
    assert [i for i, _ in seen] == [1, 2]
    assert {
        "loss",
        "lr",
        "lambda",
        "ema_momentum",
        "teacher_confidence",
        "confident_share",
        "teacher_agreement",
        "images_per_s",
        "peak_memory_mb",
    } <= set(seen[0][1])


@pytest.mark.parametrize("method", ["mean_teacher", "cps"])
def test_strong_view_uses_the_configured_ops(method, tiny_data, monkeypatch):
    seen = []
    real = views_module.strong_augment

    def spy(x, generator, weights, blur):
        seen.append((weights, blur))
        return real(x, generator, weights, blur)

    monkeypatch.setattr(views_module, "strong_augment", spy)
    cfg = tiny_config(method, iterations=1, augment={"crop_size": 32, "blur_reference_crop": 64})
    cfg.augment.strong_ops = {"blur": 1.0}
    Trainer(cfg, TINY_CLASSES).fit(tiny_data)
    if method == "cps":  # CPS+CutMix mixes the weak views: no strong view at all
        assert seen == []
    else:  # the release's blur at half its reference crop: sigma 0.05-1.0 px, kernel 3-5
        assert seen == [((0.0, 1.0, 0.0, 0.0, 0.0), BlurRange(sigma=(0.05, 1.0), radius=(1, 2)))]


def test_student_threshold_changes_only_the_student_term(tiny_data):
    def first_step(threshold):
        cfg = tiny_config("mkd", iterations=1, mkd={"student_confidence_threshold": threshold})
        return Trainer(cfg, TINY_CLASSES).fit(tiny_data).history[0]

    off, on = first_step(None), first_step(0.99)
    assert on["loss_st"] == pytest.approx(off["loss_st"]) and on["loss_sup"] == pytest.approx(
        off["loss_sup"]
    )
    assert on["loss_ss"] != pytest.approx(
        off["loss_ss"]
    )  # unsure pixels of the other student drop out


def test_network_pair_runs_each_view_in_its_own_pass():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    pair = networks_module.NetworkPair([_LogitsAndFeatures(net)])
    a, b = torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4) * 5 + 2
    (separate,) = pair(a, b)
    (joint,) = pair(torch.cat([a, b]))
    assert separate.logits.shape == joint.logits.shape == (5, 4, 4, 4)
    # In train mode BatchNorm normalises each pass by its own batch statistics.
    torch.testing.assert_close(separate.logits[:2], net(a))
    torch.testing.assert_close(separate.logits[2:], net(b))
    assert not torch.allclose(separate.logits, joint.logits)


class _LogitsAndFeatures(torch.nn.Module):
    """A stand-in network returning SegOutput(logits, features) like the segmentation model."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, perturb: float = 0.0, generator=None) -> SegOutput:
        assert perturb == 0.0 and generator is None  # no feature-perturbed stream asked for here
        out = self.net(x)
        return SegOutput(out, out * 2)


@pytest.mark.parametrize("separate", [False, True])
def test_views_are_passed_jointly_or_separately(separate, tiny_data):
    cfg = tiny_config("mkd", iterations=1, separate_view_passes=separate)
    trainer = Trainer(cfg, TINY_CLASSES)
    batches = []
    for net in trainer.nets.students + trainer.nets.teachers:
        net.register_forward_pre_hook(lambda _module, args: batches.append(args[0].shape[0]))
    trainer.fit(tiny_data)
    n_l, n_u = cfg.batch_size, cfg.unlabeled_batch_size
    assert batches == ([n_l, n_u] * 4 if separate else [n_l + n_u] * 4)


def _capture_step(trainer: Trainer, monkeypatch) -> dict:
    """Record the step's views and the arguments of ``consistency_losses`` of the next step."""
    seen: dict = {}
    real_views, real_losses = trainer_module.make_views, consistency_module.consistency_losses

    def make_views(*args, **kwargs):
        seen["views"] = real_views(*args, **kwargs)
        return seen["views"]

    def losses(students, **kwargs):
        seen["students"], seen["teachers"], seen["peers"] = (
            students,
            kwargs.get("teachers"),
            kwargs.get("peers"),
        )
        seen["average"] = kwargs["average"]
        return real_losses(students, **kwargs)

    monkeypatch.setattr(trainer_module, "make_views", make_views)
    for method_file in (mkd_method, cps_method, mean_teacher_method):  # each imports it by name
        monkeypatch.setattr(method_file, "consistency_losses", losses)
    return seen


def test_cps_student_learns_the_other_students_prediction_on_the_unmixed_images(
    tiny_data, monkeypatch
):
    trainer = Trainer(tiny_config("cps", iterations=1, precision="fp32"), TINY_CLASSES)
    # The weights the step's targets come from.
    before = [copy.deepcopy(net) for net in trainer.nets.students]
    seen = _capture_step(trainer, monkeypatch)
    trainer.fit(tiny_data)
    x_l, u, peers = seen["views"].labeled, seen["views"].unlabeled, seen["peers"]
    n_l = x_l.shape[0]
    # No teacher term; the loss at input resolution.
    assert seen["teachers"] is None and seen["students"][0].shape[-2:] == u.mask.shape[-2:]
    torch.testing.assert_close(u.mixed, mix(u.weak, u.mask))  # trained on the mixed (weak) images
    mask = u.mask[:, 0] > 0
    for k in range(2):
        # The other student on the unmixed images, train-mode BatchNorm as in the step.
        with torch.no_grad():
            logits = before[1 - k](u.weak).logits
        pred = F.interpolate(
            logits, size=mask.shape[-2:], mode="bilinear", align_corners=False
        ).argmax(1)
        expected = torch.where(
            mask, pred, pred.roll(1, 0)
        )  # each pixel from the image CutMix put there
        assert torch.equal(peers.logits[1 - k][n_l:].argmax(1), expected)
    assert peers.ignore[:n_l].all()  # labeled images are not in the CPS loss


def test_mkd_with_unmixed_targets_keeps_its_teachers_and_takes_l_ss_from_the_unmixed_images(
    tiny_data, monkeypatch
):
    """conf/base's MKD (issue 15): ``L_ss`` targets are the other student's prediction on the
    unmixed weak images, mixed like the teachers' (at decoder resolution, then resized)."""
    cfg = tiny_config("mkd", iterations=1, precision="fp32", mkd={"cps_targets": "unmixed"})
    trainer = Trainer(cfg, TINY_CLASSES)
    before = [copy.deepcopy(net) for net in trainer.nets.students]
    seen = _capture_step(trainer, monkeypatch)
    trainer.fit(tiny_data)
    x_l, u, peers = seen["views"].labeled, seen["views"].unlabeled, seen["peers"]
    n_l = x_l.shape[0]
    assert seen["teachers"] is not None and cfg.method.mixed_view == "strong"
    assert peers.ignore[:n_l].all() and not peers.ignore[n_l:].all()  # unlabeled rows only
    for k in range(2):
        with torch.no_grad():
            logits = before[1 - k](u.weak).logits
        m = F.interpolate(u.mask, size=logits.shape[-2:], mode="nearest")
        mixed = m * logits + (1 - m) * logits.roll(1, 0)
        expected = F.interpolate(
            mixed, size=peers.logits[1 - k].shape[-2:], mode="bilinear", align_corners=False
        )
        torch.testing.assert_close(peers.logits[1 - k][n_l:], expected)


def test_mean_teacher_learns_its_teachers_prediction_on_the_unmixed_weak_view(
    tiny_data, monkeypatch
):
    trainer = Trainer(tiny_config("mean_teacher", iterations=1, precision="fp32"), TINY_CLASSES)
    seen = _capture_step(trainer, monkeypatch)
    history = trainer.fit(tiny_data).history
    x_l, u, teachers = seen["views"].labeled, seen["views"].unlabeled, seen["teachers"]
    assert (len(seen["students"]), len(teachers.logits), teachers.threshold, seen["average"]) == (
        1,
        1,
        0.95,
        "valid",
    )
    assert seen["peers"] is None
    assert trainer.cfg.method.ema_momentum_end == 0.99 and history[0]["ema_momentum"] == 0.0
    n_l = x_l.shape[0]
    # loss_u: the unlabeled images only
    assert teachers.ignore[:n_l].all() and not teachers.ignore[n_l:].all()
    with torch.no_grad():  # at step 1 the teacher is the student's copy; one joint [x_l; x_w] pass
        logits = trainer.nets.teachers[0](torch.cat([x_l, u.weak])).logits[n_l:]
    up = F.interpolate(logits, size=u.mask.shape[-2:], mode="bilinear", align_corners=False)
    expected = u.mask * up + (1 - u.mask) * up.roll(1, 0)  # at input resolution, the exact mask
    torch.testing.assert_close(teachers.logits[0][n_l:], expected)
    torch.testing.assert_close(teachers.confidence[0][n_l:], expected.softmax(1).max(1).values)
    assert history[0]["target_alignment"] == 1.0


def test_mkd_teacher_targets_are_mixed_at_decoder_resolution_then_resized(tiny_data, monkeypatch):
    trainer = Trainer(tiny_config("mkd", iterations=1, precision="fp32"), TINY_CLASSES)
    seen = _capture_step(trainer, monkeypatch)
    trainer.fit(tiny_data)
    x_l, u, teachers = seen["views"].labeled, seen["views"].unlabeled, seen["teachers"]
    n_l = x_l.shape[0]
    for k, teacher in enumerate(trainer.nets.teachers):
        with torch.no_grad():
            logits = teacher(torch.cat([x_l, u.weak])).logits[n_l:]
        # Mixed at decoder resolution ...
        m = F.interpolate(u.mask, size=logits.shape[-2:], mode="nearest")
        mixed = m * logits + (1 - m) * logits.roll(1, 0)
        expected = F.interpolate(
            mixed, size=teachers.logits[k].shape[-2:], mode="bilinear", align_corners=False
        )
        # ... then resized.
        torch.testing.assert_close(teachers.confidence[k][n_l:], expected.softmax(1).max(1).values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_bf16_steps_train_channels_last_networks(tiny_data):
    cfg = tiny_config("mkd", iterations=3, device="cuda", precision="auto")
    trainer = Trainer(cfg, TINY_CLASSES)
    assert trainer.amp_dtype in (torch.bfloat16, torch.float16)
    history = trainer.fit(tiny_data).history
    assert all(math.isfinite(h["loss"]) for h in history) and history[-1]["nonfinite_skipped"] == 0
    conv = trainer.nets.students[0].backbone.conv1.weight
    assert conv.is_cuda and conv.is_contiguous(memory_format=torch.channels_last)


def _fixed_batch(seed: int) -> tuple:
    """Two labeled and two unlabeled 32 px images, some ignored labels and some padding."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    y = torch.randint(0, TINY_CLASSES, (2, 32, 32), generator=g)
    y[:, :3] = 255
    u = torch.randint(0, 256, (2, 3, 32, 32), generator=g, dtype=torch.uint8)
    valid = torch.ones(2, 32, 32, dtype=torch.bool)
    valid[0, 20:] = False
    return (x, y), (u, valid)


# The losses of two steps on _fixed_batch(0), _fixed_batch(1) (CPU, fp32), as computed before
# issue 13's refactor, then with French et al.'s CutMix boxes (issue 33): a change detector (a
# rewrite of the step must give the same numbers); what the numbers mean is tested above
# (targets, gradients, the equation of the parts).
FIXED_STEP_LOSSES = {
    "supervised": [
        {"loss": 1.0987794399261475, "loss_sup": 1.0987794399261475},
        {"loss": 1.0993940830230713, "loss_sup": 1.0993940830230713},
    ],
    "mean_teacher": [
        {
            "loss": 1.1507511138916016,
            "loss_sup": 1.098620057106018,
            "loss_st": 0.052131108939647675,
        },
        {
            "loss": 1.134230136871338,
            "loss_sup": 1.0997140407562256,
            "loss_st": 0.034516047686338425,
        },
    ],
    "cps": [
        {
            "loss": 4.395172119140625,
            "loss_sup": 2.1984243392944336,
            "loss_ss": 2.1967480182647705,
        },
        {
            "loss": 4.3735809326171875,
            "loss_sup": 2.1981818675994873,
            "loss_ss": 2.175398826599121,
        },
    ],
    "mkd": [
        {
            "loss": 7.6801910400390625,
            "loss_sup": 2.1975057125091553,
            "loss_st": 2.1919753551483154,
            "loss_ss": 2.1947221755981445,
        },
        {
            "loss": 7.513719081878662,
            "loss_sup": 2.1999688148498535,
            "loss_st": 2.1284284591674805,
            "loss_ss": 2.121107578277588,
        },
    ],
}


@pytest.mark.parametrize("method", sorted(FIXED_STEP_LOSSES))
def test_the_losses_of_two_fixed_steps_are_unchanged(method):
    # A mean-teacher threshold low enough that some pixels pass on an untrained network.
    over = {"mean_teacher": {"confidence_threshold": 0.345}} if method == "mean_teacher" else {}
    trainer = Trainer(tiny_config(method, **over), TINY_CLASSES)
    for step, expected in enumerate(FIXED_STEP_LOSSES[method]):
        metrics = trainer.train_step(*_fixed_batch(step))
        losses = {k: v for k, v in metrics.items() if k.startswith("loss")}
        assert losses == pytest.approx(expected, rel=1e-5, abs=1e-7), step


def test_channels_last_on_the_cpu_lays_out_the_networks_so_and_computes_the_same_steps():
    trainer = Trainer(tiny_config("mkd", memory_format="channels_last"), TINY_CLASSES)
    for net in (*trainer.nets.students, *trainer.nets.teachers):
        conv = net.backbone.conv1.weight
        assert conv.is_contiguous(memory_format=torch.channels_last)
        assert not conv.is_contiguous()
    for step, expected in enumerate(FIXED_STEP_LOSSES["mkd"]):
        metrics = trainer.train_step(*_fixed_batch(step))
        losses = {k: v for k, v in metrics.items() if k.startswith("loss")}
        # Another kernel order, the same arithmetic: equal to fp32 rounding.
        assert losses == pytest.approx(expected, rel=1e-4), step


FCN_MODEL = {"architecture": "dilated_fcn", "stem_channels": 4, "decoder_channels": 8}


@pytest.mark.parametrize("method", ["mkd", "unimatch"])  # unimatch: its feature dropout too
def test_threads_are_applied_and_runs_in_concurrent_threads_train_as_one_alone(
    method, tiny_data, keep_torch_threads
):
    """A grid under Kedro's ThreadRunner: two runs training at once in one process, one torch
    thread each, compute exactly what one run computes alone (no shared random state)."""
    cfg = tiny_config(method, iterations=3, threads=1, model=FCN_MODEL)
    alone = Trainer(cfg, TINY_CLASSES).fit(tiny_data).history
    assert torch.get_num_threads() == 1
    histories: dict[int, list] = {}

    def run(k: int) -> None:
        histories[k] = Trainer(cfg, TINY_CLASSES).fit(tiny_data).history

    runs = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    losses = [h["loss"] for h in alone]
    assert all([h["loss"] for h in histories[k]] == losses for k in range(2))
