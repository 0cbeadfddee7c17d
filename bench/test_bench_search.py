"""The search on several processes: two `kws search` processes working on one study
against one process, the same number of trials, side by side in one run on this
machine's cores.

Both start from the same warm cache (the data's features and the baseline already
built, as on a machine that ran the matrix) and search the same space with random
sampling, so the trials cost alike; each trial trains its own technique stage.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import TINY_SEARCH_GRID

TRIALS = 8
#: "Clearly less wall time": two processes must finish the trials in at most this share
#: of one process's wall time.
TWO_PROCESS_MAX_RATIO = 0.9
ROOT = Path(__file__).resolve().parents[1]


def _env(cache: Path) -> dict:
    return {**os.environ, "KWS_CACHE_DIR": str(cache), "KWS_PROGRESS": "0", "CI": "true",
            "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="module")
def search_setup(tmp_path_factory, small_synth_dir):
    root = tmp_path_factory.mktemp("search-bench")
    grid = root / "bench" / "grid.toml"
    grid.parent.mkdir()
    grid.write_text(TINY_SEARCH_GRID)
    shutil.copy(ROOT / "bench" / "thresholds.toml", grid.parent / "thresholds.toml")
    warm = root / "warm-cache"
    # The features and the 1-epoch baseline every trial starts from.
    subprocess.run([sys.executable, "-m", "kws.cli", "run", "ptq_int8", "--data-dir", str(small_synth_dir),
                    "--baseline-epochs", "1", "--vela-targets", "none", "--json"],
                   env=_env(warm), check=True, capture_output=True, cwd=root)
    return root, small_synth_dir, warm


def _search(root: Path, data: Path, warm: Path, processes: int, name: str) -> float:
    cache = root / f"cache-{name}"
    shutil.copytree(warm, cache)
    argv = [sys.executable, "-m", "kws.cli", "search", "--study", name, "--tier", "smoke", "--data-dir", str(data),
            "--results", str(root / f"results-{name}"), "--pathways", "p,pqat", "--maximise", "accuracy",
            "--minimise", "latency:ethos-u55-256", "--sampler", "random", "--trials", str(TRIALS)]
    start = time.perf_counter()
    procs = [subprocess.Popen([*argv, "--worker", str(k)], env=_env(cache), cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for k in range(processes)]
    outputs = [p.communicate(timeout=1800) for p in procs]
    wall = time.perf_counter() - start
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    return wall


def _trials(root: Path, name: str):
    from kws.search.study import load_existing

    return load_existing(name, None, root / f"results-{name}").get_trials()


def test_two_processes_on_one_study_against_one(benchmark, search_setup):
    import optuna

    from kws.matrix.history import read_history

    root, data, warm = search_setup
    walls = {}

    def measure():
        walls["one"] = _search(root, data, warm, 1, "one")
        walls["two"] = _search(root, data, warm, 2, "two")

    benchmark.pedantic(measure, rounds=1, iterations=1)
    trained = {}
    for name in walls:
        trials = _trials(root, name)
        numbers = [t.number for t in trials]
        assert len(set(numbers)) == len(numbers) >= TRIALS
        assert all(t.state is optuna.trial.TrialState.COMPLETE for t in trials)
        rows = read_history(root / f"results-{name}" / "history.jsonl")
        # Every trial is a case in the history, once: none lost, none run twice.
        assert sorted(r["search"]["trial"] for r in rows) == sorted(numbers)
        # A configuration sampled twice is served by the cache: count the trials that trained.
        trained[name] = sum(bool(r.get("trained_now")) for r in rows)
    two_workers = {t.user_attrs["worker"] for t in _trials(root, "two")}
    ratio = walls["two"] / walls["one"]
    benchmark.extra_info.update(trials=TRIALS, wall_s_one_process=walls["one"], wall_s_two_processes=walls["two"],
                                ratio=ratio, trials_two=len(_trials(root, "two")), cpus=os.cpu_count(),
                                trials_that_trained_one=trained["one"], trials_that_trained_two=trained["two"],
                                trials_per_hour_one=3600 * TRIALS / walls["one"],
                                trials_per_hour_two=3600 * len(_trials(root, "two")) / walls["two"])
    assert two_workers == {0, 1}, "both processes must have run trials"
    assert ratio <= TWO_PROCESS_MAX_RATIO, (
        f"two processes took {walls['two']:.0f} s for {TRIALS} trials, one took {walls['one']:.0f} s "
        f"({ratio:.2f}x; at most {TWO_PROCESS_MAX_RATIO}x expected)")
