"""What a search optimises and what it must respect, parsed from the command line and
checked before any training.

An objective is a figure of the advisor (``accuracy``, ``latency``, ``size``, ``flash``,
``sram``, ``weights``, ``retrain``) or any metric of :data:`kws.metrics.METRICS`
(``gzip_bytes``, ``vela_us``), with a Vela target after a colon where the metric is per
target: ``latency:ethos-u85-256``, ``vela_us:ethos-u55-256``. ``vela_latency`` is a
name for ``vela_us``. A constraint is ``NAME[:TARGET]<=VALUE`` or ``>=VALUE`` in the
metric's own unit (bytes, microseconds, a fraction for accuracy), or ``--max-drop PP``:
the accuracy drop against the baseline's int8 must stay at or under PP percentage points
*with 95% confidence* (the upper end of its paired interval).

Importing this module loads neither TensorFlow nor Optuna.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kws.errors import KwsError
from kws.metrics import METRICS, Better, Metric


class SearchError(KwsError, ValueError):
    """A search that cannot run as asked; the message names the value at fault."""


#: Other names for metrics, as users write them.
ALIASES = {"vela_latency": "vela_us", "latency_us": "vela_us"}


def _metric_names() -> dict[str, str]:
    """Every name an objective may use -> the metric it reads."""
    from kws.advisor import FIGURES

    return {**{name: f.metric for name, f in FIGURES.items()}, **{name: name for name in METRICS}, **ALIASES}


@dataclass(frozen=True)
class Goal:
    """One measured quantity: a metric, for one Vela target where it is per target."""

    name: str  # as the user wrote it (without the target)
    metric: str
    target: str | None

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]

    @property
    def key(self) -> str:
        return f"{self.name}:{self.target}" if self.target else self.name

    def value(self, metrics: Mapping[str, Any]) -> float | None:
        value = self.spec.value(metrics, self.target)
        return None if value is None else float(value)

    def show(self, value: float | None) -> str:
        return "-" if value is None else self.spec.show(value)


@dataclass(frozen=True)
class Objective:
    goal: Goal
    maximise: bool

    @property
    def direction(self) -> str:
        return "maximize" if self.maximise else "minimize"

    @property
    def text(self) -> str:
        return f"{'maximise' if self.maximise else 'minimise'} {self.goal.key}"


@dataclass(frozen=True)
class Constraint:
    """``goal <= bound`` (``upper``) or ``goal >= bound``. ``evidence``: judged on the end
    of the metric's 95% interval that is worse for it (the accuracy drop's upper end)."""

    goal: Goal
    bound: float
    upper: bool = True
    evidence: bool = False

    @property
    def text(self) -> str:
        op = "<=" if self.upper else ">="
        shown = self.goal.spec.show(self.bound).strip()
        return f"{self.goal.key} {op} {shown}" + (" with 95% confidence" if self.evidence else "")

    def violation(self, metrics: Mapping[str, Any]) -> float:
        """Optuna's convention: <= 0 when met, the amount of the miss otherwise (in the
        metric's unit); ``inf`` where the metric was not measured."""
        value = self.goal.value(metrics)
        if self.evidence:
            interval = self.goal.spec.interval(metrics)
            if interval is not None:
                value = interval[1] if self.upper else interval[0]
        if value is None:
            return float("inf")
        return value - self.bound if self.upper else self.bound - value


def parse_goal(text: str, *, option: str, targets: Sequence[str]) -> Goal:
    """``NAME`` or ``NAME:TARGET`` -> a :class:`Goal`. A per-target metric without a
    target takes the first of ``targets``; a target on a metric that has none, an unknown
    name and an unknown target are errors naming the value."""
    from kws.vela import parse_targets

    where = f"{option} {text!r}" if option else repr(text)
    name, _, target = text.strip().partition(":")
    names = _metric_names()
    if name not in names:
        raise SearchError(f"{where}: unknown objective or metric {name!r}; valid: {', '.join(sorted(names))}")
    metric = METRICS[names[name]]
    if metric.per_target:
        if not target:
            if not targets:
                raise SearchError(f"{where}: {name} is measured per Vela target; name one, "
                                  f"e.g. {name}:ethos-u55-256")
            target = targets[0]
        try:
            target = parse_targets(target)[0].name
        except ValueError as exc:
            raise SearchError(f"{where}: {exc}") from None
    elif target:
        raise SearchError(f"{where}: {name} is not measured per Vela target; drop ':{target}'")
    if metric.optional:
        raise SearchError(f"{where}: {name} is measured only on some runs "
                          f"({metric.description}); it cannot be searched on")
    return Goal(name, metric.name, target or None)


def parse_objectives(maximise: Sequence[str], minimise: Sequence[str], *, targets: Sequence[str]) -> list[Objective]:
    """The objectives in the order given (maximised ones first). A direction that fights
    the metric's (``--maximise latency``) is an error; at least one objective is needed."""
    objectives = []
    for texts, up, option in ((maximise, True, "--maximise"), (minimise, False, "--minimise")):
        for text in texts:
            goal = parse_goal(text, option=option, targets=targets)
            better = goal.spec.better
            if better is not Better.NEITHER and (better is Better.HIGHER) != up:
                other = "--maximise" if better is Better.HIGHER else "--minimise"
                raise SearchError(f"{option} {text!r}: {goal.name} is better {better.value}; use {other}")
            objectives.append(Objective(goal, up))
    if not objectives:
        raise SearchError("no objective: give --maximise and/or --minimise, e.g. --maximise accuracy "
                          "--minimise latency:ethos-u55-256")
    seen: dict[tuple, str] = {}
    for o in objectives:
        same = (o.goal.metric, o.goal.target)
        if same in seen:
            raise SearchError(f"objective {o.goal.key} is {seen[same]} again (both read {o.goal.metric}"
                              + (f" on {o.goal.target})" if o.goal.target else ")"))
        seen[same] = o.goal.key
    return objectives


_CONSTRAINT = re.compile(r"^\s*([^<>=\s]+)\s*(<=|>=)\s*([-+0-9.eE_]+)\s*$")


def parse_constraint(text: str, *, targets: Sequence[str], option: str = "--constraint") -> Constraint:
    where = f"{option} {text!r}" if option else repr(text)
    match = _CONSTRAINT.match(text)
    if not match:
        raise SearchError(f"{where}: expected NAME[:TARGET]<=VALUE or >=VALUE, e.g. 'flash:ethos-u55-256<=60000'")
    try:
        goal = parse_goal(match[1], option="", targets=targets)
    except SearchError as exc:
        raise SearchError(f"{where}: {str(exc).split(': ', 1)[1]}") from None
    try:
        bound = float(match[3])
    except ValueError:
        raise SearchError(f"{where}: {match[3]!r} is not a number") from None
    return Constraint(goal, bound, upper=match[2] == "<=")


def drop_constraint(max_drop_pp: float) -> Constraint:
    if not 0 <= max_drop_pp < 100:
        raise SearchError(f"--max-drop must be in [0, 100) percentage points, got {max_drop_pp:g}")
    return Constraint(Goal("drop", "accuracy_drop", None), max_drop_pp / 100, upper=True, evidence=True)


def targets_of(objectives: Sequence[Objective], constraints: Sequence[Constraint]) -> tuple[str, ...]:
    """The Vela targets every trial must be estimated on, in first-use order."""
    seen: dict[str, None] = {}
    for goal in [o.goal for o in objectives] + [c.goal for c in constraints]:
        if goal.target:
            seen[goal.target] = None
    return tuple(seen)
