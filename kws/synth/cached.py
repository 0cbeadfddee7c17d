"""The default dataset: synthesised once into the cache, keyed by everything that
shapes it, and reused by every later caller."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from kws._fs import cache_root
from kws.synth import defaults
from kws.synth.dataset import MANIFEST_NAME, SYNTH_FORMAT_VERSION, synthesize
from kws.synth.plan import SynthConfig, _check_int, make_config


def _default_config() -> SynthConfig:
    # Module attributes are read at call time so that tests can shrink the default.
    return make_config(defaults.DEFAULT_CLIPS_PER_WORD, None)


def default_key(seed: int = 0) -> str:
    """Short hash of everything that shapes the default dataset."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        loader_version = version("espeakng-loader")
    except PackageNotFoundError:  # pragma: no cover
        loader_version = "unknown"
    blob = json.dumps(
        {
            "config": asdict(_default_config()), "seed": seed,
            "format_version": SYNTH_FORMAT_VERSION, "espeakng_loader": loader_version,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def default_dataset(*, seed: int = 0) -> Path:
    """The default dataset, synthesised into the cache on first use and reused after.

    A file lock next to it makes concurrent callers (pytest-xdist workers) build it once.
    """
    from filelock import FileLock

    seed = _check_int("seed", seed, 0)
    root = cache_root() / "datasets"
    path = root / f"synth-{default_key(seed)}"
    if (path / MANIFEST_NAME).is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not (path / MANIFEST_NAME).is_file():
            config = _default_config()
            synthesize(
                path, seed=seed, clips_per_word=config.clips_per_word,
                unknown_clips_per_word=config.unknown_clips_per_word, overwrite=True,
            )
    return path

