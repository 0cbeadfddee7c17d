"""The MFCC front-end description: the two reference recipes as presets, their
parameters validated, and ``"preset,key=value,..."`` specs parsed.

:class:`FrontEnd` parametrises both recipes (sample rate, frame sizes, mel bands,
coefficients, band edges) so that the front-end trade-offs studied in the KWS
literature can be swept; :func:`get_frontend` parses a spec. Nothing here imports
TensorFlow: a front-end is plain data, cheap to build for the command line and for
cache keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Clips are one second of 16 kHz audio; shorter ones are zero-padded at the end.
CLIP_SAMPLES = 16000
INPUT_SAMPLE_RATE = 16000
INT16_SCALE = 32768.0

RECIPES = ("tf-signal", "audio-ops")
SAMPLE_RATES = (16000, 8000)
NORMALIZATIONS = ("max", "int16")


@dataclass(frozen=True)
class FrontEnd:
    """A fully specified MFCC front-end. Frame sizes are in samples at ``sample_rate``.

    ``recipe`` selects the computation: ``"tf-signal"`` is the MLPerf Tiny pipeline,
    ``"audio-ops"`` the Arm / TensorFlow-speech-commands one. ``normalize`` is how a
    clip is scaled before the recipe: ``"max"`` divides by the clip's maximum sample
    (MLPerf Tiny), ``"int16"`` keeps PCM / 32768 (Arm).

    ``name`` is a label for reports only; it takes no part in equality, hashing or the
    feature-cache key, so two front-ends that compute the same features are equal.
    """

    recipe: str
    sample_rate: int
    frame_length: int
    frame_step: int
    num_mel_bins: int
    num_coefficients: int
    lower_edge_hz: float
    upper_edge_hz: float
    normalize: str
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        _check_choice("recipe", self.recipe, RECIPES)
        _check_choice("sample_rate", self.sample_rate, SAMPLE_RATES)
        _check_choice("normalize", self.normalize, NORMALIZATIONS)
        for name in ("frame_length", "frame_step", "num_mel_bins", "num_coefficients"):
            _check_positive_int(name, getattr(self, name))
        for name in ("lower_edge_hz", "upper_edge_hz"):
            # Store floats so that 4000 and 4000.0 give equal front-ends and cache keys.
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        self._check_consistency()

    def _check_consistency(self) -> None:
        if self.frame_length < 2:
            raise ValueError(f"frame_length={self.frame_length}: must be at least 2 samples")
        if self.frame_length > self.num_samples:
            raise ValueError(
                f"frame_length={self.frame_length}: longer than a clip "
                f"({self.num_samples} samples at {self.sample_rate} Hz)"
            )
        if self.num_coefficients > self.num_mel_bins:
            raise ValueError(
                f"num_coefficients={self.num_coefficients}: more than "
                f"num_mel_bins={self.num_mel_bins}"
            )
        if self.lower_edge_hz < 0:
            raise ValueError(f"lower_edge_hz={self.lower_edge_hz}: must be >= 0")
        nyquist = self.sample_rate / 2
        if self.upper_edge_hz > nyquist:
            raise ValueError(
                f"upper_edge_hz={self.upper_edge_hz}: above the Nyquist frequency "
                f"{nyquist:g} Hz of sample_rate={self.sample_rate}"
            )
        if self.lower_edge_hz >= self.upper_edge_hz:
            raise ValueError(
                f"lower_edge_hz={self.lower_edge_hz}: must be below "
                f"upper_edge_hz={self.upper_edge_hz}"
            )

    @property
    def num_samples(self) -> int:
        """Samples per one-second clip at this front-end's rate."""
        return CLIP_SAMPLES * self.sample_rate // INPUT_SAMPLE_RATE

    @property
    def num_frames(self) -> int:
        return 1 + (self.num_samples - self.frame_length) // self.frame_step

    @property
    def output_shape(self) -> tuple[int, int]:
        """``(frames, coefficients)`` of one clip's features."""
        return (self.num_frames, self.num_coefficients)

    def params(self) -> dict[str, Any]:
        """Every field, JSON-serialisable (for run records)."""
        return dataclasses.asdict(self)

    def feature_params(self) -> dict[str, Any]:
        """The fields that determine the features: :meth:`params` without ``name``."""
        params = self.params()
        del params["name"]
        return params


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    # bool is an int: reject it explicitly so that sample_rate=True is not accepted as 1.
    if isinstance(value, bool) or value not in choices:
        valid = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}={value!r}: must be one of {valid}")


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}={value!r}: must be a positive integer")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name}={value!r}: must be a number")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}={value!r}: must be finite")
    return value


PRESETS: dict[str, FrontEnd] = {
    "mlperf-tiny": FrontEnd(
        recipe="tf-signal",
        sample_rate=16000,
        frame_length=480,
        frame_step=320,
        num_mel_bins=40,
        num_coefficients=10,
        lower_edge_hz=20.0,
        upper_edge_hz=4000.0,
        normalize="max",
        name="mlperf-tiny",
    ),
    "arm": FrontEnd(
        recipe="audio-ops",
        sample_rate=16000,
        frame_length=640,
        frame_step=320,
        num_mel_bins=40,
        num_coefficients=10,
        lower_edge_hz=20.0,
        upper_edge_hz=4000.0,
        normalize="int16",
        name="arm",
    ),
}

_SPEC_KEYS = tuple(f.name for f in dataclasses.fields(FrontEnd) if f.name != "name")


def get_frontend(spec: str | FrontEnd) -> FrontEnd:
    """A :class:`FrontEnd` from a preset name or ``"preset,key=value,..."``.

    >>> get_frontend("mlperf-tiny,sample_rate=8000,num_mel_bins=16").output_shape
    (24, 10)
    """
    if isinstance(spec, FrontEnd):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"front-end spec must be a str or FrontEnd, not {type(spec).__name__}")
    preset_name, *assignments = [part.strip() for part in spec.split(",")]
    if preset_name not in PRESETS:
        valid = ", ".join(PRESETS)
        raise ValueError(
            f"front-end {spec!r}: must start with a preset name ({valid}), got {preset_name!r}"
        )
    overrides = _parse_assignments(spec, assignments)
    if not overrides:
        return PRESETS[preset_name]
    return dataclasses.replace(PRESETS[preset_name], name=spec.replace(" ", ""), **overrides)


def _parse_assignments(spec: str, assignments: list[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = (s.strip() for s in item.partition("="))
        if not sep or not key or not raw:
            raise ValueError(f"front-end {spec!r}: {item!r} is not key=value")
        if key not in _SPEC_KEYS:
            raise ValueError(
                f"front-end {spec!r}: unknown key {key!r}; valid keys: {', '.join(_SPEC_KEYS)}"
            )
        if key in overrides:
            raise ValueError(f"front-end {spec!r}: key {key!r} given twice")
        overrides[key] = _parse_value(key, raw)
    return overrides


def _parse_value(key: str, raw: str) -> Any:
    # Every preset sets every field, so a preset's value tells the field's type.
    kind = type(getattr(PRESETS["mlperf-tiny"], key))
    if kind is str:
        return raw
    try:
        return kind(raw)
    except ValueError:
        expected = "an integer" if kind is int else "a number"
        raise ValueError(f"{key}={raw!r}: must be {expected}") from None
