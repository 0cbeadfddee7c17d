"""Throughput of the eSpeak NG dataset synthesiser, in clips per second.

Each round writes a fresh dataset (background noise included) into a temporary folder,
so the time covers everything ``kws synth`` does.
"""

from __future__ import annotations

import itertools

import pytest

from kws import synth

_runs = itertools.count()


@pytest.mark.parametrize(
    "workers, clips_per_word",
    [(1, 30), (2, 100)],
    ids=["1-process", "2-processes"],
)
def test_synthesis_throughput(benchmark, tmp_path, monkeypatch, workers, clips_per_word):
    monkeypatch.setenv("KWS_SYNTH_WORKERS", str(workers))
    unknown = max(1, clips_per_word // 5)

    def run():
        return synth.synthesize(
            tmp_path / f"run{next(_runs)}", seed=0, clips_per_word=clips_per_word,
            unknown_clips_per_word=unknown, show_progress=False,
        )

    manifest = benchmark.pedantic(run, rounds=1, iterations=1)
    clips = manifest["counts"]["clips"]
    assert clips == clips_per_word * len(synth.KEYWORDS) + unknown * len(synth.UNKNOWN_WORDS)
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info["clips"] = clips
    benchmark.extra_info["workers"] = workers
    benchmark.extra_info["clips_per_s"] = round(clips / seconds, 1)
