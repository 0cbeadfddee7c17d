"""WAV reading for Speech Commands clips: any PCM width, float, stereo, any rate.

Every clip comes back as 16 kHz mono int16 of a fixed length. A file that cannot be
decoded completely raises :class:`~kws.errors.BadAudioError` naming it; a failed read
is never replaced by a silent clip.

The Speech Commands convention is a clip of at most one second, the word inside it. The
reader keeps the loaded samples exactly as they always were (cropped to the first
second, zero-padded, float samples clipped to [-1, 1]) and records in
:attr:`WavInfo.problems` what that conversion hid, for ``kws data info`` to report:

- ``long``: more than one second, so everything after the first second is dropped (a
  word spoken late is lost);
- ``short``: under half a second, so most of the clip is padding;
- ``over-range``: float samples far outside [-1, 1], so clipping changed the waveform;
- ``near-silent``: the clip actually used peaks below -60 dBFS.

A clip whose used part is all zero is no example at all: that raises
:class:`BadAudioError` like any other unusable file, whether the whole file is silent
or only its first second is.
"""

from __future__ import annotations

import dataclasses
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

#: A clip shorter than this fraction of the clip length is reported as short.
SHORT_FRACTION = 0.5
#: Float samples beyond this magnitude are reported: overshoot of a few percent is common
#: rounding in float files, but a peak of 1.5 (+3.5 dB) is a gain error that clipping hides.
FLOAT_PEAK_LIMIT = 1.5
#: A used clip whose peak stays at or below this (about -60 dBFS) is reported as near-silent.
NEAR_SILENT_PEAK = 32

LONG, SHORT, OVER_RANGE, NEAR_SILENT = "long", "short", "over-range", "near-silent"
#: Each problem in words, for reports (the clip length is the default, one second).
PROBLEMS = {
    LONG: f"longer than {CLIP_SAMPLES / SAMPLE_RATE:g} s (only the first second is used)",
    SHORT: f"shorter than {SHORT_FRACTION * CLIP_SAMPLES / SAMPLE_RATE:g} s (padded with silence)",
    OVER_RANGE: f"float samples beyond +/-{FLOAT_PEAK_LIMIT:g} (clipped to [-1, 1])",
    NEAR_SILENT: "near-silent where used (peak below -60 dBFS)",
}


@dataclass(frozen=True)
class WavInfo:
    """What the file held before conversion."""

    sample_rate: int
    channels: int
    dtype: str
    samples: int
    #: Largest sample magnitude in the file, full scale 1.0 (before any clipping).
    peak: float = 0.0
    #: What conversion hid: keys of :data:`PROBLEMS`.
    problems: tuple[str, ...] = ()

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


def _to_float_mono(path: Path, data: np.ndarray) -> tuple[np.ndarray, float]:
    """Samples as float64 in [-1, 1], channels averaged, and the peak before clipping."""
    kind, size = data.dtype.kind, data.dtype.itemsize
    peak = None
    if kind == "f":
        x = data.astype(np.float64)
        if not np.all(np.isfinite(x)):
            raise BadAudioError(path, "float samples contain NaN or infinity")
        peak = float(np.max(np.abs(x)))
        x = np.clip(x, -1.0, 1.0)
    elif kind == "u" and size == 1:  # 8-bit WAV is unsigned, centred on 128
        x = (data.astype(np.float64) - 128.0) / 128.0
    elif kind == "i":  # scipy left-aligns 24-bit samples in int32
        x = data.astype(np.float64) / float(2 ** (8 * size - 1))
    else:
        raise BadAudioError(path, f"unsupported sample type {data.dtype}")
    if peak is None:
        peak = float(np.max(np.abs(x)))
    return (x.mean(axis=1) if x.ndim == 2 else x), peak


def _resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    g = math.gcd(rate, target)
    return scipy.signal.resample_poly(x, target // g, rate // g)


def read_wav(
    path: Path | str, *, sample_rate: int = SAMPLE_RATE, length: int | None = CLIP_SAMPLES
) -> tuple[np.ndarray, WavInfo]:
    """Read ``path`` as mono int16 at ``sample_rate``, zero-padded or cropped to ``length``
    samples (``None`` keeps the natural length). Returns the samples and what the file held.

    Raises :class:`BadAudioError` for a missing, corrupt, truncated or non-audio file, for
    one with no samples, and for one whose used samples are all zero (a silent file, or a
    long one whose first ``length`` samples are silent). Other problems are recorded in
    the returned :attr:`WavInfo.problems`; the samples do not depend on them.
    """
    path = Path(path)
    rate, data = _decode(path)
    channels = 1 if data.ndim == 1 else data.shape[1]
    info = WavInfo(sample_rate=rate, channels=channels, dtype=str(data.dtype), samples=len(data))
    if rate <= 0:
        raise BadAudioError(path, f"invalid sample rate {rate} Hz in the header")
    if len(data) == 0 or channels == 0:
        raise BadAudioError(path, "the file holds no samples")
    x, peak = _to_float_mono(path, data)
    if not np.any(x):
        raise BadAudioError(path, "every sample is zero (no signal)")
    if rate != sample_rate:
        x = _resample(x, rate, sample_rate)
    out = np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)
    full = out
    if length is not None:
        out = out[:length] if len(out) >= length else np.pad(out, (0, length - len(out)))
    if not np.any(out):
        if len(full) > len(out) and np.any(full):
            first = np.flatnonzero(full)[0] / sample_rate
            raise BadAudioError(path, f"silent in the first {length / sample_rate:g} s that is used: "
                                      f"the file lasts {info.duration_s:.2f} s and its signal starts at "
                                      f"{first:.2f} s")
        raise BadAudioError(path, "every sample rounds to zero at 16 bits (no signal)")
    problems = []
    if length is not None and info.samples * sample_rate > length * rate:
        problems.append(LONG)
    if length is not None and info.samples * sample_rate < SHORT_FRACTION * length * rate:
        problems.append(SHORT)
    if data.dtype.kind == "f" and peak > FLOAT_PEAK_LIMIT:
        problems.append(OVER_RANGE)
    if int(np.max(np.abs(out.astype(np.int32)))) <= NEAR_SILENT_PEAK:
        problems.append(NEAR_SILENT)
    return out, dataclasses.replace(info, peak=peak, problems=tuple(problems))
