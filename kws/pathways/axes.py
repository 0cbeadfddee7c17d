"""The hyperparameter axes of the deployment tree, declared once.

Each :class:`Axis` says its name, type, default, how a value is checked, the fragment it
adds to a case id and the command-line flag it becomes. Parameter validation
(:func:`kws.pathways.registry.make_point`), case ids (:func:`kws.matrix.grid.slug`),
``kws run``'s flags and the grid file's validation all read this table, so a new axis
is one entry here plus the stage that uses it.

A :class:`Point` is one value per axis a pathway takes: a grid point. What is not a grid
point (model, front-end, data, recipes, seed) lives in :class:`kws.pipeline.RunSpec`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from kws.models import ModelConfig


class Schedule(enum.StrEnum):
    """How pruning reaches its sparsity: at once, or along a polynomial ramp."""

    CONSTANT = "constant"
    POLYNOMIAL = "polynomial"


def number_fragment(value: float) -> str:
    """0.5 -> '0.50', 0.875 -> '0.875': two decimals at least, more only when needed."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _open_unit(name: str, example: str) -> Callable[[Any, ModelConfig], None]:
    def check(value, model):
        if not 0 < value < 1:
            raise ValueError(f"{name} must be in (0, 1), e.g. {example}; got {value}")
    return check


def min_weights_per_channel(model: ModelConfig) -> tuple[str, int]:
    """The clusterable layer with the fewest weights per output channel (TFMOT skips a
    layer whose channels hold fewer weights than the number of clusters)."""
    first = 10 * 4 * model.input_shape[-1]
    return ("conv_1", first) if first <= model.filters else ("pw_1", model.filters)


def _check_clusters(value: int, model: ModelConfig) -> None:
    layer, limit = min_weights_per_channel(model)
    if not 2 <= value <= limit:
        raise ValueError(f"clusters must be in [2, {limit}] for {model.slug} ({layer} has {limit} "
                         f"weights per output channel); got {value}")


@dataclass(frozen=True)
class Axis:
    """One hyperparameter axis.

    ``parse`` turns a command-line string or a TOML value into the typed value (raising
    ``ValueError`` with the valid choices); ``check`` validates it for a model;
    ``fragment`` is its part of a case id, or ``None`` where the value is the default
    that defines no point of its own (the constant schedule)."""

    name: str
    type: type
    default: Any
    help: str
    fragment: Callable[[Any], str | None]
    check: Callable[[Any, ModelConfig], None] = lambda value, model: None
    choices: tuple = field(default=())

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def parse(self, raw: Any) -> Any:
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

    def validate(self, value: Any, model: ModelConfig) -> Any:
        value = self.parse(value)
        self.check(value, model)
        return value


#: The axes, in the order their fragments appear in case ids.
AXES: dict[str, Axis] = {a.name: a for a in (
    Axis("sparsity", float, 0.5, "fraction of zero weights (pruning) or of removed filters, in (0, 1)",
         lambda v: f"s{number_fragment(v)}", _open_unit("sparsity", "0.5, 0.75, 0.875")),
    Axis("schedule", Schedule, Schedule.CONSTANT, "pruning schedule",
         lambda v: None if v == Schedule.CONSTANT else {Schedule.POLYNOMIAL: "poly"}.get(v, str(v)),
         choices=tuple(Schedule)),
    Axis("clusters", int, 16, "clusters per tensor (or per channel)", lambda v: f"c{v}", _check_clusters),
    Axis("alpha", float, 0.5, "width multiplier, in (0, 1)", lambda v: f"a{number_fragment(v)}",
         _open_unit("alpha", "0.3-0.75")),
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
        # Axis order, so equal points compare, hash and print alike.
        object.__setattr__(self, "_values", tuple((n, values[n]) for n in AXES if n in values))

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
        """Plain JSON values (enums as their strings)."""
        return {n: (v.value if isinstance(v, enum.Enum) else v) for n, v in self._values}

    def fragments(self) -> list[str]:
        return [f for n, v in self._values if (f := AXES[n].fragment(v)) is not None]
