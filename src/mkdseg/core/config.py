"""Training configuration: one dataclass tree, built from the ``training`` parameters.

The four methods share one training step; a method is only a set of switches
(``METHOD_PRESETS``). Defaults follow the MKD release (``MKD_SPEC.md``); the
comments say where each value comes from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

METHODS = ("supervised", "mean_teacher", "cps", "mkd")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
BN_MODES = ("train", "eval")
# Strong-view ops and their selection weights (spec §2; the order of augmentation.STRONG_OPS).
STRONG_OP_WEIGHTS = {"color_jitter": 0.3, "blur": 0.5, "equalize": 0.1, "solarize": 0.1, "grayscale": 0.5}


@dataclass
class ModelConfig:
    """DeepLabv3+ (spec §6). The release uses ResNet-50 at output stride 16, 256 channels."""

    backbone: str = "resnet50"
    output_stride: int = 16
    aspp_channels: int = 256
    decoder_channels: int = 256
    low_level_channels: int = 48
    pretrained: str | None = None  # local checkpoint path or torchvision weights name


@dataclass
class MethodConfig:
    """Method switches (spec §1, §4, §5). ``name`` picks a preset; the rest refine it."""

    name: str = "mkd"
    teacher_term: bool = True  # L_st: each student taught by the other branch's teacher
    student_term: bool = True  # L_ss: cross pseudo-supervision between the students
    feature_aug_students: bool = True  # ISDA-style logit augmentation on students
    feature_aug_teachers: bool = True  # ... and on teachers
    confidence_threshold: float | None = None  # release: off; paper: 0.95
    student_confidence_threshold: float | None = None  # not in the spec (L_ss never thresholded): off
    ema_momentum_end: float = 0.6  # release 0.6 (0.99/0.999 usual elsewhere)
    weight_teacher: float = 1.5  # w_st, release
    weight_student: float = 1.0  # w_ss, release
    lambda_end: float = 1.5  # feature-augmentation strength, release
    lambda_schedule: str = "cosine"  # cosine ramp (release); constant | linear
    consistency_scale: float = 0.5  # release computes consistency at 1/2 decoder res (1/8 input)
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
    precision: str = "auto"  # auto: bf16 on CUDA and native-bf16 CPUs, fp16 on older CUDA, else fp32
    num_workers: int = 2
    checkpoint_every: int = 1000
    max_nonfinite_in_row: int = 20
    log_every: int = 1
    threads: int | None = None  # CPU threads for torch (None: torch's default)
    separate_view_passes: bool = False  # release: labeled and unlabeled views in separate passes

    def __post_init__(self) -> None:
        apply_method_preset(self.method)
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


# A preset fixes the switches that define the method; MKD keeps what the user set.
METHOD_PRESETS: dict[str, dict[str, Any]] = {
    "supervised": {"teacher_term": False, "student_term": False,
                   "feature_aug_students": False, "feature_aug_teachers": False},
    "mean_teacher": {"teacher_term": True, "student_term": False,
                     "feature_aug_students": False, "feature_aug_teachers": False},
    "cps": {"teacher_term": False, "student_term": True,
            "feature_aug_students": False, "feature_aug_teachers": False},
    "mkd": {},
}


def apply_method_preset(method: MethodConfig) -> None:
    if method.name not in METHODS:
        raise ValueError(f"training.method must be one of {', '.join(METHODS)}, got {method.name!r}")
    for key, value in METHOD_PRESETS[method.name].items():
        setattr(method, key, value)


def validate(cfg: TrainConfig) -> None:
    """Reject values that would fail late, naming the parameter to fix."""
    checks = [
        (cfg.iterations >= 1, "training.iterations must be >= 1"),
        (cfg.batch_size >= 1, "training.batch_size must be >= 1"),
        (not cfg.uses_unlabeled or cfg.unlabeled_batch_size >= 2,
         "training.unlabeled_batch_size must be >= 2 (CutMix pairs each image with its neighbour)"),
        (cfg.precision in PRECISIONS, f"training.precision must be one of {PRECISIONS}"),
        (cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
         "training.device must be auto, cpu or cuda"),
        (cfg.method.teacher_bn_mode in BN_MODES, f"training.mkd.teacher_bn_mode must be one of {BN_MODES}"),
        (0.0 <= cfg.method.ema_momentum_end < 1.0, "training.mkd.ema_momentum_end must be in [0, 1)"),
        (cfg.method.confidence_threshold is None or 0.0 < cfg.method.confidence_threshold < 1.0,
         "training.mkd.confidence_threshold must be null (off) or in (0, 1)"),
        (cfg.method.student_confidence_threshold is None or 0.0 < cfg.method.student_confidence_threshold < 1.0,
         "training.mkd.student_confidence_threshold must be null (off) or in (0, 1)"),
        (0.0 < cfg.method.consistency_scale <= 1.0, "training.mkd.consistency_scale must be in (0, 1]"),
        (cfg.method.consistency_rampup >= 0, "training.mkd.consistency_rampup must be >= 0"),
        (cfg.model.output_stride in (8, 16), "training.model.output_stride must be 8 or 16"),
        (cfg.augment.crop_size >= 16, "training.augment.crop_size must be >= 16"),
        (set(cfg.augment.strong_ops) <= set(STRONG_OP_WEIGHTS) and min(cfg.augment.strong_weights) >= 0
         and sum(cfg.augment.strong_weights) > 0,
         f"training.augment.strong_ops must map ops among {', '.join(STRONG_OP_WEIGHTS)} to non-negative "
         f"weights with a positive sum; got {cfg.augment.strong_ops}"),
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
        raise ValueError(f"unknown parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                         f"known: {', '.join(sorted(names))}")
    if "scale_range" in values:
        values["scale_range"] = tuple(values["scale_range"])
    return cls(**values)


def config_from_dict(params: dict[str, Any]) -> TrainConfig:
    """Build a ``TrainConfig`` from the ``training`` parameter block.

    Layout: ``method`` is a string; the method switches live under ``mkd``;
    ``model``, ``optim`` and ``augment`` are sub-blocks; the rest are top-level.
    Keys the trainer does not use (``gpus``, ``resume``) are removed by the caller.
    """
    params = dict(params)
    method = _build(MethodConfig, {"name": params.pop("method", "mkd"), **params.pop("mkd", {})},
                    "training.mkd")
    model = _build(ModelConfig, params.pop("model", None), "training.model")
    optim = _build(OptimConfig, params.pop("optim", None), "training.optim")
    augment = _build(AugmentConfig, params.pop("augment", None), "training.augment")
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"method", "model", "optim", "augment"}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) {', '.join(f'training.{k}' for k in unknown)}; "
                         f"known: {', '.join(sorted(known | {'method', 'mkd', 'model', 'optim', 'augment'}))}")
    return TrainConfig(method=method, model=model, optim=optim, augment=augment, **params)


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Inverse of ``config_from_dict`` (JSON-able), stored in checkpoints."""
    data = dataclasses.asdict(cfg)
    method = data.pop("method")
    data["method"] = method.pop("name")
    data["mkd"] = method
    data["augment"]["scale_range"] = list(data["augment"]["scale_range"])
    return data
