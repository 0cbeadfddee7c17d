"""The storage core under every cache of the project: one copy of the mechanics.

The artifact cache (:mod:`kws.cache`: trained, pruned, converted, compiled models) and
the feature cache (:mod:`kws.features.cache`: MFCC arrays) store their outputs as
entries of one :class:`Store`, so that building once, locking, atomic writes, checksum
verification and versioned keys behave, and are tested, the same for both.

- :mod:`kws.store.fs`: where caches live (``$KWS_CACHE_DIR``) and atomic writes of files
  and whole folders.
- :mod:`kws.store.keys`: keys as digests of normalised key documents, including the
  owner's format version and the installed versions of the packages it depends on.
- :mod:`kws.store.entry`: an entry's manifest and the verification of every load.
- :mod:`kws.store.store`: the :class:`Store` (per-key locks, build once, discard and
  rebuild corrupt entries, list, clear, measure) and the :class:`Counters` its owners keep.

Nothing here imports numpy or TensorFlow, so the command line can use it cheaply.
"""

from pathlib import Path

from kws.store.entry import MANIFEST, Entry
from kws.store.fs import (
    CACHE_ENV,
    atomic_directory,
    atomic_write_bytes,
    cache_root,
    folder_size,
    is_stale,
    remove_folder,
    remove_stale_siblings,
    sha256_file,
)
from kws.store.keys import canonical_json, digest, installed_versions, key_document, normalise
from kws.store.store import STALE_TEMP_AGE, Broken, Counters, Outcome, Store, Temporary

#: The sub-folder of :func:`cache_root` that holds the shared store.
STORE_FOLDER = "artifacts"


def default_root() -> Path:
    """The shared store's root: ``cache_root()/artifacts`` (every cache's default)."""
    return cache_root() / STORE_FOLDER


__all__ = [
    "CACHE_ENV",
    "MANIFEST",
    "STALE_TEMP_AGE",
    "STORE_FOLDER",
    "Broken",
    "Counters",
    "Entry",
    "Outcome",
    "Store",
    "Temporary",
    "atomic_directory",
    "atomic_write_bytes",
    "cache_root",
    "canonical_json",
    "default_root",
    "digest",
    "folder_size",
    "installed_versions",
    "is_stale",
    "key_document",
    "normalise",
    "remove_folder",
    "remove_stale_siblings",
    "sha256_file",
]
