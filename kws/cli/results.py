"""``kws results merge``: the results folders of a sharded matrix run made one.

Each shard of ``--kws-shard K/N`` writes its own results folder. ``kws results merge
SHARD_RESULTS_DIR... --out DIR`` appends to ``DIR/history.jsonl`` every row of the
shards' histories that is not there yet (a row is its case, time, configuration key and
commit: merging twice adds nothing), and to ``DIR/sessions.jsonl`` every session line
not there yet (one with every field the same), both under the file's lock and rewritten
atomically (:func:`kws.matrix.history.append_history`); then it rewrites
``DIR/summary.md``, the plots and ``DIR/report.html`` from the whole history. Lines that
do not read are reported with their file and line number and left out.

``--gate`` then compares the rows it added with ``DIR``'s earlier history, as the
matrix's ``--kws-gate`` does (limits in ``[gate]`` of the thresholds file), and exits 1
on a regression, after every file is written. Exit 2 on an error.

Registering loads nothing heavy: the history and the report are imported in the handler.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kws.cli import args
from kws.errors import KwsError

#: ``bench/thresholds.toml`` of the project this package runs from.
DEFAULT_THRESHOLDS = Path(__file__).resolve().parents[2] / "bench" / "thresholds.toml"
#: What makes a history row the same row in two folders.
ROW_IDENTITY = ("case", "time", "config_key", "commit")


def register(subparsers) -> None:
    results = subparsers.add_parser("results", help="combine the results folders of a sharded matrix run")
    sub = results.add_subparsers(dest="results_command", required=True, metavar="COMMAND")
    merge = sub.add_parser("merge", help="merge shards' results folders into one history, summary and report",
                           description="Append the rows of each shard's history.jsonl and sessions.jsonl that "
                                       "--out does not hold yet, then rewrite its summary, plots and report.")
    merge.add_argument("folders", nargs="+", type=args.input_folder, metavar="SHARD_RESULTS_DIR",
                       help="a shard's results folder (its --kws-results), holding history.jsonl")
    merge.add_argument("--out", type=args.output_folder, required=True, metavar="DIR",
                       help="the merged results folder (created if missing; its history is kept and added to)")
    merge.add_argument("--gate", action="store_true",
                       help="fail (exit 1) when a merged row regressed against the median of its configuration's "
                            "earlier rows in --out (limits in [gate] of the thresholds file)")
    merge.add_argument("--thresholds", type=args.input_file, default=None, metavar="TOML",
                       help=f"the thresholds file of --gate (default: {DEFAULT_THRESHOLDS.parent.name}/"
                            f"{DEFAULT_THRESHOLDS.name} of this project)")
    merge.set_defaults(func=run_merge)


def row_identity(row: dict) -> tuple:
    return tuple(row.get(key) for key in ROW_IDENTITY)


def _line_identity(line: dict) -> str:
    return json.dumps(line, sort_keys=True, default=str)


def _check_histories(folders: list[Path]) -> None:
    """A folder without a history stops the command, named, before anything is written."""
    from kws.matrix.history import HISTORY_FILE

    missing = [folder for folder in folders if not (folder / HISTORY_FILE).is_file()]
    if missing:
        raise KwsError(f"{missing[0]}: no {HISTORY_FILE} in this folder (is it a shard's --kws-results folder?)")


def _gate_limits(ns: argparse.Namespace):
    from kws.matrix.thresholds import ThresholdsError, load_thresholds

    if not ns.gate:
        if ns.thresholds is not None:
            raise KwsError("--thresholds sets the limits of --gate: give --gate too")
        return None
    try:
        return load_thresholds(ns.thresholds or DEFAULT_THRESHOLDS).gate
    except ThresholdsError as exc:
        raise KwsError(f"--thresholds: {exc}") from None


def _new(lines: list[dict], seen: set, identity) -> list[dict]:
    """The lines whose identity is not in ``seen`` (which then holds them too)."""
    fresh = []
    for line in lines:
        if identity(line) not in seen:
            seen.add(identity(line))
            fresh.append(line)
    return fresh


@dataclass
class Merge:
    """What ``--out`` held, and what the shards add to it."""

    earlier: list[dict]
    earlier_sessions: list[dict]
    rows: list[dict] = field(default_factory=list)
    sessions: list[dict] = field(default_factory=list)
    counts: list[str] = field(default_factory=list)  # per folder: its rows, and how many are new


def collect(folders: list[Path], out: Path, problems: list[str]) -> Merge:
    """The rows and session lines of ``folders`` that ``out`` does not hold, each once;
    every line that does not read goes to ``problems`` with its file and number."""
    from kws.matrix.history import HISTORY_FILE, read_history, session_problem
    from kws.matrix.session import SESSIONS_FILE

    merge = Merge(read_history(out / HISTORY_FILE, problems),
                  read_history(out / SESSIONS_FILE, problems, session_problem))
    seen_rows = {row_identity(r) for r in merge.earlier}
    seen_sessions = {_line_identity(s) for s in merge.earlier_sessions}
    for folder in folders:
        theirs = read_history(folder / HISTORY_FILE, problems)
        new = _new(theirs, seen_rows, row_identity)
        merge.rows += new
        merge.sessions += _new(read_history(folder / SESSIONS_FILE, problems, session_problem), seen_sessions,
                               _line_identity)
        merge.counts.append(f"{folder}: {len(theirs)} row(s), {len(new)} new")
    return merge


def write(merge: Merge, out: Path, errors: list[str]) -> list[Path]:
    """Append the new lines, then rewrite the summary and the report of the whole
    history; the files written. A report that fails is in ``errors``, the records kept."""
    from kws.matrix.history import HISTORY_FILE, append_history
    from kws.matrix.report import write_summary
    from kws.matrix.session import SESSIONS_FILE, SUMMARY_FILE, write_report

    written = []
    for name, lines in ((HISTORY_FILE, merge.rows), (SESSIONS_FILE, merge.sessions)):
        if lines:
            append_history(out / name, lines)
            written.append(out / name)
    rows, sessions = merge.earlier + merge.rows, merge.earlier_sessions + merge.sessions
    write_summary(out / SUMMARY_FILE, rows, sessions)
    return [*written, out / SUMMARY_FILE, *write_report(out, rows, sessions, errors)]


def run_gate(merge: Merge, limits, out: Path) -> bool:
    """Print the gate's verdict on the merged rows against ``out``'s earlier history;
    whether it passed."""
    from kws.matrix.history import gate, with_history

    messages = gate(merge.rows, merge.earlier, limits)
    if messages:
        print(f"kws gate: {len(messages)} regression(s) against the earlier history of {out}")
        print("\n".join(messages))
        return False
    if not merge.rows:
        print("kws gate: no new rows to compare")
        return True
    compared = with_history(merge.rows, merge.earlier, limits)
    unknown = len(merge.rows) - compared
    print(f"kws gate: {compared} case(s) compared with their history, no regression"
          + (f"; {unknown} case(s) had no earlier run to compare with" if unknown else ""))
    return True


def run_merge(ns: argparse.Namespace) -> int:
    from kws.matrix.history import HISTORY_FILE

    _check_histories(ns.folders)
    limits = _gate_limits(ns)  # a bad thresholds file stops the command before it writes
    problems, errors = [], []
    merge = collect(ns.folders, ns.out, problems)
    for problem in problems:
        print(f"kws results: {problem}", file=sys.stderr)
    written = write(merge, ns.out, errors)
    print("\n".join(merge.counts))
    print(f"{ns.out / HISTORY_FILE}: {len(merge.rows)} row(s) and {len(merge.sessions)} session line(s) added, "
          f"{len(merge.earlier) + len(merge.rows)} row(s) in all")
    print("\n".join(map(str, written)))
    for error in errors:
        print(f"kws results: error: {error}", file=sys.stderr)
    passed = limits is None or run_gate(merge, limits, ns.out)
    return 2 if errors else 0 if passed else 1
