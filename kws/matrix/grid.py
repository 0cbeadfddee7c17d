"""The benchmark matrix: tiers read from a declarative TOML grid, and the cases generated
from the pathway registry and that grid (never listed by hand).

A :class:`Case` is one pathway at one point of its hyperparameters, one seed, in one
tier. Its :attr:`Case.slug` (``pcqat-s0.50-c16-seed0``) is its pytest id and its key in
``results/``; :attr:`Case.group` names the tree prefix it shares with other cases, so
pytest-xdist (``--dist loadgroup``) sends cases that reuse the same trained stages to the
same worker.

A tier runs its own model and front-end, and may run variants of either beside them:
front-ends (``[tiers.T.frontends]``, ids marked ``-fe<label>``) and models
(``[tiers.T.models.<label>]``, :class:`ModelVariant`, ids marked ``-<label>``). Neither
adds anything to the ids of the tier's own cases.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from kws._fs import read_toml
from kws.data.config import ARM_LABELS
from kws.models import ARCHITECTURES, ModelConfig, parse_model
from kws.pathways.axes import AXES, Point
from kws.pathways.base import FineTune, Preserve
from kws.pathways.registry import PATHWAYS, Pathway, make_point
from kws.pipeline.spec import RunSpec
from kws.train import TrainConfig

TIERS = ("smoke", "nightly", "paper", "tradeoffs")
DATA_MODES = ("default", "required")
_TIER_KEYS = {"description", "seeds", "baseline_epochs", "finetune_epochs", "data", "pathways",
              "axes", "pathway_axes", "model", "frontend", "learning_rates", "finetune_learning_rate",
              "points", "frontends", "models"}
#: A front-end variant's label: its fragment of case ids (``-fe8k``).
_FRONTEND_LABEL = re.compile(r"^[a-z0-9]{1,16}$")
#: A model variant's label: its fragment of case ids (``-dsl``).
_MODEL_LABEL = re.compile(r"^[a-z][a-z0-9]{0,15}$")
#: Model labels that would read as another fragment of a case id: an axis value
#: (``c16``, ``poly``, ``r50``), a front-end variant (``fe8k``), the seed.
_FRAGMENT_LIKE = re.compile(r"^(c[0-9]+|r[0-9]+|poly|fe.*|seed.*)$")
#: Keys of a model variant (``[tiers.NAME.models.LABEL]``).
_MODEL_KEYS = {"model", "alpha", "pathways", "seeds", "frontends", "axes", "pathway_axes"}
#: How a model variant's ``frontends`` names the tier's own front-end.
_OWN_FRONTEND = ("", "default")
#: Keys of a named point (``[[tiers.NAME.points]]``) besides the axes of its pathway.
_POINT_KEYS = {"name", "pathway", "study", "trial"}


class GridError(ValueError):
    """The grid file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class ModelVariant:
    """A model a tier runs beside its own (``[tiers.T.models.<label>]``): ``model`` as
    :func:`kws.models.parse_model` reads it, at width ``alpha``. Its cases carry ``label``
    in their ids and train their own baseline; the tier's named points stay on the tier's
    own model (a search found them there).

    What it leaves out (``None``) is the tier's: ``pathways`` (a subset of the tier's),
    ``seeds`` (those of the tier's seeds it runs: ``--kws-seeds`` replacing the tier's
    keeps only the ones among them), ``frontends`` (labels of the tier's front-end
    variants, ``""`` its own; default all). ``axes`` and ``pathway_axes`` replace the
    tier's values of those axes for this model (:meth:`Tier.axes_of`)."""

    label: str
    model: str
    alpha: float = 1.0
    pathways: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    frontends: tuple[str, ...] | None = None
    axes: dict = field(default_factory=dict, hash=False)
    pathway_axes: dict = field(default_factory=dict, hash=False)

    @property
    def config(self) -> ModelConfig:
        return parse_model(self.model, alpha=self.alpha)


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
    # Model variants beside ``model``: {label: ModelVariant}, ids marked ``-<label>``.
    models: dict = field(default_factory=dict, hash=False)
    # The data's label order (the model's output order); None: Arm's.
    labels: tuple[str, ...] | None = None
    # Set by :meth:`with_model`: ``model`` is the user's, not one the grid file checked.
    foreign_model: bool = False

    def with_model(self, model: str | None = None, labels: tuple[str, ...] | None = None) -> Tier:
        """This tier on another model (``--kws-model``: a model file, a factory or a
        DS-CNN name) and/or another label order (``--kws-labels``). The tier's model
        variants and named points belong to its own model and are left out; a grid value
        the model cannot take makes its case not applicable, with the reason."""
        changed = self
        if model is not None:
            changed = replace(changed, model=model, models={}, points=(), foreign_model=True)
        if labels is not None:
            changed = replace(changed, labels=tuple(labels))
        return changed

    def axes_of(self, pathway: Pathway, model: str = "") -> dict[str, tuple]:
        """The axes ``pathway`` takes, with this tier's per-pathway replacements. For model
        variant ``model`` (a label; "": the tier's own), later wins in the order: the
        tier's axes, the variant's, the tier's for the pathway, the variant's for the
        pathway (as the thresholds file resolves its limits)."""
        variant = self.variant(model) if model else None
        axes = {**self.axes, **(variant.axes if variant else {}), **self.pathway_axes.get(pathway.name, {}),
                **(variant.pathway_axes.get(pathway.name, {}) if variant else {})}
        return {name: tuple(axes.get(name, (AXES[name].default,))) for name in pathway.takes}

    def variant(self, label: str) -> ModelVariant:
        if label not in self.models:
            raise ValueError(f"tier {self.name} has no model variant {label!r}; its variants: "
                             f"{', '.join(self.models) or 'none'}")
        return self.models[label]

    def model_config(self, model: str = "") -> ModelConfig:
        """The model of variant ``model`` (a label; "": the tier's own)."""
        return self.variant(model).config if model else _model_spec(self.model)

    def spec(self, seed: int, frontend: str | None = None, model: str | None = None) -> RunSpec:
        """The run spec at ``seed``, on ``frontend`` (a front-end spec; default: the tier's
        own), of model variant ``model`` (a label; default: the tier's own model)."""
        from kws.data import DataConfig

        return RunSpec(model=self.model_config(model or ""), frontend=frontend or self.frontend,
                       data_config=DataConfig(labels=self.labels) if self.labels else DataConfig(),
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
    model_label: str = ""  # a model variant of the tier ("": the tier's own)
    # Why a grid point cannot run on a user's model (``Tier.with_model``); "": it can.
    invalid: str = field(default="", compare=False)

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
        return slug(self.pathway, self.point, self.seed, self.frontend_label, self.model_label)

    @property
    def group(self) -> str:
        """Cases with the same group share trained stages: the baseline (same seed, model
        and front-end) and the first technique stage with its parameters."""
        pathway = PATHWAYS[self.pathway]
        stages = [s.with_finetune(self.spec.finetune) for s in pathway.stages(self.point)]
        first = f"{stages[0].family}-{_digest(stages[0].params())}" if stages else "baseline"
        model = pathway.model(self.spec.model, self.point).slug
        frontend = f"-fe{self.frontend_label}" if self.frontend_label else ""
        variant = f"-{self.model_label}" if self.model_label else ""
        return f"{self.tier}-seed{self.seed}{frontend}{variant}-{model}-{first}"

    def config(self) -> dict:
        """Everything that defines the case's result, for history keys."""
        taken = {k: v for k, v in self.point.to_dict().items() if k in self.takes}
        params = {**taken, "epochs": self.spec.finetune.epochs,
                  "learning_rate": self.spec.finetune.learning_rate, "seed": self.seed}
        model = self.spec.model
        # A DS-CNN is known by its slug; a model of one's own by its content too (an
        # edited file under the same name is another configuration).
        identity = model.slug if isinstance(model, ModelConfig) else {"slug": model.slug, **model.params()}
        order = self.spec.data_config.labels
        labels = {"labels": list(order)} if order != ARM_LABELS else {}
        return {"pathway": self.pathway, "params": params, "model": identity,
                "frontend": self.spec.frontend_name, "baseline_epochs": self.spec.baseline.epochs, **labels}

    def config_key(self, data_id: str) -> str:
        return _digest({**self.config(), "data": data_id})


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def slug(pathway: str, point: Point, seed: int, frontend_label: str = "", model_label: str = "") -> str:
    """The case id: the pathway, each axis value's fragment (:mod:`kws.pathways.axes`),
    then the seed.

    ``p-s0.75-seed0``, ``p-s0.75-poly-seed0`` (polynomial schedule), ``c-c16-seed0``,
    ``pcqat-s0.50-c32-seed1``, ``alpha-a0.50-seed0``, ``p24qat-seed1``, ``ptq_int8-seed0``.
    An axis at a default that defines no point (the constant schedule) adds nothing, so
    ids stay short and stable. A model variant of the tier adds its label, then a
    front-end variant ``fe<label>``, before the seed (``ptq_int8-fe8k-seed0``,
    ``pqat-s0.50-dsl-fe8k-seed0``); the tier's own model and front-end add nothing."""
    taken = Point({n: v for n, v in point.items() if n in PATHWAYS[pathway].takes})
    model = [model_label] if model_label else []
    frontend = [f"fe{frontend_label}"] if frontend_label else []
    return "-".join([pathway, *taken.fragments(), *model, *frontend, f"seed{seed}"])


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
    pathway_axes = _pathway_axes(f"{where}.pathway_axes", entry.get("pathway_axes", {}))
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
    model = entry.get("model", "ds-cnn-s")
    models = _models(f"{where}.models", entry.get("models", {}), _model_config(where, model),
                     pathways=pathways, seeds=seeds, frontends=tuple(frontends))
    tier = Tier(name=name, description=entry.get("description", ""), seeds=seeds,
                baseline_epochs=entry["baseline_epochs"], finetune_epochs=entry["finetune_epochs"],
                data=data, axes=axes, pathway_axes=pathway_axes, pathways=pathways,
                model=model, frontend=entry.get("frontend", "mlperf-tiny"),
                learning_rates=tuple(float(r) for r in rates), finetune_learning_rate=float(finetune_rate),
                points=points, frontends=frontends, models=models)
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


def _model_config(where: str, name, alpha: float = 1.0) -> ModelConfig:
    """The model ``name`` names (``ds-cnn-m``, ``ds-cnn-s-mlperf``) at width ``alpha``."""
    if isinstance(name, str) and name.removesuffix("-mlperf") in ARCHITECTURES:
        return parse_model(name, alpha=alpha)
    raise GridError(f"{where}: unknown model {name!r}; valid: {', '.join(ARCHITECTURES)} (each optionally "
                    "-mlperf)")


def _models(where: str, table, own: ModelConfig, *, pathways: tuple[str, ...], seeds: tuple[int, ...],
            frontends: tuple[str, ...]) -> dict[str, ModelVariant]:
    """``{label: ModelVariant}``: each label a short name that starts with a letter, each
    model another than the tier's own and the other variants', each subset one of the
    tier's (``pathways``, ``seeds``, front-end ``frontends`` labels)."""
    if not isinstance(table, dict):
        raise GridError(f"{where}: [models.<label>] tables expected, got {table!r}")
    out, seen = {}, {own: "the tier's model"}
    for label, raw in table.items():
        if not _MODEL_LABEL.match(label):
            raise GridError(f"{where}: label {label!r} must be 1-16 lower-case letters or digits, starting with a "
                            "letter (it goes into case ids)")
        if _FRAGMENT_LIKE.match(label):
            raise GridError(f"{where}: label {label!r} reads as another part of a case id (an axis value such as "
                            "c16, poly or r50, a front-end variant fe<label>, the seed)")
        at = f"{where}.{label}"
        if not isinstance(raw, dict):
            raise GridError(f"{at}: a table expected, got {raw!r}")
        unknown = sorted(set(raw) - _MODEL_KEYS)
        if unknown:
            raise GridError(f"{at}: unknown key(s) {unknown}; valid: {sorted(_MODEL_KEYS)}")
        if "model" not in raw:
            raise GridError(f"{at}: missing ['model']")
        alpha = raw.get("alpha", 1.0)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
            raise GridError(f"{at}: alpha must be a number in (0, 1] (the width multiplier), got {alpha!r}")
        config = _model_config(at, raw["model"], float(alpha))
        if config in seen:
            raise GridError(f"{at}: {config.slug} is {seen[config]} already (same name and alpha)")
        seen[config] = f"the model of variant {label!r}"
        out[label] = ModelVariant(
            label, raw["model"], float(alpha),
            pathways=_subset(at, "pathways", raw.get("pathways"), pathways),
            seeds=_subset(at, "seeds", raw.get("seeds"), seeds),
            frontends=_frontend_labels(at, raw.get("frontends"), frontends),
            axes=_axes(f"{at}.axes", _table(f"{at}.axes", raw.get("axes", {}))),
            pathway_axes=_pathway_axes(f"{at}.pathway_axes", raw.get("pathway_axes", {})))
    return out


def _table(where: str, value) -> dict:
    if not isinstance(value, dict):
        raise GridError(f"{where}: a table expected, got {value!r}")
    return value


def _pathway_axes(where: str, table) -> dict[str, dict[str, tuple]]:
    out = {}
    for pname, over in _table(where, table).items():
        if pname not in PATHWAYS:
            raise GridError(f"{where}: unknown pathway {pname!r}")
        out[pname] = _axes(f"{where}.{pname}", _table(f"{where}.{pname}", over))
    return out


def _subset(where: str, key: str, values, tier: tuple) -> tuple | None:
    """A model variant's ``pathways`` (names) or ``seeds`` (integers): a non-empty list
    of distinct values among the tier's (``None``: the tier's own)."""
    if values is None:
        return None
    kind, noun = (str, "pathway names") if key == "pathways" else (int, "integers")
    if (not isinstance(values, list) or not values
            or not all(isinstance(v, kind) and not isinstance(v, bool) for v in values)
            or len(set(values)) != len(values)):
        raise GridError(f"{where}: {key} must be a non-empty list of distinct {noun}, got {values!r}")
    if key == "pathways":
        bad = sorted(set(values) - set(PATHWAYS))
        if bad:
            raise GridError(f"{where}: unknown pathway(s) {bad}; valid: {', '.join(PATHWAYS)}")
    foreign = [v for v in values if v not in tier]
    if foreign:
        raise GridError(f"{where}: {key} {foreign} are not among the tier's {key} {list(tier)} (a model "
                        "variant runs some of them)")
    return tuple(values)


def _frontend_labels(where: str, values, tier: tuple[str, ...]) -> tuple[str, ...] | None:
    """A model variant's ``frontends``: labels of the tier's front-end variants, ``""`` or
    ``"default"`` for the tier's own (``None``: all of them)."""
    if values is None:
        return None
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        raise GridError(f"{where}: frontends must be a non-empty list of the tier's front-end labels "
                        f"(\"default\" for its own), got {values!r}")
    labels = tuple("" if v in _OWN_FRONTEND else v for v in values)
    unknown = [v for v, label in zip(values, labels) if label and label not in tier]
    if unknown:
        raise GridError(f"{where}: unknown front-end label(s) {unknown}; the tier's: "
                        f"{', '.join(['default', *tier])}")
    if len(set(labels)) != len(labels):
        raise GridError(f"{where}: frontends names a front-end twice: {values!r}")
    return labels


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
    """Every case of ``tier``: pathway x the product of the axes it takes x seed, on each
    front-end, then the same for each model variant (its own pathways, seeds, front-ends
    and axes). Values are validated through the axes table on the case's model (a bad
    value fails here, before training). The tier's named points run on its own model."""
    frontends = {"": tier.frontend, **tier.frontends}
    cases = []
    for label, frontend in frontends.items():
        for seed in tier.seeds:
            spec = tier.spec(seed, frontend)
            cases += _product(tier, tier.pathways, spec, label)
            for point_name, name, values in tier.points:
                try:
                    point = make_point(PATHWAYS[name], spec.model, **values)
                except ValueError as exc:
                    raise ValueError(f"point {point_name}: {exc}") from None
                cases.append(Case(name, point, tier.name, spec, label))
    for variant in tier.models.values():
        seeds = [s for s in tier.seeds if variant.seeds is None or s in variant.seeds]
        for label in frontends if variant.frontends is None else variant.frontends:
            if label not in frontends:
                raise ValueError(f"models.{variant.label}: the tier has no front-end variant {label!r}")
            for seed in seeds:
                spec = tier.spec(seed, frontends[label], variant.label)
                try:
                    cases += _product(tier, variant.pathways or tier.pathways, spec, label, variant.label)
                except ValueError as exc:
                    raise ValueError(f"models.{variant.label}: {exc}") from None
    slugs = [c.slug for c in cases]
    duplicates = sorted({s for s in slugs if slugs.count(s) > 1})
    if duplicates:
        raise ValueError(f"duplicate case ids {duplicates}")
    return cases


def _product(tier: Tier, pathways: tuple[str, ...], spec: RunSpec, frontend_label: str,
             model_label: str = "") -> list[Case]:
    """Each of ``pathways`` at each point of the product of its axes, with ``spec``."""
    cases = []
    for name in pathways:
        pathway = PATHWAYS[name]
        axes = tier.axes_of(pathway, model_label)
        for values in itertools.product(*axes.values()):
            given = dict(zip(axes, values))
            try:
                point, invalid = make_point(pathway, spec.model, **given), ""
            except ValueError as exc:
                if not tier.foreign_model:
                    raise
                point, invalid = Point(given), str(exc)
            cases.append(Case(name, point, tier.name, spec, frontend_label, model_label, invalid))
    return cases


@functools.lru_cache(maxsize=32)
def _model_spec(text: str):
    """The model a tier names (a DS-CNN, or with ``--kws-model`` a file or a factory),
    read once per process (a file is hashed when it is read)."""
    from kws.models import parse_model_spec

    return parse_model_spec(text)
