"""Local-file datasets: text round trip, atomic replace, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kedro.io import DatasetError

from mkdseg.catalog import OptionalJSONDataset, TextDataset


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


def test_the_project_catalog_loads_the_tables_it_saves(tmp_path: Path) -> None:
    """Through the project's own configuration (Kedro resolves keys named like paths): the
    quarantine, the manifest and the labelling table round-trip, text columns as text."""
    import pandas as pd
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from tests.conftest import PROJECT_ROOT

    bootstrap_project(PROJECT_ROOT)
    params = {
        "data_root": str(tmp_path),
        "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "mlflow_artifact_location": str(tmp_path / "mlartifacts"),
    }
    with KedroSession.create(project_path=PROJECT_ROOT, runtime_params=params) as session:
        catalog = session.load_context().catalog
        quarantine = pd.DataFrame(
            {"id": ["0042"], "subset": ["train"], "path": ["/d/a.png"], "reason": ["bad"]}
        )
        catalog.save("quarantine", quarantine)
        loaded = catalog.load("quarantine")
        ranked = pd.DataFrame(
            {
                "rank": [1, 2],
                "id": ["0042", "unlabeled/0043"],
                "image_path": ["/d/0042.jpg", "/d/0043.jpg"],
                "score": [0.5, 0.25],
                "scored_by": ["disagreement", "disagreement"],
                "proposed_mask": ["masks/0042.png", ""],
                "share.background": [1.0, 1.0],
            }
        )
        catalog.save("labelling_table", ranked)
        ranked_loaded = catalog.load("labelling_table")
    assert loaded.equals(quarantine)  # "0042" stays text, not 42
    assert ranked_loaded.equals(ranked)  # and an image without a proposal has "", not NaN


def test_an_optional_json_file_loads_as_none_until_written(tmp_path) -> None:
    """A comparison run's result: None while its job has not finished, then what it wrote."""
    ds = OptionalJSONDataset(str(tmp_path / "mkd_1_16" / "seed_0.json"))
    assert ds.load() is None and not ds.exists()
    ds.save({"identity": {"variant": "mkd_1_16", "seed": 0}, "metrics": {"val_mIoU_whole": 0.5}})
    assert ds.load() == {
        "identity": {"variant": "mkd_1_16", "seed": 0},
        "metrics": {"val_mIoU_whole": 0.5},
    }
