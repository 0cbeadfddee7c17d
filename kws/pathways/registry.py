"""The pathways of the deployment tree, named as the literature names them, and the
hyperparameters each one takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

from kws.models import ModelConfig
from kws.pathways.base import FineTune, Stage
from kws.pathways.cluster import Cluster
from kws.pathways.prune import SCHEDULES, Prune
from kws.pathways.qat import QAT

HYPERPARAMETERS = ("sparsity", "clusters", "schedule", "alpha")


@dataclass(frozen=True)
class PathwayParams:
    """Hyperparameters of one case. ``epochs``/``learning_rate``: each fine-tuning stage's."""

    sparsity: float = 0.5
    clusters: int = 16
    schedule: str = "constant"
    alpha: float = 0.5
    epochs: int = 15
    learning_rate: float = 1e-4
    seed: int = 0

    @property
    def finetune(self) -> FineTune:
        return FineTune(epochs=self.epochs, learning_rate=self.learning_rate)


@dataclass(frozen=True)
class Pathway:
    name: str
    family: str  # ptq | qat | prune | cluster | structured: marks and -m selection
    description: str
    takes: tuple[str, ...]
    export: str  # the TFLite kind it deploys as
    stages: Callable[[PathwayParams], list[Stage]]
    # The structured width pathway retrains the baseline itself at a smaller width.
    model: Callable[[ModelConfig, PathwayParams], ModelConfig] = lambda model, params: model


def _prune(p: PathwayParams, **kw) -> Prune:
    return Prune(sparsity=p.sparsity, schedule=p.schedule, finetune=p.finetune, **kw)


def _prune24(p: PathwayParams) -> Prune:
    return Prune(sparsity=0.5, m_by_n=(2, 4), finetune=p.finetune)


def _cluster(p: PathwayParams, **kw) -> Cluster:
    return Cluster(clusters=p.clusters, finetune=p.finetune, **kw)


def _qat(p: PathwayParams) -> QAT:
    return QAT(finetune=p.finetune)


def _structured(name: str) -> Callable[[PathwayParams], list[Stage]]:
    def stages(p: PathwayParams) -> list[Stage]:
        from kws.pathways.structured import FilterPrune

        return [FilterPrune(sparsity=p.sparsity, finetune=p.finetune)] + ([_qat(p)] if name == "filterqat" else [])
    return stages


_ALL = [
    Pathway("ptq_dynamic", "ptq", "train -> dynamic-range int8 weights", (), "dynamic", lambda p: []),
    Pathway("ptq_fp16", "ptq", "train -> float16 weights", (), "float16", lambda p: []),
    Pathway("ptq_int8", "ptq", "train -> full int8 (representative dataset)", (), "int8", lambda p: []),
    Pathway("qat", "qat", "train -> QAT -> int8", (), "int8", lambda p: [_qat(p)]),
    Pathway("p", "prune", "train -> prune -> int8", ("sparsity", "schedule"), "int8", lambda p: [_prune(p)]),
    Pathway("c", "cluster", "train -> cluster -> int8", ("clusters",), "int8", lambda p: [_cluster(p)]),
    Pathway("pc", "cluster", "train -> prune -> sparsity-preserving cluster -> int8",
            ("sparsity", "schedule", "clusters"), "int8", lambda p: [_prune(p), _cluster(p)]),
    Pathway("pqat", "qat", "train -> prune -> prune-preserving QAT -> int8",
            ("sparsity", "schedule"), "int8", lambda p: [_prune(p), _qat(p)]),
    Pathway("cqat", "qat", "train -> cluster -> cluster-preserving QAT -> int8",
            ("clusters",), "int8", lambda p: [_cluster(p), _qat(p)]),
    Pathway("pcqat", "qat", "train -> prune -> sparsity-preserving cluster -> PCQAT -> int8",
            ("sparsity", "schedule", "clusters"), "int8", lambda p: [_prune(p), _cluster(p), _qat(p)]),
    Pathway("p24", "prune", "train -> 2:4 pruning -> int8", (), "int8", lambda p: [_prune24(p)]),
    Pathway("p24qat", "qat", "train -> 2:4 pruning -> prune-preserving QAT -> int8", (), "int8",
            lambda p: [_prune24(p), _qat(p)]),
    Pathway("cpc", "cluster", "train -> per-channel cluster -> int8", ("clusters",), "int8",
            lambda p: [_cluster(p, per_channel=True)]),
    Pathway("cpcqat", "qat", "train -> per-channel cluster -> cluster-preserving QAT -> int8",
            ("clusters",), "int8", lambda p: [_cluster(p, per_channel=True), _qat(p)]),
    Pathway("alpha", "structured", "train at width alpha (every layer's filters scaled) -> int8",
            ("alpha",), "int8", lambda p: [], model=lambda m, p: replace(m, alpha=p.alpha)),
    Pathway("filter", "structured", "train -> L1 filter pruning of the pointwise convs (Li et al.) "
            "-> smaller dense model, fine-tuned -> int8", ("sparsity",), "int8", _structured("filter")),
    Pathway("filterqat", "structured", "train -> L1 filter pruning -> QAT -> int8", ("sparsity",),
            "int8", _structured("filterqat")),
]
PATHWAYS: dict[str, Pathway] = {p.name: p for p in _ALL}


def get_pathway(name: str) -> Pathway:
    if name not in PATHWAYS:
        raise ValueError(f"unknown pathway {name!r}; valid pathways: {', '.join(PATHWAYS)}")
    return PATHWAYS[name]


def min_weights_per_channel(model: ModelConfig) -> tuple[str, int]:
    """The clusterable layer with the fewest weights per output channel (TFMOT skips a
    layer whose channels hold fewer weights than the number of clusters)."""
    first = 10 * 4 * model.input_shape[-1]
    return ("conv_1", first) if first <= model.filters else ("pw_1", model.filters)


def make_params(pathway: Pathway, model: ModelConfig = ModelConfig(), **given) -> PathwayParams:
    """Validate ``given`` for ``pathway`` before any training: unknown names, parameters the
    pathway does not take and out-of-range values all fail with the valid choices."""
    given = {k: v for k, v in given.items() if v is not None}
    names = {f.name for f in fields(PathwayParams)}
    unknown = sorted(set(given) - names)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown}; valid: {sorted(names)}")
    foreign = sorted(k for k in given if k in HYPERPARAMETERS and k not in pathway.takes)
    if foreign:
        takes = ", ".join(pathway.takes) or "none of them"
        raise ValueError(f"pathway {pathway.name} does not take {', '.join(foreign)}; it takes {takes} "
                         f"(of {', '.join(HYPERPARAMETERS)})")
    params = replace(PathwayParams(), **given)
    if "sparsity" in pathway.takes and not 0 < params.sparsity < 1:
        raise ValueError(f"sparsity must be in (0, 1), e.g. 0.5, 0.75, 0.875; got {params.sparsity}")
    if "schedule" in pathway.takes and params.schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {params.schedule!r}")
    if "alpha" in pathway.takes and not 0 < params.alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), e.g. 0.3-0.75; got {params.alpha}")
    if "clusters" in pathway.takes:
        layer, limit = min_weights_per_channel(model)
        if not 2 <= params.clusters <= limit:
            raise ValueError(f"clusters must be in [2, {limit}] for {model.slug} ({layer} has {limit} "
                             f"weights per output channel); got {params.clusters}")
        if "sparsity" in pathway.takes and params.clusters < 3:
            # Sparsity-preserving clustering spends one centroid on the zeros; TFMOT refuses 2.
            raise ValueError(f"pathway {pathway.name} clusters sparsity-preservingly, which needs at least 3 "
                             f"clusters (one is the zero centroid); got {params.clusters}")
    params.finetune  # validates epochs and learning_rate
    return params


def taken(pathway: Pathway, params: PathwayParams) -> dict:
    """The hyperparameters that matter for this pathway (for ids and records)."""
    return {k: v for k, v in asdict(params).items() if k in pathway.takes or k not in HYPERPARAMETERS}
