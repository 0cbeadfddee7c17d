"""Benchmarks for kws.features: extraction throughput and feature-cache loads.

Run with ``python -m pytest bench/test_bench_features.py``. Throughput is recorded in
``benchmark.extra_info`` (``clips_per_s``; ``mb_per_s`` for cache loads).
"""

from __future__ import annotations

import numpy as np
import pytest

from kws.features import DEFAULT_BATCH_SIZE, PRESETS, FeatureCache, extract

N_CLIPS = 2048
N_CACHED_CLIPS = 12_000
SR = 16000


def synthetic_clips(n: int, seed: int = 0) -> np.ndarray:
    """``n`` speech-like int16 clips: three formant tones under a word-shaped envelope
    at a random position and level, over a noise floor. Vectorised, so 2,000 clips take
    well under a second to make."""
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    formants = rng.uniform([200, 900, 2200], [900, 2300, 3400], size=(n, 3))
    tones = np.zeros((n, SR), np.float32)
    for k in range(3):
        tones += np.sin(2 * np.pi * formants[:, k : k + 1] * t).astype(np.float32) / (k + 1)
    centre = rng.uniform(0.3, 0.7, size=(n, 1))
    width = rng.uniform(0.1, 0.25, size=(n, 1))
    envelope = np.exp(-0.5 * ((t - centre) / width) ** 2).astype(np.float32)
    noise = rng.standard_normal((n, SR), dtype=np.float32) * 0.01
    level = rng.uniform(1000, 20000, size=(n, 1)).astype(np.float32)
    signal = (tones * envelope / 1.9 + noise) * level
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    return synthetic_clips(N_CLIPS)


@pytest.mark.parametrize("preset", ["mlperf-tiny", "arm"])
def test_extraction_throughput(benchmark, clips, preset):
    fe = PRESETS[preset]
    # Trace the graph (about a second) before timing: training pays it once per run.
    extract(clips[:DEFAULT_BATCH_SIZE], fe, batch_size=DEFAULT_BATCH_SIZE)
    features = benchmark.pedantic(
        extract, args=(clips, fe), kwargs={"batch_size": DEFAULT_BATCH_SIZE}, rounds=3
    )
    assert features.shape == (N_CLIPS, *fe.output_shape)
    assert np.isfinite(features).all()
    benchmark.extra_info["preset"] = preset
    benchmark.extra_info["clips"] = N_CLIPS
    benchmark.extra_info["batch_size"] = DEFAULT_BATCH_SIZE
    benchmark.extra_info["clips_per_s"] = N_CLIPS / benchmark.stats.stats.mean


def test_cached_feature_load(benchmark, tmp_path):
    fe = PRESETS["mlperf-tiny"]
    rng = np.random.default_rng(0)
    stored = rng.standard_normal((N_CACHED_CLIPS, *fe.output_shape), dtype=np.float32)
    # Fill the cache once; the benchmark measures the hit path (load + verify checksum).
    FeatureCache(tmp_path).get_or_compute("bench-clips", fe, lambda: stored)

    def load():
        cache = FeatureCache(tmp_path)
        features, hit = cache.get_or_compute(
            "bench-clips", fe, lambda: pytest.fail("cache miss"), return_hit=True
        )
        assert hit
        return features

    features = benchmark.pedantic(load, rounds=5, warmup_rounds=1)
    np.testing.assert_array_equal(features, stored)
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info["clips"] = N_CACHED_CLIPS
    benchmark.extra_info["clips_per_s"] = N_CACHED_CLIPS / seconds
    benchmark.extra_info["mb_per_s"] = stored.nbytes / 1e6 / seconds
