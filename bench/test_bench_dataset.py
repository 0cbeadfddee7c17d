"""Benchmarks on the embedded default dataset: feature extraction of real clips and
loading its cached features.

Throughput goes to ``benchmark.extra_info`` (``clips_per_s``).
"""

from __future__ import annotations

import numpy as np
import pytest

from kws.data import SPLITS, SpeechCommands
from kws.features import PRESETS, FeatureCache, extract


@pytest.fixture(scope="module")
def dataset(default_data_dir) -> SpeechCommands:
    return SpeechCommands(default_data_dir)


@pytest.fixture(scope="module")
def training_waves(dataset) -> np.ndarray:
    waves, _ = dataset.load("training")
    assert len(waves) >= 2000, f"the default training split has only {len(waves)} clips"
    return waves


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_default_dataset_extraction_throughput(benchmark, training_waves, preset):
    fe = PRESETS[preset]
    extract(training_waves[:256], fe)  # trace once, as a training run does
    feats = benchmark.pedantic(extract, args=(training_waves, fe), rounds=2, warmup_rounds=0)
    assert feats.shape == (len(training_waves), *fe.output_shape) and np.isfinite(feats).all()
    benchmark.extra_info.update(preset=preset, clips=len(training_waves),
                                clips_per_s=len(training_waves) / benchmark.stats.stats.mean)


def test_default_dataset_cached_features_load(benchmark, dataset):
    """Every split's features from the cache, as a warm run of the suite gets them."""
    for split in SPLITS:  # fill the cache (a no-op when an earlier run did)
        dataset.features(split, "mlperf-tiny")

    def load_all() -> int:
        cache = FeatureCache()
        fresh = SpeechCommands(dataset.root)
        total = sum(len(fresh.features(split, "mlperf-tiny", cache=cache)[0]) for split in SPLITS)
        assert cache.misses == 0, "a warm run must not extract features again"
        return total

    total = benchmark.pedantic(load_all, rounds=3, warmup_rounds=1)
    benchmark.extra_info.update(clips=total, clips_per_s=total / benchmark.stats.stats.mean)
