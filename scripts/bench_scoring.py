"""Score a large unlabeled pool as the labelling node does: images/s and peak memory.

Writes ``--images`` JPEGs of ``--size`` px (copies of 200 distinct noise images, each file
decoded on its own) under ``--folder``, builds conf/base's four MKD networks (untrained: the
cost does not depend on the weights) and scores a tenth of the pool, then all of it, printing
images/s and the process's peak resident memory after each: memory that stays flat from one
to the other is bounded (only a score and class shares per image and the top masks are kept).

    .venv/bin/python scripts/bench_scoring.py [--images 20000] [--size 48]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mkdseg.core.acquisition import ScoreSettings
from mkdseg.core.architectures import make_network
from mkdseg.core.config import ModelConfig
from mkdseg.core.prediction.segmenter import TRAINING_ONLY_KEYS, make_networks_bundle
from mkdseg.labelling import score_unlabeled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench import conf_base_training  # noqa: E402  (needs the path above)

DISTINCT = 200
CLASSES = 5  # the texture set's
ROLES = ("student_1", "student_2", "teacher_1", "teacher_2")
KIB_PER_MIB = 1024


def write_pool(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    payloads = []
    for i in range(DISTINCT):
        path = folder / f"distinct_{i:03d}.jpg"
        if not path.is_file():
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(path, quality=90)
        payloads.append(path.read_bytes())
    paths = [folder / f"pool_{i:05d}.jpg" for i in range(count)]
    for i, path in enumerate(paths):
        if not path.is_file():
            path.write_bytes(payloads[i % DISTINCT])
    return paths


def networks_bundle() -> dict:
    model = ModelConfig(**conf_base_training()["model"])
    args = {k: v for k, v in vars(model).items() if k not in TRAINING_ONLY_KEYS}
    architecture = args.pop("architecture")
    torch.manual_seed(0)
    states = {role: make_network(CLASSES, architecture, **args).state_dict() for role in ROLES}
    colours = [[i * 40, 0, 0] for i in range(CLASSES)]
    return make_networks_bundle(states, model, [f"c{i}" for i in range(CLASSES)], colours)


def peak_rss_mib() -> tuple[float, float]:
    """Peak resident memory of this process and of its finished children (the image reader)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own / KIB_PER_MIB, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / KIB_PER_MIB


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=48, help="pixels a side (textures: 48)")
    parser.add_argument("--folder", type=Path, default=Path("data/bench_scoring"))
    parser.add_argument("--num-workers", type=int, default=1)
    args = parser.parse_args(argv)
    paths = write_pool(args.folder / f"{args.size}px", args.images, args.size)
    bundle = networks_bundle()
    settings = ScoreSettings(score="disagreement", propose=16, batch_size=32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {len(ROLES)} networks")
    for count in (args.images // 10, args.images):
        start = time.perf_counter()
        pool = [str(p) for p in paths[:count]]
        scored = score_unlabeled(bundle, pool, settings, "cpu", args.num_workers)
        wall = time.perf_counter() - start
        own, reader = peak_rss_mib()
        print(
            f"pool={count} wall={wall:.1f}s images_per_s={count / wall:.0f} "
            f"proposals={len(scored.proposals)} peak_rss_mib={own:.0f} "
            f"reader_peak_rss_mib={reader:.0f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
