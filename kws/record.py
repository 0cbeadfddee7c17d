"""The one result of a case: :class:`CaseRecord`.

``kws run --json`` prints it, the benchmark matrix checks it, and the history row, the
summary and the gate are derived from it: a row is the record without its detail
fields (per-layer inspection, local file paths) plus where and when it ran. Records
round-trip through JSON and carry :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

#: Version 1 is the untyped layout of earlier history rows (no ``schema`` key); the
#: metrics and keys kept their layout, so those rows are still read.
SCHEMA_VERSION = 2

#: Marks a field as detail: kept in the record, left out of history rows.
DETAIL = {"detail": True}


class RecordError(ValueError):
    """A JSON object that is not a case record of a known schema."""


@dataclass(frozen=True)
class StageRecord:
    """One technique stage of the case, as the cache holds it."""

    family: str
    key: str
    params: dict
    train_seconds: float
    test_accuracy: float | None
    built: bool  # trained in this run (not fetched from the cache)


@dataclass(frozen=True)
class Times:
    baseline_train_s: float = 0.0
    stages_s: dict = field(default_factory=dict)  # "0:prune" -> seconds
    wall_s: float = 0.0


@dataclass(frozen=True)
class CaseRecord:
    """``point``: the axis values the pathway takes; ``spec``: what else it ran with
    (:meth:`kws.pipeline.RunSpec.to_dict`); ``model``: the model actually trained (the
    width pathway's own); ``metrics``: values under the names of :mod:`kws.metrics`
    (Vela's per target under ``metrics["vela"][target]``); ``keys``: the artifact cache
    keys of the baseline, each stage (``"0:prune"``) and the deployed model."""

    pathway: str
    family: str = ""
    point: dict = field(default_factory=dict)
    spec: dict = field(default_factory=dict)
    model: str = ""
    export: str = ""
    keys: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    stages: tuple[StageRecord, ...] = ()
    times: Times = field(default_factory=Times)
    trained_now: tuple[str, ...] = ()
    versions: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)  # measurement -> "cached" | "now" | "n/a"
    files: dict = field(default_factory=dict, metadata=DETAIL)
    inspection: dict | None = field(default=None, metadata=DETAIL)
    schema: int = SCHEMA_VERSION

    @property
    def seed(self) -> int | None:
        return self.spec.get("seed")

    def metric(self, name: str, target: str | None = None) -> Any:
        """The value of metric ``name`` (``None`` where it was not measured)."""
        from kws.metrics import get_metric

        return get_metric(name).value(self.metrics, target)

    def to_dict(self, *, detail: bool = True) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            if not detail and f.metadata.get("detail"):
                continue
            value = getattr(self, f.name)
            if f.name == "stages":
                value = [dataclasses.asdict(s) for s in value]
            elif f.name == "times":
                value = dataclasses.asdict(value)
            elif f.name == "trained_now":
                value = list(value)
            out[f.name] = value
        # Plain JSON values only (enum members as their strings): rows travel between
        # pytest-xdist processes, which serialise builtins alone.
        return json.loads(json.dumps(out, default=str))

    def row(self) -> dict:
        """The record as the history keeps it: without its detail fields, and with Vela's
        per-target detail compacted (:func:`kws.metrics.compact_vela_detail`)."""
        from kws.metrics import compact_vela_detail

        out = self.to_dict(detail=False)
        vela = out["metrics"].get("vela")
        if isinstance(vela, dict):
            out["metrics"]["vela"] = {t: compact_vela_detail(e) if isinstance(e, dict) else e for t, e in vela.items()}
        return out

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), default=str, **kwargs)

    @classmethod
    def from_dict(cls, data: dict) -> CaseRecord:
        if not isinstance(data, dict):
            raise RecordError(f"a case record is a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if schema != SCHEMA_VERSION:
            raise RecordError(f"case record schema {schema!r}; this version reads schema {SCHEMA_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RecordError(f"unknown case record field(s) {unknown}")
        if "pathway" not in data:
            raise RecordError("a case record needs 'pathway'")
        values = dict(data)
        values["stages"] = tuple(StageRecord(**s) for s in data.get("stages", ()))
        values["times"] = Times(**data.get("times", {}))
        values["trained_now"] = tuple(data.get("trained_now", ()))
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> CaseRecord:
        return cls.from_dict(json.loads(text))
