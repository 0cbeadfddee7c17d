"""``kws report``: the plots and the HTML report of a results folder, from its history.

Reads ``history.jsonl`` (and ``sessions.jsonl`` where there is one) of ``--results DIR``
(default ``results``), writes the plots to ``DIR/plots/`` (:func:`kws.plots.write_plots`)
and the page ``DIR/report.html`` (:func:`kws.html_report.write_html_report`), and prints
their paths, one a line. A missing or empty history is a one-line error naming the file.

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


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="the plots and the HTML report of a results folder, from its history")
    p.add_argument("--results", type=args.input_folder, default=None, metavar="DIR",
                   help="the results folder holding history.jsonl; plots go to DIR/plots/, the page to "
                        "DIR/report.html (default: results)")
    p.set_defaults(func=run_report)


def run_report(ns: argparse.Namespace) -> int:
    from kws.advisor import load_history
    from kws.html_report import write_html_report
    from kws.matrix.history import HISTORY_FILE, read_history, session_problem
    from kws.plots import write_plots

    results = ns.results if ns.results is not None else DEFAULT_RESULTS
    history = results / HISTORY_FILE
    if not history.exists():
        raise KwsError(f"no history at {history}: run the benchmark matrix first, or give --results DIR")
    rows, skipped = load_history(history)
    sessions = read_history(results / SESSIONS_FILE, skipped, session_problem)
    for line in skipped:
        print(f"kws report: {line}", file=sys.stderr)
    plots = write_plots(results, rows, sessions)
    page = write_html_report(results, rows, sessions, plots=plots)
    for path in (*plots, page):
        print(path)
    return 0
