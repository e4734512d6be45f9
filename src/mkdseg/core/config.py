"""Training configuration: one dataclass tree, built once from the ``training`` parameters.

The dataclass defaults are the only defaults (the MKD release, ``MKD_SPEC.md``; comments say
where a value comes from) and the parameters override them; each dataclass checks its values
when built (``core/fields.py``). Layout of the ``training`` block: ``method`` names the method;
the switches every method shares are under ``consistency``, a method's own under ``<method>``
(only the chosen method's block is used, layered by ``core/methods/``); ``model``, ``optim``
and ``augment`` are sub-blocks; the rest are top-level. ``config_to_dict`` writes the same
layout as plain data (checkpoints, torchrun job files), every switch in the method's own block.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mkdseg.core.architectures import ARCHITECTURES, DEEPLAB, TORCH_BN_MOMENTUM
from mkdseg.core.data import Geometry
from mkdseg.core.fields import check, choice
from mkdseg.core.methods import METHODS, MKD, SHARED_BLOCK, SWITCHES, MethodConfig, method_named
from mkdseg.core.model import ASPP_RULES, aspp_rates_for

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
DEVICES = ("auto", "cpu", "cuda")  # or cuda:<index>
# Strong-view ops and their selection weights (spec §2; the order of augmentation.STRONG_OPS).
STRONG_OP_WEIGHTS = {
    "color_jitter": 0.3,
    "blur": 0.5,
    "equalize": 0.1,
    "solarize": 0.1,
    "grayscale": 0.5,
}
TUPLE_FIELDS = ("scale_range", "aspp_rates", "dilations")  # lists in the parameters
# Top-level keys that do not change what a run computes: a resumed run may differ in them.
RESUME_INSENSITIVE = frozenset(
    {
        "iterations",
        "device",
        "num_workers",
        "loader_cache_mb",
        "log_every",
        "threads",
        "checkpoint_every",
        "memory_format",
    }
)


@dataclass
class ModelConfig:
    """DeepLabv3+ (spec §6; the release: ResNet-50 at output stride 16, 256 channels), or the
    narrow ``dilated_fcn`` of the embedded texture benchmark (``core/dilated_fcn.py``)."""

    architecture: str = choice(DEEPLAB, ARCHITECTURES)
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
    aspp_rule: str = choice("fixed", ASPP_RULES)
    aspp_rates: tuple[int, ...] | None = None  # dilations at this output stride; None: aspp_rule
    # dilated_fcn only (its feature width is decoder_channels): full-resolution stem width and
    # the dilations of its residual blocks, one block each.
    stem_channels: int = 16
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    # BatchNorm's running-statistics momentum (PyTorch's convention: the new batch's weight).
    # The release's norm config uses 0.001 (conf/voc, conf/cityscapes); the default is PyTorch's
    # 0.1, what every run before this parameter existed trained with.
    bn_momentum: float = TORCH_BN_MOMENTUM

    def __post_init__(self) -> None:
        rates = self.aspp_rates
        check(
            self,
            (self.output_stride in (8, 16), "output_stride must be 8 or 16"),
            (
                rates is None or (len(rates) >= 1 and min(rates) >= 1),
                "aspp_rates must be null or a list of dilations >= 1",
            ),
            (self.stem_channels >= 1, "stem_channels must be >= 1"),
            (0.0 < self.bn_momentum <= 1.0, "bn_momentum must be in (0, 1]"),
            (
                len(self.dilations) >= 1 and min(self.dilations) >= 1,
                "dilations must be a list of dilations >= 1",
            ),
        )


@dataclass
class OptimConfig:
    """SGD with the poly schedule (spec §6)."""

    lr: float = 0.0025
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9


@dataclass
class AugmentConfig:
    """Shared geometry (spec §2) and the strong view's parameters; photometric and CutMix values
    are the spec's and live in their modules."""

    crop_size: int = 512
    base_size: int | None = None  # None: rescale relative to each image's own size
    scale_range: tuple[float, float] = (0.5, 2.0)
    hflip_prob: float = 0.5
    # Gaussian blur of the strong view: the release's (albumentations: kernel 3-7, sigma 0.1-2.0
    # px) holds for this crop side and scales with crop_size / blur_reference_crop; null: sigma
    # 0.1-2.0 px and kernel 2*ceil(3 sigma)+1 at any crop.
    blur_reference_crop: int | None = 512
    # Strong view (spec §2): op -> selection weight, the spec's by default. A parameter because
    # some domains forbid an op (e.g. grayscale where colour defines the class).
    strong_ops: dict[str, float] = field(default_factory=lambda: dict(STRONG_OP_WEIGHTS))

    def __post_init__(self) -> None:
        weights = self.strong_weights
        check(
            self,
            (self.crop_size >= 16, "crop_size must be >= 16"),
            (
                self.blur_reference_crop is None or self.blur_reference_crop >= 1,
                "blur_reference_crop must be null or a crop side >= 1",
            ),
            (
                set(self.strong_ops) <= set(STRONG_OP_WEIGHTS)
                and min(weights) >= 0
                and sum(weights) > 0,
                f"strong_ops must map ops among {', '.join(STRONG_OP_WEIGHTS)} to non-negative "
                f"weights with a positive sum; got {self.strong_ops}",
            ),
        )

    @property
    def strong_weights(self) -> tuple[float, ...]:
        """Weights in ``STRONG_OP_WEIGHTS`` order; an op left out has weight 0."""
        return tuple(float(self.strong_ops.get(op, 0.0)) for op in STRONG_OP_WEIGHTS)

    @property
    def geometry(self) -> Geometry:
        """The shared random geometry the training datasets apply."""
        return Geometry(self.crop_size, self.base_size, self.scale_range, self.hflip_prob)


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
    device: str = "auto"  # auto | cpu | cuda | cuda:<index>
    # auto: bf16 on CUDA and native-bf16 CPUs, fp16 on older CUDA, else fp32
    precision: str = choice("auto", PRECISIONS)
    # auto: channels_last on CUDA, contiguous on the CPU (which is faster depends on the network)
    memory_format: str = choice("auto", MEMORY_FORMATS)
    num_workers: int = 2
    loader_cache_mb: float = 0.0  # decoded training images kept in memory per loader process
    checkpoint_every: int = 1000
    max_nonfinite_in_row: int = 20
    log_every: int = 1
    threads: int | None = None  # torch's CPU threads, process-wide (None: torch's default)
    separate_view_passes: bool = False  # release: labeled and unlabeled views in separate passes

    def __post_init__(self) -> None:
        model = self.model
        if model.aspp_rates is None:
            model.aspp_rates = aspp_rates_for(
                model.aspp_rule, self.augment.crop_size, model.output_stride
            )
        check(
            self,
            (self.iterations >= 1, "iterations must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (
                not self.uses_unlabeled or self.unlabeled_batch_size >= 2,
                "unlabeled_batch_size must be >= 2 (CutMix pairs each image with its neighbour)",
            ),
            (
                self.device in DEVICES or self.device.startswith("cuda:"),
                "device must be auto, cpu or cuda",
            ),
            (self.checkpoint_every >= 1, "checkpoint_every must be >= 1"),
            (self.max_nonfinite_in_row >= 1, "max_nonfinite_in_row must be >= 1"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1 or null"),
        )

    # What the method's record (core/methods/) says, for the trainer.
    @property
    def num_students(self) -> int:
        return METHODS[self.method.name].students

    @property
    def uses_teachers(self) -> bool:
        return METHODS[self.method.name].teachers and self.method.teacher_term

    @property
    def uses_unlabeled(self) -> bool:
        return METHODS[self.method.name].unlabeled

    @property
    def strong_views(self) -> int:
        return METHODS[self.method.name].strong_views

    @property
    def uses_estimators(self) -> bool:
        """Student feature statistics: for feature augmentation of a method's targets."""
        return self.uses_unlabeled and METHODS[self.method.name].estimators


def _build(
    cls: type, values: Mapping[str, Any] | None, where: str, known: Iterable[str] | None = None
) -> Any:
    """Build a config dataclass, refusing unknown keys so typos don't pass silently; an invalid
    value is named by its parameter (``where``.<field>)."""
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)} if known is None else set(known)
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"known: {', '.join(sorted(names))}"
        )
    for key in TUPLE_FIELDS:
        if values.get(key) is not None:
            values[key] = tuple(values[key])
    try:
        return cls(**values)
    except ValueError as exc:
        raise ValueError(f"{where}.{exc}") from exc


def _switches(values: Mapping[str, Any] | None, block: str) -> dict[str, Any]:
    """The switches set in ``training.<block>``, checked."""
    _build(MethodConfig, values, f"training.{block}", known=SWITCHES)
    return dict(values or {})


def config_from_dict(params: Mapping[str, Any]) -> TrainConfig:
    """A ``TrainConfig`` from the ``training`` parameter block (keys the trainer does not use,
    such as ``gpus`` and ``resume``, removed by the caller)."""
    params = dict(params)
    method = method_named(params.pop("method", MKD.name))
    shared = _switches(params.pop(SHARED_BLOCK, None), SHARED_BLOCK)
    blocks = {name: _switches(params.pop(name, None), name) for name in METHODS}
    own = blocks[method.name]
    parts = {
        "method": _build(MethodConfig, method.switches(shared, own), "training"),
        "model": _build(ModelConfig, params.pop("model", None), "training.model"),
        "optim": _build(OptimConfig, params.pop("optim", None), "training.optim"),
        "augment": _build(AugmentConfig, params.pop("augment", None), "training.augment"),
    }
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return _build(TrainConfig, {**params, **parts}, "training", known | {SHARED_BLOCK, *METHODS})


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """``cfg`` as plain (JSON) data in the layout ``config_from_dict`` reads, every switch in the
    method's own block; stored in checkpoints and job files."""
    data = json.loads(json.dumps(dataclasses.asdict(cfg)))
    switches = data.pop("method")
    name = switches.pop("name")
    return {"method": name, name: switches, **data}


def with_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """A stored configuration (``config_to_dict``'s data) with every key it predates at its
    default, inside the blocks too (``model``, ``optim``, ``augment``, the method's): a key newer
    than a checkpoint had its default when the checkpoint was made. A field's own value (e.g.
    ``strong_ops``) is taken whole."""
    filled = config_to_dict(TrainConfig())
    for key, value in config.items():
        default = filled.get(key)
        both_blocks = isinstance(value, Mapping) and isinstance(default, Mapping)
        filled[key] = {**default, **value} if both_blocks else value
    return filled


def resume_identity(config: Mapping[str, Any]) -> dict[str, Any]:
    """What of a configuration (``config_to_dict``'s data) a run must share with a checkpoint to
    resume from it: all but the keys that do not change what it computes."""
    return {key: value for key, value in config.items() if key not in RESUME_INSENSITIVE}
