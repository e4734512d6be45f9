"""Cityscapes reader: ids, the 34 -> 19 label mapping, pixel counts after mapping."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkdseg.core.image_io import MaskEncoding
from mkdseg.sources.cityscapes import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_COLOURS,
    cityscapes_lut,
    read_cityscapes,
)
from mkdseg.sources.manifest import build_manifest
from tests.sources.conftest import HEIGHT, WIDTH, write_rgb

STANDARD = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
            25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # fmt: skip


def test_lut_is_the_standard_table() -> None:
    lut = cityscapes_lut()
    assert len(lut) == 256
    for label_id in range(256):
        assert lut[label_id] == STANDARD.get(label_id, 255)
    assert len(CITYSCAPES_CLASSES) == len(CITYSCAPES_COLOURS) == 19
    assert CITYSCAPES_CLASSES[13] == "car" and CITYSCAPES_COLOURS[0] == [128, 64, 128]


def test_reads_cities_and_maps_label_ids(cityscapes_root: Path) -> None:
    result = read_cityscapes(cityscapes_root)
    assert [(s.subset, s.id) for s in result.samples] == [
        ("train", "aachen/aachen_000000_000019"),
        ("train", "bochum/bochum_000000_000313"),
        ("val", "frankfurt/frankfurt_000000_000294"),
    ]
    manifest, meta, quarantine = build_manifest(
        {"source": "cityscapes", "root": str(cityscapes_root)}, cityscapes_root
    )
    assert quarantine.empty
    assert MaskEncoding.from_dict(meta["mask_encoding"]).kind == "lut"
    row = manifest.iloc[0]
    assert (row["height"], row["width"]) == (HEIGHT, WIDTH)
    assert row["px_sky"] == 4 * WIDTH
    assert row["px_car"] == 2 * 5
    assert row["px_ignore"] == 2 * 3 + (HEIGHT - 8) * 2
    assert row["px_road"] == HEIGHT * WIDTH - row["px_sky"] - row["px_car"] - row["px_ignore"]


def test_missing_folders_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="leftImg8bit.*gtFine"):
        read_cityscapes(tmp_path)


def test_train_extra_images_are_unlabeled_and_need_no_mask(cityscapes_root: Path) -> None:
    extra = cityscapes_root / "leftImg8bit" / "train_extra" / "augsburg"
    for name in ("augsburg_000000_000000", "augsburg_000000_000001"):
        write_rgb(extra / f"{name}_leftImg8bit.png", 3)
    assert not any(s.origin == "extra" for s in read_cityscapes(cityscapes_root).samples)
    params = {
        "source": "cityscapes",
        "root": str(cityscapes_root),
        "cityscapes": {"train_extra": True},
    }
    manifest, _, quarantine = build_manifest(params, cityscapes_root)
    assert quarantine.empty
    rows = manifest[manifest["origin"] == "extra"]
    assert list(rows["id"]) == [
        "augsburg/augsburg_000000_000000",
        "augsburg/augsburg_000000_000001",
    ]
    assert (rows["subset"] == "train").all() and (rows["mask_path"] == "").all()
    assert int((manifest["origin"] == "mask").sum()) == 3  # the fine-annotated images as before


def test_train_extra_asked_for_but_missing_says_what_to_extract(cityscapes_root: Path) -> None:
    with pytest.raises(FileNotFoundError, match="leftImg8bit_trainextra.zip"):
        read_cityscapes(cityscapes_root, train_extra=True)
