"""Benchmark fixtures: the embedded default dataset, built once per cache and reused;
the Hypothesis profiles of the property checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

# Property checks train real (tiny) models: no per-example deadline, and few examples.
# `dev` for a laptop, `ci` derandomised so that CI is reproducible, `nightly` for depth.
# Choose with --hypothesis-profile; the default is `ci` under CI and `dev` elsewhere.
_SLOW = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("dev", max_examples=4, **_SLOW)
# CI does not shrink: each shrinking step retrains models, and a failure's blob replays it.
settings.register_profile("ci", max_examples=4, derandomize=True, print_blob=True,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate], **_SLOW)
settings.register_profile("nightly", max_examples=30, **_SLOW)


def pytest_configure(config):
    if config.getoption("hypothesis_profile", None) is None:
        settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def default_data_dir() -> Path:
    """The synthetic default dataset (synthesised on first use, then served from the
    cache under ``$KWS_CACHE_DIR``)."""
    from kws.synth import default_dataset

    return default_dataset()
