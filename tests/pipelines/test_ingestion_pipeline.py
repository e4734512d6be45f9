"""Ingestion pipeline (DataCatalog + SequentialRunner) and the atomic catalog datasets it uses."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kedro.io import DataCatalog, DatasetError, MemoryDataset
from kedro.runner import SequentialRunner
from PIL import Image

from mkdseg.catalog import ImageDataset, JSONDataset, TableDataset
from mkdseg.core.image_io import MaskEncoding, read_image, read_mask
from mkdseg.core.visualization import overlay_mask
from mkdseg.pipelines.ingestion import create_pipeline
from mkdseg.pipelines.ingestion.nodes import draw_sample_grid, ingestion_summary, pick_samples
from tests.conftest import TINY_IMAGE_SIZE, TINY_N_TRAIN, TINY_N_VAL

GRID = {"rows": 2, "cols": 2, "tile_size": TINY_IMAGE_SIZE, "alpha": 0.5}
PAD = 2  # image_grid's default gutter


def _catalog(tmp_path: Path, dataset_params: dict) -> DataCatalog:
    return DataCatalog(
        {
            "params:dataset": MemoryDataset(dataset_params),
            "params:sample_grid": MemoryDataset(GRID),
            "manifest": TableDataset(
                str(tmp_path / "manifest.csv"), load_args={"dtype": {"id": str}}
            ),
            "class_metadata": JSONDataset(str(tmp_path / "class_metadata.json")),
            "quarantine": TableDataset(str(tmp_path / "quarantine.csv")),
            "sample_grid": ImageDataset(str(tmp_path / "sample_grid.png")),
        }
    )


def test_ingestion_pipeline_writes_manifest_metadata_and_grid(
    tmp_path: Path, tiny_dataset_params: dict
) -> None:
    catalog = _catalog(tmp_path, tiny_dataset_params)
    outputs = SequentialRunner().run(create_pipeline(), catalog)
    assert catalog.load("ingestion_metrics") == {
        "n_train": TINY_N_TRAIN,
        "n_train_masked": TINY_N_TRAIN,
        "n_train_no_mask": 0,
        "n_train_extra": 0,
        "n_test": 0,
        "n_quarantined": 0,
    }
    assert "ingestion_metrics" in outputs
    manifest = catalog.load("manifest")
    assert len(manifest) == TINY_N_TRAIN + TINY_N_VAL
    assert list(manifest.columns[:7]) == [
        "id",
        "subset",
        "image_path",
        "mask_path",
        "origin",
        "height",
        "width",
    ]
    metadata = catalog.load("class_metadata")
    assert metadata["source"] == "synthetic" and len(metadata["names"]) == len(metadata["colours"])
    assert catalog.load("quarantine").empty
    grid = catalog.load("sample_grid")
    assert grid.shape == (2 * TINY_IMAGE_SIZE + 3 * PAD, 2 * TINY_IMAGE_SIZE + 3 * PAD, 3)
    # the first tile is the first validation sample with its mask overlaid
    first = manifest[manifest["subset"] == "val"].sort_values("id").iloc[0]
    encoding = MaskEncoding.from_dict(metadata["mask_encoding"])
    expected = overlay_mask(
        read_image(first.image_path),
        read_mask(first.mask_path, encoding),
        metadata["colours"],
        alpha=GRID["alpha"],
    )
    assert np.array_equal(grid[PAD : PAD + TINY_IMAGE_SIZE, PAD : PAD + TINY_IMAGE_SIZE], expected)


def test_pick_samples_spreads_over_val_and_falls_back_to_train() -> None:
    manifest = pd.DataFrame(
        {
            "id": [f"v{i}" for i in range(5)] + ["t0", "t1"],
            "subset": ["val"] * 5 + ["train"] * 2,
            "mask_path": ["m"] * 6 + [""],  # t1 has no mask: it cannot be drawn with one
        }
    )
    assert pick_samples(manifest, 3)["id"].tolist() == ["v0", "v2", "v4"]
    assert pick_samples(manifest, 10)["id"].tolist() == [f"v{i}" for i in range(5)]
    assert pick_samples(manifest[manifest["subset"] == "train"], 4)["id"].tolist() == ["t0"]
    with pytest.raises(ValueError, match="manifest is empty"):
        pick_samples(manifest.iloc[:0], 2)


def test_ingestion_summary_and_grid_parameter_check() -> None:
    manifest = pd.DataFrame(
        {
            "subset": ["train", "train", "train", "train", "val", "test", "test"],
            "origin": ["mask", "no_mask", "extra", "extra", "mask", "mask", "mask"],
        }
    )
    quarantine = pd.DataFrame({"id": ["x"], "subset": ["val"], "path": ["p"], "reason": ["r"]})
    assert ingestion_summary(manifest, quarantine) == {
        "n_train": 4,
        "n_train_masked": 1,
        "n_train_no_mask": 1,
        "n_train_extra": 2,
        "n_test": 2,
        "n_quarantined": 1,
    }
    assert ingestion_summary(manifest[manifest["subset"] != "test"], quarantine)["n_test"] == 0
    with pytest.raises(ValueError, match=r"sample_grid' miss \['alpha'\]"):
        draw_sample_grid(manifest, {}, {"rows": 1, "cols": 1, "tile_size": 8})


# ---------------------------------------------------------------- catalog datasets
def test_table_save_that_fails_midway_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = TableDataset(str(tmp_path / "manifest.csv"))
    dataset.save(pd.DataFrame({"id": ["a", "b"], "n": [1, 2]}))
    original = (tmp_path / "manifest.csv").read_bytes()

    def half_write(self: pd.DataFrame, path: Path, **kwargs: object) -> None:
        Path(path).write_text("id,n\nc,")  # a truncated table, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", half_write)
    with pytest.raises(KeyboardInterrupt):
        dataset.save(pd.DataFrame({"id": ["c"], "n": [3]}))
    assert (tmp_path / "manifest.csv").read_bytes() == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv"]  # no temp file left


def test_json_save_that_fails_keeps_the_old_file(tmp_path: Path) -> None:
    dataset = JSONDataset(str(tmp_path / "meta.json"))
    dataset.save({"names": ["a"], "n": np.int64(2)})
    assert dataset.load() == {"names": ["a"], "n": 2}
    with pytest.raises(DatasetError, match="not JSON-serialisable"):
        dataset.save({"bad": object()})
    assert dataset.load() == {"names": ["a"], "n": 2}
    assert '"names"' in dataset.preview()


def test_previews_and_missing_files(tmp_path: Path) -> None:
    table = TableDataset(str(tmp_path / "t.csv"))
    table.save(pd.DataFrame({"id": ["a", "b", "c"], "n": [1, 2, 3]}))
    assert table.preview(nrows=2) == {
        "columns": ["id", "n"],
        "index": [0, 1],
        "data": [["a", 1], ["b", 2]],
    }
    image = ImageDataset(str(tmp_path / "g.png"))
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    image.save(pixels)
    assert np.array_equal(image.load(), pixels)
    decoded = Image.open(io.BytesIO(base64.b64decode(image.preview())))
    assert np.array_equal(np.asarray(decoded), pixels)
    with pytest.raises(DatasetError, match="uint8 HxW or HxWx3"):
        image.save(pixels.astype(np.float32))
    with pytest.raises(DatasetError, match="does not exist"):
        TableDataset(str(tmp_path / "missing.csv")).load()
    assert not TableDataset(str(tmp_path / "missing.csv")).exists()
