"""One clip's audio: eSpeak NG speech resampled to 16 kHz, trimmed, levelled, placed in
1 s and mixed with background noise, then written as 16-bit WAV."""

from __future__ import annotations

import functools
import io
import math
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kws.data.wav import CLIP_SAMPLES, SAMPLE_RATE
from kws.errors import KwsError
from kws.synth.plan import _STREAM_CLIP, ClipSpec, Speaker, SynthConfig, _key


@dataclass(frozen=True)
class ClipResult:
    relpath: str
    speech_s: float
    rate: int
    respoken: bool  # said again faster because it was longer than max_speech_s
    cropped: bool
    noisy: bool


@functools.lru_cache(maxsize=4)
def _resampling_filter(up: int, down: int) -> np.ndarray:
    """The low-pass filter ``resample_poly`` designs by default, designed once, not per call."""
    import scipy.signal

    m = max(up, down)
    return scipy.signal.firwin(2 * 10 * m + 1, 1.0 / m, window=("kaiser", 5.0))


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling to 16 kHz (22,050 Hz -> 16 kHz is up 320, down 441)."""
    import scipy.signal

    if rate == SAMPLE_RATE:
        return x
    g = math.gcd(rate, SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, rate // g
    return scipy.signal.resample_poly(x, up, down, window=_resampling_filter(up, down))


def _trim(x: np.ndarray, floor_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """``x`` without leading and trailing 10 ms frames quieter than ``floor_db`` below the
    loudest frame (one quiet frame is kept on each side for the onset and release)."""
    n = len(x) // frame
    if n == 0:
        return x[:0]
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    if rms.max() <= 0 or active.size == 0:
        return x[:0]
    start = max(active[0] - 1, 0) * frame
    end = min((active[-1] + 2) * frame, len(x))
    return x[start:end]


def _speak(text: str, speaker: Speaker, *, rate: int, pitch: int, seed: int, max_samples: int):
    """The utterance at 16 kHz, trimmed, at most ``max_samples`` long: (samples, rate used,
    respoken, cropped). Too long an utterance is spoken again faster; cropping is the last
    resort."""
    from kws import _espeak

    for attempt in range(3):
        raw, rate_in = _espeak.render(
            text, speaker.espeak_voice, rate=rate, pitch=pitch,
            pitch_range=speaker.pitch_range, seed=seed,
        )
        x = _trim(_resample(raw.astype(np.float64) / 32768.0, rate_in))
        if x.size == 0:
            raise KwsError(f"eSpeak NG produced silence for {text!r} with {speaker.espeak_voice}")
        if len(x) <= max_samples:
            return x, rate, attempt > 0, False
        rate = min(int(math.ceil(rate * len(x) / max_samples * 1.05)), 450)
    fade = np.linspace(1.0, 0.0, SAMPLE_RATE // 50)  # 20 ms fade-out hides the cut
    x = x[:max_samples].copy()
    x[-len(fade):] *= fade
    return x, rate, True, True


def _mix_noise(clip: np.ndarray, speech: slice, noise: np.ndarray, snr_db: float, offset: int):
    """Add a 1 s stretch of ``noise`` so that speech power / noise power = ``snr_db``."""
    segment = noise[offset : offset + len(clip)]
    noise_power = float(np.mean(segment**2))
    speech_power = float(np.mean(clip[speech] ** 2))
    if noise_power <= 0 or speech_power <= 0:
        return clip
    return clip + segment * math.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


def _wav_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """Plain write: the whole dataset folder is published atomically at the end."""
    path.write_bytes(_wav_bytes(samples))


def render_clip(spec: ClipSpec, config: SynthConfig, seed: int, noises: Sequence[np.ndarray]):
    """One 1 s clip as float64 in [-1, 1], plus what was done to it."""
    rng = np.random.default_rng(
        [seed, _STREAM_CLIP, _key(spec.word), spec.speaker.index, spec.n]
    )
    speaker = spec.speaker
    rate = int(round(speaker.rate * rng.uniform(1 - config.rate_jitter, 1 + config.rate_jitter)))
    jitter = int(rng.integers(-config.pitch_jitter, config.pitch_jitter + 1))
    pitch = int(np.clip(speaker.pitch + jitter, 0, 100))
    weights = np.asarray(config.ending_weights) / sum(config.ending_weights)
    text = spec.word + str(rng.choice(config.endings, p=weights))
    max_samples = int(config.max_speech_s * SAMPLE_RATE)
    speech, rate, respoken, cropped = _speak(
        text, speaker, rate=rate, pitch=pitch, seed=int(rng.integers(2**31)),
        max_samples=max_samples,
    )
    peak = 10 ** (rng.uniform(*config.peak_dbfs) / 20)
    speech = speech * (peak / np.max(np.abs(speech)))
    onset = int(rng.integers(0, CLIP_SAMPLES - len(speech) + 1))
    clip = np.zeros(CLIP_SAMPLES)
    clip[onset : onset + len(speech)] = speech
    noisy = bool(noises) and rng.random() >= config.clean_share
    if noisy:
        noise = noises[int(rng.integers(len(noises)))]
        clip = _mix_noise(
            clip, slice(onset, onset + len(speech)), noise,
            snr_db=rng.uniform(*config.snr_db),
            offset=int(rng.integers(0, len(noise) - CLIP_SAMPLES + 1)),
        )
    result = ClipResult(spec.relpath, len(speech) / SAMPLE_RATE, rate, respoken, cropped, noisy)
    return clip, result


def _render_batch(
    specs: Sequence[ClipSpec], out: Path, config: SynthConfig, seed: int,
    noises: Sequence[np.ndarray],
) -> list[ClipResult]:
    results = []
    for spec in specs:
        clip, result = render_clip(spec, config, seed, noises)
        _write_wav(out / spec.relpath, _to_int16(clip))
        results.append(result)
    return results


