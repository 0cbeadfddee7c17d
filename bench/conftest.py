"""Benchmark fixtures: the embedded default dataset, built once per cache and reused."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def default_data_dir() -> Path:
    """The synthetic default dataset (synthesised on first use, then served from the
    cache under ``$KWS_CACHE_DIR``)."""
    from kws.synth import default_dataset

    return default_dataset()
