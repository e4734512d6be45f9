"""Issue 12's measurement grid: each consistency/baseline fix against today's, paired by seed.

    python scripts/consistency_grid.py --device cuda --jobs 8 --threads 2  # the grid (GPU machine)
    python scripts/consistency_grid.py --device cpu --jobs 1 --iterations 10 --seeds 0 \
        --out /tmp/g.jsonl
    python scripts/consistency_grid.py --prepare-only --data-root data/01_raw/calibration  # data

Every run is ``scripts/calibrate.py`` (the core trainer, no Kedro or MLflow) on the embedded
synthetic set at 64 px, 1/16 labels, with the comparison's setting
(``conf/base/parameters_comparison.yml``: batch 4 labeled + 4 unlabeled, 600 iterations,
consistency ramp-up over the first quarter, the 0.95 teacher threshold) and every switch of issue
12 given explicitly, so the core's defaults do not matter. The dataset is generated once before the
runs start (parallel runs then only read it).
Runs go in parallel as subprocesses (``--jobs``), each with ``--threads`` torch threads and one
data-loader worker. Each finished run appends one JSON line to ``--out``; a rerun skips the
(variant, seed) pairs already there, so an interrupted grid resumes. The table (mean +- std over
seeds; the per-seed difference to the variant's reference and the std of those differences) is
printed and written next to ``--out`` as Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
PROJECT = SCRIPTS.parent
sys.path.insert(0, str(PROJECT / "src"))
sys.path.insert(0, str(SCRIPTS))

import calibrate  # noqa: E402  (needs the paths above)

SYNTHETIC = {"image_size": 64, "class_hue_jitter": 45}  # the comparison's embedded set
LABELS = "1/16"
# conf/base/parameters_comparison.yml: batch 4 + 4, 600 iterations (calibrate.py ramps consistency
# up over the first quarter, 150 iterations, as the comparison does), the paper's 0.95 teacher
# threshold of conf/base. fp32 as the comparison's CPU runs ("auto" would pick bf16 on a GPU).
SETTING = {"batch_size": 4, "unlabeled_batch_size": 4, "num_workers": 1}
THRESHOLD = 0.95
DEFAULT_ITERATIONS = 600
DEFAULT_SEEDS = (0, 1, 2)

# Today's behaviour (before issue 12) and the fixes, one switch per finding.
BEFORE = {
    "consistency": {
        "target_mixing": "grid",
        "label_sampling": "corner",
        "threshold_average": "kept",
    },
    "augment": {"blur_reference_crop": None},
    "model": {"aspp_rule": "fixed", "output_stride": 16},
}
FIXES = {
    "f1_target_mixing": {"consistency": {"target_mixing": "decoder"}},
    "f2_label_sampling": {"consistency": {"label_sampling": "centre"}},
    "f3_threshold_average": {"consistency": {"threshold_average": "valid"}},
    "f4_blur_relative": {"augment": {"blur_reference_crop": 512}},
    "f5_aspp_feature_map": {"model": {"aspp_rule": "feature_map"}},
}
OUTPUT_STRIDE_8 = {
    "model": {"aspp_rule": "feature_map", "output_stride": 8}
}  # finding 5 with stride 8
NO_TEACHERS_NO_FA = {
    "teacher_term": False,
    "feature_aug_students": False,
    "feature_aug_teachers": False,
}
OLD_MEAN_TEACHER = {
    "ema_momentum_end": 0.6,
    "weight_teacher": 1.5,
    "threshold_average": "kept",
    "teacher_rows": "all",
    "confidence_threshold": THRESHOLD,
    "consistency_scale": 0.5,
}


def merge(*blocks: dict[str, Any]) -> dict[str, Any]:
    """Blocks merged left to right, one level deep (the depth of the training parameters)."""
    out: dict[str, Any] = {}
    for block in blocks:
        for key, value in block.items():
            out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


AFTER = merge(BEFORE, *FIXES.values())  # all fixes: conf/base's new default


@dataclass(frozen=True)
class Variant:
    method: str
    training: dict[str, Any]
    reference: str  # the variant its paired differences are taken against
    default: bool = True  # part of the grid when --variants is not given


def _variants() -> dict[str, Variant]:
    mkd = {"mkd": {"confidence_threshold": THRESHOLD}}
    variants = {"mkd_before": Variant("mkd", merge(mkd, BEFORE), "mkd_before")}
    for name, fix in FIXES.items():
        variants[f"mkd_{name}"] = Variant("mkd", merge(mkd, BEFORE, fix), "mkd_before")
    variants["mkd_f5_output_stride_8"] = Variant(
        "mkd", merge(mkd, BEFORE, OUTPUT_STRIDE_8), "mkd_before"
    )
    variants["mkd_after"] = Variant("mkd", merge(mkd, AFTER), "mkd_before")
    # CPS: before = MKD's L_ss alone (the old "cps" preset); after = TorchSemiSeg's CPS+CutMix.
    variants["cps_before"] = Variant("mkd", merge(BEFORE, {"mkd": NO_TEACHERS_NO_FA}), "cps_before")
    variants["cps_after"] = Variant("cps", AFTER, "cps_before")
    # Mean teacher: before = EMA 0.6, weight 1.5, kept average, 1/8 grid; after = its published
    # values (0.99, 1, valid, input resolution).
    variants["mt_before"] = Variant(
        "mean_teacher", merge(BEFORE, {"mean_teacher": OLD_MEAN_TEACHER}), "mt_before"
    )
    variants["mt_after"] = Variant("mean_teacher", AFTER, "mt_before")
    # Not in the default grid: the new baselines with today's findings 1-5, to separate 6 and 7
    # from them (mean teacher keeping its published valid average: part of its form).
    variants["cps_after_form_only"] = Variant("cps", BEFORE, "cps_before", default=False)
    variants["mt_after_form_only"] = Variant(
        "mean_teacher",
        merge(BEFORE, {"mean_teacher": {"threshold_average": "valid"}}),
        "mt_before",
        default=False,
    )
    return variants


VARIANTS = _variants()


def run_one(name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One calibrate.py subprocess; its JSON line plus the grid's fields."""
    variant = VARIANTS[name]
    training = merge(
        SETTING,
        variant.training,
        {"seed": seed, "device": args.device, "precision": args.precision},
    )
    start = time.time()
    run = calibrate.run_in_subprocess(
        SYNTHETIC,
        f"{name} seed {seed}",
        variant.method,
        LABELS,
        args.iterations,
        args.threads,
        training,
    )
    return {
        **run,
        "name": name,
        "variant": name,
        "method": variant.method,
        "reference": variant.reference,
        "seed": seed,
        "wall_s": round(time.time() - start, 1),
        "training": training,
    }


def read_runs(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(runs: list[dict[str, Any]], names: list[str]) -> str:
    """Markdown: per variant mean ± std of val mIoU, per-seed values, paired difference to its
    reference."""
    by = {(r["variant"], r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    rows = [
        "| variant | reference | runs | mIoU mean ± std | per seed | paired diff mean "
        "| paired diff std | target_alignment |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for name in names:
        mine = [by[(name, s)] for s in seeds if (name, s) in by]
        if not mine:
            continue
        ref = VARIANTS[name].reference
        diffs = [
            by[(name, s)]["miou"] - by[(ref, s)]["miou"]
            for s in seeds
            if (name, s) in by and (ref, s) in by
        ]
        paired = name != ref and diffs
        diff_mean = f"{statistics.mean(diffs):+.4f}" if paired else "-"
        diff_std = f"{statistics.stdev(diffs):.4f}" if paired and len(diffs) > 1 else "-"
        alignment = [r["target_alignment"] for r in mine if "target_alignment" in r]
        alignment_text = f"{statistics.mean(alignment):.3f}" if alignment else "-"
        per_seed = " / ".join(f"{r['miou']:.3f}" for r in mine)
        rows.append(
            f"| {name} | {ref} | {len(mine)} | {_mean_std([r['miou'] for r in mine])} "
            f"| {per_seed} | {diff_mean} | {diff_std} | {alignment_text} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda | cpu (default cuda)")
    parser.add_argument("--jobs", type=int, default=8, help="runs at the same time (default 8)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run (default 2)")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument(
        "--variants",
        nargs="+",
        choices=sorted(VARIANTS),
        default=None,
        help="default: the grid (" + ", ".join(n for n, v in VARIANTS.items() if v.default) + ")",
    )
    parser.add_argument(
        "--precision", default="fp32", help="training.precision of every run (default fp32)"
    )
    parser.add_argument(
        "--out", type=Path, default=PROJECT / "data" / "08_reporting" / "consistency_grid.jsonl"
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=calibrate.ROOT,
        help=f"where the synthetic set is generated or found (default {calibrate.ROOT}); a copy "
        "made elsewhere is reused when its stamp matches",
    )
    parser.add_argument("--prepare-only", action="store_true", help="generate the dataset and stop")
    parser.add_argument("--dry-run", action="store_true", help="print the runs' settings and stop")
    args = parser.parse_args(argv)
    calibrate.ROOT = args.data_root.resolve()
    names = args.variants or [n for n, v in VARIANTS.items() if v.default]
    names += sorted(
        {VARIANTS[n].reference for n in names} - set(names)
    )  # a difference needs its reference
    if args.dry_run:
        for name in names:
            print(name, VARIANTS[name].method, json.dumps(merge(SETTING, VARIANTS[name].training)))
        return
    start = time.time()
    calibrate.dataset(
        SYNTHETIC
    )  # before any run starts: parallel runs must not race to generate it
    print(f"dataset ready under {calibrate.ROOT} ({time.time() - start:.0f} s)", flush=True)
    if args.prepare_only:
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {
        (r["variant"], r["seed"])
        for r in read_runs(args.out)
        if r.get("iterations") == args.iterations
    }
    todo = [(n, s) for s in args.seeds for n in names if (n, s) not in done]
    print(f"{len(todo)} runs to do ({len(done)} already in {args.out})", flush=True)
    failures = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(run_one, n, s, args): (n, s) for n, s in todo}
        for future in as_completed(futures):
            name, seed = futures[future]
            try:
                run = future.result()
            except RuntimeError as err:
                failures += 1
                print(err, file=sys.stderr, flush=True)
                continue
            with args.out.open("a") as f:
                f.write(json.dumps(run) + "\n")
            print(
                f"{name} seed {seed}: mIoU {run['miou']:.4f}, {run['train_s']} s training, "
                f"{run['wall_s']} s",
                flush=True,
            )
    runs = [
        r
        for r in read_runs(args.out)
        if r.get("iterations") == args.iterations and r["seed"] in args.seeds
    ]
    markdown = table(runs, names)
    args.out.with_suffix(".md").write_text(markdown + "\n")
    print(markdown)
    if failures:
        raise SystemExit(f"{failures} run(s) failed; rerun the same command to retry them")


if __name__ == "__main__":
    main()
