"""The proof that no unlabeled image's mask is read, by splits or by training (issue 29).

The tiny synthetic set is laid out as a user's folder (images/{train,val}, masks/{train,val}).
Ingestion, splits and a few training steps run twice: with every mask, then after deleting the
masks of the training images the first split left unlabeled. The split and student 1's weights
(every bit) must not change.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from mkdseg.pipelines import ingestion, splits, training
from mkdseg.sources.synthetic import SYNTHETIC_CLASSES
from tests.pipelines.conftest import (
    TINY_LABELED,
    TINY_SAMPLE_GRID,
    TRAINING_OUTPUTS,
    run_in_memory,
    tiny_training_params,
)

SPLIT_OUTPUTS = ("manifest", "labeled_ids", "unlabeled_ids", "val_ids", "split_metrics")


def as_folder(manifest: pd.DataFrame, root: Path) -> Path:
    """The manifest's images and masks copied into the folder source's split layout."""
    for row in manifest.itertuples(index=False):
        image, mask = Path(row.image_path), Path(row.mask_path)
        for source, target in (
            (image, root / "images" / row.subset / f"{row.id}{image.suffix}"),
            (mask, root / "masks" / row.subset / f"{row.id}.png"),
        ):
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    return root


def folder_params(root: Path) -> dict[str, Any]:
    colours = [
        [(37 * i) % 256, (91 * i) % 256, (53 * i) % 256] for i in range(len(SYNTHETIC_CLASSES))
    ]
    classes = [{"name": n, "colour": c} for n, c in zip(SYNTHETIC_CLASSES, colours, strict=True)]
    return {"source": "folder", "root": root.as_posix(), "folder": {"classes": classes}}


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(
            state[key].detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return digest.hexdigest()


def split_and_train(root: Path, checkpoints: Path) -> tuple[dict, str]:
    inputs = run_in_memory(
        ingestion.create_pipeline() + splits.create_pipeline(),
        {
            "params:dataset": folder_params(root),
            "params:sample_grid": TINY_SAMPLE_GRID,
            "params:splits": {"labeled": TINY_LABELED, "seed": 3, "draw": "uniform"},
        },
        ("class_metadata", *SPLIT_OUTPUTS),
    )
    trained = run_in_memory(
        training.create_pipeline(),
        {
            **{
                k: inputs[k] for k in ("manifest", "class_metadata", "labeled_ids", "unlabeled_ids")
            },
            "params:training": {**tiny_training_params(checkpoints), "resume": False},
            "params:mlflow": {"registered_model_name": None},
        },
        TRAINING_OUTPUTS,
    )
    return inputs, weights_sha256(trained["student_model"]["state_dict"])


def test_deleting_unlabeled_masks_changes_neither_split_nor_weights(
    tiny_inputs: dict[str, Any], tmp_path: Path
) -> None:
    root = as_folder(tiny_inputs["manifest"], tmp_path / "own")
    before, before_hash = split_and_train(root, tmp_path / "ck1")
    assert len(before["labeled_ids"]) == TINY_LABELED and before["unlabeled_ids"]
    for sample_id in before["unlabeled_ids"]:
        (root / "masks" / "train" / f"{sample_id}.png").unlink()
    after, after_hash = split_and_train(root, tmp_path / "ck2")
    for name in ("labeled_ids", "unlabeled_ids", "val_ids"):
        assert after[name] == before[name], name
    assert after_hash == before_hash
    origins = after["manifest"].set_index("id").loc[after["unlabeled_ids"], "origin"]
    assert (origins == "no_mask").all()  # the masks really were gone the second time
    assert after["split_metrics"]["n_unlabeled_no_mask"] == len(before["unlabeled_ids"])
    assert before["split_metrics"]["n_unlabeled_masked"] == len(before["unlabeled_ids"])
    # and the fingerprint does see the unlabeled images: other pixels there, other weights
    donor = (root / "images" / "train" / f"{before['labeled_ids'][0]}.jpg").read_bytes()
    for sample_id in before["unlabeled_ids"]:
        (root / "images" / "train" / f"{sample_id}.jpg").write_bytes(donor)
    assert split_and_train(root, tmp_path / "ck3")[1] != before_hash
