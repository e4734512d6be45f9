"""Every kind of bad sample is caught, reported together, or quarantined with skip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mkdseg.core.image_io import MaskEncoding
from mkdseg.sources.manifest import build_manifest
from mkdseg.sources.validation import (
    QUARANTINE_COLUMNS,
    DatasetValidationError,
    ReaderResult,
    Sample,
    check_sample,
    validate_samples,
)
from tests.sources.conftest import VOC_TRAIN, VOC_VAL, label_map


def _params(root: Path, on_bad: str = "fail") -> dict:
    return {
        "source": "voc",
        "root": str(root),
        "on_bad_sample": on_bad,
        "voc": {"augmented": False},
    }


def _break_voc(root: Path) -> dict[str, str]:
    """Damage one sample in each way; return id -> expected words in its reason."""
    jpg = root / "JPEGImages" / f"{VOC_TRAIN[0]}.jpg"
    data = jpg.read_bytes()
    jpg.write_bytes(data[: len(data) // 2])  # truncated JPEG
    (root / "SegmentationClass" / f"{VOC_TRAIN[1]}.png").unlink()
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(
        root / "SegmentationClass" / f"{VOC_TRAIN[2]}.png"
    )
    bad_labels = label_map(0, 21)
    bad_labels[0, 0] = 42
    Image.fromarray(bad_labels).save(root / "SegmentationClass" / f"{VOC_VAL[0]}.png")
    with (root / "ImageSets" / "Segmentation" / "train.txt").open("a") as handle:
        handle.write("2007_999999\n")
    return {
        VOC_TRAIN[0]: "cannot be decoded",
        VOC_TRAIN[1]: "mask file is missing",
        VOC_TRAIN[2]: "differs from image size",
        VOC_VAL[0]: "42",
        "2007_999999": "image file is missing",
    }


def test_fail_lists_every_bad_sample_and_says_what_to_do(voc_root: Path) -> None:
    expected = _break_voc(voc_root)
    with pytest.raises(DatasetValidationError) as info:
        build_manifest(_params(voc_root), voc_root)
    message = str(info.value)
    assert len(info.value.problems) == len(expected)
    for sample_id, words in expected.items():
        line = next(ln for ln in message.splitlines() if sample_id in ln)
        assert words in line
    assert message.rstrip().endswith("listed in the quarantine table).")
    assert "dataset.on_bad_sample: skip" in message


def test_skip_quarantines_bad_samples_and_keeps_good_ones(voc_root: Path) -> None:
    expected = _break_voc(voc_root)
    manifest, _, quarantine = build_manifest(_params(voc_root, "skip"), voc_root)
    assert list(quarantine.columns) == QUARANTINE_COLUMNS
    assert set(quarantine["id"]) == set(expected)
    assert set(manifest["id"]) == {VOC_TRAIN[3], VOC_VAL[1]}
    reasons = dict(zip(quarantine["id"], quarantine["reason"], strict=True))
    assert all(words in reasons[i] for i, words in expected.items())


def test_empty_subset_is_an_error_even_with_skip(voc_root: Path) -> None:
    for name in VOC_VAL:
        (voc_root / "SegmentationClass" / f"{name}.png").unlink()
    with pytest.raises(DatasetValidationError, match="no usable val samples"):
        build_manifest(_params(voc_root, "skip"), voc_root)


def test_duplicate_ids_are_all_quarantined(tmp_path: Path) -> None:
    from tests.sources.conftest import write_rgb

    write_rgb(tmp_path / "a.png", 0)
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "m.png")
    samples = [
        Sample("a", "train", tmp_path / "a.png", tmp_path / "m.png"),
        Sample("a", "val", tmp_path / "a.png", tmp_path / "m.png"),
        Sample("b", "val", tmp_path / "a.png", tmp_path / "m.png"),
    ]
    result = ReaderResult(samples, ["bg", "fg"], [[0, 0, 0], [1, 1, 1]], MaskEncoding())
    rows, problems = validate_samples(result, workers=1)
    assert [r["id"] for r in rows] == ["b"]
    assert [p.id for p in problems] == ["a", "a"]
    assert all("duplicate id" in p.reason for p in problems)


def test_pixel_counts_match_a_direct_count(tmp_path: Path) -> None:
    from tests.sources.conftest import write_rgb

    write_rgb(tmp_path / "a.png", 0)
    labels = label_map(3, 4)
    Image.fromarray(labels).save(tmp_path / "m.png")
    names = ["bg", "a", "b", "c"]
    row = check_sample(
        Sample("a", "train", tmp_path / "a.png", tmp_path / "m.png"), MaskEncoding(), names
    )
    assert isinstance(row, dict)
    assert (row["height"], row["width"]) == labels.shape
    for cls, name in enumerate(names):
        assert row[f"px_{name}"] == sum(int(v == cls) for v in labels.ravel())
    assert row["px_ignore"] == sum(int(v == 255) for v in labels.ravel())
    assert sum(row[f"px_{n}"] for n in names) + row["px_ignore"] == labels.size


def test_rgb_mask_with_single_channel_file_is_reported(tmp_path: Path) -> None:
    from tests.sources.conftest import write_rgb

    write_rgb(tmp_path / "a.png", 0)
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(tmp_path / "m.png")
    encoding = MaskEncoding(kind="rgb", colours=((0, 0, 0), (255, 0, 0)))
    sample = Sample("a", "train", tmp_path / "a.png", tmp_path / "m.png")
    problem = check_sample(sample, encoding, ["bg", "fg"])
    assert not isinstance(problem, dict)
    assert "mask cannot be read" in problem.reason
