"""Datasets and the iteration sampler: geometry, padding, exact resume, rank slicing."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from mkdseg.core.config import AugmentConfig
from mkdseg.core.data import (
    EvalDataset,
    Geometry,
    LabeledDataset,
    UnlabeledDataset,
    eval_collate,
    make_eval_loader,
    make_train_loader,
)
from mkdseg.core.image_io import MaskEncoding
from mkdseg.core.sampling import IterationSampler


def geometry(crop_size: int, **changes: object) -> Geometry:
    """The spec's geometry (``AugmentConfig``'s defaults) at ``crop_size``, with ``changes``."""
    return dataclasses.replace(AugmentConfig().geometry, crop_size=crop_size, **changes)


def write_pair(folder, name: str, height: int, width: int, seed: int = 0) -> tuple[str, str]:
    """An image whose red channel encodes the column and whose mask encodes the row band."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image[..., 0] = (np.arange(width) * 255 // max(width - 1, 1)).astype(np.uint8)
    mask = np.repeat((np.arange(height) * 4 // height)[:, None], width, axis=1).astype(np.uint8)
    image_path, mask_path = folder / f"{name}.png", folder / f"{name}_mask.png"
    Image.fromarray(image).save(image_path)
    Image.fromarray(mask, mode="L").save(mask_path)
    return str(image_path), str(mask_path)


@pytest.fixture
def pairs(tmp_path):
    return [write_pair(tmp_path, f"s{i}", 20 + 4 * i, 30, seed=i) for i in range(3)]


def test_sampler_epochs_are_permutations() -> None:
    sampler = IterationSampler(num_samples=10, batch_size=5, seed=3, total_iterations=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 4
    indices = [i for batch in batches for i, _ in batch]
    assert sorted(indices[:10]) == list(range(10)) and sorted(indices[10:]) == list(range(10))
    assert indices[:10] != indices[10:]  # a new permutation each epoch
    seeds = [s for batch in batches for _, s in batch]
    assert len(set(seeds)) == len(seeds)


def test_sampler_resume_is_exact() -> None:
    full = list(IterationSampler(7, 3, seed=1, total_iterations=9))
    resumed = list(IterationSampler(7, 3, seed=1, start_iteration=5, total_iterations=9))
    assert resumed == full[5:]
    assert list(IterationSampler(7, 3, seed=2, total_iterations=9)) != full


def test_ranks_take_disjoint_slices_of_the_global_batch() -> None:
    single = list(IterationSampler(12, 4, seed=0, total_iterations=3))
    ranks = [list(IterationSampler(12, 2, 0, 0, 3, rank=r, world_size=2)) for r in range(2)]
    for t in range(3):
        global_indices = [i for r in range(2) for i, _ in ranks[r][t]]
        assert global_indices == [i for i, _ in single[t]]
        assert not {i for i, _ in ranks[0][t]} & {i for i, _ in ranks[1][t]}


def test_sampler_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="empty"):
        IterationSampler(0, 2, 0)
    with pytest.raises(ValueError, match="rank"):
        IterationSampler(5, 2, 0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="total_iterations"):
        IterationSampler(5, 2, 0, start_iteration=4, total_iterations=3)


def test_labeled_geometry_is_consistent(pairs) -> None:
    dataset = LabeledDataset(pairs, MaskEncoding(), geometry(16, hflip_prob=0.5))
    for seed in range(6):
        image, mask = dataset[(0, seed)]
        assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)
        assert mask.dtype == torch.int64 and mask.shape == (16, 16)
        again_image, again_mask = dataset[(0, seed)]
        assert torch.equal(image, again_image) and torch.equal(mask, again_mask)
        real = mask != 255
        # mask rows are bands that never decrease downwards, in every real column
        column = mask[:, int(real.any(0).nonzero()[0])]
        column = column[column != 255]
        assert torch.all(column[1:] >= column[:-1])
        assert torch.all(image[:, ~real] == 0)


def test_flip_and_padding(tmp_path) -> None:
    pair = write_pair(tmp_path, "small", 8, 10)
    no_flip = LabeledDataset(
        [pair], MaskEncoding(), geometry(16, scale_range=(1.0, 1.0), hflip_prob=0.0)
    )
    flip = LabeledDataset(
        [pair], MaskEncoding(), geometry(16, scale_range=(1.0, 1.0), hflip_prob=1.0)
    )
    image, mask = no_flip[(0, 0)]
    assert torch.all(mask[8:] == 255) and torch.all(mask[:, 10:] == 255)
    assert torch.all(image[:, 8:] == 0) and torch.all(image[:, :, 10:] == 0)
    source = np.array(Image.open(pair[0]))
    assert torch.equal(image[:, :8, :10], torch.from_numpy(source).permute(2, 0, 1))
    flipped, flipped_mask = flip[(0, 0)]
    assert torch.equal(flipped, image.flip(-1)) and torch.equal(flipped_mask, mask.flip(-1))


def test_base_size_sets_the_long_side(tmp_path) -> None:
    pair = write_pair(tmp_path, "wide", 10, 20)
    dataset = LabeledDataset(
        [pair], MaskEncoding(), geometry(64, base_size=40, scale_range=(1.0, 1.0))
    )
    _, mask = dataset[(0, 0)]
    real = mask != 255
    assert int(real.any(0).sum()) == 40 and int(real.any(1).sum()) == 20


def test_unlabeled_valid_marks_real_pixels(pairs) -> None:
    dataset = UnlabeledDataset([p[0] for p in pairs], geometry(48, scale_range=(1.0, 1.0)))
    image, valid = dataset[(1, 5)]
    assert image.shape == (3, 48, 48) and valid.dtype == torch.bool
    assert int(valid.sum()) == 24 * 30
    labeled = LabeledDataset(pairs, MaskEncoding(), geometry(48, scale_range=(1.0, 1.0)))
    labeled_image, mask = labeled[(1, 5)]
    assert torch.equal(valid, mask != 255) and torch.equal(image, labeled_image)


def test_size_mismatch_names_files(tmp_path) -> None:
    image, _ = write_pair(tmp_path, "a", 10, 12)
    _, other_mask = write_pair(tmp_path, "b", 11, 12)
    with pytest.raises(ValueError, match="b_mask.png"):
        LabeledDataset([(image, other_mask)], MaskEncoding(), geometry(8))[(0, 0)]


def test_eval_dataset_and_collate(pairs) -> None:
    dataset = EvalDataset(pairs, MaskEncoding(), long_side=15)
    image, mask, index = dataset[2]
    assert image.shape == (3, 14, 15) and mask.shape == (28, 30) and index == 2
    images, masks, indices = next(iter(make_eval_loader(dataset)))
    assert images.shape == (1, 3, 10, 15) and masks.shape == (1, 20, 30)
    assert indices.tolist() == [0]
    unchanged = EvalDataset(pairs, MaskEncoding(), long_side=None)[1][0]
    assert unchanged.shape == (3, 24, 30)
    with pytest.raises(ValueError, match="batch_size of 1"):
        eval_collate([dataset[0], dataset[1]])


def test_train_loader_resumes_exactly(pairs) -> None:
    dataset = LabeledDataset(pairs, MaskEncoding(), geometry(12))
    full = list(
        make_train_loader(dataset, 2, seed=4, start_iteration=0, total_iterations=4, num_workers=0)
    )
    resumed = list(
        make_train_loader(dataset, 2, seed=4, start_iteration=2, total_iterations=4, num_workers=0)
    )
    assert len(full) == 4 and len(resumed) == 2
    assert full[0][0].shape == (2, 3, 12, 12) and full[0][1].shape == (2, 12, 12)
    for (img_a, mask_a), (img_b, mask_b) in zip(full[2:], resumed, strict=True):
        assert torch.equal(img_a, img_b) and torch.equal(mask_a, mask_b)


def test_worker_processes_give_the_same_batches(pairs) -> None:
    dataset = LabeledDataset(pairs, MaskEncoding(), geometry(12))
    args = dict(batch_size=2, seed=9, start_iteration=1, total_iterations=3)
    in_process = list(make_train_loader(dataset, num_workers=0, **args))
    loader = make_train_loader(dataset, num_workers=1, **args)
    assert loader.persistent_workers
    for (img_a, mask_a), (img_b, mask_b) in zip(in_process, loader, strict=True):
        assert torch.equal(img_a, img_b) and torch.equal(mask_a, mask_b)


def test_cached_datasets_decode_each_file_once_and_give_the_same_samples(
    pairs, monkeypatch
) -> None:
    from mkdseg.core import data

    reads: list[str] = []
    real_read = data.read_image
    monkeypatch.setattr(data, "read_image", lambda path: reads.append(path) or real_read(path))
    g = geometry(16, hflip_prob=0.5, scale_range=(0.75, 1.25))
    plain = LabeledDataset(pairs, MaskEncoding(), g)
    cached = LabeledDataset(pairs, MaskEncoding(), g, cache_mb=1.0)
    for seed in range(4):  # every sample twice per seed: the second read is a cache hit
        for index in (0, 1, 2, 1, 0):
            for a, b in zip(plain[(index, seed)], cached[(index, seed)], strict=True):
                assert torch.equal(a, b)
    assert len(reads) == 4 * 5 + 3  # the plain dataset reads every time, the cached one once each
    unlabeled = UnlabeledDataset([p for p, _ in pairs], g, cache_mb=1.0)
    first = [unlabeled[(i, 7)] for i in range(3)]
    assert all(
        torch.equal(a, b)
        for s, t in zip(first, (unlabeled[(i, 7)] for i in range(3)), strict=True)
        for a, b in zip(s, t, strict=True)
    )
    assert all(not a.flags.writeable for arrays in unlabeled.cache.items.values() for a in arrays)


def test_decoded_cache_keeps_to_its_limit_and_rejects_a_negative_one() -> None:
    from mkdseg.core.data import DecodedCache

    one_mb = np.zeros((1024, 1024), dtype=np.uint8)
    cache = DecodedCache(limit_mb=2.5)
    for key in range(4):
        assert cache.get(key, lambda: (one_mb.copy(),))[0].nbytes == one_mb.nbytes
    assert sorted(cache.items) == [0, 1] and cache.used == 2 * one_mb.nbytes
    assert DecodedCache(0).get(0, lambda: (one_mb.copy(),)) and not DecodedCache(0).items
    with pytest.raises(ValueError, match="loader_cache_mb"):
        DecodedCache(-1)


def test_geometry_at_its_own_size_crops_and_flips_the_pixels_unchanged() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (16, 16), dtype=np.uint8)
    g = geometry(16, scale_range=(1.0, 1.0), hflip_prob=0.5)
    for seed in range(4):
        out_image, out_mask = g.apply(image, mask, np.random.default_rng(seed))
        flipped = not np.array_equal(out_mask, mask)
        assert np.array_equal(out_image, image[:, ::-1] if flipped else image)
        assert np.array_equal(out_mask, mask[:, ::-1] if flipped else mask)
