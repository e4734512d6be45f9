"""The MKD wiring: who teaches whom, checked through gradients."""

import torch
import torch.nn.functional as F

from mkdseg.core.consistency import consistency_losses, teacher_diagnostics

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
    res = consistency_losses(students, teachers, [torch.ones(2, H, W)] * 2, ignore, None, student_term=False)
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
    res = consistency_losses([s1, s2], [], [], ignore, 0.99, student_term=True)
    expected = F.cross_entropy(s1, s2.argmax(1)) + F.cross_entropy(s2, s1.argmax(1))
    torch.testing.assert_close(res.loss_ss, expected)
    assert float(res.loss_st) == 0.0
    res.loss_ss.backward()  # gradient reaches each student only through its own logits
    torch.testing.assert_close(s1.grad, torch.autograd.grad(F.cross_entropy(s1, s2.argmax(1)), s1)[0])


def test_single_branch_student_learns_from_its_own_teacher():
    students, teachers, ignore, t1, _ = _setup()
    res = consistency_losses(students[:1], teachers[:1], [torch.ones(2, H, W)], ignore, None, student_term=True)
    torch.testing.assert_close(res.loss_st, F.cross_entropy(students[0], t1))
    assert float(res.loss_ss) == 0.0


def test_threshold_drops_unconfident_teacher_pixels():
    students, teachers, ignore, t1, t2 = _setup()
    confidence = torch.full((2, H, W), 0.5)
    confidence[0, 0, 0] = 0.99  # only one pixel of teacher 2 is confident
    res = consistency_losses(students, teachers, [torch.ones(2, H, W), confidence], ignore, 0.95, False)
    only = F.cross_entropy(students[0][:1, :, :1, :1], t2[:1, :1, :1])
    torch.testing.assert_close(res.loss_st, only + F.cross_entropy(students[1], t1))


def test_optional_student_threshold_keeps_only_the_other_students_confident_pixels():
    g = torch.Generator().manual_seed(2)
    s1, s2 = (torch.randn(2, C, H, W, generator=g) for _ in range(2))
    ignore = torch.zeros(2, H, W, dtype=torch.bool)
    conf1, conf2 = torch.full((2, H, W), 0.5), torch.full((2, H, W), 0.5)
    conf2[1, 2, 2] = 0.97  # student 2 is confident at one pixel, student 1 nowhere
    res = consistency_losses([s1, s2], [], [], ignore, None, True, [conf1, conf2], 0.95)
    torch.testing.assert_close(res.loss_ss, F.cross_entropy(s1[1:, :, 2:, 2:], s2[1:, :, 2:, 2:].argmax(1)))
    off = consistency_losses([s1, s2], [], [], ignore, None, True, [conf1, conf2], None)
    torch.testing.assert_close(off.loss_ss, F.cross_entropy(s1, s2.argmax(1)) + F.cross_entropy(s2, s1.argmax(1)))


def test_teacher_diagnostics_agreement_and_confidence():
    labels = torch.tensor([[[0, 1], [2, 3]]])
    z1 = _logits_for(labels, 100.0)
    z2 = _logits_for(torch.tensor([[[0, 1], [2, 0]]]), 100.0)
    confidence = [z.softmax(1).max(1).values for z in (z1, z2)]
    predictions = [z.argmax(1) for z in (z1, z2)]
    out = teacher_diagnostics(confidence, predictions, torch.ones(1, 2, 2, dtype=torch.bool), 0.95, n_labeled=0)
    assert out["teacher_agreement"] == 0.75
    assert abs(out["teacher_confidence"] - 1.0) < 1e-6
    assert out["confident_share"] == 1.0


def test_resolution_helpers_resize_logits_bilinearly_and_labels_nearest():
    from mkdseg.core.consistency import labels_to_resolution, to_resolution

    torch.testing.assert_close(to_resolution(torch.ones(1, 2, 8, 8), (4, 4)), torch.ones(1, 2, 4, 4))
    labels = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255], [2, 2, 255, 255]]])
    small = labels_to_resolution(labels, (2, 2))
    assert small.dtype == labels.dtype and small.tolist() == [[[0, 1], [2, 255]]]
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    assert labels_to_resolution(mask, (2, 2)).dtype == torch.bool
