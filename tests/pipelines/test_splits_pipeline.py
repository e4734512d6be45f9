"""Splits pipeline (DataCatalog + SequentialRunner) and the one-id-per-line split files."""

from __future__ import annotations

from pathlib import Path

import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner

from mkdseg.catalog import IdListDataset, TableDataset
from mkdseg.pipelines.splits import create_pipeline
from mkdseg.pipelines.splits.nodes import make_split
from mkdseg.sources.manifest import build_manifest
from tests.conftest import PROJECT_ROOT, TINY_N_TRAIN, TINY_N_VAL

N_LABELED = 3


def _run(tmp_path: Path, dataset_params: dict, labeled: object) -> DataCatalog:
    manifest, class_metadata, _ = build_manifest(dataset_params, PROJECT_ROOT)
    out = tmp_path / "splits"
    catalog = DataCatalog(
        {
            "manifest": MemoryDataset(manifest),
            "class_metadata": MemoryDataset(class_metadata),
            "params:splits": MemoryDataset({"labeled": labeled, "seed": 0, "draw": "uniform"}),
            "labeled_ids": IdListDataset(str(out / "labeled.txt")),
            "unlabeled_ids": IdListDataset(str(out / "unlabeled.txt")),
            "val_ids": IdListDataset(str(out / "val.txt")),
            "split_stats": TableDataset(str(out / "split_stats.csv")),
            "split_metrics": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    return catalog


def test_split_files_partition_the_training_set(tmp_path: Path, tiny_dataset_params: dict) -> None:
    catalog = _run(tmp_path, tiny_dataset_params, N_LABELED)
    labeled, unlabeled = catalog.load("labeled_ids"), catalog.load("unlabeled_ids")
    val = catalog.load("val_ids")
    assert len(labeled) == N_LABELED and len(unlabeled) == TINY_N_TRAIN - N_LABELED
    assert set(labeled).isdisjoint(unlabeled) and len(val) == TINY_N_VAL
    assert all(i.startswith("train_") for i in labeled + unlabeled) and all(
        i.startswith("val_") for i in val
    )
    text = (tmp_path / "splits" / "labeled.txt").read_text()
    assert text == "".join(f"{i}\n" for i in labeled)  # plain: one id per line
    metrics = catalog.load("split_metrics")
    assert (metrics["n_labeled"], metrics["n_unlabeled"], metrics["n_val"]) == (3.0, 5.0, 4.0)
    assert not catalog.load("split_stats").empty


def test_written_split_file_is_reusable_as_splits_labeled(
    tmp_path: Path, tiny_dataset_params: dict
) -> None:
    first = _run(tmp_path / "a", tiny_dataset_params, N_LABELED)
    published = tmp_path / "a" / "splits" / "labeled.txt"
    again = _run(tmp_path / "b", tiny_dataset_params, str(published))
    assert again.load("labeled_ids") == first.load("labeled_ids")
    assert again.load("unlabeled_ids") == first.load("unlabeled_ids")


def test_missing_split_parameters_are_named() -> None:
    with pytest.raises(ValueError, match=r"splits' miss \['seed', 'draw'\]"):
        make_split(None, {"names": []}, {"labeled": 0.5})


def test_id_list_dataset_rejects_bad_ids_and_skips_comments(tmp_path: Path) -> None:
    dataset = IdListDataset(str(tmp_path / "ids.txt"))
    dataset.save(["a", "b"])
    with pytest.raises(DatasetError, match="invalid sample id"):
        dataset.save(["c", "bad\nid"])
    assert dataset.load() == ["a", "b"]  # the failed save left the file alone
    with pytest.raises(DatasetError, match="single string"):
        dataset.save("abc")
    (tmp_path / "ids.txt").write_text("# published split\n\na\n  b \n")
    assert dataset.load() == ["a", "b"]
    assert dataset.preview(nrows=1) == {"columns": ["id"], "index": [0], "data": [["a"]]}
