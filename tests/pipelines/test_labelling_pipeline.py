"""Labelling pipeline (DataCatalog + SequentialRunner): the tiny trained networks rank every
unlabeled image and propose masks that round-trip through the dataset's mask encoding."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner

from mkdseg.catalog import ProposalsDataset, TableDataset
from mkdseg.core.image_io import MaskEncoding, read_mask
from mkdseg.labelling import rank_pool
from mkdseg.pipelines import labelling
from tests.pipelines.conftest import TINY_LABELLING, TINY_PROPOSED, KeptDataset

TABLE_LOAD = {  # as conf/base/catalog.yml loads it
    "dtype": {"id": str, "image_path": str, "scored_by": str, "proposed_mask": str},
    "keep_default_na": False,
}


def _run(trained_tiny: dict, tiny_inputs: dict, folder: Path, **params: Any) -> DataCatalog:
    inputs = {
        "trained_networks": trained_tiny["trained_networks"],
        "params:labelling": {**TINY_LABELLING, **params},
        **{n: tiny_inputs[n] for n in ("manifest", "class_metadata", "unlabeled_ids")},
    }
    catalog = DataCatalog(
        {
            **{name: MemoryDataset(value) for name, value in inputs.items()},
            "labelling_table": TableDataset(str(folder / "ranked.csv"), load_args=TABLE_LOAD),
            "proposed_masks": ProposalsDataset(str(folder / "to_label")),
            "labelling_metrics": KeptDataset(),
        }
    )
    SequentialRunner().run(labelling.create_pipeline(), catalog)
    return catalog


@pytest.fixture(scope="module")
def ranked(trained_tiny: dict, tiny_inputs: dict, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("labelling")
    return _run(trained_tiny, tiny_inputs, folder), folder


def test_every_unlabeled_image_is_ranked_once_highest_score_first(ranked, tiny_inputs) -> None:
    catalog, _ = ranked
    table = catalog.load("labelling_table")
    assert sorted(table["id"]) == sorted(tiny_inputs["unlabeled_ids"])
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["score"].is_monotonic_decreasing
    shares = table[[c for c in table.columns if c.startswith("share.")]].to_numpy()
    assert shares.shape[1] == len(tiny_inputs["class_metadata"]["names"])
    assert np.allclose(shares.sum(axis=1), 1.0)
    assert table["proposed_mask"].astype(str).ne("").sum() == TINY_PROPOSED
    assert catalog.load("labelling_metrics")["scored_images"] == len(table)
    assert set(table["scored_by"]) == {TINY_LABELLING["score"]}


def test_proposed_masks_round_trip_through_the_dataset_mask_encoding(ranked) -> None:
    catalog, folder = ranked
    table = catalog.load("labelling_table")
    proposals = catalog.load("proposed_masks")
    top = table[table["proposed_mask"].astype(str) != ""]
    assert [f"masks/{stem}.png" for stem in proposals.masks] == top["proposed_mask"].tolist()
    for stem, mask in proposals.masks.items():
        stored = read_mask(folder / "to_label" / "masks" / f"{stem}.png", proposals.encoding)
        assert np.array_equal(stored, mask)
        assert len(list((folder / "to_label" / "images").glob(f"{stem}.*"))) == 1


def test_a_new_run_replaces_the_earlier_proposals(trained_tiny, tiny_inputs, tmp_path) -> None:
    _run(trained_tiny, tiny_inputs, tmp_path, propose=TINY_PROPOSED)
    _run(trained_tiny, tiny_inputs, tmp_path, propose=1)
    assert len(list((tmp_path / "to_label" / "masks").iterdir())) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_no_unlabeled_images_gives_an_empty_table(trained_tiny, tiny_inputs) -> None:
    table, proposals = rank_pool(
        trained_tiny["trained_networks"],
        tiny_inputs["manifest"],
        tiny_inputs["class_metadata"],
        [],
        TINY_LABELLING,
    )
    assert table.empty and "score" in table.columns and not proposals.masks


def test_one_network_ranks_by_entropy_instead_of_disagreement(
    trained_tiny, tiny_inputs, caplog
) -> None:
    bundle = trained_tiny["trained_networks"]
    alone = {**bundle, "state_dicts": {"student_1": bundle["state_dicts"]["student_1"]}}
    args = (tiny_inputs["manifest"], tiny_inputs["class_metadata"], tiny_inputs["unlabeled_ids"])
    with caplog.at_level(logging.WARNING):
        by_default, _ = rank_pool(alone, *args, TINY_LABELLING)  # score: disagreement
    assert "ranked by its entropy" in caplog.text
    assert set(by_default["scored_by"]) == {"entropy"}
    by_entropy, _ = rank_pool(alone, *args, {**TINY_LABELLING, "score": "entropy"})
    assert by_default["id"].tolist() == by_entropy["id"].tolist()
    assert np.allclose(by_default["score"], by_entropy["score"])


def test_training_keeps_every_network_it_trained(trained_tiny) -> None:
    bundle = trained_tiny["trained_networks"]
    assert list(bundle["state_dicts"]) == ["student_1", "student_2", "teacher_1", "teacher_2"]
    student = trained_tiny["student_model"]["state_dict"]
    assert all(
        np.array_equal(v.numpy(), bundle["state_dicts"]["student_1"][k].numpy())
        for k, v in student.items()
    )


def test_copied_proposals_make_their_images_labeled_on_the_next_run(
    trained_tiny, tiny_inputs, tmp_path
) -> None:
    """The README's loop on a user's folder: rank, copy the proposed masks into masks/, run
    again: those images are labeled, with the proposed classes."""
    from mkdseg.pipelines import ingestion, splits
    from tests.pipelines.conftest import TINY_SAMPLE_GRID, run_in_memory
    from tests.pipelines.test_own_data_pipeline import as_folder, folder_params

    root = as_folder(tiny_inputs["manifest"], tmp_path / "folder")
    masked = set(tiny_inputs["labeled_ids"])
    for mask in (root / "masks" / "train").iterdir():
        if mask.stem not in masked:
            mask.unlink()

    def split() -> dict:
        return run_in_memory(
            ingestion.create_pipeline() + splits.create_pipeline(),
            {
                "params:dataset": folder_params(root),
                "params:sample_grid": TINY_SAMPLE_GRID,
                "params:splits": {"labeled": "masked", "seed": 0, "draw": "uniform"},
            },
            ("manifest", "class_metadata", "labeled_ids", "unlabeled_ids"),
        )

    before = split()
    assert set(before["labeled_ids"]) == masked
    table, proposals = rank_pool(
        trained_tiny["trained_networks"],
        before["manifest"],
        before["class_metadata"],
        before["unlabeled_ids"],
        TINY_LABELLING,
    )
    ProposalsDataset(str(tmp_path / "to_label")).save(proposals)
    for mask in (tmp_path / "to_label" / "masks").iterdir():  # cp to_label/masks/*.png masks/
        shutil.copyfile(mask, root / "masks" / mask.name)
    after = split()
    proposed = set(table["id"].head(TINY_PROPOSED))
    assert set(after["labeled_ids"]) == masked | proposed
    encoding = MaskEncoding.from_dict(after["class_metadata"]["mask_encoding"])
    for image_id in proposed:
        assert np.array_equal(read_mask(root / "masks" / f"{image_id}.png", encoding),
                              proposals.masks[image_id])  # fmt: skip


def test_scored_at_a_smaller_size_the_masks_keep_the_image_size(
    trained_tiny, tiny_inputs, tmp_path
) -> None:
    from PIL import Image

    _run(trained_tiny, tiny_inputs, tmp_path, long_side=16)
    for mask in (tmp_path / "to_label" / "masks").iterdir():
        image = next((tmp_path / "to_label" / "images").glob(f"{mask.stem}.*"))
        assert Image.open(mask).size == Image.open(image).size != (16, 16)


def test_a_new_run_keeps_corrected_masks_aside_instead_of_deleting_them(
    trained_tiny, tiny_inputs, tmp_path, caplog
) -> None:
    _run(trained_tiny, tiny_inputs, tmp_path)
    corrected = next((tmp_path / "to_label" / "masks").iterdir())
    corrected.write_bytes(b"corrected in a labelling tool")
    with caplog.at_level(logging.WARNING):
        _run(trained_tiny, tiny_inputs, tmp_path)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("to_label.edited-")]
    assert len(kept) == 1 and kept[0].name in caplog.text
    assert (kept[0] / "masks" / corrected.name).read_bytes() == b"corrected in a labelling tool"
    assert (tmp_path / "to_label" / "proposals.json").is_file()  # the new proposals


def test_the_folder_takes_the_umask_and_loads_its_own_image_copies(
    trained_tiny, tiny_inputs, tmp_path
) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        catalog = _run(trained_tiny, tiny_inputs, tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "to_label").stat().st_mode) == 0o755
    proposals = catalog.load("proposed_masks")
    assert all(
        Path(p).parent == tmp_path / "to_label" / "images" for p in proposals.images.values()
    )


def test_unknown_labelling_parameters_and_clashing_file_names_are_named(
    trained_tiny, tiny_inputs
) -> None:
    args = (
        trained_tiny["trained_networks"],
        tiny_inputs["manifest"],
        tiny_inputs["class_metadata"],
    )
    with pytest.raises(ValueError, match=r"unknown labelling parameter\(s\) \['scroe'\]"):
        rank_pool(*args, tiny_inputs["unlabeled_ids"], {**TINY_LABELLING, "scroe": "entropy"})
    manifest = tiny_inputs["manifest"]
    first, second = manifest["id"].iloc[0], manifest["id"].iloc[1]
    clash = manifest.copy()
    clash.loc[clash["id"] == first, "id"] = "a/b"
    clash.loc[clash["id"] == second, "id"] = "a__b"
    with pytest.raises(ValueError, match="share the file name 'a__b'"):
        rank_pool(args[0], clash, args[2], ["a/b", "a__b"], {**TINY_LABELLING, "propose": 2})
