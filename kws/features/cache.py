"""Features on disk: extracted once per clip list, front-end and TensorFlow version.

The feature cache is an owner of entries in the storage core (:mod:`kws.store`), beside
the artifact cache and by default in the same store: stage ``features``, one entry per
array, holding ``features.npy``. Locking, atomic builds and the SHA-256 verification of
every load are the store's, so a truncated, edited or misplaced entry is recomputed,
never returned, and concurrent processes compute an entry once.

The array is stored as ``.npy`` and read back with ``np.load``: the values a hit returns
are bit for bit the values that were computed.

Arrays that are computed together and only valid together (a split's features and its
labels) share one entry (:meth:`FeatureCache.get_or_compute_arrays`): one lookup, one
verification, and one warning if the entry is damaged, instead of one per array.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kws.features.frontend import FrontEnd, get_frontend
from kws.store import Counters, Entry, Outcome, Store, default_root, installed_versions

#: Bump when the meaning or layout of cached features changes (invalidates old entries).
FEATURE_FORMAT_VERSION = 1

#: The store stage that holds features, and the file each entry stores.
STAGE = "features"
FEATURES_FILE = "features.npy"

#: Only TensorFlow computes features: other packages' upgrades leave them valid.
VERSIONED_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
}


def _installed_versions() -> dict[str, str | None]:
    return installed_versions(VERSIONED_DISTRIBUTIONS)


class FeatureCache(Counters):
    """Features in the store under ``root`` (default: the shared store's root), keyed by
    the clips' fingerprint, the front-end, ``extra`` and the TensorFlow version.

    ``store`` shares an existing store instead (:attr:`kws.cache.ArtifactCache.features`
    does). ``hits``, ``misses`` and ``rebuilds`` (corrupt entries replaced) count what
    this instance has done.
    """

    def __init__(self, root: Path | None = None, *, store: Store | None = None):
        super().__init__()
        if store is not None and root is not None:
            raise ValueError("give a root or a store, not both")
        self.store = store if store is not None else Store(Path(root) if root is not None else default_root())

    @property
    def root(self) -> Path:
        return self.store.root

    @staticmethod
    def _material(fingerprint: str, frontend: str | FrontEnd, extra: dict | None) -> dict[str, Any]:
        return {"fingerprint": fingerprint, "frontend": get_frontend(frontend).feature_params(), "extra": extra}

    @staticmethod
    def _versioning() -> dict[str, Any]:
        return {"format": FEATURE_FORMAT_VERSION, "versions": _installed_versions()}

    def key(self, fingerprint: str, frontend: str | FrontEnd, extra: dict | None = None) -> str:
        """Hex SHA-256 of everything that determines the features."""
        return self.store.key(STAGE, self._material(fingerprint, frontend, extra), **self._versioning())

    def path_for(self, fingerprint: str, frontend: str | FrontEnd, extra: dict | None = None) -> Path:
        """The entry's folder (it holds :data:`FEATURES_FILE` and the manifest)."""
        return self.store.path_for(STAGE, self.key(fingerprint, frontend, extra))

    def get_or_compute(
        self,
        fingerprint: str,
        frontend: str | FrontEnd,
        compute: Callable[[], np.ndarray],
        *,
        extra: dict | None = None,
        return_hit: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, bool]:
        """The cached features, or ``compute()``'s result, stored before returning.

        With ``return_hit=True`` returns ``(features, hit)``.
        """
        arrays, outcome = self._get_or_build(
            self._material(fingerprint, frontend, extra), lambda: {"features": compute()}, ("features",)
        )
        hit = outcome is Outcome.HIT
        return (arrays["features"], hit) if return_hit else arrays["features"]

    def get_or_compute_arrays(
        self,
        fingerprint: str,
        frontend: str | FrontEnd,
        compute: Callable[[], Mapping[str, np.ndarray]],
        *,
        names: Sequence[str],
        extra: dict | None = None,
    ) -> dict[str, np.ndarray]:
        """Several arrays kept in one entry (``<name>.npy`` each), or ``compute()``'s
        mapping of them, stored before returning. The names enter the key."""
        names = tuple(names)
        if not names or any(not n.isidentifier() for n in names):
            raise ValueError(f"names must be identifiers, got {list(names)}")
        material = self._material(fingerprint, frontend, {**(extra or {}), "arrays": list(names)})
        return self._get_or_build(material, compute, names)[0]

    def _get_or_build(self, material: dict, compute: Callable[[], Mapping[str, np.ndarray]],
                      names: tuple[str, ...]) -> tuple[dict[str, np.ndarray], Outcome]:
        computed: dict[str, np.ndarray] = {}

        def build(folder: Path) -> dict:
            result = compute()
            if set(result) != set(names):
                raise ValueError(f"feature computation returned arrays {sorted(result)}, expected {sorted(names)}")
            for name in names:
                computed[name] = np.ascontiguousarray(result[name])
                np.save(folder / f"{name}.npy", computed[name], allow_pickle=False)
            first = computed[names[0]]  # the single-array metadata, unchanged
            return {"shape": list(first.shape), "dtype": first.dtype.str}

        entry, outcome = self.store.get_or_build(STAGE, material, build, **self._versioning())
        self.count(outcome)
        # A build hands back what it computed; a hit reads the verified files.
        if computed:
            return computed, outcome
        return {name: _read(entry, f"{name}.npy") for name in names}, outcome


def _read(entry: Entry, name: str = FEATURES_FILE) -> np.ndarray:
    return np.load(entry.file(name), allow_pickle=False)


def feature_cache(cache: Any = None) -> FeatureCache:
    """The feature cache that ``cache`` stands for, so that callers hand one object down.

    ``None`` is the default store's; a :class:`FeatureCache` is itself; an object with a
    ``features`` feature cache (an :class:`~kws.cache.ArtifactCache`) gives that one.
    """
    if cache is None:
        return FeatureCache()
    if isinstance(cache, FeatureCache):
        return cache
    features = getattr(cache, "features", None)
    if isinstance(features, FeatureCache):
        return features
    raise TypeError(f"cache: expected an ArtifactCache, a FeatureCache or None, not {type(cache).__name__}")
