"""The content-addressed artifact cache: every expensive stage's output, built once.

Baseline training, pruning, clustering, QAT fine-tuning, TFLite conversion and Vela
compilation each store their output here, keyed by everything that determines it, so
that no process (pytest-xdist worker, second terminal, later session) waits for work
the suite already did.

Keys
    :meth:`ArtifactCache.key` is the SHA-256 of canonical JSON holding the stage name,
    the stage's own parameters (``material``: data fingerprint, front-end, model and
    training configuration, seed, ...), the parent stage's key (a stage that consumes
    another's output includes its parent's key, so a change upstream invalidates
    everything downstream), :data:`CACHE_FORMAT_VERSION` and the installed versions of
    TensorFlow, tf-keras, TFMOT and Vela. Versions are read from the installed
    distributions, so computing a key never imports TensorFlow.

Layout
    ``<root>/<stage>/<key>/`` holds the files the stage's build wrote and
    ``manifest.json`` (key, stage, material, parent, size and SHA-256 of every file,
    the build's metadata, creation time, build seconds, host, versions). Names that
    start with a dot are never entries: ``.<key>.*.tmp`` are folders being built (or
    left by a killed builder, or being removed) and ``.<key>.lock`` are the per-key
    lock files.

Writing and verification
    A build writes into a fresh temporary folder that is renamed into place only once
    the build and its manifest are complete, so an entry is either absent or whole. A
    per-key :class:`filelock.FileLock` makes concurrent processes build once: the others
    wait and then load it. Every load checks the manifest and the size and SHA-256 of
    every file; an entry that fails (truncated, edited, manifest missing) is logged,
    removed and rebuilt, never returned.

Loading returns paths, not objects
    An :class:`Artifact` names files on disk; callers deserialise a fresh model from
    them each time. No in-memory model is ever cached or handed out twice: TFMOT
    wrappers share weight variables with the model they wrap, so a shared instance
    would be silently modified by the next stage that wraps it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import enum
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np

from kws import _fs
from kws.errors import KwsError, argument_type

log = logging.getLogger(__name__)

#: Bump when the meaning or layout of entries changes: every key changes with it.
CACHE_FORMAT_VERSION = 1

MANIFEST = "manifest.json"

#: Distributions whose versions enter every key (alternatives for the same package:
#: the first one installed is used).
VERSIONED_DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "tf-keras": ("tf-keras",),
    "tensorflow-model-optimization": ("tensorflow-model-optimization",),
    "ethos-u-vela": ("ethos-u-vela",),
}

#: Temporary folders older than this are left by killed builders; clear() removes them.
STALE_TEMP_AGE = datetime.timedelta(hours=1)

_STAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY_RE = re.compile(r"[0-9a-f]{64}")


# ---------------------------------------------------------------------------------------
# Entries
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifact:
    """A verified cache entry: a folder of files plus the manifest describing them."""

    key: str
    stage: str
    path: Path
    metadata: dict = dataclasses.field(compare=False)
    manifest: dict = dataclasses.field(compare=False, repr=False)

    def file(self, name: str) -> Path:
        """The path of stored file ``name`` (relative, ``/``-separated).

        A folder the build wrote (e.g. a SavedModel) may be named too.
        """
        files = self.manifest["files"]
        if name in files or any(f.startswith(name.rstrip("/") + "/") for f in files):
            return self.path / name
        stored = ", ".join(sorted(files)) or "none"
        raise KeyError(f"{name!r} is not stored in {self.stage} entry {self.path} (stored: {stored})")

    @property
    def created(self) -> datetime.datetime:
        return datetime.datetime.fromisoformat(self.manifest["created"])

    @property
    def size(self) -> int:
        """Bytes of the stored files (the manifest excluded)."""
        return sum(f["size"] for f in self.manifest["files"].values())


# ---------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------


@functools.cache
def _distribution_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return None


def _installed_versions() -> dict[str, str | None]:
    """Versions of the packages whose behaviour determines every stage's output."""
    return {label: _distribution_version(names) for label, names in VERSIONED_DISTRIBUTIONS.items()}


def _normalise(value: Any, where: str) -> Any:
    """``value`` as plain JSON types; ``where`` names it in errors (``material['x'][0]``)."""
    # Enums first: IntEnum and StrEnum members are also ints and strs.
    if isinstance(value, enum.Enum):
        return _normalise(value.value, f"{where}.value")
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, np.generic) and not isinstance(value, (np.void, np.object_)):
        return _normalise(value.item(), where)
    if isinstance(value, PurePath):
        return value.as_posix()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Fields excluded from comparison (labels such as FrontEnd.name) do not
        # distinguish values, so they must not distinguish keys either.
        return {
            f.name: _normalise(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if f.compare
        }
    if isinstance(value, Mapping):
        return _normalise_mapping(value, where)
    if isinstance(value, (list, tuple)):
        return [_normalise(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        # Set order depends on string hashing, which differs between processes.
        items = [_normalise(item, f"{where}{{...}}") for item in value]
        return sorted(items, key=_canonical_json)
    hint = "; pass a fingerprint (e.g. its sha256) instead" if isinstance(value, np.ndarray) else ""
    raise TypeError(f"{where}: a {type(value).__name__} cannot be part of a cache key{hint}")


def _normalise_mapping(value: Mapping, where: str) -> dict:
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}; keys must be str")
        out[k] = _normalise(v, f"{where}[{k!r}]")
    return out


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _parent_key(parent: str | Artifact | None) -> str | None:
    if isinstance(parent, Artifact):
        return parent.key
    if parent is not None and not (isinstance(parent, str) and _KEY_RE.fullmatch(parent)):
        raise ValueError(f"parent={parent!r}: must be a cache key (64 hex digits) or an Artifact")
    return parent


def _check_stage(stage: str) -> str:
    if not isinstance(stage, str) or not _STAGE_RE.fullmatch(stage):
        raise ValueError(
            f"stage={stage!r}: must be 1-64 letters, digits, '_', '.' or '-', "
            "not starting with '.', '_' or '-'"
        )
    return stage


# ---------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ArtifactCache:
    """Stage outputs on disk under ``root`` (default ``cache_root()/artifacts``).

    Counters (for tests and benchmarks) count what this instance has done:
    ``hits`` lookups answered from disk, ``misses`` lookups that found nothing usable
    (for :meth:`get_or_build`, one per build), ``rebuilds`` entries found corrupt and
    replaced by :meth:`get_or_build`.
    """

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else _fs.cache_root() / "artifacts"
        self.hits = 0
        self.misses = 0
        self.rebuilds = 0

    # ----- keys -------------------------------------------------------------------

    def key(self, stage: str, material: Mapping, parent: str | Artifact | None = None) -> str:
        """Hex SHA-256 of everything that determines the stage's output."""
        return hashlib.sha256(
            _canonical_json(self._key_document(stage, material, parent)).encode()
        ).hexdigest()

    def _key_document(self, stage: str, material: Mapping, parent) -> dict:
        if not isinstance(material, Mapping):
            raise TypeError(f"material: must be a mapping, not {type(material).__name__}")
        return {
            "stage": _check_stage(stage),
            "material": _normalise(material, "material"),
            "parent": _parent_key(parent),
            "format": CACHE_FORMAT_VERSION,
            "versions": _installed_versions(),
        }

    def path_for(self, stage: str, key: str) -> Path:
        return self.root / _check_stage(stage) / key

    # ----- lookups ----------------------------------------------------------------

    def get(self, stage: str, material: Mapping, parent: str | Artifact | None = None) -> Artifact | None:
        """The verified entry, or None. Never builds, never removes anything."""
        key = self.key(stage, material, parent)
        artifact, problem = _load(self.path_for(stage, key), stage, key)
        if problem:
            log.warning("ignoring %s entry %s: %s", stage, self.path_for(stage, key), problem)
        if artifact is None:
            self.misses += 1
        else:
            self.hits += 1
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
        key = self.key(stage, material, parent)
        path = self.path_for(stage, key)
        # Entries appear only by an atomic rename of a complete folder, so reading
        # without the lock is safe; the lock only stops two processes building one key.
        artifact, _ = _load(path, stage, key)
        if artifact is None:
            with self._lock(stage, key):
                artifact, problem = _load(path, stage, key)  # another process may have built it
                if artifact is None:
                    if problem:
                        self._discard_corrupt(path, problem)
                    self.misses += 1
                    return self._build(stage, key, material, parent, build)
        self.hits += 1
        return artifact

    @contextlib.contextmanager
    def _lock(self, stage: str, key: str):
        from filelock import FileLock, Timeout

        folder = self.root / stage
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

    def _discard_corrupt(self, path: Path, problem: str) -> None:
        log.warning("cache entry %s is corrupt (%s); rebuilding it", path, problem)
        self.rebuilds += 1
        _remove_entry(path)

    def _build(self, stage, key, material, parent, build) -> Artifact:
        path = self.path_for(stage, key)
        with _fs.atomic_directory(path) as tmp:
            start = time.perf_counter()
            metadata = build(tmp)
            seconds = time.perf_counter() - start
            if metadata is not None and not isinstance(metadata, Mapping):
                raise TypeError(
                    f"build for stage {stage!r} returned a {type(metadata).__name__}; "
                    "it must return a mapping of metadata or None"
                )
            manifest = {
                "format": CACHE_FORMAT_VERSION,
                "key": key,
                "stage": stage,
                "material": _normalise(material, "material"),
                "parent": _parent_key(parent),
                "files": _describe_files(tmp, stage),
                "metadata": _normalise(dict(metadata or {}), "metadata"),
                "created": _now().isoformat(timespec="seconds"),
                "build_seconds": round(seconds, 3),
                "hostname": socket.gethostname(),
                "versions": _installed_versions(),
            }
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
        return Artifact(key, stage, path, manifest["metadata"], manifest)

    # ----- maintenance ------------------------------------------------------------

    def entries(self, *, verify: bool = False) -> list[Artifact]:
        """Every entry whose manifest reads, oldest first (all files hashed if ``verify``).

        Temporary folders and lock files are never entries.
        """
        found = []
        for path in self._entry_folders():
            stage, key = path.parent.name, path.name
            if verify:
                artifact, problem = _load(path, stage, key)
            else:
                artifact, problem = _read_manifest(path, stage, key)
            if artifact is None:
                log.warning("skipping cache entry %s: %s", path, problem)
            else:
                found.append(artifact)
        return sorted(found, key=lambda a: (a.manifest["created"], a.stage, a.key))

    def clear(self, older_than: datetime.timedelta | None = None) -> int:
        """Remove entries (all, or those created more than ``older_than`` ago).

        Also removes temporary folders older than :data:`STALE_TEMP_AGE`, left by
        builders that were killed. Returns the number of entries removed.
        """
        if older_than is not None and older_than < datetime.timedelta(0):
            raise ValueError(f"older_than={older_than}: must not be negative")
        removed = 0
        for path in self._entry_folders():
            try:
                old = older_than is None or _now() - _created(path) > older_than
            except FileNotFoundError:
                continue  # removed by another process meanwhile
            if old:
                _remove_entry(path)
                removed += 1
        self._remove_stale_temporaries()
        return removed

    def disk_usage(self) -> int:
        """Bytes of every file under the cache root (entries, temporaries, locks)."""
        return _folder_size(self.root)

    def _entry_folders(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [
            entry
            for stage in sorted(self.root.iterdir())
            if stage.is_dir() and _STAGE_RE.fullmatch(stage.name)
            for entry in sorted(stage.iterdir())
            if entry.is_dir() and _KEY_RE.fullmatch(entry.name)
        ]

    def _remove_stale_temporaries(self) -> None:
        if not self.root.is_dir():
            return
        cutoff = time.time() - STALE_TEMP_AGE.total_seconds()
        for stage in self.root.iterdir():
            if not stage.is_dir():
                continue
            for tmp in stage.glob(".*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if tmp.is_dir() and tmp.stat().st_mtime < cutoff:
                        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------
# Reading, verifying and removing entries
# ---------------------------------------------------------------------------------------


def _read_manifest(path: Path, stage: str, key: str) -> tuple[Artifact | None, str | None]:
    """The entry described by its manifest (files not checked), or ``(None, problem)``.

    ``problem`` is None when there is simply no entry.
    """
    if not path.is_dir():
        return None, None
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return None, f"{MANIFEST} is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{MANIFEST} is unreadable ({exc})"
    problem = _manifest_problem(manifest, stage, key)
    if problem:
        return None, problem
    return Artifact(key, stage, path, manifest["metadata"], manifest), None


def _manifest_problem(manifest: Any, stage: str, key: str) -> str | None:
    if not isinstance(manifest, dict):
        return f"{MANIFEST} is not a JSON object"
    if manifest.get("format") != CACHE_FORMAT_VERSION:
        return f"{MANIFEST} has format {manifest.get('format')!r}, not {CACHE_FORMAT_VERSION}"
    if manifest.get("key") != key or manifest.get("stage") != stage:
        return f"{MANIFEST} describes {manifest.get('stage')!r} {manifest.get('key')!r}"
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(f, dict) and isinstance(f.get("size"), int) and isinstance(f.get("sha256"), str)
        for f in files.values()
    ):
        return f"{MANIFEST} has no valid file list"
    if not isinstance(manifest.get("metadata"), dict):
        return f"{MANIFEST} has no 'metadata' object"
    try:
        datetime.datetime.fromisoformat(manifest["created"])
    except (TypeError, ValueError):
        return f"{MANIFEST} has an invalid 'created' time {manifest['created']!r}"
    return None


def _load(path: Path, stage: str, key: str) -> tuple[Artifact | None, str | None]:
    """The verified entry at ``path``, or ``(None, problem)``; problem is None if absent."""
    artifact, problem = _read_manifest(path, stage, key)
    if artifact is None:
        return None, problem
    problem = _files_problem(path, artifact.manifest["files"])
    return (None, problem) if problem else (artifact, None)


def _files_problem(path: Path, recorded: dict) -> str | None:
    try:
        on_disk = set(_relative_files(path)) - {MANIFEST}
    except OSError as exc:
        return f"cannot list files ({exc})"
    if on_disk != set(recorded):
        missing = sorted(set(recorded) - on_disk)
        extra = sorted(on_disk - set(recorded))
        return f"files differ from {MANIFEST} (missing {missing}, unexpected {extra})"
    for name, expected in recorded.items():
        file = path / name
        try:
            size = file.stat().st_size
            if size != expected["size"]:
                return f"{name} has {size} bytes, {MANIFEST} says {expected['size']}"
            if _sha256(file) != expected["sha256"]:
                return f"{name} does not match its sha256"
        except OSError as exc:
            return f"cannot read {name} ({exc})"
    return None


def _relative_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a ``/``-separated relative name."""
    return [
        (Path(dirpath) / name).relative_to(folder).as_posix()
        for dirpath, _, names in os.walk(folder)
        for name in names
    ]


def _describe_files(folder: Path, stage: str) -> dict[str, dict]:
    files = {}
    for name in sorted(_relative_files(folder)):
        file = folder / name
        if name == MANIFEST:
            raise ValueError(f"build for stage {stage!r} wrote {MANIFEST}: that name is reserved")
        if file.is_symlink() or not file.is_file():
            # An entry must be self-contained: a link's target can change under it.
            raise ValueError(f"build for stage {stage!r} wrote {name}, which is not a regular file")
        files[name] = {"size": file.stat().st_size, "sha256": _sha256(file)}
    return files


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _remove_entry(path: Path) -> None:
    """Rename ``path`` aside, then delete it, so it never appears half-deleted."""
    aside = path.with_name(f".{path.name}.removed-{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process removed it first
    shutil.rmtree(aside, ignore_errors=True)


def _created(path: Path) -> datetime.datetime:
    """When the entry at ``path`` was built: its manifest's time, else the folder's mtime."""
    artifact, _ = _read_manifest(path, path.parent.name, path.name)
    if artifact is not None:
        created = artifact.created
        return created if created.tzinfo else created.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)


def _folder_size(folder: Path) -> int:
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# ---------------------------------------------------------------------------------------
# Command line: kws cache ls | clear | du
# ---------------------------------------------------------------------------------------

_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_AGE_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
AGE_FORMS = "a number followed by s, m, h, d or w (e.g. 30m, 12h, 7d)"

# Material fields that name what an entry is, shown first by `kws cache ls`.
_SUMMARY_FIELDS = ("pathway", "model", "name", "arch", "architecture", "method", "frontend")
_SUMMARY_WIDTH = 48


def parse_age(text: str) -> datetime.timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"2w"`` as a timedelta."""
    match = _AGE_RE.fullmatch(text.strip().lower())
    if not match:
        raise ValueError(f"{text!r} is not an age: use {AGE_FORMS}")
    number, unit = match.groups()
    return datetime.timedelta(**{_AGE_UNITS[unit]: float(number)})


def format_age(age: datetime.timedelta) -> str:
    """The largest whole unit that expresses ``age`` exactly: 7d, 12h, 90s."""
    seconds = age.total_seconds()
    for unit in "wdhm":
        size = datetime.timedelta(**{_AGE_UNITS[unit]: 1}).total_seconds()
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def register(subparsers) -> None:
    cache = subparsers.add_parser("cache", help="list, size or clear the artifact cache")
    sub = cache.add_subparsers(dest="cache_command", required=True, metavar="COMMAND")

    ls = sub.add_parser("ls", help="every cached artifact: stage, key, size, age, material")
    ls.add_argument("--json", action="store_true", help="print one JSON list")
    ls.set_defaults(func=run_ls)

    clear = sub.add_parser("clear", help="remove cached artifacts (all, or the old ones)")
    clear.add_argument("--older-than", type=argument_type(parse_age), default=None, metavar="AGE",
                       help=f"only entries built longer ago than AGE: {AGE_FORMS}")
    clear.set_defaults(func=run_clear)

    du = sub.add_parser("du", help="disk space used, per stage")
    du.set_defaults(func=run_du)


def _cache_for_cli() -> ArtifactCache:
    try:
        return ArtifactCache()
    except OSError as exc:
        raise KwsError(f"cannot open the cache folder: {exc}") from None


def run_ls(args: argparse.Namespace) -> int:
    cache = _cache_for_cli()
    entries = cache.entries()
    if args.json:
        print(json.dumps([_entry_record(a) for a in entries], indent=1))
        return 0
    if not entries:
        print(f"no cached artifacts in {cache.root}")
        return 0
    from tabulate import tabulate

    rows = [
        [a.stage, a.key[:12], human_bytes(a.size), _local_time(a.created),
         f"{a.manifest.get('build_seconds', 0):.1f}", summarize(a.manifest.get("material", {}))]
        for a in entries
    ]
    headers = ["stage", "key", "size", "created", "build s", "material"]
    print(tabulate(rows, headers=headers, colalign=("left", "left", "right")))
    print(f"{len(entries)} entries, {human_bytes(cache.disk_usage())} in {cache.root}")
    return 0


def run_clear(args: argparse.Namespace) -> int:
    cache = _cache_for_cli()
    before = cache.disk_usage()
    removed = cache.clear(older_than=args.older_than)
    freed = before - cache.disk_usage()
    which = "" if args.older_than is None else f" older than {format_age(args.older_than)}"
    noun = "entry" if removed == 1 else "entries"
    print(f"removed {removed} {noun}{which} ({human_bytes(freed)} freed) from {cache.root}")
    return 0


def run_du(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    cache = _cache_for_cli()
    per_stage: dict[str, list[int]] = {}
    for artifact in cache.entries():
        counts = per_stage.setdefault(artifact.stage, [0, 0])
        counts[0] += 1
        counts[1] += _folder_size(artifact.path)
    rows = [[stage, n, human_bytes(size)] for stage, (n, size) in sorted(per_stage.items())]
    total = cache.disk_usage()
    other = total - sum(size for _, size in per_stage.values())
    if other:
        rows.append(["(temporary, locks)", "", human_bytes(other)])
    rows.append(["total", sum(n for n, _ in per_stage.values()), human_bytes(total)])
    print(tabulate(rows, headers=["stage", "entries", "size"], colalign=("left", "right", "right")))
    print(f"{total} bytes in {cache.root}")
    return 0


def _entry_record(artifact: Artifact) -> dict:
    m = artifact.manifest
    return {
        "stage": artifact.stage,
        "key": artifact.key,
        "path": str(artifact.path),
        "size": artifact.size,
        "created": m["created"],
        "build_seconds": m.get("build_seconds"),
        "parent": m.get("parent"),
        "material": m.get("material"),
        "metadata": artifact.metadata,
    }


def summarize(material: Mapping) -> str:
    """A one-line description of an entry's material: naming fields first, then scalars."""
    scalars = {k: v for k, v in material.items() if isinstance(v, (str, int, float, bool))}
    ordered = [k for k in _SUMMARY_FIELDS if k in scalars] + sorted(
        k for k in scalars if k not in _SUMMARY_FIELDS
    )
    text = " ".join(f"{k}={scalars[k]}" for k in ordered)
    return text if len(text) <= _SUMMARY_WIDTH else text[: _SUMMARY_WIDTH - 3] + "..."


def human_bytes(n: int) -> str:
    if abs(n) < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if abs(size) < 1024:
            break
    return f"{size:.1f} {unit}"


def _local_time(moment: datetime.datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


__all__ = [
    "AGE_FORMS",
    "Artifact",
    "ArtifactCache",
    "CACHE_FORMAT_VERSION",
    "parse_age",
    "register",
]
