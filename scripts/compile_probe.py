"""Does ``torch.compile`` of MKD's loss side pay on this machine? (issue 35)

    .venv/bin/python scripts/compile_probe.py [--precision bf16|fp32] [--steps 30]

Builds bench.py's texture trainer (conf/base's setting), compiles ``mkd.consistency`` (targets,
feature augmentation, estimators, L_st and L_ss: everything between the networks and the total
loss) as one graph, and times plain and compiled steps alternating in one process (these
machines are noisy), with the consistency forward timed apart. Prints the first compiled step
(compilation; inductor caches it on disk, so a second run compiles faster) and the medians.

Three changes let dynamo take the function as one graph without recompiling, applied to the
compiled steps only and leaving the values unchanged: the class weights by one broadcast
comparison (the core writes one class at a time into a strided ``out=``, which dynamo refuses);
the resize plans looked up in a dict the warm-up steps filled (building one calls ``nonzero``,
a data-dependent shape); and, in both arms, a constant feature-augmentation strength (the step's
cosine ramp is a Python float dynamo specialises on: a recompile every step). The steps train on
one random batch; what is timed is the arithmetic of a step, not its learning.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

import mkdseg.core.methods.mkd as mkd
import mkdseg.core.resized_moments as resized_moments
from mkdseg.core.feature_augmentation import ClassFeatureStatistics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench  # noqa: E402  (benchmarks/ is not a package)

LAMBDA = 0.75  # any nonzero strength: the same ops as a step of the ramp


def broadcast_class_weights(
    self: ClassFeatureStatistics, labels: Tensor, check: bool = True
) -> Tensor:
    """``ClassFeatureStatistics.class_weights``' values in one comparison."""
    if check:
        self.check_labels(labels)
    classes = torch.arange(self.num_classes, device=labels.device)[None, :, None, None]
    return (labels[:, None] == classes).float()


def cached_plans(plans: dict) -> Callable:
    """``resize_plan`` through ``plans``: filled by the warm-up steps, only looked up once
    compiled (building a plan calls ``nonzero``, which dynamo cannot trace)."""
    build = resized_moments.resize_plan

    def plan(
        size_out: tuple[int, int],
        size_in: tuple[int, int],
        device: torch.device,
        dtype: torch.dtype,
    ) -> resized_moments.ResizePlan:
        key = (size_out, size_in, device, dtype)
        if key not in plans:
            plans[key] = build(*key)
        return plans[key]

    return plan


def main() -> None:
    """Warm up eager, compile, then alternate plain and compiled steps and print the medians."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--precision", choices=("bf16", "fp32"), default="bf16")
    p.add_argument("--steps", type=int, default=30, help="steps of each arm")
    args = p.parse_args()
    preset = bench.PRESETS["texture"]
    trainer = bench.make_trainer(preset, "cpu", args.precision)
    labeled, unlabeled = bench.random_batch(preset)
    mkd.feature_aug_lambda = lambda *_: LAMBDA
    eager = (mkd.consistency, resized_moments.resize_plan, ClassFeatureStatistics.class_weights)
    plan = cached_plans({})
    resized_moments.resize_plan = plan
    for _ in range(2):  # warm-up, and the resize plans the compiled steps look up
        trainer.train_step(labeled, unlabeled)
    torch._dynamo.config.error_on_recompile = True  # one graph, compiled once, or no figures
    one_graph = torch.compile(mkd.consistency, dynamic=False, fullgraph=True)
    compiled = (one_graph, plan, broadcast_class_weights)
    forward: dict[str, list[float]] = {"eager": [], "compiled": []}

    def use(arm: str) -> None:
        fn, plans, weights = eager if arm == "eager" else compiled

        def timed_consistency(*a: object, **k: object) -> object:
            start = time.perf_counter()
            out = fn(*a, **k)
            forward[arm].append(time.perf_counter() - start)
            return out

        mkd.consistency = timed_consistency
        resized_moments.resize_plan, ClassFeatureStatistics.class_weights = plans, weights

    use("compiled")
    start = time.perf_counter()
    trainer.train_step(labeled, unlabeled)
    print(f"first compiled step (compilation): {time.perf_counter() - start:.1f}s", flush=True)
    forward["compiled"].clear()
    steps: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.steps):
        for arm in steps:
            use(arm)
            start = time.perf_counter()
            trainer.train_step(labeled, unlabeled)
            steps[arm].append(time.perf_counter() - start)
    for arm in steps:
        print(
            f"[{args.precision} {arm}] step={1e3 * statistics.median(steps[arm]):.1f}ms "
            f"consistency_forward={1e3 * statistics.median(forward[arm]):.1f}ms"
        )


if __name__ == "__main__":
    main()
