"""Start training on one device, or as a DDP job (NCCL on CUDA, gloo on the CPU).

``train`` is what a Kedro node calls: with ``world_size > 1`` it spawns workers
with ``torch.multiprocessing``, forwards rank 0's per-iteration metrics to the
caller's callback (so logging happens in one place), and turns a crashed worker
into an exception carrying its traceback: ``ProcessContext.join`` terminates the
other ranks, so a job never hangs on a dead peer. ``main`` is the ``torchrun``
entry point: ``torchrun --nproc_per_node=N -m mkdseg.core.launch --job job.pt``.
"""

from __future__ import annotations

import argparse
import os
import queue as queue_module
import socket
import tempfile
import traceback
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import ProcessException

from mkdseg.core.checkpoint import load_checkpoint, save_checkpoint
from mkdseg.core.config import TrainConfig, config_from_dict, config_to_dict
from mkdseg.core.image_io import MaskEncoding
from mkdseg.core.pretrained import missing_pretrained_file
from mkdseg.core.runtime import resolve_device
from mkdseg.core.trainer import Callback, TrainData, Trainer, TrainResult

AUTO_DEVICE = "auto"
PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)  # a collective waiting longer than this fails the job
POLL_SECONDS = 0.2


@dataclass
class Job:
    """Everything a worker needs, picklable for spawn (a job file holds it as plain data)."""

    config: TrainConfig
    data: TrainData
    checkpoint_dir: str | None
    resume: bool
    device_type: str = "cpu"  # resolved once from training.device: "cuda" (NCCL) or "cpu" (gloo)


def train(
    cfg: TrainConfig,
    data: TrainData,
    world_size: int = 1,
    callback: Callback | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> TrainResult:
    """Train in this process (``world_size == 1``) or in ``world_size`` DDP workers."""
    if world_size <= 1:
        return Trainer(cfg, data.num_classes).fit(data, callback, checkpoint_dir, resume)
    device_type = check_before_spawn(cfg, world_size)
    job = Job(cfg, data, str(checkpoint_dir) if checkpoint_dir else None, resume, device_type)
    ctx = mp.get_context("spawn")
    metrics_queue, error_queue = ctx.Queue(), ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="mkdseg-ddp-") as tmp:
        result_path = Path(tmp) / "result.pt"
        args = (world_size, _free_port(), job, metrics_queue, error_queue, str(result_path))
        procs = mp.start_processes(
            _worker, args=args, nprocs=world_size, join=False, start_method="spawn"
        )
        try:
            while not procs.join(
                timeout=POLL_SECONDS
            ):  # raises if a worker fails, after stopping the others
                _drain(metrics_queue, callback)
        except ProcessException as exc:
            raise _first_error(error_queue, exc) from exc
        _drain(metrics_queue, callback)
        return _result_from_file(result_path)


def check_before_spawn(cfg: TrainConfig, world_size: int) -> str:
    """The device type the workers will use, once what would fail in every worker is ruled out.

    Each worker would otherwise find the same missing weights file or device on its own and
    fail with it ``world_size`` times, after the spawn. Raises one error listing every problem
    and the parameter to change.
    """
    problems = []
    if (missing := missing_pretrained_file(cfg.model.pretrained)) is not None:
        problems.append(
            f"training.model.pretrained: the backbone checkpoint {missing} does not exist; place "
            "the ImageNet weights file there, or set training.model.pretrained: null to train from "
            "scratch"
        )
    device_type = "cpu"
    try:
        device_type = resolve_device(cfg.device).type
    except RuntimeError as exc:
        problems.append(f"{exc} (with training.gpus={world_size})")
    visible = torch.cuda.device_count() if device_type == "cuda" else 0
    if device_type == "cuda" and visible < world_size:
        problems.append(
            f"training.gpus={world_size} but only {visible} CUDA devices are visible; "
            f"set training.gpus to at most {visible}"
        )
    if cfg.device == AUTO_DEVICE and device_type == "cpu":
        problems.append(
            f"training.gpus={world_size} but no CUDA device is visible (training.device=auto chose "
            "the CPU); set training.gpus: 1 to train in one process, or training.device: cpu to "
            f"run {world_size} CPU (gloo) workers on purpose"
        )
    if problems:
        raise RuntimeError(
            "training cannot start, no worker was started:\n  - " + "\n  - ".join(problems)
        )
    return device_type


def _first_error(error_queue: mp.Queue, fallback: Exception) -> Exception:
    """The error of the worker that failed first (its peers then fail on the broken collective)."""
    try:
        rank, trace = error_queue.get(timeout=POLL_SECONDS * 10)
    except queue_module.Empty:
        return fallback
    return RuntimeError(f"DDP worker rank {rank} failed:\n{trace}")


def _drain(metrics_queue: mp.Queue, callback: Callback | None) -> None:
    while True:
        try:
            iteration, metrics = metrics_queue.get_nowait()
        except queue_module.Empty:
            return
        if callback is not None:
            callback(iteration, metrics)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _init_process_group(
    rank: int, world_size: int, port: int | None, device_type: str
) -> torch.device:
    if port is not None:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = str(port)
    cuda = device_type == "cuda"
    dist.init_process_group(
        "nccl" if cuda else "gloo", rank=rank, world_size=world_size, timeout=PROCESS_GROUP_TIMEOUT
    )
    if not cuda:
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def _run_rank(
    rank: int, world_size: int, device: torch.device, job: Job, callback: Callback | None
) -> tuple[TrainResult, list[str]]:
    trainer = Trainer(
        job.config, job.data.num_classes, rank=rank, world_size=world_size, device=device
    )
    result = trainer.fit(job.data, callback if rank == 0 else None, job.checkpoint_dir, job.resume)
    digests: list[list[str]] = [[] for _ in range(world_size)]
    dist.all_gather_object(digests, result.rank_digests)
    flat = [d for ds in digests for d in ds]
    if len(set(flat)) > 1:
        raise RuntimeError(
            "DDP ranks ended with different teachers or feature statistics; "
            "this is a bug in mkdseg, please report it with the training parameters"
        )
    return result, flat


def _worker(
    rank: int,
    world_size: int,
    port: int,
    job: Job,
    metrics_queue: mp.Queue,
    error_queue: mp.Queue,
    result_path: str,
) -> None:
    device = _init_process_group(rank, world_size, port, job.device_type)
    try:
        result, digests = _run_rank(
            rank, world_size, device, job, lambda i, m: metrics_queue.put((i, m))
        )
        if rank == 0:
            result.rank_digests = digests
            save_checkpoint(result_to_dict(result), result_path)
        dist.barrier()
    except BaseException:
        error_queue.put((rank, traceback.format_exc()))
        raise
    finally:
        dist.destroy_process_group()


def _result_from_file(path: Path) -> TrainResult:
    if not path.is_file():
        raise RuntimeError("DDP workers exited without a result; see the worker logs above")
    return result_from_dict(load_checkpoint(path))


# Job and result files are read with the safe unpickler like any checkpoint, so they hold
# plain values only: these convert the dataclasses (config, paths, mask encoding) to and from them.
def result_to_dict(result: TrainResult) -> dict:
    return {
        **vars(result),
        "checkpoint": None if result.checkpoint is None else str(result.checkpoint),
    }


def result_from_dict(data: dict) -> TrainResult:
    checkpoint = data.get("checkpoint")
    return TrainResult(**{**data, "checkpoint": None if checkpoint is None else Path(checkpoint)})


def job_to_dict(job: Job) -> dict:
    data = job.data
    return {
        **vars(job),
        "config": config_to_dict(job.config),
        "data": {
            "labeled": [list(pair) for pair in data.labeled],
            "unlabeled": list(data.unlabeled),
            "mask_encoding": data.mask_encoding.to_dict(),
            "num_classes": data.num_classes,
        },
    }


def job_from_dict(raw: dict) -> Job:
    data = raw["data"]
    train_data = TrainData(
        labeled=[tuple(pair) for pair in data["labeled"]],
        unlabeled=list(data["unlabeled"]),
        mask_encoding=MaskEncoding.from_dict(data["mask_encoding"]),
        num_classes=int(data["num_classes"]),
    )
    return Job(**{**raw, "config": config_from_dict(raw["config"]), "data": train_data})


def main(argv: list[str] | None = None) -> None:
    """``torchrun`` entry: reads a job file written by ``write_job``; rank 0 writes the result."""
    parser = argparse.ArgumentParser(description="mkdseg DDP training worker (for torchrun)")
    parser.add_argument(
        "--job", required=True, help="job file written by mkdseg.core.launch.write_job"
    )
    parser.add_argument("--result", required=True, help="where rank 0 writes the TrainResult")
    args = parser.parse_args(argv)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    job = job_from_dict(load_checkpoint(args.job))
    device = _init_process_group(rank, world_size, None, job.device_type)
    try:
        result, digests = _run_rank(rank, world_size, device, job, None)
        if rank == 0:
            result.rank_digests = digests
            save_checkpoint(result_to_dict(result), args.result)
    finally:
        dist.destroy_process_group()


def write_job(
    path: str | Path,
    cfg: TrainConfig,
    data: TrainData,
    checkpoint_dir: str | None = None,
    resume: bool = False,
) -> Path:
    """Write a job file for ``torchrun ... -m mkdseg.core.launch --job PATH --result OUT``."""
    job = Job(cfg, data, checkpoint_dir, resume, resolve_device(cfg.device).type)
    return save_checkpoint(job_to_dict(job), path)


if __name__ == "__main__":
    main()
