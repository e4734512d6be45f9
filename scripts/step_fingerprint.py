"""Time N training steps of conf/base's setting and fingerprint everything they computed.

A speed-up that must not change the arithmetic is checked by running this on two commits (one
machine, same arguments): the seconds should drop and ``state_sha256`` must stay the same. The
state is the whole trainer's (students, teachers, optimizer, feature statistics, iteration) and
every metric the steps logged. Batches are random 48 px images and labels (fixed by ``--seed``),
so no data folder is needed; ``--start`` puts the steps past the consistency ramp's start.

    .venv/bin/python scripts/step_fingerprint.py --steps 150           # seconds, state_sha256
    .venv/bin/python scripts/step_fingerprint.py --steps 150 --no-heap-reuse   # glibc's default
    .venv/bin/python scripts/step_fingerprint.py --steps 50 --method cps       # another method
    .venv/bin/python scripts/step_fingerprint.py --steps 50 --parts   # where two hashes differ
    .venv/bin/python scripts/step_fingerprint.py --consistency confidence_threshold=null

On random batches no teacher pixel passes conf/base's 0.95 threshold, so ``L_st`` is 0 there:
``--consistency confidence_threshold=null`` is the run that fingerprints its arithmetic.

The hash depends on the torch build, the thread count and the CPU's kernels. The optimizer's
kernel switches (``KERNEL_SWITCHES``: which of torch's SGD kernels runs) are left out: they say
how the arithmetic is done, and its results (weights, momentum) are in the hash.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from mkdseg.core import trainer as trainer_module
from mkdseg.core.optimization import KERNEL_SWITCHES
from mkdseg.core.trainer import Trainer
from mkdseg.training_inputs import trainer_config

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
from bench import parse_switches  # noqa: E402  (benchmarks/ is not a package)

TRAINING_YAML = PROJECT_ROOT / "conf" / "base" / "parameters_training.yml"
NUM_CLASSES = 5  # the texture benchmark: background + 4 texture families
CROP = 48
PIXEL_LEVELS = 256


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--start", type=int, default=700, help="iteration before the first step")
    p.add_argument("--seed", type=int, default=0, help="seed of the random batches")
    p.add_argument("--method", default=None, help="training.method (default: conf/base's)")
    p.add_argument("--no-heap-reuse", action="store_true", help="skip keep_freed_memory_in_heap")
    p.add_argument(
        "--consistency",
        action="append",
        default=[],
        metavar="KEY=YAML",
        help="override a training.consistency switch, e.g. confidence_threshold=null (repeatable)",
    )
    p.add_argument(
        "--parts", action="store_true", help="also one hash per state entry and per metric name"
    )
    return p.parse_args()


def digest(value: Any, h: hashlib._Hash) -> None:
    """Feed tensors (dtype, shape, bytes) and plain values (repr) into ``h``, keys sorted."""
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            h.update(str(key).encode())
            digest(value[key], h)
    elif isinstance(value, (list, tuple)):
        for item in value:
            digest(item, h)
    elif isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        h.update(f"{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        h.update(repr(value).encode())


def without_kernel_switches(optimizer: dict[str, Any]) -> dict[str, Any]:
    """The optimizer's state dict with ``KERNEL_SWITCHES`` dropped from its groups."""
    groups = [
        {k: v for k, v in group.items() if k not in KERNEL_SWITCHES}
        for group in optimizer["param_groups"]
    ]
    return {**optimizer, "param_groups": groups}


def random_batches(g: torch.Generator, batch: int) -> tuple[tuple, tuple]:
    shape = (batch, 3, CROP, CROP)
    images = torch.randint(0, PIXEL_LEVELS, shape, generator=g, dtype=torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (batch, CROP, CROP), generator=g)
    unlabeled = torch.randint(0, PIXEL_LEVELS, shape, generator=g, dtype=torch.uint8)
    return (images, labels), (unlabeled, torch.ones(batch, CROP, CROP, dtype=torch.bool))


def main() -> None:
    args = parse_args()
    if args.no_heap_reuse:
        trainer_module.keep_freed_memory_in_heap = lambda: False
    training = yaml.safe_load(TRAINING_YAML.read_text())["training"]
    training["method"] = args.method or training["method"]
    training["consistency"].update(parse_switches(args.consistency, "--consistency"))
    trainer = Trainer(trainer_config(training), NUM_CLASSES)
    trainer.iteration = args.start
    g = torch.Generator().manual_seed(args.seed)
    metrics, start = [], time.perf_counter()
    for _ in range(args.steps):
        labeled, unlabeled = random_batches(g, trainer.cfg.batch_size)
        metrics.append(trainer.train_step(labeled, unlabeled))
    seconds = time.perf_counter() - start
    state = {k: v for k, v in trainer.state_dict().items() if k != "rng"}
    state["optimizer"] = without_kernel_switches(state["optimizer"])
    h = hashlib.sha256()
    digest({"state": state, "metrics": metrics}, h)
    print(f"steps={args.steps} threads={torch.get_num_threads()} seconds={seconds:.1f}")
    print(f"state_sha256={h.hexdigest()}")
    if args.parts:
        print_parts(state, metrics)


def print_parts(state: dict[str, Any], metrics: list[dict[str, float]]) -> None:
    """One hash per state entry and per metric name: shows *where* two runs differ (a metric a
    change stopped logging, an estimator it dropped) when ``state_sha256`` does."""
    parts = {f"state.{key}": value for key, value in state.items()}
    names = sorted({name for step in metrics for name in step})
    parts |= {f"metric.{n}": [step.get(n) for step in metrics] for n in names}
    for name, value in sorted(parts.items()):
        h = hashlib.sha256()
        digest(value, h)
        print(f"{name}={h.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
