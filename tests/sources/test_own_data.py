"""A folder of images with masks for only a few: unlabeled images need no mask (issue 29).

Covers the folder reader's origins (mask / no_mask / extra), validation images drawn among the
masked ones, the errors a user's folder can produce (each named, all listed at once, or
quarantined with ``skip``), and the validation cache that lets a re-run read only what changed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kedro.config import OmegaConfigLoader

from mkdseg import settings
from mkdseg.sources import validation
from mkdseg.sources.folder import read_folder
from mkdseg.sources.manifest import build_manifest
from mkdseg.sources.validation import DatasetValidationError
from tests.conftest import PROJECT_ROOT
from tests.sources.conftest import FOLDER_CLASSES, write_folder, write_rgb

N_IMAGES = 12
MASKED = ["img00", "img03", "img05", "img07", "img09", "img11"]


def own_folder(root: Path, masked: list[str] = MASKED, split_dirs: bool = False) -> Path:
    """A folder of N_IMAGES images whose masks exist for ``masked`` only."""
    write_folder(root, N_IMAGES, split_dirs=split_dirs)
    for mask in (root / "masks").rglob("*.png"):
        if mask.stem not in masked:
            mask.unlink()
    return root


def params(root: Path, **overrides: object) -> dict:
    folder = {"classes": FOLDER_CLASSES, "val_fraction": 0.34, "seed": 0}
    return {"source": "folder", "root": str(root), "folder": folder, **overrides}


def test_images_without_masks_are_unlabeled_training_images(tmp_path: Path) -> None:
    manifest, _, quarantine = build_manifest(params(own_folder(tmp_path / "f")), tmp_path)
    assert quarantine.empty
    val = manifest[manifest["subset"] == "val"]
    train = manifest[manifest["subset"] == "train"]
    assert len(val) == 2 and set(val["id"]) <= set(MASKED)  # 0.34 of the 6 masked images
    assert (val["origin"] == "mask").all()
    unmasked = train[train["origin"] == "no_mask"]
    assert sorted(unmasked["id"]) == sorted(
        f"img{i:02d}" for i in range(N_IMAGES) if f"img{i:02d}" not in MASKED
    )
    assert (unmasked["mask_path"] == "").all()
    assert (unmasked.filter(like="px_").to_numpy() == 0).all()
    assert (unmasked[["height", "width"]].to_numpy() > 0).all()  # the image itself was decoded
    masked = train[train["origin"] == "mask"]
    assert len(masked) == 4 and (masked.filter(like="px_").sum(axis=1) > 0).all()


def test_unlabeled_folder_adds_nested_images_as_extra(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f")
    write_rgb(root / "unlabeled" / "clip1" / "f000.jpg", 1)
    write_rgb(root / "unlabeled" / "clip1" / "f001.png", 2)
    write_rgb(root / "unlabeled" / "loose.JPG", 3)
    (root / "unlabeled" / "notes.txt").write_text("not an image")
    manifest, _, _ = build_manifest(params(root), tmp_path)
    extra = manifest[manifest["origin"] == "extra"]
    assert sorted(extra["id"]) == [
        "unlabeled/clip1/f000",
        "unlabeled/clip1/f001",
        "unlabeled/loose",
    ]
    assert (extra["subset"] == "train").all() and (extra["mask_path"] == "").all()


def test_split_folders_val_image_without_mask_is_named(tmp_path: Path) -> None:
    # split_dirs puts img00, img04, img08 in val; img04 and img08 have no mask here
    root = own_folder(tmp_path / "f", split_dirs=True)
    with pytest.raises(DatasetValidationError) as raised:
        build_manifest(params(root), tmp_path)
    message = str(raised.value)
    assert "2 bad sample(s)" in message
    assert (
        "img04" in message
        and "img08" in message
        and "every validation image needs a mask" in message
    )
    manifest, _, quarantine = build_manifest(params(root, on_bad_sample="skip"), tmp_path)
    assert sorted(quarantine["id"]) == ["img04", "img08"]
    assert sorted(manifest.loc[manifest["subset"] == "val", "id"]) == ["img00"]
    # a train image without a mask is no problem at all
    assert "img01" in set(manifest.loc[manifest["origin"] == "no_mask", "id"])


def test_mask_without_image_is_an_error(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f")
    (root / "images" / "img03.png").unlink()
    with pytest.raises(DatasetValidationError, match=r"img03.*mask has no image"):
        build_manifest(params(root), tmp_path)
    _, _, quarantine = build_manifest(params(root, on_bad_sample="skip"), tmp_path)
    assert list(quarantine["id"]) == ["img03"] and quarantine["path"][0].endswith("masks/img03.png")


def test_unreadable_unlabeled_image_is_listed_or_quarantined(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f")
    good = root / "unlabeled" / "good.jpg"
    write_rgb(good, 5, shape=(64, 64))
    broken = root / "unlabeled" / "broken.jpg"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # truncated JPEG
    (root / "images" / "img01.png").write_bytes(b"not a png")  # an unmasked image, unreadable
    with pytest.raises(DatasetValidationError) as raised:
        build_manifest(params(root), tmp_path)
    assert "unlabeled/broken" in str(raised.value) and "img01" in str(raised.value)
    assert "cannot be decoded" in str(raised.value)
    manifest, _, quarantine = build_manifest(params(root, on_bad_sample="skip"), tmp_path)
    assert sorted(quarantine["id"]) == ["img01", "unlabeled/broken"]
    assert "unlabeled/good" in set(manifest["id"])


def test_no_masked_training_image_is_an_error(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f", masked=["img00", "img04", "img08"], split_dirs=True)
    with pytest.raises(DatasetValidationError, match="no usable masked training samples"):
        build_manifest(params(root), tmp_path)


def test_val_is_drawn_among_masked_images_only(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f", masked=["img02", "img06"])
    for seed in range(5):
        result = read_folder(root, FOLDER_CLASSES, val_fraction=0.5, seed=seed)
        val = [s for s in result.samples if s.subset == "val"]
        assert len(val) == 1 and val[0].id in {"img02", "img06"} and val[0].has_mask


def test_masking_one_more_image_moves_at_most_one_validation_image(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f", masked=[f"img{i:02d}" for i in range(8)])
    before = {
        s.id
        for s in read_folder(root, FOLDER_CLASSES, val_fraction=0.25).samples
        if s.subset == "val"
    }
    (root / "masks" / "img08.png").write_bytes((root / "masks" / "img00.png").read_bytes())
    after = {
        s.id
        for s in read_folder(root, FOLDER_CLASSES, val_fraction=0.25).samples
        if s.subset == "val"
    }
    assert len(before) == 2 and len(after) == 2  # 0.25 of 8, then of 9 masked images
    assert len(before - after) <= 1


def test_few_validation_images_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="mkdseg.sources.manifest"):
        build_manifest(params(own_folder(tmp_path / "f")), tmp_path)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "2 validation images (evaluated on)" in said
    assert any(
        r.levelname == "WARNING" and "only 2 validation images" in r.getMessage()
        for r in caplog.records
    )


# ---------------------------------------------------------------- the validation cache
def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the id of every sample validation really opens."""
    opened: list[str] = []
    check = validation.check_sample

    def counted(sample, *args):  # noqa: ANN001, ANN202 - check_sample's own signature
        opened.append(sample.id)
        return check(sample, *args)

    monkeypatch.setattr(validation, "check_sample", counted)
    return opened


def test_rerun_reads_only_changed_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = own_folder(tmp_path / "f", [*MASKED, "img04", "img08"], split_dirs=True)
    cache = tmp_path / "cache"
    opened = _counting(monkeypatch)
    first, _, _ = build_manifest(params(root, validation_cache=str(cache)), tmp_path)
    assert len(opened) == N_IMAGES and len(list(cache.glob("folder-*.json"))) == 1
    opened.clear()
    again, _, _ = build_manifest(params(root, validation_cache=str(cache)), tmp_path)
    assert opened == [] and again.equals(first)
    # the user masks one more image: only that sample is opened again
    masks = root / "masks" / "train"
    (masks / "img01.png").write_bytes((masks / "img03.png").read_bytes())
    opened.clear()
    changed, _, _ = build_manifest(params(root, validation_cache=str(cache)), tmp_path)
    assert opened == ["img01"]
    assert changed.set_index("id").loc["img01", "origin"] == "mask"
    fresh, _, _ = build_manifest(params(root), tmp_path)
    assert changed.equals(fresh)  # cached rows are the rows a fresh read gives


def test_a_mask_edited_in_place_is_read_again_even_with_its_old_mtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = own_folder(tmp_path / "f")
    cache = tmp_path / "cache"
    first, _, _ = build_manifest(params(root, validation_cache=str(cache)), tmp_path)
    mask = root / "masks" / "img05.png"
    before = mask.stat()
    (root / "masks" / "img03.png").replace(tmp_path / "spare.png")  # img03 becomes unmasked
    (tmp_path / "spare.png").replace(mask)  # another mask, moved over img05's (mv)
    os.utime(mask, ns=(before.st_atime_ns, before.st_mtime_ns))  # as cp -p / rsync -t keep it
    opened = _counting(monkeypatch)
    changed, _, _ = build_manifest(params(root, validation_cache=str(cache)), tmp_path)
    assert {"img03", "img05"} <= set(opened)
    fresh, _, _ = build_manifest(params(root), tmp_path)
    assert changed.equals(fresh) and not changed.equals(first)
    # same size, same path and inode, old mtime: only the status-change time tells
    mask = root / "masks" / "img07.png"
    data, before = bytearray(mask.read_bytes()), mask.stat()
    data[-20] ^= 0xFF  # one byte of the last chunks: the PNG no longer decodes
    mask.write_bytes(bytes(data))
    os.utime(mask, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert mask.stat().st_size == before.st_size and mask.stat().st_ino == before.st_ino
    with pytest.raises(DatasetValidationError, match="img07"):
        build_manifest(params(root, validation_cache=str(cache)), tmp_path)


def test_each_dataset_keeps_its_own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = str(tmp_path / "cache")
    first, second = own_folder(tmp_path / "a"), own_folder(tmp_path / "b")
    build_manifest(params(first, validation_cache=cache), tmp_path)
    build_manifest(params(second, validation_cache=cache), tmp_path)
    opened = _counting(monkeypatch)
    build_manifest(params(first, validation_cache=cache), tmp_path)  # switching back: no read
    assert opened == []


def test_cache_of_other_classes_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = own_folder(tmp_path / "f")
    cache = tmp_path / "cache"
    build_manifest(params(root, validation_cache=str(cache)), tmp_path)
    opened = _counting(monkeypatch)
    other = params(root, validation_cache=str(cache))
    other["folder"]["classes"] = [*FOLDER_CLASSES, {"name": "mould", "colour": [9, 9, 9]}]
    manifest, _, _ = build_manifest(other, tmp_path)
    assert len(opened) == N_IMAGES and "px_mould" in manifest
    for stored in cache.glob("*.json"):
        stored.write_text("{not json")
    opened.clear()
    build_manifest(params(root, validation_cache=str(cache)), tmp_path)  # a broken cache: reread
    assert len(opened) == N_IMAGES


# ---------------------------------------------------------------- layouts a user gets wrong
def test_mask_suffix_case_is_accepted_and_other_mask_files_are_named(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f")
    (root / "masks" / "img05.png").rename(root / "masks" / "img05.PNG")
    (root / "masks" / "img02.jpeg").write_bytes(b"a mask saved as JPEG")
    (root / "masks" / ".DS_Store").write_bytes(b"")
    with pytest.raises(DatasetValidationError) as raised:
        build_manifest(params(root), tmp_path)
    assert "1 bad sample(s)" in str(raised.value)
    assert "img02.jpeg" in str(raised.value) and "masks must be PNG" in str(raised.value)
    manifest, _, _ = build_manifest(params(root, on_bad_sample="skip"), tmp_path)
    assert manifest.set_index("id").loc["img05", "origin"] == "mask"


def test_loose_images_beside_train_and_val_folders_are_named(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f", [*MASKED, "img04", "img08"], split_dirs=True)
    write_rgb(root / "images" / "stray.png", 4)
    with pytest.raises(DatasetValidationError, match=r"stray.*outside images/train and images/val"):
        build_manifest(params(root), tmp_path)


def test_train_folder_without_val_folder_says_what_to_do(tmp_path: Path) -> None:
    root = own_folder(tmp_path / "f", [*MASKED, "img04", "img08"], split_dirs=True)
    for path in (root / "images" / "val").iterdir():
        path.unlink()
    (root / "images" / "val").rmdir()
    with pytest.raises(FileNotFoundError, match="has images/train but no images/val: use both"):
        build_manifest(params(root), tmp_path)


def test_the_folder_environment_reads_the_exported_layout(tmp_path: Path) -> None:
    """conf/folder merged over conf/base: the folder source, `masked`, and conf/base's draw."""
    args = {**settings.CONFIG_LOADER_ARGS, "default_run_env": "folder"}
    loader = OmegaConfigLoader(
        conf_source=str(PROJECT_ROOT / "conf"), runtime_params={"data_root": str(tmp_path)}, **args
    )
    dataset, splits = loader["parameters"]["dataset"], loader["parameters"]["splits"]
    assert dataset["source"] == "folder" and dataset["root"] == f"{tmp_path}/01_raw/folder"
    assert splits == {"labeled": "masked", "draw": "uniform", "seed": 0}
    own_folder(Path(dataset["root"]))
    manifest, meta, _ = build_manifest(dataset | {"validation_cache": ""}, PROJECT_ROOT)
    assert meta["names"][0] == "background" and len(manifest) == N_IMAGES
