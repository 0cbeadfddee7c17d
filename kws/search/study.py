"""``kws search``: a multi-objective Bayesian search (Optuna) over the pathways of the
deployment tree and every axis they take, each trial a case of the same cached pipeline.

A trial samples a pathway (when the search has several) and a value of every dimension
its axes declare (:func:`kws.pathways.registry.search_space`: the axes table holds the
ranges, so a new axis is searchable without a change here), builds the case at the
search's recipe tier and seed, runs it through the artifact cache in a child process
(a repeated configuration trains nothing, and a prefix the matrix trained is reused),
appends its history row (case id ``search-<study>-t0007-seed0``) and tells Optuna the
objectives. Constraints go through Optuna's constraints API: each trial stores how far
it misses each one (<= 0: met) and the sampler prefers feasible trials.

A trial whose case fails (training diverged, Vela refused the model, an invalid axis
combination) is recorded as failed with its reason and the search goes on. A trial left
running by a process that died (or was interrupted) is marked failed when the study is
next opened and its parameters are queued again, so the search resumes where it stopped.
Processes on several machines can work on one study through a database storage; each
keeps a heartbeat on its running trial.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kws.errors import KwsError
from kws.search.objectives import Constraint, Objective, SearchError, targets_of
from kws.search.storage import check_study_name, describe, open_storage

SAMPLERS = ("tpe", "nsga2", "random")
#: Seconds between a running trial's heartbeats, and after which a trial whose heartbeat
#: stopped counts as abandoned (its process died on another machine).
HEARTBEAT_S = 60
STALE_S = 15 * 60
#: The study's user attribute that holds what the search was created with.
SPEC_ATTR = "kws_search"
#: The sampler a study was created with (a study may be resumed with another).
SAMPLER_ATTR = "kws_sampler"


class TrialFailed(KwsError):
    """A trial that produced no objectives; its reason is kept in the trial."""


@dataclass(frozen=True)
class SearchSpec:
    """What one search is. ``tier``: the grid tier whose recipe (model, front-end, baseline
    and fine-tuning) every trial uses, and whose name the history rows carry."""

    study: str
    pathways: tuple[str, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    tier: Any  # kws.matrix.grid.Tier
    trials: int
    seed: int = 0
    sampler: str = "tpe"
    worker: int = 0
    results_dir: Path = Path("results")
    storage: str | None = None
    data_dir: Path | None = None
    grid_path: Path | None = None
    thresholds_path: Path | None = None
    project_root: Path = field(default_factory=Path.cwd)

    @property
    def targets(self) -> tuple[str, ...]:
        return targets_of(self.objectives, self.constraints)

    @property
    def model(self):
        # The tier's model fitted to its front-end (the search space follows its layers).
        return self.tier.spec(self.seed).model

    def identity(self) -> dict:
        """What makes two searches the same study: kept in the study, compared on reopening."""
        return {"objectives": [o.text for o in self.objectives],
                "constraints": [c.text for c in self.constraints],
                "pathways": list(self.pathways), "tier": self.tier.name,
                "model": self.tier.model if not self.tier.foreign_model else self.model.params(),
                "frontend": self.tier.frontend, "baseline_epochs": self.tier.baseline_epochs,
                "finetune_epochs": self.tier.finetune_epochs, "seed": self.seed}

    def case_id(self, number: int) -> str:
        return f"search-{self.study}-t{number:04d}-seed{self.seed}"


# ----- validation, before any training -------------------------------------------------------


def validate(spec: SearchSpec) -> None:
    """Every error a search can know of before it trains: the study name, the trial
    count, the sampler, the pathways and the space they span, and a per-target objective
    or constraint on a pathway that has no Vela estimate."""
    from kws.pathways.registry import PATHWAYS, search_space

    check_study_name(spec.study)
    if spec.trials < 1:
        raise SearchError(f"--trials must be >= 1, got {spec.trials}")
    if spec.sampler not in SAMPLERS:
        raise SearchError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {spec.sampler!r}")
    if not spec.pathways:
        raise SearchError("empty search space: no pathway given (--pathways or --family)")
    unknown = [p for p in spec.pathways if p not in PATHWAYS]
    if unknown:
        raise SearchError(f"--pathways: unknown pathway(s) {', '.join(unknown)}; valid: {', '.join(PATHWAYS)}")
    if len(spec.pathways) == 1 and not search_space(PATHWAYS[spec.pathways[0]], spec.model):
        raise SearchError(f"empty search space: pathway {spec.pathways[0]} takes no axis, so there is nothing to "
                          "search; give several pathways or one that takes axes (`kws pathways`)")
    per_target = [g for g in [o.goal for o in spec.objectives] + [c.goal for c in spec.constraints] if g.target]
    if per_target:
        floats = [p for p in spec.pathways if PATHWAYS[p].export.value != "int8"]
        if floats:
            raise SearchError(f"{per_target[0].key}: pathway(s) {', '.join(floats)} deploy as float and have no "
                              f"Vela estimate for {per_target[0].target}; leave them out of the search")


def _check_identity(study, spec: SearchSpec, where: str) -> None:
    """A study that exists must have been created with the same objectives, constraints,
    space and recipe: otherwise its trials answer another question."""
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        raise SearchError(f"study {spec.study!r} in {where} was not created by `kws search`; choose another name")
    ours = spec.identity()
    differ = [k for k in ours if stored.get(k) != ours[k]]
    if differ:
        shown = "; ".join(f"{k}: stored {stored.get(k)!r}, given {ours[k]!r}" for k in differ)
        raise SearchError(f"study {spec.study!r} in {where} exists with other settings ({shown}); resume it with "
                          "its own settings or choose another study name")


def open_study(spec: SearchSpec, *, create: bool = True):
    """The study, created (with ``create``) or reopened after its settings are checked."""
    import optuna

    where = describe(spec.storage, spec.results_dir, spec.study)
    storage = open_storage(spec.storage, spec.results_dir, spec.study)
    try:
        study = optuna.load_study(study_name=spec.study, storage=storage, sampler=make_sampler(spec))
    except KeyError:
        if not create:
            raise SearchError(f"no study {spec.study!r} in {where}") from None
        study = optuna.create_study(study_name=spec.study, storage=storage, sampler=make_sampler(spec),
                                    directions=[o.direction for o in spec.objectives], load_if_exists=True)
        if SPEC_ATTR not in study.user_attrs:
            import warnings

            study.set_user_attr(SPEC_ATTR, spec.identity())
            study.set_user_attr(SAMPLER_ATTR, spec.sampler)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names([o.goal.key for o in spec.objectives])
    _wait_for_identity(study)
    _check_identity(study, spec, where)
    return study


def _wait_for_identity(study, seconds: float = 30.0) -> None:
    """Another process may have created the study an instant ago and not yet stored its
    settings: wait for them a little before calling the study foreign."""
    deadline = time.monotonic() + seconds
    while (not study.user_attrs and not study.get_trials(deepcopy=False)
           and time.monotonic() < deadline):
        time.sleep(0.5)


def load_existing(study_name: str, storage: str | None, results_dir: Path):
    """A study as stored (for reports and promotion), without a sampler of its own."""
    import optuna

    check_study_name(study_name)
    where = describe(storage, results_dir, study_name)
    opened = open_storage(storage, results_dir, study_name)
    try:
        study = optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        raise SearchError(f"no study {study_name!r} in {where}") from None
    if SPEC_ATTR not in study.user_attrs:
        raise SearchError(f"study {study_name!r} in {where} was not created by `kws search`")
    return study


def make_sampler(spec: SearchSpec):
    """Multi-objective TPE (default) or NSGA-II, both of which prefer the trials that meet
    the constraints (each trial sets them through Optuna's ``Trial.set_constraint``); or
    random search, the baseline a Bayesian search is judged against. Each worker of a
    study samples with its own seed (``seed * 1000 + worker``), so that two processes do
    not propose the same first points."""
    import optuna

    seed = spec.seed * 1000 + spec.worker
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, spec.trials // 4)))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                          n_startup_trials=max(2, min(10, spec.trials // 4)))


# ----- trials --------------------------------------------------------------------------------


def _suggest(trial, dim):
    if dim.kind == "categorical":
        return trial.suggest_categorical(dim.name, list(dim.choices))
    if dim.kind == "int":
        return trial.suggest_int(dim.name, dim.low, dim.high, step=dim.step or 1, log=dim.log)
    return trial.suggest_float(dim.name, dim.low, dim.high, step=dim.step, log=dim.log)


def sample_case(trial, spec: SearchSpec):
    """The trial's pathway and point (``ValueError`` when the sampled values make no
    valid point) and its case."""
    from kws.matrix.grid import Case
    from kws.pathways.registry import PATHWAYS, point_from_dims, search_space

    name = (trial.suggest_categorical("pathway", list(spec.pathways)) if len(spec.pathways) > 1
            else spec.pathways[0])
    pathway = PATHWAYS[name]
    values = {dim.name: _suggest(trial, dim) for dim in search_space(pathway, spec.model)}
    point = point_from_dims(pathway, values, spec.model)
    return Case(name, point, spec.tier.name, spec.tier.spec(spec.seed))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(study) -> list[int]:
    """Trials left RUNNING by a process that is gone (this machine: its pid is dead; any
    machine: its heartbeat stopped more than :data:`STALE_S` ago) are marked failed, and
    their parameters are queued again. Returns the numbers of the trials recovered."""
    import optuna

    storage = study._storage
    host, recovered = platform.node(), []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        beat = attrs.get("heartbeat", trial.datetime_start.timestamp() if trial.datetime_start else time.time())
        gone = (attrs.get("host") == host and "pid" in attrs and not _alive(attrs["pid"])) \
            or time.time() - beat > STALE_S
        if not gone:
            continue
        storage.set_trial_user_attr(trial._trial_id, "failure", "interrupted: its process stopped; queued again")
        storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        recovered.append(trial.number)
    return recovered


def counted(trials) -> list:
    """The trials that count towards ``--trials``: finished ones (an interrupted one is
    queued again instead) and running ones."""
    import optuna

    TS = optuna.trial.TrialState
    return [t for t in trials if t.state in (TS.COMPLETE, TS.RUNNING, TS.PRUNED)
            or (t.state is TS.FAIL and not t.user_attrs.get("interrupted"))]


class _Heartbeat:
    """Refreshes a running trial's ``heartbeat`` attribute while its case runs."""

    def __init__(self, trial):
        self.trial, self.stop = trial, threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self):
        while not self.stop.wait(HEARTBEAT_S):
            # A missed beat is retried at the next one; the trial goes on.
            with contextlib.suppress(Exception):
                self.trial.set_user_attr("heartbeat", time.time())

    def __enter__(self):
        self.trial.set_user_attr("heartbeat", time.time())
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


@dataclass
class TrialResult:
    number: int
    case: str | None
    values: list[float] | None
    failure: str | None = None


def _estimated_targets(spec: SearchSpec) -> tuple[str, ...]:
    """The targets the search judges on, then the matrix's own: a trial's row has the
    same Vela columns as the matrix's cases in the summary and the recommendation."""
    from kws.matrix.plugin import MATRIX_TARGETS

    return tuple(dict.fromkeys((*spec.targets, *MATRIX_TARGETS)))


class Search:
    """Runs trials of one study until it holds ``spec.trials`` of them (counting every
    process's), each through the matrix session's case runner."""

    def __init__(self, spec: SearchSpec, *, report=None):
        from kws.matrix.session import MatrixSession
        from kws.matrix.thresholds import load_thresholds

        validate(spec)
        self.spec = spec
        self.report = report or (lambda text: None)
        thresholds = load_thresholds(spec.thresholds_path or spec.project_root / "bench" / "thresholds.toml")
        self.session = MatrixSession(tier=spec.tier, thresholds=thresholds, results_dir=spec.results_dir,
                                     project_root=spec.project_root, data_dir=spec.data_dir,
                                     vela_targets=_estimated_targets(spec))
        self.study = open_study(spec)
        self.results: list[TrialResult] = []

    def remaining(self) -> int:
        return self.spec.trials - len(counted(self.study.get_trials(deepcopy=False)))

    def run(self, progress=None) -> list[TrialResult]:
        """Trials until the study holds ``spec.trials``. ``progress(result, study)`` is
        called after each. Returns this process's trials."""
        recovered = recover(self.study)
        if recovered:
            self.report(f"resumed: trial(s) {', '.join(map(str, recovered))} had been interrupted and are queued again")
        try:
            while self.remaining() > 0:
                result = self.one()
                self.results.append(result)
                if progress is not None:
                    progress(result, self.study)
        finally:
            self.session.close()
        return self.results

    def one(self) -> TrialResult:
        import optuna

        trial = self.study.ask()
        trial.set_user_attr("host", platform.node())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("worker", self.spec.worker)
        case_id = self.spec.case_id(trial.number)
        try:
            with _Heartbeat(trial):
                values = self._evaluate(trial, case_id)
        except TrialFailed as exc:
            trial.set_user_attr("failure", str(exc))
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return TrialResult(trial.number, case_id, None, str(exc))
        except BaseException:
            # Interrupted (Ctrl-C, a kill): the trial is queued again for the next run.
            trial.set_user_attr("failure", "interrupted; queued again")
            trial.set_user_attr("interrupted", True)
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            if trial.params:
                self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            raise
        self.study.tell(trial, values)
        return TrialResult(trial.number, case_id, values)

    def _evaluate(self, trial, case_id: str):
        from kws.matrix.history import HISTORY_FILE, append_history

        try:
            case = sample_case(trial, self.spec)
        except ValueError as exc:
            raise TrialFailed(f"invalid point: {exc}") from None
        trial.set_user_attr("pathway", case.pathway)
        trial.set_user_attr("point", case.point.to_dict())
        trial.set_user_attr("grid_case", case.slug)
        trial.set_user_attr("case", case_id)
        try:
            record = self.session.result(case)
        except Exception as exc:  # noqa: BLE001 - the trial fails with its reason; the search goes on
            raise TrialFailed(f"{type(exc).__name__}: {exc}") from None
        metrics = record.metrics
        values = []
        for objective in self.spec.objectives:
            value = objective.goal.value(metrics)
            if value is None or not math.isfinite(value):
                raise TrialFailed(f"{objective.goal.key} was not measured for {case.slug}")
            values.append(value)
        misses = [c.violation(metrics) for c in self.spec.constraints]
        for constraint, miss in zip(self.spec.constraints, misses):
            trial.set_constraint(constraint.text, miss)
        trial.set_user_attr("constraints", misses)
        trial.set_user_attr("figures", figures(record.metrics, self.spec.targets))
        row = {**self.session.row(case, record), "case": case_id, "grid_case": case.slug,
               "search": {"study": self.spec.study, "trial": trial.number, "sampler": self.spec.sampler,
                          "storage": describe(self.spec.storage, self.spec.results_dir, self.spec.study)}}
        append_history(self.spec.results_dir / HISTORY_FILE, [row])
        return values


def figures(metrics: dict, targets: Sequence[str]) -> dict:
    """What a trial keeps for reports: accuracy and its drop with intervals, size, and
    the Vela latency on each target."""
    intervals = metrics.get("intervals") or {}
    return {"accuracy": metrics.get("deployed_accuracy"), "accuracy_interval": intervals.get("deployed_accuracy"),
            "drop": metrics.get("accuracy_drop"), "drop_interval": intervals.get("accuracy_drop"),
            "gzip_bytes": metrics.get("gzip_bytes"),
            "vela_us": {t: ((metrics.get("vela") or {}).get(t) or {}).get("inference_us") for t in targets}}


# ----- the answer ----------------------------------------------------------------------------


def feasible(trial) -> bool:
    return all(v <= 0 for v in trial.user_attrs.get("constraints", ()))


def _dominates(a: Sequence[float], b: Sequence[float], maximise: Sequence[bool]) -> bool:
    better = [(x > y) if up else (x < y) for x, y, up in zip(a, b, maximise)]
    worse = [(x < y) if up else (x > y) for x, y, up in zip(a, b, maximise)]
    return any(better) and not any(worse)


def front(study, by: int = 0) -> list:
    """The feasible, completed trials no other feasible one dominates, best first on
    objective number ``by`` (the first by default)."""
    import optuna

    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if feasible(t)]
    maximise = [d == optuna.study.StudyDirection.MAXIMIZE for d in study.directions]
    kept = [t for t in done if not any(_dominates(o.values, t.values, maximise) for o in done if o is not t)]
    return sorted(kept, key=lambda t: (-t.values[by] if maximise[by] else t.values[by], t.number))


def objective_index(study, name: str | None) -> int:
    """The position of objective ``name`` (as the study names them: ``accuracy``,
    ``latency:ethos-u55-256``) among the study's; 0 for ``None``."""
    if name is None:
        return 0
    names = study.metric_names or []
    if name not in names:
        raise SearchError(f"--by {name!r}: study {study.study_name!r} has the objectives {', '.join(names)}")
    return names.index(name)


def hypervolume(points: Sequence[Sequence[float]], maximise: Sequence[bool], reference: Sequence[float]) -> float:
    """The hypervolume the points dominate up to ``reference`` (Optuna's implementation,
    on objectives turned to minimisation). Points beyond the reference add nothing."""
    import numpy as np
    from optuna._hypervolume import compute_hypervolume

    sign = np.array([-1.0 if up else 1.0 for up in maximise])
    ref = sign * np.asarray(reference, float)
    pts = np.array([sign * np.asarray(p, float) for p in points]).reshape(-1, len(maximise))
    pts = pts[np.all(pts < ref, axis=1)]
    if not len(pts):
        return 0.0
    return float(compute_hypervolume(pts, ref))


def point_text(trial) -> str:
    """``lfilterqat r20-30-00-10-25`` for a trial."""
    from kws.matrix.grid import slug
    from kws.pathways.axes import Point

    pathway, point = trial.user_attrs.get("pathway"), trial.user_attrs.get("point") or {}
    if pathway is None:
        return "-"
    return slug(pathway, Point(point), 0).removesuffix("-seed0")


def front_table(study) -> str:
    """The study's feasible Pareto front as a table: trial, point, each objective, the
    accuracy drop with its interval."""
    from tabulate import tabulate

    names = study.metric_names or [f"objective {i}" for i in range(len(study.directions))]
    rows = []
    for t in front(study):
        f = t.user_attrs.get("figures") or {}
        drop, interval = f.get("drop"), f.get("drop_interval")
        drop_text = "-" if drop is None else f"{100 * drop:.2f}" + (
            f" [{100 * interval[0]:.2f}, {100 * interval[1]:.2f}]" if interval else "")
        rows.append([t.number, point_text(t), *(_fmt(name, v) for name, v in zip(names, t.values)), drop_text])
    return tabulate(rows, headers=["trial", "point", *names, "drop pp [95%]"], tablefmt="github")


def _fmt(name: str, value: float) -> str:
    if name.startswith("accuracy"):
        return f"{100 * value:.2f}%"
    return f"{value:,.2f}"


def summary_line(study, total: int) -> str:
    """``12/40 trials (1 failed), front 3; best accuracy 93.21% (trial 7)``."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    TS = optuna.trial.TrialState
    done = [t for t in trials if t.state is TS.COMPLETE]
    failed = [t for t in trials if t.state is TS.FAIL and not t.user_attrs.get("interrupted")]
    pareto = front(study)
    text = f"{len(done) + len(failed)}/{total} trials" + (f" ({len(failed)} failed)" if failed else "")
    text += f", {len(pareto)} on the feasible front"
    if pareto:
        name = (study.metric_names or ["objective 0"])[0]
        text += f"; best {name} {_fmt(name, pareto[0].values[0])} (trial {pareto[0].number})"
    return text
