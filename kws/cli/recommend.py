"""``kws recommend``: which pathway to deploy on an NPU target, from the benchmark history.

Reads ``results/history.jsonl`` (or ``--results DIR``, ``--history FILE``), takes the
newest run of every case of one tier and data, and prints the pathway point that best
meets one objective within the limits, the runner-up, and a table of every point with
the limit that ruled it out or the point that dominates it (:mod:`kws.advisor`).
``--json`` prints the same as one JSON object. Exit status 1 when no point meets the
limits (the binding limit and the closest points are printed), 2 on an error.

Registering reads only plain data (:mod:`kws.advisor`, :mod:`kws.vela` and
:mod:`kws.matrix.history` load no numpy); the history is read in the handler.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kws.advisor import (
    FIGURES,
    LIMITS,
    OBJECTIVES,
    Assessment,
    Candidate,
    Constraints,
    Recommendation,
    display_unit,
    show,
)
from kws.cli import args
from kws.errors import KwsError
from kws.vela.targets import DEFAULT_TARGET, TARGETS

#: ``kws.matrix.grid.TIERS`` (importing that module loads numpy); tests/test_recommend.py
#: checks that the two agree.
TIERS = ("smoke", "nightly", "paper", "tradeoffs")
#: The results folder read when neither ``--results`` nor ``--history`` is given.
DEFAULT_RESULTS = Path("results")
NO_TARGET = "none"

#: Each limit's option, its validator and its help; the dest is the Constraints field.
_LIMIT_OPTIONS = {
    "max_drop_pp": ("--max-drop", "PP", args.percentage,
                    "largest accuracy drop against the baseline's int8 model, in percentage points, judged on "
                    "the upper end of the drop's 95%% interval (default 1.0)"),
    "min_accuracy_pct": ("--min-accuracy", "PCT", args.percentage,
                         "lowest deployed accuracy in percent, judged on the lower end of its 95%% interval"),
    "max_size_kb": ("--max-size-kb", "KB", args.positive_number, "largest gzip -9 size of the model, KB of 1,000 B"),
    "max_flash_kb": ("--max-flash-kb", "KB", args.positive_number, "largest flash use on the target (Vela)"),
    "max_latency_us": ("--max-latency-us", "US", args.positive_number,
                       "longest time per inference on the target (Vela)"),
    "max_sram_kb": ("--max-sram-kb", "KB", args.positive_number, "largest peak SRAM use on the target (Vela)"),
    "max_retrain_s": ("--max-retrain-s", "S", args.non_negative_number,
                      "longest fine-tuning time of the pathway, seconds (0: post-training only)"),
}
assert set(_LIMIT_OPTIONS) == set(LIMITS), "every limit of kws.advisor has an option"


def register(subparsers) -> None:
    p = subparsers.add_parser("recommend", help="which pathway to deploy, from the benchmark history")
    where = p.add_argument_group("history (default: results/history.jsonl of the current folder)")
    where.add_argument("--results", type=args.input_folder, default=None, metavar="DIR",
                       help="a results folder holding history.jsonl")
    where.add_argument("--history", type=args.input_file, default=None, metavar="FILE", help="a history file")
    p.add_argument("--tier", choices=TIERS, default="smoke", help="the tier whose runs to read (default smoke)")
    p.add_argument("--data", type=args.non_empty_name, default=None, metavar="DATA_ID",
                   help="the data id of the runs (default: the tier's only one, or that of its newest run)")
    p.add_argument("--target", choices=[*TARGETS, NO_TARGET], default=DEFAULT_TARGET,
                   help=f"the Vela target (default {DEFAULT_TARGET}); '{NO_TARGET}': no NPU, every deployed "
                        "model is a candidate and the Vela figures are left out")
    limits = p.add_argument_group("limits")
    for name, (flag, metavar, validator, text) in _LIMIT_OPTIONS.items():
        limits.add_argument(flag, dest=name, type=validator, default=getattr(Constraints(), name), metavar=metavar,
                            help=text)
    limits.add_argument("--lenient", action="store_true",
                        help="judge --max-drop and --min-accuracy on the measured value, not on the interval's end")
    minimised = [n for n, f in OBJECTIVES.items() if not f.maximise]
    maximised = [n for n, f in OBJECTIVES.items() if f.maximise]
    goal = p.add_argument_group("objective (default: minimise latency; size with --target none)")
    goal.add_argument("--minimise", choices=minimised, default=None, help="the figure to make smallest")
    goal.add_argument("--maximise", choices=maximised, default=None, help="the figure to make largest")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_recommend)


def _history_path(ns: argparse.Namespace) -> Path:
    from kws.matrix.history import HISTORY_FILE

    if ns.results is not None and ns.history is not None:
        raise KwsError("give --results or --history, not both")
    return ns.history if ns.history is not None else (ns.results or DEFAULT_RESULTS) / HISTORY_FILE


def run_recommend(ns: argparse.Namespace) -> int:
    from kws.advisor import load_history, recommend

    if ns.minimise and ns.maximise:
        raise KwsError("give --minimise or --maximise, not both")
    target = None if ns.target == NO_TARGET else ns.target
    if target is None:
        npu = [flag for name, (flag, *_) in _LIMIT_OPTIONS.items()
               if getattr(ns, name) is not None and FIGURES[LIMITS[name].figure].per_target]
        objective = ns.minimise or ns.maximise
        if objective and OBJECTIVES[objective].per_target:
            npu.insert(0, f"--minimise {objective}")
        if npu:
            raise KwsError(f"{npu[0]} is a Vela figure: it needs a --target")
    path = _history_path(ns)
    rows, skipped = load_history(path)
    for line in skipped:
        print(f"kws recommend: {line}", file=sys.stderr)
    constraints = Constraints(**{name: getattr(ns, name) for name in LIMITS}, lenient=ns.lenient)
    rec = recommend(rows, tier=ns.tier, data_id=ns.data, target=target, constraints=constraints,
                    objective=ns.minimise or ns.maximise)
    if ns.json:
        print(json.dumps({**rec.to_dict(), "history": str(path), "skipped": skipped}, indent=1))
    else:
        print(format_recommendation(rec, path))
    return 0 if rec.choice is not None else 1


# ----- text ---------------------------------------------------------------------------------


def _figures(rec: Recommendation) -> list[str]:
    """The figures shown, the objective first: the Vela ones only with a target."""
    shown = [n for n, f in FIGURES.items() if rec.target is not None or not f.per_target]
    return [rec.objective.name, *(n for n in shown if n != rec.objective.name)]


def _limit_text(rec: Recommendation) -> str:
    return "".join(f"\n  {_LIMIT_OPTIONS[limit.name][0]}: {limit.text(bound, rec.target, rec.constraints.lenient)}"
                   for limit, bound in rec.constraints.active()) or " none"


def _candidate_lines(rec: Recommendation, role: str, c: Candidate) -> list[str]:
    """Two lines: the objective, accuracy and drop; then the other figures."""
    first = list(dict.fromkeys((rec.objective.name, "accuracy", "drop")))
    rest = [n for n in _figures(rec) if n not in first]
    pathway = f"{c.pathway}, " if c.pathway != c.point else ""
    seeds = f"{c.seeds} seed{'s' * (c.seeds != 1)}"

    def figures(names: list[str]) -> str:
        return ", ".join(f"{name} {show(name, c.value(name), c.interval(name))}" for name in names)

    return [f"{role:<10} {c.point} ({pathway}{seeds}): {figures(first)}", f"{'':<10} {figures(rest)}"]


def _retrain_text(c: Candidate) -> str:
    seconds = c.value("retrain")
    if seconds is None:
        return "not recorded"
    if seconds == 0:
        return "none (no fine-tuning after the baseline)"
    over = f" (mean of {c.seeds} seeds)" if c.seeds > 1 else ""
    return f"{seconds:.1f} s of fine-tuning{over}, besides the baseline's training"


def _front_cell(a: Assessment) -> str:
    if a.candidate.unavailable:
        return "-"
    if a.on_front:
        return "on the front"
    better = ", ".join(a.dominated_by.better_on)
    return f"dominated by {a.dominated_by.by}" + (f" (better on {better})" if better else "")


def _verdict_cell(a: Assessment) -> str:
    if a.rank == 0:
        return "CHOICE"
    if a.rank == 1:
        return "runner-up"
    if a.rank is not None:
        return f"eligible, #{a.rank + 1}"
    return f"ruled out: {a.ruled_out}"


def format_table(rec: Recommendation) -> str:
    from tabulate import tabulate

    names = _figures(rec)
    headers = ["pathway point", "seeds", *(f"{n} {display_unit(n)[0]}" for n in names), "Pareto front", "verdict"]
    rows = [[a.candidate.point, a.candidate.seeds,
             *(show(n, a.candidate.value(n), a.candidate.interval(n), unit=False) for n in names),
             _front_cell(a), _verdict_cell(a)]
            for a in rec.assessments]
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def format_recommendation(rec: Recommendation, path: Path) -> str:
    n_cases = sum(a.candidate.seeds for a in rec.assessments)
    target = f"target {rec.target}" if rec.target else "no NPU target (Vela figures left out)"
    lines = [f"{path}: tier {rec.tier} on {rec.data_id}, {len(rec.assessments)} pathway points ({n_cases} cases)",
             f"For {target}: {rec.objective.direction} {rec.objective.name} ({rec.objective.label_for(rec.target)})",
             f"Limits:{_limit_text(rec)}", ""]
    if rec.choice is not None:
        lines += _candidate_lines(rec, "Choice:", rec.choice)
        if rec.runner_up is not None:
            lines += _candidate_lines(rec, "Runner-up:", rec.runner_up)
        else:
            lines.append("Runner-up: none (no other point meets the limits)")
        lines.append(f"Retraining cost of the choice: {_retrain_text(rec.choice)}.")
    else:
        lines.append("No pathway point meets the limits.")
        if rec.binding is not None:
            flag = _LIMIT_OPTIONS[rec.binding.limit][0]
            if rec.binding.admits:
                lines.append(f"Binding limit: {flag} {rec.binding.bound:g}: without it alone, "
                             f"{len(rec.binding.admits)} would qualify ({', '.join(rec.binding.admits)}).")
            else:
                lines.append(f"Binding limit: {flag} {rec.binding.bound:g} (no single limit lifted admits a point; "
                             "the closest point misses it by most).")
        for a in rec.closest:
            lines.append(f"Closest:   {a.candidate.point}: {a.ruled_out}")
    lines += ["", format_table(rec)]
    return "\n".join(lines)
