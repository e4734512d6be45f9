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
from mkdseg.core.runtime import resolve_device
from mkdseg.core.trainer import Callback, TrainData, Trainer, TrainResult

PROCESS_GROUP_TIMEOUT = timedelta(minutes=30)  # a collective waiting longer than this fails the job
POLL_SECONDS = 0.2


@dataclass
class Job:
    """Everything a worker needs, picklable for spawn."""

    config: dict
    data: TrainData
    checkpoint_dir: str | None
    resume: bool
    device_type: str = "cpu"  # resolved once from training.device: "cuda" (NCCL) or "cpu" (gloo)


def train(cfg: TrainConfig, data: TrainData, world_size: int = 1, callback: Callback | None = None,
          checkpoint_dir: str | Path | None = None, resume: bool = False) -> TrainResult:
    """Train in this process (``world_size == 1``) or in ``world_size`` DDP workers."""
    if world_size <= 1:
        return Trainer(cfg, data.num_classes).fit(data, callback, checkpoint_dir, resume)
    device_type = resolve_device(cfg.device).type
    if device_type == "cuda" and torch.cuda.device_count() < world_size:
        raise RuntimeError(f"training.gpus={world_size} but only {torch.cuda.device_count()} CUDA devices are "
                           "visible; lower training.gpus")
    job = Job(config_to_dict(cfg), data, str(checkpoint_dir) if checkpoint_dir else None, resume, device_type)
    ctx = mp.get_context("spawn")
    metrics_queue, error_queue = ctx.Queue(), ctx.Queue()
    with tempfile.TemporaryDirectory(prefix="mkdseg-ddp-") as tmp:
        result_path = Path(tmp) / "result.pt"
        args = (world_size, _free_port(), job, metrics_queue, error_queue, str(result_path))
        procs = mp.start_processes(_worker, args=args, nprocs=world_size, join=False, start_method="spawn")
        try:
            while not procs.join(timeout=POLL_SECONDS):  # raises if a worker fails, after stopping the others
                _drain(metrics_queue, callback)
        except ProcessException as exc:
            raise _first_error(error_queue, exc) from exc
        _drain(metrics_queue, callback)
        return _result_from_file(result_path)


def _first_error(error_queue: mp.Queue, fallback: Exception) -> Exception:
    """The error of the worker that failed first: its peers then fail too, on the broken collective."""
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


def _init_process_group(rank: int, world_size: int, port: int | None, device_type: str) -> torch.device:
    if port is not None:
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ["MASTER_PORT"] = str(port)
    cuda = device_type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world_size,
                            timeout=PROCESS_GROUP_TIMEOUT)
    if not cuda:
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", rank))
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


def _run_rank(rank: int, world_size: int, device: torch.device, job: Job,
              callback: Callback | None) -> tuple[TrainResult, list[str]]:
    cfg = config_from_dict(job.config)
    trainer = Trainer(cfg, job.data.num_classes, rank=rank, world_size=world_size, device=device)
    result = trainer.fit(job.data, callback if rank == 0 else None, job.checkpoint_dir, job.resume)
    digests: list[list[str]] = [[] for _ in range(world_size)]
    dist.all_gather_object(digests, result.rank_digests)
    flat = [d for ds in digests for d in ds]
    if len(set(flat)) > 1:
        raise RuntimeError("DDP ranks ended with different teachers or feature statistics; "
                           "this is a bug in mkdseg, please report it with the training parameters")
    return result, flat


def _worker(rank: int, world_size: int, port: int, job: Job, metrics_queue: mp.Queue, error_queue: mp.Queue,
            result_path: str) -> None:
    device = _init_process_group(rank, world_size, port, job.device_type)
    try:
        result, digests = _run_rank(rank, world_size, device, job, lambda i, m: metrics_queue.put((i, m)))
        if rank == 0:
            result.rank_digests = digests
            save_checkpoint(vars(result), result_path)
        dist.barrier()
    except BaseException:
        error_queue.put((rank, traceback.format_exc()))
        raise
    finally:
        dist.destroy_process_group()


def _result_from_file(path: Path) -> TrainResult:
    if not path.is_file():
        raise RuntimeError("DDP workers exited without a result; see the worker logs above")
    return TrainResult(**load_checkpoint(path))


def main(argv: list[str] | None = None) -> None:
    """``torchrun`` entry: reads a job file written by ``write_job``; rank 0 writes the result."""
    parser = argparse.ArgumentParser(description="mkdseg DDP training worker (for torchrun)")
    parser.add_argument("--job", required=True, help="job file written by mkdseg.core.launch.write_job")
    parser.add_argument("--result", required=True, help="where rank 0 writes the TrainResult")
    args = parser.parse_args(argv)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    job = Job(**load_checkpoint(args.job))
    device = _init_process_group(rank, world_size, None, job.device_type)
    try:
        result, digests = _run_rank(rank, world_size, device, job, None)
        if rank == 0:
            result.rank_digests = digests
            save_checkpoint(vars(result), args.result)
    finally:
        dist.destroy_process_group()


def write_job(path: str | Path, cfg: TrainConfig, data: TrainData, checkpoint_dir: str | None = None,
              resume: bool = False) -> Path:
    """Write a job file for ``torchrun ... -m mkdseg.core.launch --job PATH --result OUT``."""
    job = Job(config_to_dict(cfg), data, checkpoint_dir, resume, resolve_device(cfg.device).type)
    return save_checkpoint(vars(job), path)


if __name__ == "__main__":
    main()
