"""Prediction pipeline (DataCatalog + SequentialRunner): a folder of new images -> one palette
mask and one overlay per image, a status table and counts; unreadable files are skipped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from kedro.io import DataCatalog, MemoryDataset
from kedro.runner import SequentialRunner
from PIL import Image

from mkdseg.catalog import ModelBundleDataset, SegmenterSource, TableDataset
from mkdseg.pipelines.prediction import create_pipeline
from tests.conftest import TINY_IMAGE_SIZE

N_IMAGES = 3


def _input_folder(folder: Path, manifest: Any) -> list[Path]:
    """A few validation images and one file that is not an image."""
    folder.mkdir()
    images = []
    for source in manifest[manifest["subset"] == "val"]["image_path"].iloc[:N_IMAGES]:
        images.append(folder / Path(source).name)
        images[-1].write_bytes(Path(source).read_bytes())
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return images


def test_each_image_gets_a_mask_and_an_overlay(
    trained_tiny: dict, tiny_inputs: dict[str, Any], tmp_path: Path
) -> None:
    images = _input_folder(tmp_path / "new_images", tiny_inputs["manifest"])
    out = tmp_path / "predicted"
    ModelBundleDataset(str(tmp_path / "student.pt")).save(trained_tiny["student_model"])
    catalog = DataCatalog(
        {
            "prediction_model": SegmenterSource(str(tmp_path / "student.pt")),
            "class_metadata": MemoryDataset(tiny_inputs["class_metadata"]),
            "params:prediction": MemoryDataset(
                {"input_dir": str(tmp_path / "new_images"), "output_dir": str(out), "device": "cpu"}
            ),
            "prediction_table": TableDataset(str(tmp_path / "predictions.csv")),
            "prediction_metrics": MemoryDataset(),
        }
    )
    SequentialRunner().run(create_pipeline(), catalog)
    classes = len(tiny_inputs["class_metadata"]["names"])
    for image in images:
        mask = np.asarray(Image.open(out / f"{image.stem}.png"))
        assert mask.shape == (TINY_IMAGE_SIZE, TINY_IMAGE_SIZE) and mask.max() < classes
        assert (out / f"{image.stem}_overlay.jpg").is_file()
    table = catalog.load("prediction_table").fillna("")
    assert sorted(table["status"]) == ["ok"] * N_IMAGES + ["skipped"]
    assert "unreadable" in table.loc[table["image"].str.endswith("corrupt.jpg"), "reason"].item()
    assert catalog.load("prediction_metrics") == {
        "predicted_images": float(N_IMAGES),
        "skipped_images": 1.0,
    }
