"""Training configuration: one dataclass tree, built from the ``training`` parameters.

The four methods share one training step; a method is only a set of switches
(``METHOD_PRESETS``). Defaults follow the MKD release (``MKD_SPEC.md``); the
comments say where each value comes from.

A method's switches are layered: the dataclass defaults, then ``training.mkd`` (MKD's
switches and the settings every method shares, such as the ramp-up), then the preset's
published values for that method (``MethodPreset.defaults``), then the per-method block
``training.<method>`` (e.g. ``training.mean_teacher``) that overrides those, and last the
switches that define the method (``MethodPreset.fixed``), which nothing overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from mkdseg.core.model import ASPP_RULES, aspp_rates_for

METHODS = ("supervised", "mean_teacher", "cps", "mkd")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BN_MODES = ("train", "eval")
TARGET_MIXINGS = ("grid", "decoder")
LABEL_SAMPLINGS = ("corner", "centre")
THRESHOLD_AVERAGES = ("kept", "valid")
CPS_TARGETS = ("mixed", "unmixed")
MIXED_VIEWS = ("strong", "weak")
TEACHER_ROWS = ("all", "unlabeled")
MAX_CONSISTENCY_SCALE = (
    4.0  # the decoder is at 1/4 of the input: 4 puts consistency at input resolution
)
# Strong-view ops and their selection weights (spec §2; the order of augmentation.STRONG_OPS).
STRONG_OP_WEIGHTS = {
    "color_jitter": 0.3,
    "blur": 0.5,
    "equalize": 0.1,
    "solarize": 0.1,
    "grayscale": 0.5,
}


@dataclass
class ModelConfig:
    """DeepLabv3+ (spec §6). The release uses ResNet-50 at output stride 16, 256 channels."""

    backbone: str = "resnet50"
    output_stride: int = 16
    aspp_channels: int = 256
    decoder_channels: int = 256
    low_level_channels: int = 48
    pretrained: str | None = None  # local checkpoint path or torchvision weights name
    # ASPP dilations. "fixed": 6/12/18 at stride 16 (x2 at 8) whatever the crop, the release's
    # values; "feature_map": those rates scaled by the training feature map against the release's
    # (512 px / 16 = 32), rounded up, kept below the map's side so no branch degenerates to a
    # 1x1 convolution (equal at 512 px). Resolved into ``aspp_rates`` by TrainConfig.
    aspp_rule: str = "fixed"
    aspp_rates: tuple[int, ...] | None = (
        None  # explicit dilations at this output stride; null: from aspp_rule
    )


@dataclass
class MethodConfig:
    """Method switches (spec §1, §4, §5). ``name`` picks a preset; the rest refine it."""

    name: str = "mkd"
    teacher_term: bool = True  # L_st: each student taught by the other branch's teacher
    student_term: bool = True  # L_ss: cross pseudo-supervision between the students
    feature_aug_students: bool = True  # ISDA-style logit augmentation on students
    feature_aug_teachers: bool = True  # ... and on teachers
    confidence_threshold: float | None = None  # release: off; paper: 0.95
    # How thresholded L_st is averaged: "kept" = over the pixels that pass (the release's code path,
    # mmseg CE with avg_non_ignore over the pixels not set to ignore); "valid" = over all valid pixels,
    # dropped ones counting 0 (FixMatch, UniMatch).
    threshold_average: str = "kept"
    # Where teacher targets are CutMix-ed: "decoder" = logits and features mixed at decoder resolution
    # (1/4) with the mask resized there (nearest), then resized bilinearly to the consistency grid
    # (the release); "grid" = resized to the grid first, mixed with the mask sampled at the grid
    # (this project before issue 12: misaligned at small crops).
    target_mixing: str = "decoder"
    # How ground-truth labels and padding masks are sampled on the consistency grid: "corner" =
    # nearest, the top-left pixel of each block (the release, mmseg resize); "centre" = nearest-exact.
    label_sampling: str = "corner"
    # Targets of L_ss: "mixed" = the other student's argmax on the mixed image, over [labeled;
    # unlabeled] (MKD release); "unmixed" = the other student's no-grad prediction on the unmixed
    # unlabeled images, CutMix-ed like the teachers' (TorchSemiSeg CPS+CutMix), unlabeled rows only.
    cps_targets: str = "mixed"
    # The images CutMix mixes for the students: "strong" views (MKD, mean teacher) or the "weak"
    # ones the targets were computed on (TorchSemiSeg CPS+CutMix has no strong view).
    mixed_view: str = "strong"
    # The rows L_st covers: "all" = labeled and unlabeled images (MKD release); "unlabeled" = the
    # unlabeled images only (FixMatch/UniMatch's loss_u, the mean-teacher baseline).
    teacher_rows: str = "all"
    student_confidence_threshold: float | None = (
        None  # not in the spec (L_ss never thresholded): off
    )
    ema_momentum_end: float = 0.6  # release 0.6 (0.99/0.999 usual elsewhere)
    weight_teacher: float = 1.5  # w_st, release
    weight_student: float = 1.0  # w_ss, release
    lambda_end: float = 1.5  # feature-augmentation strength, release
    lambda_schedule: str = "cosine"  # cosine ramp (release); constant | linear
    consistency_scale: float = (
        0.5  # release computes consistency at 1/2 decoder res (1/8 input); 4: input res
    )
    consistency_rampup: int = 0  # iterations of sigmoid ramp on w_st, w_ss; release: 0 (none)
    teacher_bn_mode: str = "train"  # release: teachers in train mode (batch statistics)
    confidence_report_threshold: float = 0.95  # only for the logged "confident share" diagnostic


@dataclass
class OptimConfig:
    """SGD with the poly schedule (spec §6)."""

    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9


@dataclass
class AugmentConfig:
    """Shared geometry (spec §2); photometric/strong/CutMix values are the spec's and live in their modules."""

    crop_size: int = 512
    base_size: int | None = None  # None: rescale relative to each image's own size
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip_prob: float = 0.5
    # Gaussian blur of the strong view: the release's (albumentations: kernel 3-7, sigma 0.1-2.0 px)
    # holds for this crop side and scales with crop_size / blur_reference_crop; null: sigma 0.1-2.0 px
    # and kernel 2*ceil(3 sigma)+1 at any crop (this project before issue 12).
    blur_reference_crop: int | None = 512
    # Strong view (spec §2): op -> selection weight, the spec's by default. A parameter because
    # some domains forbid an op (e.g. grayscale where colour defines the class).
    strong_ops: dict[str, float] = field(default_factory=lambda: dict(STRONG_OP_WEIGHTS))

    @property
    def strong_weights(self) -> tuple[float, ...]:
        """Weights in ``STRONG_OP_WEIGHTS`` order; an op left out has weight 0."""
        return tuple(float(self.strong_ops.get(op, 0.0)) for op in STRONG_OP_WEIGHTS)


@dataclass
class TrainConfig:
    """Everything one training run needs besides the data."""

    method: MethodConfig = field(default_factory=MethodConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    iterations: int = 30_000  # release
    batch_size: int = 4  # labeled images per step per GPU (release: 4)
    unlabeled_batch_size: int = 4  # unlabeled images per step per GPU (release: 4)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    precision: str = (
        "auto"  # auto: bf16 on CUDA and native-bf16 CPUs, fp16 on older CUDA, else fp32
    )
    num_workers: int = 2
    checkpoint_every: int = 1000
    max_nonfinite_in_row: int = 20
    log_every: int = 1
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    separate_view_passes: bool = False  # release: labeled and unlabeled views in separate passes

    def __post_init__(self) -> None:
        apply_method_preset(self.method)
        if self.model.aspp_rates is None and self.model.aspp_rule in ASPP_RULES:
            self.model.aspp_rates = aspp_rates_for(
                self.model.aspp_rule, self.augment.crop_size, self.model.output_stride
            )
        validate(self)

    @property
    def num_students(self) -> int:
        """Two branches unless the method is single-branch (supervised, mean teacher)."""
        return 1 if self.method.name in ("supervised", "mean_teacher") else 2

    @property
    def uses_teachers(self) -> bool:
        return self.method.name != "supervised" and self.method.teacher_term

    @property
    def uses_unlabeled(self) -> bool:
        return self.method.name != "supervised"


@dataclass(frozen=True)
class MethodPreset:
    """``fixed``: the switches that define the method (nothing overrides them); ``defaults``: its
    published values, over ``training.mkd`` and under the block ``training.<method>``."""

    fixed: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)


NO_CONSISTENCY = {
    "teacher_term": False,
    "student_term": False,
    "feature_aug_students": False,
    "feature_aug_teachers": False,
}
METHOD_PRESETS: dict[str, MethodPreset] = {
    "supervised": MethodPreset(fixed=NO_CONSISTENCY),
    # Mean teacher (Tarvainen & Valpola 2017) in the FixMatch form UniMatch's repository uses for
    # segmentation (fixmatch.py): one student on the CutMix-ed strong view learns, on the unlabeled
    # images only (loss_u), the argmax of its
    # EMA teacher on the unmixed weak view, mixed with the same mask; pixels under 0.95 teacher
    # confidence count 0 and the loss is averaged over all valid pixels (loss_u * (conf >= 0.95) /
    # valid), on logits upsampled to the input; unsupervised weight 1, as the labeled term
    # ((loss_x + loss_u) / 2). EMA momentum min(1 - 1/t, 0.99): Tarvainen & Valpola's schedule
    # (0.999 in long runs).
    "mean_teacher": MethodPreset(
        fixed={
            "teacher_term": True,
            "student_term": False,
            "feature_aug_students": False,
            "feature_aug_teachers": False,
            "mixed_view": "strong",
        },
        defaults={
            "teacher_rows": "unlabeled",
            "ema_momentum_end": 0.99,
            "confidence_threshold": 0.95,
            "threshold_average": "valid",
            "weight_teacher": 1.0,
            "consistency_scale": MAX_CONSISTENCY_SCALE,
        },
    ),
    # Cross pseudo supervision with CutMix (Chen et al. 2021, TorchSemiSeg
    # exp.voc/voc8.res50v3+.CPS+CutMix/train.py): each network's no-grad prediction on the unmixed
    # unlabeled images, mixed with the CutMix mask, is the other network's target on the mixed
    # image; no strong view; loss on logits upsampled to the input (network.py upsamples before the
    # loss); cps_weight 1 (that experiment's config.py); no threshold.
    "cps": MethodPreset(
        fixed={
            "teacher_term": False,
            "student_term": True,
            "feature_aug_students": False,
            "feature_aug_teachers": False,
            "cps_targets": "unmixed",
            "mixed_view": "weak",
        },
        defaults={"weight_student": 1.0, "consistency_scale": MAX_CONSISTENCY_SCALE},
    ),
    "mkd": MethodPreset(),
}


def check_method(name: str) -> MethodPreset:
    if name not in METHODS:
        raise ValueError(f"training.method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHOD_PRESETS[name]


def method_values(name: str, mkd: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A method's switches: ``training.mkd``, the preset's published values, ``training.<method>``,
    the preset's fixed switches, in that order."""
    preset = check_method(name)
    fixed = sorted(set(overrides) & set(preset.fixed))
    if fixed:
        raise ValueError(
            f"training.{name}.{fixed[0]} is fixed by the {name} preset (config.py "
            "METHOD_PRESETS); train method mkd with its switches to change it"
        )
    return {**mkd, **preset.defaults, **overrides, **preset.fixed, "name": name}


def apply_method_preset(method: MethodConfig) -> None:
    """Set the switches that define the method (idempotent; published values come from ``method_values``)."""
    for key, value in check_method(method.name).fixed.items():
        setattr(method, key, value)


def validate(cfg: TrainConfig) -> None:
    """Reject values that would fail late, naming the parameter to fix."""
    checks = [
        (cfg.iterations >= 1, "training.iterations must be >= 1"),
        (cfg.batch_size >= 1, "training.batch_size must be >= 1"),
        (
            not cfg.uses_unlabeled or cfg.unlabeled_batch_size >= 2,
            "training.unlabeled_batch_size must be >= 2 (CutMix pairs each image with its neighbour)",
        ),
        (cfg.precision in PRECISIONS, f"training.precision must be one of {PRECISIONS}"),
        (
            cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
            "training.device must be auto, cpu or cuda",
        ),
        (
            cfg.method.teacher_bn_mode in BN_MODES,
            f"training.mkd.teacher_bn_mode must be one of {BN_MODES}",
        ),
        (
            0.0 <= cfg.method.ema_momentum_end < 1.0,
            "training.mkd.ema_momentum_end must be in [0, 1)",
        ),
        (
            cfg.method.confidence_threshold is None or 0.0 < cfg.method.confidence_threshold < 1.0,
            "training.mkd.confidence_threshold must be null (off) or in (0, 1)",
        ),
        (
            cfg.method.student_confidence_threshold is None
            or 0.0 < cfg.method.student_confidence_threshold < 1.0,
            "training.mkd.student_confidence_threshold must be null (off) or in (0, 1)",
        ),
        (
            0.0 < cfg.method.consistency_scale <= MAX_CONSISTENCY_SCALE,
            f"training.mkd.consistency_scale must be in (0, {MAX_CONSISTENCY_SCALE:g}]",
        ),
        (
            cfg.method.threshold_average in THRESHOLD_AVERAGES,
            f"training.mkd.threshold_average must be one of {THRESHOLD_AVERAGES}",
        ),
        (
            cfg.method.target_mixing in TARGET_MIXINGS,
            f"training.mkd.target_mixing must be one of {TARGET_MIXINGS}",
        ),
        (
            cfg.method.label_sampling in LABEL_SAMPLINGS,
            f"training.mkd.label_sampling must be one of {LABEL_SAMPLINGS}",
        ),
        (
            cfg.method.cps_targets in CPS_TARGETS,
            f"training.mkd.cps_targets must be one of {CPS_TARGETS}",
        ),
        (
            cfg.method.mixed_view in MIXED_VIEWS,
            f"training.mkd.mixed_view must be one of {MIXED_VIEWS}",
        ),
        (
            cfg.method.teacher_rows in TEACHER_ROWS,
            f"training.mkd.teacher_rows must be one of {TEACHER_ROWS}",
        ),
        (
            cfg.model.aspp_rule in ASPP_RULES,
            f"training.model.aspp_rule must be one of {ASPP_RULES}",
        ),
        (
            cfg.model.aspp_rates is None
            or (len(cfg.model.aspp_rates) >= 1 and min(cfg.model.aspp_rates) >= 1),
            "training.model.aspp_rates must be null or a list of dilations >= 1",
        ),
        (
            cfg.augment.blur_reference_crop is None or cfg.augment.blur_reference_crop >= 1,
            "training.augment.blur_reference_crop must be null or a crop side >= 1",
        ),
        (cfg.method.consistency_rampup >= 0, "training.mkd.consistency_rampup must be >= 0"),
        (cfg.model.output_stride in (8, 16), "training.model.output_stride must be 8 or 16"),
        (cfg.augment.crop_size >= 16, "training.augment.crop_size must be >= 16"),
        (
            set(cfg.augment.strong_ops) <= set(STRONG_OP_WEIGHTS)
            and min(cfg.augment.strong_weights) >= 0
            and sum(cfg.augment.strong_weights) > 0,
            f"training.augment.strong_ops must map ops among {', '.join(STRONG_OP_WEIGHTS)} to non-negative "
            f"weights with a positive sum; got {cfg.augment.strong_ops}",
        ),
        (cfg.checkpoint_every >= 1, "training.checkpoint_every must be >= 1"),
        (cfg.max_nonfinite_in_row >= 1, "training.max_nonfinite_in_row must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


def _build(cls: type, values: dict[str, Any] | None, where: str) -> Any:
    """Instantiate a config dataclass, refusing unknown keys so typos don't pass silently."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    for key in ("scale_range", "aspp_rates"):
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    return cls(**values)


def config_from_dict(params: dict[str, Any]) -> TrainConfig:
    """Build a ``TrainConfig`` from the ``training`` parameter block.

    Layout: ``method`` is a string; the method switches live under ``mkd``, a method's
    overrides of its preset under ``<method>`` (``mean_teacher``, ``cps``: only the block of the
    chosen method is used); ``model``, ``optim`` and ``augment`` are sub-blocks; the rest are
    top-level. Keys the trainer does not use (``gpus``, ``resume``) are removed by the caller.
    """
    params = dict(params)
    name = params.pop("method", "mkd")
    blocks = {m: dict(params.pop(m, None) or {}) for m in METHODS if m != "mkd"}
    mkd = dict(params.pop("mkd", None) or {})
    _build(MethodConfig, mkd, "training.mkd")  # unknown keys are named by their block
    for block, values in blocks.items():
        _build(MethodConfig, values, f"training.{block}")
    method = _build(MethodConfig, method_values(name, mkd, blocks.get(name, {})), "training.mkd")
    model = _build(ModelConfig, params.pop("model", None), "training.model")
    optim = _build(OptimConfig, params.pop("optim", None), "training.optim")
    augment = _build(AugmentConfig, params.pop("augment", None), "training.augment")
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {
        "method",
        "model",
        "optim",
        "augment",
    }
    unknown = sorted(set(params) - known)
    if unknown:
        blocks_known = {"method", "mkd", "model", "optim", "augment", *blocks}
        raise ValueError(
            f"unknown parameter(s) {', '.join(f'training.{k}' for k in unknown)}; "
            f"known: {', '.join(sorted(known | blocks_known))}"
        )
    return TrainConfig(method=method, model=model, optim=optim, augment=augment, **params)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Inverse of ``config_from_dict`` (JSON-able), stored in checkpoints."""
    data = dataclasses.asdict(cfg)
    method = data.pop("method")
    data["method"] = method.pop("name")
    data["mkd"] = method
    preset = METHOD_PRESETS[data["method"]]
    if preset.defaults:  # the resolved published values, so config_from_dict gives this config back
        data[data["method"]] = {key: method[key] for key in preset.defaults}
    data["augment"]["scale_range"] = list(data["augment"]["scale_range"])
    if data["model"]["aspp_rates"] is not None:
        data["model"]["aspp_rates"] = list(data["model"]["aspp_rates"])
    return data
