"""Per-class sums of resized feature maps, taken at the maps' own resolution."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mkdseg.core import resized_moments
from mkdseg.core.resized_moments import (
    bandwidth,
    class_sums_after_resizing,
    offsets,
    pulled_class_sums,
    resize_matrix,
    resize_plan,
    resized_class_sums,
)

# finer (the texture setting's 4x), equal, coarser (the release's 0.5) and odd grids
SIZES = [
    ((6, 6), (24, 24)),
    ((5, 7), (5, 7)),
    ((8, 8), (4, 4)),
    ((5, 7), (13, 9)),
    ((7, 5), (3, 11)),
]


def _explicit(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """float64: resize first, then weigh every pixel."""
    up = F.interpolate(features.double(), size=weights.shape[2:], mode="bilinear")
    w = weights.double()
    return torch.cat(
        [torch.einsum("bchw,bahw->ca", w, up), torch.einsum("bchw,bahw->ca", w, up * up)], 1
    )


@pytest.mark.parametrize(("source", "grid"), SIZES)
def test_sums_equal_those_of_the_resized_maps(source, grid) -> None:
    g = torch.Generator().manual_seed(sum(source) + sum(grid))
    features = torch.randn(3, 4, *source, generator=g) * 4 + 2
    weights = torch.rand(3, 5, *grid, generator=g)  # any weights, not only one-hot
    weights[0, 1] = 0.0  # a class absent from an image
    expected = _explicit(features, weights)
    for dtype, tolerance in ((torch.float32, (2e-6, 1e-4)), (torch.float64, (1e-12, 1e-10))):
        plan = resize_plan(grid, source, features.device, dtype)
        for got in (
            resized_class_sums(features, weights, dtype),
            pulled_class_sums(features, weights, plan),
            class_sums_after_resizing(features, weights, dtype),
        ):
            assert got.shape == (5, 8) and got.dtype == dtype
            torch.testing.assert_close(got.double(), expected, rtol=tolerance[0], atol=tolerance[1])


def test_pulled_back_only_where_the_grid_outnumbers_the_maps(monkeypatch) -> None:
    """conf/base's 4x grid is pulled back; the release's 0.5x and an equal grid resize first."""
    calls = []
    monkeypatch.setattr(resized_moments, "pulled_class_sums", lambda *a: calls.append("pulled"))
    monkeypatch.setattr(
        resized_moments, "class_sums_after_resizing", lambda *a: calls.append("resized")
    )
    features = torch.zeros(2, 3, 12, 12)
    for grid in ((48, 48), (6, 6), (12, 12)):
        resized_class_sums(features, torch.zeros(2, 4, *grid), torch.float32)
    assert calls == ["pulled", "resized", "resized"]


def test_bf16_features_are_summed_as_their_float32_values() -> None:
    g = torch.Generator().manual_seed(1)
    features = torch.randn(2, 3, 4, 4, generator=g).bfloat16()
    weights = torch.rand(2, 2, 16, 16, generator=g)
    got = resized_class_sums(features, weights, torch.float32)
    torch.testing.assert_close(
        got.double(), _explicit(features.float(), weights), rtol=2e-6, atol=1e-4
    )


def test_resize_matrix_is_the_interpolation_along_one_axis() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(1, 1, 5, 7, generator=g, dtype=torch.float64)
    ry, rx = resize_matrix(13, 5, x.device), resize_matrix(3, 7, x.device)
    torch.testing.assert_close(
        ry @ x[0, 0] @ rx.T, F.interpolate(x, size=(13, 3), mode="bilinear")[0, 0]
    )
    assert bandwidth(resize_matrix(48, 12, x.device)) == 1  # bilinear blends neighbours
    assert bandwidth(resize_matrix(6, 6, x.device)) == 0  # same size: the identity
    assert torch.equal(resize_matrix(6, 6, x.device), torch.eye(6, dtype=torch.float64))


def test_offsets_take_one_of_each_symmetric_pair() -> None:
    assert offsets(0) == [(0, 0, 1.0)]
    assert offsets(1) == [(0, 0, 1.0), (0, 1, 2.0), (1, -1, 2.0), (1, 0, 2.0), (1, 1, 2.0)]
    # every (d, e) in the 3x3 neighbourhood is counted once with its mirror
    assert sum(f for *_, f in offsets(1)) == 9


def test_a_batch_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same batch"):
        resized_class_sums(torch.zeros(2, 3, 4, 4), torch.zeros(3, 2, 8, 8), torch.float32)
