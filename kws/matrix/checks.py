"""The checks a benchmark case must pass, each a plain function, and which cases each
one applies to (no cluster check for a pruning-only pathway, no Vela check for a model
that is not full int8, no accuracy check for the baseline against itself).

Every check raises :class:`CheckFailed` with the metric, the value, the limit and the case
in its message, and asserts first that it has something to check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kws.matrix.grid import Case
from kws.matrix.thresholds import Limits


class CheckFailed(AssertionError):
    pass


@dataclass(frozen=True)
class Check:
    name: str
    applies: Callable[[Case], bool]
    run: Callable[..., None]
    # The case it is compared with (same seed and tier): the baseline deployed as full
    # int8 (``ptq_int8``: the full-width baseline even for the width pathway, which trains
    # its own), or the QAT model for the NPU figures.
    reference: str | None = None


def _fail(case: Case, metric: str, value: str, limit: str, why: str = "") -> None:
    raise CheckFailed(f"{case.slug}: {metric} = {value}, limit {limit}" + (f" ({why})" if why else ""))


def _metric(case: Case, result: dict, name: str):
    value = result["metrics"].get(name)
    if value is None:
        raise CheckFailed(f"{case.slug}: metric {name} is missing from the run's record; nothing to check")
    return value


def sparsity_target(case: Case) -> float | None:
    """The fraction of zeros the pathway promises in its prunable layers."""
    if case.pathway in ("p24", "p24qat"):
        return 0.5
    if "sparsity" in case.takes and case.family != "structured":
        return case.params.sparsity
    return None


def vela_of(case: Case, result: dict, target: str) -> dict:
    vela = result.get("vela", {}).get(target)
    if vela is None:
        raise CheckFailed(f"{case.slug}: no Vela estimate for target {target}; nothing to check")
    return vela


# ----- the checks -----------------------------------------------------------------------


def check_accuracy(case: Case, result: dict, limits: Limits, *, reference: dict, **_) -> None:
    deployed = _metric(case, result, "deployed_accuracy")
    baseline = _metric(case, reference, "deployed_accuracy")
    drop = 100 * (baseline - deployed)
    if drop > limits.accuracy_drop_pp:
        _fail(case, "int8 accuracy drop", f"{drop:.2f} pp ({100 * deployed:.2f}% vs baseline int8 "
              f"{100 * baseline:.2f}%)", f"{limits.accuracy_drop_pp:.2f} pp")


def check_sparsity(case: Case, result: dict, limits: Limits, **_) -> None:
    target = sparsity_target(case)
    sparsity = _metric(case, result, "sparsity")
    floor = target - limits.sparsity_tolerance
    if sparsity < floor:
        _fail(case, "sparsity of the prunable layers (int8)", f"{sparsity:.4f}",
              f">= {floor:.4f} (target {target} - {limits.sparsity_tolerance})")


def check_clusters(case: Case, result: dict, limits: Limits, **_) -> None:
    unique = _metric(case, result, "max_unique_per_channel")
    limit = case.params.clusters + limits.cluster_slack
    if unique > limit:
        _fail(case, "unique int8 values per output channel", str(unique),
              f"<= {limit} ({case.params.clusters} clusters + {limits.cluster_slack})")


def check_size(case: Case, result: dict, limits: Limits, *, reference: dict, **_) -> None:
    gzip = _metric(case, result, "gzip_bytes")
    baseline = _metric(case, reference, "gzip_bytes")
    limit = limits.gzip_ratio * baseline
    if gzip > limit:
        _fail(case, "gzip size", f"{gzip:,} B ({gzip / baseline:.3f} x baseline int8 {baseline:,} B)",
              f"<= {limit:,.0f} B ({limits.gzip_ratio} x)")


def check_npu(case: Case, result: dict, limits: Limits, *, targets: tuple[str, ...], **_) -> None:
    if not limits.require_all_on_npu:
        return
    for target in targets:
        vela = vela_of(case, result, target)
        if vela["cpu_ops"]:
            names = ", ".join(f"{op['type']} {op['name']}" for op in vela["cpu_ops"])
            _fail(case, f"operators on the CPU ({target})", names, "none",
                  f"{vela['npu_ops']} on the NPU")
        if vela["npu_ops"] < 1:
            _fail(case, f"operators on the NPU ({target})", "0", ">= 1")


def _vs_reference(case, result, reference, targets, field, ratio, metric, unit):
    for target in targets:
        ours, qat = vela_of(case, result, target)[field], vela_of(case, reference, target)[field]
        if ours > ratio * qat:
            _fail(case, f"{metric} ({target})", f"{ours:,.2f} {unit} ({ours / qat:.3f} x QAT's {qat:,.2f} {unit})",
                  f"<= {ratio} x QAT's")


def check_vela_latency(case, result, limits, *, reference, targets, **_) -> None:
    _vs_reference(case, result, reference, targets, "inference_us", limits.vela_latency_ratio,
                  "Vela inference time", "us")


def check_vela_weights(case, result, limits, *, reference, targets, **_) -> None:
    _vs_reference(case, result, reference, targets, "encoded_weight_bytes", limits.vela_weights_ratio,
                  "NPU-encoded weights", "B")


def _int8(case: Case) -> bool:
    return case.export == "int8"


CHECKS: dict[str, Check] = {c.name: c for c in (
    # ptq_int8 *is* the baseline's int8 model: comparing it with itself could not fail.
    Check("accuracy", lambda c: c.pathway != "ptq_int8", check_accuracy, "ptq_int8"),
    Check("sparsity", lambda c: sparsity_target(c) is not None, check_sparsity),
    Check("clusters", lambda c: "clusters" in c.takes, check_clusters),
    Check("size", lambda c: c.pathway != "ptq_int8", check_size, "ptq_int8"),
    Check("npu", _int8, check_npu),
    # The reference is the QAT model: QAT itself is not compared with itself.
    Check("vela_latency", lambda c: _int8(c) and c.pathway != "qat", check_vela_latency, "qat"),
    Check("vela_weights", lambda c: _int8(c) and c.pathway != "qat", check_vela_weights, "qat"),
)}


def applicable(case: Case) -> list[str]:
    return [name for name, check in CHECKS.items() if check.applies(case)]
