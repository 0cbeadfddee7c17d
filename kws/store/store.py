"""Content-addressed entries on disk: built once, locked per key, verified on every load.

Layout
    ``<root>/<stage>/<key>/`` holds the files a build wrote and ``manifest.json`` (see
    :mod:`kws.store.entry`). Names that start with a dot are never entries:
    ``.<key>.*.tmp`` are folders being built (or left by a killed builder, or being
    removed) and ``.<key>.lock`` are the per-key lock files. A temporary folder's name
    records its creator, so one left by a killed builder is known as stale
    (:func:`kws.store.fs.is_stale`): the next build of that key, and :meth:`Store.clear`,
    remove it, and :meth:`Store.temporaries` lists it so that ``kws cache ls`` and
    ``du`` can show the space it holds.

Writing
    A build writes into a fresh temporary folder that is renamed into place only once the
    build and its manifest are complete, so an entry is either absent or whole. A per-key
    :class:`filelock.FileLock` makes concurrent processes (and threads) build once: the
    others wait and then load the entry.

Verification
    Every load checks the manifest and the size and SHA-256 of every file. An entry that
    fails (truncated, edited, manifest missing, another key's entry) is never returned:
    :meth:`Store.get_or_build` logs it, removes it and builds it again.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import json
import logging
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kws.store.entry import MANIFEST, Entry, created_at, describe_files, load_verified, read_manifest
from kws.store.fs import STALE_TEMP_AGE, atomic_directory, folder_size, is_stale, remove_folder, temporaries
from kws.store.keys import KEY_RE, STAGE_RE, check_stage, digest, key_document, normalise

log = logging.getLogger(__name__)

__all__ = ["STALE_TEMP_AGE", "Broken", "Counters", "Outcome", "Store", "Temporary"]


@dataclass(frozen=True)
class Broken:
    """An entry folder whose manifest does not read: never loaded, but listed and cleared."""

    stage: str
    key: str
    path: Path
    problem: str
    size: int


@dataclass(frozen=True)
class Temporary:
    """A folder being built or removed, or left by a builder that was killed (``stale``)."""

    stage: str
    path: Path
    size: int
    stale: bool


class Outcome(enum.Enum):
    """How a lookup was answered."""

    HIT = "hit"  # a verified entry was on disk
    MISS = "miss"  # nothing usable was on disk and nothing was built
    BUILT = "built"  # nothing was on disk: built now
    REBUILT = "rebuilt"  # a corrupt entry was on disk: removed and built again


class Counters:
    """What one cache object has done, for tests and benchmarks: ``hits`` lookups
    answered from disk, ``misses`` lookups that found nothing usable (one per build),
    ``rebuilds`` corrupt entries replaced."""

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.rebuilds = 0

    def count(self, outcome: Outcome) -> None:
        if outcome is Outcome.HIT:
            self.hits += 1
        else:
            self.misses += 1
        if outcome is Outcome.REBUILT:
            self.rebuilds += 1


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Store:
    """Entries under ``root``, keyed by :func:`kws.store.keys.key_document`.

    Owners (the artifact cache, the feature cache) name their stage, material and
    parent, and pass their own ``format`` version and installed ``versions``; both enter
    the key and the manifest, so several owners share one root without ever mistaking
    one another's entries.
    """

    def __init__(self, root: Path):
        self.root = Path(root)

    def key(self, stage: str, material: Mapping, parent: str | Entry | None = None, *,
            format: int, versions: Mapping[str, str | None]) -> str:
        """Hex SHA-256 of everything that determines the entry."""
        return digest(key_document(stage, material, _parent_key(parent), format=format, versions=versions))

    def path_for(self, stage: str, key: str) -> Path:
        return self.root / check_stage(stage) / key

    def get(self, stage: str, material: Mapping, parent: str | Entry | None = None, *,
            format: int, versions: Mapping[str, str | None]) -> Entry | None:
        """The verified entry, or None. Never builds, never removes anything."""
        key = self.key(stage, material, parent, format=format, versions=versions)
        path = self.path_for(stage, key)
        entry, problem = load_verified(path, stage, key, format)
        if problem:
            log.warning("ignoring %s entry %s: %s", stage, path, problem)
        return entry

    def get_or_build(
        self,
        stage: str,
        material: Mapping,
        build: Callable[[Path], Mapping | None],
        *,
        parent: str | Entry | None = None,
        format: int,
        versions: Mapping[str, str | None],
    ) -> tuple[Entry, Outcome]:
        """The verified entry and how it was found; on a miss ``build(folder)`` makes it.

        ``build`` writes its files into ``folder`` (fresh and empty) and returns
        JSON-serialisable metadata or None. If it raises, nothing is stored and the
        exception propagates unchanged.
        """
        document = key_document(stage, material, _parent_key(parent), format=format, versions=versions)
        key = digest(document)
        path = self.path_for(stage, key)
        # Entries appear only by an atomic rename of a complete folder, so reading
        # without the lock is safe; the lock only stops two processes building one key.
        entry, _ = load_verified(path, stage, key, format)
        if entry is not None:
            return entry, Outcome.HIT
        with self.lock(stage, key):
            entry, problem = load_verified(path, stage, key, format)  # another process may have built it
            if entry is not None:
                return entry, Outcome.HIT
            outcome = Outcome.BUILT
            if problem:
                # Removed before building: a bad entry must not survive a failed build.
                log.warning("cache entry %s is corrupt (%s); rebuilding it", path, problem)
                remove_folder(path)
                outcome = Outcome.REBUILT
            return self._build(path, document, key, build), outcome

    @contextlib.contextmanager
    def lock(self, stage: str, key: str):
        """Hold the per-key lock of ``stage`` entry ``key`` (waiting for its holder)."""
        from filelock import FileLock, Timeout

        folder = self.root / check_stage(stage)
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(folder / f".{key}.lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("waiting for another process to finish building %s %s", stage, key[:12])
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def _build(self, path: Path, document: dict, key: str, build) -> Entry:
        stage = document["stage"]
        with atomic_directory(path) as tmp:
            start = time.perf_counter()
            metadata = build(tmp)
            seconds = time.perf_counter() - start
            if metadata is not None and not isinstance(metadata, Mapping):
                raise TypeError(
                    f"build for stage {stage!r} returned a {type(metadata).__name__}; "
                    "it must return a mapping of metadata or None"
                )
            manifest = {
                "format": document["format"],
                "key": key,
                "stage": stage,
                "material": document["material"],
                "parent": document["parent"],
                "files": describe_files(tmp, stage),
                "metadata": normalise(dict(metadata or {}), "metadata"),
                "created": _now().isoformat(timespec="seconds"),
                "build_seconds": round(seconds, 3),
                "hostname": socket.gethostname(),
                "versions": document["versions"],
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        log.info("built %s %s in %.1f s", stage, key[:12], seconds)
        return Entry(key, stage, path, manifest["metadata"], manifest)

    # ----- maintenance ------------------------------------------------------------

    def entries(self, *, verify: bool = False) -> list[Entry]:
        """Every entry of every owner whose manifest reads, oldest first (all files
        hashed if ``verify``). Temporary folders and lock files are never entries;
        :meth:`broken` lists the folders left out."""
        return self.scan(verify=verify)[0]

    def broken(self, *, verify: bool = False) -> list[Broken]:
        """Entry folders that :meth:`entries` leaves out, with the reason."""
        return self.scan(verify=verify)[1]

    def scan(self, *, verify: bool = False) -> tuple[list[Entry], list[Broken]]:
        """:meth:`entries` and :meth:`broken` from one pass over the store, so that a
        listing reports each bad entry once, as a row, instead of also logging it."""
        found, broken = [], []
        for path in self._entry_folders():
            stage, key = path.parent.name, path.name
            entry, problem = load_verified(path, stage, key) if verify else read_manifest(path, stage, key)
            if entry is not None:
                found.append(entry)
            elif problem is not None:  # None: removed by another process meanwhile
                broken.append(Broken(stage, key, path, problem, folder_size(path)))
        return sorted(found, key=lambda e: (e.manifest["created"], e.stage, e.key)), broken

    def temporaries(self) -> list[Temporary]:
        """Every temporary folder in the store, stale or in progress."""
        if not self.root.is_dir():
            return []
        return [
            Temporary(stage.name, tmp, folder_size(tmp), is_stale(tmp))
            for stage in sorted(self.root.iterdir()) if stage.is_dir()
            for tmp in temporaries(stage)
        ]

    def clear(self, older_than: datetime.timedelta | None = None) -> int:
        """Remove entries (all, or those created more than ``older_than`` ago).

        Also removes the stale temporary folders (:meth:`temporaries`), left by builders
        that were killed, whatever ``older_than``: they hold no entry anyone can load.
        Folders still being built are kept. Returns the number of entries removed.
        """
        if older_than is not None and older_than < datetime.timedelta(0):
            raise ValueError(f"older_than={older_than}: must not be negative")
        removed = 0
        for path in self._entry_folders():
            try:
                old = older_than is None or _now() - created_at(path) > older_than
            except FileNotFoundError:
                continue  # removed by another process meanwhile
            if old:
                remove_folder(path)
                removed += 1
        self._remove_stale_temporaries()
        return removed

    def disk_usage(self) -> int:
        """Bytes of every file under the root (entries, temporaries, locks)."""
        return folder_size(self.root)

    def _entry_folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [
            entry
            for stage in sorted(self.root.iterdir())
            if stage.is_dir() and STAGE_RE.fullmatch(stage.name)
            for entry in sorted(stage.iterdir())
            if entry.is_dir() and KEY_RE.fullmatch(entry.name)
        ]

    def _remove_stale_temporaries(self) -> None:
        for tmp in self.temporaries():
            if tmp.stale:
                shutil.rmtree(tmp.path, ignore_errors=True)


def _parent_key(parent: str | Entry | None) -> str | None:
    return parent.key if isinstance(parent, Entry) else parent
