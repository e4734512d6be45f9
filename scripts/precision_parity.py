"""Accuracy parity of bf16 against fp32 for the default run: val mIoU, paired by seed.

    python scripts/precision_parity.py --device cpu --seeds 0 1 2 --jobs 6 --threads 2 --pin

Each run is the default MKD run's training (``conf/base/parameters_training.yml``'s ``training``
block, the embedded 64 px set, 1/16 labels) through ``scripts/calibrate.py`` (the core trainer, no
Kedro or MLflow), once per seed and precision. ``--pin`` gives every job its own ``--threads``
cores, so parallel jobs do not share cores. Prints one JSON line per run, then the paired
bf16 - fp32 difference per seed, its mean and std, and each precision's training seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))
sys.path.insert(0, str(PROJECT / "scripts"))

import calibrate  # noqa: E402  (needs the path above)

SYNTHETIC = {"image_size": 64, "class_hue_jitter": 45}  # conf/base/parameters_ingestion.yml
LABELS = "1/16"  # conf/base/parameters_splits.yml: 0.0625
# Settings of a Kedro run that are not training settings of one process, or are paths.
NOT_FOR_ONE_PROCESS = ("gpus", "resume", "checkpoint_root", "log_every")


def default_training() -> dict:
    with (PROJECT / "conf/base/parameters_training.yml").open() as f:
        training = yaml.safe_load(f)["training"]
    return {k: v for k, v in training.items() if k not in NOT_FOR_ONE_PROCESS}


def run(seed: int, precision: str, args: argparse.Namespace, cores: list[int] | None) -> dict:
    training = {
        **default_training(),
        "seed": seed,
        "precision": precision,
        "device": args.device,
        "num_workers": 1,
        "checkpoint_every": 10**9,
    }
    if args.iterations:
        training["iterations"] = args.iterations
    run = calibrate.run_in_subprocess(
        SYNTHETIC,
        f"{precision}_s{seed}",
        training["method"],
        LABELS,
        training["iterations"],
        args.threads,
        training,
        cores,
    )
    result = {**run, "precision": precision}
    print(json.dumps(result), flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--pin", action="store_true", help="give each job its own --threads of the allowed cores"
    )
    p.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="default: the default run's (a smoke test: fewer)",
    )
    args = p.parse_args()
    calibrate.dataset(SYNTHETIC)  # generated once, before parallel runs read it
    runs = [(s, prec) for s in args.seeds for prec in ("bf16", "fp32")]
    allowed = sorted(os.sched_getaffinity(0))  # under taskset: the cores it allows
    free: queue.Queue = queue.Queue()  # core sets not in use: a run takes one and gives it back
    for i in range(args.jobs):
        free.put(allowed[i * args.threads : (i + 1) * args.threads] if args.pin else None)

    def pinned(seed_precision: tuple[int, str]) -> dict:
        cores = free.get()
        try:
            return run(*seed_precision, args, cores)
        finally:
            free.put(cores)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(pinned, runs))
    by = {(r["seed"], r["precision"]): r for r in results}
    diffs = [by[(s, "bf16")]["miou"] - by[(s, "fp32")]["miou"] for s in args.seeds]
    for s, d in zip(args.seeds, diffs, strict=True):
        print(
            f"seed {s}: bf16 {by[(s, 'bf16')]['miou']:.4f} fp32 {by[(s, 'fp32')]['miou']:.4f} "
            f"diff {d:+.4f}"
        )
    for prec in ("bf16", "fp32"):
        mean = statistics.mean(by[(s, prec)]["train_s"] for s in args.seeds)
        print(f"{prec}_train_s_mean={mean:.0f}")
    print(f"mean_diff={statistics.mean(diffs):+.4f}")
    print(f"diff_std={statistics.stdev(diffs) if len(diffs) > 1 else float('nan'):.4f}")


if __name__ == "__main__":
    main()
