"""Calibration: how well one training setting learns the embedded synthetic dataset.

    .venv/bin/python scripts/calibrate.py '<dataset.synthetic JSON>' NAME METHOD LABELS \
        ITERATIONS [THREADS] ['<training JSON>']

Generates (or reuses) the synthetic set under /tmp/mkdseg-calibration, splits it 1/16 or 1/8
(LABELS = "1/16", "1/8") or uses every training image (LABELS = "all"), trains with the core trainer
(the code path of the training node, without Kedro/MLflow) and prints one JSON line: val mIoU,
per-class IoU, training seconds. Consistency ramps up over the first quarter of the iterations;
other training settings go in the last argument. Its "seed" (default 0) draws both the labeled
split and the initialisation, as in the comparison pipeline. Settings not given are the core's
defaults (``core/config.py``, the release's values), not conf/base's: pass e.g.
``{"consistency": {"confidence_threshold": 0.95}}`` for the paper's threshold. Example (a row of
the README's calibration table):

    .venv/bin/python scripts/calibrate.py '{"image_size":64,"class_hue_jitter":45}' sup16 \
        supervised 1/16 300 1
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from mkdseg import training_inputs
from mkdseg.core.config import config_from_dict
from mkdseg.core.evaluation import EvalSettings, evaluate
from mkdseg.core.image_io import MaskEncoding
from mkdseg.core.prediction.segmenter import make_bundle, segmenter_from_bundle
from mkdseg.core.trainer import Trainer
from mkdseg.sources.manifest import build_manifest
from mkdseg.splitting import make_split

ROOT_VARIABLE = "MKDSEG_CALIBRATION_ROOT"  # where the synthetic sets go; default below
ROOT = Path(os.environ.get(ROOT_VARIABLE, "/tmp/mkdseg-calibration"))
PROJECT = Path(__file__).resolve().parents[1]
# The CPU setting of conf/base/parameters_training.yml.
BASE = {
    "batch_size": 8,
    "unlabeled_batch_size": 8,
    "device": "cpu",
    "num_workers": 1,
    "checkpoint_every": 10**6,
    "model": {
        "backbone": "resnet18",
        "decoder_channels": 64,
        "aspp_channels": 64,
        "low_level_channels": 24,
    },
    "optim": {"lr": 0.02},
}
DIAGNOSTICS = (
    "target_alignment",
    "kept_share_st",
    "kept_share_st_background",
    "kept_share_st_objects",
)


def run_in_subprocess(
    synth: dict,
    name: str,
    method: str,
    labels: str,
    iterations: int,
    threads: int,
    training: dict,
    cores: list[int] | None = None,
) -> dict:
    """This script in a child process (one run of a parallel grid): its JSON line as a dict.

    The child reads the synthetic set under ``ROOT`` and uses ``threads`` torch/OpenMP threads,
    pinned to ``cores`` when given; a failed run raises with the end of its stderr.
    """
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        json.dumps(synth),
        name,
        method,
        labels,
        str(iterations),
        str(threads),
        json.dumps(training),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(PROJECT / "src"), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        ROOT_VARIABLE: str(ROOT),
    }
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False, preexec_fn=pin
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1])


def dataset(synth: dict) -> tuple[pd.DataFrame, dict]:
    """The synthetic set under ``ROOT`` (made on first use): its manifest and class metadata."""
    root = ROOT / ("data_" + "_".join(f"{k}{v}" for k, v in sorted(synth.items())))
    manifest, meta, _ = build_manifest(
        {"source": "synthetic", "root": str(root), "synthetic": synth, "on_bad_sample": "fail"},
        PROJECT,
    )
    return manifest, meta


def training_params(method: str, iterations: int, crop: int, extra: dict) -> dict:
    """The ``training`` block of a run: ``BASE``, the method, consistency ramped up over the first
    quarter of the run, then ``extra`` merged one level deep."""
    params = {
        **BASE,
        "method": method,
        "iterations": iterations,
        "augment": {"crop_size": crop},
        "consistency": {"consistency_rampup": iterations // 4},
    }
    for key, value in extra.items():
        params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) else value
    return params


def main(argv: list[str]) -> None:
    synth, name, method, labels, iterations = (
        json.loads(argv[0]),
        argv[1],
        argv[2],
        argv[3],
        int(argv[4]),
    )
    torch.set_num_threads(int(argv[5]) if len(argv) > 5 else torch.get_num_threads())
    extra = json.loads(argv[6]) if len(argv) > 6 else {}
    manifest, meta = dataset(synth)
    budget = {"1/16": 0.0625, "1/8": 0.125, "all": 0.0625}[labels]
    labeled, unlabeled, val, _ = make_split(
        manifest, meta["names"], budget, int(extra.get("seed", 0)), PROJECT
    )
    cfg = config_from_dict(training_params(method, iterations, synth.get("image_size", 64), extra))
    data = training_inputs.train_data(
        manifest, meta, labeled + unlabeled if labels == "all" else labeled, unlabeled
    )
    start = time.time()
    result = Trainer(cfg, data.num_classes).fit(data)
    seconds = time.time() - start
    segmenter = segmenter_from_bundle(
        make_bundle(result.student, cfg.model, meta["names"], meta["colours"])
    )
    scores = evaluate(
        segmenter,
        training_inputs.samples_for(manifest, val, "val"),
        MaskEncoding(),
        len(meta["names"]),
        EvalSettings(keep_predictions=0, precision=cfg.precision),
    )
    line = {
        "name": name,
        "miou": round(scores.miou, 4),
        "iou": [round(float(x), 2) for x in scores.iou],
        "train_s": round(seconds),
        "iterations": iterations,
        "seed": cfg.seed,
    }
    for key in DIAGNOSTICS:  # run means of the per-iteration diagnostics the method logs
        values = [h[key] for h in result.history if key in h]
        if values:
            line[key] = round(sum(values) / len(values), 4)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
