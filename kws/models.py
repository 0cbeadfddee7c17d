"""DS-CNN keyword-spotting models (Arm ML-zoo / "Hello Edge"), built from Keras layers
only so that TFMOT can wrap every layer (no ``tf.reshape`` or lambda layers).

Input 49x10x1 MFCC. ``Conv2D(F, 10x4, stride S0, same) -> BN -> ReLU``, then blocks of
``DepthwiseConv2D(3x3, same) -> BN -> ReLU -> Conv2D(F, 1x1) -> BN -> ReLU``, average
pooling over the whole map, ``Dense(labels)`` (logits).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import ClassVar

INPUT_SHAPE = (49, 10, 1)

#: The technique families a model may or may not allow (what each stage wraps or
#: rewrites): magnitude pruning, weight clustering and quantisation-aware training wrap
#: layers with TFMOT; filter pruning rewrites a chain of Conv2D -> BatchNorm layers;
#: width scaling rebuilds the model at a width multiplier.
TECHNIQUES = ("prune", "cluster", "qat", "filter", "width")


class ModelSpec:
    """What the pipeline needs of any model, DS-CNN or a user's own.

    ``slug`` names it in case records and ids; :meth:`params` is its identity in cache
    keys; :meth:`build` returns a fresh tf_keras model for :attr:`input_shape` and
    :attr:`num_labels` (untrained, or with its weights where :attr:`trained`: a trained
    model file is the baseline itself). :meth:`with_input_shape` and :meth:`with_labels`
    fit it to the front-end's features and the data's labels, or say why they cannot;
    :meth:`scaled` gives it at a width multiplier where :attr:`scalable`.
    :meth:`unsupported` says why a technique (:data:`TECHNIQUES`) cannot touch it, so a
    pathway that needs one is reported as not applicable; :meth:`filter_groups` and
    :meth:`min_weights_per_channel` bound the filter-pruning and clustering axes."""

    scalable: ClassVar[bool] = False
    trained: ClassVar[bool] = False
    alpha: float = 1.0
    input_shape: tuple
    num_labels: int

    @property
    def slug(self) -> str:
        raise NotImplementedError

    def params(self) -> dict:
        raise NotImplementedError

    def build(self):
        raise NotImplementedError

    def with_input_shape(self, shape: tuple) -> ModelSpec:
        return replace(self, input_shape=tuple(shape))

    def with_labels(self, count: int) -> ModelSpec:
        return replace(self, num_labels=count)

    def scaled(self, alpha: float) -> ModelSpec:
        raise ValueError(f"{self.slug} cannot be trained at a width multiplier (alpha {alpha:g})")

    def unsupported(self, technique: str) -> str | None:
        return None

    def filter_groups(self) -> tuple[str, ...]:
        raise NotImplementedError

    def min_weights_per_channel(self) -> tuple[str, int]:
        raise NotImplementedError

    def macs(self) -> int:
        """Multiply-accumulates of one inference (what training time scales with)."""
        raise NotImplementedError


@dataclass(frozen=True)
class Architecture:
    filters: int
    first_stride: tuple[int, int]
    first_block_stride: tuple[int, int]
    blocks: int


ARCHITECTURES = {
    "ds-cnn-s": Architecture(64, (2, 2), (1, 1), 4),
    "ds-cnn-m": Architecture(172, (2, 1), (2, 2), 4),
    "ds-cnn-l": Architecture(276, (2, 1), (2, 2), 5),
}


@dataclass(frozen=True)
class ModelConfig(ModelSpec):
    """A DS-CNN as a :class:`ModelSpec`: built from Keras layers TFMOT wraps and filter
    pruning rewrites, so every technique applies, and width-scalable.

    ``name`` picks S/M/L; ``alpha`` scales every layer's filters (structured pruning by
    width); ``mlperf`` adds MLPerf Tiny's Dropout(0.2)/Dropout(0.4) and L2 1e-4.

    ``bn_momentum``: with Keras' default 0.99 and the ~50 steps per epoch of a small
    dataset, BatchNorm's moving statistics lag so far behind a fresh model that validation
    accuracy sits at chance for the first 7-8 epochs (measured on the default dataset);
    0.9 tracks from the first epoch and ends at the same accuracy, which short (smoke)
    training needs. The architecture is unchanged."""

    name: str = "ds-cnn-s"
    alpha: float = 1.0
    mlperf: bool = False
    bn_momentum: float = 0.9
    num_labels: int = 12
    input_shape: tuple[int, int, int] = INPUT_SHAPE

    def __post_init__(self):
        if self.name not in ARCHITECTURES:
            raise ValueError(f"model name {self.name!r} is not one of {sorted(ARCHITECTURES)}")
        if not 0 < self.alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if not 0 < self.bn_momentum < 1:
            raise ValueError(f"bn_momentum must be in (0, 1), got {self.bn_momentum}")
        if self.num_labels < 2:
            raise ValueError(f"num_labels must be >= 2, got {self.num_labels}")
        object.__setattr__(self, "input_shape", tuple(self.input_shape))

    @property
    def filters(self) -> int:
        return max(1, int(round(ARCHITECTURES[self.name].filters * self.alpha)))

    @property
    def slug(self) -> str:
        parts = [self.name, *([f"a{self.alpha:g}"] if self.alpha != 1 else []),
                 *(["mlperf"] if self.mlperf else [])]
        return "-".join(parts)

    scalable: ClassVar[bool] = True

    def params(self) -> dict:
        return asdict(self)

    def build(self):
        return build_model(self)

    def scaled(self, alpha: float) -> ModelConfig:
        return replace(self, alpha=alpha)

    def filter_groups(self) -> tuple[str, ...]:
        """The standard convolutions that own their filters, in chain order: ``conv_1``,
        then each block's pointwise ``pw_i`` (the layer names :func:`build_model` gives)."""
        return ("conv_1", *(f"pw_{i}" for i in range(1, ARCHITECTURES[self.name].blocks + 1)))

    def macs(self) -> int:
        """Multiply-accumulates of one inference, from the architecture alone (what
        :func:`count_macs` counts on the built model)."""
        arch, f = ARCHITECTURES[self.name], self.filters
        h, w, channels = self.input_shape
        h, w = -(-h // arch.first_stride[0]), -(-w // arch.first_stride[1])
        total = h * w * f * 10 * 4 * channels
        for i in range(1, arch.blocks + 1):
            if i == 1:
                h, w = -(-h // arch.first_block_stride[0]), -(-w // arch.first_block_stride[1])
            total += h * w * f * 9 + h * w * f * f
        return total + f * self.num_labels

    def min_weights_per_channel(self) -> tuple[str, int]:
        """``conv_1``'s 10x4 kernel over the input channels, or a pointwise layer's
        ``filters`` inputs, whichever is fewer (depthwise kernels are not clustered)."""
        first = 10 * 4 * self.input_shape[-1]
        return ("conv_1", first) if first <= self.filters else ("pw_1", self.filters)


def filter_groups(model: ModelSpec) -> tuple[str, ...]:
    """The layers filter pruning takes one ratio each for, in chain order."""
    return model.filter_groups()


def parse_model_spec(text: str, **overrides) -> ModelSpec:
    """A model as the command line and the grid name it: a DS-CNN (``ds-cnn-s``,
    ``ds-cnn-l``, ``ds-cnn-s-mlperf``), a Keras model file (``.keras``, ``.h5``) or
    SavedModel folder, or ``package.module:factory``. ``overrides`` (``alpha``) apply to a
    DS-CNN only."""
    if text.removesuffix("-mlperf") in ARCHITECTURES:
        return parse_model(text, **overrides)
    from kws.usermodel import KerasModel

    if overrides.get("alpha", 1.0) != 1.0:
        raise ValueError(f"--alpha: {text} is a fixed Keras model; only a DS-CNN is built at a width multiplier")
    return KerasModel(text)


def parse_model(spec: str, **overrides) -> ModelConfig:
    """``ds-cnn-s``, ``ds-cnn-s-mlperf`` (MLPerf Tiny's variant) -> a config."""
    mlperf = spec.endswith("-mlperf")
    name = spec.removesuffix("-mlperf")
    return replace(ModelConfig(name=name, mlperf=mlperf), **overrides)


def build_model(config: ModelConfig = ModelConfig()):
    """A fresh, untrained tf_keras model (logits output)."""
    from kws.compat import keras

    arch = ARCHITECTURES[config.name]
    layers = keras.layers
    reg = keras.regularizers.l2(1e-4) if config.mlperf else None
    f = config.filters

    def bn_relu(x, name):
        x = layers.BatchNormalization(momentum=config.bn_momentum, name=f"{name}_bn")(x)
        return layers.ReLU(name=f"{name}_relu")(x)

    inputs = keras.Input(shape=config.input_shape, name="mfcc")
    x = layers.Conv2D(f, (10, 4), strides=arch.first_stride, padding="same",
                      kernel_regularizer=reg, name="conv_1")(inputs)
    x = bn_relu(x, "conv_1")
    if config.mlperf:
        x = layers.Dropout(0.2, name="dropout_1")(x)
    for i in range(1, arch.blocks + 1):
        stride = arch.first_block_stride if i == 1 else (1, 1)
        x = layers.DepthwiseConv2D((3, 3), strides=stride, padding="same",
                                   depthwise_regularizer=reg, name=f"dw_{i}")(x)
        x = bn_relu(x, f"dw_{i}")
        x = layers.Conv2D(f, (1, 1), kernel_regularizer=reg, name=f"pw_{i}")(x)
        x = bn_relu(x, f"pw_{i}")
    if config.mlperf:
        x = layers.Dropout(0.4, name="dropout_2")(x)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="avg_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(config.num_labels, kernel_regularizer=reg, name="logits")(x)
    return keras.Model(inputs, outputs, name=config.slug)


def save_model(model, path) -> None:
    """Store a (possibly TFMOT-wrapped) model without its optimizer state."""
    import warnings

    with warnings.catch_warnings():
        # HDF5 is the format TFMOT's wrappers round-trip reliably through tf_keras.
        warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
        model.save(path, include_optimizer=False)


def load_model(path):
    """A fresh model from ``path``. Quantisation-aware models need TFMOT's custom objects
    in scope; plain models load the same way."""
    from kws.compat import keras, tfmot

    with tfmot.quantization.keras.quantize_scope():
        return keras.models.load_model(path, compile=False)


def count_macs(model) -> int:
    """Multiply-accumulates of one inference: convolutions and dense layers."""
    from kws.compat import keras

    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # before Conv2D: it subclasses it
            # Each output value is one kernel's worth of MACs over a single input channel.
            macs += math.prod(layer.output_shape[1:]) * math.prod(layer.kernel_size)
        elif isinstance(layer, keras.layers.Conv2D):
            out = layer.output_shape
            macs += math.prod(out[1:]) * math.prod(layer.kernel_size) * layer.input_shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input_shape[-1] * layer.units
    return macs


def model_summary(config: ModelSpec) -> dict:
    """Counts of a built model (a DS-CNN's with its filters); for a model of one's own,
    also which techniques cannot touch it and why."""
    model = config.build()
    summary = {
        "model": config.slug,
        **({"filters": config.filters} if isinstance(config, ModelConfig) else {}),
        "params": int(model.count_params()),
        "trainable_params": int(sum(math.prod(w.shape) for w in model.trainable_weights)),
        "macs": count_macs(model),
        "layers": len(model.layers),
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "outputs": int(model.output_shape[-1]),
    }
    if not isinstance(config, ModelConfig):
        summary["trained"] = config.trained
        summary.update({f"no {t}": why for t in TECHNIQUES if (why := config.unsupported(t))})
    return summary
