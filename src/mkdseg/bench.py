"""Benchmark an MKD training step against the passes it is made of.

    python -m mkdseg.bench                 # CPU-sized model (the default training setting)
    python -m mkdseg.bench --preset gpu    # ResNet-101 DeepLabv3+, 512x512, 8+8 images, bf16 and fp32

In one run it times, interleaved and by median (these machines are noisy):
the whole MKD step (augmentation, EMA, four networks, feature augmentation,
losses, optimizer); the students' forward+backward on ``[x_l; x_mix]``; the
teachers' forward on ``[x_l; x_w]``. ``overhead_ratio`` = step / (students +
teachers) is printed last. It also measures data-loader throughput against what
a step consumes. Only torch, torchvision, numpy and PIL are needed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mkdseg.core.augmentation import normalize, photometric_distortion, strong_augment
from mkdseg.core.config import config_from_dict
from mkdseg.core.cutmix import box_mask, mix
from mkdseg.core.data import LabeledDataset, UnlabeledDataset, make_train_loader
from mkdseg.core.image_io import MaskEncoding, write_palette_mask
from mkdseg.core.runtime import autocast, peak_memory_mb
from mkdseg.core.trainer import Trainer

PRESETS = {
    # The CPU setting of conf/base/parameters_training.yml.
    "cpu": {"backbone": "resnet18", "channels": 64, "crop": 96, "batch": 8, "classes": 8},
    # The GPU setting: ResNet-101 DeepLabv3+ at 512x512 with 8 labeled + 8 unlabeled images.
    "gpu": {"backbone": "resnet101", "channels": 256, "crop": 512, "batch": 8, "classes": 21},
}
PEAK_TFLOPS = {"bf16": 989.0, "fp32": 67.0}  # H100 SXM dense peaks (fp32 without TF32), for MFU


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None, help="default: gpu if CUDA, else cpu")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", nargs="+", default=None, help="e.g. fp32 bf16 (default: fp32 on CPU, bf16 fp32 on GPU)")
    p.add_argument("--reps", type=int, default=8, help="timed repetitions of each measurement")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--workers", type=int, default=2, help="data-loader workers for the loader benchmark")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: H100 figures)")
    return p.parse_args(argv)


def make_trainer(preset: dict, device: str, precision: str) -> Trainer:
    cfg = config_from_dict({
        "method": "mkd", "iterations": 1000, "batch_size": preset["batch"],
        "unlabeled_batch_size": preset["batch"], "device": device, "precision": precision,
        "model": {"backbone": preset["backbone"], "decoder_channels": preset["channels"],
                  "aspp_channels": preset["channels"]},
        "augment": {"crop_size": preset["crop"]},
    })
    return Trainer(cfg, preset["classes"])


def random_batch(preset: dict, seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
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


def bench_step(preset: dict, device: str, precision: str, reps: int, warmup: int) -> dict[str, float]:
    """Median times of the step and of its passes, measured interleaved on the same networks."""
    trainer = make_trainer(preset, device, precision)
    dev = trainer.device
    labeled, unlabeled = random_batch(preset)
    g = torch.Generator(device=dev).manual_seed(0)
    x_l = normalize(photometric_distortion(labeled[0].to(dev).float() / 255, g))
    x_u = unlabeled[0].to(dev).float() / 255
    x_w = normalize(photometric_distortion(x_u, g))
    x_mix = normalize(mix(strong_augment(x_u, g), box_mask(x_u.shape[0], x_u.shape[-2], x_u.shape[-1], g, device=dev)))
    fmt = torch.channels_last if dev.type == "cuda" else torch.contiguous_format
    student_in = torch.cat([x_l, x_mix]).contiguous(memory_format=fmt)
    teacher_in = torch.cat([x_l, x_w]).contiguous(memory_format=fmt)

    def students() -> None:
        with autocast(dev, trainer.amp_dtype):
            outs = trainer.student_pair(student_in)
            loss = sum(o.logits.float().mean() for o in outs)
        loss.backward()
        trainer.optimizer.zero_grad(set_to_none=True)

    def teachers() -> None:
        with torch.no_grad(), autocast(dev, trainer.amp_dtype):
            trainer.teacher_pair(teacher_in)

    def step() -> None:
        trainer.train_step(labeled, unlabeled)

    for _ in range(warmup):
        step(), students(), teachers()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    times: dict[str, list[float]] = {"step": [], "students": [], "teachers": []}
    for _ in range(reps):
        times["step"].append(timed(step, dev))
        times["students"].append(timed(students, dev))
        times["teachers"].append(timed(teachers, dev))
    med = {k: statistics.median(v) for k, v in times.items()}
    images = 2 * preset["batch"]
    return {
        "step_s": med["step"], "students_s": med["students"], "teachers_s": med["teachers"],
        "images_per_s": images / med["step"], "peak_memory_mb": peak_memory_mb(dev),
        "overhead_ratio": med["step"] / (med["students"] + med["teachers"]),
        "step_flops": step_flops(trainer, labeled, unlabeled) if dev.type == "cuda" else float("nan"),
    }


def step_flops(trainer: Trainer, labeled: tuple, unlabeled: tuple) -> float:
    """FLOPs of one training step, counted by torch's FlopCounterMode (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        trainer.train_step(labeled, unlabeled)
    return float(counter.get_total_flops())


def write_images(root: Path, count: int, size: int, classes: int) -> tuple[list[tuple[str, str]], list[str]]:
    """Random JPEG images and palette masks, larger than the crop as real images are."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(count):
        image, mask = root / f"{i:04d}.jpg", root / f"{i:04d}.png"
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(image, quality=90)
        write_palette_mask(rng.integers(0, classes, (size, size)), [[i, i, i] for i in range(classes)], mask)
        samples.append((str(image), str(mask)))
    return samples, [s[0] for s in samples]


def bench_loader(preset: dict, workers: int, batches: int = 20) -> float:
    """Images/s that the data loaders deliver (labeled + unlabeled), decode and geometry included."""
    crop, b = preset["crop"], preset["batch"]
    with tempfile.TemporaryDirectory() as tmp:
        samples, images = write_images(Path(tmp), 32, int(crop * 1.25), preset["classes"])
        geometry = {"crop_size": crop, "base_size": None, "scale_range": (0.5, 2.0), "hflip_prob": 0.5}
        args = {"batch_size": b, "start_iteration": 0, "total_iterations": batches, "num_workers": workers}
        lab = make_train_loader(LabeledDataset(samples, MaskEncoding(), **geometry), seed=0, **args)
        unl = make_train_loader(UnlabeledDataset(images, **geometry), seed=1, **args)
        it = zip(lab, unl, strict=False)
        next(it)  # worker start-up is not throughput
        start = time.perf_counter()
        n = sum(1 for _ in it)
        return n * 2 * b / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available() and args.device != "cpu"
    name = args.preset or ("gpu" if cuda else "cpu")
    preset = PRESETS[name]
    precisions = args.precision or (["bf16", "fp32"] if cuda else ["fp32"])
    print(f"preset={name} backbone={preset['backbone']} crop={preset['crop']} batch={preset['batch']}+{preset['batch']} "
          f"device={'cuda:' + torch.cuda.get_device_name() if cuda else 'cpu'} threads={torch.get_num_threads()} "
          f"torch={torch.__version__}")
    results = {}
    for precision in precisions:
        r = bench_step(preset, args.device, precision, args.reps, args.warmup)
        results[precision] = r
        line = (f"[{precision}] step={r['step_s'] * 1e3:.1f}ms students_fwd_bwd={r['students_s'] * 1e3:.1f}ms "
                f"teachers_fwd={r['teachers_s'] * 1e3:.1f}ms images/s={r['images_per_s']:.1f} "
                f"peak_memory={r['peak_memory_mb']:.0f}MB overhead_ratio={r['overhead_ratio']:.3f}")
        if not np.isnan(r["step_flops"]):
            peak = args.peak_tflops or PEAK_TFLOPS.get(precision, PEAK_TFLOPS["fp32"])
            mfu = r["step_flops"] / r["step_s"] / (peak * 1e12)
            line += f" step_TFLOP={r['step_flops'] / 1e12:.2f} MFU={mfu:.1%} (peak {peak:.0f} TFLOP/s)"
        print(line, flush=True)
    if "bf16" in results and "fp32" in results:
        print(f"bf16 speed-up over fp32: {results['bf16']['images_per_s'] / results['fp32']['images_per_s']:.2f}x")
    consumed = results[precisions[0]]["images_per_s"]
    delivered = bench_loader(preset, args.workers)
    print(f"data loader: {delivered:.1f} images/s with {args.workers} workers; a step consumes {consumed:.1f} "
          f"images/s; loader_ratio={delivered / consumed:.2f} (goal >= 2)")
    print(f"overhead_ratio={results[precisions[0]]['overhead_ratio']:.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
