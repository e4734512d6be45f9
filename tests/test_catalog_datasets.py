"""Local-file datasets: text round trip, atomic replace, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DatasetError

from mkdseg.catalog import TextDataset


def test_text_dataset_round_trip_and_preview(tmp_path: Path) -> None:
    dataset = TextDataset(filepath=str(tmp_path / "out" / "table.md"))
    assert not dataset.exists()
    dataset.save("| a |\n| --- |\n| 1 |\n")
    assert dataset.load() == "| a |\n| --- |\n| 1 |\n"
    dataset.save("replaced\n")
    assert dataset.load() == "replaced\n"
    assert json.loads(dataset.preview()) == "replaced\n"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [
        "table.md"
    ]  # no temporary left behind


def test_text_dataset_errors_name_the_file(tmp_path: Path) -> None:
    dataset = TextDataset(filepath=str(tmp_path / "table.md"))
    with pytest.raises(DatasetError, match="table.md"):
        dataset.save(["not", "text"])
    with pytest.raises(DatasetError, match="table.md"):
        dataset.load()
