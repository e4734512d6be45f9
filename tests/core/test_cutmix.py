"""CutMix box masks and mixing against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mkdseg.core import cutmix


def _gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def test_mask_is_the_xor_of_the_boxes() -> None:
    b, h, w = 6, 23, 31
    boxes = cutmix.sample_boxes(b, h, w, _gen(1))
    mask = cutmix.box_mask(b, h, w, _gen(1))
    assert mask.shape == (b, 1, h, w) and mask.dtype == torch.float32
    count = torch.zeros(b, h, w, dtype=torch.int64)
    for i in range(b):
        for y0, x0, y1, x1 in boxes[i].tolist():
            count[i, y0:y1, x0:x1] += 1
    assert torch.equal(mask[:, 0], (count % 2).float())
    assert ((mask == 0) | (mask == 1)).all()


def test_box_areas_aspect_and_position_within_bounds() -> None:
    h, w = 64, 80
    boxes = cutmix.sample_boxes(500, h, w, _gen(2))
    y0, x0, y1, x1 = boxes.unbind(-1)
    assert (y0 >= 0).all() and (x0 >= 0).all() and (y1 <= h).all() and (x1 <= w).all()
    bh, bw = (y1 - y0).double(), (x1 - x0).double()
    # sides scaled by sqrt(1/3): each box covers area/3 of the image before its sides are
    # rounded to pixels (each side by at most half a pixel)
    lo, hi = cutmix.BOX_AREA[0] / 3, cutmix.BOX_AREA[1] / 3
    assert ((bh + 0.5) * (bw + 0.5) / (h * w) >= lo).all()
    assert ((bh - 0.5) * (bw - 0.5) / (h * w) <= hi).all()
    frac = bh * bw / (h * w)
    assert frac.min() < lo * 1.2 and frac.max() > hi * 0.8  # the whole range is used
    # French et al.'s aspect: height share p^u, width share p^(1-u), so each side's share of
    # the image lies between p / sqrt(3) and sqrt(1/3) (a box is at most one side long) and the
    # ratio of shares between p and 1/p: at most 1/0.25 = 4 either way, and both ways occur
    ratio = (bh / h) / (bw / w)
    assert (bh / h <= math.sqrt(1 / 3) + 0.5 / h).all() and (
        bw / w <= math.sqrt(1 / 3) + 0.5 / w
    ).all()
    assert ratio.max() < 4.0 * 1.1 and ratio.min() > 0.25 / 1.1
    assert math.log(ratio.max()) > 0.8 and math.log(ratio.min()) < -0.8


def test_boxes_follow_french_et_al_generator() -> None:
    """The same draws through TorchSemiSeg's ``BoxMaskGenerator.generate_params`` formulas
    (numpy, transcribed): the same boxes."""
    b, h, w, n = 7, 33, 48, cutmix.N_BOXES
    boxes = cutmix.sample_boxes(b, h, w, _gen(11))
    g = _gen(11)
    props = 0.25 + 0.25 * torch.rand((b, n), generator=g).double().numpy()
    u = torch.rand((b, n), generator=g).double().numpy()
    y_props = np.exp(u * np.log(props))
    x_props = props / y_props
    fac = np.sqrt(1.0 / n)
    sizes = np.round(np.stack([y_props * fac, x_props * fac], axis=2) * np.array([h, w]))
    where = np.stack([torch.rand((b, n), generator=g).double().numpy() for _ in range(2)], 2)
    positions = np.round((np.array([h, w]) - sizes) * where)
    expected = np.concatenate([positions, positions + sizes], axis=2)
    assert np.array_equal(boxes.numpy(), expected.astype(np.int64))


def test_box_mask_is_reproducible_and_on_the_requested_device() -> None:
    a = cutmix.box_mask(3, 16, 16, _gen(4), device="cpu")
    assert torch.equal(a, cutmix.box_mask(3, 16, 16, _gen(4)))
    assert not torch.equal(a, cutmix.box_mask(3, 16, 16, _gen(5)))


def test_mix_rolls_the_batch_by_one() -> None:
    x = torch.randn(4, 3, 8, 8, generator=_gen(6), requires_grad=True)
    mask = cutmix.box_mask(4, 8, 8, _gen(7))
    y = cutmix.mix(x, mask)
    for i in range(4):
        partner = (i - 1) % 4
        expected = torch.where(mask[i].bool(), x[i], x[partner])
        assert torch.equal(y[i], expected)
    weights = torch.randn(4, 3, 8, 8, generator=_gen(10))
    (y * weights).sum().backward()
    # Each pixel's gradient goes to the image it was taken from, as the 0/1 blend's would.
    m = mask.expand_as(x)
    blend_grad = m * weights + ((1 - m) * weights).roll(-1, 0)
    assert torch.equal(x.grad, blend_grad)
    blend = m * x.detach() + (1 - m) * x.detach().roll(1, 0)
    assert torch.equal(y.detach(), blend)


def test_labels_and_bool_maps_are_selected_not_blended() -> None:
    labels = torch.randint(0, 21, (4, 8, 8), generator=_gen(8))
    labels[0, 0, :] = 255
    mask = cutmix.box_mask(4, 8, 8, _gen(9))
    mixed = cutmix.mix(labels, mask)
    assert mixed.dtype == torch.int64
    expected = torch.where(mask[:, 0].bool(), labels, labels.roll(1, 0))
    assert torch.equal(mixed, expected)
    valid = labels != 255
    assert cutmix.mix(valid, mask).dtype == torch.bool
    assert torch.equal(cutmix.mix(valid, mask), expected != 255)


def test_resize_mask_nearest_and_use_at_another_resolution() -> None:
    mask = cutmix.box_mask(2, 16, 16, _gen(10))
    small = cutmix.resize_mask(mask, (8, 8))
    assert torch.equal(small, mask[:, :, ::2, ::2])
    logits = torch.randn(2, 5, 8, 8, generator=_gen(11))
    assert cutmix.mix(logits, small).shape == logits.shape
    with pytest.raises(ValueError, match="resize_mask"):
        cutmix.mix(logits, mask)
    assert cutmix.resize_mask(mask[:, 0].bool(), (8, 8)).dtype == torch.bool


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="area"):
        cutmix.sample_boxes(2, 8, 8, _gen(), area=(0.6, 0.2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generator_gives_a_cuda_mask() -> None:
    g = torch.Generator(device="cuda")
    g.manual_seed(0)
    mask = cutmix.box_mask(4, 16, 16, g, device="cuda")
    assert mask.is_cuda and mask.shape == (4, 1, 16, 16)
    labels = torch.randint(0, 5, (4, 16, 16), device="cuda")
    assert torch.equal(cutmix.mix(labels, mask).cpu(), cutmix.mix(labels.cpu(), mask.cpu()))


@pytest.mark.parametrize("shift", [1, 2])
def test_unmix_is_the_transpose_of_mix(shift) -> None:
    """Weights on the mixed images carried back to their sources: a weighted sum of any pixelwise
    function of the mixed images equals the unmixed weights' sum over the sources."""
    g = torch.Generator().manual_seed(shift)
    x = torch.randn(4, 3, 6, 5, generator=g)
    mask = (torch.rand(4, 1, 6, 5, generator=g) > 0.5).float()
    w = torch.rand(4, 3, 6, 5, generator=g)
    mixed, back = cutmix.mix(x, mask, shift), cutmix.unmix(w, mask, shift)
    for f in (lambda t: t, torch.square):
        torch.testing.assert_close((w * f(mixed)).sum(), (back * f(x)).sum())
    torch.testing.assert_close(back.sum(), w.sum())  # a weight moves, it is not lost
    assert torch.equal(back[0], w[0] * mask[0] + w[shift] * (1 - mask[shift]))
