"""The benchmark matrix: tiers read from a declarative TOML grid, and the cases generated
from the pathway registry and that grid (never listed by hand).

A :class:`Case` is one pathway at one point of its hyperparameters, one seed, in one
tier. Its :attr:`Case.slug` (``pcqat-s0.50-c16-seed0``) is its pytest id and its key in
``results/``; :attr:`Case.group` names the tree prefix it shares with other cases, so
pytest-xdist (``--dist loadgroup``) sends cases that reuse the same trained stages to the
same worker.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from kws._fs import read_toml
from kws.pathways.axes import AXES, Point
from kws.pathways.base import FineTune, Preserve
from kws.pathways.registry import PATHWAYS, Pathway, make_point
from kws.pipeline.spec import RunSpec
from kws.train import TrainConfig

TIERS = ("smoke", "nightly", "paper")
DATA_MODES = ("default", "required")
_TIER_KEYS = {"description", "seeds", "baseline_epochs", "finetune_epochs", "data", "pathways",
              "axes", "pathway_axes", "model", "frontend", "learning_rates", "finetune_learning_rate",
              "points", "frontends"}
#: A front-end variant's label: its fragment of case ids (``-fe8k``).
_FRONTEND_LABEL = re.compile(r"^[a-z0-9]{1,16}$")
#: Keys of a named point (``[[tiers.NAME.points]]``) besides the axes of its pathway.
_POINT_KEYS = {"name", "pathway", "study", "trial"}


class GridError(ValueError):
    """The grid file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Tier:
    """``axes``: the values of each axis the tier varies (an axis it does not list keeps
    its default); ``pathway_axes``: per-pathway replacements."""

    name: str
    description: str
    seeds: tuple[int, ...]
    baseline_epochs: int
    finetune_epochs: int
    data: str
    axes: dict = field(hash=False)
    pathway_axes: dict = field(hash=False, default_factory=dict)
    pathways: tuple[str, ...] = tuple(PATHWAYS)
    model: str = "ds-cnn-s"
    frontend: str = "mlperf-tiny"
    learning_rates: tuple[float, ...] = TrainConfig.learning_rates
    finetune_learning_rate: float = FineTune.learning_rate
    # Named points outside the product of the axes (``kws search promote`` writes them):
    # (name, pathway, {axis: value}).
    points: tuple = field(default=(), hash=False)
    # Front-end variants beside ``frontend``: {label: spec}; each runs every case of the
    # tier again on its own features and its own baseline, ids marked ``-fe<label>``.
    frontends: dict = field(default_factory=dict, hash=False)

    def axes_of(self, pathway: Pathway) -> dict[str, tuple]:
        """The axes ``pathway`` takes, with this tier's per-pathway replacements."""
        axes = {**self.axes, **self.pathway_axes.get(pathway.name, {})}
        return {name: tuple(axes.get(name, (AXES[name].default,))) for name in pathway.takes}

    def spec(self, seed: int, frontend: str | None = None) -> RunSpec:
        """The run spec at ``seed``, on ``frontend`` (default: the tier's own)."""
        from kws.models import parse_model

        return RunSpec(model=parse_model(self.model), frontend=frontend or self.frontend,
                       baseline=TrainConfig(epochs=self.baseline_epochs, learning_rates=self.learning_rates),
                       finetune=FineTune(epochs=self.finetune_epochs, learning_rate=self.finetune_learning_rate),
                       seed=seed)


@dataclass(frozen=True)
class Case:
    """One pathway at one grid point, with one run spec (seed included), in one tier."""

    pathway: str
    point: Point
    tier: str
    spec: RunSpec = RunSpec()
    frontend_label: str = ""  # a front-end variant of the tier ("": the tier's own)

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def family(self) -> str:
        # Plain strings: mark names travel between pytest-xdist processes in reports.
        return PATHWAYS[self.pathway].family.value

    @property
    def takes(self) -> tuple[str, ...]:
        return PATHWAYS[self.pathway].takes

    @property
    def export(self) -> str:
        return PATHWAYS[self.pathway].export.value

    @property
    def promises(self) -> dict[Preserve, object]:
        """What the deployed model is promised to show (from the pathway's stages)."""
        return PATHWAYS[self.pathway].promises(self.point)

    @property
    def slug(self) -> str:
        return slug(self.pathway, self.point, self.seed, self.frontend_label)

    @property
    def group(self) -> str:
        """Cases with the same group share trained stages: the baseline (same seed) and
        the first technique stage with its parameters."""
        pathway = PATHWAYS[self.pathway]
        stages = [s.with_finetune(self.spec.finetune) for s in pathway.stages(self.point)]
        first = f"{stages[0].family}-{_digest(stages[0].params())}" if stages else "baseline"
        model = pathway.model(self.spec.model, self.point).slug
        frontend = f"-fe{self.frontend_label}" if self.frontend_label else ""
        return f"{self.tier}-seed{self.seed}{frontend}-{model}-{first}"

    def config(self) -> dict:
        """Everything that defines the case's result, for history keys."""
        taken = {k: v for k, v in self.point.to_dict().items() if k in self.takes}
        params = {**taken, "epochs": self.spec.finetune.epochs,
                  "learning_rate": self.spec.finetune.learning_rate, "seed": self.seed}
        return {"pathway": self.pathway, "params": params, "model": self.spec.model.slug,
                "frontend": self.spec.frontend_name, "baseline_epochs": self.spec.baseline.epochs}

    def config_key(self, data_id: str) -> str:
        return _digest({**self.config(), "data": data_id})


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def slug(pathway: str, point: Point, seed: int, frontend_label: str = "") -> str:
    """The case id: the pathway, each axis value's fragment (:mod:`kws.pathways.axes`),
    then the seed.

    ``p-s0.75-seed0``, ``p-s0.75-poly-seed0`` (polynomial schedule), ``c-c16-seed0``,
    ``pcqat-s0.50-c32-seed1``, ``alpha-a0.50-seed0``, ``p24qat-seed1``, ``ptq_int8-seed0``.
    An axis at a default that defines no point (the constant schedule) adds nothing, so
    ids stay short and stable. A front-end variant of the tier adds ``fe<label>`` before
    the seed (``ptq_int8-fe8k-seed0``); the tier's own front-end adds nothing."""
    taken = Point({n: v for n, v in point.items() if n in PATHWAYS[pathway].takes})
    frontend = [f"fe{frontend_label}"] if frontend_label else []
    return "-".join([pathway, *taken.fragments(), *frontend, f"seed{seed}"])


# ----- reading the grid -----------------------------------------------------------------


def load_grid(path: Path) -> dict[str, Tier]:
    """The tiers of the grid file at ``path``, validated (unknown keys, pathways, axis
    names and out-of-range values all fail with the file and entry named)."""
    path = Path(path)
    raw = read_toml(path, GridError, "grid file")
    tiers = raw.get("tiers")
    if not isinstance(tiers, dict) or not tiers:
        raise GridError(f"{path}: needs [tiers.<name>] tables")
    return {name: _tier(path, name, entry) for name, entry in tiers.items()}


def _tier(path: Path, name: str, entry: dict) -> Tier:
    where = f"{path}: [tiers.{name}]"
    unknown = sorted(set(entry) - _TIER_KEYS)
    if unknown:
        raise GridError(f"{where}: unknown key(s) {unknown}; valid: {sorted(_TIER_KEYS)}")
    missing = sorted({"seeds", "baseline_epochs", "finetune_epochs"} - set(entry))
    if missing:
        raise GridError(f"{where}: missing {missing}")
    data = entry.get("data", "default")
    if data not in DATA_MODES:
        raise GridError(f"{where}: data must be one of {DATA_MODES}, got {data!r}")
    pathways = tuple(entry.get("pathways", PATHWAYS))
    bad = sorted(set(pathways) - set(PATHWAYS))
    if bad:
        raise GridError(f"{where}: unknown pathway(s) {bad}; valid: {', '.join(PATHWAYS)}")
    axes = _axes(f"{where}.axes", entry.get("axes", {}))
    pathway_axes = {}
    for pname, over in entry.get("pathway_axes", {}).items():
        if pname not in PATHWAYS:
            raise GridError(f"{where}.pathway_axes: unknown pathway {pname!r}")
        pathway_axes[pname] = _axes(f"{where}.pathway_axes.{pname}", over)
    seeds = tuple(entry["seeds"])
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise GridError(f"{where}: seeds must be a non-empty list of integers >= 0, got {list(seeds)}")
    for key in ("baseline_epochs", "finetune_epochs"):
        if not isinstance(entry[key], int) or entry[key] < 1:
            raise GridError(f"{where}: {key} must be an integer >= 1, got {entry[key]!r}")
    rates = entry.get("learning_rates", list(TrainConfig.learning_rates))
    if (not isinstance(rates, list) or not rates
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r > 0 for r in rates)):
        raise GridError(f"{where}: learning_rates must be a non-empty list of numbers > 0, got {rates!r}")
    finetune_rate = entry.get("finetune_learning_rate", FineTune.learning_rate)
    if isinstance(finetune_rate, bool) or not isinstance(finetune_rate, (int, float)) or finetune_rate <= 0:
        raise GridError(f"{where}: finetune_learning_rate must be a number > 0, got {finetune_rate!r}")
    points = tuple(_point(f"{where}.points", i, p) for i, p in enumerate(entry.get("points", [])))
    frontends = _frontends(f"{where}.frontends", entry.get("frontends", {}),
                           entry.get("frontend", "mlperf-tiny"))
    tier = Tier(name=name, description=entry.get("description", ""), seeds=seeds,
                baseline_epochs=entry["baseline_epochs"], finetune_epochs=entry["finetune_epochs"],
                data=data, axes=axes, pathway_axes=pathway_axes, pathways=pathways,
                model=entry.get("model", "ds-cnn-s"), frontend=entry.get("frontend", "mlperf-tiny"),
                learning_rates=tuple(float(r) for r in rates), finetune_learning_rate=float(finetune_rate),
                points=points, frontends=frontends)
    try:
        generate(tier)  # every point must be a valid case
    except ValueError as exc:
        raise GridError(f"{where}: {exc}") from None
    return tier


def _axes(where: str, axes: dict) -> dict[str, tuple]:
    unknown = sorted(set(axes) - set(AXES))
    if unknown:
        raise GridError(f"{where}: unknown axis {unknown}; valid: {list(AXES)}")
    out = {}
    for name, values in axes.items():
        # A tuple-valued axis (filter_ratios) lists its values as lists: compared as tuples.
        values = [tuple(v) if isinstance(v, list) else v for v in values] if isinstance(values, list) else values
        if not isinstance(values, list) or not values or len(set(values)) != len(values):
            raise GridError(f"{where}: {name} must be a non-empty list of distinct values, got {values!r}")
        out[name] = tuple(values)
    return out


def _frontends(where: str, table, default: str) -> dict[str, str]:
    """``{label: spec}``: each label a short name of lower-case letters and digits, each
    spec a front-end ``kws.features.get_frontend`` reads, none the tier's own."""
    from kws.features import get_frontend

    if not isinstance(table, dict):
        raise GridError(f"{where}: a table of label = \"front-end spec\" expected, got {table!r}")
    seen = {get_frontend(default): "the tier's frontend"}
    for label, spec in table.items():
        if not _FRONTEND_LABEL.match(label):
            raise GridError(f"{where}: label {label!r} must be 1-16 lower-case letters or digits (it goes into "
                            "case ids)")
        try:
            parsed = get_frontend(spec) if isinstance(spec, str) else None
        except (ValueError, TypeError) as exc:
            raise GridError(f"{where}.{label}: {exc}") from None
        if parsed is None:
            raise GridError(f"{where}.{label}: a front-end spec string expected, got {spec!r}")
        if parsed in seen:
            raise GridError(f"{where}.{label}: computes the same features as {seen[parsed]}")
        seen[parsed] = label
    return dict(table)


def _point(where: str, index: int, entry) -> tuple[str, str, dict]:
    """One named point: ``name``, ``pathway`` and the axis values it takes (``study`` and
    ``trial`` say which search found it)."""
    if not isinstance(entry, dict):
        raise GridError(f"{where}[{index}]: a table expected, got {entry!r}")
    name, pathway = entry.get("name"), entry.get("pathway")
    if not isinstance(name, str) or not name:
        raise GridError(f"{where}[{index}]: needs a name")
    if pathway not in PATHWAYS:
        raise GridError(f"{where}[{index}] ({name}): unknown pathway {pathway!r}; valid: {', '.join(PATHWAYS)}")
    axes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in entry.items() if k not in _POINT_KEYS}
    foreign = sorted(set(axes) - set(PATHWAYS[pathway].takes))
    if foreign:
        raise GridError(f"{where}[{index}] ({name}): {', '.join(foreign)} is not an axis of {pathway} "
                        f"(it takes {', '.join(PATHWAYS[pathway].takes) or 'none'})")
    return name, pathway, axes


def generate(tier: Tier) -> list[Case]:
    """Every case of ``tier``: pathway x the product of the axes it takes x seed. Values
    are validated through the axes table (a bad value fails here, before training)."""
    from kws.models import parse_model

    model = parse_model(tier.model)
    cases = []
    for label, frontend in [("", tier.frontend), *tier.frontends.items()]:
        for seed in tier.seeds:
            spec = tier.spec(seed, frontend)
            for name in tier.pathways:
                pathway = PATHWAYS[name]
                axes = tier.axes_of(pathway)
                for values in itertools.product(*axes.values()):
                    point = make_point(pathway, model, **dict(zip(axes, values)))
                    cases.append(Case(name, point, tier.name, spec, label))
            for point_name, name, values in tier.points:
                try:
                    point = make_point(PATHWAYS[name], model, **values)
                except ValueError as exc:
                    raise ValueError(f"point {point_name}: {exc}") from None
                cases.append(Case(name, point, tier.name, spec, label))
    slugs = [c.slug for c in cases]
    duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
    if duplicates:
        raise ValueError(f"duplicate case ids {duplicates}")
    return cases
