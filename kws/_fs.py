"""File-system helpers shared by every cache: where caches live and atomic writes.

A write goes to a temporary file in the destination folder and is renamed over the
final name only once complete, so a crash or a kill never leaves a half-written file
under a name that a later run trusts.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
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


def atomic_save_npz(path: Path, **arrays: np.ndarray) -> None:
    """``np.savez`` made atomic (the archive is built in memory, then renamed in place)."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


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


def read_toml(path: Path, error: type[Exception], what: str) -> dict:
    """The TOML file at ``path``; a missing or malformed file raises ``error`` naming it."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
