"""Textures generator: determinism, families, colours, parameters, reuse, safety, manifest."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter, JpegImagePlugin

from mkdseg.core.image_io import read_mask, read_raw_mask
from mkdseg.sources.manifest import build_manifest
from mkdseg.sources.synthetic import generate_synthetic
from mkdseg.sources.synthetic_drawing import boundary
from mkdseg.sources.textures import (
    STAMP_NAME,
    TEXTURE_CLASSES,
    TEXTURES,
    TextureParams,
    render_sample,
    texture,
)

SMALL = {"n_train": 4, "n_val": 2, "n_test": 0, "image_size": 32}
CLEAN = TextureParams(image_size=48, noise_std=0.0, max_blur=0.0, boundary_width=0)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_params_give_identical_bytes_and_growing_keeps_samples(tmp_path: Path) -> None:
    assert TEXTURES.generate(tmp_path / "a", SMALL)
    assert TEXTURES.generate(tmp_path / "b", SMALL)
    assert TEXTURES.generate(tmp_path / "c", {**SMALL, "n_train": 7})
    first, second, grown = (_files(tmp_path / n) for n in "abc")
    assert first == second
    assert len([k for k in first if k.startswith("JPEGImages/")]) == 6
    assert all(grown[k] == v for k, v in first.items() if k.startswith(("JPEG", "Segm")))
    assert TEXTURES.generate(tmp_path / "d", {**SMALL, "seed": 1})
    other = _files(tmp_path / "d")
    assert other["JPEGImages/train_00000.jpg"] != first["JPEGImages/train_00000.jpg"]


def test_test_split_has_its_own_stream_and_is_read_as_test(tmp_path: Path) -> None:
    """n_test adds images drawn from their own stream: train and val stay byte-identical, the
    test images differ from val's, and the manifest lists them under subset "test"."""
    assert TEXTURES.generate(tmp_path / "a", {**SMALL, "n_test": 0})
    assert TEXTURES.generate(tmp_path / "b", {**SMALL, "n_test": 3})
    without, with_test = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert all(with_test[k] == v for k, v in without.items() if k.startswith(("JPEG", "Segm")))
    assert with_test["JPEGImages/test_00000.jpg"] != with_test["JPEGImages/val_00000.jpg"]
    assert "ImageSets/Segmentation/test.txt" not in without
    params = {"source": "textures", "root": "b", "textures": {**SMALL, "n_test": 3}}
    manifest, _, quarantine = build_manifest(params, tmp_path)
    assert quarantine.empty
    assert manifest["subset"].value_counts().to_dict() == {"train": 4, "test": 3, "val": 2}
    assert sorted(manifest.loc[manifest["subset"] == "test", "id"]) == [
        f"test_{i:05d}" for i in range(3)
    ]


# sha256 (first 16 hex digits) of render_sample(TextureParams(), subset, 3)'s image and mask bytes:
# train and val as before the test split existed (commit 7a33cb0), so no reported figure's data
# changed; test from its own stream.
RENDER_HASHES = {"train": "48265ce448d9112c", "val": "d88907f68e896113", "test": "97b59f0853bdfe6c"}


@pytest.mark.parametrize("subset", sorted(RENDER_HASHES))
def test_each_subset_draws_the_same_images_as_before(subset: str) -> None:
    image, labels = render_sample(TextureParams(), subset, 3)
    digest = hashlib.sha256(image.tobytes() + labels.tobytes()).hexdigest()[:16]
    assert digest == RENDER_HASHES[subset]


def test_jpegs_keep_colour_at_full_resolution(tmp_path: Path) -> None:
    """4:4:4: at PIL's default 4:2:0 a texture of two colours of equal brightness loses its
    pattern; the synthetic set keeps the default (its bytes must not change)."""
    TEXTURES.generate(tmp_path / "t", SMALL)
    generate_synthetic(tmp_path / "s", {**SMALL, "image_size": 32})
    with Image.open(tmp_path / "t/JPEGImages/train_00000.jpg") as image:
        assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
    with Image.open(tmp_path / "s/JPEGImages/train_00000.jpg") as image:
        assert JpegImagePlugin.get_sampling(image) == 2  # 4:2:0


def test_labels_are_class_ids_and_every_family_appears() -> None:
    params = TextureParams()
    seen: set[int] = set()
    for index in range(30):
        image, labels = render_sample(params, "train", index)
        assert image.shape == (48, 48, 3) and image.dtype == np.uint8
        seen |= set(np.unique(labels).tolist())
    assert seen == {0, 1, 2, 3, 4, 255}


def test_boundary_band_is_the_probes_max_min_filter() -> None:
    """The probe marked MaxFilter(3) != MinFilter(3); boundary(labels, 1) is the same band."""
    params = TextureParams(boundary_width=0)
    for index in range(5):
        labels = render_sample(params, "val", index)[1]
        mask = Image.fromarray(labels)
        probe = np.asarray(mask.filter(ImageFilter.MaxFilter(3))) != np.asarray(
            mask.filter(ImageFilter.MinFilter(3))
        )
        assert np.array_equal(boundary(labels, 1), probe)


def test_stripes_are_constant_along_their_direction() -> None:
    rng = np.random.default_rng(0)
    vertical = texture("stripes", 32, 8.0, 0.0, rng)  # u = x: a function of the column only
    assert (vertical == vertical[:1]).all()
    assert vertical[0, 1:4].all() and not vertical[0, 5:8].any()  # sin(2 pi x / 8) > 0 for 1..3
    assert vertical[0, 9:12].all() and not vertical[0, 13:16].any()  # and a period later
    horizontal = texture("stripes", 32, 8.0, np.pi / 2, rng)  # u = y + x cos(pi/2), cos ~ 6e-17
    rows = [y for y in range(32) if y % 4]  # rows on a zero crossing flip with that tiny term
    assert (horizontal[rows] == horizontal[rows, :1]).all()
    assert horizontal[1:4].all() and not horizontal[5:8].any()


def test_checks_flip_across_half_a_period_in_both_axes() -> None:
    checks = texture("checks", 32, 8.0, 0.0, np.random.default_rng(0))
    inside = checks[1:4, 1:4]  # away from the zero crossings at multiples of 4
    assert (inside == checks[5:8, 5:8]).all() and (inside == checks[9:12, 1:4]).all()
    assert (inside != checks[1:4, 5:8]).all() and (inside != checks[5:8, 1:4]).all()


def test_dots_are_small_periodic_spots() -> None:
    dots = texture("dots", 32, 8.0, 0.0, np.random.default_rng(0))
    assert dots[4, 4] and dots[12, 20] and not dots[0, 0] and not dots[4, 0]
    assert 0.05 < dots.mean() < 0.3
    assert np.array_equal(dots[:-8, :-8], dots[8:, 8:])


def test_blotch_is_smooth_irregular_and_drawn_from_the_rng() -> None:
    first = texture("blotch", 48, 6.0, 0.0, np.random.default_rng(1))
    second = texture("blotch", 48, 6.0, 0.0, np.random.default_rng(2))
    assert not np.array_equal(first, second)
    for blotch in (first, second):
        assert 0.15 < blotch.mean() < 0.85
        same = (blotch[1:] == blotch[:-1]).mean() + (blotch[:, 1:] == blotch[:, :-1]).mean()
        assert same / 2 > 0.85  # patches, not pixel noise
    with pytest.raises(ValueError, match="unknown texture family 'waves'"):
        texture("waves", 8, 4.0, 0.0, np.random.default_rng(0))


def test_colour_carries_no_class() -> None:
    """Objects of one class get different colours in different images."""
    colours: dict[int, list[np.ndarray]] = {k: [] for k in range(1, len(TEXTURE_CLASSES))}
    for index in range(40):
        image, labels = render_sample(CLEAN, "train", index)
        for cls in set(np.unique(labels).tolist()) - {0}:
            if (labels == cls).sum() > 50:
                colours[cls].append(image[labels == cls].mean(axis=0))
    for cls, means in colours.items():
        assert len(means) >= 3, TEXTURE_CLASSES[cls]
        assert np.asarray(means).std(axis=0).mean() > 25, TEXTURE_CLASSES[cls]
    first, second = colours[1][:2]
    assert np.abs(first - second).max() > 20  # two stripes objects, two colour schemes


def test_bad_params_name_their_key_and_what_is_allowed() -> None:
    cases = {
        "image_size": ({"image_size": 8}, ">= 16"),
        "max_radius": ({"min_radius": 12.0, "max_radius": 5.0}, ">= min_radius"),
        "min_period": ({"min_period": 1.0}, ">= 2.0"),
        "max_contrast": ({"min_contrast": 90.0, "max_contrast": 10.0}, ">= min_contrast"),
        "jpeg_quality": ({"jpeg_quality": 100}, "in 1..95"),
        "n_val": ({"n_val": 0}, ">= 1"),
    }
    for key, (data, allowed) in cases.items():
        with pytest.raises(ValueError, match=rf"dataset\.textures\.{key} must be {allowed}"):
            TextureParams.from_dict(data)
    with pytest.raises(ValueError, match=r"dataset.textures has unknown keys \['n_images'\]"):
        TextureParams.from_dict({"n_images": 4})
    with pytest.raises(ValueError, match="dataset.textures.n_train must be a int"):
        TextureParams.from_dict({"n_train": 10.5})
    assert TextureParams.from_dict({"image_size": 32.0, "max_blur": "0"}).image_size == 32


def test_up_to_date_folder_is_reused(tmp_path: Path) -> None:
    root = tmp_path / "tex"
    assert TEXTURES.generate(root, SMALL)
    image = root / "JPEGImages" / "train_00000.jpg"
    before = image.stat().st_mtime_ns
    assert not TEXTURES.generate(root, TextureParams(**SMALL))
    assert image.stat().st_mtime_ns == before
    assert TEXTURES.generate(root, {**SMALL, "n_val": 1})
    assert len(list((root / "JPEGImages").iterdir())) == SMALL["n_train"] + 1
    assert [p.name for p in tmp_path.iterdir()] == ["tex"]  # no temp folders left behind


def test_foreign_folders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    with pytest.raises(FileExistsError, match=f"holds no {STAMP_NAME}.*textures generator"):
        TEXTURES.generate(tmp_path / "mine", SMALL)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"
    generate_synthetic(tmp_path / "shapes", SMALL)  # another generator's data is foreign too
    with pytest.raises(FileExistsError, match="dataset.root"):
        TEXTURES.generate(tmp_path / "shapes", SMALL)
    assert (tmp_path / "shapes" / "mkdseg_synthetic.json").is_file()


def test_textures_source_end_to_end(tmp_path: Path) -> None:
    params = {"source": "textures", "root": "data/01_raw/textures", "textures": SMALL}
    manifest, meta, quarantine = build_manifest(params, tmp_path)
    root = tmp_path / "data/01_raw/textures"
    assert meta["names"] == TEXTURE_CLASSES and len(meta["colours"]) == 5
    assert (root / STAMP_NAME).is_file() and quarantine.empty
    assert manifest["subset"].value_counts().to_dict() == {"train": 4, "val": 2}
    assert set(manifest["height"]) == {32}
    mask_path = root / "SegmentationClass" / "val_00001.png"
    assert read_raw_mask(mask_path).ndim == 2  # palette PNG, not RGB
    expected = render_sample(TextureParams(**SMALL), "val", 1)[1]
    assert np.array_equal(read_mask(mask_path), expected)
