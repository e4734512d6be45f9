"""What a parent MLflow run is called and how it is described, from the parameters it used.

kedro-mlflow names a run after its pipeline, so every default run is ``__default__`` and a
table of ten runs shows ten identical names. The tracking hook renames the parent run with
``run_name`` (``mkd 1/16 seed 0``) and writes ``run_description`` into its description
(MLflow's ``mlflow.note.content``): method, labels, dataset, model and, once evaluation has
run, the headline metric. Pure functions: no MLflow here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import PurePath
from typing import Any

from mkdseg.core.architectures import ARCHITECTURES, FCN, applicable_settings
from mkdseg.core.config import ModelConfig
from mkdseg.core.methods import METHODS
from mkdseg.splitting import MASKED_KEYWORD

PARAMS_PREFIX = "params:"
DEFAULT_PIPELINE = "__default__"
# Pipelines whose run *is* a training run: named by what was trained, without a prefix.
TRAINING_PIPELINES = frozenset({DEFAULT_PIPELINE, "training"})
# The parameter group that says most about a run, most specific first.
SUBJECT_ORDER = ("comparison", "training", "prediction", "splits", "dataset", "evaluation")
FRACTION_MAX_DENOMINATOR = 1000  # 0.0625 -> 1/16; a budget like 0.3 stays 0.3
FRACTION_TOLERANCE = 1e-9
_FRACTION_TEXT = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
_NUMBER_TEXT = re.compile(r"^\s*(\d+|\d*\.\d+)\s*$")
HEADLINE_METRIC = "val_mIoU_{mode}"
DEFAULT_EVALUATION_MODE = "whole"
HEADLINE_FORMAT = "{:.3f}"
MASKED_TEXT = "all masks"  # splits.labeled: masked


def consumed_groups(inputs: Iterable[str]) -> set[str]:
    """Top-level parameter groups of its inputs: ``params:training.seed`` -> ``training``."""
    return {
        name[len(PARAMS_PREFIX) :].split(".")[0]
        for name in inputs
        if name.startswith(PARAMS_PREFIX)
    }


def labels_text(labeled: Any) -> str:
    """``splits.labeled`` as a reader says it: ``1/16``, ``all labels``, ``92 labels``,
    ``all masks`` (``masked``: every training image with a mask), ``split labeled.txt``."""
    if isinstance(labeled, str) and labeled.strip() == MASKED_KEYWORD:
        return MASKED_TEXT
    if isinstance(labeled, str):
        if match := _FRACTION_TEXT.match(labeled):
            numerator, denominator = (int(v) for v in match.groups())
            return labels_text(numerator / denominator) if denominator else labeled.strip()
        if _NUMBER_TEXT.match(labeled):
            return labels_text(float(labeled) if "." in labeled else int(labeled))
        return f"split {PurePath(labeled).name}"
    if isinstance(labeled, bool) or labeled is None:
        return str(labeled)
    if isinstance(labeled, int):
        return f"{labeled} labels"
    value = float(labeled)
    if value == 1:
        return "all labels"
    fraction = Fraction(value).limit_denominator(FRACTION_MAX_DENOMINATOR)
    if math.isclose(float(fraction), value, abs_tol=FRACTION_TOLERANCE):
        return f"{fraction.numerator}/{fraction.denominator}"
    return f"{value:g}"


def _origins(metrics: Mapping[str, float]) -> str:
    """Where the unlabeled images came from, when some had no mask: ``; 30 without a mask``."""
    parts = [
        f"{int(metrics[key])} {text}"
        for key, text in (
            ("n_unlabeled_no_mask", "without a mask"),
            ("n_unlabeled_extra", "from an unlabeled pool"),
        )
        if metrics.get(key)
    ]
    return "; " + ", ".join(parts) if parts else ""


def model_phrase(model: Mapping[str, Any]) -> str:
    """The architecture actually trained: ``resnet18 DeepLabv3+`` or ``dilated FCN (32 channels,
    dilations 1-2-4-8)``."""
    settings = applicable_settings({**dataclasses.asdict(ModelConfig()), **model})
    if settings["architecture"] not in ARCHITECTURES:
        return str(settings["architecture"])
    if settings["architecture"] == FCN:
        width = settings.get("decoder_channels", "?")
        dilations = "-".join(str(d) for d in settings.get("dilations") or ())
        return f"dilated FCN ({width} channels, dilations {dilations or '?'})"
    return f"{settings.get('backbone')} DeepLabv3+"


def labels_phrase(labeled: Any) -> str:
    """``splits.labeled`` in a sentence: ``1/16 of the labels``, ``92 labeled images``,
    ``all labels``."""
    text = labels_text(labeled)
    if text == MASKED_TEXT:
        return "every image that has a mask"
    if text.endswith(" labels") and text != "all labels":
        return text.replace(" labels", " labeled images")
    if "/" in text or _NUMBER_TEXT.match(text):
        return f"{text} of the labels"
    return text


def _training_subject(params: Mapping[str, Any]) -> str:
    training, splits = params.get("training") or {}, params.get("splits") or {}
    return (
        f"{training.get('method')} {labels_text(splits.get('labeled'))} seed {training.get('seed')}"
    )


def _subject(group: str, params: Mapping[str, Any]) -> str:
    if group == "comparison":
        comparison = params.get("comparison") or {}
        only = comparison.get("only")  # a subset of the variants, as variants.Grid reads it
        variants = (comparison.get("variants") or {}) if only is None else only
        seeds = comparison.get("seeds") or []
        specs = [(comparison.get("variants") or {}).get(name) or {} for name in variants]
        if not any("seeds" in spec for spec in specs):
            return f"{len(variants)} variants x {len(seeds)} seeds"
        runs = sum(len(spec.get("seeds") or seeds) for spec in specs)  # a variant's own seeds
        return f"{len(variants)} variants, {runs} runs"
    if group == "training":
        return _training_subject(params)
    if group == "prediction":
        folder = (params.get("prediction") or {}).get("input_dir")
        return f"images in {PurePath(str(folder)).name}" if folder else "images"
    if group == "splits":
        splits = params.get("splits") or {}
        return f"{labels_text(splits.get('labeled'))} seed {splits.get('seed')}"
    if group == "dataset":
        return str((params.get("dataset") or {}).get("source"))
    return f"{(params.get('evaluation') or {}).get('mode')} images"


def pipeline_names_of(run_params: Mapping[str, Any]) -> list[str]:
    """The pipelines a ``kedro run`` ran, read from its ``run_params`` as kedro-mlflow does."""
    names = (
        run_params.get("pipeline_name") or run_params.get("pipeline_names") or [DEFAULT_PIPELINE]
    )
    return [names] if isinstance(names, str) else list(names)


def pipeline_label(pipeline_names: Iterable[str] | None) -> str:
    """What kedro-mlflow calls a run of these pipelines (its default run name)."""
    names = list(pipeline_names or [DEFAULT_PIPELINE])
    return "+".join(names)


def run_name(
    pipeline_names: Iterable[str] | None, groups: set[str], params: Mapping[str, Any]
) -> str:
    """``mkd 1/16 seed 0`` for a training run; ``<pipeline>: <what it worked on>`` otherwise."""
    names = list(pipeline_names or [DEFAULT_PIPELINE])
    label = pipeline_label(names)
    group = next((g for g in SUBJECT_ORDER if g in groups), None)
    if group is None:
        return label
    subject = _subject(group, params)
    if group == "training" and TRAINING_PIPELINES.intersection(names):
        return subject
    return f"{label}: {subject}"


def run_description(
    pipeline_names: Iterable[str] | None,
    groups: set[str],
    params: Mapping[str, Any],
    metrics: Mapping[str, float] | None = None,
) -> str:
    """One Markdown paragraph: what was trained on what, and the headline metric once it exists."""
    metrics = metrics or {}
    label = pipeline_label(pipeline_names)
    dataset = params.get("dataset") or {}
    data_text = (
        f"the `{dataset.get('source')}` dataset (`{dataset.get('root')}`)"
        if dataset
        else "the data"
    )
    if "training" not in groups or "comparison" in groups:
        return (
            f"Kedro pipeline `{label}` on {data_text}: {run_name(pipeline_names, groups, params)}."
        )
    training, splits = params.get("training") or {}, params.get("splits") or {}
    model = training.get("model") or {}
    method = str(training.get("method"))
    title = METHODS[method].title if method in METHODS else method
    counts = ""
    if "n_labeled" in metrics and "n_unlabeled" in metrics:
        labeled, unlabeled = int(metrics["n_labeled"]), int(metrics["n_unlabeled"])
        counts = f" ({labeled} of {labeled + unlabeled} training images{_origins(metrics)})"
    text = (
        f"**{title}** trained with {labels_phrase(splits.get('labeled'))}{counts} of {data_text}, "
        f"seed {training.get('seed')}: {model_phrase(model)}, "
        f"{training.get('iterations')} iterations, batch {training.get('batch_size')} labeled + "
        f"{training.get('unlabeled_batch_size')} unlabeled. "
    )
    mode = (params.get("evaluation") or {}).get("mode", DEFAULT_EVALUATION_MODE)
    headline = HEADLINE_METRIC.format(mode=mode)
    if headline in metrics:
        return text + f"Headline: {headline} **{HEADLINE_FORMAT.format(metrics[headline])}**."
    return text + f"Headline metric: {headline} (not logged by this run so far)."
