"""The pathways of the deployment tree, named as the literature names them, and the axes
each one takes (declared in :mod:`kws.pathways.axes`), with the search space those axes
span for a pathway (:func:`search_space`, :func:`point_from_dims`)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kws.errors import KwsError
from kws.export import ExportKind
from kws.models import ModelConfig, ModelSpec
from kws.pathways.axes import AXES, Point, SearchDim
from kws.pathways.base import Preserve, Stage
from kws.pathways.cluster import Cluster
from kws.pathways.prune import Prune
from kws.pathways.qat import QAT


class Family(enum.StrEnum):
    """A pathway's family: its pytest mark (``-m prune``) and how reports group it."""

    PTQ = "ptq"
    QAT = "qat"
    PRUNE = "prune"
    CLUSTER = "cluster"
    STRUCTURED = "structured"


@dataclass(frozen=True)
class Pathway:
    name: str
    family: Family
    description: str
    takes: tuple[str, ...]
    export: ExportKind  # the TFLite kind it deploys as
    build_stages: Callable[[Point], list[Stage]]
    # The structured width pathway retrains the baseline itself at a smaller width.
    model: Callable[[ModelSpec, Point], ModelSpec] = lambda model, point: model

    @property
    def techniques(self) -> tuple[str, ...]:
        """What the pathway does to a model (:data:`kws.models.TECHNIQUES`): its stages'
        families (at its default point: the families do not depend on the values), and
        ``width`` where it retrains the model at a width multiplier."""
        point = Point({name: AXES[name].default for name in self.takes})
        found = [stage.family for stage in self.stages(point)]
        return tuple(dict.fromkeys([*found, *(["width"] if "alpha" in self.takes else [])]))

    def not_applicable(self, model: ModelSpec) -> str | None:
        """Why this pathway cannot run on ``model`` (a technique it needs cannot touch
        the model), or None."""
        for technique in self.techniques:
            reason = model.unsupported(technique)
            if reason:
                return f"{self.name} needs {technique}: {reason}"
        return None

    def stages(self, point: Point) -> list[Stage]:
        """The technique stages at ``point`` (fine-tuning settings at their defaults: the
        runner gives each stage the case's fine-tuning recipe)."""
        return self.build_stages(point)

    def promises(self, point: Point) -> dict[Preserve, Any]:
        """What the deployed model is promised to show: each stage's promise that the
        stages after it preserve (a pruning mask survives QAT, not filter pruning)."""
        promised: dict[Preserve, Any] = {}
        for stage in self.stages(point):
            kept = stage.preserved(frozenset(promised))
            promised = {k: v for k, v in promised.items() if k in kept}
            promised.update(stage.promises())
        return promised


def _prune(p: Point) -> Prune:
    return Prune(sparsity=p.sparsity, schedule=p.schedule)


def _prune24(p: Point) -> Prune:
    return Prune(sparsity=0.5, m_by_n=(2, 4))


def _cluster(p: Point, **kw) -> Cluster:
    return Cluster(clusters=p.clusters, **kw)


def _filter(p: Point) -> Stage:
    from kws.pathways.structured import FilterPrune

    return FilterPrune(sparsity=p.sparsity)


def _group_filter(p: Point, **kw) -> Stage:
    from kws.pathways.structured import FilterPrune

    return FilterPrune(ratios=p.filter_ratios, **kw)


F, K = Family, ExportKind
_ALL = [
    Pathway("ptq_dynamic", F.PTQ, "train -> dynamic-range int8 weights", (), K.DYNAMIC, lambda p: []),
    Pathway("ptq_fp16", F.PTQ, "train -> float16 weights", (), K.FLOAT16, lambda p: []),
    Pathway("ptq_int8", F.PTQ, "train -> full int8 (representative dataset)", (), K.INT8, lambda p: []),
    Pathway("qat", F.QAT, "train -> QAT -> int8", (), K.INT8, lambda p: [QAT()]),
    Pathway("p", F.PRUNE, "train -> prune -> int8", ("sparsity", "schedule"), K.INT8, lambda p: [_prune(p)]),
    Pathway("p_dynamic", F.PRUNE, "train -> prune -> dynamic-range int8 weights", ("sparsity", "schedule"),
            K.DYNAMIC, lambda p: [_prune(p)]),
    Pathway("p_fp16", F.PRUNE, "train -> prune -> float16 weights", ("sparsity", "schedule"), K.FLOAT16,
            lambda p: [_prune(p)]),
    Pathway("c", F.CLUSTER, "train -> cluster -> int8", ("clusters",), K.INT8, lambda p: [_cluster(p)]),
    Pathway("pc", F.CLUSTER, "train -> prune -> sparsity-preserving cluster -> int8",
            ("sparsity", "schedule", "clusters"), K.INT8, lambda p: [_prune(p), _cluster(p)]),
    Pathway("pqat", F.QAT, "train -> prune -> prune-preserving QAT -> int8",
            ("sparsity", "schedule"), K.INT8, lambda p: [_prune(p), QAT()]),
    Pathway("cqat", F.QAT, "train -> cluster -> cluster-preserving QAT -> int8",
            ("clusters",), K.INT8, lambda p: [_cluster(p), QAT()]),
    Pathway("pcqat", F.QAT, "train -> prune -> sparsity-preserving cluster -> PCQAT -> int8",
            ("sparsity", "schedule", "clusters"), K.INT8, lambda p: [_prune(p), _cluster(p), QAT()]),
    Pathway("p24", F.PRUNE, "train -> 2:4 pruning -> int8", (), K.INT8, lambda p: [_prune24(p)]),
    Pathway("p24qat", F.QAT, "train -> 2:4 pruning -> prune-preserving QAT -> int8", (), K.INT8,
            lambda p: [_prune24(p), QAT()]),
    Pathway("cpc", F.CLUSTER, "train -> per-channel cluster -> int8", ("clusters",), K.INT8,
            lambda p: [_cluster(p, per_channel=True)]),
    Pathway("cpcqat", F.QAT, "train -> per-channel cluster -> cluster-preserving QAT -> int8",
            ("clusters",), K.INT8, lambda p: [_cluster(p, per_channel=True), QAT()]),
    Pathway("alpha", F.STRUCTURED, "train at width alpha (every layer's filters scaled) -> int8",
            ("alpha",), K.INT8, lambda p: [], model=lambda m, p: m.scaled(p.alpha) if m.scalable else m),
    Pathway("filter", F.STRUCTURED, "train -> L1 filter pruning of the pointwise convs (Li et al.) "
            "-> smaller dense model, fine-tuned -> int8", ("sparsity",), K.INT8, lambda p: [_filter(p)]),
    Pathway("filterqat", F.STRUCTURED, "train -> L1 filter pruning -> QAT -> int8", ("sparsity",),
            K.INT8, lambda p: [_filter(p), QAT()]),
    Pathway("lfilter", F.STRUCTURED, "train -> L1 filter pruning with a ratio per layer group -> smaller "
            "dense model, fine-tuned -> int8", ("filter_ratios",), K.INT8, lambda p: [_group_filter(p)]),
    Pathway("lfilterqat", F.STRUCTURED, "train -> L1 filter pruning with a ratio per layer group -> QAT -> int8",
            ("filter_ratios",), K.INT8, lambda p: [_group_filter(p), QAT()]),
    # Each group keeps a multiple of 4 filters, so the next layer's input channels form
    # whole 2:4 groups and exactly half its weights are zero (a short group keeps all of its
    # weights, which would leave the promised sparsity short).
    Pathway("lfilter24qat", F.STRUCTURED, "train -> per-group L1 filter pruning -> 2:4 pruning -> "
            "prune-preserving QAT -> int8", ("filter_ratios",), K.INT8,
            lambda p: [_group_filter(p, multiple_of=4), _prune24(p), QAT()]),
]
del F, K
PATHWAYS: dict[str, Pathway] = {p.name: p for p in _ALL}


class NotApplicable(KwsError):
    """A pathway that cannot run on a model; the message says which technique refused
    which layers. The matrix reports the case as not applicable, ``kws run`` as an error."""


def check_applies(pathway: Pathway, model: ModelSpec) -> None:
    reason = pathway.not_applicable(model)
    if reason:
        usable = [p.name for p in PATHWAYS.values() if p.not_applicable(model) is None]
        raise NotApplicable(f"pathway {pathway.name} does not apply to model {model.slug}: {reason}. "
                            f"Pathways that apply to it: {', '.join(usable) or 'none'}")


def get_pathway(name: str) -> Pathway:
    if name not in PATHWAYS:
        raise ValueError(f"unknown pathway {name!r}; valid pathways: {', '.join(PATHWAYS)}")
    return PATHWAYS[name]


def make_point(pathway: Pathway, model: ModelSpec = ModelConfig(), **given) -> Point:
    """Validate ``given`` axis values for ``pathway`` before any training: unknown axes,
    axes the pathway does not take and out-of-range values all fail with the valid
    choices; axes not given take their defaults. The stage chain is checked too (e.g.
    clustering after pruning needs 3 clusters)."""
    given = {k: v for k, v in given.items() if v is not None}
    unknown = sorted(set(given) - set(AXES))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(AXES)}")
    foreign = sorted(k for k in given if k not in pathway.takes)
    if foreign:
        takes = ", ".join(pathway.takes) or "none of them"
        raise ValueError(f"pathway {pathway.name} does not take {', '.join(foreign)}; it takes {takes} "
                         f"(of {', '.join(AXES)})")
    point = Point({name: AXES[name].validate(given.get(name, AXES[name].default), model)
                   for name in pathway.takes})
    preserved: frozenset = frozenset()
    for stage in pathway.stages(point):
        try:
            stage.check_parent(preserved)
        except ValueError as exc:
            raise ValueError(f"pathway {pathway.name}: {exc}") from None
        preserved = stage.preserved(preserved)
    return point


def search_space(pathway: Pathway, model: ModelSpec = ModelConfig()) -> tuple[SearchDim, ...]:
    """The dimensions a search samples for ``pathway`` on ``model``: those of each axis
    the pathway takes, in the order it takes them (none for a pathway without axes)."""
    return tuple(dim for name in pathway.takes for dim in AXES[name].dims(model))


def point_from_dims(pathway: Pathway, values: Mapping[str, Any], model: ModelSpec = ModelConfig()) -> Point:
    """The point that sampled ``values`` (one per dimension of :func:`search_space`, by
    name) stand for, validated by :func:`make_point`: a combination the stage chain
    rejects raises ``ValueError``, as does a name outside the space."""
    names = [dim.name for dim in search_space(pathway, model)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ValueError(f"pathway {pathway.name} has no search dimension(s) {unknown}; "
                         f"its dimensions: {', '.join(names) or 'none'}")
    return make_point(pathway, model, **{name: AXES[name].from_dims(values, model) for name in pathway.takes})
