"""What compression really left in each layer's weights: sparsity, unique values and
m-by-n structure, read from a stripped Keras model or straight from a TFLite flatbuffer.

Which layers a preservation check applies to follows what TFMOT 0.8 actually does:

* ``DepthwiseConv2D`` is never pruned, clustered or m-by-n pruned, so depthwise layers
  are reported but marked ``excluded (depthwise)``.
* ``cluster_weights`` leaves a ``Conv2D`` unwrapped (with a warning) when the number of
  weights it would cluster is ``<=`` the number of clusters: the weights per output
  channel with ``cluster_per_channel=True``, the whole kernel otherwise. Such layers are
  ``skipped (too few weights)`` when a cluster count is given. Dense layers are never
  skipped by TFMOT.
* int8 conversion folds BatchNorm into the convolution weights and quantises each output
  channel with its own scale, so a clustered model keeps a few values per output channel
  while the whole tensor holds many: count clusters per output channel on TFLite models.

``m_by_n`` follows TFMOT's ``sparsity_m_by_n``: ``(m, n)`` means at least ``m`` zeros in
every ``n`` consecutive weights along the input-channel axis (so at most ``n - m``
non-zeros; for 2:4 both readings agree). Like TFMOT's own check, a last group shorter than
``n`` (input channels not a multiple of ``n``) must still hold at most ``n - m`` non-zeros.

Neither TensorFlow nor TFMOT is imported at module level.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

CHECKED = "checked"
EXCLUDED = "excluded (depthwise)"
SKIPPED = "skipped (too few weights)"
# TFMOT groups m-by-n along the input channels; a layer with fewer input channels than n
# (DS-CNN's first conv has one) keeps its weights dense.
SKIPPED_M_BY_N = "skipped (fewer input channels than n)"

KINDS = ("conv", "depthwise", "dense")

_TFLITE_IDENTIFIER = b"TFL3"


@dataclass(frozen=True)
class LayerStats:
    name: str
    kind: str  # "conv", "depthwise", "dense"
    status: str  # CHECKED, EXCLUDED or SKIPPED
    total: int
    nonzero: int
    sparsity: float
    unique_tensor: int
    unique_per_channel_max: int
    unique_per_channel_mean: float
    m_by_n_ok: bool | None  # None when no (m, n) was asked for, or for depthwise layers
    shape: tuple

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelStats:
    source: str  # "keras" | "tflite"
    layers: tuple[LayerStats, ...]

    def checked(self) -> list[LayerStats]:
        """The layers that preservation checks apply to."""
        return [layer for layer in self.layers if layer.status == CHECKED]

    def sparsity(self) -> float:
        """Zeros over weights, summed over the checked layers."""
        layers = self._checked_or_raise("sparsity")
        total = sum(layer.total for layer in layers)
        return (total - sum(layer.nonzero for layer in layers)) / total

    def max_unique_per_channel(self) -> int:
        return max(layer.unique_per_channel_max
                   for layer in self._checked_or_raise("max_unique_per_channel"))

    def m_by_n_ok(self) -> bool:
        """Whether every checked layer holds the m-by-n pattern asked for."""
        layers = self._checked_or_raise("m_by_n_ok")
        if any(layer.m_by_n_ok is None for layer in layers):
            raise ValueError(f"{self.source} model stats were taken without m_by_n")
        return all(layer.m_by_n_ok for layer in layers)

    def get(self, name: str) -> LayerStats:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in the {self.source} model; "
                       f"layers: {[layer.name for layer in self.layers]}")

    def to_dict(self) -> dict:
        checked = self.checked()
        return {
            "source": self.source,
            "layers": [layer.to_dict() for layer in self.layers],
            "checked": len(checked),
            "sparsity": self.sparsity() if checked else None,
            "max_unique_per_channel": self.max_unique_per_channel() if checked else None,
        }

    def _checked_or_raise(self, what: str) -> list[LayerStats]:
        # A check over no layers would pass vacuously; refuse it instead.
        layers = self.checked()
        if not layers:
            statuses = {layer.name: layer.status for layer in self.layers} or "no weight layers"
            raise ValueError(
                f"{what}: no layer of the {self.source} model was checked ({statuses})"
            )
        return layers


# ---------------------------------------------------------------------------------------
# Statistics of one weight tensor
# ---------------------------------------------------------------------------------------


def _validate_m_by_n(m_by_n) -> tuple[int, int] | None:
    if m_by_n is None:
        return None
    m, n = (int(v) for v in m_by_n)
    if not 0 < m < n:
        raise ValueError(f"m_by_n={m_by_n!r}: need 0 < m < n (m zeros in every n weights)")
    return m, n


def _unique_per_channel(weights: np.ndarray, out_axis: int) -> list[int]:
    rows = np.moveaxis(weights, out_axis, 0).reshape(weights.shape[out_axis], -1)
    return [len(np.unique(row)) for row in rows]


def _m_by_n_holds(nonzero: np.ndarray, in_axis: int, m_by_n: tuple[int, int]) -> bool:
    m, n = m_by_n
    rows = np.moveaxis(nonzero, in_axis, -1)
    rows = rows.reshape(-1, rows.shape[-1])
    # Pad with zeros so a short last group is judged like a full one, as TFMOT does.
    pad = -rows.shape[1] % n
    rows = np.pad(rows, ((0, 0), (0, pad)))
    per_group = rows.reshape(rows.shape[0], -1, n).sum(axis=-1)
    return bool((per_group <= n - m).all())


def _layer_stats(name: str, kind: str, status: str, weights: np.ndarray, *, out_axis: int,
                 in_axis: int, zero=0, m_by_n: tuple[int, int] | None = None) -> LayerStats:
    """``zero`` is what a pruned weight holds: 0, or the zero point(s) of an integer tensor
    shaped to broadcast against ``weights``."""
    if weights.size == 0:
        raise ValueError(f"layer {name!r} has an empty weight tensor {weights.shape}")
    nonzero_mask = weights != zero
    per_channel = _unique_per_channel(weights, out_axis)
    check_pattern = m_by_n is not None and kind != "depthwise"
    nonzero = int(nonzero_mask.sum())
    return LayerStats(
        name=name,
        kind=kind,
        status=status,
        total=int(weights.size),
        nonzero=nonzero,
        sparsity=1.0 - nonzero / weights.size,
        unique_tensor=int(len(np.unique(weights))),
        unique_per_channel_max=int(max(per_channel)),
        unique_per_channel_mean=float(np.mean(per_channel)),
        m_by_n_ok=_m_by_n_holds(nonzero_mask, in_axis, m_by_n) if check_pattern else None,
        shape=tuple(int(d) for d in weights.shape),
    )


def _status(kind: str, *, size: int, clustered_count: int, clusters: int | None,
            min_weights: int, in_channels: int = 0, m_by_n: tuple[int, int] | None = None) -> str:
    """``clustered_count`` is how many weights TFMOT would cluster together."""
    if kind == "depthwise":
        return EXCLUDED
    if size < min_weights:
        return SKIPPED
    if m_by_n is not None and in_channels < m_by_n[1]:
        return SKIPPED_M_BY_N
    # TFMOT applies its weight-count rule to Conv2D only; Dense is always clustered.
    if clusters is not None and kind == "conv" and clustered_count <= clusters:
        return SKIPPED
    return CHECKED


# ---------------------------------------------------------------------------------------
# Keras
# ---------------------------------------------------------------------------------------


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
            kind, kernel = "depthwise", layer.depthwise_kernel
        elif isinstance(layer, keras.layers.Conv2D):
            kind, kernel = "conv", layer.kernel
        else:
            kind, kernel = "dense", layer.kernel
        weights = np.asarray(kernel.numpy())
        if kind == "depthwise":
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


# ---------------------------------------------------------------------------------------
# TFLite
# ---------------------------------------------------------------------------------------

# Builtin operator -> (kind, output-channel axis, input-channel axis) of its weights.
# TFLite weights: CONV_2D [out, h, w, in], DEPTHWISE_CONV_2D [1, h, w, out],
# FULLY_CONNECTED [out, in]. Depthwise layers get no m-by-n check, so their input axis
# is never used.
_TFLITE_OPS = {
    "CONV_2D": ("conv", 0, -1),
    "DEPTHWISE_CONV_2D": ("depthwise", -1, -1),
    "FULLY_CONNECTED": ("dense", 0, -1),
}

# The converter names a weight tensor after the ops it came from, e.g.
# "ds-cnn-s/dw_1_relu/Relu;ds-cnn-s/dw_1_bn/FusedBatchNormV3;ds-cnn-s/dw_1/depthwise":
# the layer is the path component just before the weight op.
_WEIGHT_OP = re.compile(r"^(Conv2D|depthwise|MatMul|Tensordot)(_?\d+)?$")


def inspect_tflite(tflite: bytes, *, clusters: int | None = None,
                   m_by_n: tuple[int, int] | None = None, min_weights: int = 0,
                   cluster_per_channel: bool = True) -> ModelStats:
    """Weight statistics of every CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED operator
    of a TFLite flatbuffer, read from its buffers (the model is not run).

    Layers are named after the Keras layer found in the weight tensor's name (``pw_1``)
    or else the tensor name. Integer weights count a weight as zero when it equals its
    channel's zero point. Float16 weights behind a DEQUANTIZE op are followed to the
    float16 constant. ``clusters``, ``min_weights`` and ``cluster_per_channel`` mark
    layers as in :func:`inspect_keras`; a TFLite model keeps no trace of whether a Keras
    layer had a bias, so the per-channel count is the weights per output channel.
    """
    schema = _schema()
    m_by_n = _validate_m_by_n(m_by_n)
    model = _parse(tflite, schema)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    stats, seen, used_names = [], set(), set()
    for graph in model.subgraphs or []:
        producers = {out: op for op in graph.operators or [] for out in op.outputs}
        for op in graph.operators or []:
            op_name = op_names.get(_builtin_code(model.operatorCodes[op.opcodeIndex]))
            if op_name not in _TFLITE_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
                continue
            index = _constant_source(graph, producers, op.inputs[1], op_names, model)
            if (id(graph), index) in seen:  # one tensor shared by several ops
                continue
            seen.add((id(graph), index))
            kind, out_axis, in_axis = _TFLITE_OPS[op_name]
            tensor = graph.tensors[index]
            tensor_name = _decode(tensor.name)
            weights = _tensor_array(tflite, model, tensor, tensor_name, schema)
            zero = _zero_points(tensor, weights)
            name = _layer_name(tensor_name)
            if name in used_names:
                name = tensor_name
            used_names.add(name)
            per_channel = weights.size // weights.shape[out_axis]
            status = _status(kind, size=weights.size, clusters=clusters,
                             min_weights=min_weights,
                             clustered_count=per_channel if cluster_per_channel else weights.size,
                             in_channels=weights.shape[in_axis], m_by_n=m_by_n)
            stats.append(_layer_stats(name, kind, status, weights, out_axis=out_axis,
                                      in_axis=in_axis, zero=zero, m_by_n=m_by_n))
    return ModelStats("tflite", tuple(stats))


def _schema():
    # kws.compat sets the legacy-Keras switch before TensorFlow is first imported.
    from tensorflow.lite.python import schema_py_generated

    from kws.compat import tf  # noqa: F401

    return schema_py_generated


def _parse(tflite: bytes, schema):
    tflite = bytes(tflite)
    if tflite[4:8] != _TFLITE_IDENTIFIER:
        raise ValueError(
            f"not a TFLite flatbuffer: bytes 4-8 are {tflite[4:8]!r}, not {_TFLITE_IDENTIFIER!r}"
        )
    return schema.ModelT.InitFromPackedBuf(tflite, 0)


def _builtin_code(code) -> int:
    # Operator codes above 127 live in builtinCode; older files only set the int8
    # deprecatedBuiltinCode. The larger of the two is the real one.
    return max(int(code.builtinCode), int(code.deprecatedBuiltinCode))


def _constant_source(graph, producers: dict, index: int, op_names: dict, model) -> int:
    """The tensor holding the weights: float16 models compute the float32 weights with a
    DEQUANTIZE op from a float16 constant."""
    op = producers.get(index)
    if op is not None and op_names.get(
            _builtin_code(model.operatorCodes[op.opcodeIndex])) == "DEQUANTIZE":
        return op.inputs[0]
    return index


def _numpy_dtype(tensor_type: int, tensor_name: str, schema):
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    dtypes = {"FLOAT32": np.float32, "FLOAT16": np.float16, "INT8": np.int8,
              "UINT8": np.uint8, "INT16": np.int16}
    name = names.get(tensor_type, str(tensor_type))
    if name not in dtypes:
        raise ValueError(f"weight tensor {tensor_name!r} has type {name}, which is not read")
    return dtypes[name]


def _tensor_array(tflite: bytes, model, tensor, tensor_name: str, schema) -> np.ndarray:
    if tensor.sparsity is not None:
        raise ValueError(f"weight tensor {tensor_name!r} is stored in TFLite's sparse format, "
                         "which is not read")
    buffer = model.buffers[tensor.buffer]
    data = buffer.data
    # Models over 2 GB keep buffers after the flatbuffer, located by offset and size.
    if (data is None or len(data) == 0) and getattr(buffer, "offset", 0) > 1:
        data = tflite[buffer.offset:buffer.offset + buffer.size]
    if data is None or len(data) == 0:
        raise ValueError(f"weight tensor {tensor_name!r} is not a constant (its buffer "
                         "is empty)")
    shape = tuple(int(d) for d in tensor.shape)
    weights = np.frombuffer(bytes(np.asarray(data, dtype=np.uint8)),
                            dtype=_numpy_dtype(tensor.type, tensor_name, schema))
    if weights.size != int(np.prod(shape)):
        raise ValueError(f"weight tensor {tensor_name!r}: buffer holds {weights.size} values, "
                         f"shape {shape} needs {int(np.prod(shape))}")
    return weights.reshape(shape)


def _zero_points(tensor, weights: np.ndarray):
    """What a zero weight holds: the zero point, per channel along the quantised
    dimension when there are several."""
    q = tensor.quantization
    if not np.issubdtype(weights.dtype, np.integer) or q is None or q.zeroPoint is None:
        return 0
    zero_points = np.asarray(q.zeroPoint, dtype=np.int64)
    if zero_points.size <= 1:
        return int(zero_points[0]) if zero_points.size else 0
    shape = [1] * weights.ndim
    shape[q.quantizedDimension] = zero_points.size
    return zero_points.reshape(shape)


def _layer_name(tensor_name: str) -> str:
    for part in reversed(tensor_name.split(";")):
        components = part.split("/")
        for i in range(len(components) - 1, 0, -1):
            if _WEIGHT_OP.match(components[i]):
                # QAT wraps each layer as ``quant_<name>``: report the Keras layer's name.
                return components[i - 1].removeprefix("quant_")
    return tensor_name


def _decode(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name or "")


# ---------------------------------------------------------------------------------------
# Printing
# ---------------------------------------------------------------------------------------


def format_stats(stats: ModelStats) -> str:
    """A table of every layer, and the totals over the checked ones."""
    from tabulate import tabulate

    rows = [
        [layer.name, layer.kind, layer.status, "x".join(map(str, layer.shape)), layer.total,
         layer.nonzero, f"{layer.sparsity:.3f}", layer.unique_tensor,
         layer.unique_per_channel_max, f"{layer.unique_per_channel_mean:.1f}",
         "" if layer.m_by_n_ok is None else ("yes" if layer.m_by_n_ok else "no")]
        for layer in stats.layers
    ]
    table = tabulate(rows, headers=["layer", "kind", "status", "shape", "weights", "non-zero",
                                    "sparsity", "unique", "unique/ch max", "unique/ch mean",
                                    "m:n"])
    checked = stats.checked()
    if not checked:
        return f"{table}\n\n{stats.source}: no layer checked"
    return (f"{table}\n\n{stats.source}: {len(checked)} layers checked, sparsity "
            f"{stats.sparsity():.3f}, max unique per channel {stats.max_unique_per_channel()}")
