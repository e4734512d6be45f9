"""build_manifest: columns, order, metadata, root resolution, parameter errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mkdseg.sources.manifest import build_manifest
from mkdseg.sources.synthetic import SYNTHETIC_CLASSES
from mkdseg.sources.validation import QUARANTINE_COLUMNS
from mkdseg.sources.voc import VOC_CLASSES
from tests.sources.conftest import VOC_TRAIN, VOC_VAL


def test_columns_order_and_metadata(voc_root: Path) -> None:
    manifest, meta, quarantine = build_manifest({"source": "voc", "root": "voc"}, voc_root.parent)
    expected = ["id", "subset", "image_path", "mask_path", "origin", "height", "width"]
    expected += [f"px_{name}" for name in VOC_CLASSES] + ["px_ignore"]
    assert list(manifest.columns) == expected
    assert list(manifest["subset"]) == ["train"] * len(VOC_TRAIN) + ["val"] * len(VOC_VAL)
    assert list(manifest["id"]) == sorted(VOC_TRAIN) + sorted(VOC_VAL)
    assert all(Path(p).is_absolute() and "\\" not in p for p in manifest["image_path"])
    assert manifest["px_ignore"].dtype.kind == "i"
    assert (manifest["origin"] == "mask").all()
    assert (manifest[expected[7:]].sum(axis=1) == manifest["height"] * manifest["width"]).all()
    assert quarantine.empty and list(quarantine.columns) == QUARANTINE_COLUMNS
    assert json.loads(json.dumps(meta)) == meta
    assert meta["ignore_index"] == 255 and meta["source"] == "voc"
    assert meta["root"] == voc_root.resolve().as_posix()
    assert meta["mask_encoding"]["kind"] == "index" and len(meta["colours"]) == 21


def test_synthetic_source_end_to_end(tmp_path: Path) -> None:
    params = {
        "source": "synthetic",
        "root": "data/01_raw/synthetic",
        "synthetic": {"n_train": 6, "n_val": 2, "image_size": 32},
    }
    manifest, meta, _ = build_manifest(params, tmp_path)
    assert meta["names"] == SYNTHETIC_CLASSES
    assert (tmp_path / "data/01_raw/synthetic/mkdseg_synthetic.json").is_file()
    assert manifest["subset"].value_counts().to_dict() == {"train": 6, "val": 2}
    assert set(manifest["height"]) == {32}


def test_unknown_source_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dataset.source .*'coco'.*cityscapes: Cityscapes layout"):
        build_manifest({"source": "coco", "root": "x"}, tmp_path)
    with pytest.raises(FileNotFoundError, match=r"dataset.root .*missing.*Cityscapes layout"):
        build_manifest({"source": "cityscapes", "root": "missing"}, tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset.root .*Pascal VOC layout"):
        build_manifest({"source": "voc", "root": "missing"}, tmp_path)
    with pytest.raises(ValueError, match="dataset.root is required"):
        build_manifest({"source": "voc"}, tmp_path)
    with pytest.raises(ValueError, match="dataset.on_bad_sample"):
        build_manifest({"source": "voc", "root": "x", "on_bad_sample": "ignore"}, tmp_path)
    with pytest.raises(ValueError, match="dataset.folder.classes is required"):
        (tmp_path / "f").mkdir()
        build_manifest({"source": "folder", "root": "f"}, tmp_path)
    with pytest.raises(ValueError, match=r"dataset.folder has unknown keys \['colours'\]"):
        build_manifest(
            {"source": "folder", "root": "f", "folder": {"classes": [], "colours": 1}}, tmp_path
        )
