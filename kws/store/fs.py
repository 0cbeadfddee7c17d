"""Where caches live, and writes that a crash or a kill can never leave half done.

A file write goes to a temporary file in the destination folder and a folder build to a
temporary sibling folder; either is renamed over the final name only once complete, so
a later run never trusts a partial result. Removal renames aside first for the same
reason: a folder is either whole under its name or gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import platformdirs

CACHE_ENV = "KWS_CACHE_DIR"


def cache_root() -> Path:
    """The cache folder: ``$KWS_CACHE_DIR`` if set, else the user's cache dir."""
    env = os.environ.get(CACHE_ENV)
    root = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("kws-pathways"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either nothing or all of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it is renamed to ``path``.

    On any error the temporary folder is removed and ``path`` is left untouched.
    ``path`` must not exist yet.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_folder(path: Path) -> None:
    """Rename ``path`` aside, then delete it, so it never appears half-deleted.

    The aside name is a hidden ``.tmp`` sibling, which no reader takes for an entry.
    """
    aside = path.with_name(f".{path.name}.removed-{uuid.uuid4().hex[:8]}.tmp")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another process removed it first
    shutil.rmtree(aside, ignore_errors=True)


def relative_files(folder: Path) -> list[str]:
    """Every file under ``folder`` as a ``/``-separated relative name."""
    return [
        (Path(dirpath) / name).relative_to(folder).as_posix()
        for dirpath, _, names in os.walk(folder)
        for name in names
    ]


def sha256_file(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def folder_size(folder: Path) -> int:
    """Bytes of every file under ``folder`` (links counted as themselves)."""
    total = 0
    for dirpath, _, names in os.walk(folder):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
