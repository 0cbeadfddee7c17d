"""The content-addressed artifact cache: every expensive stage's output, built once.

Baseline training, pruning, clustering, QAT fine-tuning, TFLite conversion and Vela
compilation each store their output here, keyed by everything that determines it, so
that no process (pytest-xdist worker, second terminal, later session) waits for work
the suite already did. The features those stages train on live in the same store:
:attr:`ArtifactCache.features` is the feature cache over this cache's root, so one cache
object handed down a pipeline reaches every stage, extraction included.

Keys
    :meth:`ArtifactCache.key` is the SHA-256 of canonical JSON holding the stage name,
    the stage's own parameters (``material``: data fingerprint, front-end, model and
    training configuration, seed, ...), the parent stage's key (a stage that consumes
    another's output includes its parent's key, so a change upstream invalidates
    everything downstream), :data:`CACHE_FORMAT_VERSION` and the installed versions of
    TensorFlow, tf-keras, TFMOT and Vela. Versions are read from the installed
    distributions, so computing a key never imports TensorFlow.

Storage
    Layout, atomic builds, per-key locks and the verification of every file on every
    load are the storage core's (:mod:`kws.store`): an entry is either absent or whole,
    concurrent processes build it once, and a corrupt entry is logged, removed and
    rebuilt, never returned.

Loading returns paths, not objects
    An :class:`Artifact` names files on disk; callers deserialise a fresh model from
    them each time. No in-memory model is ever cached or handed out twice: TFMOT
    wrappers share weight variables with the model they wrap, so a shared instance
    would be silently modified by the next stage that wraps it.
"""

from __future__ import annotations

import datetime
import importlib
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kws.store import (
    MANIFEST,
    STALE_TEMP_AGE,
    Broken,
    Counters,
    Entry,
    Outcome,
    Store,
    Temporary,
    default_root,
    installed_versions,
)

if TYPE_CHECKING:
    from kws.features.cache import FeatureCache

#: Bump when the meaning or layout of entries changes: every key changes with it.
CACHE_FORMAT_VERSION = 1

#: Distributions whose versions enter every key (alternatives for the same package:
#: the first one installed is used).
VERSIONED_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "tf-keras": ("tf-keras",),
    "tensorflow-model-optimization": ("tensorflow-model-optimization",),
    "ethos-u-vela": ("ethos-u-vela",),
}

#: A verified stage output: the storage core's entry (files plus manifest).
Artifact = Entry


def _installed_versions() -> dict[str, str | None]:
    """Versions of the packages whose behaviour determines every stage's output."""
    return installed_versions(VERSIONED_DISTRIBUTIONS)


class ArtifactCache(Counters):
    """Stage outputs on disk under ``root`` (default ``cache_root()/artifacts``).

    Counters (for tests and benchmarks) count what this instance has done:
    ``hits`` lookups answered from disk, ``misses`` lookups that found nothing usable
    (for :meth:`get_or_build`, one per build), ``rebuilds`` entries found corrupt and
    replaced by :meth:`get_or_build`. The feature cache (:attr:`features`) keeps its own.
    """

    def __init__(self, root: Path | None = None):
        super().__init__()
        self.store = Store(Path(root) if root is not None else default_root())

    @property
    def root(self) -> Path:
        return self.store.root

    @cached_property
    def features(self) -> FeatureCache:
        """The feature cache over this cache's store (one instance, so its counters add up)."""
        from kws.features.cache import FeatureCache

        return FeatureCache(store=self.store)

    # ----- keys -------------------------------------------------------------------

    def key(self, stage: str, material: Mapping, parent: str | Artifact | None = None) -> str:
        """Hex SHA-256 of everything that determines the stage's output."""
        return self.store.key(stage, material, parent, **self._versioning())

    def path_for(self, stage: str, key: str) -> Path:
        return self.store.path_for(stage, key)

    @staticmethod
    def _versioning() -> dict[str, Any]:
        # Read at every call, so that a changed format or install is seen at once.
        return {"format": CACHE_FORMAT_VERSION, "versions": _installed_versions()}

    # ----- lookups ----------------------------------------------------------------

    def get(self, stage: str, material: Mapping, parent: str | Artifact | None = None) -> Artifact | None:
        """The verified entry, or None. Never builds, never removes anything."""
        artifact = self.store.get(stage, material, parent, **self._versioning())
        self.count(Outcome.MISS if artifact is None else Outcome.HIT)
        return artifact

    def get_or_build(
        self,
        stage: str,
        material: Mapping,
        build: Callable[[Path], Mapping | None],
        *,
        parent: str | Artifact | None = None,
    ) -> Artifact:
        """The verified entry; on a miss, ``build(folder)`` makes it first.

        ``build`` writes its files into ``folder`` (fresh and empty) and returns
        JSON-serialisable metadata (metrics, history, ...) or None. If it raises,
        nothing is stored and the exception propagates unchanged.
        """
        artifact, outcome = self.store.get_or_build(stage, material, build, parent=parent,
                                                    **self._versioning())
        self.count(outcome)
        return artifact

    # ----- maintenance ------------------------------------------------------------

    def entries(self, *, verify: bool = False) -> list[Artifact]:
        """Every entry in the store (feature entries too), oldest first; every file is
        hashed if ``verify``. Temporary folders and lock files are never entries."""
        return self.store.entries(verify=verify)

    def scan(self, *, verify: bool = False) -> tuple[list[Artifact], list[Broken]]:
        """The entries and, separately, the entry folders whose manifest does not read
        (listed as corrupt by ``kws cache ls``, removed by :meth:`clear`)."""
        return self.store.scan(verify=verify)

    def temporaries(self) -> list[Temporary]:
        """Folders being built, and those left by killed builders (``stale``)."""
        return self.store.temporaries()

    def clear(self, older_than: datetime.timedelta | None = None) -> int:
        """Remove entries (all, or those created more than ``older_than`` ago), and the
        stale temporary folders left by builders that were killed (older than
        :data:`STALE_TEMP_AGE` when their creator is unknown). Returns the number of
        entries removed."""
        return self.store.clear(older_than)

    def disk_usage(self) -> int:
        """Bytes of every file under the cache root (entries, temporaries, locks)."""
        return self.store.disk_usage()


# The text helpers of the ``kws cache`` commands live with the command line
# (kws.cli.cache); they stay importable from here without this module importing it.
_COMMAND_LINE_NAMES = frozenset({"AGE_FORMS", "format_age", "human_bytes", "parse_age", "summarize"})


def __getattr__(name: str):
    if name in _COMMAND_LINE_NAMES:
        return getattr(importlib.import_module("kws.cli.cache"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CACHE_FORMAT_VERSION",
    "MANIFEST",
    "STALE_TEMP_AGE",
    "VERSIONED_DISTRIBUTIONS",
    "Artifact",
    "ArtifactCache",
]
