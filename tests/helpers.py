"""Small builders for test datasets: real WAV files written with scipy, in either layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io.wavfile

from kws.data import KEYWORDS


def tone(seed: int, n: int = 16_000, rate: int = 16_000) -> np.ndarray:
    """A short voiced-like burst (harmonics + noise) as int16: never all zero."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    f0 = rng.uniform(90, 250)
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    x = x * np.hanning(n) + 0.02 * rng.standard_normal(n)
    return np.round(x / np.abs(x).max() * rng.uniform(3000, 20000)).astype(np.int16)


def write_wav(path: Path, samples: np.ndarray, rate: int = 16_000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.wavfile.write(path, rate, samples)
    return path


def make_archive(root: Path, words=(*KEYWORDS, "bed", "cat"), speakers: int = 12,
                 reps: int = 1, noise: bool = True) -> Path:
    """A training-archive layout: ``word/<speaker>_nohash_<n>.wav`` and background noise."""
    seed = 0
    for w in words:
        for s in range(speakers):
            for r in range(reps):
                seed += 1
                write_wav(root / w / f"{s:08x}_nohash_{r}.wav", tone(seed))
    if noise:
        rng = np.random.default_rng(1)
        write_wav(root / "_background_noise_" / "white.wav",
                  (rng.standard_normal(16_000 * 3) * 3000).astype(np.int16))
    return root


def make_test_set(root: Path, per_label: int = 3) -> Path:
    """The canonical test-set layout: twelve label folders, real silence, named unknowns."""
    seed = 100
    for w in KEYWORDS:
        for s in range(per_label):
            seed += 1
            write_wav(root / w / f"{s:08x}_nohash_0.wav", tone(seed))
    for s in range(per_label):
        write_wav(root / "_unknown_" / f"bed_{s + 50:08x}_nohash_0.wav.wav", tone(seed + s + 1))
        noise = np.random.default_rng(s).standard_normal(16_000) * 100
        write_wav(root / "_silence_" / f"{s}.wav", noise.astype(np.int16))
    return root


#: A grid whose smoke tier trains for one epoch: what small real searches run on.
TINY_SEARCH_GRID = """
[tiers.smoke]
seeds = [0]
baseline_epochs = 1
finetune_epochs = 1
pathways = ["p"]
[tiers.smoke.axes]
sparsity = [0.5]
"""
