"""L1-ranked filter pruning (Li et al., "Pruning Filters for Efficient ConvNets", 2017).

Each standard convolution of the DS-CNN (``conv_1`` and every pointwise ``pw_i``) keeps
the filters with the largest L1 kernel norms: the same fraction removed from every layer,
or a fraction of its own per layer (``ratios``). A removed filter takes with it its own
kernel column and bias, its BatchNorm channel, the depthwise channel it feeds (kernel,
bias, BatchNorm channel) and the input row of the next pointwise or dense kernel. What
remains is rebuilt as a smaller *dense* Keras model with the same layer names and types,
so TFMOT can wrap it again (``filterqat``) and the int8 export sees a narrower network.

The smaller model computes exactly what the original computes with the removed filters
switched off (their BatchNorm outputs zeroed, see :func:`mask_filters`): a switched-off
channel still leaves the depthwise convolution it feeds as a constant (that channel's
bias through BatchNorm and ReLU), and that constant is folded into the bias of the next
pointwise or dense layer instead of being lost. The stage checks this before it
fine-tunes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from kws.pathways.base import CLUSTERS, SPARSITY, Stage, StageContext

#: Inputs the stage compares the smaller model with the masked original on.
CHECK_SAMPLES = 64
#: Largest deviation (relative to the largest logit, at least 1) the check accepts;
#: float32 summation order differs between a narrow and a masked wide convolution.
CHECK_TOLERANCE = 1e-4


@dataclass(frozen=True)
class FilterPrune(Stage):
    """``sparsity``: the fraction of filters removed from every standard convolution
    (``conv_1`` and each ``pw_i``); each keeps ``max(1, round(F * (1 - sparsity)))``.

    ``ratios``: instead, one fraction per standard convolution in chain order (a single
    ratio stands for every one); a ratio of 0 keeps its layer whole. ``multiple_of``: each
    pruned layer keeps a multiple of that many filters (4 before 2:4 pruning, so the next
    layer's input channels form whole groups of four)."""

    family: ClassVar[str] = "filter"
    sparsity: float = 0.5
    ratios: tuple[float, ...] | None = None
    multiple_of: int = 1

    def __post_init__(self):
        if not 0 < self.sparsity < 1:
            raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if self.ratios is not None:
            object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
            _check_ratios(self.ratios)
        if isinstance(self.multiple_of, bool) or not isinstance(self.multiple_of, int) or self.multiple_of < 1:
            raise ValueError(f"multiple_of must be an integer >= 1, got {self.multiple_of!r}")

    def params(self) -> dict:
        # The parameters are the stage's cache key: a field at its default is left out, so
        # stages stored before it existed keep their keys; given ratios, sparsity plays no part.
        params = super().params()
        if self.ratios is None:
            del params["ratios"]
        else:
            del params["sparsity"]
            params["ratios"] = list(self.ratios)
        if self.multiple_of == 1:
            del params["multiple_of"]
        return params

    def preserved(self, parent):
        # Fine-tuning a plain dense model keeps neither zeros nor shared centroids.
        return parent - {SPARSITY, CLUSTERS}

    def run(self, model, ctx: StageContext, preserved):
        from kws.models import count_macs

        ratios = layer_ratios(model, self.sparsity, self.ratios)
        keep = plan_filters(model, self.sparsity, self.ratios, multiple_of=self.multiple_of)
        small = shrink(model, keep)
        error = check_shrunk(small, mask_filters(model, keep), ctx.data.val[:CHECK_SAMPLES])
        meta = self.train(small, ctx)
        meta.update(
            ratios=ratios, widths_before=filter_widths(model), widths_after=filter_widths(small),
            params_before=int(model.count_params()), params_after=int(small.count_params()),
            macs_before=count_macs(model), macs_after=count_macs(small),
            shrink_max_abs_error=error)
        return small, meta


# ----- ranking ----------------------------------------------------------------------


def filter_norms(kernel: np.ndarray) -> np.ndarray:
    """The L1 norm of each output channel's weights (the last axis of a Conv2D kernel)."""
    kernel = np.asarray(kernel)
    return np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)


def kept_count(filters: int, sparsity: float, multiple_of: int = 1) -> int:
    """``max(1, round(F * (1 - sparsity)))``, or with ``multiple_of`` the nearest multiple
    of it (at least one, at most ``F``); a sparsity of 0 keeps all ``F``."""
    if sparsity == 0:
        return filters
    if multiple_of == 1:
        return max(1, round(filters * (1 - sparsity)))
    return min(filters, multiple_of * max(1, round(filters * (1 - sparsity) / multiple_of)))


def kept_filters(kernel: np.ndarray, sparsity: float, multiple_of: int = 1) -> np.ndarray:
    """Sorted indices of the ``kept_count`` filters with the largest L1 norms; among
    equal norms the lower index wins, so the choice is deterministic."""
    norms = filter_norms(kernel)
    order = np.argsort(-norms, kind="stable")
    return np.sort(order[:kept_count(len(norms), sparsity, multiple_of)])


def prunable(layer) -> bool:
    """Standard convolutions own filters; a depthwise one only follows its input's."""
    from kws.compat import keras

    return (isinstance(layer, keras.layers.Conv2D)
            and not isinstance(layer, keras.layers.DepthwiseConv2D))


def _check_ratios(ratios: Sequence[float], names: Sequence[str] = ()) -> None:
    if names and len(ratios) not in (1, len(names)):
        raise ValueError(f"ratios: need {len(names)}, one per prunable layer ({', '.join(names)}), or one "
                         f"for every layer; got {len(ratios)}: {list(ratios)}")
    if not ratios or not all(0 <= r < 1 for r in ratios):
        raise ValueError(f"ratios must be one or more fractions in [0, 1), got {list(ratios)}")


def layer_ratios(model, sparsity: float | None, ratios: Sequence[float] | None = None) -> dict[str, float]:
    """``{layer name: fraction of its filters removed}`` for every prunable layer, in
    chain order: ``ratios`` one per layer (one stands for every layer), else ``sparsity``
    for every layer."""
    names = [layer.name for layer in chain(model) if prunable(layer)]
    if ratios is None:
        if sparsity is None or not 0 < sparsity < 1:
            raise ValueError(f"sparsity must be in (0, 1), got {sparsity}")
        ratios = (sparsity,)
    ratios = tuple(float(r) for r in ratios)
    _check_ratios(ratios, names)
    return dict(zip(names, ratios * len(names) if len(ratios) == 1 else ratios))


def plan_filters(model, sparsity: float | None, ratios: Sequence[float] | None = None, *,
                 multiple_of: int = 1) -> dict[str, np.ndarray]:
    """``{layer name: kept filter indices}`` for every prunable layer, each losing its
    fraction of :func:`layer_ratios`. Each layer is ranked on its own full kernel (Li et
    al.'s independent strategy), so the choice in one layer does not depend on what was
    removed before it."""
    fractions = layer_ratios(model, sparsity, ratios)
    return {name: kept_filters(model.get_layer(name).get_weights()[0], ratio, multiple_of)
            for name, ratio in fractions.items()}


def filter_widths(model) -> dict[str, int]:
    return {layer.name: int(layer.filters) for layer in chain(model) if prunable(layer)}


# ----- the layer chain --------------------------------------------------------------


def chain(model) -> list:
    """The model's layers after the input, checked to form a single path (each layer
    fed by the one before), as the DS-CNN does: channel bookkeeping follows that path."""
    layers = model.layers
    for previous, layer in zip(layers, layers[1:]):
        if len(layer.inbound_nodes) != 1 or layer.input is not previous.output:
            raise ValueError(f"model {model.name!r}: layer {layer.name!r} is not fed by "
                             f"{previous.name!r} alone; filter pruning needs a single chain")
    return layers[1:]


def _following_batchnorm(layers: list, index: int):
    """The BatchNormalization right after ``layers[index]``: where its filters are masked."""
    from kws.compat import keras

    following = layers[index + 1] if index + 1 < len(layers) else None
    if not isinstance(following, keras.layers.BatchNormalization):
        raise ValueError(f"layer {layers[index].name!r} must be followed by BatchNormalization "
                         f"to be filter-pruned, got {getattr(following, 'name', None)!r}")
    if not (following.center and following.scale):
        raise ValueError(f"layer {following.name!r} needs center=True and scale=True")
    return following


# ----- the smaller model ------------------------------------------------------------


@dataclass
class _Channels:
    """The channels of the tensor between two layers, indexed as in the original model.

    ``keep``: the channels the smaller model carries. ``const``: the value each removed
    channel holds everywhere in the masked original, or ``None`` right after a pruned
    convolution, where the removed channels still vary and the next BatchNorm masks them.
    """

    keep: np.ndarray
    const: np.ndarray | None

    @property
    def removed(self) -> np.ndarray:
        mask = np.ones(len(self.const), bool)
        mask[self.keep] = False
        return np.flatnonzero(mask)

    @classmethod
    def full(cls, width: int) -> _Channels:
        return cls(np.arange(width), np.zeros(width, np.float32))


def _require_masked(layer, channels: _Channels) -> None:
    if channels.const is None:
        raise ValueError(f"layer {layer.name!r} follows a pruned convolution directly; "
                         "filter pruning needs its BatchNorm in between")


def _fold(layer, channels: _Channels, kernel: np.ndarray, spatial: bool) -> np.ndarray:
    """What the removed input channels' constants add to each output: zero when they are
    all zero; exact for 1x1 kernels, where padding cannot reach a constant map."""
    _require_masked(layer, channels)
    removed = channels.removed
    values = channels.const[removed]
    if not np.any(values):
        return np.zeros(kernel.shape[-1], np.float32)
    if spatial and math.prod(kernel.shape[:2]) != 1:
        raise ValueError(f"layer {layer.name!r}: removed channels carry non-zero constants "
                         "into a kernel larger than 1x1, which cannot be folded exactly")
    rows = kernel.reshape(-1, kernel.shape[-2], kernel.shape[-1]).sum(axis=0)
    return values @ rows[removed]


def _with_bias(layer, weights: list, shift: np.ndarray) -> list:
    if not np.any(shift):
        return weights
    if not layer.use_bias:
        raise ValueError(f"layer {layer.name!r} has no bias to fold removed channels into")
    return [weights[0], weights[1] + shift, *weights[2:]]


def _conv(layer, channels: _Channels, keep_out: np.ndarray | None):
    weights = layer.get_weights()
    kernel = weights[0]
    shift = _fold(layer, channels, kernel, spatial=True)
    out = np.arange(kernel.shape[-1]) if keep_out is None else keep_out
    new = [kernel[:, :, channels.keep][..., out], *(w[out] for w in weights[1:])]
    new = _with_bias(layer, new, shift[out])
    after = _Channels(out, None) if keep_out is not None else _Channels.full(len(out))
    return new, after


def _depthwise(layer, channels: _Channels):
    weights = layer.get_weights()
    kernel = weights[0]
    if kernel.shape[-1] != 1:
        raise ValueError(f"layer {layer.name!r}: depth_multiplier must be 1, "
                         f"got {kernel.shape[-1]}")
    _require_masked(layer, channels)
    removed = channels.removed
    if np.any(channels.const[removed]) and math.prod(kernel.shape[:2]) != 1:
        raise ValueError(f"layer {layer.name!r}: removed channels carry non-zero constants "
                         "into a kernel larger than 1x1, which cannot be followed exactly")
    # A constant input c on channel k gives c * sum(kernel[..., k]) + bias[k] (exact for a
    # zero input with any padding, the only case a larger kernel reaches here).
    const = channels.const * kernel.reshape(-1, kernel.shape[-2]).sum(axis=0)
    if layer.use_bias:
        const = const + weights[1]
    new = [kernel[:, :, channels.keep], *(w[channels.keep] for w in weights[1:])]
    return new, _Channels(channels.keep, const.astype(np.float32))


def _batchnorm(layer, channels: _Channels):
    if list(layer.axis) != [len(layer.input_shape) - 1]:
        raise ValueError(f"layer {layer.name!r}: BatchNormalization must normalise the last axis")
    weights = layer.get_weights()
    if channels.const is None:
        # The masked original zeroes gamma and beta here: the removed filters end at zero.
        const = np.zeros(len(weights[0]), np.float32)
    else:
        gamma, beta, mean, var = (w.astype(np.float64) for w in weights)
        const = (gamma * (channels.const - mean) / np.sqrt(var + layer.epsilon) + beta)
    new = [w[channels.keep] for w in weights]
    return new, _Channels(channels.keep, const.astype(np.float32))


def _elementwise(layer, channels: _Channels):
    _require_masked(layer, channels)
    from kws.compat import tf

    const = layer(tf.constant(channels.const[None]), training=False).numpy()[0]
    return [], _Channels(channels.keep, const.astype(np.float32))


def _pool(layer, channels: _Channels):
    _require_masked(layer, channels)
    return [], channels


def _flatten(layer, channels: _Channels):
    if layer.data_format != "channels_last":
        raise ValueError(f"layer {layer.name!r}: only channels_last is supported")
    positions = math.prod(layer.input_shape[1:-1])
    width = len(channels.const)
    keep = (np.arange(positions)[:, None] * width + channels.keep[None]).ravel()
    return [], _Channels(keep, np.tile(channels.const, positions))


def _dense(layer, channels: _Channels):
    weights = layer.get_weights()
    shift = _fold(layer, channels, weights[0], spatial=False)
    new = _with_bias(layer, [weights[0][channels.keep], *weights[1:]], shift)
    return new, _Channels.full(layer.units)


def _shrink_weights(layer, channels: _Channels, keep: dict[str, np.ndarray]):
    """The smaller layer's weights and the channels after it."""
    from kws.compat import keras

    L = keras.layers
    if isinstance(layer, L.DepthwiseConv2D):
        return _depthwise(layer, channels)
    if isinstance(layer, L.Conv2D):
        return _conv(layer, channels, keep.get(layer.name))
    if isinstance(layer, L.BatchNormalization):
        return _batchnorm(layer, channels)
    if isinstance(layer, L.Dense):
        return _dense(layer, channels)
    if isinstance(layer, L.Flatten):
        return _flatten(layer, channels)
    if isinstance(layer, (L.ReLU, L.Activation, L.Dropout)):
        return _elementwise(layer, channels)
    if isinstance(layer, (L.AveragePooling2D, L.MaxPooling2D, L.GlobalAveragePooling2D)):
        # A constant channel pools to the same constant (Keras's "same" average pooling
        # leaves padding out of the mean).
        return _pool(layer, channels)
    raise ValueError(f"layer {layer.name!r} ({type(layer).__name__}) is not supported "
                     "by filter pruning")


def shrink(model, keep: dict[str, np.ndarray]):
    """A new, smaller plain Keras model: ``model``'s layers (same names, types and
    settings) with each layer in ``keep`` narrowed to those filters, and the surviving
    weights copied. It equals :func:`mask_filters` of ``model`` up to float rounding."""
    from kws.compat import keras

    layers = chain(model)
    for name in keep:
        model.get_layer(name)  # an unknown name raises ValueError naming it
    for index, layer in enumerate(layers):
        if layer.name in keep:
            if not prunable(layer):
                raise ValueError(f"keep: layer {layer.name!r} is not a standard convolution")
            _following_batchnorm(layers, index)
    inputs = keras.Input(shape=model.input_shape[1:], name=model.layers[0].name,
                         dtype=model.inputs[0].dtype)
    channels = _Channels.full(model.input_shape[-1])
    x = inputs
    for layer in layers:
        config = layer.get_config()
        if layer.name in keep:
            config["filters"] = len(keep[layer.name])
        narrow = type(layer).from_config(config)
        x = narrow(x)
        weights, channels = _shrink_weights(layer, channels, keep)
        narrow.set_weights(weights)
    return keras.Model(inputs, x, name=model.name)


def mask_filters(model, keep: dict[str, np.ndarray]):
    """A copy of ``model`` with every removed filter switched off: gamma and beta of its
    BatchNorm channel set to zero, so that channel is zero after BatchNorm and ReLU."""
    from kws.compat import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    layers = chain(copy)
    for index, layer in enumerate(layers):
        if layer.name not in keep:
            continue
        bn = _following_batchnorm(layers, index)
        gamma, beta, mean, var = bn.get_weights()
        removed = np.setdiff1d(np.arange(len(gamma)), keep[layer.name])
        gamma[removed] = 0
        beta[removed] = 0
        bn.set_weights([gamma, beta, mean, var])
    return copy


def check_shrunk(small, masked, features: np.ndarray) -> float:
    """The largest absolute difference of the two models' outputs on ``features``;
    raises if it exceeds float noise, i.e. if the weights were copied wrongly."""
    x = np.asarray(features, np.float32).reshape(-1, *masked.input_shape[1:])
    if len(x) == 0:
        raise ValueError("features must hold at least one input to check the smaller model on")
    expected = masked(x, training=False).numpy()
    got = small(x, training=False).numpy()
    if got.shape != expected.shape:
        raise RuntimeError(f"the smaller model's output shape {got.shape} differs from "
                           f"{expected.shape}")
    error = float(np.max(np.abs(got - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if not np.all(np.isfinite(got)) or not error <= CHECK_TOLERANCE * scale:
        raise RuntimeError(f"the smaller model deviates from the masked original by {error:g} "
                           f"(allowed {CHECK_TOLERANCE * scale:g})")
    return error
