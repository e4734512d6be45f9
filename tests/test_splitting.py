"""Labeled/unlabeled splits: counts, stratification, split files, errors, stats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mkdseg.splitting import TOTAL_ROW, generate_split, make_split, split_counts, split_summary

CLASSES = ["background", "cat", "dog", "rare"]


def _manifest(n_train: int = 64, n_val: int = 8, seed: int = 0) -> pd.DataFrame:
    """Train images with random class pixels; 'rare' is in only three images."""
    rng = np.random.default_rng(seed)
    rows = []
    for subset, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            px = rng.integers(0, 400, len(CLASSES)) * (rng.random(len(CLASSES)) < 0.6)
            px[0] = 1000
            px[3] = 50 if subset == "train" and i in (5, 17, 40) else 0
            sid = f"{subset}{i:03d}"
            row = {
                "id": sid,
                "subset": subset,
                "image_path": f"/d/JPEGImages/{sid}.jpg",
                "mask_path": f"/d/SegmentationClass/{sid}.png",
                "height": 32,
                "width": 32,
            }
            row.update({f"px_{c}": int(v) for c, v in zip(CLASSES, px, strict=True)})
            row["px_ignore"] = 0
            rows.append(row)
    return pd.DataFrame(rows)


def test_fraction_and_count(tmp_path: Path) -> None:
    manifest = _manifest()
    labeled, unlabeled, val, stats = make_split(manifest, CLASSES, 0.0625, 0, tmp_path)
    assert len(labeled) == 4 and len(unlabeled) == 60 and len(val) == 8
    assert set(labeled).isdisjoint(unlabeled)
    assert sorted(labeled + unlabeled) == sorted(manifest.loc[manifest.subset == "train", "id"])
    assert len(make_split(manifest, CLASSES, 10, 0, tmp_path)[0]) == 10
    assert len(make_split(manifest, CLASSES, "10", 0, tmp_path)[0]) == 10
    assert len(make_split(manifest, CLASSES, "1/8", 0, tmp_path)[0]) == 8
    assert len(make_split(manifest, CLASSES, 0.001, 0, tmp_path)[0]) == 1
    assert len(make_split(manifest, CLASSES, 1.0, 0, tmp_path)[1]) == 0


def test_class_balanced_draw_is_deterministic_and_covers_rare_classes(tmp_path: Path) -> None:
    manifest = _manifest()
    for seed in range(5):
        labeled, *_ = make_split(manifest, CLASSES, 4, seed, tmp_path, "class_balanced")
        assert labeled == make_split(manifest, CLASSES, 4, seed, tmp_path, "class_balanced")[0]
        assert set(labeled) & {"train005", "train017", "train040"}
    assert (
        make_split(manifest, CLASSES, 4, 0, tmp_path)[0]
        != make_split(manifest, CLASSES, 4, 1, tmp_path)[0]
    )


def test_best_of_candidates_is_closer_than_random_draws() -> None:
    pixels = (
        _manifest(n_train=200).query("subset == 'train'")[[f"px_{c}" for c in CLASSES]].to_numpy()
    )
    target = pixels.sum(0) / pixels.sum()

    def distance(chosen: np.ndarray) -> float:
        return float(np.abs(pixels[chosen].sum(0) / pixels[chosen].sum() - target).sum())

    rng = np.random.default_rng(0)
    random_draws = [distance(rng.choice(200, 12, replace=False)) for _ in range(50)]
    chosen = generate_split(pixels, 12, seed=0)
    assert chosen.sum() == 12
    assert distance(chosen) < np.median(random_draws)


def test_split_files_in_both_formats(tmp_path: Path) -> None:
    manifest = _manifest()
    (tmp_path / "ids.txt").write_text("train003\ntrain001\n\ntrain003\n")
    labeled, unlabeled, _, _ = make_split(manifest, CLASSES, "ids.txt", 0, tmp_path)
    assert labeled == ["train001", "train003"] and len(unlabeled) == 62
    (tmp_path / "92").write_text(
        "JPEGImages/train007.jpg SegmentationClass/train007.png\n"
        "JPEGImages/train009.jpg SegmentationClass/train009.png\n"
    )
    assert make_split(manifest, CLASSES, "92", 0, tmp_path)[0] == ["train007", "train009"]
    assert make_split(manifest, CLASSES, str(tmp_path / "92"), 0, Path("/"))[0] == [
        "train007",
        "train009",
    ]


@pytest.mark.parametrize(
    ("labeled", "content", "words"),
    [
        (
            "split.txt",
            "train001\nnope_1\nval002\n",
            r"2 sample\(s\) that are not in the training set: 'nope_1', 'val002'",
        ),
        ("split.txt", "\n  \n", "is empty"),
        ("absent.txt", None, "not found"),
        (0.0, None, r"fraction 0.0 must be in \(0, 1\]"),
        (1.5, None, "fraction 1.5"),
        (0, None, "count 0"),
        (65, None, "count 65 must be between 1 and the 64"),
        ("1/0", None, "divides by zero"),
    ],
)
def test_errors_name_the_parameter(
    tmp_path: Path, labeled: object, content: str | None, words: str
) -> None:
    if content is not None:
        (tmp_path / str(labeled)).write_text(content)
    with pytest.raises(ValueError, match=rf"^splits.labeled: .*{words}"):
        make_split(_manifest(), CLASSES, labeled, 0, tmp_path)


def test_stats_and_summary_match_direct_sums(tmp_path: Path) -> None:
    manifest = _manifest()
    labeled, unlabeled, val, stats = make_split(manifest, CLASSES, 8, 3, tmp_path)
    train = manifest[manifest.subset == "train"]
    per_class = stats[stats["class"] != TOTAL_ROW].set_index("class")
    for name in CLASSES:
        column = f"px_{name}"
        assert per_class.loc[name, "pixels_all"] == train[column].sum()
        assert (
            per_class.loc[name, "pixels_labeled"] == train.loc[train.id.isin(labeled), column].sum()
        )
    assert per_class["share_all"].sum() == pytest.approx(1.0)
    assert per_class["share_labeled"].sum() == pytest.approx(1.0)
    total = stats.set_index("class").loc[TOTAL_ROW]
    assert total["images_labeled"] == 8 and total["images_all"] == 64
    summary = split_summary(split_counts(manifest, labeled, unlabeled, val), stats)
    assert (
        summary["n_labeled"] == 8.0 and summary["n_unlabeled"] == 56.0 and summary["n_val"] == 8.0
    )
    assert summary["n_unlabeled_masked"] == 56.0 and summary["n_unlabeled_no_mask"] == 0.0
    expected = sum(abs(summary[f"share_labeled.{c}"] - summary[f"share_all.{c}"]) for c in CLASSES)
    assert summary["share_l1_distance"] == pytest.approx(expected)
    assert all(isinstance(v, float) for v in summary.values())
    assert len(summary) == 6 + 2 * len(CLASSES) + 1


def test_unimatch_cityscapes_lines_map_to_city_ids(tmp_path: Path) -> None:
    manifest = _manifest(n_train=2, n_val=1)
    names = ["aachen/aachen_000000_000019", "bochum/bochum_000000_000313"]
    manifest.loc[:1, "id"] = names
    manifest.loc[:1, "image_path"] = [
        f"/data/cs/leftImg8bit/train/{n}_leftImg8bit.png" for n in names
    ]
    (tmp_path / "s.txt").write_text(
        "leftImg8bit/train/bochum/bochum_000000_000313_leftImg8bit.png "
        "gtFine/train/bochum/bochum_000000_000313_gtFine_labelIds.png\n"
    )
    labeled, unlabeled, _, _ = make_split(manifest, CLASSES, "s.txt", 0, tmp_path)
    assert labeled == [names[1]] and unlabeled == [names[0]]


# ---------------------------------------------------------------- images without masks
def _own_manifest() -> pd.DataFrame:
    """_manifest() where train020..train063 have no mask (a user's own data): origin no_mask,
    no mask path and zero pixel counts, as ingestion writes them."""
    manifest = _manifest()
    unmasked = manifest["subset"].eq("train") & (manifest.index >= 20)
    manifest.insert(4, "origin", np.where(unmasked, "no_mask", "mask"))
    manifest.loc[unmasked, "mask_path"] = ""
    manifest.loc[unmasked, [f"px_{c}" for c in CLASSES]] = 0
    return manifest


def test_masked_labels_every_masked_image_and_only_those(tmp_path: Path) -> None:
    manifest = _own_manifest()
    labeled, unlabeled, val, _ = make_split(manifest, CLASSES, "masked", 0, tmp_path)
    assert labeled == [f"train{i:03d}" for i in range(20)]
    assert unlabeled == [f"train{i:03d}" for i in range(20, 64)]
    counts = split_counts(manifest, labeled, unlabeled, val)
    assert counts == {
        "n_labeled": 20,
        "n_unlabeled": 44,
        "n_val": 8,
        "n_unlabeled_masked": 0,
        "n_unlabeled_no_mask": 44,
        "n_unlabeled_extra": 0,
    }


@pytest.mark.parametrize("draw", ["uniform", "class_balanced"])
def test_fractions_and_counts_draw_among_masked_images(tmp_path: Path, draw: str) -> None:
    manifest = _own_manifest()
    labeled, unlabeled, _, stats = make_split(manifest, CLASSES, 0.25, 1, tmp_path, draw)
    assert len(labeled) == 5 and set(labeled) <= {f"train{i:03d}" for i in range(20)}
    assert len(unlabeled) == 59
    assert stats.set_index("class").loc[TOTAL_ROW, "images_all"] == 20  # masked images only
    with pytest.raises(ValueError, match="between 1 and the 20 masked training images"):
        make_split(manifest, CLASSES, 21, 0, tmp_path, draw)


def test_uniform_draw_reads_no_mask(tmp_path: Path) -> None:
    """The proof for splits: pixel counts (what ingestion read from the masks) do not matter."""
    manifest = _manifest()
    scrambled = manifest.copy()
    columns = [f"px_{c}" for c in CLASSES]
    scrambled[columns] = np.random.default_rng(7).integers(0, 10**6, scrambled[columns].shape)
    for seed in range(3):
        assert (
            make_split(manifest, CLASSES, 8, seed, tmp_path)[:3]
            == make_split(scrambled, CLASSES, 8, seed, tmp_path)[:3]
        )
    assert (
        make_split(manifest, CLASSES, 8, 0, tmp_path)[0]
        != make_split(manifest, CLASSES, 8, 1, tmp_path)[0]
    )
    changes = (
        make_split(manifest, CLASSES, 8, 0, tmp_path, "class_balanced")[0]
        != make_split(scrambled, CLASSES, 8, 0, tmp_path, "class_balanced")[0]
    )
    assert changes  # the class-balanced draw does read them, as its name says


def test_split_file_naming_an_unmasked_image_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "ids.txt").write_text("train001\ntrain030\n")
    with pytest.raises(ValueError, match=r"1 training image\(s\) without a mask: 'train030'"):
        make_split(_own_manifest(), CLASSES, "ids.txt", 0, tmp_path)


def test_unknown_draw_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="splits.draw must be one of"):
        make_split(_manifest(), CLASSES, 4, 0, tmp_path, "stratified")
