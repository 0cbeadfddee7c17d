"""MFCC front-ends for keyword spotting, computed in batches, with an on-disk cache.

Two reference recipes are reproduced exactly:

``mlperf-tiny``
    The MLPerf Tiny KWS reference (``get_dataset.py``): the clip is divided by its
    maximum sample, padded to one second, passed through ``tf.signal.stft`` (30 ms Hann
    frames every 20 ms), the magnitude is warped to 40 mel bands (20-4000 Hz) with
    ``tf.signal.linear_to_mel_weight_matrix``, ``log(mel + 1e-6)`` is taken and the first
    10 coefficients of ``tf.signal.mfccs_from_log_mel_spectrograms`` are kept: 49 x 10.

``arm``
    The Arm ML-zoo recipe (``data_preprocessing.py``, itself the TensorFlow
    ``speech_commands`` example): PCM / 32768, clipped to [-1, 1], then the
    ``AudioSpectrogram`` op (40 ms windows every 20 ms, magnitude squared) and the
    ``Mfcc`` op (40 channels, 20-4000 Hz, 10 coefficients): 49 x 10.

:class:`FrontEnd` parametrises both recipes (sample rate, frame sizes, mel bands,
coefficients, band edges) so that the front-end trade-offs studied in the KWS
literature can be swept; :func:`get_frontend` parses ``"preset,key=value,..."``.

TensorFlow is imported lazily (through :mod:`kws.compat`) so that importing this module
stays cheap for the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kws import _fs

log = logging.getLogger(__name__)

#: Clips are one second of 16 kHz audio; shorter ones are zero-padded at the end.
CLIP_SAMPLES = 16000
INPUT_SAMPLE_RATE = 16000
INT16_SCALE = 32768.0

#: Bump when the meaning or layout of cached features changes (invalidates old entries).
FEATURE_FORMAT_VERSION = 1

#: Clips per ``tf.function`` call. Large enough to amortise the per-call overhead of
#: TensorFlow, small enough that a batch's complex STFT (~50 MB at 256) stays in memory.
DEFAULT_BATCH_SIZE = 256

RECIPES = ("tf-signal", "audio-ops")
SAMPLE_RATES = (16000, 8000)
NORMALIZATIONS = ("max", "int16")

# Constants of the reference recipes.
_TF_SIGNAL_LOG_OFFSET = 1e-6  # log(mel + 1e-6) in the MLPerf Tiny recipe


# ---------------------------------------------------------------------------------------
# The front-end description
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------


def extract(
    waveforms: np.ndarray,
    frontend: str | FrontEnd = "mlperf-tiny",
    *,
    background: np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """MFCC features ``float32 [N, frames, coefficients]`` of ``N`` one-second clips.

    ``waveforms`` is ``int16 [N, L]`` PCM or float ``[N, L]`` in [-1, 1] (PCM / 32768),
    ``L <= 16000``; shorter clips are zero-padded at the end. ``background`` (float
    ``[N, 16000]`` in the same units, already scaled by the augmentation volume) is mixed
    in where the recipe mixes it:

    * ``tf-signal`` (MLPerf Tiny): after the clip is divided by its maximum, followed by
      ``clip_by_value(-1, 1)``. As in the reference, the clip to [-1, 1] happens only on
      the augmented (training) path, i.e. only when ``background`` is given; zero rows
      add no noise but are still clipped, like the reference's volume-0 draws.
    * ``audio-ops`` (Arm): added to PCM / 32768, then clipped to [-1, 1] (always, as in
      the reference, where evaluation simply mixes in zero noise).

    Deviation from MLPerf Tiny, only where its recipe is undefined: it divides by
    ``max(samples)``, which gives inf/NaN for an all-zero clip (a generated silence) and
    flips or blows up a clip whose samples are all <= 0. Such clips are divided by their
    maximum absolute sample instead, and an all-zero clip by 1. Clips with a positive
    maximum, i.e. every ordinary recording, are computed exactly as the reference does.

    With ``sample_rate=8000`` the 16 kHz input (and background) is first resampled with
    ``scipy.signal.resample_poly(x, 1, 2)``.

    Work is done ``batch_size`` clips at a time in one traced TensorFlow graph per
    front-end and batch size (the last batch is zero-padded, then trimmed).
    """
    fe = get_frontend(frontend)
    _check_positive_int("batch_size", batch_size)
    audio = _checked_clips(waveforms, "waveforms")
    noise = None if background is None else _checked_clips(background, "background")
    if noise is not None and noise.shape[0] != audio.shape[0]:
        raise ValueError(
            f"background has {noise.shape[0]} clips but waveforms has {audio.shape[0]}"
        )
    out = np.empty((audio.shape[0], *fe.output_shape), np.float32)
    for start in range(0, audio.shape[0], batch_size):
        stop = min(start + batch_size, audio.shape[0])
        out[start:stop] = _extract_batch(fe, audio, noise, start, stop, batch_size)
    if not np.isfinite(out).all():
        # The inputs were checked finite and the normalisation is guarded, so this is a
        # bug, not bad data: refuse to hand NaN/inf to training or to the cache.
        raise FloatingPointError(f"front-end {fe.name!r} produced non-finite features")
    return out


def _checked_clips(clips: np.ndarray, what: str) -> np.ndarray:
    """Validate ``[N, L]`` clips; int16 stays int16 (converted per batch to save memory)."""
    clips = np.asarray(clips)
    if clips.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [clips, samples], got shape {clips.shape}")
    if clips.shape[1] > CLIP_SAMPLES:
        raise ValueError(
            f"{what}: clips are {clips.shape[1]} samples long; at most {CLIP_SAMPLES} "
            f"(one second at {INPUT_SAMPLE_RATE} Hz) is supported"
        )
    if clips.dtype == np.int16:
        return clips
    if not np.issubdtype(clips.dtype, np.floating):
        raise ValueError(f"{what}: dtype {clips.dtype} is neither int16 PCM nor float")
    if not np.isfinite(clips).all():
        raise ValueError(f"{what}: contains NaN or inf samples")
    return clips


def _batch_input(
    fe: FrontEnd, clips: np.ndarray, start: int, stop: int, batch_size: int
) -> np.ndarray:
    """Rows ``start:stop`` as float32 ``[batch_size, fe.num_samples]``, zero-padded."""
    batch = np.zeros((batch_size, CLIP_SAMPLES), np.float32)
    rows = clips[start:stop]
    if rows.dtype == np.int16:
        # Division by 2**15 is exact in float32, so max-normalisation is unaffected.
        batch[: stop - start, : rows.shape[1]] = rows.astype(np.float32) / INT16_SCALE
    else:
        batch[: stop - start, : rows.shape[1]] = rows
    if fe.sample_rate != INPUT_SAMPLE_RATE:
        from scipy.signal import resample_poly

        factor = INPUT_SAMPLE_RATE // fe.sample_rate
        batch = resample_poly(batch, 1, factor, axis=-1).astype(np.float32)
    return batch


def _extract_batch(
    fe: FrontEnd,
    audio: np.ndarray,
    noise: np.ndarray | None,
    start: int,
    stop: int,
    batch_size: int,
) -> np.ndarray:
    graph = _graph_for(fe, batch_size, with_background=noise is not None)
    inputs = [_batch_input(fe, audio, start, stop, batch_size)]
    if noise is not None:
        inputs.append(_batch_input(fe, noise, start, stop, batch_size))
    return graph(*inputs).numpy()[: stop - start]


# One traced graph per (front-end, batch size, with/without background): tracing costs
# about a second, so it must happen once, not per call of extract().
_GRAPHS: dict[tuple[FrontEnd, int, bool], Callable] = {}
_GRAPHS_LOCK = threading.Lock()


def _graph_for(fe: FrontEnd, batch_size: int, *, with_background: bool) -> Callable:
    key = (fe, batch_size, with_background)
    with _GRAPHS_LOCK:
        if key not in _GRAPHS:
            _GRAPHS[key] = _trace(fe, batch_size, with_background)
        return _GRAPHS[key]


def _trace(fe: FrontEnd, batch_size: int, with_background: bool) -> Callable:
    from kws.compat import tf

    spec = tf.TensorSpec([batch_size, fe.num_samples], tf.float32)
    recipe = _tf_signal_mfcc if fe.recipe == "tf-signal" else _audio_ops_mfcc

    if with_background:

        def features(audio, noise):
            mixed = _mix(_normalize(fe, audio), noise)
            return recipe(fe, mixed)

        signature = [spec, spec]
    else:

        def features(audio):
            audio = _normalize(fe, audio)
            if fe.recipe == "audio-ops":
                audio = tf.clip_by_value(audio, -1.0, 1.0)
            return recipe(fe, audio)

        signature = [spec]
    return tf.function(features, input_signature=signature).get_concrete_function()


def _normalize(fe: FrontEnd, audio):
    """Scale each clip as its recipe does (see :func:`extract` for the guard)."""
    if fe.normalize == "int16":
        return audio
    from kws.compat import tf

    peak = tf.reduce_max(audio, axis=-1, keepdims=True)
    peak_abs = tf.reduce_max(tf.abs(audio), axis=-1, keepdims=True)
    scale = tf.where(peak > 0, peak, tf.where(peak_abs > 0, peak_abs, tf.ones_like(peak)))
    return audio / scale


def _mix(audio, noise):
    """Background noise enters after normalisation, then the mix is clipped to [-1, 1].

    (MLPerf Tiny's constant time shift -- pad 2 each side, slice from 2 -- is the
    identity and is therefore not performed.)
    """
    from kws.compat import tf

    return tf.clip_by_value(audio + noise, -1.0, 1.0)


def _tf_signal_mfcc(fe: FrontEnd, audio):
    from kws.compat import tf

    stfts = tf.signal.stft(
        audio,
        frame_length=fe.frame_length,
        frame_step=fe.frame_step,
        fft_length=None,
        window_fn=tf.signal.hann_window,
    )
    spectrograms = tf.abs(stfts)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=fe.num_mel_bins,
        num_spectrogram_bins=stfts.shape[-1],
        sample_rate=fe.sample_rate,
        lower_edge_hertz=fe.lower_edge_hz,
        upper_edge_hertz=fe.upper_edge_hz,
    )
    mel = tf.tensordot(spectrograms, mel_matrix, 1)
    log_mel = tf.math.log(mel + _TF_SIGNAL_LOG_OFFSET)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : fe.num_coefficients]


def _audio_ops_mfcc(fe: FrontEnd, audio):
    from kws.compat import tf

    # The ops take [samples, channels]; the batch rides on the channel axis, which the
    # ops process independently, giving [batch, frames, bins] and [batch, frames, coeffs].
    # Each op runs its channels on one thread, so the batch is split into one chain of
    # ops per core, which the graph executor runs concurrently.
    chunks = tf.split(audio, _split_sizes(audio.shape[0], _cpu_count()), axis=0)
    return tf.concat([_audio_ops_chain(fe, tf.transpose(chunk)) for chunk in chunks], 0)


def _audio_ops_chain(fe: FrontEnd, samples_by_channel):
    from kws.compat import tf

    spectrogram = tf.raw_ops.AudioSpectrogram(
        input=samples_by_channel,
        window_size=fe.frame_length,
        stride=fe.frame_step,
        magnitude_squared=True,
    )
    return tf.raw_ops.Mfcc(
        spectrogram=spectrogram,
        sample_rate=fe.sample_rate,
        upper_frequency_limit=fe.upper_edge_hz,
        lower_frequency_limit=fe.lower_edge_hz,
        filterbank_channel_count=fe.num_mel_bins,
        dct_coefficient_count=fe.num_coefficients,
    )


def _cpu_count() -> int:
    # sched_getaffinity honours taskset / container CPU limits; cpu_count does not.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _split_sizes(total: int, parts: int) -> list[int]:
    """``total`` split into at most ``parts`` near-equal positive sizes."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


# ---------------------------------------------------------------------------------------
# The on-disk cache
# ---------------------------------------------------------------------------------------


def _tensorflow_version() -> str:
    # Read from the installed distribution so that computing a cache key does not
    # import TensorFlow (seconds) on a cache hit.
    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    from kws.compat import tf

    return tf.__version__


def _checksum(array: np.ndarray) -> str:
    digest = hashlib.sha256()
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


class FeatureCache:
    """Features on disk, keyed by the clips, the front-end and the software version.

    Entries are ``<root>/<key>.npz`` holding the features, their SHA-256 and the key.
    They are written atomically (temporary file + rename) and verified on every load,
    so an entry that is truncated, corrupt or belongs to another key is recomputed,
    never returned. A per-key file lock makes concurrent processes compute once.

    ``hits``, ``misses`` and ``rebuilds`` (corrupt entries replaced) count what this
    instance has done.
    """

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else _fs.cache_root() / "features"
        self.hits = 0
        self.misses = 0
        self.rebuilds = 0

    def key(self, fingerprint: str, frontend: FrontEnd, extra: dict | None = None) -> str:
        """Hex SHA-256 of everything that determines the features."""
        fe = get_frontend(frontend)
        material = {
            "fingerprint": fingerprint,
            "frontend": fe.feature_params(),
            "extra": extra,
            "format": FEATURE_FORMAT_VERSION,
            "tensorflow": _tensorflow_version(),
        }
        text = json.dumps(material, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def path_for(self, fingerprint: str, frontend: FrontEnd, extra: dict | None = None) -> Path:
        return self.root / f"{self.key(fingerprint, frontend, extra)}.npz"

    def get_or_compute(
        self,
        fingerprint: str,
        frontend: FrontEnd,
        compute: Callable[[], np.ndarray],
        *,
        extra: dict | None = None,
        return_hit: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, bool]:
        """The cached features, or ``compute()``'s result, stored before returning.

        With ``return_hit=True`` returns ``(features, hit)``.
        """
        key = self.key(fingerprint, frontend, extra)
        path = self.root / f"{key}.npz"
        # Entries are only ever renamed into place whole, so reading without the lock
        # is safe; the lock is only needed to avoid computing the same entry twice.
        features = self._load(path, key)
        if features is None:
            self.root.mkdir(parents=True, exist_ok=True)
            from filelock import FileLock

            with FileLock(str(self.root / f"{key}.lock")):
                features = self._load(path, key)  # another process may have finished it
                if features is None:
                    features = self._compute_and_store(path, key, compute)
                    self.misses += 1
                    return (features, False) if return_hit else features
        self.hits += 1
        return (features, True) if return_hit else features

    def _compute_and_store(
        self, path: Path, key: str, compute: Callable[[], np.ndarray]
    ) -> np.ndarray:
        if path.exists():
            # Present but failed verification: it must not survive a crash in compute().
            self.rebuilds += 1
            log.warning("feature cache entry %s is corrupt; recomputing it", path)
            path.unlink()
        features = np.ascontiguousarray(compute())
        _fs.atomic_save_npz(
            path, features=features, checksum=np.array(_checksum(features)), key=np.array(key)
        )
        return features

    def _load(self, path: Path, key: str) -> np.ndarray | None:
        """The verified features at ``path``, or None if absent or not trustworthy."""
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                features = archive["features"]
                checksum = str(archive["checksum"])
                stored_key = str(archive["key"])
        except FileNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - any failure to read means "not cached"
            # A damaged zip raises a zoo of exception types (BadZipFile, EOFError,
            # ValueError, OSError, KeyError, ...); all of them mean "rebuild".
            log.warning("cannot read feature cache entry %s: %s", path, exc)
            return None
        if stored_key != key or checksum != _checksum(features):
            log.warning("feature cache entry %s fails verification", path)
            return None
        return features


__all__ = [
    "CLIP_SAMPLES",
    "DEFAULT_BATCH_SIZE",
    "FEATURE_FORMAT_VERSION",
    "FeatureCache",
    "FrontEnd",
    "PRESETS",
    "extract",
    "get_frontend",
]

