"""DDP on the CPU: two gloo workers stay in sync; a crashed worker fails the job, not hangs."""

from __future__ import annotations

import dataclasses

import pytest

from mkdseg.core.launch import train

from .conftest import tiny_config


def test_two_process_gloo_run_keeps_teachers_and_estimators_identical(tiny_data):
    seen = []
    result = train(
        tiny_config("mkd", iterations=2),
        tiny_data,
        world_size=2,
        callback=lambda i, m: seen.append(i),
    )
    assert result.iterations == 2
    assert len(result.rank_digests) == 2 and result.rank_digests[0] == result.rank_digests[1]
    assert seen == [1, 2]  # rank 0's metrics reach the caller's process
    assert "classifier.weight" in result.student


def test_a_crashed_worker_fails_the_job(tiny_data, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    # One sample per rank per step: one rank reads the broken file, the other waits in a collective.
    data = dataclasses.replace(
        tiny_data, labeled=[(str(broken), tiny_data.labeled[0][1]), tiny_data.labeled[1]]
    )
    with pytest.raises(
        RuntimeError, match=r"(?s)DDP worker rank \d failed.*(broken\.png|cannot identify)"
    ):
        train(tiny_config("supervised", iterations=2, batch_size=1), data, world_size=2)


def test_torchrun_entry_point_trains_from_a_job_file(tiny_data, tmp_path):
    import subprocess
    import sys

    from mkdseg.core.checkpoint import load_checkpoint
    from mkdseg.core.launch import write_job

    job = write_job(tmp_path / "job.pt", tiny_config("mkd", iterations=2), tiny_data)
    out = tmp_path / "result.pt"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mkdseg.core.launch",
        "--job",
        str(job),
        "--result",
        str(out),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    result = load_checkpoint(out)
    assert result["iterations"] == 2
    assert (
        len(result["rank_digests"]) == 2 and result["rank_digests"][0] == result["rank_digests"][1]
    )


def test_what_every_worker_would_fail_on_fails_once_before_spawning(
    tiny_data, tmp_path, monkeypatch
):
    from mkdseg.core import launch

    def no_spawn(*_args, **_kwargs):
        raise AssertionError("workers were started")

    monkeypatch.setattr(launch.mp, "start_processes", no_spawn)
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(launch.torch.cuda, "device_count", lambda: 0)
    weights = tmp_path / "pretrained" / "resnet50-0676ba61.pth"
    cfg = tiny_config(
        "mkd", device="auto", model={"backbone": "resnet18", "pretrained": str(weights)}
    )
    with pytest.raises(RuntimeError, match="no worker was started") as error:
        train(cfg, tiny_data, world_size=8)
    message = str(error.value)
    assert f"training.model.pretrained: the backbone checkpoint {weights} does not exist" in message
    assert (
        "training.gpus=8 but no CUDA device is visible" in message and "training.gpus: 1" in message
    )
    assert message.count("\n  - ") == 2  # both problems, in one error


def test_cpu_workers_asked_for_explicitly_pass_the_check(tmp_path):
    from mkdseg.core.launch import check_before_spawn

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")
    cfg = tiny_config(
        "mkd", device="cpu", model={"backbone": "resnet18", "pretrained": str(weights)}
    )
    assert check_before_spawn(cfg, 2) == "cpu"
    named = tiny_config(
        "mkd", device="cpu", model={"backbone": "resnet18", "pretrained": "IMAGENET1K_V1"}
    )
    assert check_before_spawn(named, 2) == "cpu"  # a torchvision weights name is not a local file
