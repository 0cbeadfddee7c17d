"""Cache keys: the SHA-256 of canonical JSON naming everything that determines an entry.

A key document holds the stage, its ``material`` (the stage's own parameters), the
parent entry's key (so that a change upstream changes every key downstream), the
owner's format version and the installed versions of the distributions whose behaviour
the entry depends on. Versions are read from the installed distributions' metadata, so
computing a key never imports the packages themselves (TensorFlow takes seconds).

Values are normalised to plain JSON first, so that a tuple and a list, a ``Path`` and
its string, a numpy scalar and its Python value, or two orders of a set give one key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import hashlib
import importlib.metadata
import json
import re
import sys
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

STAGE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KEY_RE = re.compile(r"[0-9a-f]{64}")


@functools.cache
def _distribution_version(names: tuple[str, ...]) -> str | None:
    for name in names:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(name)
    return None


def installed_versions(distributions: Mapping[str, tuple[str, ...]]) -> dict[str, str | None]:
    """``label -> version`` for each distribution (alternatives for one package, e.g.
    ``tensorflow`` / ``tensorflow-cpu``: the first one installed); None if none is."""
    return {label: _distribution_version(tuple(names)) for label, names in distributions.items()}


def key_document(
    stage: str,
    material: Mapping,
    parent: str | None,
    *,
    format: int,
    versions: Mapping[str, str | None],
) -> dict:
    """The normalised document whose digest is the key (the manifest repeats its parts)."""
    if not isinstance(material, Mapping):
        raise TypeError(f"material: must be a mapping, not {type(material).__name__}")
    return {
        "stage": check_stage(stage),
        "material": normalise(material, "material"),
        "parent": check_parent(parent),
        "format": format,
        "versions": dict(versions),
    }


def digest(document: Any) -> str:
    """Hex SHA-256 of ``document`` as canonical JSON."""
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def check_stage(stage: str) -> str:
    # The stage names a folder: nothing that could escape the root or hide the folder.
    if not isinstance(stage, str) or not STAGE_RE.fullmatch(stage):
        raise ValueError(
            f"stage={stage!r}: must be 1-64 letters, digits, '_', '.' or '-', "
            "not starting with '.', '_' or '-'"
        )
    return stage


def check_parent(parent: str | None) -> str | None:
    if parent is not None and not (isinstance(parent, str) and KEY_RE.fullmatch(parent)):
        raise ValueError(f"parent={parent!r}: must be a cache key (64 hex digits) or an Artifact")
    return parent


def normalise(value: Any, where: str) -> Any:
    """``value`` as plain JSON types; ``where`` names it in errors (``material['x'][0]``)."""
    # Enums first: IntEnum and StrEnum members are also ints and strs.
    if isinstance(value, enum.Enum):
        return normalise(value.value, f"{where}.value")
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    # A numpy value can only exist once numpy is imported, so keys need not import it.
    np = sys.modules.get("numpy")
    if np is not None and isinstance(value, np.generic) and not isinstance(value, (np.void, np.object_)):
        return normalise(value.item(), where)
    if isinstance(value, PurePath):
        return value.as_posix()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Fields excluded from comparison (labels such as FrontEnd.name) do not
        # distinguish values, so they must not distinguish keys either.
        return {
            f.name: normalise(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
            if f.compare
        }
    if isinstance(value, Mapping):
        return _normalise_mapping(value, where)
    if isinstance(value, (list, tuple)):
        return [normalise(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        # Set order depends on string hashing, which differs between processes.
        items = [normalise(item, f"{where}{{...}}") for item in value]
        return sorted(items, key=canonical_json)
    is_array = np is not None and isinstance(value, np.ndarray)
    hint = "; pass a fingerprint (e.g. its sha256) instead" if is_array else ""
    raise TypeError(f"{where}: a {type(value).__name__} cannot be part of a cache key{hint}")


def _normalise_mapping(value: Mapping, where: str) -> dict:
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise TypeError(f"{where}: key {k!r} is a {type(k).__name__}; keys must be str")
        out[k] = normalise(v, f"{where}[{k!r}]")
    return out


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
