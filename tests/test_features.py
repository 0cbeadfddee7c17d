"""Tests for kws.features: the MFCC front-ends and the feature cache, which rides on the
storage core (kws.store) shared with the artifact cache.

The front-ends are checked against plain per-clip numpy/scipy implementations of the
two reference recipes written here from the semantics of the TensorFlow code they
use (``tf.signal`` for MLPerf Tiny, the ``AudioSpectrogram`` / ``Mfcc`` kernels for
Arm), computed in float64.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from scipy.signal import resample_poly

import kws.features.cache
from kws.cache import ArtifactCache
from kws.features import (
    FEATURE_FORMAT_VERSION,
    FEATURES_FILE,
    PRESETS,
    FeatureCache,
    FrontEnd,
    extract,
    feature_cache,
    get_frontend,
)
from kws.store import Store, cache_root

TOLERANCE = 1e-4
SR = 16000

# ---------------------------------------------------------------------------------------
# Test signals
# ---------------------------------------------------------------------------------------


def speech_like(rng: np.random.Generator, length: int = SR) -> np.ndarray:
    """A voiced 'word' (glottal harmonics shaped by three formants, gliding pitch), an
    optional fricative burst and a room-noise floor, as int16 PCM at a random level."""
    t = np.arange(length) / SR
    f0 = rng.uniform(90, 250) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(1, 4) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    formants = [(rng.uniform(300, 900), 90), (rng.uniform(1000, 2300), 120), (2800, 200)]
    voiced = np.zeros(length)
    for h in range(1, 60):
        freq = h * f0.mean()
        if freq > 7000:
            break
        gain = sum(np.exp(-0.5 * ((freq - fc) / bw) ** 2) for fc, bw in formants) + 0.02
        voiced += gain / h**0.5 * np.cos(h * phase + rng.uniform(0, 2 * np.pi))
    start, stop = sorted(rng.uniform(0.1, 0.9, size=2) * length)
    envelope = np.zeros(length)
    word = slice(int(start), max(int(stop), int(start) + 2000))
    envelope[word] = np.hanning(len(envelope[word]))
    signal = voiced * envelope
    if rng.random() < 0.6:  # an 's' or 'f': high-passed noise burst after the vowel
        burst = np.diff(rng.standard_normal(length + 1)) * 0.3
        begin = min(word.stop, length - 1600)
        signal[begin : begin + 1600] += burst[begin : begin + 1600] * np.hanning(1600)
    signal /= np.abs(signal).max()
    signal += rng.standard_normal(length) * 10 ** (-rng.uniform(35, 55) / 20)
    peak = rng.uniform(0.05, 0.9)
    return np.round(signal / np.abs(signal).max() * peak * 32767).astype(np.int16)


def chirp_clip(rng: np.random.Generator, length: int = SR) -> np.ndarray:
    """Two overlapping linear chirps plus white noise (int16)."""
    t = np.arange(length) / SR
    sweep = np.zeros(length)
    for _ in range(2):
        f_start, f_end = rng.uniform(100, 3500, size=2)
        sweep += np.sin(2 * np.pi * (f_start * t + (f_end - f_start) * t**2 / 2))
    sweep += rng.standard_normal(length) * 0.05
    return np.round(sweep / np.abs(sweep).max() * 20000).astype(np.int16)


def noise_clip(rng: np.random.Generator, length: int = SR) -> np.ndarray:
    """Plain Gaussian noise at a random realistic level (int16)."""
    level = 10 ** rng.uniform(1.5, 3.8)
    return np.clip(np.round(rng.standard_normal(length) * level), -32768, 32767).astype(np.int16)


def realistic_clips(seed: int = 0, n_speech: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    clips = [speech_like(rng) for _ in range(n_speech)]
    clips += [chirp_clip(rng), chirp_clip(rng), noise_clip(rng), noise_clip(rng)]
    return np.stack(clips)


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    return realistic_clips(seed=1234)


# ---------------------------------------------------------------------------------------
# Independent per-clip references (numpy / scipy, float64)
# ---------------------------------------------------------------------------------------


def hz_to_mel(freq):
    # HTK mel scale, as both tf.signal and the Mfcc kernel define it.
    return 1127.0 * np.log1p(np.asarray(freq, np.float64) / 700.0)


def frames_of(x: np.ndarray, frame_length: int, frame_step: int) -> np.ndarray:
    count = 1 + (len(x) - frame_length) // frame_step
    index = np.arange(frame_length)[None, :] + frame_step * np.arange(count)[:, None]
    return x[index]


def next_pow2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def tf_hann_window(length: int) -> np.ndarray:
    # tf.signal.hann_window(periodic=True): the denominator is N for even N but N - 1
    # for odd N (periodicity only applies to even lengths in TF's implementation).
    denominator = length if length % 2 == 0 else length - 1
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(length) / denominator)


def tf_mel_matrix(num_mel, num_bins, sample_rate, lower_hz, upper_hz) -> np.ndarray:
    """tf.signal.linear_to_mel_weight_matrix: triangles in mel over the bins' mel
    positions, DC bin excluded (its row is zero), edges evenly spaced in mel."""
    bins_mel = hz_to_mel(np.linspace(0.0, sample_rate / 2, num_bins)[1:])[:, None]
    edges = np.linspace(hz_to_mel(lower_hz), hz_to_mel(upper_hz), num_mel + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel - lower) / (center - lower)
    falling = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.vstack([np.zeros((1, num_mel)), weights])


def dct_matrix(num_coefficients: int, n: int) -> np.ndarray:
    """sqrt(2/N) cos(pi k (j + 1/2) / N): both the Mfcc kernel's DCT and
    tf.signal.dct(type=2) * rsqrt(2N) as used by mfccs_from_log_mel_spectrograms."""
    k = np.arange(num_coefficients)[:, None]
    j = np.arange(n)[None, :]
    return np.sqrt(2.0 / n) * np.cos(np.pi * k * (j + 0.5) / n)


def ref_tf_signal(samples: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """The MLPerf Tiny pipeline after normalisation, on one float64 clip."""
    fft_length = next_pow2(fe.frame_length)
    frames = frames_of(samples, fe.frame_length, fe.frame_step) * tf_hann_window(fe.frame_length)
    magnitude = np.abs(np.fft.rfft(frames, n=fft_length, axis=-1))
    mel = magnitude @ tf_mel_matrix(
        fe.num_mel_bins, magnitude.shape[-1], fe.sample_rate, fe.lower_edge_hz, fe.upper_edge_hz
    )
    return np.log(mel + 1e-6) @ dct_matrix(fe.num_coefficients, fe.num_mel_bins).T


def mfcc_kernel_filterbank(channels, input_length, sample_rate, lower_hz, upper_hz):
    """The Mfcc kernel's filterbank (mfcc_mel_filterbank.cc) as a dense matrix.

    ``channels + 1`` centre frequencies evenly spaced in mel above ``lower_hz``; bins
    from ``int(1.5 + lower/hz_per_bin)`` to ``int(upper/hz_per_bin)`` are used. Each
    bin gives weight ``w`` to the channel whose centre lies at or below it and
    ``1 - w`` to the next one, ``w`` falling linearly in mel between the two centres.
    """
    mel_low, mel_high = hz_to_mel(lower_hz), hz_to_mel(upper_hz)
    spacing = (mel_high - mel_low) / (channels + 1)
    centres = mel_low + spacing * np.arange(1, channels + 2)
    hz_per_bin = 0.5 * sample_rate / (input_length - 1)
    first, last = int(1.5 + lower_hz / hz_per_bin), int(upper_hz / hz_per_bin)
    weights = np.zeros((input_length, channels))
    channel = 0
    for i in range(first, last + 1):
        mel = hz_to_mel(i * hz_per_bin)
        while channel < channels and centres[channel] < mel:
            channel += 1
        band = channel - 1
        if band >= 0:
            w = (centres[band + 1] - mel) / (centres[band + 1] - centres[band])
            weights[i, band] += w
        else:
            w = (centres[0] - mel) / (centres[0] - mel_low)
        if band + 1 < channels:
            weights[i, band + 1] += 1.0 - w
    return weights


def ref_audio_ops(samples: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """AudioSpectrogram (periodic Hann, FFT of the next power of two, |X|^2) followed by
    the Mfcc kernel (sqrt, filterbank, log with a 1e-12 floor, DCT), on one clip."""
    fft_length = next_pow2(fe.frame_length)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(fe.frame_length) / fe.frame_length)
    frames = frames_of(samples, fe.frame_length, fe.frame_step) * window
    power = np.abs(np.fft.rfft(frames, n=fft_length, axis=-1)) ** 2
    bank = mfcc_kernel_filterbank(
        fe.num_mel_bins, power.shape[-1], fe.sample_rate, fe.lower_edge_hz, fe.upper_edge_hz
    )
    energies = np.maximum(np.sqrt(power) @ bank, 1e-12)
    return np.log(energies) @ dct_matrix(fe.num_coefficients, fe.num_mel_bins).T


def to_float(clip: np.ndarray) -> np.ndarray:
    x = clip.astype(np.float64) / 32768.0 if clip.dtype == np.int16 else clip.astype(np.float64)
    return np.pad(x, (0, SR - len(x)))


def resampled(x: np.ndarray, fe: FrontEnd) -> np.ndarray:
    return resample_poly(x, 1, SR // fe.sample_rate) if fe.sample_rate != SR else x


def reference(clip: np.ndarray, fe: FrontEnd, background: np.ndarray | None = None):
    """The whole recipe for one ordinary clip (positive maximum), in float64."""
    x = resampled(to_float(clip), fe)
    if fe.normalize == "max":
        x = x / x.max()
    if background is not None:
        x = np.clip(x + resampled(background.astype(np.float64), fe), -1, 1)
    if fe.recipe == "tf-signal":
        return ref_tf_signal(x, fe)
    return ref_audio_ops(np.clip(x, -1, 1), fe)


def max_diff_vs_reference(clips, fe, background=None):
    got = extract(clips, fe, background=background)
    want = np.stack(
        [
            reference(c, fe, None if background is None else background[i])
            for i, c in enumerate(clips)
        ]
    )
    assert got.shape == want.shape
    return float(np.abs(got - want).max())


# ---------------------------------------------------------------------------------------
# (1) Presets and variants against the references
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["mlperf-tiny", "arm"])
def test_preset_matches_independent_reference(clips, preset):
    diff = max_diff_vs_reference(clips, PRESETS[preset])
    assert diff <= TOLERANCE, f"{preset}: max abs difference {diff:.3g}"


@pytest.mark.parametrize(
    "spec",
    [
        "mlperf-tiny,num_mel_bins=16",
        "mlperf-tiny,sample_rate=8000,num_mel_bins=16",
        "mlperf-tiny,frame_length=320,frame_step=160,num_coefficients=13",
        "arm,frame_length=320,frame_step=160",
        "arm,sample_rate=8000,frame_length=320,frame_step=160",
        "arm,num_mel_bins=32,upper_edge_hz=7600,lower_edge_hz=60",
    ],
)
def test_variant_matches_independent_reference(clips, spec):
    diff = max_diff_vs_reference(clips[:6], get_frontend(spec))
    assert diff <= TOLERANCE, f"{spec}: max abs difference {diff:.3g}"


def test_reference_is_sensitive_to_recipe_details(clips):
    """The comparison can fail: a symmetric window or a missing DC exclusion is caught."""
    fe = PRESETS["mlperf-tiny"]
    got = extract(clips[:2], fe)[0]
    x = to_float(clips[0])
    x = x / x.max()
    frames = frames_of(x, 480, 320) * np.hanning(480)  # symmetric, not periodic
    magnitude = np.abs(np.fft.rfft(frames, n=512, axis=-1))
    wrong = np.log(magnitude @ tf_mel_matrix(40, 257, SR, 20, 4000) + 1e-6) @ dct_matrix(10, 40).T
    assert np.abs(got - wrong).max() > 10 * TOLERANCE


def test_short_clips_are_zero_padded(clips):
    short = clips[:3, :11000]
    padded = np.pad(short, ((0, 0), (0, SR - 11000)))
    for preset in PRESETS:
        np.testing.assert_array_equal(extract(short, preset), extract(padded, preset))
    diff = max_diff_vs_reference(short, PRESETS["mlperf-tiny"])
    assert diff <= TOLERANCE


def test_int16_and_float_inputs_agree(clips):
    as_float = clips.astype(np.float32) / 32768
    for preset in PRESETS:
        np.testing.assert_array_equal(extract(clips, preset), extract(as_float, preset))


# ---------------------------------------------------------------------------------------
# (2) Shapes and dtypes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "shape"),
    [
        ("mlperf-tiny", (49, 10)),
        ("arm", (49, 10)),
        ("mlperf-tiny,sample_rate=8000", (24, 10)),
        ("arm,sample_rate=8000", (24, 10)),
        ("mlperf-tiny,num_mel_bins=16", (49, 10)),
        ("arm,frame_length=320,frame_step=160", (99, 10)),
        (
            "mlperf-tiny,sample_rate=8000,frame_length=240,frame_step=160,num_coefficients=13",
            (49, 13),
        ),
    ],
)
def test_output_shape_and_dtype(clips, spec, shape):
    fe = get_frontend(spec)
    assert fe.output_shape == shape
    features = extract(clips[:3], fe, batch_size=2)
    assert features.dtype == np.float32
    assert features.shape == (3, *shape)
    assert np.isfinite(features).all()


def test_empty_input_gives_empty_output():
    features = extract(np.zeros((0, SR), np.int16), "arm")
    assert features.shape == (0, 49, 10) and features.dtype == np.float32


# ---------------------------------------------------------------------------------------
# (3) Batching
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["mlperf-tiny", "arm"])
@pytest.mark.parametrize("batch_size", [5, 7, 64])
def test_batched_equals_one_clip_at_a_time(clips, preset, batch_size):
    one_by_one = np.concatenate(
        [extract(clips[i : i + 1], preset, batch_size=1) for i in range(len(clips))]
    )
    batched = extract(clips, preset, batch_size=batch_size)
    np.testing.assert_allclose(batched, one_by_one, rtol=0, atol=1e-5)


def test_batching_with_background_and_8k(clips):
    fe = get_frontend("mlperf-tiny,sample_rate=8000")
    noise = np.random.default_rng(3).standard_normal(clips.shape).astype(np.float32) * 0.05
    one_by_one = np.concatenate(
        [extract(clips[i : i + 1], fe, background=noise[i : i + 1], batch_size=1) for i in range(5)]
    )
    np.testing.assert_allclose(
        extract(clips[:5], fe, background=noise[:5], batch_size=3), one_by_one, atol=1e-5, rtol=0
    )


# ---------------------------------------------------------------------------------------
# (4) The max-normalisation guard
# ---------------------------------------------------------------------------------------


def test_all_zero_clip_gives_finite_features():
    silence = np.zeros((2, SR), np.int16)
    for preset in PRESETS:
        features = extract(silence, preset)
        assert np.isfinite(features).all()
    # An all-zero clip is divided by 1: log(0 + 1e-6) in every band, so only c0 is non-zero.
    features = extract(silence, "mlperf-tiny")[0]
    np.testing.assert_allclose(features[:, 0], np.sqrt(2 / 40) * 40 * np.log(1e-6), rtol=1e-6)
    np.testing.assert_allclose(features[:, 1:], 0, atol=1e-4)


def test_all_negative_clip_is_divided_by_its_peak_magnitude(clips):
    negative = -np.abs(clips[0].astype(np.int32)).astype(np.int16)[None]
    negative[0, negative[0] == 0] = -1
    assert negative.max() < 0
    features = extract(negative, "mlperf-tiny")
    assert np.isfinite(features).all()
    x = to_float(negative[0])
    want = ref_tf_signal(x / np.abs(x).max(), PRESETS["mlperf-tiny"])
    assert np.abs(features[0] - want).max() <= TOLERANCE


def test_guard_leaves_ordinary_clips_unchanged(clips):
    """A clip whose negative peak is larger than its positive peak is still divided by
    its maximum (values below -1 and all), exactly as the reference does."""
    clip = clips[0].astype(np.float64)
    lopsided = np.where(clip < 0, clip * 2.5, clip)
    lopsided = np.round(lopsided / np.abs(lopsided).max() * 30000).astype(np.int16)
    assert -lopsided.min() > 2 * lopsided.max() > 0
    got = extract(lopsided[None], "mlperf-tiny")[0]
    x = to_float(lopsided)
    by_max = ref_tf_signal(x / x.max(), PRESETS["mlperf-tiny"])
    by_max_abs = ref_tf_signal(x / np.abs(x).max(), PRESETS["mlperf-tiny"])
    assert np.abs(got - by_max).max() <= TOLERANCE
    assert np.abs(got - by_max_abs).max() > 100 * TOLERANCE


def test_non_finite_input_is_rejected():
    bad = np.zeros((1, SR), np.float32)
    bad[0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        extract(bad, "mlperf-tiny")


# ---------------------------------------------------------------------------------------
# (5) Background noise enters where the recipe adds it
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def background() -> np.ndarray:
    rng = np.random.default_rng(7)
    volume = rng.uniform(0, 0.1, size=(12, 1))
    return (rng.uniform(-1, 1, size=(12, SR)) * volume).astype(np.float32)


def test_mlperf_background_is_added_after_max_normalisation(clips, background):
    fe = PRESETS["mlperf-tiny"]
    got = extract(clips, fe, background=background)
    for i, clip in enumerate(clips):
        x = to_float(clip)
        mixed = np.clip(x / x.max() + background[i].astype(np.float64), -1, 1)
        assert np.abs(got[i] - ref_tf_signal(mixed, fe)).max() <= TOLERANCE
    # After normalisation, a clip's level no longer matters -- but the noise level does.
    quieter = clips.astype(np.float32) / 32768 * 0.25  # exact in float32
    np.testing.assert_allclose(extract(quieter, fe, background=background), got, atol=1e-6)
    assert np.abs(extract(clips, fe, background=background * 4) - got).max() > 0.1


def test_mlperf_zero_background_changes_nothing_for_clips_within_range(clips):
    x = clips.astype(np.float64)
    within = x.min(axis=1) >= -x.max(axis=1)  # x / max stays within [-1, 1]
    assert within.any()
    subset = clips[within]
    np.testing.assert_allclose(
        extract(subset, "mlperf-tiny", background=np.zeros(subset.shape, np.float32)),
        extract(subset, "mlperf-tiny"),
        atol=1e-5,
        rtol=0,
    )


def test_arm_background_is_added_to_pcm_then_clipped(clips, background):
    loud = background * 8  # large enough that the mix clips on the loudest clips
    fe = PRESETS["arm"]
    assert (np.abs(clips / 32768 + loud) > 1).any()
    got = extract(clips, fe, background=loud)
    for i, clip in enumerate(clips):
        mixed = np.clip(to_float(clip) + loud[i].astype(np.float64), -1, 1)
        assert np.abs(got[i] - ref_audio_ops(mixed, fe)).max() <= TOLERANCE


def test_background_shape_must_match(clips, background):
    with pytest.raises(ValueError, match="background has 3 clips but waveforms has 12"):
        extract(clips, "arm", background=background[:3])


# ---------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------


def test_too_long_clips_are_rejected_naming_the_length():
    with pytest.raises(ValueError, match="16001 samples long"):
        extract(np.zeros((2, 16001), np.int16), "arm")


def test_bad_rank_and_dtype_are_rejected():
    with pytest.raises(ValueError, match=r"2-D array .* shape \(16000,\)"):
        extract(np.zeros(SR, np.int16), "arm")
    with pytest.raises(ValueError, match="dtype int32"):
        extract(np.zeros((1, SR), np.int32), "arm")
    with pytest.raises(ValueError, match="batch_size=0"):
        extract(np.zeros((1, SR), np.int16), "arm", batch_size=0)


# ---------------------------------------------------------------------------------------
# (6) The feature cache
# ---------------------------------------------------------------------------------------


class Computer:
    """A compute() stand-in that counts its calls."""

    def __init__(self, seed: int = 0, shape=(30, 49, 10)):
        self.calls = 0
        self.value = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)

    def __call__(self) -> np.ndarray:
        self.calls += 1
        return self.value.copy()


FE = PRESETS["mlperf-tiny"]


def test_cache_default_root_follows_kws_cache_dir():
    # One store for every cache: features default to the artifact cache's root.
    assert FeatureCache().root == ArtifactCache().root == cache_root() / "artifacts"
    assert str(FeatureCache().root).startswith(os.environ["KWS_CACHE_DIR"])


def test_second_call_is_a_hit_without_computing(tmp_path):
    cache, compute = FeatureCache(tmp_path), Computer()
    first, hit1 = cache.get_or_compute("clips-v1", FE, compute, return_hit=True)
    second, hit2 = cache.get_or_compute("clips-v1", FE, compute, return_hit=True)
    assert (hit1, hit2) == (False, True)
    assert compute.calls == 1
    assert (cache.hits, cache.misses) == (1, 1)
    np.testing.assert_array_equal(second, compute.value)
    assert second.dtype == np.float32
    # A fresh instance (another process) sees the same entry.
    third = FeatureCache(tmp_path).get_or_compute("clips-v1", FE, compute)
    np.testing.assert_array_equal(third, compute.value)
    assert compute.calls == 1


def test_fingerprint_and_extra_change_invalidate(tmp_path):
    cache, compute = FeatureCache(tmp_path), Computer()
    cache.get_or_compute("clips-v1", FE, compute)
    cache.get_or_compute("clips-v2", FE, compute)
    cache.get_or_compute("clips-v1", FE, compute, extra={"background": "seed=1"})
    cache.get_or_compute("clips-v1", FE, compute, extra={"background": "seed=2"})
    assert compute.calls == 4
    cache.get_or_compute("clips-v1", FE, compute, extra={"background": "seed=2"})
    assert compute.calls == 4


def _changed(fe: FrontEnd, field_name: str) -> FrontEnd:
    changes = {
        "recipe": "audio-ops",
        "sample_rate": 8000,
        "frame_length": 400,
        "frame_step": 160,
        "num_mel_bins": 32,
        "num_coefficients": 13,
        "lower_edge_hz": 40.0,
        "upper_edge_hz": 3800.0,
        "normalize": "int16",
    }
    return dataclasses.replace(fe, **{field_name: changes[field_name]})


@pytest.mark.parametrize("field_name", [f for f in FE.feature_params()])
def test_every_frontend_parameter_invalidates(tmp_path, field_name):
    cache, compute = FeatureCache(tmp_path), Computer()
    cache.get_or_compute("clips", FE, compute)
    changed = _changed(FE, field_name)
    assert getattr(changed, field_name) != getattr(FE, field_name)
    _, hit = cache.get_or_compute("clips", changed, compute, return_hit=True)
    assert not hit and compute.calls == 2
    assert cache.path_for("clips", changed) != cache.path_for("clips", FE)


def test_name_alone_does_not_change_the_key(tmp_path):
    cache = FeatureCache(tmp_path)
    renamed = dataclasses.replace(FE, name="my-label")
    assert renamed == FE
    assert cache.key("clips", renamed) == cache.key("clips", FE)


def test_key_covers_format_version_and_tensorflow(tmp_path, monkeypatch):
    features = kws.features.cache
    cache = FeatureCache(tmp_path)
    before = cache.key("clips", FE)
    versions = features._installed_versions()
    assert set(versions) == {"tensorflow"} and versions["tensorflow"]  # only TF computes features
    monkeypatch.setattr(features, "FEATURE_FORMAT_VERSION", FEATURE_FORMAT_VERSION + 1)
    assert cache.key("clips", FE) != before
    monkeypatch.undo()
    monkeypatch.setattr(features, "_installed_versions", lambda: {"tensorflow": "0.0.0"})
    assert cache.key("clips", FE) != before


@pytest.mark.parametrize("damage", ["truncate-half", "zero-bytes", "garbage", "flip-bytes"])
def test_damaged_entry_is_rebuilt(tmp_path, damage):
    cache, compute = FeatureCache(tmp_path), Computer()
    cache.get_or_compute("clips", FE, compute)
    path = cache.path_for("clips", FE) / FEATURES_FILE
    data = path.read_bytes()
    if damage == "truncate-half":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "zero-bytes":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(b"not an npz at all" * 100)
    else:  # flip bytes inside the stored array
        middle = len(data) // 2
        flipped = bytes(b ^ 0xFF for b in data[middle : middle + 64])
        path.write_bytes(data[:middle] + flipped + data[middle + 64 :])
    result, hit = cache.get_or_compute("clips", FE, compute, return_hit=True)
    assert not hit and compute.calls == 2 and cache.rebuilds == 1
    np.testing.assert_array_equal(result, compute.value)
    _, hit = cache.get_or_compute("clips", FE, compute, return_hit=True)
    assert hit and compute.calls == 2


def test_entry_with_wrong_checksum_is_not_trusted(tmp_path):
    """A well-formed array file of the right size that does not match its stored checksum."""
    cache, compute = FeatureCache(tmp_path), Computer()
    cache.get_or_compute("clips", FE, compute)
    path = cache.path_for("clips", FE) / FEATURES_FILE
    size = path.stat().st_size
    np.save(path, np.load(path) + 1)
    assert path.stat().st_size == size
    result = cache.get_or_compute("clips", FE, compute)
    np.testing.assert_array_equal(result, compute.value)
    assert compute.calls == 2


def test_entry_for_another_key_is_not_trusted(tmp_path):
    cache = FeatureCache(tmp_path)
    cache.get_or_compute("other-clips", FE, Computer(seed=1))
    cache.path_for("other-clips", FE).replace(cache.path_for("clips", FE))
    compute = Computer(seed=2)
    result = cache.get_or_compute("clips", FE, compute)
    assert compute.calls == 1
    np.testing.assert_array_equal(result, compute.value)


def test_crash_in_compute_leaves_no_entry(tmp_path):
    cache = FeatureCache(tmp_path)

    def crash():
        raise RuntimeError("killed mid-way")

    with pytest.raises(RuntimeError, match="killed mid-way"):
        cache.get_or_compute("clips", FE, crash)
    assert not cache.path_for("clips", FE).exists()
    compute = Computer()
    _, hit = cache.get_or_compute("clips", FE, compute, return_hit=True)
    assert not hit and compute.calls == 1


def test_crash_during_write_leaves_no_trusted_entry(tmp_path, monkeypatch):
    cache, compute = FeatureCache(tmp_path), Computer()

    def fail_rename(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail_rename)
    with pytest.raises(OSError, match="disk full"):
        cache.get_or_compute("clips", FE, compute)
    monkeypatch.undo()
    assert not cache.path_for("clips", FE).exists()
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.rglob(".*.tmp"))
    _, hit = cache.get_or_compute("clips", FE, compute, return_hit=True)
    assert not hit and compute.calls == 2


def test_crash_in_recompute_after_corruption_removes_the_bad_entry(tmp_path):
    cache, compute = FeatureCache(tmp_path), Computer()
    cache.get_or_compute("clips", FE, compute)
    path = cache.path_for("clips", FE)
    stored = path / FEATURES_FILE
    stored.write_bytes(stored.read_bytes()[:100])

    def crash():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("clips", FE, crash)
    assert not path.exists()


def test_concurrent_callers_compute_once(tmp_path):
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return np.arange(10, dtype=np.float32)

    results = []

    def worker():
        results.append(FeatureCache(tmp_path).get_or_compute("clips", FE, slow))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert len(results) == 3
    for r in results:
        np.testing.assert_array_equal(r, np.arange(10, dtype=np.float32))


def test_cached_extraction_round_trip(tmp_path, clips):
    cache = FeatureCache(tmp_path)
    first = cache.get_or_compute("clips", FE, lambda: extract(clips, FE))
    second, hit = cache.get_or_compute("clips", FE, lambda: extract(clips, FE), return_hit=True)
    assert hit
    np.testing.assert_array_equal(first, second)


# ----- one storage core ----------------------------------------------------------------


def test_artifact_cache_hands_down_a_feature_cache_over_its_root(tmp_path):
    artifacts = ArtifactCache(tmp_path / "store")
    features = artifacts.features
    assert features is artifacts.features  # one instance: its counters add up over a run
    assert features.store is artifacts.store and features.root == artifacts.root
    compute = Computer()
    features.get_or_compute("clips", FE, compute)
    entry = features.path_for("clips", FE)
    assert entry.parent == artifacts.root / "features" and (entry / FEATURES_FILE).is_file()
    # The artifact cache sees, measures and clears the feature entry like any other.
    listed = artifacts.entries(verify=True)
    assert [(e.stage, e.path) for e in listed] == [("features", entry)]
    assert listed[0].manifest["material"]["fingerprint"] == "clips"
    assert (artifacts.hits, artifacts.misses) == (0, 0) and (features.hits, features.misses) == (0, 1)
    # A feature cache over the same root (another process) finds it.
    _, hit = FeatureCache(artifacts.root).get_or_compute("clips", FE, compute, return_hit=True)
    assert hit and compute.calls == 1
    assert artifacts.clear() == 1 and not entry.exists()


def test_feature_cache_resolves_what_callers_hand_down(tmp_path):
    artifacts, features = ArtifactCache(tmp_path), FeatureCache(tmp_path / "other")
    assert feature_cache(artifacts) is artifacts.features
    assert feature_cache(features) is features
    assert feature_cache(None).root == FeatureCache().root
    with pytest.raises(TypeError, match="ArtifactCache, a FeatureCache or None"):
        feature_cache(str(tmp_path))
    with pytest.raises(ValueError, match="root or a store"):
        FeatureCache(tmp_path, store=artifacts.store)


def test_corrupt_feature_entry_is_caught_by_the_shared_verification(tmp_path, caplog):
    cache, compute = FeatureCache(tmp_path), Computer()
    cache.get_or_compute("clips", FE, compute)
    entry = cache.path_for("clips", FE)
    stored = entry / FEATURES_FILE
    data = bytearray(stored.read_bytes())
    data[-5] ^= 0xFF
    stored.write_bytes(bytes(data))

    # The store, read directly, rejects it by the SHA-256 its manifest records...
    store = Store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="kws.store"):
        material = FeatureCache._material("clips", FE, None)
        assert store.get("features", material, **FeatureCache._versioning()) is None
    assert f"{FEATURES_FILE} does not match its sha256" in caplog.text
    assert ArtifactCache(tmp_path).entries(verify=True) == []
    # ...and the feature cache, riding on it, discards the entry and computes it again.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kws.store"):
        result, hit = cache.get_or_compute("clips", FE, compute, return_hit=True)
    assert not hit and compute.calls == 2 and cache.rebuilds == 1
    assert str(entry) in caplog.text and "corrupt" in caplog.text
    np.testing.assert_array_equal(result, compute.value)
    assert [e.path for e in ArtifactCache(tmp_path).entries(verify=True)] == [entry]


KILLED_EXTRACTION = """
    import sys, time
    import numpy as np
    from kws.features import PRESETS, FeatureCache

    def compute():
        print("computing", flush=True)
        time.sleep(60)
        return np.zeros(3, np.float32)

    FeatureCache(sys.argv[1]).get_or_compute("clips", PRESETS["mlperf-tiny"], compute)
"""


def test_killed_feature_computation_leaves_nothing_trusted(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_EXTRACTION), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "computing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    cache, compute = FeatureCache(tmp_path), Computer()
    assert not cache.path_for("clips", FE).exists()
    assert len(list((tmp_path / "features").glob(".*.tmp"))) == 1  # its half-built folder
    # The killed process's lock died with it: the next caller computes at once.
    result, hit = cache.get_or_compute("clips", FE, compute, return_hit=True)
    assert not hit and compute.calls == 1
    np.testing.assert_array_equal(result, compute.value)


# ---------------------------------------------------------------------------------------
# (7) get_frontend parsing and FrontEnd validation
# ---------------------------------------------------------------------------------------


def test_presets_by_name():
    assert get_frontend("mlperf-tiny") is PRESETS["mlperf-tiny"]
    assert get_frontend(" arm ") == PRESETS["arm"]
    assert get_frontend(PRESETS["arm"]) is PRESETS["arm"]
    assert PRESETS["mlperf-tiny"].params() == {
        "recipe": "tf-signal",
        "sample_rate": 16000,
        "frame_length": 480,
        "frame_step": 320,
        "num_mel_bins": 40,
        "num_coefficients": 10,
        "lower_edge_hz": 20.0,
        "upper_edge_hz": 4000.0,
        "normalize": "max",
        "name": "mlperf-tiny",
    }
    assert PRESETS["arm"].output_shape == (49, 10)


def test_spec_overrides_start_from_the_preset():
    fe = get_frontend("mlperf-tiny, sample_rate=8000, num_mel_bins=16, upper_edge_hz=3800")
    assert fe == dataclasses.replace(
        PRESETS["mlperf-tiny"], sample_rate=8000, num_mel_bins=16, upper_edge_hz=3800.0
    )
    assert isinstance(fe.upper_edge_hz, float) and isinstance(fe.sample_rate, int)
    assert fe.name == "mlperf-tiny,sample_rate=8000,num_mel_bins=16,upper_edge_hz=3800"
    arm = get_frontend("arm,frame_length=320,frame_step=160")
    assert (arm.recipe, arm.frame_length, arm.frame_step, arm.normalize) == (
        "audio-ops",
        320,
        160,
        "int16",
    )
    assert get_frontend("arm,normalize=max").normalize == "max"


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError) as err:
        get_frontend("librosa")
    assert str(err.value) == (
        "front-end 'librosa': must start with a preset name (mlperf-tiny, arm), got 'librosa'"
    )
    with pytest.raises(ValueError, match="must start with a preset name"):
        get_frontend("sample_rate=8000")


def test_unknown_key_lists_the_keys():
    with pytest.raises(ValueError) as err:
        get_frontend("arm,n_mels=20")
    assert str(err.value) == (
        "front-end 'arm,n_mels=20': unknown key 'n_mels'; valid keys: recipe, sample_rate, "
        "frame_length, frame_step, num_mel_bins, num_coefficients, lower_edge_hz, "
        "upper_edge_hz, normalize"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("arm,num_mel_bins", "front-end 'arm,num_mel_bins': 'num_mel_bins' is not key=value"),
        ("arm,num_mel_bins=", "front-end 'arm,num_mel_bins=': 'num_mel_bins=' is not key=value"),
        ("arm,num_mel_bins=many", "num_mel_bins='many': must be an integer"),
        ("arm,lower_edge_hz=low", "lower_edge_hz='low': must be a number"),
        (
            "arm,frame_step=2,frame_step=3",
            "front-end 'arm,frame_step=2,frame_step=3': key 'frame_step' given twice",
        ),
        ("arm,sample_rate=44100", "sample_rate=44100: must be one of 16000, 8000"),
        ("arm,recipe=librosa", "recipe='librosa': must be one of 'tf-signal', 'audio-ops'"),
        ("arm,normalize=peak", "normalize='peak': must be one of 'max', 'int16'"),
        ("arm,frame_step=0", "frame_step=0: must be a positive integer"),
        ("arm,num_coefficients=41", "num_coefficients=41: more than num_mel_bins=40"),
        (
            "mlperf-tiny,sample_rate=8000,upper_edge_hz=4800",
            "upper_edge_hz=4800.0: above the Nyquist frequency 4000 Hz of sample_rate=8000",
        ),
        ("arm,lower_edge_hz=4000", "lower_edge_hz=4000.0: must be below upper_edge_hz=4000.0"),
        ("arm,lower_edge_hz=-1", "lower_edge_hz=-1.0: must be >= 0"),
        (
            "arm,sample_rate=8000,frame_length=9000",
            "frame_length=9000: longer than a clip (8000 samples at 8000 Hz)",
        ),
    ],
)
def test_bad_specs_name_the_field_and_value(spec, message):
    with pytest.raises(ValueError) as err:
        get_frontend(spec)
    assert str(err.value) == message


def test_frontend_is_frozen_and_type_checked():
    fe = PRESETS["arm"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        fe.sample_rate = 8000  # type: ignore[misc]
    with pytest.raises(ValueError, match="frame_length=480.0: must be a positive integer"):
        dataclasses.replace(fe, frame_length=480.0)
    with pytest.raises(ValueError, match="sample_rate=True: must be one of"):
        dataclasses.replace(fe, sample_rate=True)
    with pytest.raises(TypeError, match="not int"):
        get_frontend(3)  # type: ignore[arg-type]
