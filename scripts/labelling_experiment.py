"""Does labelling the images the networks rank first beat labelling images drawn at random?

For each method and seed: train on the 1/16 split (conf's settings, the split drawn with the
run's seed), score the unlabeled images with every candidate score (the labelling node's own
functions), then train again with ``--add`` more labeled images chosen by each arm: the top of
a score's ranking, or a seeded random draw (the same draw for every method). Their true masks
play the corrected proposals. Every run is evaluated on the env's val split.

Rows are appended to ``<out>/results.csv`` as runs finish and picks are kept in
``<out>/picks``: an interrupted experiment re-run with the same arguments skips what is done
and resumes an interrupted training from its checkpoint. ``--summary`` prints the paired table.

    # choose the score on the tuning set (data seed 1), never on the reported one:
    .venv/bin/python scripts/labelling_experiment.py --env tuning --seeds 10 \\
        --arms random entropy disagreement entropy@0.1
    # the reported table (data seed 0, seeds 0/1/2) with the chosen score (disagreement; a
    # one-network method has none, so supervised runs its fallback, entropy):
    .venv/bin/python scripts/labelling_experiment.py --env base --methods mkd \
        --arms random disagreement
    .venv/bin/python scripts/labelling_experiment.py --env base --methods supervised \
        --arms random entropy
    .venv/bin/python scripts/labelling_experiment.py --env base --summary
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from kedro.config import OmegaConfigLoader

from mkdseg import splitting
from mkdseg.core.acquisition import ScoreSettings
from mkdseg.labelling import applicable, rank_pool
from mkdseg.pipelines.evaluation.nodes import evaluate_model
from mkdseg.pipelines.training.nodes import train_model
from mkdseg.settings import CONFIG_LOADER_ARGS
from mkdseg.sources.manifest import build_manifest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RANDOM = "random"
# Every candidate's picks are stored with the initial run (scoring is seconds), so a ranked arm
# can be trained later, once the score is chosen on the tuning set.
CANDIDATES = ("entropy", "disagreement", "entropy@0.1", "disagreement@0.1")
INITIAL = "initial"
FIELDS = ("env", "method", "seed", "arm", "n_labeled", "val_mIoU", "train_seconds")
METRIC = "val_mIoU_whole"


def parameters(env: str, data_root: str) -> dict:
    """The env's parameters, as ``kedro run --env <env> --params data_root=<root>`` sees them."""
    args = {**CONFIG_LOADER_ARGS, "default_run_env": env}  # the project's soft merge
    loader = OmegaConfigLoader(
        str(PROJECT_ROOT / "conf"), runtime_params={"data_root": data_root}, **args
    )
    return loader["parameters"]


def parse_arm(arm: str) -> dict:
    """``entropy`` or ``entropy@0.1`` (mean over each image's 10 % most uncertain pixels)."""
    score, _, share = arm.partition("@")
    return {"score": score, "top_share": float(share) if share else 1.0}


def done_rows(path: Path) -> set[tuple[str, str, int, str]]:
    if not path.is_file():
        return set()
    table = pd.read_csv(path)
    return {(r.env, r.method, int(r.seed), r.arm) for r in table.itertuples()}


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file()
    with path.open("a", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


class Experiment:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.out = args, args.out
        self.params = parameters(args.env, str(args.data_root))
        self.manifest, self.meta, _ = build_manifest(self.params["dataset"], PROJECT_ROOT)
        self.results = self.out / "results.csv"
        self.done = done_rows(self.results)
        self.splits: dict[int, tuple[list[str], list[str], list[str]]] = {}

    def training(self, method: str, seed: int) -> dict:
        return {
            **self.params["training"],
            "method": method,
            "seed": seed,
            "threads": self.args.threads,
            **({"iterations": self.args.iterations} if self.args.iterations else {}),
            "resume": True,
            "checkpoint_root": str(self.out / "checkpoints"),
        }

    def split(self, seed: int) -> tuple[list[str], list[str], list[str]]:
        """The 1/16 split drawn with ``seed`` (drawn once per seed)."""
        if seed not in self.splits:
            splits = self.params["splits"]
            labeled, unlabeled, val, _ = splitting.make_split(
                self.manifest,
                self.meta["names"],
                splits["labeled"],
                seed,
                PROJECT_ROOT,
                splits["draw"],
            )
            self.splits[seed] = labeled, unlabeled, val
        return self.splits[seed]

    def run(self, method: str, seed: int, arm: str, labeled: list[str], unlabeled: list[str]):
        """Train and evaluate one run; append its row; return the trained networks."""
        start = time.perf_counter()
        training = self.training(method, seed)
        bundle, networks, _, _ = train_model(self.manifest, self.meta, labeled, unlabeled, training)
        seconds = time.perf_counter() - start
        _, _, val = self.split(seed)
        evaluation = {**self.params["evaluation"], "keep_predictions": 1}
        metrics, _, _ = evaluate_model(bundle, self.manifest, self.meta, val, evaluation)
        row = {
            "env": self.args.env,
            "method": method,
            "seed": seed,
            "arm": arm,
            "n_labeled": len(labeled),
            "val_mIoU": round(metrics[METRIC], 6),
            "train_seconds": round(seconds, 1),
        }
        append_row(self.results, row)
        self.done.add((self.args.env, method, seed, arm))
        print(json.dumps(row), flush=True)
        return networks

    def picks(self, method: str, seed: int) -> dict[str, list[str]]:
        """Every arm's added ids for this method and seed, from the initial run (trained here
        unless its picks are stored)."""
        path = self.out / "picks" / f"{method}_seed{seed}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        labeled, unlabeled, _ = self.split(seed)
        networks = self.run(method, seed, INITIAL, labeled, unlabeled)
        rng = np.random.default_rng(seed)
        picks = {RANDOM: sorted(rng.choice(unlabeled, self.args.add, replace=False).tolist())}
        trained = len(networks["state_dicts"])
        for arm in dict.fromkeys([*CANDIDATES, *self.args.arms]):
            if (
                arm == RANDOM
                or applicable(ScoreSettings(**parse_arm(arm)), trained).score
                != (parse_arm(arm)["score"])
            ):
                continue  # a one-network method has no disagreement: that arm is not run
            labelling = {**self.params["labelling"], **parse_arm(arm), "propose": 0}
            table, _ = rank_pool(networks, self.manifest, self.meta, unlabeled, labelling)
            picks[arm] = table["id"].head(self.args.add).tolist()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(picks, indent=1), encoding="utf-8")
        tmp.replace(path)
        return picks

    def go(self) -> None:
        for seed in self.args.seeds:
            for method in self.args.methods:
                picks = self.picks(method, seed)
                labeled, unlabeled, _ = self.split(seed)
                for arm in self.args.arms:
                    if arm not in picks:
                        print(
                            f"{method} seed {seed}: no picks for {arm!r} (not applicable or not "
                            "a candidate when its initial run was scored); skipped",
                            flush=True,
                        )
                        continue
                    if (self.args.env, method, seed, arm) in self.done:
                        continue
                    added = set(picks[arm])
                    self.run(
                        method,
                        seed,
                        arm,
                        sorted(set(labeled) | added),
                        [i for i in unlabeled if i not in added],
                    )


def summary(results: Path) -> str:
    """Per method and arm: mean +- std over seeds; the paired difference to the random arm."""
    table = pd.read_csv(results)
    lines = [
        "| env | method | arm | seeds | val mIoU (mean ± std) | minus random, paired "
        "(mean ± std) |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for (env, method), runs in table.groupby(["env", "method"], sort=False):
        by_arm = runs.pivot_table(index="seed", columns="arm", values="val_mIoU")
        for arm in by_arm.columns:
            values = by_arm[arm].dropna()
            diff = ""
            if arm not in (RANDOM, INITIAL) and RANDOM in by_arm.columns:
                paired = (by_arm[arm] - by_arm[RANDOM]).dropna()
                diff = f"{paired.mean():+.4f} ± {paired.std(ddof=1) if len(paired) > 1 else 0:.4f}"
            std = values.std(ddof=1) if len(values) > 1 else 0.0
            lines.append(
                f"| {env} | {method} | {arm} | {len(values)} | {values.mean():.4f} ± {std:.4f} "
                f"| {diff} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="base", help="conf env (tuning: data seed 1)")
    parser.add_argument(
        "--data-root", type=Path, default=None, help="default: data/labelling/<env>"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: <data-root>/experiment")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=["supervised", "mkd"])
    parser.add_argument("--arms", nargs="+", default=[RANDOM, "disagreement"])
    parser.add_argument("--add", type=int, default=125, help="images added to the labeled split")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per training")
    parser.add_argument(
        "--iterations", type=int, default=None, help="default: conf's (smoke tests)"
    )
    parser.add_argument("--summary", action="store_true", help="print the table and stop")
    args = parser.parse_args(argv)
    args.data_root = args.data_root or PROJECT_ROOT / "data" / "labelling" / args.env
    args.out = args.out or args.data_root / "experiment"
    if args.summary:
        print(summary(args.out / "results.csv"))
        return 0
    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    Experiment(args).go()
    print(summary(args.out / "results.csv"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
