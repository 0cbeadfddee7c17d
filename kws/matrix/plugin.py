"""The pytest plugin of the benchmark matrix: options, markers, case generation, fixtures
and the session-end hooks. The work lives in :mod:`kws.matrix.session` and its siblings.

Loaded by the project's root ``conftest.py``; elsewhere ``-p kws.matrix.plugin``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest

from kws.cli.args import label_list, model_source
from kws.errors import argument_type
from kws.matrix.checks import CHECKS
from kws.matrix.grid import TIERS, GridError, load_grid
from kws.matrix.history import check_writable
from kws.matrix.session import MatrixSession
from kws.matrix.shard import Shard
from kws.matrix.thresholds import ThresholdsError, load_thresholds
from kws.pathways.registry import PATHWAYS
from kws.vela import DEFAULT_TARGET, parse_targets

#: The matrix estimates every int8 case on the study's NPU (the first: the checks' and the
#: end-of-run recommendation's) and on the newest, where 2:4 sparsity buys time.
MATRIX_TARGETS = (DEFAULT_TARGET, "ethos-u85-256")

FAMILIES = tuple(sorted({p.family for p in PATHWAYS.values()}))
_KEY = pytest.StashKey[MatrixSession]()


# ----- option types: parsed on input -------------------------------------------------------


def _existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return path.resolve()


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated integers expected, e.g. 0,1,2") from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds must be distinct integers >= 0")
    return seeds


@argument_type
def _targets(text: str) -> tuple[str, ...]:
    return tuple(t.name for t in parse_targets(text))


@argument_type
def _shard(text: str) -> Shard:
    return Shard.parse(text)


def pytest_addoption(parser):
    group = parser.getgroup("kws", "kws-pathways benchmark matrix")
    group.addoption("--kws-tier", choices=TIERS, default="smoke",
                    help="which tier of bench/grid.toml to run: smoke (default; synthetic data, one point "
                         "per pathway), nightly (full grid, 3 seeds, and DS-CNN-M/L for the QAT family), "
                         "tradeoffs (front-end x width x pruning x PTQ kind), paper (the study's recipe; "
                         "needs --kws-data-dir)")
    group.addoption("--kws-data-dir", type=_existing_dir, default=None, metavar="DIR",
                    help="Speech Commands folder, either layout (default: the synthetic default dataset)")
    group.addoption("--kws-eval-dir", type=_existing_dir, default=None, metavar="DIR",
                    help="also score every deployed model on this Speech Commands folder (e.g. real "
                         "speech for models trained on the synthetic default data)")
    group.addoption("--kws-seeds", type=_seeds, default=None, metavar="0,1,2",
                    help="replace the tier's seeds")
    group.addoption("--kws-vela-targets", type=_targets, default=None, metavar="T1,T2",
                    help=f"Vela targets to estimate every int8 case on (default: {','.join(MATRIX_TARGETS)}: "
                         "the study's NPU and the newest); see `kws vela --help`")
    group.addoption("--kws-gate", action="store_true", default=False,
                    help="fail the session when a case regressed against the median of its earlier "
                         "runs in the history (limits in [gate] of the thresholds file)")
    group.addoption("--kws-strict", action="store_true", default=False,
                    help="fail a check whose evidence is inconclusive (its 95%% interval straddles the "
                         "limit); without it such a check passes with a warning")
    group.addoption("--kws-grid", type=Path, default=None, metavar="TOML",
                    help="the grid file (default: bench/grid.toml)")
    group.addoption("--kws-thresholds", type=Path, default=None, metavar="TOML",
                    help="the thresholds file (default: bench/thresholds.toml)")
    group.addoption("--kws-results", type=Path, default=None, metavar="DIR",
                    help="where history.jsonl and summary.md go (default: results/)")
    group.addoption("--kws-model", type=model_source, default=None, metavar="MODEL",
                    help="run the tier on this model instead of its own: a trained Keras model file (.keras, "
                         ".h5) or SavedModel folder, which is the baseline (nothing retrains it), "
                         "package.module:factory, or a DS-CNN name; pathways it cannot take are reported "
                         "as not applicable")
    group.addoption("--kws-labels", type=label_list, default=None, metavar="L1,L2,...",
                    help="the label order (the model's output order): arm (default), mlperf, or the 12 "
                         "labels comma-separated")
    group.addoption("--kws-shard", type=_shard, default=None, metavar="K/N",
                    help="run only shard K of N (e.g. 2/4): cases that share trained stages stay on one "
                         "shard, the shards balanced by estimated training time; merge the shards' results "
                         "folders with `kws results merge`")


def pytest_configure(config):
    for family in FAMILIES:
        config.addinivalue_line("markers", f"{family}: benchmark cases of the {family} family")
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: benchmark cases of the {tier} tier")
    root = config.rootpath
    grid_path = config.getoption("kws_grid") or root / "bench" / "grid.toml"
    if config.getoption("kws_grid") is None and not grid_path.is_file():
        return  # not the project's tree (e.g. a plugin test without a grid): nothing to run
    try:
        tier = load_grid(grid_path)[config.getoption("kws_tier")]
    except GridError as exc:
        raise pytest.UsageError(str(exc)) from None
    except KeyError:
        raise pytest.UsageError(f"--kws-tier {config.getoption('kws_tier')}: {grid_path} has no "
                                f"[tiers.{config.getoption('kws_tier')}]") from None
    tier = tier.with_model(config.getoption("kws_model"), config.getoption("kws_labels"))
    try:
        thresholds = load_thresholds(config.getoption("kws_thresholds") or root / "bench" / "thresholds.toml")
    except ThresholdsError as exc:
        raise pytest.UsageError(str(exc)) from None
    data_dir = config.getoption("kws_data_dir")
    if tier.data == "required" and data_dir is None:
        raise pytest.UsageError(f"--kws-tier {tier.name} runs on real Speech Commands: give --kws-data-dir "
                                "(the synthetic default dataset is for smoke and nightly)")
    results = config.getoption("kws_results") or root / "results"
    if _runs_matrix(config):
        try:
            check_writable(results)
        except OSError as exc:
            # Refused before any training: the session's results would be lost at its end.
            raise pytest.UsageError(f"--kws-results {results}: cannot write the history there "
                                    f"({exc.strerror or exc}); give a writable folder") from None
    matrix = MatrixSession(
        tier=tier, thresholds=thresholds, results_dir=results,
        project_root=root, data_dir=data_dir, eval_dir=config.getoption("kws_eval_dir"),
        vela_targets=config.getoption("kws_vela_targets") or MATRIX_TARGETS,
        seeds=config.getoption("kws_seeds"), gate_enabled=config.getoption("kws_gate"),
        strict=config.getoption("kws_strict"), workers=_workers(config), shard=config.getoption("kws_shard"))
    config.stash[_KEY] = matrix
    config.pluginmanager.register(MatrixRecorder(config, matrix), "kws-matrix-recorder")


def _workers(config) -> int:
    """The pytest-xdist workers of this session (0 when it runs in process)."""
    try:
        return int(config.getoption("numprocesses") or 0)
    except (ValueError, TypeError):  # no xdist
        return 0


def _runs_matrix(config) -> bool:
    """Whether this session may run matrix cases (not for --help, --collect-only or
    pytest-xdist workers, whose controller checks)."""
    return not (config.getoption("collectonly") or config.getoption("help", False)
                or hasattr(config, "workerinput"))


def matrix_session(config) -> MatrixSession | None:
    return config.stash.get(_KEY, None)


# ----- cases -------------------------------------------------------------------------------


def pytest_generate_tests(metafunc):
    wants_case, wants_check = "kws_case" in metafunc.fixturenames, "kws_check" in metafunc.fixturenames
    if not (wants_case or wants_check):
        return
    session = matrix_session(metafunc.config)
    if session is None:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: no benchmark grid (bench/grid.toml or --kws-grid)")
    if wants_check:
        # One parametrised test over the (case, check) pairs that apply; ids such as
        # ``pcqat-s0.50-c32-seed0-accuracy`` work with ``-k "pcqat and accuracy"``.
        params = [pytest.param(cc, id=cc.slug, marks=_marks(cc.case, session, cc.check)) for cc in session.checks]
        metafunc.parametrize("kws_check", params)
    else:
        metafunc.parametrize("kws_case", [pytest.param(c, id=c.slug, marks=_marks(c, session)) for c in session.cases])


def _marks(case, session, check: str | None = None) -> list:
    marks = [getattr(pytest.mark, case.family), getattr(pytest.mark, case.tier),
             pytest.mark.xdist_group(case.group)]
    reason = not_applicable(case)
    yardstick = CHECKS[check].reference if check else None
    if not reason and yardstick:
        # A check judged against another pathway's case (the QAT model's Vela figures)
        # has nothing to judge against when that pathway cannot run on the model.
        missing = not_applicable(session.reference(case, yardstick))
        reason = missing and f"its yardstick {yardstick} is {missing}"
    if reason:
        marks.append(pytest.mark.skip(reason=reason))
    known = check and session.thresholds.known_failure(case.slug, check, case.tier)
    if known:
        marks.append(pytest.mark.xfail(strict=True, reason=known.reason))
    return marks


@pytest.fixture(scope="session")
def kws_session(request) -> MatrixSession:
    session = matrix_session(request.config)
    if session is None:
        pytest.skip("no benchmark grid")
    return session


@pytest.fixture
def kws_result(kws_session, kws_case):
    """The case's record: run or fetched through the artifact cache, once per process."""
    return kws_session.result(kws_case)


# ----- recording, progress and the end of the session -----------------------------------------


def _case_of(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    if "kws_case" in params:
        return params["kws_case"]
    return params["kws_check"].case if "kws_check" in params else None


class MatrixRecorder:
    """Session-level hooks: a matrix test attaches its case's history row to its report
    the first time the case has a result in that process (under pytest-xdist rows travel
    from the workers to the controller, which keeps one per case); shows the matrix
    position and ETA on a terminal; at the end writes the history and the summary and
    runs the gate, on the controller only."""

    def __init__(self, config, matrix: MatrixSession):
        self.config, self.matrix = config, matrix
        self.worker = hasattr(config, "workerinput")
        self.total, self.start = None, time.monotonic()
        self.attached: set[str] = set()
        self.written: list[Path] = []

    def pytest_report_header(self, config):
        plan = self.matrix.shard_plan
        if plan is None or self.worker:
            return None
        total = len(self.matrix.all_cases)
        return (f"kws shard {plan.shard}: {len(plan.cases)} of {total} cases ({len(plan.groups)} groups sharing "
                f"trained stages), estimated {_duration(plan.cost_s)} of training on 2 cores")

    def pytest_collection_modifyitems(self, items):
        self.total = len({case.slug for item in items if (case := _case_of(item)) is not None})

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        params = (i.rpartition("[")[2].rstrip("]") for i in ids if i.endswith("]"))
        self.total = len({self.matrix.ids[p] for p in params if p in self.matrix.ids})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        case = _case_of(item)
        if call.when != "call" or case is None or case.slug in self.attached or not self.matrix.has_result(case):
            return
        self.attached.add(case.slug)
        report.user_properties.append(("kws_row", self.matrix.row(case, self.matrix.result(case))))

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report):
        if self.worker or report.when != "call":
            return
        for name, row in report.user_properties:
            if name == "kws_row" and row["case"] not in self.matrix.rows:
                self.matrix.rows[row["case"]] = row
                self._progress(row["case"])

    def _progress(self, case: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or not _show_progress(reporter):
            return
        done, elapsed = len(self.matrix.rows), time.monotonic() - self.start
        total = self.total or "?"
        eta = (f", ETA {_duration(elapsed / done * (self.total - done))}"
               if self.total and self.total >= done else "")
        writer = getattr(reporter, "_tw", None)  # after pytest's progress dots, start a line
        if writer is not None and writer.width_of_current_line:
            writer.line()
        reporter.write_line(f"[kws] case {done}/{total} {case} done, elapsed {_duration(elapsed)}{eta}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session):
        self.matrix.close()
        if self.worker:
            return
        # Reports first, then the verdict: a failing night still leaves a complete report.
        self.written = self.matrix.finish()
        if self.matrix.gate_messages or self.matrix.save_errors:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        if self.worker:
            return
        matrix = self.matrix
        if matrix.rows:
            terminalreporter.write_sep("-", "kws benchmark matrix")
        for problem in matrix.history_problems:
            terminalreporter.write_line(f"kws: {problem}", yellow=True)
        records = [p for p in self.written if p.suffix in (".jsonl", ".md")]
        if records:
            terminalreporter.write_line(f"{len(matrix.rows)} case(s) recorded in "
                                        + ", ".join(str(p) for p in records))
        inconclusive = sorted(c for c, r in matrix.rows.items() if "inconclusive" in (r.get("verdicts") or {}).values())
        if inconclusive:
            terminalreporter.write_line(
                f"kws: {len(inconclusive)} case(s) inconclusive against their accuracy limit (the 95% interval of "
                f"the drop straddles it; --kws-strict fails them): {', '.join(inconclusive)}", yellow=True)
        for error in matrix.save_errors:
            terminalreporter.write_line(f"kws: {error}", red=True)
        if matrix.gate_messages:
            terminalreporter.write_sep("=", f"kws gate: {len(matrix.gate_messages)} regression(s)", red=True)
            for message in matrix.gate_messages:
                terminalreporter.write_line(message)
        elif matrix.gate_enabled and matrix.rows:
            unknown = len(matrix.rows) - matrix.gated_rows
            terminalreporter.write_line(
                f"kws gate: {matrix.gated_rows} case(s) compared with their history, no regression"
                + (f"; {unknown} case(s) had no earlier run to compare with" if unknown else ""))
        _write_not_applicable(terminalreporter, matrix)
        if matrix.rows:
            _write_answer(terminalreporter, matrix)
        report = [p for p in self.written if p.suffix == ".html"]
        if report:
            plots = sum(p.suffix == ".png" for p in self.written)
            terminalreporter.write_line(f"kws report: {report[0]} ({plots} plots in {report[0].parent / 'plots'})")


def not_applicable(case) -> str | None:
    """Why ``case`` cannot run on its model (the case is skipped with it): its pathway
    needs a technique the model does not allow, or its grid point a value the model
    cannot take."""
    reason = PATHWAYS[case.pathway].not_applicable(case.spec.model) or case.invalid
    return f"not applicable to {case.spec.model.slug}: {reason}" if reason else None


def _write_not_applicable(reporter, matrix: MatrixSession) -> None:
    """One line per model and pathway the tier lists that cannot run on that model."""
    found = sorted({reason for case in matrix.cases if (reason := not_applicable(case))})
    if found:
        reporter.write_sep("-", f"kws: {len(found)} case(s) not applicable to their model")
        for reason in found:
            reporter.write_line(reason)


def _write_answer(reporter, matrix: MatrixSession) -> None:
    """The end of a run: what ran (the summary's table of this session's cases) and the
    pathway the advisor picks among them for the first Vela target, with why."""
    from kws.advisor import AdvisorError, Constraints, recommend, show
    from kws.matrix.report import latest_per_case, tier_table

    rows = list(matrix.rows.values())
    target = matrix.vela_targets[0] if matrix.vela_targets else None
    for (tier, data), cases in latest_per_case(rows).items():
        reporter.write_sep("=", f"kws: tier {tier} on {data}, {len(cases)} case(s) of this session")
        for line in tier_table(cases).splitlines():
            reporter.write_line(line)
        constraints = Constraints(max_drop_pp=matrix.thresholds.limits(tier, "qat").accuracy_drop_pp)
        try:
            answer = recommend(rows, tier=tier, data_id=data, target=target, constraints=constraints)
        except AdvisorError as exc:
            reporter.write_line(f"kws recommend: no recommendation from this session's cases ({exc})")
            continue
        goal = f"{answer.objective.direction} {answer.objective.label_for(target)}"
        limit = f"drop <= {constraints.max_drop_pp:g} pp with 95% confidence"
        choice = answer.choice
        if choice is None:
            binding = f"; binding: {answer.binding.limit}" if answer.binding else ""
            reporter.write_line(f"kws recommend ({goal}, {limit}): no case of this session qualifies{binding}")
            continue

        def figures(c):
            return (f"{show('accuracy', c.value('accuracy'), c.interval('accuracy'))}, drop "
                    f"{show('drop', c.value('drop'), c.interval('drop'))}, {show('size', c.value('size'))}"
                    + (f", {show('latency', c.value('latency'))}" if target else ""))

        reporter.write_line(f"kws recommend ({goal}, {limit}): {choice.point}: {figures(choice)}")
        if answer.runner_up is not None:
            reporter.write_line(f"  runner-up {answer.runner_up.point}: {figures(answer.runner_up)}")
        reporter.write_line("  all candidates, with why each was ruled out: kws recommend "
                            f"--results {matrix.results_dir} --tier {tier}")


def _show_progress(reporter) -> bool:
    """The matrix position and ETA show on a terminal, not in CI logs (``KWS_PROGRESS=1``
    or ``0`` forces them). pytest captures sys.stderr, so ask the terminal reporter."""
    forced = os.environ.get("KWS_PROGRESS")
    if forced is not None:
        return forced not in ("", "0", "false", "no")
    return bool(getattr(reporter, "isatty", False)) and not os.environ.get("CI")


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"
