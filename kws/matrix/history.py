"""``results/history.jsonl``: one line per case per run, and the regression gate that
compares each new line with the median of its configuration's earlier lines."""

from __future__ import annotations

import datetime
import json
import logging
import platform
import statistics
import subprocess
from pathlib import Path

from kws._fs import atomic_write_bytes
from kws.matrix.thresholds import GateLimits
from kws.metrics import Better, GateKind, gated
from kws.record import SCHEMA_VERSION

log = logging.getLogger(__name__)

HISTORY_FILE = "history.jsonl"


def git_commit(root: Path) -> dict:
    """The commit the suite runs at, and whether the tree has uncommitted changes."""
    def git(*args) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown", "dirty": bool(status) if status is not None else None}


def machine() -> dict:
    import os

    return {"node": platform.node(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "python": platform.python_version(), "system": platform.system()}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def row_problem(row) -> str | None:
    """Why ``row`` is not a history row this version reads, or ``None``. Rows without a
    ``schema`` key are the earlier untyped layout, which kept these same fields."""
    if not isinstance(row, dict):
        return f"a row is a JSON object, got {type(row).__name__}"
    schema = row.get("schema", 1)
    if schema not in (1, SCHEMA_VERSION):
        return f"schema {schema!r} (this version reads 1 and {SCHEMA_VERSION})"
    for key, kind in (("case", str), ("tier", str), ("config_key", str), ("metrics", dict)):
        if not isinstance(row.get(key), kind):
            return f"{key!r} missing or not a {kind.__name__}"
    return None


def session_problem(row) -> str | None:
    """Why ``row`` is not a line of ``sessions.jsonl``, or ``None``."""
    if not isinstance(row, dict):
        return f"a session line is a JSON object, got {type(row).__name__}"
    for key, kind in (("time", str), ("tier", str), ("data_id", str), ("cases", int), ("warm", bool),
                      ("wall_s", (int, float))):
        if not isinstance(row.get(key), kind):
            return f"{key!r} missing or of the wrong type"
    return None


def read_history(path: Path, problems: list[str] | None = None, problem=row_problem) -> list[dict]:
    """Every row of the history; a damaged line (a run killed mid-write before writes
    were atomic, a hand edit) or one that is not a row is left out, and the rest is
    still read. Each one left out is reported with its file and line number: appended to
    ``problems`` when given (the session prints them once), else logged. ``problem``:
    what makes a line not a row (:func:`session_problem` for the sessions file)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            message = f"{path}:{number}: unreadable history line skipped ({exc})"
        else:
            why = problem(row)
            if why is None:
                rows.append(row)
                continue
            what = "history row" if problem is row_problem else "line of this file"
            message = f"{path}:{number}: not a {what}, skipped ({why})"
        if problems is None:
            log.warning("%s", message)
        else:
            problems.append(message)
    return rows


#: Runs of one configuration (on one dataset) the history keeps: the gate's median and
#: every report read the newest; older rows move to :data:`ARCHIVE_FILE` beside it.
KEEP_RUNS = 5
#: Where rows rotated out of the history go: gzip members of JSON lines, oldest first.
ARCHIVE_FILE = "history-archive.jsonl.gz"


def append_history(path: Path, rows: list[dict]) -> None:
    """Add ``rows`` under a lock, rewriting the file atomically: concurrent sessions
    never interleave, and a crash leaves the previous file whole. Rows beyond the newest
    :data:`KEEP_RUNS` of their configuration move to the archive beside the file (written
    first: a crash between the two leaves a row in both, never in neither)."""
    import gzip

    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        old = path.read_text() if path.is_file() else ""
        # Without blanks after separators: the history is read by programs, and grows by
        # every case of every session.
        new = [json.dumps(row, sort_keys=True, default=str, separators=(",", ":")) for row in rows]
        kept, moved = rotate([*old.splitlines(), *new])
        if moved:
            archive = path.with_name(ARCHIVE_FILE)
            earlier = archive.read_bytes() if archive.is_file() else b""
            member = gzip.compress("".join(line + "\n" for line in moved).encode(), mtime=0)
            atomic_write_bytes(archive, earlier + member)
        atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())


def rotate(lines: list[str], keep: int | None = None) -> tuple[list[str], list[str]]:
    """``(kept, moved)``: the newest ``keep`` (default :data:`KEEP_RUNS`) lines of each
    (configuration, dataset), in their order, and the older ones. A line that is not a
    row with a configuration key (a sessions line, a damaged one) is kept."""
    keep = KEEP_RUNS if keep is None else keep
    seen: dict[tuple, int] = {}
    newest_first = []
    for line in reversed(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        key = (row.get("config_key"), row.get("data_id")) if isinstance(row, dict) else None
        if key is None or key[0] is None:
            newest_first.append((line, True))
            continue
        seen[key] = seen.get(key, 0) + 1
        newest_first.append((line, seen[key] <= keep))
    ordered = newest_first[::-1]
    return [line for line, kept in ordered if kept], [line for line, kept in ordered if not kept]


# ----- the gate -------------------------------------------------------------------------


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def gate(rows: list[dict], earlier: list[dict], limits: GateLimits) -> list[str]:
    """Messages for every row that regressed against the median of the earlier rows with
    its configuration key, for each gated metric of :mod:`kws.metrics` (per Vela target
    for a per-target metric)."""
    by_key: dict[str, list[dict]] = {}
    for row in earlier:
        by_key.setdefault(row.get("config_key"), []).append(row)
    messages = []
    for row in rows:
        past = by_key.get(row["config_key"], [])
        if len(past) < limits.min_history:
            continue
        for metric in gated():
            for target in _targets(row) if metric.per_target else (None,):
                message = _regression(metric, target, row, past, limits[metric.gate.key])
                if message:
                    messages.append(message)
    return messages


def with_history(rows: list[dict], earlier: list[dict], limits: GateLimits) -> int:
    """How many of ``rows`` have enough earlier runs of their configuration to be gated."""
    counts: dict[str, int] = {}
    for row in earlier:
        counts[row.get("config_key")] = counts.get(row.get("config_key"), 0) + 1
    return sum(1 for row in rows if counts.get(row["config_key"], 0) >= limits.min_history)


def check_writable(folder: Path) -> None:
    """Raise ``OSError`` (with the reason) unless the history and summary can be written
    in ``folder``: it is created if missing, and a file is created and removed in it."""
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    history = folder / HISTORY_FILE
    if history.exists() and not history.is_file():
        raise IsADirectoryError(f"{history} is a folder, not the history file")
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".kws-write-check."):
        pass


def _targets(row: dict) -> list[str]:
    return list(row["metrics"].get("vela") or {})


def _regression(metric, target, row: dict, past: list[dict], limit: float) -> str | None:
    value = metric.value(row["metrics"], target)
    median = _median(metric.value(p["metrics"], target) for p in past)
    if value is None or median is None or (metric.gate.kind is GateKind.GROWTH_PCT and median == 0):
        return None
    if metric.gate.kind is GateKind.DROP_PP:
        if metric.interval(row["metrics"]) is not None:
            return _drop_on_evidence(metric, row, past, median, limit)
        worse = 100 * (median - value if metric.better is Better.HIGHER else value - median)
        how, unit = f"{worse:.2f} pp {'below' if metric.better is Better.HIGHER else 'above'}", "pp"
    else:
        worse = 100 * (value / median - 1 if metric.better is Better.LOWER else 1 - value / median)
        how, unit = f"{worse:.1f}% {'above' if metric.better is Better.LOWER else 'below'}", "%"
    if worse <= limit:
        return None
    return (f"{row['case']}: {metric.name_for(target)} {metric.show(value)} is {how} the median of {len(past)} "
            f"earlier run(s) ({metric.show(median)}), limit {limit}{' ' if unit == 'pp' else ''}{unit}")


def _drop_on_evidence(metric, row: dict, past: list[dict], median: float, limit: float) -> str | None:
    """A fraction metric measured with intervals: flagged only when it fell by more than
    ``limit`` pp with 95% confidence. The median earlier run (the one nearest the median)
    is compared with this one by Newcombe's hybrid score interval for the difference of
    two independent proportions, from their Wilson intervals."""
    earlier = min((p for p in past if metric.value(p["metrics"]) is not None and metric.interval(p["metrics"])),
                  key=lambda p: abs(metric.value(p["metrics"]) - median), default=None)
    if earlier is None:
        return None
    p1, (l1, u1) = metric.value(earlier["metrics"]), metric.interval(earlier["metrics"])
    p2, (l2, u2) = metric.value(row["metrics"]), metric.interval(row["metrics"])
    drop = p1 - p2
    low = drop - ((p1 - l1) ** 2 + (u2 - p2) ** 2) ** 0.5
    high = drop + ((u1 - p1) ** 2 + (p2 - l2) ** 2) ** 0.5
    if 100 * low <= limit:
        return None
    return (f"{row['case']}: {metric.name_for()} {metric.show(p2)} is {100 * drop:.2f} pp "
            f"[{100 * low:.2f}, {100 * high:.2f}] below the median of {len(past)} earlier run(s) "
            f"({metric.show(p1)}), limit {limit} pp: beyond it with 95% confidence")
