"""Training-time augmentation of the reference recipes (TensorFlow speech_commands
``input_data.py``, used by the Arm ML-zoo): a random time shift of the foreground and
background noise mixed in at a random volume.

It returns the shifted foreground and the scaled background separately, because the
recipes add the background at different points of their front-ends (``mlperf-tiny``
after peak normalisation, ``arm`` before clipping to [-1, 1]); the front-end adds it.
Augmentation is for training only: evaluation splits are never augmented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kws.data.wav import CLIP_SAMPLES, SAMPLE_RATE

#: Part of every augmented-feature cache key: bumped whenever :func:`augment` makes
#: different audio from the same inputs (2: silence noise as foreground).
AUGMENT_VERSION = 2


@dataclass(frozen=True)
class Augmentation:
    """The Arm recipe's defaults: noise volume up to 0.1 on 80% of clips, shift +-100 ms."""

    background_volume: float = 0.1
    background_frequency: float = 0.8
    time_shift_ms: float = 100.0

    def __post_init__(self):
        if not 0 <= self.background_volume <= 1:
            raise ValueError(f"background_volume must be in [0, 1], got {self.background_volume}")
        if not 0 <= self.background_frequency <= 1:
            raise ValueError(
                f"background_frequency must be in [0, 1], got {self.background_frequency}"
            )
        if not 0 <= self.time_shift_ms < 1000 * CLIP_SAMPLES / SAMPLE_RATE:
            raise ValueError(f"time_shift_ms must be in [0, 1000), got {self.time_shift_ms}")

    @property
    def time_shift_samples(self) -> int:
        return int(self.time_shift_ms * SAMPLE_RATE / 1000)


def time_shift(waveforms: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Shift each row right by ``shifts[i]`` samples (left when negative), zero-filled."""
    out = np.zeros_like(waveforms)
    n = waveforms.shape[1]
    # Row slices are plain copies: much faster than one fancy-indexed gather over N x 16000.
    for row, (src, k) in enumerate(zip(waveforms, shifts)):
        k = int(np.clip(k, -n, n))
        if k >= 0:
            out[row, k:] = src[: n - k]
        else:
            out[row, :k] = src[-k:]
    return out


def augment(
    waveforms: np.ndarray,
    is_silence: np.ndarray,
    noise: list[np.ndarray],
    aug: Augmentation,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Augment one batch of training clips.

    ``waveforms``: int16 ``[N, 16000]``; ``is_silence``: bool ``[N]``; ``noise``: float32
    recordings in [-1, 1]. Returns the shifted foreground and the background, both float32
    ``[N, 16000]`` in [-1, 1] units.

    Silence always gets noise, at a volume in [0, 1], and gets it as its *foreground*:
    evaluation silence is noise in the waveform itself, so training silence must reach the
    front-end the same way. (``mlperf-tiny`` peak-normalises the foreground before it adds
    the background: noise passed as background stayed at its quiet volume in training
    while evaluation silence was normalised to full scale, and the model rejected white,
    pink and mains-hum silence almost always.)
    """
    n, length = waveforms.shape
    foreground = waveforms.astype(np.float32) / 32768.0
    limit = aug.time_shift_samples
    shifts = rng.integers(-limit, limit + 1, size=n) if limit else np.zeros(n, int)
    foreground = time_shift(foreground, shifts)
    background = np.zeros((n, length), np.float32)
    if not noise:
        return foreground, background
    which = rng.integers(len(noise), size=n)
    starts = rng.random(n)
    mixed = rng.random(n) < aug.background_frequency
    volumes = np.where(is_silence, rng.uniform(0, 1, n), rng.uniform(0, aug.background_volume, n))
    volumes = np.where(is_silence | mixed, volumes, 0.0).astype(np.float32)
    for i in np.flatnonzero(volumes):
        rec = noise[which[i]]
        start = int(starts[i] * (len(rec) - length + 1))
        target = foreground if is_silence[i] else background
        target[i] = target[i] + rec[start : start + length] * volumes[i]
    return foreground, background
