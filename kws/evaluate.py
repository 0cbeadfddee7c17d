"""Accuracy of a KWS model on a Speech Commands folder: any TFLite model through LiteRT,
or a float tf_keras model, with one evaluator for both.

The label order and the front-end are parameters, because a model from elsewhere (Arm's
ML-zoo, MLPerf Tiny) fixes both. ``kws eval`` (:mod:`kws.cli.eval`) prints the result.

Neither TensorFlow nor LiteRT is imported at module level: callers that only score
predictions do not pay for loading them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.errors import KwsError

#: Rows per interpreter call when the model's batch dimension can be resized.
DEFAULT_BATCH = 256
#: The flatbuffer file identifier of a TFLite model, at bytes 4-8.
_TFLITE_IDENTIFIER = b"TFL3"


# ---------------------------------------------------------------------------------------
# Running a TFLite model
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Quantization:
    """``real = (q - zero_point) * scale``; ``scale == 0`` means a float tensor."""

    scale: float
    zero_point: int
    dtype: type

    @classmethod
    def of(cls, detail: dict) -> _Quantization:
        scale, zero_point = detail["quantization"]
        return cls(float(scale), int(zero_point), detail["dtype"])

    @property
    def is_integer(self) -> bool:
        return np.issubdtype(self.dtype, np.integer)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        if not self.is_integer:
            return x.astype(self.dtype)
        info = np.iinfo(self.dtype)
        q = np.round(x / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if not self.is_integer:
            return q.astype(np.float32)
        return ((q.astype(np.int32) - self.zero_point) * self.scale).astype(np.float32)


class TFLiteRunner:
    """A TFLite KWS model (one input, one output) run with LiteRT.

    Integer (int8/uint8) inputs are quantised with the input tensor's scale and zero
    point, integer outputs dequantised, so :meth:`predict` always takes and returns
    float. The features of one clip are reshaped to the model's input layout (for
    example ``(1, 490)``, ``(1, 49, 10)`` or ``(1, 49, 10, 1)``). Clips run
    ``batch_size`` at a time when the model's batch dimension can be resized, otherwise
    one at a time (:attr:`batch_size` is then 1).
    """

    def __init__(self, model: bytes | Path | str, *, batch_size: int = DEFAULT_BATCH,
                 num_threads: int | None = None):
        self.source = "<bytes>" if isinstance(model, (bytes, bytearray)) else str(model)
        self.content = _read_model(model)
        self.num_threads = num_threads
        self.interpreter = self._new_interpreter()
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise KwsError(f"{self.source}: a KWS model has one input and one output, this one "
                           f"has {len(inputs)} and {len(outputs)}")
        self.input_shape = tuple(int(d) for d in inputs[0]["shape"])
        self.output_shape = tuple(int(d) for d in outputs[0]["shape"])
        self.input_quant = _Quantization.of(inputs[0])
        self.output_quant = _Quantization.of(outputs[0])
        for what, q in (("input", self.input_quant), ("output", self.output_quant)):
            if q.is_integer and q.scale == 0:
                raise KwsError(f"{self.source}: {what} is {np.dtype(q.dtype).name} without "
                               "quantisation parameters")
        self._batched_layout = len(self.input_shape) > 1 and self.input_shape[0] == 1
        self.sample_shape = self.input_shape[1:] if self._batched_layout else self.input_shape
        self.batch_size = self._resize(batch_size) if self._batched_layout else 1

    # ----- shape ------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """Values one clip's features must hold."""
        return math.prod(self.sample_shape)

    @property
    def num_classes(self) -> int:
        return math.prod(self.output_shape[1:]) if len(self.output_shape) > 1 else self.output_shape[0]

    def check_features(self, frames: int, coefficients: int, source: str = "features") -> None:
        """A :class:`KwsError` unless ``frames x coefficients`` features fill the input."""
        self._check_size((frames, coefficients), source)

    def _check_size(self, shape: tuple[int, ...], source: str) -> None:
        size = math.prod(shape)
        if size != self.input_size:
            dims = "x".join(str(d) for d in shape)
            raise KwsError(f"model input {self.input_shape} holds {self.input_size} values but "
                           f"{source} gives {dims} = {size}")

    # ----- inference --------------------------------------------------------------
    def predict(self, features: np.ndarray) -> np.ndarray:
        """Float scores ``[N, classes]`` of features ``[N, frames, coeffs]``."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim < 2:
            raise ValueError(f"features must be [N, frames, coeffs], got shape {features.shape}")
        self._check_size(features.shape[1:], "features")
        rows = features.reshape(len(features), *self.sample_shape)
        out = np.empty((len(rows), self.num_classes), np.float32)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            out[start : start + len(chunk)] = self._invoke(chunk)
        return out

    def _invoke(self, chunk: np.ndarray) -> np.ndarray:
        n = len(chunk)
        if self._batched_layout:
            # The interpreter's batch is fixed once allocated: pad the last chunk, then trim.
            batch = np.zeros((self.batch_size, *self.sample_shape), np.float32)
            batch[:n] = chunk
        else:
            batch = chunk[0]
        interp = self.interpreter
        interp.set_tensor(interp.get_input_details()[0]["index"], self.input_quant.quantize(batch))
        interp.invoke()
        raw = interp.get_tensor(interp.get_output_details()[0]["index"])
        return self.output_quant.dequantize(raw).reshape(-1, self.num_classes)[:n]

    # ----- set-up -----------------------------------------------------------------
    def _new_interpreter(self):
        from ai_edge_litert.interpreter import Interpreter

        try:
            interp = Interpreter(model_content=self.content, num_threads=self.num_threads)
            interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise KwsError(f"{self.source}: LiteRT cannot load the model ({_first_line(exc)})") from None
        return interp

    def _resize(self, batch_size: int) -> int:
        """The batch size the interpreter now runs: ``batch_size`` if the model allows its
        batch dimension to change, else 1 (with a fresh, unresized interpreter)."""
        if batch_size <= 1:
            return 1
        interp = self.interpreter
        try:
            interp.resize_tensor_input(interp.get_input_details()[0]["index"],
                                       [batch_size, *self.sample_shape])
            interp.allocate_tensors()
            out_shape = tuple(interp.get_output_details()[0]["shape"])
        except (ValueError, RuntimeError):
            out_shape = None
        # A model whose graph hard-codes batch 1 (a Reshape to [1, ...]) may resize
        # without error yet not carry the batch through: only trust a batched output.
        if out_shape is not None and math.prod(out_shape) == batch_size * self.num_classes \
                and out_shape[0] == batch_size:
            return batch_size
        self.interpreter = self._new_interpreter()
        return 1


def _read_model(model: bytes | Path | str) -> bytes:
    if isinstance(model, (bytes, bytearray)):
        content, source = bytes(model), "<bytes>"
    else:
        path = Path(model)
        if not path.is_file():
            raise KwsError(f"model file {path} does not exist")
        content, source = path.read_bytes(), str(path)
    if content[4:8] != _TFLITE_IDENTIFIER:
        raise KwsError(f"{source} is not a TFLite model (no {_TFLITE_IDENTIFIER.decode()} "
                       "flatbuffer identifier)")
    return content


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalResult:
    """Top-1 accuracy over ``n`` clips. ``per_label[label]`` is the accuracy on that
    label's clips (``None`` when it has none); ``confusion[i][j]`` counts clips of true
    label ``labels[i]`` predicted as ``labels[j]``."""

    accuracy: float
    n: int
    per_label: dict[str, float | None]
    confusion: list[list[int]]
    labels: tuple[str, ...]

    def to_dict(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "n": self.n,
            "per_label": dict(self.per_label),
            "confusion": [list(row) for row in self.confusion],
            "labels": list(self.labels),
        }


def evaluate(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    features: np.ndarray,
    labels: np.ndarray,
    label_names,
) -> EvalResult:
    """Score ``predict_fn`` (features ``[N, ...]`` -> scores ``[N, classes]``) against
    ``labels`` (indices into ``label_names``)."""
    label_names = tuple(label_names)
    labels = np.asarray(labels)
    if len(features) != len(labels):
        raise ValueError(f"features has {len(features)} rows but labels has {len(labels)}")
    if len(labels) == 0:
        raise ValueError("nothing to evaluate: features and labels are empty")
    if labels.min() < 0 or labels.max() >= len(label_names):
        raise ValueError(f"labels must be indices into the {len(label_names)} label_names, "
                         f"got values in [{labels.min()}, {labels.max()}]")
    scores = np.asarray(predict_fn(features))
    if scores.shape != (len(labels), len(label_names)):
        raise KwsError(f"the model gives scores of shape {scores.shape}, expected "
                       f"({len(labels)}, {len(label_names)}): one per clip and label")
    return score(scores.argmax(axis=1), labels, label_names)


def score(predicted: np.ndarray, labels: np.ndarray, label_names) -> EvalResult:
    """An :class:`EvalResult` from predicted and true label indices."""
    k = len(label_names)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (np.asarray(labels), np.asarray(predicted)), 1)
    totals = confusion.sum(axis=1)
    per_label = {
        name: (float(confusion[i, i] / totals[i]) if totals[i] else None)
        for i, name in enumerate(label_names)
    }
    return EvalResult(
        accuracy=float(np.trace(confusion) / confusion.sum()),
        n=int(confusion.sum()),
        per_label=per_label,
        confusion=confusion.tolist(),
        labels=tuple(label_names),
    )


def evaluate_keras(model, features: np.ndarray, labels: np.ndarray, label_names,
                   batch_size: int = DEFAULT_BATCH) -> EvalResult:
    """:func:`evaluate` for a float tf_keras model (features reshaped to its input)."""

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float32).reshape(len(x), *model.input_shape[1:])
        return model.predict(x, batch_size=batch_size, verbose=0)

    return evaluate(predict, features, labels, label_names)
