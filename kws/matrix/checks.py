"""The checks a benchmark case must pass, as data: each :class:`Check` names the metric
it judges, the limits it reads (with their defaults: the thresholds file overrides them
by name), when it applies, and the case it is compared with.

Applicability comes from what a pathway's stages promise (a pruning stage promises its
sparsity, a clustering stage its clusters) and how it deploys, never from pathway names:
no cluster check for a pruning-only pathway, no Vela check for a model that is not full
int8. A check with a reference does not apply to the reference itself (it could not
fail). Every check raises :class:`CheckFailed` naming the case, the metric, the value and
the limit, and asserts first that it has something to check.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kws.export import ExportKind
from kws.matrix.grid import Case
from kws.metrics import get_metric
from kws.pathways.base import Preserve
from kws.stats import Interval, Verdict, judge


class CheckFailed(AssertionError):
    pass


class CheckInconclusive(Exception):
    """The evidence neither passes nor fails the limit (its interval straddles it): a
    warning, and a failure under ``--kws-strict``."""


class InconclusiveWarning(UserWarning):
    pass


@dataclass(frozen=True)
class Check:
    """``judge(case, record, limits, reference=..., targets=...)`` raises
    :class:`CheckFailed`. ``reference``: the pathway whose case of the same seed and
    tier is the yardstick (``ptq_int8``: the baseline deployed as full int8, the
    full-width one even for the width pathway; ``qat``: for the NPU figures)."""

    name: str
    metric: str
    limits: Mapping[str, Any]
    applies_to: Callable[[Case], bool]
    judge: Callable[..., None]
    reference: str | None = None
    description: str = field(default="", compare=False)

    def applies(self, case: Case) -> bool:
        return case.pathway != self.reference and self.applies_to(case)

    def run(self, case: Case, record, limits, *, reference=None, targets: tuple[str, ...] = ()) -> None:
        self.judge(case, record, limits, reference=reference, targets=targets)


def _fail(case: Case, metric: str, value: str, limit: str, why: str = "") -> None:
    raise CheckFailed(f"{case.slug}: {metric} = {value}, limit {limit}" + (f" ({why})" if why else ""))


def value_of(case: Case, record, name: str, target: str | None = None):
    """The metric's value in ``record``; a missing one fails (nothing to check)."""
    metric = get_metric(name)
    value = metric.value(record.metrics, target)
    if value is None:
        if metric.per_target and not (record.metrics.get("vela") or {}).get(target):
            raise CheckFailed(f"{case.slug}: no Vela estimate for target {target}; nothing to check")
        raise CheckFailed(f"{case.slug}: metric {name} is missing from the run's record; nothing to check")
    return value


# ----- the checks -----------------------------------------------------------------------


def check_accuracy(case: Case, record, limits, *, reference, **_) -> None:
    """The drop against the baseline's int8 on the same clips, judged by its paired 95%
    interval: beyond the limit with confidence fails, within it with confidence passes,
    an interval across the limit is inconclusive."""
    drop = value_of(case, record, "accuracy_drop")
    interval = get_metric("accuracy_drop").interval(record.metrics)
    if interval is None:
        raise CheckFailed(f"{case.slug}: the accuracy drop has no interval in the run's record; nothing to judge")
    deployed, baseline = value_of(case, record, "deployed_accuracy"), value_of(case, reference, "deployed_accuracy")
    own = value_of(case, record, "baseline_int8_accuracy")
    if baseline != own:
        raise CheckFailed(f"{case.slug}: the record's baseline int8 accuracy {own} is not its reference case's "
                          f"{baseline}")
    verdict = accuracy_verdict(record, limits)
    what = (f"{100 * drop:.2f} pp [{100 * interval[0]:.2f}, {100 * interval[1]:.2f}] ({100 * deployed:.2f}% vs "
            f"baseline int8 {100 * baseline:.2f}%; paired 95% interval)")
    if verdict is Verdict.FAIL:
        _fail(case, "int8 accuracy drop", what, f"{limits.accuracy_drop_pp:.2f} pp", "beyond it with 95% confidence")
    if verdict is Verdict.INCONCLUSIVE:
        raise CheckInconclusive(f"{case.slug}: int8 accuracy drop = {what}, limit {limits.accuracy_drop_pp:.2f} pp: "
                                "the interval straddles the limit")


def accuracy_verdict(record, limits) -> Verdict | None:
    """The accuracy check's verdict from the record alone (``None`` without an interval):
    history rows carry it, so the summary can mark what was inconclusive."""
    interval = get_metric("accuracy_drop").interval(record.metrics)
    return None if interval is None else judge(Interval(*interval), limits.accuracy_drop_pp / 100)


def check_sparsity(case: Case, record, limits, **_) -> None:
    target = case.promises[Preserve.SPARSITY]
    sparsity = value_of(case, record, "sparsity")
    floor = target - limits.sparsity_tolerance
    if sparsity < floor:
        _fail(case, "sparsity of the prunable layers (int8)", f"{sparsity:.4f}",
              f">= {floor:.4f} (target {target} - {limits.sparsity_tolerance})")


def check_clusters(case: Case, record, limits, **_) -> None:
    clusters = case.promises[Preserve.CLUSTERS]
    unique = value_of(case, record, "max_unique_per_channel")
    limit = clusters + limits.cluster_slack
    if unique > limit:
        _fail(case, "unique int8 values per output channel", str(unique),
              f"<= {limit} ({clusters} clusters + {limits.cluster_slack})")


def check_size(case: Case, record, limits, *, reference, **_) -> None:
    gzip = value_of(case, record, "gzip_bytes")
    baseline = value_of(case, reference, "gzip_bytes")
    limit = limits.gzip_ratio * baseline
    if gzip > limit:
        _fail(case, "gzip size", f"{gzip:,} B ({gzip / baseline:.3f} x baseline int8 {baseline:,} B)",
              f"<= {limit:,.0f} B ({limits.gzip_ratio} x)")


def check_npu(case: Case, record, limits, *, targets: tuple[str, ...], **_) -> None:
    if not limits.require_all_on_npu:
        return
    for target in targets:
        npu_ops = value_of(case, record, "vela_npu_ops", target)
        cpu_ops = record.metrics["vela"][target].get("cpu_ops") or []
        if cpu_ops:
            names = ", ".join(f"{op['type']} {op['name']}" for op in cpu_ops)
            _fail(case, f"operators on the CPU ({target})", names, "none", f"{npu_ops} on the NPU")
        if npu_ops < 1:
            _fail(case, f"operators on the NPU ({target})", "0", ">= 1")


def _ratio_check(metric: str, limit: str, yardstick: str) -> Callable[..., None]:
    """Per Vela target: the case's value <= limit x the ``yardstick`` pathway's case's."""
    def check(case: Case, record, limits, *, reference, targets, **_) -> None:
        m, ratio = get_metric(metric), getattr(limits, limit)
        for target in targets:
            ours, ref = value_of(case, record, metric, target), value_of(case, reference, metric, target)
            if ours > ratio * ref:
                unit = m.unit if m.unit != "fraction" else ""
                _fail(case, m.name_for(target),
                      f"{ours:,.2f} {unit} ({ours / ref:.3f} x {yardstick}'s {ref:,.2f} {unit})",
                      f"<= {ratio} x {yardstick}'s")
    return check


def _int8(case: Case) -> bool:
    return case.export == ExportKind.INT8


CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("accuracy", "deployed_accuracy", {"accuracy_drop_pp": 1.0}, lambda c: True, check_accuracy,
          "ptq_int8", "deployed accuracy at most this many pp below the baseline's int8 accuracy"),
    Check("sparsity", "sparsity", {"sparsity_tolerance": 0.01}, lambda c: Preserve.SPARSITY in c.promises,
          check_sparsity, description="zeros in the prunable layers >= the promised sparsity - tolerance"),
    Check("clusters", "max_unique_per_channel", {"cluster_slack": 1}, lambda c: Preserve.CLUSTERS in c.promises,
          check_clusters, description="values per output channel <= the promised clusters + slack"),
    Check("size", "gzip_bytes", {"gzip_ratio": 1.02}, lambda c: True, check_size, "ptq_int8",
          "gzip size <= this x the baseline's int8 gzip size"),
    Check("npu", "vela_npu_ops", {"require_all_on_npu": True}, _int8, check_npu,
          description="every operator of the int8 model placed on the NPU"),
    Check("vela_latency", "vela_us", {"vela_latency_ratio": 1.02}, _int8,
          _ratio_check("vela_us", "vela_latency_ratio", "qat"), "qat", "Vela time <= this x the QAT model's"),
    Check("vela_weights", "vela_encoded_weights", {"vela_weights_ratio": 1.02}, _int8,
          _ratio_check("vela_encoded_weights", "vela_weights_ratio", "qat"), "qat",
          "NPU-encoded weights <= this x the QAT model's"),
)}


def applicable(case: Case) -> list[str]:
    return [name for name, check in CHECKS.items() if check.applies(case)]


def default_limits() -> dict[str, Any]:
    """Every check's limits at their defaults (the thresholds file's keys)."""
    return {k: v for check in CHECKS.values() for k, v in check.limits.items()}
