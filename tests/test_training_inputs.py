"""Manifest + split ids -> trainer inputs; run keys for resume."""

import pandas as pd
import pytest

from mkdseg import training_inputs
from mkdseg.core.config import ModelConfig

MANIFEST = pd.DataFrame({"id": ["a", "b", "c"], "subset": ["train", "train", "val"],
                         "image_path": ["/x/a.jpg", "/x/b.jpg", "/x/c.jpg"],
                         "mask_path": ["/x/a.png", "/x/b.png", "/x/c.png"]})
META = {"names": ["bg", "fg"], "colours": [[0, 0, 0], [255, 0, 0]], "mask_encoding": {"kind": "index"}}
TRAINING = {"method": "mkd", "iterations": 10, "gpus": 1, "resume": False, "checkpoint_root": "/ck",
            "model": {"backbone": "resnet18"}}


def test_train_data_keeps_the_split_order_and_mask_encoding():
    data = training_inputs.train_data(MANIFEST, META, ["b"], ["a"])
    assert data.labeled == [("/x/b.jpg", "/x/b.png")] and data.unlabeled == ["/x/a.jpg"]
    assert data.num_classes == 2 and data.mask_encoding.kind == "index"


def test_unknown_ids_are_named():
    with pytest.raises(ValueError, match=r"1 labeled id\(s\).*'zz'"):
        training_inputs.train_data(MANIFEST, META, ["a", "zz"], [])
    with pytest.raises(ValueError, match="labeled split is empty"):
        training_inputs.train_data(MANIFEST, META, [], ["a"])


def test_pipeline_keys_are_not_passed_to_the_trainer():
    cfg = training_inputs.trainer_config(TRAINING)
    assert cfg.iterations == 10 and cfg.model == ModelConfig(backbone="resnet18")
    with pytest.raises(ValueError, match="training.itrations"):
        training_inputs.trainer_config({**TRAINING, "itrations": 3})


def test_run_key_ignores_length_and_device_but_not_method_or_labels():
    base = training_inputs.trainer_config(TRAINING)
    longer = training_inputs.trainer_config({**TRAINING, "iterations": 99, "device": "cpu", "num_workers": 0})
    other = training_inputs.trainer_config({**TRAINING, "method": "cps"})
    key = training_inputs.run_key(base, ["a", "b"])
    assert key == training_inputs.run_key(longer, ["b", "a"])
    assert key != training_inputs.run_key(other, ["a", "b"])
    assert key != training_inputs.run_key(base, ["a"])
    assert training_inputs.checkpoint_dir(TRAINING, base, ["a", "b"]).as_posix() == f"/ck/mkd-{key}"
