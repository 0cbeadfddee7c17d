"""Weight statistics of a stripped tf_keras model, read from its layers' kernels."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from kws.inspect.stats import Kind, ModelStats, _layer_stats, _status, _validate_m_by_n


def inspect_keras(model, *, clusters: int | None = None,
                  m_by_n: tuple[int, int] | None = None, min_weights: int = 0,
                  cluster_per_channel: bool = True) -> ModelStats:
    """Weight statistics of a stripped tf_keras model's Conv2D, DepthwiseConv2D and Dense
    kernels (biases are not compressed by TFMOT and are ignored).

    ``clusters`` marks Conv2D layers TFMOT would have left unclustered as skipped, with
    TFMOT's rule for ``cluster_per_channel`` (True: weights per output channel, where
    TFMOT takes the channel count from the layer's last trainable weight, the bias, or
    the kernel itself for a layer without one; False: the whole kernel). Layers with
    fewer than ``min_weights`` kernel weights are skipped too, for schedules that leave
    small layers dense.
    """
    from kws.compat import keras

    m_by_n = _validate_m_by_n(m_by_n)
    stats = []
    for layer in _keras_weight_layers(model, keras):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kind, kernel = Kind.DEPTHWISE, layer.depthwise_kernel
        elif isinstance(layer, keras.layers.Conv2D):
            kind, kernel = Kind.CONV, layer.kernel
        else:
            kind, kernel = Kind.DENSE, layer.kernel
        weights = np.asarray(kernel.numpy())
        if kind == Kind.DEPTHWISE:
            # [h, w, in, multiplier] -> [h, w, in * multiplier]: the output channels, in
            # the order TFLite stores them.
            weights = weights.reshape(*weights.shape[:2], -1)
        status = _status(kind, size=weights.size, clusters=clusters, min_weights=min_weights,
                         clustered_count=_keras_clustered_count(layer, weights,
                                                                cluster_per_channel),
                         in_channels=weights.shape[-2], m_by_n=m_by_n)
        # Keras kernels: Conv2D [h, w, in, out], Dense [in, out]: the output channel is
        # last, the input channel just before it.
        stats.append(_layer_stats(layer.name, kind, status, weights, out_axis=-1, in_axis=-2,
                                  m_by_n=m_by_n))
    return ModelStats("keras", tuple(stats))


def _keras_clustered_count(layer, weights: np.ndarray, per_channel: bool) -> int:
    if not per_channel:
        return weights.size
    trainable = layer.trainable_weights
    channels = int(np.prod(trainable[-1].shape)) if trainable else weights.shape[-1]
    return weights.size // channels


def _keras_weight_layers(model, keras) -> Iterator:
    for layer in model.layers:
        if isinstance(layer, keras.layers.Wrapper):
            raise ValueError(
                f"layer {layer.name!r} is wrapped ({type(layer).__name__}): inspect a model "
                "after strip_pruning/strip_clustering, or its TFLite conversion"
            )
        if isinstance(layer, keras.Model):
            yield from _keras_weight_layers(layer, keras)
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            continue  # its kernel is [h, w, out, in]; not part of any KWS model here
        elif isinstance(layer, (keras.layers.DepthwiseConv2D, keras.layers.Conv2D,
                                keras.layers.Dense)):
            yield layer

