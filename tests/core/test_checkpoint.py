"""Checkpoints: read with the safe unpickler, RNG state restored exactly, a corrupt newest one
skipped."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mkdseg.core.checkpoint import (
    checkpoint_name,
    load_checkpoint,
    load_latest_readable,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mkdseg.core.config import ModelConfig
from mkdseg.core.launch import Job, job_from_dict, job_to_dict, result_from_dict, result_to_dict
from mkdseg.core.prediction.segmenter import load_bundle, make_bundle, save_bundle
from mkdseg.core.trainer import Trainer, TrainResult

from .conftest import TINY_CLASSES, tiny_config


def _draws() -> tuple[float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), torch.rand(3)


class _RunsCodeWhenUnpickled:
    """What a malicious checkpoint holds: unpickling it calls ``Path.touch`` on a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def test_rng_state_survives_a_safe_round_trip(tmp_path: Path) -> None:
    np.random.standard_normal()  # leave a cached Gaussian in NumPy's legacy state
    state = rng_state()
    expected = _draws()
    save_checkpoint({"rng": state}, tmp_path / "rng.pt")
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True)["rng"])
    got = _draws()
    assert got[:2] == expected[:2]
    assert torch.equal(got[2], expected[2])


def test_trainer_checkpoint_and_model_bundle_load_with_weights_only(
    tiny_data, tmp_path: Path
) -> None:
    trainer = Trainer(tiny_config("mkd", iterations=2, checkpoint_every=2), TINY_CLASSES)
    result = trainer.fit(tiny_data, checkpoint_dir=tmp_path)
    state = torch.load(result.checkpoint, weights_only=True)
    assert state["iteration"] == 2 and [h["step"] for h in state["history"]] == [1.0, 2.0]
    bundle = make_bundle(
        result.student, ModelConfig(), ["a", "b", "c"], [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    )
    save_bundle(bundle, tmp_path / "student.pt")
    assert torch.load(tmp_path / "student.pt", weights_only=True)["class_names"] == ["a", "b", "c"]
    assert load_bundle(tmp_path / "student.pt")["format"] == bundle["format"]


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    torch.save({"iteration": 1, "payload": _RunsCodeWhenUnpickled(marker)}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match=r"evil\.pt could not be read"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


def test_launch_job_and_result_files_hold_plain_values(tiny_data, tmp_path: Path) -> None:
    job = Job(tiny_config("cps"), tiny_data, str(tmp_path), True, "cpu")
    save_checkpoint(job_to_dict(job), tmp_path / "job.pt")
    assert job_from_dict(load_checkpoint(tmp_path / "job.pt")) == job
    result = TrainResult({"w": torch.ones(2)}, [{"step": 1.0}], 1, 0, tmp_path / "c.pt", ["d"], 0)
    save_checkpoint(result_to_dict(result), tmp_path / "result.pt")
    loaded = result_from_dict(load_checkpoint(tmp_path / "result.pt"))
    assert loaded.checkpoint == tmp_path / "c.pt" and loaded.history == result.history


def _two_checkpoints(tiny_data, folder: Path) -> None:
    """Checkpoints at iterations 2 and 4 of a 4-iteration run."""
    Trainer(tiny_config("mkd", iterations=4, checkpoint_every=2), TINY_CLASSES).fit(
        tiny_data, checkpoint_dir=folder
    )


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_resume_skips_a_corrupt_newest_checkpoint_with_a_warning(
    tiny_data, tmp_path: Path, caplog
) -> None:
    _two_checkpoints(tiny_data, tmp_path)
    newest = tmp_path / checkpoint_name(4)
    _truncate(newest)
    with caplog.at_level(logging.WARNING, logger="mkdseg.core.checkpoint"):
        result = Trainer(tiny_config("mkd", iterations=5, checkpoint_every=2), TINY_CLASSES).fit(
            tiny_data, checkpoint_dir=tmp_path, resume=True
        )
    assert result.resumed_from == 2 and result.iterations == 5
    skipped = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(skipped) == 1 and str(newest) in skipped[0]


def test_resume_fails_only_when_no_checkpoint_reads(tiny_data, tmp_path: Path) -> None:
    _two_checkpoints(tiny_data, tmp_path)
    for iteration in (2, 4):
        _truncate(tmp_path / checkpoint_name(iteration))
    with pytest.raises(ValueError, match=r"no checkpoint in .* could be read") as error:
        Trainer(tiny_config("mkd", iterations=6), TINY_CLASSES).fit(
            tiny_data, checkpoint_dir=tmp_path, resume=True
        )
    assert checkpoint_name(2) in str(error.value) and checkpoint_name(4) in str(error.value)
    assert "training.resume: false" in str(error.value)


def test_no_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    assert load_latest_readable(tmp_path / "missing") is None
    assert load_latest_readable(tmp_path) is None
