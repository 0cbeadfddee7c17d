"""``kws search``: find the pathway and hyperparameters for a target (multi-objective,
Bayesian, :mod:`kws.search`); ``kws search promote`` makes the best trials grid points;
``kws search show`` prints a study's front.

    kws search --study u55 --pathways lfilterqat,lfilter24qat --maximise accuracy \\
        --minimise latency:ethos-u55-256 --max-drop 1.0 --trials 40 --tier nightly

Every value is checked before any training; registering loads neither TensorFlow nor
Optuna.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from kws.cli import args
from kws.errors import KwsError

#: ``kws.matrix.grid.TIERS`` without importing it (it loads numpy).
TIERS = ("smoke", "nightly", "paper", "tradeoffs")
FAMILIES = ("ptq", "qat", "prune", "cluster", "structured")


@args.argument_type
def study_name(text: str) -> str:
    """A study name: 1-64 letters, digits, ``_``, ``.``, ``-``."""
    from kws.search.storage import check_study_name

    return check_study_name(text)


@args.argument_type
def goal_spec(text: str) -> str:
    """An objective: a figure or metric, with ``:TARGET`` where it is per Vela target."""
    from kws.search.objectives import parse_goal
    from kws.vela import DEFAULT_TARGET

    parse_goal(text, option="", targets=(DEFAULT_TARGET,))
    return text


@args.argument_type
def constraint_spec(text: str) -> str:
    """``NAME[:TARGET]<=VALUE`` or ``>=VALUE``."""
    from kws.search.objectives import parse_constraint
    from kws.vela import DEFAULT_TARGET

    parse_constraint(text, targets=(DEFAULT_TARGET,), option="")
    return text


@args.argument_type
def pathway_list(text: str) -> tuple[str, ...]:
    """Comma-separated pathway names (``kws pathways``)."""
    from kws.pathways.registry import PATHWAYS

    names = args.comma_list(text)
    unknown = [name for name in names if name not in PATHWAYS]
    if unknown:
        raise ValueError(f"{text!r}: unknown pathway(s) {', '.join(unknown)}; valid: {', '.join(PATHWAYS)}")
    return names


@args.argument_type
def storage_spec(text: str) -> str:
    """A database URL (``postgresql://user@host/db``) or a journal file path."""
    if not text.strip():
        raise ValueError("must be a database URL or a journal file path, got ''")
    if "://" not in text:
        path = Path(text)
        if path.is_dir():
            raise ValueError(f"{text} is a folder; give a journal file path or a database URL")
    return text


def _common(parser, *, study_positional: bool) -> None:
    if study_positional:
        parser.add_argument("study", type=study_name, help="the study's name")
    parser.add_argument("--storage", type=storage_spec, default=None,
                        help="where studies live: a database URL any Optuna RDB storage takes "
                             "(postgresql://user@host/db: many machines on one study) or a journal file "
                             "(default: results/search/STUDY.journal)")
    parser.add_argument("--results", type=args.output_folder, default=Path("results"),
                        help="the results folder: trials' history rows, the summary, the default journal")


def register(subparsers) -> None:
    search = subparsers.add_parser(
        "search", help="search pathways and hyperparameters for a target (Optuna, multi-objective)",
        description="Multi-objective Bayesian search over the deployment tree: every trial is a case of "
                    "the cached pipeline, recorded in the history. Subcommands: promote, show.")
    _common(search, study_positional=False)
    search.add_argument("--study", type=study_name, default=None, help="the study's name (required to search)")
    search.add_argument("--pathways", type=pathway_list, default=None,
                        help="comma-separated pathways to search among (default: every int8 pathway)")
    search.add_argument("--family", choices=FAMILIES, default=None, help="search the pathways of one family")
    search.add_argument("--maximise", "--maximize", type=goal_spec, action="append", default=[], metavar="NAME",
                        help="an objective to maximise, e.g. accuracy")
    search.add_argument("--minimise", "--minimize", type=goal_spec, action="append", default=[], metavar="NAME",
                        help="an objective to minimise, e.g. latency:ethos-u55-256, flash, size")
    search.add_argument("--max-drop", type=args.percentage, default=None, metavar="PP",
                        help="constraint: accuracy drop against the baseline's int8 at most PP percentage "
                             "points with 95%% confidence (the upper end of its paired interval)")
    search.add_argument("--constraint", type=constraint_spec, action="append", default=[], metavar="EXPR",
                        help="constraint NAME[:TARGET]<=VALUE or >=VALUE in the metric's unit, e.g. "
                             "'vela_sram:ethos-u55-256<=100000'")
    search.add_argument("--trials", type=args.positive_int, default=20,
                        help="trials the study holds when the search stops (all processes together)")
    search.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="tpe",
                        help="tpe (default), nsga2, or random (the baseline a search is judged against)")
    search.add_argument("--tier", choices=TIERS, default="nightly",
                        help="the grid tier whose recipe (model, front-end, epochs) every trial uses")
    search.add_argument("--grid", type=args.input_file, default=None, help="the grid file (default bench/grid.toml)")
    search.add_argument("--thresholds", type=args.input_file, default=None,
                        help="the thresholds file (default bench/thresholds.toml)")
    search.add_argument("--frontend", type=args.frontend_spec, default=None,
                        help="the front-end every trial uses, a preset or 'preset,key=value,...' (default: the "
                             "tier's); the model's input follows its features")
    search.add_argument("--model", type=args.model_source, default=None,
                        help="the model every trial compresses instead of the tier's: a trained Keras model "
                             "file (.keras, .h5) or SavedModel folder (the baseline), package.module:factory, "
                             "or a DS-CNN name; only the pathways that apply to it are searched")
    search.add_argument("--labels", type=args.label_list, default=None,
                        help="the label order (the model's output order): arm (default), mlperf, or 12 labels")
    search.add_argument("--seed", type=args.seed, default=0, help="the cases' seed and the sampler's")
    search.add_argument("--worker", type=args.non_negative_int, default=0,
                        help="this process's index among those working on one study (its sampler seed)")
    search.add_argument("--data-dir", type=args.input_folder, default=None,
                        help="Speech Commands folder (default: the synthetic default dataset)")
    search.set_defaults(func=_search)

    sub = search.add_subparsers(dest="search_command", metavar="SUBCOMMAND")
    promote = sub.add_parser("promote", help="write a study's best trials into the grid as named points")
    _common(promote, study_positional=True)
    promote.add_argument("--top", type=args.positive_int, default=3, help="how many trials to promote")
    promote.add_argument("--grid", type=args.input_file, default=None, help="the grid file (default bench/grid.toml)")
    promote.add_argument("--tier", choices=TIERS, default=None, help="the tier to add them to (default: the study's)")
    promote.add_argument("--by", type=goal_spec, default=None, metavar="OBJECTIVE",
                         help="rank the front by this objective of the study, as the study names it (default: "
                              "its first), e.g. latency:ethos-u55-256")
    promote.set_defaults(func=_promote)
    show = sub.add_parser("show", help="print a study's feasible Pareto front")
    _common(show, study_positional=True)
    show.add_argument("--json", action="store_true", help="the front as JSON")
    show.set_defaults(func=_show)
    comp = sub.add_parser("compare", help="compare studies of one question (e.g. TPE against random search): "
                                          "hypervolume, and the fastest trial within the accuracy limit on "
                                          "each target against the QAT model")
    comp.add_argument("studies", type=study_name, nargs="+", help="the studies (the first is the one judged)")
    comp.add_argument("--storage", type=storage_spec, default=None,
                      help="a database URL or journal file holding every study (default: each study's journal)")
    comp.add_argument("--results", type=args.output_folder, default=Path("results"), help="the results folder")
    comp.add_argument("--max-drop", type=args.percentage, default=1.0, metavar="PP",
                      help="the accuracy limit the fastest trial must meet with 95%% confidence (default 1.0)")
    comp.add_argument("--grid", type=args.input_file, default=None, help="the grid file (default bench/grid.toml)")
    comp.add_argument("--data-dir", type=args.input_folder, default=None,
                      help="Speech Commands folder of the studies (default: the synthetic default dataset)")
    comp.add_argument("--out", type=args.output_file, default=None,
                      help="where to write the comparison as JSON (default results/search/compare-A-B.json)")
    comp.set_defaults(func=_compare)


def _project_root(grid: Path | None) -> Path:
    return grid.resolve().parent.parent if grid else Path.cwd()


def _grid_path(grid: Path | None) -> Path:
    path = grid or Path("bench") / "grid.toml"
    if not path.is_file():
        raise KwsError(f"--grid {path}: no grid file (run from the project's folder or give --grid)")
    return path


def build_spec(ns):
    """The search as asked, every value checked before any training."""
    from kws.matrix.grid import GridError, load_grid
    from kws.pathways.registry import PATHWAYS
    from kws.search import SearchSpec
    from kws.search.objectives import drop_constraint, parse_constraint, parse_objectives
    from kws.search.study import validate
    from kws.vela import DEFAULT_TARGET

    if ns.study is None:
        raise KwsError("--study is required: the name the study is stored under")
    grid = _grid_path(ns.grid)
    try:
        tier = load_grid(grid)[ns.tier]
    except GridError as exc:
        raise KwsError(str(exc)) from None
    except KeyError:
        raise KwsError(f"--tier {ns.tier}: {grid} has no [tiers.{ns.tier}]") from None
    if ns.frontend is not None:
        from dataclasses import replace

        tier = replace(tier, frontend=ns.frontend, frontends={})
    try:
        tier = tier.with_model(ns.model, ns.labels)
        model = tier.spec(ns.seed).model
    except ValueError as exc:
        raise KwsError(f"--model: {exc}") from None
    if ns.pathways and ns.family:
        raise KwsError("give --pathways or --family, not both")
    if ns.pathways:
        pathways = ns.pathways
    elif ns.family:
        pathways = tuple(p.name for p in PATHWAYS.values() if p.family.value == ns.family)
    else:
        pathways = tuple(p.name for p in PATHWAYS.values() if p.export.value == "int8")
    targets = [DEFAULT_TARGET]
    objectives = parse_objectives(ns.maximise, ns.minimise, targets=targets)
    constraints = [parse_constraint(c, targets=targets) for c in ns.constraint]
    if ns.max_drop is not None:
        constraints.append(drop_constraint(ns.max_drop))
    if not ns.pathways and any(g.target for g in [o.goal for o in objectives] + [c.goal for c in constraints]):
        # A family or the default: the pathways with a Vela estimate (int8).
        pathways = tuple(p for p in pathways if PATHWAYS[p].export.value == "int8")
    refused = {p: reason for p in pathways if (reason := PATHWAYS[p].not_applicable(model))}
    if refused and ns.pathways:
        raise KwsError(f"--pathways: not applicable to {model.slug}: " + "; ".join(refused.values()))
    if refused:
        print(f"kws search: left out {len(refused)} pathway(s) not applicable to {model.slug}: "
              + "; ".join(refused.values()))
        pathways = tuple(p for p in pathways if p not in refused)
    if not pathways:
        raise KwsError(f"no pathway to search applies to {model.slug}")
    spec = SearchSpec(study=ns.study, pathways=pathways, objectives=tuple(objectives),
                      constraints=tuple(constraints), tier=tier, trials=ns.trials, seed=ns.seed,
                      sampler=ns.sampler, worker=ns.worker, results_dir=ns.results, storage=ns.storage,
                      data_dir=ns.data_dir, grid_path=grid, thresholds_path=ns.thresholds,
                      project_root=_project_root(ns.grid))
    validate(spec)
    return spec


def _search(ns) -> int:
    from kws.progress import enabled, progress
    from kws.search import Search
    from kws.search.storage import describe
    from kws.search.study import front_table, summary_line

    spec = build_spec(ns)
    search = Search(spec, report=lambda text: print(f"kws search: {text}", file=sys.stderr))
    where = describe(spec.storage, spec.results_dir, spec.study)
    left = search.remaining()
    print(f"kws search {spec.study}: {', '.join(o.text for o in spec.objectives)}"
          + (f"; subject to {', '.join(c.text for c in spec.constraints)}" if spec.constraints else "")
          + f"; {len(spec.pathways)} pathway(s), tier {spec.tier.name} recipe, {spec.sampler} sampler; "
            f"{spec.trials - left}/{spec.trials} trials done; study in {where}", file=sys.stderr)
    bar = progress(total=spec.trials, initial=spec.trials - left, desc=f"search {spec.study}", unit="trial")

    def shown(result, study):
        bar.n = min(spec.trials, spec.trials - search.remaining())
        bar.set_postfix_str(summary_line(study, spec.trials).split(", ", 1)[-1])
        if not enabled() and result.failure:
            print(f"kws search: trial {result.number} failed: {result.failure}", file=sys.stderr)

    try:
        search.run(progress=shown)
    finally:
        bar.close()
    _write_reports(spec)
    print(f"\nkws search {spec.study}: {summary_line(search.study, spec.trials)}")
    print(front_table(search.study))
    print(f"\ntrials recorded in {spec.results_dir / 'history.jsonl'} as search-{spec.study}-tNNNN-seed{spec.seed}; "
          f"promote the best with `kws search promote {spec.study} --top 3`; browse the study with "
          f"`optuna-dashboard {_dashboard_arg(spec.storage, where)}`")
    return 0


def _dashboard_arg(storage: str | None, where: str) -> str:
    """The storage as ``optuna-dashboard`` takes it: the journal file, or the URL with the
    driver this project installs (the password left out)."""
    if storage is None or "://" not in storage:
        return where
    scheme, rest = where.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        scheme = "postgresql+psycopg"
    return f"'{scheme}://{rest}'"


def _write_reports(spec) -> None:
    """The summary, plots and HTML report, rewritten with the trials in the history (a
    report that cannot be drawn is named; the trials are safe in the history already)."""
    from kws.matrix.history import HISTORY_FILE, read_history, session_problem
    from kws.matrix.report import write_summary
    from kws.matrix.session import SESSIONS_FILE, SUMMARY_FILE, write_report

    rows = read_history(spec.results_dir / HISTORY_FILE, [])
    sessions = read_history(spec.results_dir / SESSIONS_FILE, [], session_problem)
    write_summary(spec.results_dir / SUMMARY_FILE, rows, sessions)
    errors: list[str] = []
    write_report(spec.results_dir, rows, sessions, errors)
    for error in errors:
        print(f"kws search: {error}", file=sys.stderr)


def _promote(ns) -> int:
    from kws.search.promote import promote
    from kws.search.study import load_existing

    study = load_existing(ns.study, ns.storage, ns.results)
    grid = _grid_path(ns.grid)
    promoted, notes = promote(study, grid, top=ns.top, tier=ns.tier, by=ns.by)
    for note in notes:
        print(f"kws search promote: {note}", file=sys.stderr)
    for p in promoted:
        print(f"{p.name}: {p.slug.removesuffix('-seed0')}")
    tier = ns.tier or study.user_attrs["kws_search"]["tier"]
    print(f"{len(promoted)} point(s) of study {ns.study} written to {grid}: the matrix runs them as cases of "
          f"tier {tier}, and --kws-gate watches them")
    return 0


def _show(ns) -> int:
    from kws.search.study import front, front_table, load_existing, point_text, summary_line

    study = load_existing(ns.study, ns.storage, ns.results)
    if ns.json:
        print(json.dumps([{"trial": t.number, "point": point_text(t), "values": t.values,
                           "figures": t.user_attrs.get("figures")} for t in front(study)]))
        return 0
    print(summary_line(study, len(study.trials)))
    print(front_table(study))
    return 0


def _compare(ns) -> int:
    from tabulate import tabulate

    from kws._fs import atomic_write_bytes
    from kws.matrix.grid import load_grid
    from kws.search.compare import check_comparable, compare, references
    from kws.search.storage import SEARCH_DIR
    from kws.search.study import SPEC_ATTR, load_existing

    studies = {name: load_existing(name, ns.storage, ns.results) for name in ns.studies}
    check_comparable(studies)
    identity = next(iter(studies.values())).user_attrs[SPEC_ATTR]
    tier = load_grid(_grid_path(ns.grid))[identity["tier"]]
    targets = [t for t in dict.fromkeys(o.split(":", 1)[1] for o in identity["objectives"] if ":" in o)]
    if not targets:
        raise KwsError(f"study {ns.studies[0]} has no per-target objective to compare latencies on")
    refs = references(tier, identity["seed"], targets, ns.data_dir)
    result = compare(studies, refs, max_drop_pp=ns.max_drop)
    rows = []
    for name, entry in result["studies"].items():
        for target, t in entry["targets"].items():
            f = t["fastest"]
            rows.append([name, entry["sampler"], f"{entry['completed']}/{entry['trials']}", target,
                         f"{t['hypervolume']:.4f} / {t['hypervolume_feasible']:.4f}", t["feasible_trials"],
                         "-" if f is None else f"t{f['trial']} {f['point']}",
                         "-" if f is None else f"{f['latency_us']:.2f} us ({100 * (1 - f['latency_vs_qat']):.1f}% "
                                               f"below QAT {refs[target].qat_us:.2f})",
                         "-" if f is None else f"{f['drop_pp']:.2f} [{f['drop_interval_pp'][0]:.2f}, "
                                               f"{f['drop_interval_pp'][1]:.2f}]"])
    print(tabulate(rows, headers=["study", "sampler", "trials", "target", "hypervolume all / feasible", "feasible",
                                  f"fastest within {ns.max_drop:g} pp", "latency", "drop pp [95%]"],
                   tablefmt="github"))
    for target, ratio in (result.get("hypervolume_ratio") or {}).items():
        feasible = result["hypervolume_feasible_ratio"][target]
        print(f"hypervolume {ns.studies[0]} / {ns.studies[1]} on {target}: "
              + ("-" if ratio is None else f"{ratio:.2f}x") + " (all trials), "
              + ("- (none of the second study's trials is feasible)" if feasible is None else f"{feasible:.2f}x")
              + " (feasible trials)")
    out = ns.out or ns.results / SEARCH_DIR / f"compare-{'-'.join(ns.studies)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, (json.dumps(result, indent=1, default=str) + "\n").encode())
    print(f"comparison: {out}")
    return 0
