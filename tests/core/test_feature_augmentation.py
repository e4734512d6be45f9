"""Class feature statistics and logit augmentation against slow direct computations."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from mkdseg.core.feature_augmentation import (
    ClassFeatureStatistics,
    augment_logits,
    augmentation_table,
)

C, A = 4, 5


def _gen(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Three batches; class 2 is absent from the first, class 3 only in the last; some 255."""
    g = _gen(0)
    out = []
    for k, classes in enumerate(([0, 1, 255], [0, 1, 2, 255], [1, 2, 3])):
        n = 30 + 7 * k
        labels = torch.tensor(classes)[torch.randint(0, len(classes), (n,), generator=g)]
        feats = torch.randn(n, A, generator=g) * (1 + labels[:, None] % 7) + labels[:, None] % 7
        out.append((feats, labels))
    return out


def _explicit(feats: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    mean = torch.zeros(C, A, dtype=torch.float64)
    var = torch.zeros(C, A, dtype=torch.float64)
    count = torch.zeros(C, dtype=torch.float64)
    for c in range(C):
        x = feats[labels == c].double()
        if len(x):
            mean[c], var[c], count[c] = x.mean(0), x.var(0, unbiased=False), len(x)
    return mean, var, count


def test_estimator_equals_statistics_of_all_pixels_seen() -> None:
    stats = ClassFeatureStatistics(C, A)
    seen_f, seen_l = [], []
    for feats, labels in _batches():
        stats.update(feats, labels)
        seen_f.append(feats)
        seen_l.append(labels)
        mean, var, count = _explicit(torch.cat(seen_f), torch.cat(seen_l))
        torch.testing.assert_close(stats.count, count)
        # a batch's sums are float32 matmuls: float32's rounding, merged in float64
        torch.testing.assert_close(stats.mean, mean, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(stats.var, var, rtol=1e-5, atol=1e-7)
    assert stats.mean.dtype == torch.float64


def _resized_rows(feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The features bilinearly resized to ``size`` (float64), one row per pixel."""
    up = F.interpolate(feats.double(), size=size, mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])


@pytest.mark.parametrize("size", [(12, 16), (3, 4), (5, 11), (2, 2)])
def test_update_resized_equals_update_on_the_resized_pixels(size) -> None:
    """Finer, equal, coarser and odd grids: the statistics of the features resized to the labels'
    grid, within float32 rounding, without resizing them; ignored pixels count nowhere."""
    feats = torch.randn(2, A, 3, 4, generator=_gen(1)) * 5 + 2
    labels = torch.randint(0, C, (2, *size), generator=_gen(2))
    labels[0, 0, 0] = 255
    a, b = ClassFeatureStatistics(C, A), ClassFeatureStatistics(C, A)
    a.update_resized(feats, a.class_weights(labels))
    b.update(_resized_rows(feats, size).float(), labels.reshape(-1))
    assert torch.equal(a.count, b.count)
    torch.testing.assert_close(a.mean, b.mean, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.var, b.var, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="weights must be"):
        a.update_resized(feats, a.class_weights(labels)[:1])
    with pytest.raises(ValueError, match="labels must be in"):
        a.class_weights(torch.full((1, 2, 2), C))


def test_class_weights_one_hot_with_ignored_pixels_empty() -> None:
    labels = torch.tensor([[[0, 2], [255, 1]]])
    weights = ClassFeatureStatistics(3, A).class_weights(labels)
    expected = torch.tensor([[[1, 0], [0, 0]], [[0, 0], [0, 1]], [[0, 1], [0, 0]]]).float()
    assert torch.equal(weights[0], expected)


def test_state_dict_round_trip_and_bad_labels() -> None:
    stats = ClassFeatureStatistics(C, A)
    for feats, labels in _batches():
        stats.update(feats, labels)
    fresh = ClassFeatureStatistics(C, A)
    fresh.load_state_dict(stats.state_dict())
    assert torch.equal(fresh.var, stats.var) and torch.equal(fresh.count, stats.count)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 4\)"):
        stats.update(torch.zeros(2, A), torch.tensor([1, 7]))
    with pytest.raises(ValueError, match=r"features must be \(N, 5\)"):
        stats.update(torch.zeros(2, A + 1), torch.tensor([1, 2]))


def _naive_table(w: torch.Tensor, var: torch.Tensor, lam: float) -> torch.Tensor:
    t = torch.zeros(C, C, dtype=torch.float64)
    for y in range(C):
        for c in range(C):
            for a in range(A):
                t[y, c] += lam / 2 * (w[c, a] - w[y, a]) ** 2 * var[y, a]
    return t


def test_augmentation_table_matches_triple_loop() -> None:
    w = torch.randn(C, A, generator=_gen(3))
    var = torch.rand(C, A, generator=_gen(4)) * 2
    table = augmentation_table(w, var, 1.5)
    assert table.shape == (C, C)
    torch.testing.assert_close(
        table.double(), _naive_table(w.double(), var.double(), 1.5), atol=1e-5, rtol=1e-5
    )
    assert torch.equal(table.diagonal(), torch.zeros(C))


def test_augment_logits_matches_per_pixel_formula() -> None:
    lam = 0.7
    w = torch.randn(C, A, generator=_gen(5))
    var = torch.rand(C, A, generator=_gen(6))
    logits = torch.randn(2, C, 3, 3, generator=_gen(7), requires_grad=True)
    labels = torch.randint(0, C, (2, 3, 3), generator=_gen(8))
    labels[1, 2, :] = 255
    out = augment_logits(logits, labels, augmentation_table(w, var, lam))
    for b in range(2):
        for i in range(3):
            for j in range(3):
                y = int(labels[b, i, j])
                z = logits[b, :, i, j]
                if y == 255:
                    expected = z
                else:
                    expected = torch.stack(
                        [z[c] + lam / 2 * ((w[c] - w[y]) ** 2 * var[y]).sum() for c in range(C)]
                    )
                torch.testing.assert_close(out[b, :, i, j], expected, atol=1e-5, rtol=1e-5)
    out.sum().backward()
    assert torch.equal(logits.grad, torch.ones_like(logits))


def test_augment_logits_from_the_one_hot_equals_the_gather_bit_for_bit() -> None:
    """The step hands the estimator's one-hot to ``augment_logits``: the same values, ignored
    pixels (all-zero one-hot) unchanged, the gradient still the identity."""
    stats = ClassFeatureStatistics(C, A)
    table = augmentation_table(torch.randn(C, A, generator=_gen(9)), torch.rand(C, A), 1.5)
    logits = torch.randn(3, C, 5, 6, generator=_gen(10), requires_grad=True)
    labels = torch.randint(0, C, (3, 5, 6), generator=_gen(11))
    labels[0, 1:3] = 255
    onehot = stats.class_weights(labels)
    out = augment_logits(logits, labels, table, onehot=onehot)
    assert torch.equal(out, augment_logits(logits, labels, table))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the matmul stays float32 under autocast
        assert torch.equal(augment_logits(logits, labels, table, onehot=onehot), out)
    assert torch.equal(out[0, :, 1:3], logits[0, :, 1:3])
    out.sum().backward()
    assert torch.equal(logits.grad, torch.ones_like(logits))
    with pytest.raises(ValueError, match="onehot must be"):
        augment_logits(logits, labels, table, onehot=onehot[:, :2])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_worker(rank: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        stats = ClassFeatureStatistics(C, A)
        batches = _batches()
        for step in range(2):  # each rank sees different pixels
            feats, labels = batches[step + rank]
            stats.update(feats, labels)
        # numpy arrays travel by value: torch tensors would be shared through file descriptors
        # that vanish when this process exits before the parent reads them (seen on a slow CPU)
        queue.put(
            (rank, stats.mean.numpy().copy(), stats.var.numpy().copy(), stats.count.numpy().copy())
        )
    finally:
        dist.destroy_process_group()


def test_distributed_update_keeps_ranks_identical_and_equal_to_the_union() -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_worker, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = {
        r: tuple(torch.from_numpy(x) for x in (m, v, n))
        for r, m, v, n in (queue.get(timeout=120) for _ in procs)
    }
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for a, b in zip(results[0], results[1], strict=True):
        assert torch.equal(a, b)
    b = _batches()
    # step 1 merges batches 0+1 (rank 0, rank 1), step 2 merges batches 1+2
    seen = [b[0], b[1], b[1], b[2]]
    mean, var, count = _explicit(torch.cat([f for f, _ in seen]), torch.cat([lb for _, lb in seen]))
    torch.testing.assert_close(results[0][0], mean, rtol=1e-6, atol=1e-7)  # float32 batch sums
    torch.testing.assert_close(results[0][1], var, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(results[0][2], count)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    cpu = ClassFeatureStatistics(C, A)
    gpu = ClassFeatureStatistics(C, A).to("cuda")
    for feats, labels in _batches():
        cpu.update(feats, labels)
        gpu.update(feats.cuda(), labels.cuda())
    torch.testing.assert_close(gpu.var.cpu(), cpu.var)
    w = torch.randn(C, A, generator=_gen(9))
    logits = torch.randn(2, C, 3, 3, generator=_gen(10))
    labels = torch.randint(0, C, (2, 3, 3), generator=_gen(11))
    ref = augment_logits(logits, labels, augmentation_table(w, cpu.var.float(), 1.0))
    out = augment_logits(
        logits.cuda(), labels.cuda(), augmentation_table(w.cuda(), gpu.var.float(), 1.0)
    )
    torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=1e-5)


def test_non_finite_features_do_not_poison_the_statistics():
    """A batch with a non-finite feature (a step the NaN guard skips) is left out for every class
    (the one-hot matmul spreads it to every class's sums); the next finite batch merges."""
    stats = ClassFeatureStatistics(3, 2)
    stats.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([0, 1]))
    before = {k: v.clone() for k, v in stats.state_dict().items()}
    stats.update(torch.tensor([[float("nan"), 0.0], [5.0, 6.0]]), torch.tensor([0, 2]))
    for name, value in stats.state_dict().items():
        assert torch.equal(value, before[name]), name
    stats.update(torch.tensor([[5.0, 6.0]]), torch.tensor([2]))
    assert stats.count[2] == 1 and torch.equal(
        stats.mean[2], torch.tensor([5.0, 6.0], dtype=stats.mean.dtype)
    )


def test_merged_sums_equal_float64_sums_from_rows_and_from_maps(monkeypatch) -> None:
    """The per-class sums a batch merges (float32 matmuls, added in float64) equal the float64
    sums of all pixels within float32 rounding, whether the pixels come as rows (``update``) or
    as maps (``update_resized`` at their own size); ignored pixels count nowhere."""
    g = torch.Generator().manual_seed(3)
    feats = torch.randn(3, 4, 5, 7, generator=g) * 100 + 50
    labels = torch.randint(0, 3, (3, 5, 7), generator=g)
    labels[0, 0, :3] = 255
    flat = feats.permute(0, 2, 3, 1).reshape(-1, 4).double()
    keep = labels.reshape(-1) != 255
    expected = torch.stack(
        [
            torch.cat([m.sum()[None].double(), flat[m].sum(0), (flat[m] ** 2).sum(0)])
            for m in (keep & (labels.reshape(-1) == c) for c in range(3))
        ]
    )
    stats, merged = ClassFeatureStatistics(3, 4), []
    monkeypatch.setattr(stats, "_merge_batch", merged.append)
    stats.update(feats.permute(0, 2, 3, 1).reshape(-1, 4), labels.reshape(-1))
    stats.update_resized(feats, stats.class_weights(labels))
    assert len(merged) == 2
    for sums in merged:
        assert sums.dtype == torch.float64
        assert torch.equal(sums[:, 0], expected[:, 0])  # counts are exact
        torch.testing.assert_close(sums, expected, rtol=1e-6, atol=0.0)
