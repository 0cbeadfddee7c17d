"""The hyperparameter axes of the deployment tree, declared once.

Each :class:`Axis` says its name, type, default, how a value is checked, the fragment it
adds to a case id and the command-line flag it becomes. Parameter validation
(:func:`kws.pathways.registry.make_point`), case ids (:func:`kws.matrix.grid.slug`),
``kws run``'s flags and the grid file's validation all read this table, so a new axis
is one entry here plus the stage that uses it.

Each axis also declares where a search may look (:class:`SearchDim`): a float range on a
step grid, a few candidate values, or one range per layer group (``filter_ratios``), so a
search asks :meth:`Axis.dims` what to sample and :meth:`Axis.from_dims` for the value,
whatever the axis.

A :class:`Point` is one value per axis a pathway takes: a grid point. What is not a grid
point (model, front-end, data, recipes, seed) lives in :class:`kws.pipeline.RunSpec`.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kws.models import ModelSpec, filter_groups


class Schedule(enum.StrEnum):
    """How pruning reaches its sparsity: at once, or along a polynomial ramp."""

    CONSTANT = "constant"
    POLYNOMIAL = "polynomial"


def number_fragment(value: float) -> str:
    """0.5 -> '0.50', 0.875 -> '0.875': two decimals at least, more only when needed."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _open_unit(name: str, example: str) -> Callable[[Any, ModelSpec], None]:
    def check(value, model):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), e.g. {example}; got {value}")
    return check


def min_weights_per_channel(model: ModelSpec) -> tuple[str, int]:
    """The clusterable layer with the fewest weights per output channel (TFMOT skips a
    layer whose channels hold fewer weights than the number of clusters)."""
    return model.min_weights_per_channel()


def _check_clusters(value: int, model: ModelSpec) -> None:
    layer, limit = min_weights_per_channel(model)
    if not 2 <= value <= limit:
        raise ValueError(f"clusters must be in [2, {limit}] for {model.slug} ({layer} has {limit} "
                         f"weights per output channel); got {value}")


def _check_ratios(value: tuple[float, ...], model: ModelSpec) -> None:
    groups = filter_groups(model)
    given = ",".join(f"{v:g}" for v in value)
    if len(value) not in (1, len(groups)):
        raise ValueError(f"filter_ratios needs {len(groups)} ratios for {model.slug}, one per layer group "
                         f"({', '.join(groups)}), or one for every group; got {len(value)}: {given}")
    for group, ratio in zip(groups, value * len(groups) if len(value) == 1 else value):
        if not 0 <= ratio < 1:
            where = "every group" if len(value) == 1 else f"{group} in {given}"
            raise ValueError(f"filter_ratios must each be in [0, 1) (the fraction of a group's filters "
                             f"removed); got {ratio:g} for {where}")


def _parse_ratios(raw: Any) -> tuple[float, ...]:
    """``"0.2,0.3,0"`` (the command line), a list or tuple of numbers (TOML, JSON) or one
    number -> a tuple of floats."""
    items = raw.split(",") if isinstance(raw, str) else raw if isinstance(raw, (list, tuple)) else (raw,)
    values = [_finite(item, isinstance(raw, str)) for item in items]
    if not values or None in values:
        raise ValueError(f"filter_ratios must be numbers separated by commas, one per layer group or one "
                         f"for every group (e.g. 0.2,0.3,0,0.1,0.25 or 0.5); got {raw!r}")
    return tuple(values)


def _finite(item: Any, text: bool) -> float | None:
    if isinstance(item, bool) or not isinstance(item, (str, int, float)) or isinstance(item, str) != text:
        return None
    try:
        value = float(item)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _percent(ratio: float) -> str:
    """0.2 -> '20', 0 -> '00', 0.125 -> '12.5': whole percentages in two digits, others
    with the decimals they need."""
    pct = round(ratio * 100, 4) + 0.0  # + 0.0: -0.0 reads as 0
    return f"{int(pct):02d}" if pct.is_integer() else f"{pct:.4f}".rstrip("0")


def ratios_fragment(ratios: tuple[float, ...]) -> str:
    """(0.2, 0.3, 0.0, 0.1, 0.25) -> 'r20-30-00-10-25'; the one-ratio (0.5,) -> 'r50'."""
    return "r" + "-".join(_percent(r) for r in ratios)


@dataclass(frozen=True)
class SearchDim:
    """One dimension of a search space: a float or integer range (sampled on a grid of
    ``step`` where given, on a log scale where ``log``), or a choice among ``choices``
    (plain JSON values)."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def __post_init__(self):
        if self.kind not in ("float", "int", "categorical"):
            raise ValueError(f"search dimension {self.name}: kind must be float, int or categorical, "
                             f"got {self.kind!r}")
        if self.kind == "categorical" and not self.choices:
            raise ValueError(f"search dimension {self.name}: a categorical dimension needs choices")
        if self.kind != "categorical" and not (self.low is not None and self.high is not None
                                               and self.low <= self.high):
            raise ValueError(f"search dimension {self.name}: needs low <= high, got {self.low}, {self.high}")


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


@dataclass(frozen=True)
class Axis:
    """One hyperparameter axis.

    ``parse`` turns a command-line string or a TOML value into the typed value (raising
    ``ValueError`` with the valid choices); ``check`` validates it for a model;
    ``fragment`` is its part of a case id, or ``None`` where the value is the default
    that defines no point of its own (the constant schedule); ``parser``, where set,
    replaces the scalar parsing (a list-valued axis).

    Where a search looks: ``span`` = (low, high, step) of a numeric axis, sampled on that
    grid; ``candidates``, the values it picks among instead (those ``check`` rejects for
    the model left out); ``parts``, where the value holds one number per part of the model
    (a layer group), the parts' names, each then a dimension ``<axis>.<part>`` over
    ``span``."""

    name: str
    type: type
    default: Any
    help: str
    fragment: Callable[[Any], str | None]
    check: Callable[[Any, ModelSpec], None] = lambda value, model: None
    choices: tuple = field(default=())
    parser: Callable[[Any], Any] | None = None
    span: tuple[float, float, float] | None = None
    candidates: tuple = ()
    parts: Callable[[ModelSpec], tuple[str, ...]] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def text(self, value: Any) -> str:
        """``value`` as the command line writes it (what :meth:`parse` reads back)."""
        if isinstance(value, (list, tuple)):
            return ",".join(f"{v:g}" for v in value)
        return str(_plain(value))

    def parse(self, raw: Any) -> Any:
        if self.parser is not None:
            return self.parser(raw)
        if self.choices:
            valid = [str(c) for c in self.choices]
            if str(raw) not in valid:
                raise ValueError(f"{self.name} must be one of {', '.join(valid)}; got {raw!r}")
            return self.type(raw)
        if isinstance(raw, bool) or (self.type is int and isinstance(raw, float)):
            raise ValueError(f"{self.name} must be {'an integer' if self.type is int else 'a number'}; got {raw!r}")
        try:
            return self.type(raw)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be {'an integer' if self.type is int else 'a number'}; "
                             f"got {raw!r}") from None

    def validate(self, value: Any, model: ModelSpec) -> Any:
        value = self.parse(value)
        self.check(value, model)
        return value

    def dims(self, model: ModelSpec) -> tuple[SearchDim, ...]:
        """The dimensions this axis adds to a search for ``model``: one named after the
        axis, or one per part (``filter_ratios.pw_1``)."""
        if self.candidates:
            valid = tuple(_plain(c) for c in self.candidates if self._accepts(c, model))
            if not valid:
                raise ValueError(f"{self.name}: none of the search candidates {list(map(_plain, self.candidates))} "
                                 f"is valid for {model.slug}")
            return (SearchDim(self.name, "categorical", choices=valid),)
        if self.span is None:
            raise ValueError(f"axis {self.name} declares no search range (span or candidates)")
        low, high, step = self.span
        kind = "int" if self.type is int else "float"
        return tuple(SearchDim(name, kind, low, high, step) for name in self._dim_names(model))

    def from_dims(self, values: Mapping[str, Any], model: ModelSpec) -> Any:
        """The validated axis value from sampled dimension values (floats snapped to the
        step grid: a sampler's 0.30000000000000004 is 0.3)."""
        names = self._dim_names(model)
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"{self.name}: no value for search dimension(s) {', '.join(missing)}")
        sampled = [self._snap(values[n]) for n in names]
        return self.validate(tuple(sampled) if self.parts else sampled[0], model)

    def _dim_names(self, model: ModelSpec) -> tuple[str, ...]:
        if self.parts is None or self.candidates:
            return (self.name,)
        return tuple(f"{self.name}.{part}" for part in self.parts(model))

    def _snap(self, value: Any) -> Any:
        if self.span is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        low, _, step = self.span
        snapped = round(low + round((value - low) / step) * step, 6)
        return int(snapped) if self.type is int else snapped

    def _accepts(self, value: Any, model: ModelSpec) -> bool:
        try:
            self.validate(value, model)
        except ValueError:
            return False
        return True


#: The axes, in the order their fragments appear in case ids.
#: ``filter_ratios`` defaults to one ratio, which stands for every layer group, so the
#: default holds for every model whatever its number of blocks.
AXES: dict[str, Axis] = {a.name: a for a in (
    Axis("sparsity", float, 0.5, "fraction of zero weights (pruning) or of removed filters, in (0, 1)",
         lambda v: f"s{number_fragment(v)}", _open_unit("sparsity", "0.5, 0.75, 0.875"),
         span=(0.30, 0.90, 0.05)),
    Axis("schedule", Schedule, Schedule.CONSTANT, "pruning schedule",
         lambda v: None if v == Schedule.CONSTANT else {Schedule.POLYNOMIAL: "poly"}.get(v, str(v)),
         choices=tuple(Schedule), candidates=tuple(Schedule)),
    Axis("clusters", int, 16, "clusters per tensor (or per channel)", lambda v: f"c{v}", _check_clusters,
         candidates=(4, 8, 16, 32)),
    Axis("alpha", float, 0.5, "width multiplier, in (0, 1)", lambda v: f"a{number_fragment(v)}",
         _open_unit("alpha", "0.3-0.75"), span=(0.30, 0.95, 0.05)),
    Axis("filter_ratios", tuple, (0.5,), "fraction of each layer group's filters removed, in [0, 1), "
         "comma-separated in chain order (conv_1, pw_1 ... pw_N), or one ratio for every group",
         ratios_fragment, _check_ratios, parser=_parse_ratios, span=(0.0, 0.75, 0.05), parts=filter_groups),
)}


class Point(Mapping):
    """The values of the axes one pathway takes (immutable, hashable). Reading an axis the
    point does not hold gives that axis's default, so a stage factory reads
    ``point.sparsity`` whatever the pathway."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, /, **kwargs):
        values = {**(values or {}), **kwargs}
        unknown = sorted(set(values) - set(AXES))
        if unknown:
            raise ValueError(f"unknown axis {unknown}; valid: {list(AXES)}")
        # Axis order, so equal points compare, hash and print alike; a list (a tuple read
        # back from JSON) becomes the tuple it was.
        object.__setattr__(self, "_values", tuple(
            (n, tuple(values[n]) if isinstance(values[n], list) else values[n]) for n in AXES if n in values))

    def __getitem__(self, name: str) -> Any:
        return dict(self._values)[name]

    def __iter__(self) -> Iterator[str]:
        return (n for n, _ in self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values = dict(self._values)
        if name in values:
            return values[name]
        if name in AXES:
            return AXES[name].default
        raise AttributeError(f"no axis {name!r}; valid: {list(AXES)}")

    def __setattr__(self, name, value):
        raise AttributeError("a Point is immutable")

    def __reduce__(self):
        # Pickled as its values (a case runs in a child process): rebuilt through __init__.
        return (Point, (dict(self._values),))

    def __hash__(self) -> int:
        return hash(self._values)

    def __eq__(self, other) -> bool:
        return isinstance(other, Point) and self._values == other._values

    def __repr__(self) -> str:
        return f"Point({', '.join(f'{n}={v!r}' for n, v in self._values)})"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (enums as their strings, tuples as lists)."""
        return {n: list(v) if isinstance(v, tuple) else _plain(v) for n, v in self._values}

    def fragments(self) -> list[str]:
        return [f for n, v in self._values if (f := AXES[n].fragment(v)) is not None]
