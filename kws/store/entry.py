"""One entry on disk, its manifest, and the verification every load goes through.

An entry is the folder ``<root>/<stage>/<key>/``: the files a build wrote plus
``manifest.json``, which records the key, stage, material, parent, versions, the build's
metadata, when and where it was built, and the size and SHA-256 of every file. An entry
is trusted only when its manifest reads, names this key and stage (and the owner's
format), and every file on disk matches it exactly: no file missing, none added, none
changed. Anything else is a *problem*, described in words for the log.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kws.store.fs import relative_files, sha256_file

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Entry:
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


def read_manifest(path: Path, stage: str, key: str,
                   format: int | None = None) -> tuple[Entry | None, str | None]:
    """The entry described by its manifest (files not checked), or ``(None, problem)``.

    ``problem`` is None when there is simply no entry. ``format`` None accepts any
    owner's format (listing and clearing look at every owner's entries).
    """
    if not path.is_dir():
        return None, None
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return None, f"{MANIFEST} is missing"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"{MANIFEST} is unreadable ({exc})"
    problem = _manifest_problem(manifest, stage, key, format)
    if problem:
        return None, problem
    return Entry(key, stage, path, manifest["metadata"], manifest), None


def _manifest_problem(manifest: Any, stage: str, key: str, format: int | None) -> str | None:
    if not isinstance(manifest, dict):
        return f"{MANIFEST} is not a JSON object"
    found = manifest.get("format")
    if format is None and (not isinstance(found, int) or isinstance(found, bool)):
        return f"{MANIFEST} has no integer 'format'"
    if format is not None and found != format:
        return f"{MANIFEST} has format {found!r}, not {format}"
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
    except (KeyError, TypeError, ValueError):
        return f"{MANIFEST} has an invalid 'created' time {manifest.get('created')!r}"
    return None


def load_verified(path: Path, stage: str, key: str, format: int | None = None) -> tuple[Entry | None, str | None]:
    """The verified entry at ``path``, or ``(None, problem)``; problem is None if absent."""
    entry, problem = read_manifest(path, stage, key, format)
    if entry is None:
        return None, problem
    problem = _files_problem(path, entry.manifest["files"])
    return (None, problem) if problem else (entry, None)


def _files_problem(path: Path, recorded: dict) -> str | None:
    try:
        on_disk = set(relative_files(path)) - {MANIFEST}
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
            if sha256_file(file) != expected["sha256"]:
                return f"{name} does not match its sha256"
        except OSError as exc:
            return f"cannot read {name} ({exc})"
    return None


def describe_files(folder: Path, stage: str) -> dict[str, dict]:
    files = {}
    for name in sorted(relative_files(folder)):
        file = folder / name
        if name == MANIFEST:
            raise ValueError(f"build for stage {stage!r} wrote {MANIFEST}: that name is reserved")
        if file.is_symlink() or not file.is_file():
            # An entry must be self-contained: a link's target can change under it.
            raise ValueError(f"build for stage {stage!r} wrote {name}, which is not a regular file")
        files[name] = {"size": file.stat().st_size, "sha256": sha256_file(file)}
    return files


def created_at(path: Path) -> datetime.datetime:
    """When the entry at ``path`` was built: its manifest's time, else the folder's mtime."""
    entry, _ = read_manifest(path, path.parent.name, path.name)
    if entry is not None:
        created = entry.created
        return created if created.tzinfo else created.replace(tzinfo=datetime.UTC)
    return datetime.datetime.fromtimestamp(path.stat().st_mtime, datetime.UTC)
