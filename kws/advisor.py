"""Which pathway to deploy: Pareto fronts over the benchmark history, and one choice under
constraints (``kws recommend``).

The input is ``results/history.jsonl``: the newest row of every case of one tier and data
(:func:`kws.matrix.report.latest_per_case`). The seeds of one pathway point
(``pcqat-s0.50-c32-seed0``, ``-seed1``, ...) fold into one :class:`Candidate`: the mean of
each figure, and for accuracy and its drop a 95% interval (the run's own for one seed,
Student-t across seeds for several, :func:`kws.stats.mean_interval`).

Figures are the metrics of :mod:`kws.metrics`, read with their own accessors, so names,
units and directions are declared there once. The per-target ones (Vela) are read for
one target: a case without a Vela estimate for it (a float16 or dynamic-range model) is
not a candidate for that target, and says so. With ``target=None`` (no NPU) every case is
a candidate and the Vela figures are left out.

Domination (:func:`dominates`) treats accuracy within its noise as equal; see there for
the exact rule. :func:`recommend` ranks the candidates that meet the constraints by one
objective and, when none does, names the constraint that binds and the candidates that
come closest.

Importing this module loads neither numpy nor scipy: the command line reads
:data:`OBJECTIVES` when it registers. The history reader, the report helpers and the
interval maths are imported where they are used.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from kws.errors import KwsError
from kws.metrics import METRICS, Better, Metric
from kws.vela.targets import DEFAULT_TARGET


class AdvisorError(KwsError, ValueError):
    """A recommendation that cannot be made from this history with these settings."""


class HistoryError(AdvisorError):
    """No usable history: a missing, empty or foreign file, or no rows for the tier/data."""


class UnknownTargetError(AdvisorError):
    """A Vela target the history has no estimates for (the message names those it has)."""


class UnknownObjectiveError(AdvisorError):
    """An objective that is not in :data:`OBJECTIVES`."""


# ----- figures and objectives ------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One figure of a candidate: ``metric`` names its entry in :data:`kws.metrics.METRICS`
    (which holds its unit and better direction); ``label`` is used where that entry has
    none; ``objective``: whether it is one of the Pareto objectives (the drop is not: on
    the same baseline it carries the same information as accuracy)."""

    name: str
    metric: str
    label: str = ""
    objective: bool = True

    @property
    def spec(self) -> Metric:
        return METRICS[self.metric]

    @property
    def maximise(self) -> bool:
        return self.spec.better is Better.HIGHER

    @property
    def per_target(self) -> bool:
        return self.spec.per_target

    @property
    def direction(self) -> str:
        return "maximise" if self.maximise else "minimise"

    def label_for(self, target: str | None) -> str:
        return (self.spec.label or self.label or self.name).format(target=target)


FIGURES: dict[str, Figure] = {f.name: f for f in (
    Figure("accuracy", "deployed_accuracy"),
    Figure("drop", "accuracy_drop", objective=False),
    Figure("size", "gzip_bytes"),
    Figure("weights", "vela_encoded_weights"),
    Figure("flash", "vela_flash", label="flash on {target}"),
    Figure("latency", "vela_us"),
    Figure("sram", "vela_sram", label="peak SRAM on {target}"),
    Figure("retrain", "retrain_s"),
)}
#: The Pareto objectives, and what :func:`recommend` can optimise.
OBJECTIVES: dict[str, Figure] = {name: f for name, f in FIGURES.items() if f.objective}
DEFAULT_OBJECTIVE = "latency"
#: What a candidate is ranked by without a Vela target.
DEFAULT_OBJECTIVE_WITHOUT_TARGET = "size"

#: How a unit of :mod:`kws.metrics` is written in limits and tables: (unit, scale from the
#: metric's value, format). Kilobytes are 1,000 bytes, as in ``results/summary.md``.
DISPLAY_UNITS: dict[str, tuple[str, float, str]] = {
    "fraction": ("%", 100.0, ".2f"),
    "pp": ("pp", 100.0, ".2f"),
    "B": ("KB", 1e-3, ".2f"),
    "us": ("us", 1.0, ".2f"),
    "s": ("s", 1.0, ".1f"),
}


def display_unit(figure: str) -> tuple[str, float, str]:
    """``(unit, scale, format)`` of a figure in limits and tables (``("KB", 1e-3, ".2f")``)."""
    return DISPLAY_UNITS[FIGURES[figure].spec.unit]


def _unit_text(unit: str) -> str:
    return unit if unit == "%" else f" {unit}"


def show(figure: str, value: float | None, interval: Sequence[float] | None = None, *, unit: bool = True) -> str:
    """A figure's value (in its metric's unit) as written in limits and tables:
    ``85.37% [82.29, 88.00]``, ``30.73 KB``, ``114.90 us`` (without the unit where
    ``unit`` is false: a table's header carries it); ``-`` when not measured."""
    if value is None:
        return "-"
    name, scale, fmt = display_unit(figure)
    text = f"{scale * value:{fmt}}{_unit_text(name) if unit else ''}"
    if interval is not None:
        text += f" [{scale * interval[0]:{fmt}}, {scale * interval[1]:{fmt}}]"
    return text


def get_objective(name: str) -> Figure:
    if name not in OBJECTIVES:
        raise UnknownObjectiveError(f"unknown objective {name!r}; valid: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[name]


# ----- candidates ------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One pathway point of one tier and data, its seeds folded together. ``values``: each
    figure of :data:`FIGURES` (``None`` where not measured), the mean over the seeds that
    measured it, in the metric's own unit (fractions, bytes, us, s); ``intervals``: 95%
    intervals of ``accuracy`` and ``drop`` where the rows carry them; ``unavailable``:
    why this point is not a candidate for the target (``None``: it is)."""

    point: str
    pathway: str
    cases: tuple[str, ...]
    values: dict[str, float | None]
    intervals: dict[str, tuple[float, float]]
    export: str | None = None
    unavailable: str | None = None

    @property
    def seeds(self) -> int:
        return len(self.cases)

    def value(self, figure: str) -> float | None:
        return self.values.get(figure)

    def interval(self, figure: str) -> tuple[float, float] | None:
        return self.intervals.get(figure)

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "pathway": self.pathway, "cases": list(self.cases), "seeds": self.seeds,
                "export": self.export, "figures": dict(self.values),
                "intervals": {k: list(v) for k, v in self.intervals.items()}, "unavailable": self.unavailable}


def _mean(values: Iterable[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _with_interval(figure: Figure, rows: list[dict]) -> tuple[float | None, tuple[float, float] | None]:
    """Mean and 95% interval: the row's own for one seed, Student-t across several."""
    from kws.stats import mean_interval

    measured = [r for r in rows if figure.spec.value(r["metrics"]) is not None]
    if not measured:
        return None, None
    if len(measured) == 1:
        value = figure.spec.value(measured[0]["metrics"])
        interval = figure.spec.interval(measured[0]["metrics"])
        return value, (tuple(interval) if interval else None)
    mean, interval = mean_interval([figure.spec.value(r["metrics"]) for r in measured])
    return mean, (interval.low, interval.high)


def _candidate(point: str, rows: list[dict], target: str | None) -> Candidate:
    values: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float]] = {}
    for name, figure in FIGURES.items():
        if figure.per_target and target is None:
            values[name] = None
        elif figure.spec.has_interval:
            values[name], interval = _with_interval(figure, rows)
            if interval is not None:
                intervals[name] = interval
        else:
            values[name] = _mean(figure.spec.value(r["metrics"], target) for r in rows)
    export = rows[0].get("export")
    unavailable = None
    if target is not None and any(values[n] is None for n, f in OBJECTIVES.items() if f.per_target):
        deploys = f" (deploys as {export})" if export and export != "int8" else ""
        unavailable = f"no Vela estimate for {target}{deploys}"
    return Candidate(point, rows[0]["pathway"], tuple(r["case"] for r in rows), values, intervals,
                     export, unavailable)


def _latest(rows: Sequence[dict], tier: str, data_id: str) -> dict[str, dict]:
    from kws.matrix.report import latest_per_case

    return latest_per_case(list(rows)).get((tier, data_id), {})


def candidates(rows: Sequence[dict], *, tier: str, data_id: str, target: str | None) -> list[Candidate]:
    """Every pathway point of ``tier`` on ``data_id``, from the newest row of each of its
    cases (seeds in case order), in the order the history first recorded them."""
    from kws.matrix.report import point_of

    points: dict[str, list[dict]] = {}
    for case, row in _latest(rows, tier, data_id).items():
        points.setdefault(point_of(case), []).append(row)
    return [_candidate(point, sorted(group, key=lambda r: r["case"]), target) for point, group in points.items()]


# ----- domination and the front -----------------------------------------------------------


def _compare(name: str, a: Candidate, b: Candidate) -> int | None:
    """+1 when ``a`` is better than ``b`` on ``name``, -1 when worse, 0 when equal (within
    noise, for a figure with an interval); ``None`` when one of them lacks the value."""
    va, vb = a.value(name), b.value(name)
    if va is None or vb is None:
        return None
    if FIGURES[name].maximise:
        low, high = a.interval(name) or (va, va)
        return -1 if vb > high else (1 if vb < low else 0)
    return (va < vb) - (va > vb)


def _objective_names(objectives: Sequence[str] | None, pool: Sequence[Candidate]) -> list[str]:
    if objectives is None:
        return [n for n in OBJECTIVES if any(c.value(n) is not None for c in pool)]
    for name in objectives:
        get_objective(name)
    return list(objectives)


def better_on(a: Candidate, b: Candidate, objectives: Sequence[str] | None = None) -> list[str]:
    """The objectives on which ``a`` is strictly better than ``b`` (accuracy: beyond noise)."""
    return [n for n in _objective_names(objectives, (a, b)) if _compare(n, a, b) == 1]


def dominates(a: Candidate, b: Candidate, objectives: Sequence[str] | None = None) -> bool:
    """Whether ``a`` dominates ``b``. With ``[lo, hi]`` the 95% interval of ``a``'s
    accuracy (its Wilson interval for one seed, Student-t across seeds; the point itself
    where the rows carry none), ``a`` dominates ``b`` when all three hold:

    1. on every minimised objective, ``a <= b``;
    2. on accuracy, ``a`` is not lower beyond its noise: ``acc(b) <= hi``;
    3. ``a`` is strictly better somewhere: ``a < b`` on a minimised objective, or
       ``acc(b) < lo`` (``b``'s accuracy below ``a``'s whole interval).

    So a ``b`` that is larger or slower but more accurate by less than ``a``'s noise is
    dominated; one more accurate beyond ``a``'s interval is not. An objective that both
    lack is skipped; one that only one of them has makes them incomparable (no
    domination). ``objectives``: the names to compare (default: every objective that
    either measured)."""
    better = False
    for name in _objective_names(objectives, (a, b)):
        if a.value(name) is None and b.value(name) is None:
            continue
        order = _compare(name, a, b)
        if order is None or order < 0:
            return False
        better |= order > 0
    return better


@dataclass(frozen=True)
class Domination:
    """``by`` dominates the candidate; ``better_on``: where it is strictly better."""

    by: str
    better_on: tuple[str, ...]


@dataclass(frozen=True)
class Front:
    """``front``: the candidates no other dominates (in input order); ``dominated``: for
    each other candidate's point, the candidate that dominates it (one on the front when
    one does, else the most accurate of those that do)."""

    front: tuple[Candidate, ...]
    dominated: dict[str, Domination]
    objectives: tuple[str, ...]

    def points(self) -> list[str]:
        return [c.point for c in self.front]


def pareto_front(pool: Sequence[Candidate], objectives: Sequence[str] | None = None) -> Front:
    """The Pareto front of ``pool`` under :func:`dominates`. Every pair is compared (with
    accuracy equal within noise, domination is not transitive, so a candidate dominated
    only by dominated ones is still off the front)."""
    names = _objective_names(objectives, pool)
    points = [c.point for c in pool]
    assert len(set(points)) == len(points), f"candidates must be distinct points, got {points}"
    by = {c.point: [d for d in pool if d is not c and dominates(d, c, names)] for c in pool}
    front = tuple(c for c in pool if not by[c.point])
    on_front = {c.point for c in front}
    dominated = {}
    for c in pool:
        if by[c.point]:
            best = min(by[c.point], key=lambda d: (d.point not in on_front, -(d.value("accuracy") or 0.0)))
            dominated[c.point] = Domination(best.point, tuple(better_on(best, c, names)))
    return Front(front, dominated, tuple(names))


# ----- constraints --------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One kind of constraint: the :class:`Constraints` field ``name`` bounds figure
    ``figure`` (at most, or at least), written in the figure's display unit."""

    name: str
    figure: str
    at_most: bool = True

    @property
    def unit(self) -> str:
        return display_unit(self.figure)[0]

    def label(self, target: str | None) -> str:
        return FIGURES[self.figure].label_for(target)

    def show(self, bound: float) -> str:
        """A bound or a judged value in the limit's unit: ``1.00 pp``, ``25.00 KB``."""
        _, _, fmt = display_unit(self.figure)
        return f"{bound:{fmt}}{_unit_text(self.unit)}"

    def text(self, bound: float, target: str | None, lenient: bool) -> str:
        """``int8 accuracy drop <= 1.00 pp, judged on the upper end of its 95% interval``."""
        judged = ""
        if self.figure in _JUDGED_ON_INTERVAL:
            judged = ", judged on its measured value" if lenient else \
                f", judged on the {'upper' if self.at_most else 'lower'} end of its 95% interval"
        return f"{self.label(target)} {'<=' if self.at_most else '>='} {self.show(bound)}{judged}"


#: The figures whose limits are judged on an end of their interval unless lenient.
_JUDGED_ON_INTERVAL = ("drop", "accuracy")

LIMITS: dict[str, Limit] = {limit.name: limit for limit in (
    Limit("max_drop_pp", "drop"),
    Limit("min_accuracy_pct", "accuracy", at_most=False),
    Limit("max_size_kb", "size"),
    Limit("max_flash_kb", "flash"),
    Limit("max_latency_us", "latency"),
    Limit("max_sram_kb", "sram"),
    Limit("max_retrain_s", "retrain"),
)}


@dataclass(frozen=True)
class Constraints:
    """What a choice must meet; ``None`` leaves a figure free. Units as written on the
    command line: pp, percent, KB of 1,000 bytes, microseconds, seconds.

    The two accuracy limits are judged on the evidence, by default on the pessimistic end
    of the 95% interval: ``max_drop_pp`` on the drop's upper end (the paired bootstrap for
    one seed, Student-t across seeds), ``min_accuracy_pct`` on the accuracy's lower end.
    ``lenient`` judges both on the point value (the mean over seeds) instead. A candidate
    without an interval is judged on its point value. The other limits are judged on the
    mean over seeds."""

    max_drop_pp: float | None = 1.0
    min_accuracy_pct: float | None = None
    max_size_kb: float | None = None
    max_flash_kb: float | None = None
    max_latency_us: float | None = None
    max_sram_kb: float | None = None
    max_retrain_s: float | None = None
    lenient: bool = False

    def __post_init__(self):
        for name in LIMITS:
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number or None, got {value!r}")
            if name == "min_accuracy_pct" and not 0 <= value <= 100:
                raise ValueError(f"min_accuracy_pct must be in [0, 100], got {value!r}")
            if name == "max_drop_pp" and not -100 <= value <= 100:
                raise ValueError(f"max_drop_pp must be in [-100, 100], got {value!r}")
            if name not in ("max_drop_pp", "min_accuracy_pct") and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")

    def active(self) -> list[tuple[Limit, float]]:
        """``(limit, bound)`` for every limit that is set, in :data:`LIMITS` order."""
        return [(limit, getattr(self, name)) for name, limit in LIMITS.items() if getattr(self, name) is not None]

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Miss:
    """A limit a candidate fails: ``value`` is what was judged (in the limit's unit),
    ``judged`` says which value that is."""

    limit: str
    value: float | None
    bound: float
    judged: str
    label: str

    @property
    def shortfall(self) -> float:
        """How far it misses, relative to the bound (in the limit's unit where the bound
        is 0); a figure that was not measured misses by infinity."""
        if self.value is None:
            return math.inf
        return abs(self.value - self.bound) / (abs(self.bound) or 1.0)

    @property
    def text(self) -> str:
        limit = LIMITS[self.limit]
        if self.value is None:
            return f"{self.label} not measured (limit {limit.show(self.bound)})"
        return f"{self.label} {self.judged}{limit.show(self.value)} {'>' if limit.at_most else '<'} " \
               f"{limit.show(self.bound)}"

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "value": self.value, "bound": self.bound, "judged": self.judged.strip() or None,
                "text": self.text}


def _judge(limit: Limit, bound: float, c: Candidate, lenient: bool, target: str | None) -> Miss | None:
    value, interval = c.value(limit.figure), c.interval(limit.figure)
    _, scale, _ = display_unit(limit.figure)
    judged = ""
    if value is not None and interval is not None and not lenient and limit.figure in _JUDGED_ON_INTERVAL:
        value, judged = (interval[1], "upper end ") if limit.at_most else (interval[0], "lower end ")
    value = None if value is None else scale * value
    if value is not None and (value <= bound if limit.at_most else value >= bound):
        return None
    return Miss(limit.name, value, bound, judged, limit.label(target))


def misses(c: Candidate, constraints: Constraints, target: str | None) -> tuple[Miss, ...]:
    """Every limit of ``constraints`` that ``c`` fails, in :data:`LIMITS` order."""
    found = (_judge(limit, bound, c, constraints.lenient, target) for limit, bound in constraints.active())
    return tuple(m for m in found if m is not None)


# ----- the recommendation -------------------------------------------------------------------


@dataclass(frozen=True)
class Assessment:
    """A candidate as :func:`recommend` saw it: the limits it misses, whether it is on the
    Pareto front and, if not, what dominates it. ``rank``: its place among the eligible
    ones (0 for the choice; ``None``: not eligible)."""

    candidate: Candidate
    misses: tuple[Miss, ...]
    on_front: bool
    dominated_by: Domination | None
    rank: int | None

    @property
    def eligible(self) -> bool:
        return self.candidate.unavailable is None and not self.misses

    @property
    def ruled_out(self) -> str | None:
        """Why it cannot be chosen: not measured for the target, or the limits it misses."""
        if self.candidate.unavailable:
            return self.candidate.unavailable
        return "; ".join(m.text for m in self.misses) or None

    def to_dict(self) -> dict[str, Any]:
        return {**self.candidate.to_dict(), "eligible": self.eligible, "rank": self.rank, "on_front": self.on_front,
                "dominated_by": self.dominated_by.by if self.dominated_by else None,
                "better_on": list(self.dominated_by.better_on) if self.dominated_by else [],
                "misses": [m.to_dict() for m in self.misses], "ruled_out": self.ruled_out}


@dataclass(frozen=True)
class Binding:
    """When nothing meets the constraints: the limit that binds, and the candidates that
    would meet the others if it were lifted alone (empty when lifting any one limit admits
    none: then it is the limit the closest candidate misses by most)."""

    limit: str
    bound: float
    admits: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"limit": self.limit, "bound": self.bound, "admits": list(self.admits)}


@dataclass(frozen=True)
class Recommendation:
    """The answer of :func:`recommend`. ``assessments``: every pathway point of the tier
    and data, the eligible ones first in rank order, then those that miss a limit, then
    those not measured for the target."""

    tier: str
    data_id: str
    target: str | None
    objective: Figure
    constraints: Constraints
    assessments: tuple[Assessment, ...]
    front: Front
    binding: Binding | None
    closest: tuple[Assessment, ...]

    def _ranked(self, rank: int) -> Candidate | None:
        return next((a.candidate for a in self.assessments if a.rank == rank), None)

    @property
    def choice(self) -> Candidate | None:
        return self._ranked(0)

    @property
    def runner_up(self) -> Candidate | None:
        return self._ranked(1)

    def assessment(self, point: str) -> Assessment:
        return next(a for a in self.assessments if a.candidate.point == point)

    def to_dict(self) -> dict[str, Any]:
        objective = {"name": self.objective.name, "direction": self.objective.direction,
                     "metric": self.objective.metric, "label": self.objective.label_for(self.target)}
        figures = {name: {"metric": f.metric, "unit": f.spec.unit, "better": str(f.spec.better),
                          "label": f.label_for(self.target)} for name, f in FIGURES.items()}
        return {"tier": self.tier, "data_id": self.data_id, "target": self.target, "objective": objective,
                "constraints": self.constraints.to_dict(), "figures": figures,
                "choice": self.choice.to_dict() if self.choice else None,
                "runner_up": self.runner_up.to_dict() if self.runner_up else None,
                "retrain_s": self.choice.value("retrain") if self.choice else None,
                "front": self.front.points(), "objectives": list(self.front.objectives),
                "binding": self.binding.to_dict() if self.binding else None,
                "closest": [a.candidate.point for a in self.closest],
                "candidates": [a.to_dict() for a in self.assessments]}


def _rank_key(objective: Figure, c: Candidate) -> tuple:
    """The objective first; ties to higher accuracy, then smaller gzip size."""
    def oriented(value: float | None, maximise: bool) -> float:
        return math.inf if value is None else (-value if maximise else value)

    return (oriented(c.value(objective.name), objective.maximise), oriented(c.value("accuracy"), True),
            oriented(c.value("size"), False), c.point)


def _binding(constraints: Constraints, pool: Sequence[Candidate],
             missed: Mapping[str, tuple[Miss, ...]]) -> tuple[Binding | None, tuple[str, ...]]:
    """The binding limit, and the points ordered from closest to farthest: fewest limits
    missed, then the smallest sum of relative shortfalls (:attr:`Miss.shortfall`)."""
    active = constraints.active()
    if not active or not pool:
        return None, ()
    order = sorted(pool, key=lambda c: (len(missed[c.point]), sum(m.shortfall for m in missed[c.point]), c.point))
    options = []
    for limit, bound in active:
        admits = [c for c in order if [m.limit for m in missed[c.point]] == [limit.name]]
        if admits:
            options.append((-len(admits), missed[admits[0].point][0].shortfall, limit, bound, admits))
    if options:
        _, _, limit, bound, admits = min(options, key=lambda o: o[:2])
        return Binding(limit.name, bound, tuple(c.point for c in admits)), tuple(c.point for c in order)
    worst = max(missed[order[0].point], key=lambda m: m.shortfall)
    return Binding(worst.limit, worst.bound, ()), tuple(c.point for c in order)


#: How many of the closest candidates a recommendation that found none names.
CLOSEST = 3


def recommend(rows: Sequence[dict], *, tier: str = "smoke", data_id: str | None = None,
              target: str | None = DEFAULT_TARGET, constraints: Constraints = Constraints(),
              objective: str | None = None) -> Recommendation:
    """The pathway point of ``tier`` on ``data_id`` (default :func:`default_data`) that
    best meets ``objective`` for ``target`` within ``constraints``, from history ``rows``
    (as :func:`kws.matrix.history.read_history` returns them). ``objective``: a name of
    :data:`OBJECTIVES`, minimised or maximised as its metric's better direction says
    (default latency, or size with ``target=None``). Ties go to higher accuracy, then
    smaller gzip size. ``target=None``: no NPU; every case is a candidate and the Vela
    figures are neither objectives nor limits."""
    if not rows:
        raise HistoryError("the history is empty: no benchmark case has been recorded")
    objective = objective or (DEFAULT_OBJECTIVE if target else DEFAULT_OBJECTIVE_WITHOUT_TARGET)
    goal = get_objective(objective)
    if target is None:
        needs = [limit.name for limit, _ in constraints.active() if FIGURES[limit.figure].per_target]
        if goal.per_target or needs:
            what = f"objective {goal.name!r}" if goal.per_target else f"limit {needs[0]}"
            raise AdvisorError(f"{what} is a Vela figure: it needs a target")
    data_id = data_id or default_data(rows, tier)
    cases = _latest(rows, tier, data_id)
    if not cases:
        known = sorted({r.get("data_id", "?") for r in rows if r["tier"] == tier})
        raise HistoryError(f"the history has no rows of tier {tier!r} on data {data_id!r}; "
                           f"it has data {', '.join(known)}")
    if target is not None:
        from kws.matrix.report import targets_in

        known = targets_in(cases.values())
        if target not in known:
            has = f"it has {', '.join(known)}" if known else "it has no Vela estimates at all"
            raise UnknownTargetError(f"no Vela estimates for target {target!r} in tier {tier!r} on {data_id}; {has}")
    pool = candidates(rows, tier=tier, data_id=data_id, target=target)
    usable = [c for c in pool if c.unavailable is None]
    front = pareto_front(usable)
    missed = {c.point: misses(c, constraints, target) for c in usable}
    eligible = sorted((c for c in usable if not missed[c.point]), key=lambda c: _rank_key(goal, c))
    rank = {c.point: i for i, c in enumerate(eligible)}
    others = sorted((c for c in usable if missed[c.point]), key=lambda c: _rank_key(goal, c))
    on_front = set(front.points())
    assessments = tuple(
        Assessment(c, missed.get(c.point, ()), c.point in on_front, front.dominated.get(c.point), rank.get(c.point))
        for c in (*eligible, *others, *(c for c in pool if c.unavailable is not None)))
    binding, closest = (None, ()) if eligible else _binding(constraints, others, missed)
    by_point = {a.candidate.point: a for a in assessments}
    return Recommendation(tier, data_id, target, goal, constraints, assessments, front, binding,
                          tuple(by_point[p] for p in closest[:CLOSEST]))


# ----- reading the history -------------------------------------------------------------------


def default_data(rows: Sequence[dict], tier: str) -> str:
    """The data of ``tier``'s rows: the only one, or the one of its newest row."""
    mine = [r for r in rows if r["tier"] == tier]
    if not mine:
        tiers = sorted({r["tier"] for r in rows})
        raise HistoryError(f"the history has no rows of tier {tier!r}; it has {', '.join(tiers) or 'none'}")
    newest = max(enumerate(mine), key=lambda ir: (str(ir[1].get("time", "")), ir[0]))[1]
    return newest.get("data_id", "?")


def load_history(path: Path | str) -> tuple[list[dict], list[str]]:
    """The rows of a history file and the lines left out of it (see
    :func:`kws.matrix.history.read_history`). Raises :class:`HistoryError` for a missing
    or empty file, and for one of which no line is a history row (another JSON file, a
    binary file)."""
    from kws.matrix.history import read_history

    path = Path(path)
    if path.is_dir():
        raise HistoryError(f"{path} is a folder, not a history file")
    if not path.is_file():
        raise HistoryError(f"no history at {path}: run the benchmark, or name the file")
    problems: list[str] = []
    try:
        rows = read_history(path, problems)
    except UnicodeDecodeError:
        raise HistoryError(f"{path} is not a benchmark history: it is not a text file") from None
    if not rows and problems:
        first = problems[0].removeprefix(f"{path}:")
        raise HistoryError(f"{path} is not a benchmark history: none of its {len(problems)} line(s) is a "
                           f"history row (line {first})")
    if not rows:
        raise HistoryError(f"the history {path} is empty: no benchmark case has been recorded")
    return rows, problems
