"""Pixel augmentation: shapes, determinism, op frequencies and each op against a reference."""

from __future__ import annotations

import colorsys
import math

import pytest
import torch
import torchvision.transforms.functional as TF

from mkdseg.core import augmentation as aug
from mkdseg.core import pixel_ops as ops


def _gen(seed: int = 0) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _images(b: int = 4, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    """Images quantised to uint8 levels, as the loader produces them."""
    u = torch.randint(0, 256, (b, 3, h, w), generator=_gen(seed), dtype=torch.uint8)
    return u.float() / 255


def _hsv_pixelwise(img: torch.Tensor, fn) -> torch.Tensor:
    """Slow reference: apply ``fn(h, s, v) -> (h, s, v)`` per pixel through Python's colorsys."""
    out = img.clone()
    for i in range(img.shape[1]):
        for j in range(img.shape[2]):
            hsv = fn(*colorsys.rgb_to_hsv(*img[:, i, j].tolist()))
            out[:, i, j] = torch.tensor(colorsys.hsv_to_rgb(*hsv))
    return out


def _slow_photometric(img: torch.Tensor, prm: aug.PhotometricParams, b: int) -> torch.Tensor:
    do_b, do_c, do_s, do_h = prm.apply[b].tolist()
    first = bool(prm.contrast_first[b])
    if do_b:
        img = (img + prm.brightness[b]).clamp(0, 1)
    if do_c and first:
        img = (img * prm.contrast[b]).clamp(0, 1)
    sat, hue = float(prm.saturation[b]), float(prm.hue[b])
    if do_s or do_h:
        img = _hsv_pixelwise(
            img,
            lambda h, s, v: (
                (h + hue) % 1.0 if do_h else h,
                min(max(s * sat, 0.0), 1.0) if do_s else s,
                v,
            ),
        )
    if do_c and not first:
        img = (img * prm.contrast[b]).clamp(0, 1)
    return img


def test_weak_view_shapes_range_and_identity_at_p0() -> None:
    x = _images()
    y = aug.photometric_distortion(x, _gen(1), aug.PhotometricRanges(p=1.0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= 0 and y.max() <= 1 and not torch.equal(y, x)
    assert torch.equal(aug.photometric_distortion(x, _gen(1), aug.PhotometricRanges(p=0.0)), x)


def test_weak_view_matches_slow_per_pixel_reference() -> None:
    x = _images(b=16, h=4, w=5)
    prm = aug.sample_photometric_params(16, _gen(3), x.device)
    assert prm.apply.any(0).all() and (~prm.apply).any(0).all()  # every op both on and off
    y = aug.apply_photometric(x, prm)
    for b in range(16):
        torch.testing.assert_close(y[b], _slow_photometric(x[b], prm, b), atol=1e-5, rtol=0)


def test_weak_hue_is_torchvision_adjust_hue_in_degrees() -> None:
    x = _images(b=2)
    degrees = torch.tensor([18.0, -7.5])
    prm = aug.PhotometricParams(
        apply=torch.tensor([[False, False, False, True]] * 2),
        contrast_first=torch.tensor([True, True]),
        brightness=torch.zeros(2),
        contrast=torch.ones(2),
        saturation=torch.ones(2),
        hue=degrees / 360,
    )
    y = aug.apply_photometric(x, prm)
    for b in range(2):
        ref = TF.adjust_hue(x[b], float(degrees[b]) / 360)
        torch.testing.assert_close(y[b], ref, atol=1e-5, rtol=0)


def test_hsv_round_trip_and_colorsys() -> None:
    x = _images(b=1, h=6, w=6)
    hsv = ops.rgb_to_hsv(x)
    ref = torch.tensor(
        [[colorsys.rgb_to_hsv(*x[0, :, i, j].tolist()) for j in range(6)] for i in range(6)]
    ).permute(2, 0, 1)
    torch.testing.assert_close(hsv[0], ref.float(), atol=1e-6, rtol=0)
    torch.testing.assert_close(ops.hsv_to_rgb(hsv), x, atol=1e-6, rtol=0)


def test_strong_op_frequencies_match_weights() -> None:
    n = 20000
    prm = aug.sample_strong_params(n, _gen(5), torch.device("cpu"))
    freq = torch.bincount(prm.op, minlength=len(aug.STRONG_OPS)).double() / n
    expected = torch.tensor(aug.STRONG_WEIGHTS, dtype=torch.float64) / sum(aug.STRONG_WEIGHTS)
    sd = (expected * (1 - expected) / n).sqrt()
    assert ((freq - expected).abs() < 5 * sd).all(), (freq, expected)
    assert prm.sigma.min() >= aug.BLUR_SIGMA[0] and prm.sigma.max() <= aug.BLUR_SIGMA[1]
    assert torch.equal(prm.jitter_order.sort(1).values, torch.arange(4).expand(n, 4))
    assert prm.jitter[:, 3].abs().max() <= aug.JITTER_HUE
    assert prm.jitter[:, :3].min() >= 0.5 and prm.jitter[:, :3].max() <= 1.5


def test_ops_with_zero_weight_are_never_drawn() -> None:
    prm = aug.sample_strong_params(2000, _gen(6), torch.device("cpu"), (0.0, 0.5, 0.1, 0.0, 0.0))
    assert set(prm.op.tolist()) == {1, 2}


def test_color_jitter_matches_torchvision_in_the_drawn_order() -> None:
    x = _images(b=3)
    factors = torch.tensor([[1.3, 0.6, 1.4, 0.2], [0.7, 1.2, 0.5, -0.1], [1.0, 1.5, 0.9, 0.25]])
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]])
    fns = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    y = ops.color_jitter(x, factors, order)
    for b in range(3):
        ref = x[b]
        for k in order[b].tolist():
            ref = fns[k](ref, float(factors[b, k]))
        torch.testing.assert_close(y[b], ref, atol=1e-5, rtol=0)


def test_color_jitter_computes_only_the_ops_some_sample_takes(monkeypatch) -> None:
    """An op no sample takes at a position is skipped, and skipping changes no value."""
    x = _images(b=2)
    factors = torch.tensor([[1.3, 0.6, 1.4, 0.2], [0.7, 1.2, 0.5, -0.1]])
    order = torch.tensor([[0, 1, 2, 3], [0, 2, 1, 3]])  # 6 of the 16 (position, op) pairs
    expected = x
    for step in range(ops.JITTER_OPS):  # every op at every position, selected per sample
        for k, fn in enumerate(ops.JITTER_FNS):
            expected = ops.select_per_sample(
                order[:, step] == k, fn(expected, factors[:, k]), expected
            )
    calls: list[str] = []

    def counted(fn):
        def wrapper(img, factor):
            calls.append(fn.__name__)
            return fn(img, factor)

        return wrapper

    monkeypatch.setattr(ops, "JITTER_FNS", tuple(counted(fn) for fn in ops.JITTER_FNS))
    assert torch.equal(ops.color_jitter(x, factors, order), expected)
    assert len(calls) == 6
    assert calls.count("adjust_hue") == 1  # both samples end on hue: one call, not four


def test_weak_views_of_two_batches_in_one_pass_equal_each_batch_apart() -> None:
    x_l, x_u = _images(b=3, seed=1), _images(b=5, seed=2)
    g = _gen(7)
    p_l = aug.sample_photometric_params(3, g, x_l.device, aug.PhotometricRanges(p=0.7))
    p_u = aug.sample_photometric_params(5, g, x_u.device, aug.PhotometricRanges(p=0.7))
    both = aug.apply_photometric(torch.cat([x_l, x_u]), aug.concat_photometric(p_l, p_u))
    assert torch.equal(both[:3], aug.apply_photometric(x_l, p_l))
    assert torch.equal(both[3:], aug.apply_photometric(x_u, p_u))


@pytest.mark.parametrize("sigma", [0.1, 0.7, 2.0])
def test_gaussian_blur_matches_torchvision(sigma: float) -> None:
    x = _images(b=2, h=16, w=15)
    y = ops.gaussian_blur(x, torch.tensor([sigma, 1.0]), max_radius=aug.BlurRange().max_radius)
    k = 2 * math.ceil(3 * sigma) + 1
    torch.testing.assert_close(
        y[0], TF.gaussian_blur(x[0], [k, k], [sigma, sigma]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(y[1], TF.gaussian_blur(x[1], [7, 7], [1.0, 1.0]), atol=1e-5, rtol=0)


def test_equalize_matches_torchvision_uint8() -> None:
    g = _gen(7)
    varied = torch.randint(0, 256, (3, 20, 20), generator=g, dtype=torch.uint8)
    narrow = torch.randint(90, 110, (3, 20, 20), generator=g, dtype=torch.uint8)
    constant = torch.full((3, 20, 20), 77, dtype=torch.uint8)
    two_levels = torch.where(torch.rand(3, 20, 20, generator=g) < 0.9, 10, 200).to(torch.uint8)
    u = torch.stack([varied, narrow, constant, two_levels])
    y = ops.equalize(u.float() / 255)
    ref = torch.stack([TF.equalize(img) for img in u]).float() / 255
    assert (y - ref).abs().max() <= 1 / 255 + 1e-6
    assert torch.equal(y[2], constant.float() / 255)  # step 0: unchanged


def test_solarize_and_grayscale_match_torchvision() -> None:
    u = torch.randint(0, 256, (2, 3, 9, 9), generator=_gen(8), dtype=torch.uint8)
    x = u.float() / 255
    ref = torch.stack([TF.solarize(img, 128) for img in u]).float() / 255
    torch.testing.assert_close(ops.solarize(x), ref, atol=1e-6, rtol=0)
    gray = torch.stack([TF.rgb_to_grayscale(img, num_output_channels=3) for img in x])
    torch.testing.assert_close(ops.to_grayscale(x), gray, atol=1e-6, rtol=0)


def test_strong_applies_exactly_the_chosen_op_per_sample() -> None:
    x = _images(b=10)
    prm = aug.sample_strong_params(10, _gen(9), x.device)
    prm.op = torch.tensor([0, 1, 2, 3, 4, 4, 3, 2, 1, 0])
    y = aug.apply_strong(x, prm)
    for b in range(10):
        one = torch.tensor([b])
        name = aug.STRONG_OPS[int(prm.op[b])]
        torch.testing.assert_close(
            y[b : b + 1], aug._run_op(name, x[b : b + 1], prm, one), atol=1e-6, rtol=0
        )
    out = aug.strong_augment(x, _gen(9))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1


def test_determinism_with_the_same_seed() -> None:
    x = _images(b=6)
    a = aug.strong_augment(aug.photometric_distortion(x, _gen(11)), _gen(12))
    b = aug.strong_augment(aug.photometric_distortion(x, _gen(11)), _gen(12))
    c = aug.strong_augment(aug.photometric_distortion(x, _gen(13)), _gen(14))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_normalize_and_bad_input() -> None:
    x = torch.ones(1, 3, 2, 2)
    y = aug.normalize(x)
    for ch in range(3):
        expected = (1 - aug.IMAGENET_MEAN[ch]) / aug.IMAGENET_STD[ch]
        assert torch.allclose(y[0, ch], torch.full((2, 2), expected))
    with pytest.raises(ValueError, match="divide uint8 images by 255"):
        aug.strong_augment(torch.zeros(1, 3, 4, 4, dtype=torch.uint8), _gen())
    with pytest.raises(ValueError, match="weights"):
        aug.strong_augment(x, _gen(), weights=(1.0, 1.0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generator_and_cuda_images_match_cpu_application() -> None:
    x = _images(b=8, h=32, w=32)
    g = torch.Generator(device="cuda")
    g.manual_seed(0)
    weak = aug.photometric_distortion(x.cuda(), g)
    strong = aug.strong_augment(x.cuda(), g)
    assert weak.is_cuda and strong.is_cuda
    g.manual_seed(0)
    prm_w = aug.sample_photometric_params(8, g, torch.device("cpu"))
    prm_s = aug.sample_strong_params(8, g, torch.device("cpu"))
    torch.testing.assert_close(weak.cpu(), aug.apply_photometric(x, prm_w), atol=1e-5, rtol=0)
    torch.testing.assert_close(strong.cpu(), aug.apply_strong(x, prm_s), atol=1e-5, rtol=0)
    g.manual_seed(0)
    again = aug.photometric_distortion(x.cuda(), g)
    assert torch.equal(again, weak)


def test_blur_range_is_the_releases_at_512_px_and_scales_with_the_crop() -> None:
    assert aug.BlurRange.for_crop(512, 512) == aug.BlurRange(
        sigma=(0.1, 2.0), radius=(1, 3)
    )  # kernel 3-7
    assert aug.BlurRange.for_crop(64, 512) == aug.BlurRange(sigma=(0.0125, 0.25), radius=(1, 1))
    assert aug.BlurRange.for_crop(256, 512) == aug.BlurRange(sigma=(0.05, 1.0), radius=(1, 2))
    pixels = aug.BlurRange.for_crop(64, None)
    assert pixels == aug.BlurRange(sigma=(0.1, 2.0), radius=None) and pixels.max_radius == 6


def test_drawn_kernel_radius_gives_torchvisions_blur_with_that_kernel() -> None:
    x = _images(b=2, h=16, w=15)
    y = ops.gaussian_blur(x, torch.tensor([2.0, 0.3]), torch.tensor([1, 3]), max_radius=3)
    torch.testing.assert_close(y[0], TF.gaussian_blur(x[0], [3, 3], [2.0, 2.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1], TF.gaussian_blur(x[1], [7, 7], [0.3, 0.3]), atol=1e-5, rtol=0)


def test_release_blur_draws_kernels_3_5_7_evenly_and_leaves_other_draws_alone() -> None:
    release = aug.BlurRange.for_crop(512, 512)
    prm = aug.sample_strong_params(3000, _gen(8), torch.device("cpu"), blur=release)
    counts = torch.bincount(prm.radius, minlength=4)[1:].float() / 3000
    assert counts.sub(1 / 3).abs().max() < 0.04 and prm.radius.min() == 1 and prm.radius.max() == 3
    assert 0.1 <= float(prm.sigma.min()) and float(prm.sigma.max()) <= 2.0
    pixels = aug.sample_strong_params(3000, _gen(8), torch.device("cpu"))
    assert (
        pixels.radius is None
        and torch.equal(pixels.op, prm.op)
        and torch.equal(pixels.jitter, prm.jitter)
    )
