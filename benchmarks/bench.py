"""Benchmark an MKD training step against the passes it is made of.

    .venv/bin/python benchmarks/bench.py                # on a CPU: conf/base's setting (texture)
    .venv/bin/python benchmarks/bench.py --preset gpu   # ResNet-101 DeepLabv3+, 512x512, 8+8 images
    .venv/bin/python benchmarks/bench.py --profile 15   # ... top 15 ops; networks against the rest
    .venv/bin/python benchmarks/bench.py --compare channels_last loop_sgd compile   # step variants
    .venv/bin/python benchmarks/bench.py --mkd consistency_scale=1.0   # ... with MKD switches set

In one run it times, interleaved and by median (these machines are noisy): the whole MKD step
(augmentation, EMA, four networks, feature augmentation, losses, optimizer); the students'
forward+backward on ``[x_l; x_mix]``; the teachers' forward on ``[x_l; x_w]``; and, where the
method takes ``L_ss`` targets from the unmixed images (``cps_targets: unmixed``, conf/base's
MKD), the students' no-grad forward on ``x_w``. ``overhead_ratio`` = step / (every one of those
network passes) is printed last (1.0: a step is nothing but its networks). It also measures
data-loader throughput against what a step consumes (``bench_loader.py``). For each precision
it counts the FLOPs of one step, measures the device's own matmul peak in that precision and
prints the utilisation (``mfu``). The last lines, one per line: ``precision_auto=`` (what
``training.precision: auto`` picks here), ``speedup_vs_fp32=`` (auto against fp32, same run),
``mfu=`` (auto) and ``overhead_ratio=`` (auto). The gpu and cpu presets need only torch,
torchvision, numpy and PIL; the texture preset reads conf/base (PyYAML, pandas).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from mkdseg.core.config import config_from_dict
from mkdseg.core.flops import count_flops, matmul_peak
from mkdseg.core.methods.mkd import peers_from_unmixed
from mkdseg.core.runtime import (
    autocast,
    cpu_has_native_bf16,
    peak_memory_mb,
    precision_name,
    resolve_device,
    resolve_precision,
)
from mkdseg.core.trainer import Trainer
from mkdseg.core.views import Batch, make_views

# A developer tool outside the package: its helpers sit beside it, whether it runs by path or a
# test or script imports it.
BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from bench_loader import bench_loader  # noqa: E402  (needs the path above)
from bench_variants import VARIANTS  # noqa: E402

TRAINING_YAML = BENCHMARKS.parent / "conf" / "base" / "parameters_training.yml"

PRESETS = {
    # The CPU setting before issue 15: ResNet-18 DeepLabv3+ on the earlier 64 px shapes set.
    "cpu": {"backbone": "resnet18", "channels": 64, "crop": 64, "batch": 8, "classes": 8},
    # conf/base's setting since issue 15: its whole `training` block (the dilated FCN on the 48 px
    # texture benchmark, MKD as the default run trains it), read from parameters_training.yml.
    "texture": {
        "conf_base": True,
        "backbone": "dilated_fcn",  # printed in the summary line
        "crop": 48,
        "batch": 8,
        "classes": 5,
    },
    # The GPU setting: ResNet-101 DeepLabv3+ at 512x512 with 8 labeled + 8 unlabeled images.
    "gpu": {"backbone": "resnet101", "channels": 256, "crop": 512, "batch": 8, "classes": 21},
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=None,
        help="default: gpu if CUDA, else texture (conf/base's setting)",
    )
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--precision",
        nargs="+",
        default=None,
        help="e.g. fp32 bf16 (default: what training.precision auto picks here, and fp32)",
    )
    p.add_argument("--reps", type=int, default=8, help="timed repetitions of each measurement")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument(
        "--workers", type=int, default=2, help="data-loader workers for the loader benchmark"
    )
    p.add_argument(
        "--compare",
        nargs="+",
        choices=sorted(VARIANTS),
        default=[],
        help="also time these step variants against the plain step, interleaved (auto precision)",
    )
    p.add_argument(
        "--mkd",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="MKD switches over the preset's (conf/base's for texture), e.g. consistency_scale=1.0",
    )
    p.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="print torch.profiler's top N ops (by self time) of one step in the auto precision, "
        "and its time split into the networks' passes, the loss side's backward and the rest",
    )
    return p.parse_args(argv)


def conf_base_training() -> dict:
    """conf/base's ``training`` block (the texture preset): needs PyYAML and the project's conf/."""
    try:
        import yaml
    except ImportError as exc:
        raise RuntimeError(
            "the texture preset reads YAML: install pyyaml, or use --preset cpu"
        ) from exc
    if not TRAINING_YAML.is_file():
        raise FileNotFoundError(
            f"the texture preset reads {TRAINING_YAML}: run from the project, or use --preset cpu"
        )
    return yaml.safe_load(TRAINING_YAML.read_text(encoding="utf-8"))["training"]


def parse_switches(pairs: list[str], flag: str = "--mkd") -> dict[str, object]:
    """``flag``'s pairs ``key=value`` -> {key: value}, values read as YAML (``null``, ``1.0``);
    also step_fingerprint's ``--consistency``."""
    if not pairs:
        return {}
    import yaml  # only with --mkd: the gpu and cpu presets run without PyYAML

    switches: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {pair!r}: write KEY=VALUE, e.g. consistency_scale=1.0")
        switches[key] = yaml.safe_load(value)
    return switches


def preset_named(name: str, switches: list[str]) -> dict:
    """A copy of ``PRESETS[name]`` with ``--mkd``'s switches over its own MKD ones."""
    preset = {**PRESETS[name]}
    preset["mkd"] = {**preset.get("mkd", {}), **parse_switches(switches)}
    return preset


def make_trainer(preset: dict, device: str, precision: str) -> Trainer:
    """The preset's trainer; ``preset["mkd"]`` (``--mkd``) over its MKD switches."""
    if preset.get("conf_base"):
        from mkdseg.training_inputs import trainer_config  # pandas: not on the GPU image

        training = {**conf_base_training(), "device": device, "precision": precision}
        training["mkd"] = {**training.get("mkd", {}), **preset.get("mkd", {})}
        return Trainer(trainer_config(training), preset["classes"])
    cfg = config_from_dict(
        {
            "method": "mkd",
            "iterations": 1000,
            "batch_size": preset["batch"],
            "unlabeled_batch_size": preset["batch"],
            "device": device,
            "precision": precision,
            "model": {
                "architecture": preset.get("architecture", "deeplabv3plus"),
                "backbone": preset["backbone"],
                "decoder_channels": preset["channels"],
                "aspp_channels": preset["channels"],
            },
            "augment": {"crop_size": preset["crop"]},
            "mkd": preset.get("mkd", {}),
        }
    )
    return Trainer(cfg, preset["classes"])


def random_batch(preset: dict, seed: int = 0) -> tuple[Batch, Batch]:
    g = torch.Generator().manual_seed(seed)
    b, c, n = preset["batch"], preset["crop"], preset["classes"]
    images = torch.randint(0, 256, (b, 3, c, c), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, n, (b, c, c), generator=g)
    unlabeled = torch.randint(0, 256, (b, 3, c, c), generator=g, dtype=torch.uint8)
    return (images, labels), (unlabeled, torch.ones(b, c, c, dtype=torch.bool))


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def bench_step(
    preset: dict, device: str, precision: str, reps: int, warmup: int
) -> dict[str, float]:
    """Median times of the step and of its passes, measured interleaved on the same networks;
    the step's FLOPs and the device's matmul peak in the same precision."""
    trainer = make_trainer(preset, device, precision)
    dev, nets = trainer.device, trainer.nets
    labeled, unlabeled = random_batch(preset)
    g = torch.Generator(device=dev).manual_seed(0)
    views = make_views(trainer.cfg, labeled, unlabeled, g, dev, trainer.blur, trainer.memory_format)
    x_l, u = views.labeled, views.unlabeled
    student_in = torch.cat([x_l, u.mixed]).contiguous(memory_format=trainer.memory_format)
    teacher_in = torch.cat([x_l, u.weak]).contiguous(memory_format=trainer.memory_format)

    def students() -> None:
        with autocast(dev, trainer.amp_dtype):
            outs = nets.student_pair(student_in)
            loss = sum(o.logits.float().mean() for o in outs)
        loss.backward()
        trainer.optimizer.sgd.zero_grad(set_to_none=True)

    def teachers() -> None:
        with torch.no_grad(), autocast(dev, trainer.amp_dtype):
            nets.teacher_pair(teacher_in)

    def unmixed() -> None:  # the L_ss targets' pass, when the method takes one
        if peers_from_unmixed(trainer.cfg.method):
            with torch.no_grad(), autocast(dev, trainer.amp_dtype):
                nets.unwrapped_students(u.weak)

    def step() -> None:
        trainer.train_step(labeled, unlabeled)

    passes = {"step": step, "students": students, "teachers": teachers, "unmixed": unmixed}
    for _ in range(warmup):
        for fn in passes.values():
            fn()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(reps):
        for name, fn in passes.items():
            times[name].append(timed(fn, dev))
    med = {k: statistics.median(v) for k, v in times.items()}
    networks = med["students"] + med["teachers"] + med["unmixed"]
    flops = count_flops(step)
    peak = matmul_peak(dev, trainer.amp_dtype)
    return {
        "step_s": med["step"],
        "students_s": med["students"],
        "teachers_s": med["teachers"],
        "unmixed_s": med["unmixed"],
        "images_per_s": 2 * preset["batch"] / med["step"],
        "peak_memory_mb": peak_memory_mb(dev),
        "overhead_ratio": med["step"] / networks,
        "step_flops": flops,
        "flops_per_s": flops / med["step"],
        "peak_flops_per_s": peak,
        "mfu": flops / med["step"] / peak,
    }


def bench_variants(
    preset: dict, device: str, precision: str, names: list[str], reps: int
) -> dict[str, dict]:
    """Step time of each variant against the plain step, interleaved; set-up (compile) apart."""
    labeled, unlabeled = random_batch(preset)
    trainers, setup = {}, {}
    for name in ["plain", *names]:
        start = time.perf_counter()
        trainers[name] = make_trainer(preset, device, precision)
        if name in VARIANTS:
            VARIANTS[name](trainers[name])
        for _ in range(2):  # warm-up; compilation happens here
            trainers[name].train_step(labeled, unlabeled)
        setup[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(reps):
        for name, trainer in trainers.items():
            times[name].append(
                timed(lambda t=trainer: t.train_step(labeled, unlabeled), trainer.device)
            )
    plain = statistics.median(times["plain"])
    return {
        name: {
            "step_s": statistics.median(t),
            "speedup": plain / statistics.median(t),
            "setup_s": setup[name],
        }
        for name, t in times.items()
    }


NETWORK_REGION = "networks_forward"
AUTOGRAD_NODE = "autograd::engine::evaluate_function: "


def profile_step(preset: dict, device: str, precision: str, top: int) -> str:
    """torch.profiler's table of one step's ops by self time (after two warm-up steps), then
    the step's self time split into the networks' passes and everything else."""
    from torch.profiler import ProfilerActivity, profile

    trainer = make_trainer(preset, device, precision)
    for pair in (trainer.nets.unwrapped_students, trainer.nets.teacher_pair):
        if pair is not None:  # the pairs' forward (DDP's too) as one named region
            pair.forward = _in_region(pair.forward)
    labeled, unlabeled = random_batch(preset)
    for _ in range(2):
        trainer.train_step(labeled, unlabeled)
    activities = [ProfilerActivity.CPU] + (
        [ProfilerActivity.CUDA] if trainer.device.type == "cuda" else []
    )
    with profile(activities=activities) as prof:
        trainer.train_step(labeled, unlabeled)
    key = "self_device_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=top) + "\n" + split_by_region(prof)


def _in_region(forward: Callable) -> Callable:
    from torch.profiler import record_function

    def wrapped(*args: object, **kwargs: object) -> object:
        with record_function(NETWORK_REGION):
            return forward(*args, **kwargs)

    return wrapped


def _ancestors(event: object) -> Iterator[object]:
    parent = event.cpu_parent
    while parent is not None:
        yield parent
        parent = parent.cpu_parent


def network_sequence(events: list) -> set[int]:
    """Autograd sequence numbers of the ops run inside the networks' forward: their backward
    nodes carry the same numbers."""
    return {
        e.sequence_nr
        for e in events
        if e.sequence_nr >= 0 and any(a.name == NETWORK_REGION for a in _ancestors(e))
    }


def region_of(event: object, network_ops: set[int]) -> tuple[str, str]:
    """(group, what) of a profiled aten op: ``networks`` (forward inside the pairs' calls, the
    backward of those ops, the parameters' gradient accumulation), ``loss backward`` (named by
    its autograd node) or ``rest`` (augmentation, targets, losses, optimizer, EMA)."""
    for parent in _ancestors(event):
        if parent.name == NETWORK_REGION:
            return "networks", event.name
        if parent.name.startswith(AUTOGRAD_NODE):
            node = parent.name.removeprefix(AUTOGRAD_NODE)
            if parent.sequence_nr in network_ops or node.endswith("AccumulateGrad"):
                return "networks", event.name
            return "loss backward", node
    return "rest", event.name


def split_by_region(prof: object, top: int = 6) -> str:
    """One line per group: its share of the aten ops' self CPU time and its largest entries."""
    events = list(prof.events())
    network_ops = network_sequence(events)
    totals: dict[str, float] = {}
    parts: dict[str, dict[str, float]] = {}
    for event in events:
        if not event.name.startswith("aten::"):
            continue
        group, what = region_of(event, network_ops)
        totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total
        named = parts.setdefault(group, {})
        named[what] = named.get(what, 0.0) + event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    lines = [f"aten ops' self CPU time in the step: {whole / 1e3:.1f} ms"]
    for group, total in sorted(totals.items(), key=lambda kv: -kv[1]):
        largest = sorted(parts[group].items(), key=lambda kv: -kv[1])[:top]
        entries = ", ".join(f"{name.removeprefix('aten::')} {t / 1e3:.2f}" for name, t in largest)
        lines.append(f"  {group}: {total / 1e3:.1f} ms ({100 * total / whole:.0f} %): {entries}")
    return "\n".join(lines)


def precisions_to_run(requested: list[str] | None, device: torch.device) -> tuple[str, list[str]]:
    """(what ``auto`` picks on ``device``, the precisions to time: auto first, then fp32)."""
    auto = precision_name(resolve_precision("auto", device))
    wanted = requested or [auto, "fp32"]
    return auto, list(dict.fromkeys(auto if p == "auto" else p for p in wanted))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    name = args.preset or ("gpu" if cuda else "texture")
    preset = preset_named(name, args.mkd)
    auto, precisions = precisions_to_run(args.precision, resolve_device(args.device))
    b = preset["batch"]
    print(
        f"preset={name} backbone={preset['backbone']} crop={preset['crop']} batch={b}+{b} "
        f"device={'cuda:' + torch.cuda.get_device_name() if cuda else 'cpu'} "
        f"threads={torch.get_num_threads()} "
        f"torch={torch.__version__} cpu_native_bf16={cpu_has_native_bf16()}"
        + "".join(f" mkd.{k}={v}" for k, v in preset["mkd"].items())
    )
    results = {}
    for precision in precisions:
        r = bench_step(preset, args.device, precision, args.reps, args.warmup)
        results[precision] = r
        print(
            f"[{precision}] step={r['step_s'] * 1e3:.1f}ms "
            f"students_fwd_bwd={r['students_s'] * 1e3:.1f}ms "
            f"teachers_fwd={r['teachers_s'] * 1e3:.1f}ms "
            f"students_unmixed_fwd={r['unmixed_s'] * 1e3:.1f}ms images/s={r['images_per_s']:.1f} "
            f"step_GFLOP={r['step_flops'] / 1e9:.1f} achieved_GFLOP/s={r['flops_per_s'] / 1e9:.1f} "
            f"matmul_peak_GFLOP/s={r['peak_flops_per_s'] / 1e9:.1f} mfu={r['mfu']:.3f} "
            f"peak_memory={r['peak_memory_mb']:.0f}MB overhead_ratio={r['overhead_ratio']:.3f}",
            flush=True,
        )
    ref = auto if auto in results else precisions[0]  # what the closing lines describe
    if args.compare:
        for name, r in bench_variants(preset, args.device, ref, args.compare, args.reps).items():
            print(
                f"[variant {name}] step={r['step_s'] * 1e3:.1f}ms speedup={r['speedup']:.2f}x "
                f"setup+2 steps={r['setup_s']:.1f}s",
                flush=True,
            )
    if args.profile:
        print(f"profile of one step ({ref}), top {args.profile} ops by self time:")
        print(profile_step(preset, args.device, ref, args.profile), flush=True)
    delivered = bench_loader(preset, args.workers)
    consumed = results[ref]["images_per_s"]
    print(
        f"data loader: {delivered:.1f} images/s with {args.workers} workers; "
        f"a step consumes {consumed:.1f} images/s; "
        f"loader_ratio={delivered / consumed:.2f} (goal >= 2)"
    )
    if ref != auto:
        print(f"(auto would pick {auto}, which was not timed: the lines below describe {ref})")
    print(f"precision_auto={auto}")
    speedup = (
        f"{results[ref]['images_per_s'] / results['fp32']['images_per_s']:.2f}"
        if "fp32" in results
        else "n/a"
    )
    print(f"speedup_vs_fp32={speedup}")
    print(f"mfu={results[ref]['mfu']:.2f}")
    print(f"overhead_ratio={results[ref]['overhead_ratio']:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
