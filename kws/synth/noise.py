"""The background-noise recordings: synthesised (white, pink, brown, mains hum, running
water, babble) or copied from a folder of real recordings."""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

import numpy as np

from kws.data.dataset import BACKGROUND_DIR
from kws.data.wav import CLIP_SAMPLES, SAMPLE_RATE
from kws.errors import BadAudioError, DatasetError
from kws.synth.audio import _resample, _to_int16, _write_wav
from kws.synth.defaults import _BABBLE_WORDS
from kws.synth.plan import _STREAM_NOISE, SynthConfig, _key

NOISE_DIR_NAME = BACKGROUND_DIR


def _spectral_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown),
    nothing below 20 Hz so that brown noise does not drift."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    gain = np.zeros_like(f)
    audible = f >= 20
    gain[audible] = f[audible] ** (-exponent / 2)
    return np.fft.irfft(spectrum * gain, n)


def _smooth_envelope(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """A slowly varying positive envelope (low-passed noise), mean about 1."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / SAMPLE_RATE) > cutoff_hz] = 0
    env = np.abs(np.fft.irfft(spectrum, n))
    return env / (env.mean() + 1e-12)


def _mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    fundamental = 50.0
    hum = sum(
        np.sin(2 * np.pi * fundamental * k * t + rng.uniform(0, 2 * np.pi)) / k**1.2
        for k in range(1, 10)
    )
    wobble = 1 + 0.1 * np.sin(2 * np.pi * 0.3 * t)
    hiss = 0.03 * rng.standard_normal(n)
    return hum * wobble + hiss


def _running_water(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(f < 300) | (f > 5000)] = 0
    return np.fft.irfft(spectrum, n) * (0.3 + _smooth_envelope(rng, n, 12.0))


def _babble(rng: np.random.Generator, n: int, config: SynthConfig, streams: int = 6) -> np.ndarray:
    """Several synthetic voices talking over each other."""
    from kws import _espeak

    total = np.zeros(n)
    variants = config.male_variants + config.female_variants
    for _ in range(streams):
        voice = f"{rng.choice(config.voices)}+{rng.choice(variants)}"
        stream, filled = np.zeros(n), int(rng.integers(0, SAMPLE_RATE))
        while filled < n:
            words = rng.choice(_BABBLE_WORDS, size=int(rng.integers(4, 10)))
            raw, rate_in = _espeak.render(
                " ".join(words) + ".", voice, rate=int(rng.integers(140, 220)),
                pitch=int(rng.integers(20, 80)), pitch_range=int(rng.integers(30, 90)),
                seed=int(rng.integers(2**31)),
            )
            x = _resample(raw.astype(np.float64) / 32768.0, rate_in)[: n - filled]
            stream[filled : filled + len(x)] = x
            filled += len(x) + int(rng.integers(SAMPLE_RATE // 20, SAMPLE_RATE // 2))
        rms = np.sqrt(np.mean(stream**2))
        total += stream / (rms + 1e-12) * rng.uniform(0.5, 1.0)
    return total


def _synthetic_noises(config: SynthConfig, seed: int) -> dict[str, np.ndarray]:
    """Name -> noise at 16 kHz, each at -20 dBFS RMS."""
    n = int(config.noise_seconds * SAMPLE_RATE)
    makers = {
        "white_noise.wav": lambda rng: _spectral_noise(rng, n, 0.0),
        "pink_noise.wav": lambda rng: _spectral_noise(rng, n, 1.0),
        "brown_noise.wav": lambda rng: _spectral_noise(rng, n, 2.0),
        "mains_hum.wav": lambda rng: _mains_hum(rng, n),
        "running_water.wav": lambda rng: _running_water(rng, n),
        "babble.wav": lambda rng: _babble(rng, n, config),
    }
    noises = {}
    for name, make in makers.items():
        x = make(np.random.default_rng([seed, _STREAM_NOISE, _key(name)]))
        x = x * (10 ** (-20 / 20) / (np.sqrt(np.mean(x**2)) + 1e-12))
        noises[name] = np.clip(x, -0.99, 0.99)
    return noises


def _noise_files(noise_dir: Path) -> list[Path]:
    """The WAVs of ``noise_dir/_background_noise_`` or, if there is none, of ``noise_dir``."""
    if not noise_dir.is_dir():
        raise DatasetError(f"noise_dir {noise_dir} is not a folder")
    folder = noise_dir / NOISE_DIR_NAME if (noise_dir / NOISE_DIR_NAME).is_dir() else noise_dir
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not files:
        raise DatasetError(f"noise_dir {noise_dir} holds no .wav files (looked in {folder})")
    return files


def _is_16k_mono_pcm16(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
    except (wave.Error, EOFError, OSError):
        return False


def _write_noises(
    folder: Path, config: SynthConfig, seed: int, noise_dir: Path | None
) -> list[dict]:
    """Fill ``folder`` with the background recordings; returns their manifest entries."""
    from kws.data.wav import read_wav

    folder.mkdir()
    entries = []
    if noise_dir is None:
        for name, x in _synthetic_noises(config, seed).items():
            samples = _to_int16(x)
            _write_wav(folder / name, samples)
            seconds = len(samples) / SAMPLE_RATE
            entries.append({"file": name, "seconds": seconds, "source": "synthetic"})
        return entries
    for path in _noise_files(noise_dir):
        name = path.stem + ".wav"
        if _is_16k_mono_pcm16(path):
            shutil.copyfile(path, folder / name)  # an exact copy of the recording
            with wave.open(str(folder / name), "rb") as w:
                samples, rate, channels = w.getnframes(), SAMPLE_RATE, 1
        else:
            data, info = read_wav(path, sample_rate=SAMPLE_RATE, length=None)
            _write_wav(folder / name, data)
            samples, rate, channels = len(data), info.sample_rate, info.channels
        if samples < CLIP_SAMPLES:
            raise BadAudioError(path, "background noise must be at least 1 s long")
        entries.append({
            "file": name, "seconds": samples / SAMPLE_RATE, "source": str(path),
            "original_sample_rate": rate, "original_channels": channels,
        })
    return entries


def _load_noises(folder: Path) -> list[np.ndarray]:
    """The background recordings as float64 in [-1, 1], in file-name order."""
    noises = []
    for path in sorted(folder.glob("*.wav")):
        with wave.open(str(path), "rb") as w:
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        noises.append(data.astype(np.float64) / 32768.0)
    return noises

