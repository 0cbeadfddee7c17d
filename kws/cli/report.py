"""``kws report``: the plots and the HTML report of a results folder, from its history.

Reads ``history.jsonl`` (and ``sessions.jsonl`` where there is one) of ``--results DIR``
(default ``results``), writes the plots to ``DIR/plots/`` (:func:`kws.plots.write_plots`)
and the page ``DIR/report.html`` (:func:`kws.html_report.write_html_report`), and prints
their paths, one a line. A missing or empty history is a one-line error naming the file.

``--case SLUG`` also draws the per-layer plots of that case's newest row
(:func:`kws.plots.write_case_plots`: its weights through the pathway and Vela per layer,
from its models in this machine's artifact cache) before anything is written, so that a
case not in the history or not in the cache stops the command with nothing changed; the
page embeds them when the case is the one recommended.

Registering loads neither numpy nor matplotlib: both are imported in the handler.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kws.cli import args
from kws.errors import KwsError

#: The results folder read without ``--results``.
DEFAULT_RESULTS = Path("results")
#: ``kws.matrix.session.SESSIONS_FILE`` (importing that module loads the pipeline);
#: tests/test_html_report.py checks that the two agree.
SESSIONS_FILE = "sessions.jsonl"
#: How many of the history's cases an unknown ``--case`` lists.
_LISTED = 12


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="the plots and the HTML report of a results folder, from its history")
    p.add_argument("--results", type=args.input_folder, default=None, metavar="DIR",
                   help="the results folder holding history.jsonl; plots go to DIR/plots/, the page to "
                        "DIR/report.html (default: results)")
    p.add_argument("--case", type=args.case_slug, default=None, metavar="SLUG",
                   help="also plot this case's weights through its pathway and Vela's cycles and MAC "
                        "utilisation per layer (its newest row; its models must be in this machine's "
                        "artifact cache): DIR/plots/case-SLUG-*.png")
    p.set_defaults(func=run_report)


def newest_row(rows: list[dict], case: str, history: Path) -> dict:
    """The newest row of ``case`` (rows are in the order they were written)."""
    for row in reversed(rows):
        if row.get("case") == case:
            return row
    cases = sorted({row["case"] for row in rows if "case" in row})
    listed = ", ".join(cases[:_LISTED]) + (f" and {len(cases) - _LISTED} more" if len(cases) > _LISTED else "")
    raise KwsError(f"--case: no case {case} in {history} (its cases: {listed or 'none'})")


def run_report(ns: argparse.Namespace) -> int:
    from kws.advisor import load_history
    from kws.html_report import write_html_report
    from kws.matrix.history import HISTORY_FILE, read_history, session_problem
    from kws.plots import write_case_plots, write_plots

    results = ns.results if ns.results is not None else DEFAULT_RESULTS
    history = results / HISTORY_FILE
    if not history.exists():
        raise KwsError(f"no history at {history}: run the benchmark matrix first, or give --results DIR")
    rows, skipped = load_history(history)
    sessions = read_history(results / SESSIONS_FILE, skipped, session_problem)
    for line in skipped:
        print(f"kws report: {line}", file=sys.stderr)
    case_plots = []
    if ns.case is not None:
        case_plots = write_case_plots(results, newest_row(rows, ns.case, history))
    plots = write_plots(results, rows, sessions)
    page = write_html_report(results, rows, sessions, plots=plots)
    for path in (*plots, *case_plots, page):
        print(path)
    return 0
