"""What Vela says about one model on one target, read from its output files.

The summary CSV (``<model>_summary_<system_config>.csv``) and the per-layer CSV
(``--verbose-performance``) are read by column name. The operators left on the CPU are
read from the compiled ``<model>_vela.tflite``: it is what the device runs, and every
operator in it other than Vela's ``ethos-u`` custom operator runs on the CPU. Why each
stays there is read from what Vela prints (its compiler core, regor, writes a
``Warning (supported operators)`` block with a ``Reason:`` per operator it refuses, and
records the reasons nowhere else).

Besides the figures, a report carries advice where Vela's output reveals it: the layers
with the lowest MAC utilisation (:func:`low_utilisation`) and the reason of each CPU
operator.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kws.vela.targets import VelaTarget

#: The custom operator that holds an NPU command stream in Vela's output.
_NPU_CUSTOM_OP = "ethos-u"
_BYTES_PER_KIB = 1024
#: The memories of the summary CSV's traffic columns (``sram_total_bytes``, ...).
MEMORIES = ("sram", "dram", "on_chip_flash", "off_chip_flash")
_TRAFFIC_PARTS = ("feature_map_read", "feature_map_write", "weight_read", "weight_write", "total")
#: The advice names this many layers of lowest MAC utilisation, among those that take at
#: least this share of the network's cycles (a layer below it cannot save much time).
LOW_UTILISATION_LAYERS = 3
LOW_UTILISATION_MIN_SHARE = 0.02


@dataclass(frozen=True)
class VelaOp:
    """An operator of the compiled model that runs on the CPU: its TFLite type
    (``QUANTIZE``), the name of its first output tensor, and Vela's reason for leaving it
    there (None where Vela gave none)."""

    type: str
    name: str
    reason: str | None = None


@dataclass(frozen=True)
class VelaTraffic:
    """Bytes one inference moves to and from one memory (``sram``, ``dram``,
    ``on_chip_flash``, ``off_chip_flash``), from the summary CSV: feature maps and weights
    read and written; ``total_bytes`` also counts the biases/scales and lookup tables."""

    memory: str
    feature_map_read_bytes: int
    feature_map_write_bytes: int
    weight_read_bytes: int
    weight_write_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class VelaLowUtilisation:
    """A layer of low MAC utilisation: its per-layer row's name and source operator, the
    percent of the NPU's peak MACs/cycle it uses, its cycles and their share of the
    network's (a fraction)."""

    name: str
    op: str
    mac_utilisation: float
    cycles: int
    cycles_share: float


@dataclass(frozen=True)
class VelaLayer:
    """One row of Vela's per-layer CSV (one Vela operator; a source operator that Vela
    splits, such as Conv2D with a fused ReLU, has one row per part, named after the
    source operator's output tensor)."""

    name: str
    op: str  # the source operator ("Conv2D")
    vela_op: str  # Vela's operator ("Conv2D", "Relu", "Passthrough" on the CPU)
    target: str  # "NPU" or "CPU"
    cycles: int
    npu_cycles: int
    sram_access_cycles: int
    dram_access_cycles: int
    on_chip_flash_access_cycles: int
    off_chip_flash_access_cycles: int
    macs: int
    #: Percent of the NPU's peak MACs/cycle; None where there are no MACs or on the CPU.
    mac_utilisation: float | None
    staging_bytes: int


@dataclass(frozen=True)
class VelaReport:
    """Vela's estimate for one model on one target. Times are per inference (batch 1);
    memory sizes are peak use in bytes (Vela reports KiB): ``sram_bytes`` is the peak SRAM
    use. Traffic is bytes per inference, per memory."""

    target: str
    accelerator: str
    system_config: str
    memory_mode: str
    vela_version: str
    model_sha256: str
    inference_us: float
    inferences_per_second: float
    cycles_npu: int
    cycles_total: int
    cycles_sram_access: int
    cycles_dram_access: int
    cycles_on_chip_flash_access: int
    cycles_off_chip_flash_access: int
    sram_bytes: int
    dram_bytes: int
    #: On-chip plus off-chip flash.
    flash_bytes: int
    weights_storage_area: str
    feature_map_storage_area: str
    original_weight_bytes: int
    encoded_weight_bytes: int
    nn_macs: int
    #: Bytes moved per inference to and from SRAM, DRAM, and flash (on- plus off-chip).
    sram_traffic_bytes: int
    dram_traffic_bytes: int
    flash_traffic_bytes: int
    #: The memories that see traffic, each by kind of data and direction.
    traffic: tuple[VelaTraffic, ...]
    #: Source operators placed on the NPU (distinct names among the per-layer rows).
    npu_ops: int
    #: With Vela's reasons.
    cpu_ops: tuple[VelaOp, ...]
    layers: tuple[VelaLayer, ...]
    #: Advice: the layers of lowest MAC utilisation, lowest first (:func:`low_utilisation`).
    low_utilisation: tuple[VelaLowUtilisation, ...]

    @property
    def all_on_npu(self) -> bool:
        return self.npu_ops > 0 and not self.cpu_ops

    def to_dict(self) -> dict:
        """Plain JSON types (for ``report.json`` and pytest-benchmark's ``extra_info``)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VelaReport:
        fields = {f.name for f in dataclasses.fields(cls)}
        if set(data) != fields:
            raise ValueError(f"not a VelaReport: missing {sorted(fields - set(data))}, "
                             f"unexpected {sorted(set(data) - fields)}")
        return cls(**{**data,
                      "cpu_ops": tuple(VelaOp(**op) for op in data["cpu_ops"]),
                      "traffic": tuple(VelaTraffic(**t) for t in data["traffic"]),
                      "layers": tuple(VelaLayer(**layer) for layer in data["layers"]),
                      "low_utilisation": tuple(VelaLowUtilisation(**n) for n in data["low_utilisation"])})


def _number(row: dict, column: str, source: str, kind=int):
    if column not in row:
        raise ValueError(f"{source} has no column {column!r} (columns: {', '.join(row)})")
    text = row[column].strip()
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{source} column {column!r} is {text!r}, not a number") from None
    if kind is int:
        if not value.is_integer():
            raise ValueError(f"{source} column {column!r} is {text!r}, not a whole number")
        return int(value)
    return value


def _text(row: dict, column: str, source: str) -> str:
    if column not in row:
        raise ValueError(f"{source} has no column {column!r} (columns: {', '.join(row)})")
    return row[column].strip()


def _kib_to_bytes(row: dict, column: str, source: str) -> int:
    return round(_number(row, column, source, float) * _BYTES_PER_KIB)


def parse_summary(text: str) -> dict:
    """The summary CSV's one row as :class:`VelaReport` fields (those it holds)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) != 1:
        raise ValueError(f"the summary CSV has {len(rows)} rows, expected 1")
    row, src = rows[0], "the summary CSV"
    cycles = {f"cycles_{part}": _number(row, f"cycles_{part}", src)
              for part in ("npu", "total", "sram_access", "dram_access",
                           "on_chip_flash_access", "off_chip_flash_access")}
    traffic = {memory: VelaTraffic(memory, *(_number(row, f"{memory}_{part}_bytes", src)
                                             for part in _TRAFFIC_PARTS))
               for memory in MEMORIES}
    return {
        "inference_us": _number(row, "inference_time", src, float) * 1e6,
        "inferences_per_second": _number(row, "inferences_per_second", src, float),
        **cycles,
        "sram_bytes": _kib_to_bytes(row, "sram_memory_used", src),
        "dram_bytes": _kib_to_bytes(row, "dram_memory_used", src),
        "flash_bytes": (_kib_to_bytes(row, "on_chip_flash_memory_used", src)
                        + _kib_to_bytes(row, "off_chip_flash_memory_used", src)),
        "weights_storage_area": _text(row, "weights_storage_area", src),
        "feature_map_storage_area": _text(row, "feature_map_storage_area", src),
        "original_weight_bytes": _number(row, "total_original_weights", src),
        "encoded_weight_bytes": _number(row, "total_npu_encoded_weights", src),
        "nn_macs": _number(row, "nn_macs", src),
        "sram_traffic_bytes": traffic["sram"].total_bytes,
        "dram_traffic_bytes": traffic["dram"].total_bytes,
        "flash_traffic_bytes": traffic["on_chip_flash"].total_bytes + traffic["off_chip_flash"].total_bytes,
        "traffic": tuple(t for t in traffic.values() if t.total_bytes),
    }


def parse_per_layer(text: str) -> list[VelaLayer]:
    """The per-layer CSV's rows. Vela writes it without quoting, so a tensor name with a
    comma spills into extra fields; ``Name`` is the last column, so it takes them."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the per-layer CSV is empty")
    header = lines[0].split(",")
    if header[-1] != "Name":
        raise ValueError(f"the per-layer CSV's last column is {header[-1]!r}, expected 'Name'")
    layers = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",", len(header) - 1)
        if len(fields) != len(header):
            raise ValueError(f"per-layer CSV line {number} has {len(fields)} fields, "
                             f"expected {len(header)}: {line!r}")
        layers.append(_layer(dict(zip(header, fields)), f"per-layer CSV line {number}"))
    return layers


def _layer(row: dict, src: str) -> VelaLayer:
    target = _text(row, "Target", src)
    macs = _number(row, "MAC Count", src)
    utilisation = _number(row, "Util% (MAC)", src, float)
    return VelaLayer(
        name=row["Name"],
        op=_text(row, "Original Operator", src),
        vela_op=_text(row, "NNG Operator", src),
        target=target,
        cycles=_number(row, "Op Cycles", src),
        npu_cycles=_number(row, "NPU", src),
        sram_access_cycles=_number(row, "SRAM AC", src),
        dram_access_cycles=_number(row, "DRAM AC", src),
        on_chip_flash_access_cycles=_number(row, "OnFlash AC", src),
        off_chip_flash_access_cycles=_number(row, "OffFlash AC", src),
        macs=macs,
        # Vela reports 100% where there is nothing to measure (CPU rows, fused activations).
        mac_utilisation=(utilisation if target == "NPU" and macs and math.isfinite(utilisation)
                         else None),
        staging_bytes=_number(row, "Staging Usage", src),
    )


def cpu_operators(compiled: bytes) -> list[VelaOp]:
    """Operators of Vela's output model other than its ``ethos-u`` NPU operator, in order."""
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model

    builtin_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    model = Model.GetRootAsModel(compiled, 0)
    ops = []
    for s in range(model.SubgraphsLength()):
        subgraph = model.Subgraphs(s)
        for i in range(subgraph.OperatorsLength()):
            op = subgraph.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            custom = code.CustomCode()
            if custom is not None and custom.decode() == _NPU_CUSTOM_OP:
                continue
            # Codes above 127 live only in BuiltinCode; older files only in the deprecated one.
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            kind = custom.decode() if custom is not None else builtin_names.get(builtin, str(builtin))
            name = ""
            if op.OutputsLength():
                name = (subgraph.Tensors(op.Outputs(0)).Name() or b"").decode(errors="replace")
            ops.append(VelaOp(kind, name))
    return ops


#: The head of the block Vela prints for each operator it leaves on the CPU.
_CPU_WARNING = re.compile(r"Warning \(supported operators\) operator: (?P<type>\S+), ofm: '(?P<ofm>.*)'")
_REASON = "Reason: "


def cpu_reasons(vela_output: str) -> dict[str, tuple[str, str]]:
    """Vela's reasons for leaving operators on the CPU, read from what it prints: for
    each, ``Warning (supported operators) operator: TYPE, ofm: 'NAME'``, then ``Reason:
    ...`` and further lines up to a blank one. Keyed by the operator's output tensor NAME:
    ``(TYPE, reason)``, the reason's lines joined by "; ". Where Vela split an operator
    (a float CONV_2D into the convolution and its fused RELU) the part it refused may be
    another TYPE than the compiled model's operator of that name."""
    reasons: dict[str, tuple[str, str]] = {}
    lines = [line.strip() for line in vela_output.splitlines()]
    for number, line in enumerate(lines):
        head = _CPU_WARNING.fullmatch(line)
        if head is None:
            continue
        said = []
        for follow in lines[number + 1:]:
            if not follow or _CPU_WARNING.fullmatch(follow):
                break
            said.append(follow.removeprefix(_REASON))
        reasons.setdefault(head["ofm"], (head["type"], "; ".join(said) or "no reason given"))
    return reasons


def with_reasons(ops: Iterable[VelaOp], reasons: dict[str, tuple[str, str]]) -> list[VelaOp]:
    """``ops`` with Vela's reason for each (:func:`cpu_reasons`), naming the refused part
    where it is not the operator itself."""
    out = []
    for op in ops:
        refused, reason = reasons.get(op.name, (op.type, None))
        if reason is not None and refused != op.type:
            reason = f"its {refused}: {reason}"
        out.append(dataclasses.replace(op, reason=reason))
    return out


def low_utilisation(layers: Iterable[VelaLayer], cycles_total: int, *, count: int = LOW_UTILISATION_LAYERS,
                    min_share: float = LOW_UTILISATION_MIN_SHARE) -> list[VelaLowUtilisation]:
    """The ``count`` NPU layers of lowest MAC utilisation among those with MACs that take
    at least ``min_share`` of ``cycles_total`` (ties: the longer first, then model order)."""
    if cycles_total <= 0:
        return []
    candidates = [layer for layer in layers
                  if layer.mac_utilisation is not None and layer.cycles >= min_share * cycles_total]
    candidates.sort(key=lambda layer: (layer.mac_utilisation, -layer.cycles))
    return [VelaLowUtilisation(layer.name, layer.op, layer.mac_utilisation, layer.cycles,
                               layer.cycles / cycles_total)
            for layer in candidates[:count]]


def build_report(target: VelaTarget, vela_version: str, model_sha256: str, summary_csv: str,
                 per_layer_csv: str, compiled: bytes, vela_output: str = "") -> VelaReport:
    """The report from Vela's files and ``vela_output``, what it printed (for the reasons
    of the CPU operators)."""
    layers = parse_per_layer(per_layer_csv)
    summary = parse_summary(summary_csv)
    npu_ops = len({layer.name for layer in layers if layer.target == "NPU"})
    return VelaReport(
        target=target.name, accelerator=target.accelerator,
        system_config=target.system_config, memory_mode=target.memory_mode,
        vela_version=vela_version, model_sha256=model_sha256,
        **summary,
        npu_ops=npu_ops, cpu_ops=tuple(with_reasons(cpu_operators(compiled), cpu_reasons(vela_output))),
        layers=tuple(layers), low_utilisation=tuple(low_utilisation(layers, summary["cycles_total"])),
    )
