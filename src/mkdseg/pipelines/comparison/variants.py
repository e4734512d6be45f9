"""The comparison's parameters (``params:comparison``) as records: its variants and seeds, and
what one run (a variant with a seed) trains with and is logged as.

A *variant* (``comparison.variants.<name>`` in ``parameters_comparison.yml``) is a label
budget plus training overrides (method, ablation switches). Every variant runs once per seed;
seed ``s`` draws the labeled split with seed ``s`` and trains with seed ``s``, so all variants
of one seed share their labeled images and the gain over the supervised baseline is paired.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mkdseg.splitting import DRAWS, UNIFORM

VARIANT_KEYS = frozenset({"labeled", "training", "seeds"})
NAMESPACE_ROOT = "comparison"
SEED_PREFIX = "seed_"


def namespace(variant: str, seed: int) -> str:
    """``comparison.<variant>.seed_<seed>``: one Kedro namespace per variant and seed."""
    return f"{NAMESPACE_ROOT}.{variant}.{SEED_PREFIX}{seed}"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``, recursing into dicts (the way conf environments merge)."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass(frozen=True)
class Variant:
    """One row of the paper's table before seeds: a label budget and training overrides."""

    labeled: Any  # as ``splits.labeled`` takes it: a count, a fraction or "1/16"
    training: Mapping[str, Any]  # over ``params:training``; passed on as it is
    seeds: tuple[int, ...] | None = None  # a subset of ``comparison.seeds``; None: all of them


@dataclass(frozen=True)
class RunIdentity:
    """What names one run in MLflow: the keys a plain ``kedro run`` logs, plus ``variant``."""

    variant: str
    method: str | None
    seed: int
    labeled: Any
    draw: str = UNIFORM  # how the labeled images were drawn (``splits.draw``)

    def params(self) -> dict[str, Any]:
        """The identity as nested params, flattened by the tracking hook (``training.method``)."""
        return {
            "variant": self.variant,
            "training": {"method": self.method, "seed": self.seed},
            "splits": {"labeled": self.labeled, "draw": self.draw},
        }


@dataclass(frozen=True)
class Built:
    """What a comparison pipeline was built from: its name and its grid's runs."""

    pipeline: str
    runs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Grid:
    """``params:comparison``: the variants, the seeds each runs with, and shared overrides."""

    variants: Mapping[str, Variant]
    seeds: tuple[int, ...]
    training: Mapping[str, Any]  # over ``params:training``, under each variant's own
    split_draw: str = UNIFORM  # how each seed's labeled images are drawn (``splits.draw``)

    @classmethod
    def from_parameters(cls, comparison: Mapping[str, Any] | None) -> Grid:
        """The ``comparison`` parameters, checked: every variant, before any run starts.

        ``only`` (a list of names) runs a subset of ``variants``: environments merge parameters
        softly (``settings.py``), so an environment cannot drop variants, only select them.
        """
        comparison = comparison or {}
        variants, seeds = comparison.get("variants"), comparison.get("seeds")
        try:
            if not isinstance(variants, Mapping):
                raise TypeError("variants is not a mapping")
            seeds = tuple(int(seed) for seed in seeds)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                "params:comparison needs comparison.variants (a mapping) and "
                f"comparison.seeds (a list of integers): {exc}"
            ) from exc
        defined = {name: _variant(name, spec, seeds) for name, spec in variants.items()}
        only = comparison.get("only")
        names = list(defined) if only is None else list(only)
        if unknown := [name for name in names if name not in defined]:
            raise ValueError(
                f"comparison.only names unknown variants {unknown} (known: {sorted(defined)})"
            )
        return cls(
            variants={name: defined[name] for name in names},
            seeds=seeds,
            training=comparison.get("training") or {},
            split_draw=_split_draw(comparison.get("split_draw", UNIFORM)),
        )

    @property
    def runs(self) -> tuple[tuple[str, int], ...]:
        """(variant, seed) of every run, variant by variant: the pipeline's shape."""
        return tuple(
            (name, seed)
            for name, variant in self.variants.items()
            for seed in self.seeds
            if variant.seeds is None or seed in variant.seeds
        )

    def check_built(self, built: Built, env: str | None) -> None:
        """The session's grid must be the one the pipeline was built from (``env``'s): another
        environment, or ``--params`` changing the runs, is an error before anything trains."""
        if self.runs != built.runs:
            run = f"kedro run {f'--env {env} ' if env else ''}--pipelines {built.pipeline}"
            raise ValueError(
                f"pipeline {built.pipeline} was built from the {len(built.runs)} runs of its "
                f"environment's params:comparison, but this session's has {len(self.runs)} "
                f"(another environment, or --params changing its variants or seeds): `{run}` "
                "(settings.COMPARISON_GRIDS); a grid of your own goes in conf/local"
            )

    def variant(self, name: str) -> Variant:
        """The variant called ``name``; an unknown name is an error listing the known ones."""
        if name not in self.variants:
            raise ValueError(
                f"comparison.variants has no {name!r} (known: {sorted(self.variants)}); the "
                "comparison pipeline's namespaces come from the parameters comparison.variants"
            )
        return self.variants[name]

    def settings(self, training: Mapping[str, Any], variant: str, seed: int) -> dict[str, Any]:
        """The ``training`` block one run uses: base, then the shared overrides, then the
        variant's, then its seed."""
        shared = deep_merge(training, self.training)
        return deep_merge(shared, {**self.variant(variant).training, "seed": seed})

    def identity(self, variant: str, settings: Mapping[str, Any]) -> RunIdentity:
        """The run's identity; ``settings`` is what ``settings`` gave it (method and seed)."""
        return RunIdentity(
            variant=variant,
            method=settings.get("method"),
            seed=settings["seed"],
            labeled=self.variant(variant).labeled,
            draw=self.split_draw,
        )


def _split_draw(draw: str) -> str:
    """``comparison.split_draw``, checked before any run starts."""
    if draw not in DRAWS:
        raise ValueError(f"comparison.split_draw must be one of {DRAWS}, got {draw!r}")
    return draw


def _variant(name: str, spec: Mapping[str, Any] | None, grid_seeds: tuple[int, ...]) -> Variant:
    """``comparison.variants.<name>``: a ``labeled`` budget, optional ``training`` and
    ``seeds`` (a subset of the grid's: the ablations and second budget run fewer seeds)."""
    spec = spec or {}
    unknown = sorted(set(spec) - VARIANT_KEYS)
    if unknown or "labeled" not in spec:
        raise ValueError(
            f"comparison.variants.{name} needs 'labeled' and may have 'training' and 'seeds'; "
            f"unknown keys: {unknown}"
        )
    seeds = spec.get("seeds")
    if seeds is not None:
        seeds = tuple(int(seed) for seed in seeds)
        if stray := sorted(set(seeds) - set(grid_seeds)):
            raise ValueError(
                f"comparison.variants.{name}.seeds {stray} are not in comparison.seeds "
                f"{list(grid_seeds)}: a variant runs a subset of the grid's seeds"
            )
    return Variant(labeled=spec["labeled"], training=spec.get("training") or {}, seeds=seeds)
