"""WAV reading for Speech Commands clips: any PCM width, float, stereo, any rate.

Every clip comes back as 16 kHz mono int16 of a fixed length. A file that cannot be
decoded completely raises :class:`~kws.errors.BadAudioError` naming it; a failed read
is never replaced by a silent clip.
"""

from __future__ import annotations

import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io.wavfile
import scipy.signal

from kws.errors import BadAudioError

SAMPLE_RATE = 16_000
CLIP_SAMPLES = 16_000


@dataclass(frozen=True)
class WavInfo:
    """What the file held before conversion."""

    sample_rate: int
    channels: int
    dtype: str
    samples: int

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


def _decode(path: Path) -> tuple[int, np.ndarray]:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", scipy.io.wavfile.WavFileWarning)
            rate, data = scipy.io.wavfile.read(path)
    except FileNotFoundError:
        raise BadAudioError(path, "file not found") from None
    except (ValueError, EOFError, struct.error, OSError) as exc:
        raise BadAudioError(path, f"not a readable WAV file ({exc})") from None
    # scipy only warns when the data chunk ends early: that is a truncated file. Other
    # warnings (an unknown extra chunk, as in some real recordings) are harmless.
    for w in caught:
        if "prematurely" in str(w.message):
            raise BadAudioError(path, f"truncated WAV ({w.message})")
    return rate, data


def _to_float_mono(path: Path, data: np.ndarray) -> np.ndarray:
    """Samples as float64 in [-1, 1], channels averaged."""
    kind, size = data.dtype.kind, data.dtype.itemsize
    if kind == "f":
        x = data.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise BadAudioError(path, "float samples contain NaN or infinity")
        x = np.clip(x, -1.0, 1.0)
    elif kind == "u" and size == 1:  # 8-bit WAV is unsigned, centred on 128
        x = (data.astype(np.float64) - 128.0) / 128.0
    elif kind == "i":  # scipy left-aligns 24-bit samples in int32
        x = data.astype(np.float64) / float(2 ** (8 * size - 1))
    else:
        raise BadAudioError(path, f"unsupported sample type {data.dtype}")
    return x.mean(axis=1) if x.ndim == 2 else x


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    g = math.gcd(rate, target)
    return scipy.signal.resample_poly(x, target // g, rate // g)


def read_wav(
    path: Path | str, *, sample_rate: int = SAMPLE_RATE, length: int | None = CLIP_SAMPLES
) -> tuple[np.ndarray, WavInfo]:
    """Read ``path`` as mono int16 at ``sample_rate``, zero-padded or cropped to ``length``
    samples (``None`` keeps the natural length). Returns the samples and what the file held.

    Raises :class:`BadAudioError` for a missing, corrupt, truncated or non-audio file, for
    one with no samples, and for one whose samples are all zero.
    """
    path = Path(path)
    rate, data = _decode(path)
    channels = 1 if data.ndim == 1 else data.shape[1]
    info = WavInfo(sample_rate=rate, channels=channels, dtype=str(data.dtype), samples=len(data))
    if rate <= 0:
        raise BadAudioError(path, f"invalid sample rate {rate} Hz in the header")
    if len(data) == 0 or channels == 0:
        raise BadAudioError(path, "the file holds no samples")
    x = _to_float_mono(path, data)
    if not np.any(x):
        raise BadAudioError(path, "every sample is zero (no signal)")
    if rate != sample_rate:
        x = _resample(x, rate, sample_rate)
    out = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    if length is not None:
        out = out[:length] if len(out) >= length else np.pad(out, (0, length - len(out)))
    return out, info
