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


def read_history(path: Path) -> list[dict]:
    """Every line of the history; a damaged line (a run killed mid-write before writes
    were atomic, a hand edit) is reported with its number and skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            log.warning("%s:%d: unreadable history line skipped (%s)", path, number, exc)
    return rows


def append_history(path: Path, rows: list[dict]) -> None:
    """Add ``rows`` under a lock, rewriting the file atomically: concurrent sessions
    never interleave, and a crash leaves the previous file whole."""
    from filelock import FileLock

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        old = path.read_bytes() if path.is_file() else b""
        if old and not old.endswith(b"\n"):
            old += b"\n"
        new = "".join(json.dumps(row, sort_keys=True, default=str) + "\n" for row in rows)
        atomic_write_bytes(path, old + new.encode())


# ----- the gate -------------------------------------------------------------------------


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def gate(rows: list[dict], earlier: list[dict], limits: GateLimits) -> list[str]:
    """Messages for every row that regressed against the median of the earlier rows with
    its configuration key: accuracy drop, gzip-size growth, Vela latency growth."""
    by_key: dict[str, list[dict]] = {}
    for row in earlier:
        by_key.setdefault(row.get("config_key"), []).append(row)
    messages = []
    for row in rows:
        past = by_key.get(row["config_key"], [])
        if len(past) < limits.min_history:
            continue
        messages += _regressions(row, past, limits)
    return messages


def _regressions(row: dict, past: list[dict], limits: GateLimits) -> list[str]:
    m, case, n = row["metrics"], row["case"], len(past)
    out = []
    acc = _median(p["metrics"].get("deployed_accuracy") for p in past)
    if acc is not None and m.get("deployed_accuracy") is not None:
        drop = 100 * (acc - m["deployed_accuracy"])
        if drop > limits.accuracy_drop_pp:
            out.append(f"{case}: int8 accuracy {100 * m['deployed_accuracy']:.2f}% is {drop:.2f} pp below "
                       f"the median of {n} earlier run(s) ({100 * acc:.2f}%), limit {limits.accuracy_drop_pp} pp")
    size = _median(p["metrics"].get("gzip_bytes") for p in past)
    if size and m.get("gzip_bytes") is not None:
        growth = 100 * (m["gzip_bytes"] / size - 1)
        if growth > limits.size_growth_pct:
            out.append(f"{case}: gzip size {m['gzip_bytes']:,} B is {growth:.1f}% above the median of "
                       f"{n} earlier run(s) ({size:,.0f} B), limit {limits.size_growth_pct}%")
    for target, vela in (m.get("vela") or {}).items():
        us = _median((p["metrics"].get("vela") or {}).get(target, {}).get("inference_us") for p in past)
        if us and vela.get("inference_us") is not None:
            growth = 100 * (vela["inference_us"] / us - 1)
            if growth > limits.latency_growth_pct:
                out.append(f"{case}: Vela {target} latency {vela['inference_us']:.2f} us is {growth:.1f}% above "
                           f"the median of {n} earlier run(s) ({us:.2f} us), limit {limits.latency_growth_pct}%")
    return out
