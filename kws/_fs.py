"""File-system helpers for modules that write outside the cache store: where caches live,
atomic writes (both from the storage core, :mod:`kws.store.fs`) and TOML reading."""

from __future__ import annotations

import tomllib
from pathlib import Path

from kws.store.fs import CACHE_ENV, atomic_directory, atomic_write_bytes, cache_root


def read_toml(path: Path, error: type[Exception], what: str) -> dict:
    """The TOML file at ``path``; a missing or malformed file raises ``error`` naming it."""
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


__all__ = ["CACHE_ENV", "atomic_directory", "atomic_write_bytes", "cache_root", "read_toml"]
