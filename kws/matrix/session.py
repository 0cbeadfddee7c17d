"""One benchmark session: the tier's cases, each case's result (run or fetched through the
artifact cache, then estimated with Vela and timed with LiteRT), the history rows it
produces, and the reports written when it ends.

The pytest plugin (:mod:`kws.matrix.plugin`) only wires this to options, fixtures and
hooks.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

from kws.data import DataConfig
from kws.errors import KwsError
from kws.matrix.checks import (
    CHECKS,
    CheckFailed,
    CheckInconclusive,
    InconclusiveWarning,
    accuracy_verdict,
    applicable,
)
from kws.matrix.grid import Case, Tier, generate
from kws.matrix.history import (
    HISTORY_FILE,
    append_history,
    gate,
    git_commit,
    machine,
    now,
    read_history,
    session_problem,
    with_history,
)
from kws.matrix.report import write_summary
from kws.matrix.shard import Shard, ShardPlan, select
from kws.matrix.thresholds import Thresholds
from kws.pathways.axes import Point
from kws.record import SCHEMA_VERSION, CaseRecord
from kws.vela import DEFAULT_TARGET

SUMMARY_FILE = "summary.md"
#: One line per matrix session: its wall time, how many cases it trained, on how many workers.
SESSIONS_FILE = "sessions.jsonl"
#: Cases run in a child process that is replaced after this many. TensorFlow keeps what
#: every model, traced step and conversion of a process allocated (about 50 MB per fit
#: of DS-CNN-S, more under TFMOT's wrappers): a nightly worker that trained ~60 stages
#: in one process held 11 GB and the machine thrashed. ``KWS_CASES_PER_PROCESS=0`` runs
#: them in the test process itself.
CASES_PER_PROCESS_ENV = "KWS_CASES_PER_PROCESS"
DEFAULT_CASES_PER_PROCESS = 8


def cases_per_process() -> int:
    text = os.environ.get(CASES_PER_PROCESS_ENV, str(DEFAULT_CASES_PER_PROCESS))
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise KwsError(f"{CASES_PER_PROCESS_ENV}={text!r}: must be an integer >= 0 (0: in this process)")
    return value


# The child process's own pipeline: it keeps the datasets it opened for the next cases.
_CHILD_PIPELINE = None


def _child_init(target_files: dict[str, str]) -> None:
    """A fresh child knows the Vela targets the session read from files, by name."""
    from kws.vela.targets import load_target_file

    for path in target_files.values():
        load_target_file(path)


def _run_in_child(settings, pathway: str, point: Point, spec) -> CaseRecord:
    global _CHILD_PIPELINE
    from kws.pipeline import CasePipeline

    if _CHILD_PIPELINE is None or _CHILD_PIPELINE.settings != settings:
        _CHILD_PIPELINE = CasePipeline(settings=settings)
    return _CHILD_PIPELINE.run(pathway, point, spec)


@dataclass(frozen=True)
class CheckCase:
    """One check of one case: what the parametrised check test runs."""

    case: Case
    check: str

    @property
    def slug(self) -> str:
        return f"{self.case.slug}-{self.check}"


@dataclass
class MatrixSession:
    tier: Tier
    thresholds: Thresholds
    results_dir: Path
    project_root: Path
    data_dir: Path | None = None
    # A second Speech Commands folder every deployed model is also scored on (its test
    # split; all of it for the test-set layout): real speech for models trained on the
    # synthetic default data.
    eval_dir: Path | None = None
    vela_targets: tuple[str, ...] = (DEFAULT_TARGET,)
    seeds: tuple[int, ...] | None = None
    gate_enabled: bool = False
    strict: bool = False  # an inconclusive check fails
    rows: dict[str, dict] = field(default_factory=dict)  # case slug -> its history row
    gate_messages: list[str] = field(default_factory=list)
    gated_rows: int = 0  # rows that had earlier runs to be gated against
    history_problems: list[str] = field(default_factory=list)  # history lines left out
    save_errors: list[str] = field(default_factory=list)  # results that could not be written
    workers: int = 0  # pytest-xdist workers (0: in process)
    shard: Shard | None = None  # run only this shard's cases (--kws-shard)
    started: float = field(default_factory=time.monotonic)  # reset when the first case starts
    _results: dict = field(default_factory=dict, repr=False)
    _executor: ProcessPoolExecutor | None = field(default=None, repr=False)

    # ----- cases ----------------------------------------------------------------------
    @cached_property
    def all_cases(self) -> list[Case]:
        """Every case of the tier (with the seeds given), whatever the shard."""
        tier = replace(self.tier, seeds=self.seeds) if self.seeds else self.tier
        return generate(tier)

    @cached_property
    def shard_plan(self) -> ShardPlan | None:
        """This session's shard of :attr:`all_cases` (:mod:`kws.matrix.shard`), or None."""
        return select(self.all_cases, self.shard) if self.shard is not None else None

    @cached_property
    def cases(self) -> list[Case]:
        """The cases this session runs: the shard's, or all of them."""
        return list(self.shard_plan.cases) if self.shard_plan is not None else self.all_cases

    @cached_property
    def checks(self) -> list[CheckCase]:
        """Every (case, check) pair where the check applies."""
        return [CheckCase(case, name) for case in self.cases for name in applicable(case)]

    @cached_property
    def ids(self) -> dict[str, str]:
        """Test id -> case slug, for every test id the matrix generates."""
        return {**{c.slug: c.slug for c in self.cases}, **{cc.slug: cc.case.slug for cc in self.checks}}

    def reference(self, case: Case, pathway: str) -> Case:
        """The case of ``pathway`` (one that takes no axes: ``ptq_int8``, ``qat``) with the
        same spec (seed, model, recipes) and tier: a check's yardstick."""
        return Case(pathway, Point(), case.tier, case.spec, case.frontend_label, case.model_label)

    # ----- data -----------------------------------------------------------------------
    @cached_property
    def resolved_data_dir(self) -> Path:
        from kws.baseline import resolve_data_dir

        return resolve_data_dir(self.data_dir)

    @cached_property
    def data_id(self) -> str:
        """What the history calls the data: the synthetic set's folder name (it names its
        recipe), or a hash of every clip's relative path and size (not mtimes, so the same
        copy of Speech Commands on two machines is the same data)."""
        root = self.resolved_data_dir
        if self.data_dir is None:
            return root.name
        ds = self.pipeline.dataset(root, DataConfig())
        h = hashlib.sha256()
        for split in ("training", "validation", "testing"):
            for clip in ds.clips(split):
                if clip.path is None:  # generated silence
                    h.update(f"{split}\0{clip.label}\n".encode())
                else:
                    h.update(f"{split}\0{clip.path.relative_to(root)}\0{clip.path.stat().st_size}\n".encode())
        return f"{root.name}-{h.hexdigest()[:12]}"

    @cached_property
    def settings(self):
        from kws.pipeline import Settings

        return Settings(vela_targets=self.vela_targets, eval_dir=self.eval_dir)

    @cached_property
    def pipeline(self):
        from kws.pipeline import CasePipeline

        return CasePipeline(settings=self.settings)

    def _run(self, case: Case, spec) -> CaseRecord:
        """Run ``case`` in the child process (started on first use, replaced after
        :func:`cases_per_process` cases), or here when that is 0."""
        per_process = cases_per_process()
        if per_process == 0:
            return self.pipeline.run(case.pathway, case.point, spec)
        if self._executor is None:
            import multiprocessing

            from kws.vela.targets import target_files

            self._executor = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), max_tasks_per_child=per_process,
                initializer=_child_init, initargs=({n: str(p) for n, p in target_files().items()},))
        try:
            return self._executor.submit(_run_in_child, self.settings, case.pathway, case.point, spec).result()
        except BrokenProcessPool:
            self._executor = None
            raise KwsError(f"{case.slug}: the process running the case died (killed for memory, or a crash in "
                           "native code); the next case starts a new one") from None

    def close(self) -> None:
        """Stop the child process, if one runs."""
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None

    # ----- results --------------------------------------------------------------------
    def result(self, case: Case) -> CaseRecord:
        """The case's record, built once per process (the artifact cache makes it once
        across processes)."""
        if case.slug not in self._results:
            if not self._results:
                # The session's wall time is the matrix's: from its first case (the
                # dataset and features it builds included), not pytest's collection or
                # the component benchmarks run before it.
                self.started = time.monotonic()
            try:
                spec = replace(case.spec, data_dir=self.resolved_data_dir)
                self._results[case.slug] = self._run(case, spec)
            except Exception as exc:
                # A case that failed (diverged, Vela refused it) fails its checks with the
                # same error instead of being trained again by each of them.
                self._results[case.slug] = exc
                raise
        result = self._results[case.slug]
        if isinstance(result, Exception):
            raise result
        return result

    def has_result(self, case: Case) -> bool:
        return isinstance(self._results.get(case.slug), CaseRecord)

    def row(self, case: Case, record: CaseRecord) -> dict:
        """The history line of a case's run: the record's row plus where, when and on
        what data it ran, and the accuracy check's verdict on its evidence."""
        verdicts = {}
        if "accuracy" in applicable(case):
            verdict = accuracy_verdict(record, self.thresholds.limits(case.tier, case.pathway))
            verdicts["accuracy"] = verdict.value if verdict else None
        return {**record.row(), "schema": SCHEMA_VERSION, "time": now(), **self.commit, "tier": case.tier,
                "case": case.slug, "config_key": case.config_key(self.data_id), "data_id": self.data_id,
                "eval_data": self.eval_dir.name if self.eval_dir else None, "machine": machine(),
                "verdicts": verdicts, "shard": self.shard_name}

    @property
    def shard_name(self) -> str | None:
        """``"2/4"`` in history rows and session lines; None for the whole matrix."""
        return str(self.shard) if self.shard is not None else None

    @cached_property
    def commit(self) -> dict:
        return git_commit(self.project_root)

    def check(self, name: str, case: Case) -> None:
        """Run check ``name`` on ``case``. An inconclusive one warns, or fails under
        ``--kws-strict``."""
        check = CHECKS[name]
        limits = self.thresholds.limits(case.tier, case.pathway)
        reference = self.result(self.reference(case, check.reference)) if check.reference else None
        try:
            check.run(case, self.result(case), limits, reference=reference, targets=self.vela_targets)
        except CheckInconclusive as exc:
            if self.strict:
                raise CheckFailed(f"{exc} (inconclusive fails under --kws-strict)") from None
            warnings.warn(InconclusiveWarning(str(exc)), stacklevel=2)

    # ----- the end of the session -----------------------------------------------------
    def session_row(self, rows: list[dict]) -> dict:
        """This session's line in ``sessions.jsonl``: its wall time from configuration to
        the end, and how many of its cases trained a stage now (none: a warm run)."""
        trained = sum(bool(r.get("trained_now")) for r in rows)
        return {"time": now(), **self.commit, "tier": self.tier.name, "data_id": self.data_id,
                "cases": len(rows), "cases_trained_now": trained, "warm": trained == 0,
                "workers": self.workers, "wall_s": round(time.monotonic() - self.started, 1),
                "machine": machine(), "shard": self.shard_name}

    def finish(self) -> list[Path]:
        """Append this session's rows to the history, run the gate against the earlier
        rows, rewrite the summary. Returns the files written; a file that could not be
        written is left out and its reason kept in :attr:`save_errors` (the gate and the
        other file still run)."""
        if not self.rows:
            return []
        rows = list(self.rows.values())
        history = self.results_dir / HISTORY_FILE
        earlier = read_history(history, self.history_problems) if history.is_file() else []
        if self.gate_enabled:
            self.gate_messages = gate(rows, earlier, self.thresholds.gate)
            self.gated_rows = with_history(rows, earlier, self.thresholds.gate)
        sessions_file = self.results_dir / SESSIONS_FILE
        session = self.session_row(rows)
        sessions = [*read_history(sessions_file, self.history_problems, session_problem), session]
        written = []
        for path, write in ((history, lambda: append_history(history, rows)),
                            (sessions_file, lambda: append_history(sessions_file, [session])),
                            (self.results_dir / SUMMARY_FILE,
                             lambda: write_summary(self.results_dir / SUMMARY_FILE, earlier + rows, sessions))):
            try:
                write()
                written.append(path)
            except OSError as exc:
                self.save_errors.append(f"{path} was not written ({exc.strerror or exc}); "
                                        f"{len(rows)} case(s) of this session are not in it")
        # Drawn after the history is safe: a failure here fails the session, records kept.
        written += write_report(self.results_dir, earlier + rows, sessions, self.save_errors)
        return written


def write_report(results_dir: Path, rows: list[dict], sessions: list[dict], errors: list[str]) -> list[Path]:
    """The plots and the HTML report of a whole history (``DIR/plots/``,
    ``DIR/report.html``); the files written. Any failure (a full disk, a row the plots
    cannot read) is appended to ``errors`` instead of raised: callers draw the report
    after the history is safe, and a drawing must never cost the records. The matrix
    session and ``kws results merge`` both end with it."""
    from kws.html_report import REPORT_FILE, write_html_report
    from kws.plots import write_plots

    try:
        plots = write_plots(results_dir, rows, sessions)
        return [*plots, write_html_report(results_dir, rows, sessions, plots=plots)]
    except Exception as exc:  # noqa: BLE001 - reported by the caller, which fails
        errors.append(f"{results_dir / REPORT_FILE} and the plots were not written: {type(exc).__name__}: {exc}")
        return []
