"""Pascal VOC reader: lists, augmented masks, nesting, colour map, download failures."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from mkdseg.core.image_io import read_mask
from mkdseg.sources.manifest import build_manifest
from mkdseg.sources.voc import VOC_CLASSES, download_voc, read_voc, voc_colour_map
from tests.sources.conftest import VOC_TRAIN, VOC_VAL, label_map, write_rgb


def test_colour_map_matches_the_devkit() -> None:
    colours = voc_colour_map(len(VOC_CLASSES))
    assert len(VOC_CLASSES) == 21
    assert colours[0] == [0, 0, 0]
    assert colours[1] == [128, 0, 0]  # aeroplane
    assert colours[15] == [192, 128, 128]  # person
    assert colours[20] == [0, 64, 128]  # tvmonitor


def test_reads_lists_and_palette_masks(voc_root: Path) -> None:
    result = read_voc(voc_root, augmented="auto")  # no Aug folder: plain masks
    assert [s.id for s in result.samples] == VOC_TRAIN + VOC_VAL
    assert {s.subset for s in result.samples[: len(VOC_TRAIN)]} == {"train"}
    assert all(s.mask_path.parent.name == "SegmentationClass" for s in result.samples)
    manifest, meta, _ = build_manifest(
        {"source": "voc", "root": str(voc_root), "on_bad_sample": "fail"}, voc_root
    )
    row = manifest.set_index("id").loc[VOC_TRAIN[0]]
    labels = label_map(0, 21)
    assert row["px_background"] == int((labels == 0).sum())
    assert row["px_ignore"] == int((labels == 255).sum())
    assert meta["names"] == VOC_CLASSES
    assert np.array_equal(read_mask(row["mask_path"]), labels)


def test_augmented_train_uses_aug_masks_and_its_list(voc_aug_root: Path) -> None:
    lists = voc_aug_root / "ImageSets" / "Segmentation"
    result = read_voc(voc_aug_root, augmented="auto")  # no train_aug.txt: Aug stems minus val
    train = [s for s in result.samples if s.subset == "train"]
    assert [s.id for s in train] == VOC_TRAIN
    assert all(s.mask_path.parent.name == "SegmentationClassAug" for s in train)
    assert all(s.mask_path.parent.name == "SegmentationClass" for s in result.samples[len(train) :])
    (lists / "train_aug.txt").write_text(f"{VOC_TRAIN[1]}\n{VOC_TRAIN[3]}\n")
    assert [s.id for s in read_voc(voc_aug_root).samples if s.subset == "train"] == [
        VOC_TRAIN[1],
        VOC_TRAIN[3],
    ]
    plain = read_voc(voc_aug_root, augmented=False)
    assert all(s.mask_path.parent.name == "SegmentationClass" for s in plain.samples)


def test_augmented_true_without_folder_is_an_error(voc_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="SegmentationClassAug"):
        read_voc(voc_root, augmented=True)
    with pytest.raises(ValueError, match="dataset.voc.augmented"):
        read_voc(voc_root, augmented="yes")


def test_accepts_the_vocdevkit_nesting(voc_root: Path, tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    shutil.move(voc_root, outer / "VOCdevkit" / "VOC2012")
    result = read_voc(outer)
    assert len(result.samples) == len(VOC_TRAIN) + len(VOC_VAL)


def test_missing_layout_names_dataset_root(tmp_path: Path) -> None:
    (tmp_path / "JPEGImages").mkdir()
    with pytest.raises(FileNotFoundError, match=r"dataset.root .*train.txt.*Pascal VOC layout"):
        read_voc(tmp_path)


def test_download_failure_explains_manual_placement(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    fake = types.ModuleType("torchvision.datasets")
    fake.VOCSegmentation = offline
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(RuntimeError, match="Place the data by hand") as info:
        download_voc(tmp_path)
    assert "network is unreachable" in str(info.value)
    with pytest.raises(RuntimeError, match="dataset.download: false"):
        build_manifest({"source": "voc", "root": str(tmp_path), "download": True}, tmp_path)


def test_unlisted_jpegs_join_as_unlabeled_only_when_asked(voc_aug_root: Path) -> None:
    for name in ("2009_000001", "2009_000002"):  # in no list and with no mask: VOC's extra images
        write_rgb(voc_aug_root / "JPEGImages" / f"{name}.jpg", 7)
    plain = read_voc(voc_aug_root)
    assert not any(s.origin == "extra" for s in plain.samples)
    result = read_voc(voc_aug_root, unlisted_unlabeled=True)
    extra = [s for s in result.samples if s.origin == "extra"]
    assert [s.id for s in extra] == ["2009_000001", "2009_000002"]
    assert all(s.subset == "train" and s.mask_path is None for s in extra)
    listed = {s.id for s in result.samples if s.origin == "mask"}
    assert listed == set(VOC_TRAIN) | set(VOC_VAL)  # listed images are never counted twice
    with pytest.raises(ValueError, match="dataset.voc.unlisted_unlabeled must be true or false"):
        read_voc(voc_aug_root, unlisted_unlabeled="yes")


def test_unlisted_images_go_through_the_manifest_as_extra(voc_root: Path) -> None:
    write_rgb(voc_root / "JPEGImages" / "2011_000009.jpg", 9)
    params = {"source": "voc", "root": str(voc_root), "voc": {"unlisted_unlabeled": True}}
    manifest, _, _ = build_manifest(params, voc_root)
    row = manifest.set_index("id").loc["2011_000009"]
    assert row["origin"] == "extra" and row["subset"] == "train" and row["mask_path"] == ""
