"""Synthetic generator: determinism, reuse, classes, boundaries, layout, safety."""

from __future__ import annotations

import colorsys
import json
from pathlib import Path

import numpy as np
import pytest

from mkdseg.core.image_io import read_mask, read_raw_mask
from mkdseg.sources.synthetic import (
    STAMP_NAME,
    SYNTHETIC_CLASSES,
    SyntheticParams,
    generate_synthetic,
    read_synthetic,
    render_sample,
)

SMALL = {"n_train": 12, "n_val": 4, "image_size": 48}


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    assert generate_synthetic(tmp_path / "a", SMALL)
    assert generate_synthetic(tmp_path / "b", SMALL)
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert first == second
    assert len([k for k in first if k.startswith("JPEGImages/")]) == 16
    assert generate_synthetic(tmp_path / "c", {**SMALL, "seed": 1})
    assert (
        _files(tmp_path / "c")["JPEGImages/train_00000.jpg"] != first["JPEGImages/train_00000.jpg"]
    )


def test_samples_do_not_depend_on_dataset_size() -> None:
    small, large = SyntheticParams(**{**SMALL, "n_train": 2}), SyntheticParams(**SMALL)
    for index in range(2):
        for a, b in zip(
            render_sample(small, "train", index), render_sample(large, "train", index), strict=True
        ):
            assert np.array_equal(a, b)
    assert not np.array_equal(
        render_sample(large, "train", 0)[0], render_sample(large, "val", 0)[0]
    )


def test_existing_data_is_reused_and_changed_params_regenerate(tmp_path: Path) -> None:
    root = tmp_path / "syn"
    generate_synthetic(root, SMALL)
    image = root / "JPEGImages" / "train_00000.jpg"
    before = image.stat().st_mtime_ns
    assert not generate_synthetic(root, SMALL)
    assert image.stat().st_mtime_ns == before
    assert generate_synthetic(root, {**SMALL, "n_train": 3})
    assert len(list((root / "JPEGImages").iterdir())) == 3 + SMALL["n_val"]
    stamp = json.loads((root / STAMP_NAME).read_text())
    assert stamp["params"]["n_train"] == 3
    assert [p.name for p in tmp_path.iterdir()] == ["syn"]  # no temp folders left behind


def test_refuses_to_overwrite_foreign_data(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="dataset.root"):
        generate_synthetic(tmp_path, SMALL)
    assert (tmp_path / "mine.txt").read_text() == "precious"


def test_bad_params_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['n_images'\]"):
        SyntheticParams.from_dict({"n_images": 4})
    assert SyntheticParams.from_dict({"image_size": 64.0, "max_scale": "0.25"}).image_size == 64
    with pytest.raises(ValueError, match="dataset.synthetic.n_train must be a int"):
        SyntheticParams.from_dict({"n_train": 10.5})
    with pytest.raises(ValueError, match="min_objects"):
        SyntheticParams.from_dict({"min_objects": 3, "max_objects": 2})


def test_every_class_appears_with_balanced_objects() -> None:
    params = SyntheticParams(image_size=64)
    counts = np.zeros(len(SYNTHETIC_CLASSES), int)
    for index in range(60):
        labels = render_sample(params, "train", index)[1]
        counts += np.isin(np.arange(len(SYNTHETIC_CLASSES)), labels)
    assert (counts > 0).all()
    foreground = counts[1:]
    assert foreground.max() <= 3 * foreground.min()  # images per class: roughly even


def test_boundaries_are_ignore_bands() -> None:
    params = SyntheticParams(image_size=64)
    for index in range(5):
        labels = render_sample(params, "val", index)[1]
        assert (labels == 255).any()
        for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
            touching = (a != b) & (a != 255) & (b != 255)
            assert not touching.any(), "two classes touch without a 255 band between them"
        valid = labels[labels != 255]
        assert valid.max() < len(SYNTHETIC_CLASSES)


def test_written_files_are_voc_and_read_back(tmp_path: Path) -> None:
    result = read_synthetic(tmp_path / "syn", SMALL)
    assert result.class_names == SYNTHETIC_CLASSES
    assert [s.id for s in result.samples][:2] == ["train_00000", "train_00001"]
    mask_path = tmp_path / "syn" / "SegmentationClass" / "train_00000.png"
    assert read_raw_mask(mask_path).ndim == 2  # palette PNG, not RGB
    params = SyntheticParams(**SMALL)
    assert np.array_equal(read_mask(mask_path), render_sample(params, "train", 0)[1])
    lists = tmp_path / "syn" / "ImageSets" / "Segmentation"
    assert (lists / "val.txt").read_text().split() == [f"val_{i:05d}" for i in range(4)]


def _mean_hue_degrees(pixels: np.ndarray) -> float:
    """Circular mean hue (degrees) of RGB pixels, saturation-weighted."""
    rgb = pixels.astype(np.float64) / 255
    hsv = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
    angle = hsv[:, 0] * 2 * np.pi
    return float(
        np.degrees(
            np.arctan2((np.sin(angle) * hsv[:, 1]).mean(), (np.cos(angle) * hsv[:, 1]).mean())
        )
        % 360
    )


def test_objects_carry_their_class_hue_and_the_background_is_greyer() -> None:
    """class_hue_jitter 0 puts every object of class k at hue (k-1)*45 deg, up to lighting and
    JPEG."""
    params = SyntheticParams(image_size=64, class_hue_jitter=0.0, boundary_width=2)
    errors, object_sat, background_sat = [], [], []
    for index in range(40):
        image, labels = render_sample(params, "train", index)
        hsv = np.array([colorsys.rgb_to_hsv(*p) for p in image.reshape(-1, 3) / 255]).reshape(
            image.shape
        )
        background_sat.append(hsv[labels == 0][:, 1].mean())
        for cls in set(np.unique(labels).tolist()) - {0, 255}:
            pixels = image[labels == cls]
            if len(pixels) > 20:
                hue = _mean_hue_degrees(pixels)
                expected = (cls - 1) * 360 / (len(SYNTHETIC_CLASSES) - 1)
                errors.append(abs((hue - expected + 180) % 360 - 180))
                object_sat.append(hsv[labels == cls][:, 1].mean())
    assert len(errors) > 30 and np.median(errors) < 12  # lighting casts shift hue by a few degrees
    assert np.mean(object_sat) > np.mean(background_sat) + 0.2


def test_colour_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="class_hue_jitter"):
        SyntheticParams.from_dict({"class_hue_jitter": 200})
    with pytest.raises(ValueError, match="background_saturation"):
        SyntheticParams.from_dict({"background_saturation": 1.5})
