"""``kws cache ls | clear | du``: list, measure and clear the cache store.

Every entry in the store is listed, artifacts and features alike, since ``clear``
removes them alike; so are the folders that hold no usable entry but take space: an
entry whose manifest does not read (a ``corrupt`` row) and a build still in progress or
left by a killed builder (an ``incomplete build`` row, ``(stale)`` when its builder is
gone). ``clear`` removes both kinds of leftovers. The cache itself is imported inside the
handlers, so that building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from kws.errors import KwsError, argument_type

if TYPE_CHECKING:
    from kws.cache import Artifact, ArtifactCache
    from kws.store import Broken, Temporary

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
    from kws.cache import ArtifactCache

    try:
        return ArtifactCache()
    except OSError as exc:
        raise KwsError(f"cannot open the cache folder: {exc}") from None


def run_ls(args: argparse.Namespace) -> int:
    cache = _cache_for_cli()
    entries, broken = cache.scan()
    temporaries = cache.temporaries()
    if args.json:
        records = [_entry_record(a) for a in entries] + [_broken_record(b) for b in broken]
        print(json.dumps(records + [_temporary_record(t) for t in temporaries], indent=1))
        return 0
    if not (entries or broken or temporaries):
        print(f"no cached artifacts in {cache.root}")
        return 0
    from tabulate import tabulate

    rows = [
        [a.stage, a.key[:12], human_bytes(a.size), _local_time(a.created),
         f"{a.manifest.get('build_seconds', 0):.1f}", summarize(a.manifest.get("material", {}))]
        for a in entries
    ]
    rows += [[b.stage, b.key[:12], human_bytes(b.size), "-", "-", f"corrupt: {b.problem}"] for b in broken]
    rows += [[t.stage, t.path.name[:12], human_bytes(t.size), "-", "-", _temporary_text(t)] for t in temporaries]
    headers = ["stage", "key", "size", "created", "build s", "material"]
    print(tabulate(rows, headers=headers, colalign=("left", "left", "right")))
    extra = "".join(
        f", {n} {what}" for n, what in ((len(broken), "corrupt"), (len(temporaries), "incomplete")) if n
    )
    print(f"{len(entries)} entries{extra}, {human_bytes(cache.disk_usage())} in {cache.root}")
    if broken or any(t.stale for t in temporaries):
        print("`kws cache clear` removes the corrupt entries and stale incomplete builds")
    return 0


def _temporary_text(t: Temporary) -> str:
    return "incomplete build (stale)" if t.stale else "incomplete build (in progress)"


def run_clear(args: argparse.Namespace) -> int:
    cache = _cache_for_cli()
    before = cache.disk_usage()
    stale = sum(t.stale for t in cache.temporaries())
    removed = cache.clear(older_than=args.older_than)
    stale -= sum(t.stale for t in cache.temporaries())
    freed = before - cache.disk_usage()
    which = "" if args.older_than is None else f" older than {format_age(args.older_than)}"
    noun = "entry" if removed == 1 else "entries"
    builds = f" and {stale} stale incomplete build{'s' * (stale != 1)}" if stale else ""
    print(f"removed {removed} {noun}{which}{builds} ({human_bytes(freed)} freed) from {cache.root}")
    return 0


def run_du(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from kws.store import folder_size

    cache = _cache_for_cli()
    per_stage: dict[str, list[int]] = {}
    entries, broken = cache.scan()
    for artifact in entries:
        counts = per_stage.setdefault(artifact.stage, [0, 0])
        counts[0] += 1
        counts[1] += folder_size(artifact.path)
    rows = [[stage, n, human_bytes(size)] for stage, (n, size) in sorted(per_stage.items())]
    total = cache.disk_usage()
    other = total - sum(size for _, size in per_stage.values())
    temporaries = cache.temporaries()
    groups = (("corrupt entries", broken),
              ("incomplete builds (stale)", [t for t in temporaries if t.stale]),
              ("incomplete builds (in progress)", [t for t in temporaries if not t.stale]))
    for label, group in groups:
        if group:
            size = sum(g.size for g in group)
            rows.append([label, len(group), human_bytes(size)])
            other -= size
    if other:
        rows.append(["(locks)", "", human_bytes(other)])
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
        "status": "ok",
    }


def _broken_record(broken: Broken) -> dict:
    return {"stage": broken.stage, "key": broken.key, "path": str(broken.path), "size": broken.size,
            "status": "corrupt", "problem": broken.problem}


def _temporary_record(tmp: Temporary) -> dict:
    return {"stage": tmp.stage, "key": None, "path": str(tmp.path), "size": tmp.size,
            "status": "incomplete (stale)" if tmp.stale else "incomplete (in progress)"}


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
    for unit in ("KB", "MB"):
        size /= 1024
        if abs(size) < 1024:
            return f"{size:.1f} {unit}"
    return f"{size / 1024:.1f} GB"


def _local_time(moment: datetime.datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")
