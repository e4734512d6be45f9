"""The MKD wiring: who teaches whom, checked through gradients."""

import pytest
import torch
import torch.nn.functional as F

from mkdseg.core.consistency import PseudoLabels, consistency_losses, teacher_diagnostics

C, H, W = 4, 3, 3


def _logits_for(labels: torch.Tensor, scale: float = 10.0) -> torch.Tensor:
    return F.one_hot(labels, C).permute(0, 3, 1, 2).float() * scale


def _setup():
    g = torch.Generator().manual_seed(0)
    target_t1 = torch.randint(0, C, (2, H, W), generator=g)
    target_t2 = (target_t1 + 1) % C  # the teachers disagree everywhere
    students = [torch.zeros(2, C, H, W, requires_grad=True) for _ in range(2)]
    teachers = [_logits_for(target_t1).requires_grad_(), _logits_for(target_t2).requires_grad_()]
    ignore = torch.zeros(2, H, W, dtype=torch.bool)
    return students, teachers, ignore, target_t1, target_t2


def test_student_one_is_taught_by_teacher_two_and_vice_versa():
    students, teachers, ignore, t1, t2 = _setup()
    res = consistency_losses(
        students, teachers=PseudoLabels(teachers, ignore, [torch.ones(2, H, W)] * 2)
    )
    res.loss_st.backward()
    n = t1.numel()
    # d CE / d z = (softmax(z) - onehot(target)) / n ; students are uniform.
    expected_s1 = (torch.full((2, C, H, W), 1 / C) - F.one_hot(t2, C).permute(0, 3, 1, 2)) / n
    expected_s2 = (torch.full((2, C, H, W), 1 / C) - F.one_hot(t1, C).permute(0, 3, 1, 2)) / n
    torch.testing.assert_close(students[0].grad, expected_s1)
    torch.testing.assert_close(students[1].grad, expected_s2)
    assert teachers[0].grad is None and teachers[1].grad is None


def test_students_teach_each_other_without_threshold():
    g = torch.Generator().manual_seed(1)
    s1 = torch.randn(2, C, H, W, generator=g).requires_grad_()
    s2 = torch.randn(2, C, H, W, generator=g).requires_grad_()
    ignore = torch.zeros(2, H, W, dtype=torch.bool)
    res = consistency_losses([s1, s2], peers=PseudoLabels([s1, s2], ignore))
    expected = F.cross_entropy(s1, s2.argmax(1)) + F.cross_entropy(s2, s1.argmax(1))
    torch.testing.assert_close(res.loss_ss, expected)
    assert float(res.loss_st) == 0.0
    res.loss_ss.backward()  # gradient reaches each student only through its own logits
    torch.testing.assert_close(
        s1.grad, torch.autograd.grad(F.cross_entropy(s1, s2.argmax(1)), s1)[0]
    )


def test_single_branch_student_learns_from_its_own_teacher():
    students, teachers, ignore, t1, _ = _setup()
    res = consistency_losses(
        students[:1], teachers=PseudoLabels(teachers[:1], ignore, [torch.ones(2, H, W)])
    )
    torch.testing.assert_close(res.loss_st, F.cross_entropy(students[0], t1))
    assert float(res.loss_ss) == 0.0
    with pytest.raises(ValueError, match="two students"):  # one branch has no peer to learn from
        consistency_losses(students[:1], peers=PseudoLabels(students[:1], ignore))


def test_threshold_drops_unconfident_teacher_pixels():
    students, teachers, ignore, t1, t2 = _setup()
    confidence = torch.full((2, H, W), 0.5)
    confidence[0, 0, 0] = 0.99  # only one pixel of teacher 2 is confident
    res = consistency_losses(
        students, teachers=PseudoLabels(teachers, ignore, [torch.ones(2, H, W), confidence], 0.95)
    )
    only = F.cross_entropy(students[0][:1, :, :1, :1], t2[:1, :1, :1])
    torch.testing.assert_close(res.loss_st, only + F.cross_entropy(students[1], t1))


def test_optional_student_threshold_keeps_only_the_other_students_confident_pixels():
    g = torch.Generator().manual_seed(2)
    s1, s2 = (torch.randn(2, C, H, W, generator=g) for _ in range(2))
    ignore = torch.zeros(2, H, W, dtype=torch.bool)
    conf1, conf2 = torch.full((2, H, W), 0.5), torch.full((2, H, W), 0.5)
    conf2[1, 2, 2] = 0.97  # student 2 is confident at one pixel, student 1 nowhere
    res = consistency_losses([s1, s2], peers=PseudoLabels([s1, s2], ignore, [conf1, conf2], 0.95))
    torch.testing.assert_close(
        res.loss_ss, F.cross_entropy(s1[1:, :, 2:, 2:], s2[1:, :, 2:, 2:].argmax(1))
    )
    off = consistency_losses([s1, s2], peers=PseudoLabels([s1, s2], ignore, [conf1, conf2], None))
    torch.testing.assert_close(
        off.loss_ss, F.cross_entropy(s1, s2.argmax(1)) + F.cross_entropy(s2, s1.argmax(1))
    )


def test_teacher_diagnostics_agreement_and_confidence():
    labels = torch.tensor([[[0, 1], [2, 3]]])
    z1 = _logits_for(labels, 100.0)
    z2 = _logits_for(torch.tensor([[[0, 1], [2, 0]]]), 100.0)
    confidence = [z.softmax(1).max(1).values for z in (z1, z2)]
    predictions = [z.argmax(1) for z in (z1, z2)]
    out = teacher_diagnostics(confidence, predictions, torch.ones(1, 2, 2, dtype=torch.bool), 0.95)
    assert out["teacher_agreement"] == 0.75
    assert abs(out["teacher_confidence"] - 1.0) < 1e-6
    assert out["confident_share"] == 1.0


def test_kept_share_by_group_shows_a_threshold_that_keeps_background_only():
    from mkdseg.core.consistency import kept_by_group

    target = torch.tensor([[[0, 0], [1, 2]]])  # the targets' class map
    confidence = torch.tensor([[[0.99, 0.97], [0.6, 0.99]]])
    ignore = torch.tensor([[[False, True], [False, False]]])
    out = kept_by_group([target], [confidence], ignore, 0.95)
    assert float(out["kept_share_st_background"]) == 1.0  # the one valid background pixel passes
    assert float(out["kept_share_st_objects"]) == 0.5  # one of the two object pixels passes
    off = kept_by_group([target], [confidence], ignore, None)
    assert float(off["kept_share_st_objects"]) == 1.0


def test_cps_student_learns_the_other_students_unmixed_prediction_on_unlabeled_pixels_only():
    g = torch.Generator().manual_seed(4)
    n_l, n_u = 1, 2
    students = [torch.zeros(n_l + n_u, C, H, W, requires_grad=True) for _ in range(2)]
    target_1 = torch.randint(0, C, (n_l + n_u, H, W), generator=g)
    target_2 = torch.randint(0, C, (n_l + n_u, H, W), generator=g)
    targets = [_logits_for(target_1), _logits_for(target_2)]
    ignore = torch.zeros(n_l + n_u, H, W, dtype=torch.bool)
    student_ignore = ignore.clone()
    student_ignore[:n_l] = True  # TorchSemiSeg CPS+CutMix: the unlabeled (mixed) images only
    res = consistency_losses(students, peers=PseudoLabels(targets, student_ignore))
    res.loss_ss.backward()
    n = n_u * H * W
    onehot = F.one_hot(target_2, C).permute(0, 3, 1, 2).float()
    expected = (torch.full_like(onehot, 1 / C) - onehot) / n
    expected[:n_l] = 0
    torch.testing.assert_close(students[0].grad, expected)  # student 1 learns student 2's target
    assert students[1].grad[:n_l].abs().sum() == 0


def test_valid_average_divides_thresholded_l_st_by_all_valid_pixels():
    students, teachers, ignore, t1, t2 = _setup()
    confidence = torch.full((2, H, W), 0.5)
    confidence[0, 0, 0] = 0.99
    labels = PseudoLabels(teachers[1:], ignore, [confidence], 0.95)
    kept = consistency_losses(students[:1], teachers=labels, average="kept")
    valid = consistency_losses(students[:1], teachers=labels, average="valid")
    only = F.cross_entropy(students[0][:1, :, :1, :1], t2[:1, :1, :1])
    torch.testing.assert_close(kept.loss_st, only)
    torch.testing.assert_close(valid.loss_st, only / t2.numel())
    assert float(kept.metrics["kept_share_st"]) == pytest.approx(1 / t2.numel())


@pytest.mark.parametrize("teacher_rows", ["all", "unlabeled"])
def test_teacher_rows_drops_labeled_rows_from_l_st_only(teacher_rows: str) -> None:
    """``teacher_rows: unlabeled`` leaves the labeled images out of L_st; L_ss keeps them."""
    from mkdseg.core.consistency import ignore_masks
    from mkdseg.core.methods import MethodConfig
    from mkdseg.core.targets import make_grid

    n_l, n_u, size = 2, 2, 8
    labels = torch.zeros(n_l, size, size, dtype=torch.long)
    labels[0, 0, 0] = 255  # an ignore label stays ignored in both terms
    method = MethodConfig(teacher_rows=teacher_rows, consistency_scale=1.0)
    grid = make_grid(
        method,
        (size, size),
        labels,
        torch.ones(n_u, size, size, dtype=torch.bool),
        torch.ones(n_u, 1, size, size),
    )
    teacher, peers = ignore_masks(method, grid)
    assert peers[:n_l].sum() == 1 and not peers[n_l:].any()
    assert bool(teacher[:n_l].all()) == (teacher_rows == "unlabeled")
    assert not teacher[n_l:].any()
