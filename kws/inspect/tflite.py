"""Weight statistics of a TFLite flatbuffer, read from its buffers (the model is not run),
through TensorFlow's generated schema bindings."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from kws.inspect.stats import Kind, ModelStats, _layer_stats, _status, _validate_m_by_n

_TFLITE_IDENTIFIER = b"TFL3"

# Builtin operator -> (kind, output-channel axis, input-channel axis) of its weights.
# TFLite weights: CONV_2D [out, h, w, in], DEPTHWISE_CONV_2D [1, h, w, out],
# FULLY_CONNECTED [out, in]. Depthwise layers get no m-by-n check, so their input axis
# is never used.
_TFLITE_OPS = {
    "CONV_2D": (Kind.CONV, 0, -1),
    "DEPTHWISE_CONV_2D": (Kind.DEPTHWISE, -1, -1),
    "FULLY_CONNECTED": (Kind.DENSE, 0, -1),
}

# The converter names a weight tensor after the ops it came from, e.g.
# "ds-cnn-s/dw_1_relu/Relu;ds-cnn-s/dw_1_bn/FusedBatchNormV3;ds-cnn-s/dw_1/depthwise":
# the layer is the path component just before the weight op.
_WEIGHT_OP = re.compile(r"^(Conv2D|depthwise|MatMul|Tensordot)(_?\d+)?$")


@dataclass(frozen=True)
class WeightTensor:
    """One weight tensor of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED operator:
    ``weights`` as stored (int8 with ``tensor.quantization``, float16 or float32), its
    output- and input-channel axes, and the Keras layer its name points to."""

    kind: Kind
    out_axis: int
    in_axis: int
    tensor: Any
    tensor_name: str
    weights: np.ndarray

    @property
    def layer(self) -> str:
        return _layer_name(self.tensor_name)


def weight_tensors(tflite: bytes) -> Iterator[WeightTensor]:
    """Every weight tensor of the flatbuffer's weight operators, in graph order, each once
    (a tensor shared by several operators is read once; float16 weights behind a
    DEQUANTIZE op are followed to the float16 constant)."""
    schema = _schema()
    model = _parse(tflite, schema)
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    seen = set()
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
            yield WeightTensor(kind, out_axis, in_axis, tensor, tensor_name,
                               _tensor_array(tflite, model, tensor, tensor_name, schema))


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
    m_by_n = _validate_m_by_n(m_by_n)
    stats, used_names = [], set()
    for w in weight_tensors(tflite):
        weights = w.weights
        zero = _zero_points(w.tensor, weights)
        name = w.layer
        if name in used_names:
            name = w.tensor_name
        used_names.add(name)
        per_channel = weights.size // weights.shape[w.out_axis]
        status = _status(w.kind, size=weights.size, clusters=clusters,
                         min_weights=min_weights,
                         clustered_count=per_channel if cluster_per_channel else weights.size,
                         in_channels=weights.shape[w.in_axis], m_by_n=m_by_n)
        stats.append(_layer_stats(name, w.kind, status, weights, out_axis=w.out_axis,
                                  in_axis=w.in_axis, zero=zero, m_by_n=m_by_n))
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


def layer_label(name: str, width: int = 28) -> str:
    """A short name for a Vela layer, whose name is its output tensor's and lists every
    tensor a fused operator absorbed: the Keras layer of its weight op (``pw_1``), else the
    last-but-one part of its first tensor's path (``avg_pool``), else that tensor's name."""
    short = _layer_name(name)
    if short == name:
        parts = name.split(";")[0].split("/")
        short = (parts[-2] if len(parts) > 1 else parts[0]).removeprefix("quant_")
    return short if len(short) <= width else short[: width - 3] + "..."


def _decode(name) -> str:
    return name.decode() if isinstance(name, bytes) else str(name or "")

