"""Every metric of a case, declared once: its name, unit, what measures it, which
direction is better, its regression-gate rule, and how reports show it.

The record (:class:`kws.record.CaseRecord`), the history rows, the summary's columns, the
gate and failure messages all read this table. Adding a metric is one entry here plus
the code that measures it (a measurement in :mod:`kws.pipeline.measure`).

Values live in a record's ``metrics`` mapping under the metric's name; a per-target
metric (one value per Vela target) lives under ``metrics["vela"][target][field]``, the
layout of Vela's own report.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class Better(enum.StrEnum):
    HIGHER = "higher"
    LOWER = "lower"
    NEITHER = "neither"


class GateKind(enum.StrEnum):
    DROP_PP = "drop_pp"  # percentage points below the history's median (a fraction metric)
    GROWTH_PCT = "growth_pct"  # percent above the history's median


@dataclass(frozen=True)
class GateRule:
    """Flag a run whose value moved the wrong way by more than ``limit`` against the
    median of its configuration's earlier runs. ``key`` names the limit in the
    thresholds file's ``[gate]`` table, where it can be overridden."""

    kind: GateKind
    key: str
    limit: float


#: How each unit is shown in messages, and in tables (scale, format).
_UNITS = {
    "fraction": (100.0, ".2f", "%"),
    "pp": (100.0, ".2f", " pp"),  # a difference of two fractions, shown in percentage points
    "p": (1.0, ".4f", ""),  # a p-value
    "B": (1.0, ",.0f", " B"),
    "us": (1.0, ".2f", " us"),
    "s": (1.0, ".1f", " s"),
    "count": (1.0, "d", ""),
}


@dataclass(frozen=True)
class Metric:
    """``measured_by`` names the measurement (or pipeline step) that produces it.
    ``label`` is its name in messages (``{target}`` is filled per Vela target);
    ``column`` its summary header (``None``: not a summary column), shown with
    ``column_scale`` and ``column_format``. ``vela_field``: a per-target metric read from
    Vela's report. ``best_ignores_zero``: zero means "does not apply" (a pathway that
    does not retrain has no retraining cost to be best at)."""

    name: str
    unit: str
    better: Better
    measured_by: str
    description: str
    label: str = ""
    column: str | None = None
    column_scale: float = 1.0
    column_format: str = ".2f"
    gate: GateRule | None = None
    vela_field: str | None = None
    best_ignores_zero: bool = False
    optional: bool = False  # only some runs have it (e.g. eval_accuracy needs --kws-eval-dir)
    # Measured with a 95% interval, kept under ``metrics["intervals"][name]``.
    has_interval: bool = False

    def __post_init__(self):
        if self.unit not in _UNITS:
            raise ValueError(f"metric {self.name}: unit must be one of {sorted(_UNITS)}, got {self.unit!r}")

    @property
    def per_target(self) -> bool:
        return self.vela_field is not None

    def value(self, metrics: Mapping[str, Any], target: str | None = None) -> Any:
        """This metric's value in a record's or history row's ``metrics`` (``None``
        where it was not measured)."""
        if self.per_target:
            return ((metrics.get("vela") or {}).get(target) or {}).get(self.vela_field)
        return metrics.get(self.name)

    def interval(self, metrics: Mapping[str, Any]) -> list[float] | None:
        """The value's 95% interval ``[low, high]`` (``None`` where none was measured)."""
        return (metrics.get("intervals") or {}).get(self.name) if self.has_interval else None

    def show_with_interval(self, metrics: Mapping[str, Any]) -> str:
        """``83.00% [80.21, 85.61]`` (the interval in the value's display scale)."""
        value, interval = self.value(metrics), self.interval(metrics)
        if value is None:
            return "-"
        if interval is None:
            return self.show(value)
        scale, fmt, _ = _UNITS[self.unit]
        return f"{self.show(value)} [{scale * interval[0]:{fmt}}, {scale * interval[1]:{fmt}}]"

    def show(self, value: Any) -> str:
        """``83.00%``, ``26,000 B``, ``120.00 us``."""
        scale, fmt, suffix = _UNITS[self.unit]
        if fmt == "d":
            return f"{int(value)}{suffix}"
        return f"{scale * value:{fmt}}{suffix}"

    def name_for(self, target: str | None = None) -> str:
        return (self.label or self.name).format(target=target)

    def header(self, target: str | None = None) -> str:
        return (self.column or self.name).format(target=target)


def _vela(name: str, field: str, unit: str, better: Better, description: str, **kw) -> Metric:
    return Metric(name, unit, better, "vela", description, vela_field=field, **kw)


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("n_test", "count", Better.NEITHER, "accuracy", "test clips the accuracy is measured on"),
    Metric("float_accuracy", "fraction", Better.HIGHER, "pipeline",
           "the last Keras model's (before conversion) accuracy on the test split"),
    Metric("baseline_float_accuracy", "fraction", Better.HIGHER, "pipeline",
           "the full-width baseline Keras model's accuracy on the test split"),
    Metric("baseline_int8_accuracy", "fraction", Better.HIGHER, "accuracy",
           "the full-width baseline's full-int8 model's accuracy under LiteRT on the test split",
           has_interval=True),
    Metric("baseline_int8_gzip_bytes", "B", Better.LOWER, "export",
           "gzip -9 size of the baseline's full-int8 flatbuffer"),
    Metric("bytes", "B", Better.LOWER, "export", "size of the deployed TFLite flatbuffer"),
    Metric("gzip_bytes", "B", Better.LOWER, "export", "gzip -9 size of the deployed flatbuffer",
           label="gzip size", column="gzip KB", column_scale=1e-3,
           gate=GateRule(GateKind.GROWTH_PCT, "size_growth_pct", 2.0)),
    Metric("zlib_bytes", "B", Better.LOWER, "export", "zlib -9 size of the deployed flatbuffer"),
    Metric("deployed_accuracy", "fraction", Better.HIGHER, "accuracy",
           "top-1 accuracy of the deployed TFLite model under LiteRT on the test split",
           label="int8 accuracy", column="int8 accuracy %", column_scale=100,
           gate=GateRule(GateKind.DROP_PP, "accuracy_drop_pp", 1.0), has_interval=True),
    Metric("accuracy_drop", "pp", Better.LOWER, "pipeline",
           "the full-width baseline's int8 accuracy minus the deployed model's, on the same test clips; "
           "its interval is a paired bootstrap over the clips",
           label="int8 accuracy drop", column="drop vs baseline int8 pp", column_scale=100, has_interval=True),
    Metric("accuracy_drop_p", "p", Better.NEITHER, "pipeline",
           "exact McNemar p-value of the deployed model against the baseline's int8 on the same clips"),
    Metric("sparsity", "fraction", Better.NEITHER, "inspect",
           "fraction of zero weights in the checked (prunable) layers of the deployed model"),
    Metric("max_unique_per_channel", "count", Better.NEITHER, "inspect",
           "most distinct weight values in one output channel of the deployed model"),
    Metric("eval_accuracy", "fraction", Better.HIGHER, "eval",
           "the deployed model's accuracy on the --kws-eval-dir data (e.g. real speech)",
           label="accuracy on eval data", column="accuracy on eval data %", column_scale=100, optional=True,
           has_interval=True),
    _vela("vela_us", "inference_us", "us", Better.LOWER, "Vela's estimated time per inference",
          label="Vela {target} latency", column="Vela us {target}",
          gate=GateRule(GateKind.GROWTH_PCT, "latency_growth_pct", 5.0)),
    _vela("vela_cycles_npu", "cycles_npu", "count", Better.LOWER, "NPU cycles per inference"),
    _vela("vela_cycles_total", "cycles_total", "count", Better.LOWER, "total cycles per inference"),
    _vela("vela_encoded_weights", "encoded_weight_bytes", "B", Better.LOWER,
          "weight bytes after Vela's compression for the NPU", label="NPU-encoded weights on {target}"),
    _vela("vela_original_weights", "original_weight_bytes", "B", Better.LOWER, "weight bytes before encoding"),
    _vela("vela_sram", "sram_bytes", "B", Better.LOWER, "peak SRAM use (Vela's sram_memory_used)"),
    _vela("vela_flash", "flash_bytes", "B", Better.LOWER, "flash (or off-chip memory) used"),
    _vela("vela_sram_traffic", "sram_traffic_bytes", "B", Better.LOWER,
          "bytes read from and written to SRAM per inference (Vela's sram_total_bytes)"),
    _vela("vela_dram_traffic", "dram_traffic_bytes", "B", Better.LOWER,
          "bytes read from and written to DRAM per inference (Vela's dram_total_bytes)"),
    _vela("vela_flash_traffic", "flash_traffic_bytes", "B", Better.LOWER,
          "bytes read from on- and off-chip flash per inference (Vela's *_flash_total_bytes)"),
    _vela("vela_npu_ops", "npu_ops", "count", Better.HIGHER, "operators placed on the NPU"),
    Metric("litert_us", "us", Better.LOWER, "latency",
           "median host latency of one batch-1 inference under LiteRT on one thread"),
    Metric("frontend_us", "us", Better.LOWER, "latency",
           "median host time of the front-end (the MFCC features of one 1 s clip, batch 1)"),
    Metric("e2e_us", "us", Better.LOWER, "latency",
           "median host time of the front-end on one 1 s clip plus one batch-1 LiteRT inference on its "
           "features, one thread: the keyword spotter's total latency",
           label="end-to-end host latency", column="host e2e us", column_format=".0f"),
    Metric("retrain_s", "s", Better.LOWER, "pipeline",
           "the pathway's fine-tuning seconds (its stages once; the width pathway's own baseline)",
           label="retraining time", column="retrain s", column_format=".1f", best_ignores_zero=True),
)}

#: Per-target fields of Vela's report that are not metrics but are kept in records and
#: history rows: the CPU operators with Vela's reasons (the NPU check names them), the
#: traffic per memory by kind and direction, and the layers of lowest MAC utilisation.
VELA_DETAIL_FIELDS = ("cpu_ops", "traffic", "low_utilisation")


def compact_vela_detail(estimate: dict) -> dict:
    """One target's Vela estimate as a history row keeps it: the traffic per memory by kind
    left to the record (its totals are metrics), the lowest-utilisation layers by their
    short names (:func:`kws.inspect.tflite.layer_label`) with rounded shares."""
    from kws.inspect.tflite import layer_label

    out = {k: v for k, v in estimate.items() if k != "traffic"}
    if "low_utilisation" in out:
        out["low_utilisation"] = [
            {**n, "name": layer_label(n["name"], width=64), "mac_utilisation": round(n["mac_utilisation"], 1),
             "cycles_share": round(n["cycles_share"], 3)} for n in out["low_utilisation"]]
    return out


def vela_fields() -> tuple[str, ...]:
    """Per-target fields kept from Vela's report in records and history rows: the
    per-target metrics' fields plus :data:`VELA_DETAIL_FIELDS`."""
    return (*(m.vela_field for m in METRICS.values() if m.per_target), *VELA_DETAIL_FIELDS)


def get_metric(name: str) -> Metric:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    return METRICS[name]


def columns() -> list[Metric]:
    """The summary's columns, in table order."""
    return [m for m in METRICS.values() if m.column]


def gated() -> list[Metric]:
    return [m for m in METRICS.values() if m.gate]


def gate_defaults() -> dict[str, float]:
    return {m.gate.key: m.gate.limit for m in gated()}
