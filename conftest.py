"""Fixtures shared by the unit tests (``tests/``) and the benchmarks (``bench/``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The benchmark matrix's options (--kws-*), markers, case generation and reports; pytester
# for the tests of the plugin itself.
pytest_plugins = ["kws.matrix.plugin", "pytester"]

REAL_DATA_ENV = "KWS_REAL_DATA"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch, request):
    """Unit tests never read or fill the user's cache: each test gets an empty one.

    Benchmarks (``bench/``) keep the user's cache on purpose: they measure warm runs.
    """
    if "bench" in Path(str(request.fspath)).parts:
        return
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path_factory.mktemp("kws-cache")))


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder named by ``$KWS_REAL_DATA`` (real Speech Commands audio), or a skip."""
    env = os.environ.get(REAL_DATA_ENV)
    if not env:
        pytest.skip(f"${REAL_DATA_ENV} is not set: no real Speech Commands audio to test on")
    path = Path(env)
    if not path.is_dir():
        pytest.fail(f"${REAL_DATA_ENV}={env} is not a folder")
    return path


@pytest.fixture(scope="session")
def small_synth_dir(tmp_path_factory) -> Path:
    """A small synthetic dataset in the training-archive layout (seconds to build)."""
    from kws.synth import synthesize

    out = tmp_path_factory.mktemp("synth") / "speech"
    synthesize(out, seed=0, clips_per_word=6, show_progress=False)
    return out
