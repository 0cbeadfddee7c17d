"""What each benchmark case must meet, read from one TOML file: defaults, per-tier and
per-pathway overrides, the regression gate's limits, and the known failures."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kws._fs import read_toml


class ThresholdsError(ValueError):
    """The thresholds file is malformed; the message names the file and the entry."""


class _Table(Mapping):
    """Named limits with their defaults; read as attributes (``limits.gzip_ratio``)."""

    def __init__(self, **overrides):
        defaults = self.defaults()
        unknown = sorted(set(overrides) - set(defaults))
        if unknown:
            raise TypeError(f"unknown limit(s) {unknown}; valid: {sorted(defaults)}")
        object.__setattr__(self, "_values", {**defaults, **overrides})

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no limit {name!r}; valid: {sorted(self._values)}") from None

    def __eq__(self, other):
        return type(other) is type(self) and other._values == self._values

    def __hash__(self):
        return hash(tuple(sorted(self._values.items())))

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._values.items())})"

    def replace(self, **overrides):
        return type(self)(**{**self._values, **overrides})


class Limits(_Table):
    """What a case must meet: each check's limits (declared with the check)."""

    @classmethod
    def defaults(cls):
        from kws.matrix.checks import default_limits

        return default_limits()


class GateLimits(_Table):
    """The regression gate's limits: each gated metric's (declared with the metric), and
    how many earlier runs it needs."""

    @classmethod
    def defaults(cls):
        from kws.metrics import gate_defaults

        return {**gate_defaults(), "min_history": 1}


@dataclass(frozen=True)
class KnownFailure:
    case: str
    check: str
    reason: str
    tier: str | None = None

    def matches(self, slug: str, check: str, tier: str) -> bool:
        return (check == self.check and fnmatch.fnmatchcase(slug, self.case)
                and self.tier in (None, tier))


@dataclass(frozen=True)
class Thresholds:
    default: Limits
    tiers: dict
    pathways: dict
    tier_pathways: dict
    gate: GateLimits
    known_failures: tuple[KnownFailure, ...]
    source: str = "<defaults>"

    def limits(self, tier: str, pathway: str) -> Limits:
        limits = self.default
        for over in (self.tiers.get(tier, {}), self.pathways.get(pathway, {}),
                     self.tier_pathways.get((tier, pathway), {})):
            limits = limits.replace(**over)
        return limits

    def known_failure(self, slug: str, check: str, tier: str) -> KnownFailure | None:
        return next((k for k in self.known_failures if k.matches(slug, check, tier)), None)


def _typed(where: str, cls, entry: dict) -> dict:
    valid = {name: type(default) for name, default in cls.defaults().items()}
    unknown = sorted(set(entry) - set(valid))
    if unknown:
        raise ThresholdsError(f"{where}: unknown key(s) {unknown}; valid: {sorted(valid)}")
    out = {}
    for key, value in entry.items():
        kind = valid[key]
        if kind is bool and not isinstance(value, bool):
            raise ThresholdsError(f"{where}.{key}: must be true or false, got {value!r}")
        if kind is not bool and (isinstance(value, bool) or not isinstance(value, (int, float))
                                 or (kind is int and not isinstance(value, int))):
            raise ThresholdsError(f"{where}.{key}: must be a {kind.__name__}, got {value!r}")
        if kind is not bool and value < 0:
            raise ThresholdsError(f"{where}.{key}: must be >= 0, got {value!r}")
        out[key] = kind(value)
    return out


def load_thresholds(path: Path) -> Thresholds:
    """Parse and validate the thresholds file (every error names the file and entry)."""
    from kws.matrix.checks import CHECKS
    from kws.matrix.grid import TIERS
    from kws.pathways.registry import PATHWAYS

    path = Path(path)
    raw = read_toml(path, ThresholdsError, "thresholds file")
    unknown = sorted(set(raw) - {"default", "tier", "pathway", "gate", "known_failures"})
    if unknown:
        raise ThresholdsError(f"{path}: unknown table(s) {unknown}")
    default = Limits(**_typed(f"{path}: [default]", Limits, raw.get("default", {})))
    tiers, tier_pathways = {}, {}
    for tier, entry in raw.get("tier", {}).items():
        if tier not in TIERS:
            raise ThresholdsError(f"{path}: [tier.{tier}]: unknown tier; valid: {', '.join(TIERS)}")
        entry = dict(entry)
        for pathway, over in entry.pop("pathway", {}).items():
            _check_pathway(path, f"tier.{tier}.pathway", pathway, PATHWAYS)
            tier_pathways[tier, pathway] = _typed(f"{path}: [tier.{tier}.pathway.{pathway}]", Limits, over)
        tiers[tier] = _typed(f"{path}: [tier.{tier}]", Limits, entry)
    pathways = {}
    for pathway, entry in raw.get("pathway", {}).items():
        _check_pathway(path, "pathway", pathway, PATHWAYS)
        pathways[pathway] = _typed(f"{path}: [pathway.{pathway}]", Limits, entry)
    gate = GateLimits(**_typed(f"{path}: [gate]", GateLimits, raw.get("gate", {})))
    known = []
    for i, entry in enumerate(raw.get("known_failures", [])):
        where = f"{path}: known_failures[{i}]"
        missing = sorted({"case", "check", "reason"} - set(entry))
        extra = sorted(set(entry) - {"case", "check", "reason", "tier"})
        if missing or extra:
            raise ThresholdsError(f"{where}: needs case, check, reason (and optionally tier); "
                                  f"missing {missing}, unknown {extra}")
        if entry["check"] not in CHECKS:
            raise ThresholdsError(f"{where}: unknown check {entry['check']!r}; valid: {', '.join(CHECKS)}")
        if entry.get("tier") not in (None, *TIERS):
            raise ThresholdsError(f"{where}: unknown tier {entry['tier']!r}; valid: {', '.join(TIERS)}")
        if not str(entry["reason"]).strip():
            raise ThresholdsError(f"{where}: reason must say why the case is known to fail")
        known.append(KnownFailure(**entry))
    return Thresholds(default, tiers, pathways, tier_pathways, gate, tuple(known), str(path))


def _check_pathway(path, table, pathway, registry):
    if pathway not in registry:
        raise ThresholdsError(f"{path}: [{table}.{pathway}]: unknown pathway; valid: {', '.join(registry)}")
