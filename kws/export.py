"""Convert tf_keras KWS models to TFLite flatbuffers, and measure how big they are.

Four kinds of conversion, as in the TFLite post-training quantisation guide:

``float32``  plain conversion, float weights and activations;
``dynamic``  dynamic-range quantisation: int8 weights, float activations;
``float16``  float16 weights, float activations;
``int8``     full integer: int8 weights and activations, int8 input and output,
             calibrated on representative features.

TensorFlow is imported lazily (through :mod:`kws.compat`) so that importing this module
stays cheap for the command line.
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import logging
import os
import sys
import tempfile
import warnings
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np


class ExportKind(enum.StrEnum):
    """The TFLite conversions above. The value is the kind's name in cache keys, records
    and ``kws train --export``."""

    FLOAT32 = "float32"
    DYNAMIC = "dynamic"
    FLOAT16 = "float16"
    INT8 = "int8"


KINDS = tuple(k.value for k in ExportKind)

#: Calibration samples for ``int8``. The TFLite guide suggests 100-500; more only adds
#: conversion time once the activation ranges have settled.
DEFAULT_REPRESENTATIVE_SAMPLES = 500


def to_tflite(
    model,
    kind: str,
    representative: np.ndarray | None = None,
    *,
    max_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES,
) -> bytes:
    """The TFLite flatbuffer of ``model`` (a tf_keras model) converted as ``kind``.

    ``representative`` (``int8`` only; float features of the training split, one row per
    clip in any shape whose size matches the model's input) calibrates the activation
    ranges. At most ``max_samples`` rows are used, picked evenly across the array, so
    that label-grouped data still covers every label and the same array always gives
    the same model.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: must be one of {', '.join(KINDS)}")
    if kind == "int8" and representative is None:
        raise ValueError("kind='int8' needs representative: float features to calibrate on")
    from kws.compat import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if kind != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if kind == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if kind == "int8":
        samples = representative_samples(representative, model.input_shape, max_samples)
        converter.representative_dataset = representative_dataset(samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with _quiet_converter():
        return bytes(converter.convert())


def representative_samples(
    features: np.ndarray, input_shape: tuple, max_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES
) -> np.ndarray:
    """Up to ``max_samples`` rows of ``features``, evenly spaced, as float32 shaped
    ``[n, *input_shape[1:]]`` (``input_shape`` is a Keras shape with batch ``None``)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim < 2 or len(features) == 0:
        raise ValueError(
            f"representative must be a non-empty array [samples, ...], got shape {features.shape}"
        )
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    sample_shape = tuple(int(d) for d in input_shape[1:])
    if int(np.prod(features.shape[1:])) != int(np.prod(sample_shape)):
        raise ValueError(
            f"representative rows have shape {features.shape[1:]} but the model's input is "
            f"{sample_shape}"
        )
    if not np.isfinite(features).all():
        raise ValueError("representative contains NaN or inf")
    n = min(len(features), max_samples)
    rows = np.unique(np.linspace(0, len(features) - 1, n).round().astype(int))
    return features[rows].reshape(len(rows), *sample_shape)


def representative_dataset(samples: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The converter's ``representative_dataset``: each call starts a new pass over
    ``samples``, so converting twice (or a converter that reads it twice) never meets an
    exhausted iterator."""

    def generate() -> Iterator[list[np.ndarray]]:
        for row in samples:
            yield [row[None]]

    return generate


def sizes(tflite: bytes) -> dict[str, int]:
    """Bytes of the flatbuffer: ``raw``, ``gzip`` (level 9) and ``zlib`` (level 9).

    gzip's header normally holds the time; ``mtime=0`` makes the size (and the bytes)
    the same on every run.
    """
    return {
        "raw": len(tflite),
        "gzip": len(gzip.compress(tflite, compresslevel=9, mtime=0)),
        "zlib": len(zlib.compress(tflite, 9)),
    }


@contextlib.contextmanager
def _quiet_converter():
    """Hide the converter's Python warnings, absl logs and the MLIR chatter it writes
    straight to file descriptor 2. The hidden native output is replayed if conversion
    fails, since it then holds the reason."""
    from kws.compat import tf

    tf_logger = tf.get_logger()
    old_level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _captured_stderr_fd() as replay:
            warnings.simplefilter("ignore")
            try:
                yield
            except BaseException:
                replay()
                raise
    finally:
        tf_logger.setLevel(old_level)


@contextlib.contextmanager
def _captured_stderr_fd():
    """Send fd 2 to a temporary file for the duration; yields a function that copies
    what was captured back to the real stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): leave it be
        yield lambda: None
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        captured: list[bytes] = []

        def replay() -> None:
            with contextlib.suppress(OSError):
                sink.seek(0)
                captured.append(sink.read())

        try:
            yield replay
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if captured and captured[0]:
                with contextlib.suppress(OSError, ValueError):
                    sys.stderr.write(captured[0].decode(errors="replace"))
                    sys.stderr.flush()


# ----- the conversion step of a case ---------------------------------------------------

STAGE = "tflite"
TFLITE_FILE = "model.tflite"


def export_material(kind: str, ds, frontend, *, max_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES) -> dict:
    """What a conversion's output depends on besides its parent model: the kind and, for
    int8, the representative data (the unaugmented training split's fingerprint)."""
    kind = ExportKind(kind)
    return {
        "kind": kind,
        "max_samples": max_samples,
        "representative": ds.fingerprint("training") if kind is ExportKind.INT8 else None,
        "frontend": frontend.feature_params(),
        "labels": ds.config.labels,
    }


def build_export(folder: Path, model, kind: str, representative: Callable[[], np.ndarray] | None, *,
                 max_samples: int = DEFAULT_REPRESENTATIVE_SAMPLES) -> dict:
    """Write ``model`` converted as ``kind`` to ``folder/model.tflite``; metadata: the
    kind and the sizes. ``representative`` returns the calibration features (int8)."""
    kind = ExportKind(kind)
    features = representative() if kind is ExportKind.INT8 else None
    tflite = to_tflite(model, kind, features, max_samples=max_samples)
    (Path(folder) / TFLITE_FILE).write_bytes(tflite)
    return {"kind": kind, "sizes": sizes(tflite)}
