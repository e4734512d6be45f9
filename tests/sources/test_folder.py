"""Folder reader: seeded val split, train/val subfolders, index and rgb masks, param errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mkdseg.sources.folder import read_folder
from mkdseg.sources.manifest import build_manifest
from tests.sources.conftest import FOLDER_CLASSES, label_map, write_folder


def test_seeded_val_fraction(folder_root: Path) -> None:
    first = read_folder(folder_root, FOLDER_CLASSES, val_fraction=0.3, seed=1)
    again = read_folder(folder_root, FOLDER_CLASSES, val_fraction=0.3, seed=1)
    other = read_folder(folder_root, FOLDER_CLASSES, val_fraction=0.3, seed=2)
    val = [s.id for s in first.samples if s.subset == "val"]
    assert len(val) == 3
    assert val == [s.id for s in again.samples if s.subset == "val"]
    assert val != [s.id for s in other.samples if s.subset == "val"]


def test_split_subfolders_are_used(tmp_path: Path) -> None:
    root = write_folder(tmp_path / "f", split_dirs=True)
    result = read_folder(root, FOLDER_CLASSES)
    val = sorted(s.id for s in result.samples if s.subset == "val")
    assert val == ["img00", "img04", "img08"]
    assert all(s.mask_path.parent.name == s.subset for s in result.samples)


def test_rgb_masks_decode_to_the_same_counts(tmp_path: Path) -> None:
    def manifest(root: Path, encoding: str):
        params = {
            "source": "folder",
            "root": str(root),
            "folder": {"classes": FOLDER_CLASSES, "mask_encoding": encoding, "seed": 0},
        }
        return build_manifest(params, tmp_path)[0]

    index = manifest(write_folder(tmp_path / "i"), "index")
    rgb = manifest(write_folder(tmp_path / "r", rgb=True), "rgb")
    columns = ["id", "subset", "px_background", "px_leaf", "px_rust", "px_ignore"]
    assert index[columns].equals(rgb[columns])
    labels = label_map(0, 3)
    labels[labels == 255] = 0
    row = index.set_index("id").loc["img00"]
    assert row["px_background"] == int((labels == 0).sum()) and row["px_ignore"] == 0


def test_duplicate_stems_are_caught(folder_root: Path) -> None:
    (folder_root / "images" / "img01.jpg").write_bytes(
        (folder_root / "images" / "img01.png").read_bytes()
    )
    params = {"source": "folder", "root": str(folder_root), "on_bad_sample": "skip",
              "folder": {"classes": FOLDER_CLASSES}}  # fmt: skip
    manifest, _, quarantine = build_manifest(params, folder_root)
    assert list(quarantine["id"]) == ["img01", "img01"]
    assert "img01" not in set(manifest["id"])


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"classes": []}, "non-empty list"),
        ({"classes": [{"name": "a", "colour": [0, 0]}]}, r"classes\[0\]"),
        ({"classes": [{"name": "a", "colour": [0, 0, 0]}] * 2}, "repeated names"),
        ({"classes": FOLDER_CLASSES, "mask_encoding": "palette"}, "mask_encoding"),
        ({"classes": FOLDER_CLASSES, "val_fraction": 1.5}, "val_fraction"),
    ],
)
def test_bad_parameters(folder_root: Path, options: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        read_folder(folder_root, **options)
