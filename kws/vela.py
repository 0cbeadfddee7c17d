"""Ethos-U NPU estimates for any TFLite model: Arm's Vela compiler, run per target.

``kws vela M.tflite --target ethos-u55-256,ethos-u55-256-deep`` compiles the model with
Vela 5.2 for each target and reports the estimated inference time, NPU and memory-access
cycles, SRAM and flash use, the weights before and after Vela's weight encoding, and
which operators stay on the CPU.

Why several targets: DS-CNN-S is compute-bound on a U55-256 with fast flash, so
unstructured sparsity and clustering hardly change its time there; they show in the
encoded weights and flash size, and in time only where flash is slow
(``ethos-u55-256-deep``: Ethos_U55_Deep_Embedded). Only int8/int16 operators run on
the NPU: a model with float input or output keeps QUANTIZE/DEQUANTIZE on the CPU, and a
float or dynamic-range model runs entirely on the CPU. Both are reported, not refused.

How Vela is run
    In a subprocess (``python -m ethosu.vela``), not through ``ethosu.vela.vela.main``
    in-process: Vela 5.2's C++ core (regor) segfaults on a truncated flatbuffer, which
    in-process would take the caller (a pytest worker) down with it; ``main`` also
    resets the interpreter's recursion limit and its native core prints straight to file
    descriptor 1. The subprocess costs about 0.2 s of start-up per compile.

Where the numbers come from
    The summary CSV (``<model>_summary_<system_config>.csv``) and the per-layer CSV
    (``--verbose-performance``), read by column name. The operators left on the CPU are
    read from the compiled ``<model>_vela.tflite``: it is what the device runs, and
    every operator in it other than Vela's ``ethos-u`` custom operator runs on the CPU.

Results are cached (stage ``vela``), keyed by the model's bytes, the target and the Vela
version; a cache hit does not run Vela. TensorFlow is never imported here.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import math
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kws.errors import KwsError, argument_type

STAGE = "vela"
#: Bump when the meaning or the fields of a stored report change: every key changes.
REPORT_FORMAT = 1

#: Vela resolves a two-part relative ``--config`` against the ``config_files`` folder
#: shipped inside the package (``ethosu/config_files/Arm/vela.ini``).
VELA_CONFIG = "Arm/vela.ini"
VELA_DISTRIBUTION = "ethos-u-vela"
VELA_REQUIREMENT = "ethos-u-vela==5.2.0"
#: Generous: DS-CNN-S compiles in well under a second.
VELA_TIMEOUT_S = 300

#: Names of the files stored in a cache entry.
SUMMARY_FILE = "summary.csv"
PER_LAYER_FILE = "per-layer.csv"
REPORT_FILE = "report.json"
COMPILED_FILE = "model_vela.tflite"

_TFLITE_IDENTIFIER = b"TFL3"
#: The custom operator that holds an NPU command stream in Vela's output.
_NPU_CUSTOM_OP = "ethos-u"
_BYTES_PER_KIB = 1024


class VelaError(KwsError):
    """Vela could not estimate a model; the message names the model, the target and why."""

    def __init__(self, path: Path | str, target: str, reason: str):
        self.path = Path(path)
        self.target = target
        self.reason = reason
        super().__init__(f"{self.path} (target {target}): {reason}")


# ---------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VelaTarget:
    """An NPU configuration: Vela's ``--accelerator-config``, and the ``--system-config``
    and ``--memory-mode`` sections of the shipped ``Arm/vela.ini``. Names are not
    checked here: Vela checks them, and its message says what is wrong."""

    name: str
    accelerator: str
    system_config: str
    memory_mode: str

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"VelaTarget.{field.name} must be a non-empty string, got {value!r}")


TARGETS: dict[str, VelaTarget] = {
    t.name: t
    for t in (
        VelaTarget("ethos-u55-256", "ethos-u55-256", "Ethos_U55_High_End_Embedded", "Shared_Sram"),
        VelaTarget("ethos-u55-128", "ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram"),
        VelaTarget("ethos-u65-256", "ethos-u65-256", "Ethos_U65_High_End", "Dedicated_Sram"),
        # Slow (off-chip) flash: where smaller encoded weights also save time.
        VelaTarget("ethos-u55-256-deep", "ethos-u55-256", "Ethos_U55_Deep_Embedded", "Shared_Sram"),
    )
}
#: The study's target.
DEFAULT_TARGET = "ethos-u55-256"
#: ``--target all`` (and ``parse_targets("all")``) means every target in :data:`TARGETS`.
ALL_TARGETS = "all"


def parse_targets(spec: str) -> list[VelaTarget]:
    """``"ethos-u55-256,ethos-u55-128"`` -> targets, in order, without repeats.
    ``"all"`` is every target; an unknown name raises ValueError listing the valid ones."""
    names = [part.strip() for part in spec.split(",") if part.strip()]
    if not names:
        raise ValueError(f"no target named in {spec!r}; valid: {', '.join(TARGETS)}, {ALL_TARGETS}")
    if ALL_TARGETS in names:
        return list(TARGETS.values())
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown Vela target {', '.join(map(repr, unknown))}; "
                         f"valid: {', '.join(TARGETS)}, {ALL_TARGETS}")
    return [TARGETS[n] for n in dict.fromkeys(names)]


def _target(target: str | VelaTarget) -> VelaTarget:
    if isinstance(target, VelaTarget):
        return target
    if "," in target or target.strip() == ALL_TARGETS:
        raise ValueError(f"target={target!r}: name one target (estimate_all takes several)")
    return parse_targets(target)[0]


def vela_config_path() -> Path:
    """The ``vela.ini`` that ``--config Arm/vela.ini`` means (inside the installed package)."""
    spec = _find_spec("ethosu")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{VELA_DISTRIBUTION} is not installed")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "config_files" / VELA_CONFIG
        if path.is_file():
            return path
    raise FileNotFoundError(f"no config_files/{VELA_CONFIG} in {list(spec.submodule_search_locations)}")


# ---------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VelaOp:
    """An operator of the compiled model that runs on the CPU: its TFLite type
    (``QUANTIZE``) and the name of its first output tensor."""

    type: str
    name: str


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
    memory sizes are peak use in bytes (Vela reports KiB)."""

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
    #: Source operators placed on the NPU (distinct names among the per-layer rows).
    npu_ops: int
    cpu_ops: tuple[VelaOp, ...]
    layers: tuple[VelaLayer, ...]

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
                      "layers": tuple(VelaLayer(**layer) for layer in data["layers"])})


# ----- parsing Vela's output ------------------------------------------------------------


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


def build_report(target: VelaTarget, vela_version: str, model_sha256: str, summary_csv: str,
                 per_layer_csv: str, compiled: bytes) -> VelaReport:
    layers = parse_per_layer(per_layer_csv)
    npu_ops = len({layer.name for layer in layers if layer.target == "NPU"})
    return VelaReport(
        target=target.name, accelerator=target.accelerator,
        system_config=target.system_config, memory_mode=target.memory_mode,
        vela_version=vela_version, model_sha256=model_sha256,
        **parse_summary(summary_csv),
        npu_ops=npu_ops, cpu_ops=tuple(cpu_operators(compiled)), layers=tuple(layers),
    )


# ---------------------------------------------------------------------------------------
# Running Vela
# ---------------------------------------------------------------------------------------


def _find_spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a missing parent package, or a module set to None
        return None


def vela_version() -> str | None:
    """The installed ethos-u-vela version, or None if Vela cannot be imported."""
    if _find_spec("ethosu.vela.vela") is None:
        return None
    try:
        return importlib.metadata.version(VELA_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


def _check_identifier(content: bytes, path: Path, target: str) -> None:
    if len(content) < 8 or content[4:8] != _TFLITE_IDENTIFIER:
        raise VelaError(path, target, f"not a TFLite model (no {_TFLITE_IDENTIFIER.decode()} "
                                      "flatbuffer identifier); Vela was not run")


def _check_flatbuffer(content: bytes, path: Path, target: str) -> None:
    """Refuse a truncated or corrupt TFLite file before Vela sees it: Vela's native core
    crashes on one (SIGSEGV) instead of saying so. Walking every table and vector with
    Vela's own schema bindings takes milliseconds."""
    from ethosu.vela.tflite.Model import Model

    try:
        (root,) = struct.unpack_from("<I", content, 0)
        if root >= len(content):
            raise ValueError(f"root table offset {root} is past the end ({len(content)} bytes)")
        model = Model.GetRootAsModel(content, 0)
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for i in range(subgraph.TensorsLength()):
                subgraph.Tensors(i).ShapeAsNumpy()
            for i in range(subgraph.OperatorsLength()):
                op = subgraph.Operators(i)
                model.OperatorCodes(op.OpcodeIndex())
                op.InputsAsNumpy(), op.OutputsAsNumpy()
        for b in range(model.BuffersLength()):
            buffer = model.Buffers(b)
            buffer.DataAsNumpy()
            if buffer.Offset() > 1 and buffer.Offset() + buffer.Size() > len(content):
                raise ValueError(f"buffer {b} ends past the end of the file")
    # What the flatbuffer reader and numpy raise on offsets past the end of the buffer.
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as exc:
        raise VelaError(path, target, f"truncated or corrupt TFLite flatbuffer ({len(content)} "
                                      f"bytes: {exc}); Vela was not run") from None


def _vela_argv(model: Path, target: VelaTarget, out: Path) -> list[str]:
    return [sys.executable, "-m", "ethosu.vela", str(model),
            "--accelerator-config", target.accelerator, "--config", VELA_CONFIG,
            "--system-config", target.system_config, "--memory-mode", target.memory_mode,
            "--output-dir", str(out), "--verbose-performance"]


def _vela_message(result: subprocess.CompletedProcess) -> str:
    """Vela's own words for a failure: the exception line of its traceback, or the last
    lines it printed, and the signal if it crashed."""
    err = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    out = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if err and any(line.startswith("Traceback") for line in err):
        exc_type, _, message = err[-1].partition(": ")
        lines = [f"{exc_type.rsplit('.', 1)[-1]}: {message}" if message else err[-1]]
    else:
        lines = (err or out)[-3:]
    said = " | ".join(lines) or "no output"
    if result.returncode < 0:
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        return f"Vela crashed ({name}): {said}"
    return f"Vela failed (exit {result.returncode}): {said}"


def _compile(content: bytes, path: Path, target: VelaTarget, version: str, sha256: str,
             folder: Path) -> dict:
    """Run Vela on ``content``; store its CSVs, compiled model and the report in ``folder``."""
    with tempfile.TemporaryDirectory(prefix="kws-vela-") as tmp:
        work = Path(tmp)
        # A copy of the bytes that were hashed, under a fixed name: Vela names its
        # outputs after the input file.
        model = work / "model.tflite"
        model.write_bytes(content)
        out = work / "out"
        try:
            result = subprocess.run(_vela_argv(model, target, out), cwd=work, capture_output=True,
                                    check=False, text=True, errors="replace", timeout=VELA_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise VelaError(path, target.name, f"Vela ran past {VELA_TIMEOUT_S} s") from None
        except OSError as exc:
            raise VelaError(path, target.name, f"cannot start Vela: {exc}") from None
        if result.returncode != 0:
            raise VelaError(path, target.name, _vela_message(result))
        summary = out / f"model_summary_{target.system_config}.csv"
        per_layer = out / "model_per-layer.csv"
        compiled = out / "model_vela.tflite"
        for produced, what in ((summary, "summary CSV"), (per_layer, "per-layer CSV"),
                               (compiled, "compiled model")):
            if not produced.is_file():
                found = ", ".join(sorted(p.name for p in out.glob("*"))) or "nothing"
                raise VelaError(path, target.name,
                                f"Vela exited 0 but wrote no {what} {produced.name} (wrote: {found})")
        try:
            report = build_report(target, version, sha256, summary.read_text(),
                                  per_layer.read_text(), compiled.read_bytes())
        except ValueError as exc:
            raise VelaError(path, target.name, f"cannot read Vela's output: {exc}") from None
        shutil.copyfile(summary, folder / SUMMARY_FILE)
        shutil.copyfile(per_layer, folder / PER_LAYER_FILE)
        shutil.copyfile(compiled, folder / COMPILED_FILE)
    (folder / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=1))
    return {"target": target.name, "inference_us": report.inference_us,
            "cycles_total": report.cycles_total, "all_on_npu": report.all_on_npu}


def estimate(tflite_path: Path | str, target: str | VelaTarget = DEFAULT_TARGET, *,
             cache=None) -> VelaReport:
    """Vela's estimate for the TFLite model at ``tflite_path`` on ``target`` (a name in
    :data:`TARGETS` or a :class:`VelaTarget`), cached: a hit does not run Vela."""
    from kws.cache import ArtifactCache

    target = _target(target)
    path = Path(tflite_path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise VelaError(path, target.name, f"cannot read the model: {exc.strerror or exc}") from None
    sha256 = hashlib.sha256(content).hexdigest()
    version = vela_version()
    material = {
        "tflite_sha256": sha256,
        "target": target,
        "vela": version,
        "report_format": REPORT_FORMAT,
    }

    def build(folder: Path) -> dict:
        if version is None:
            raise VelaError(path, target.name, f"Vela is not installed (cannot import "
                                               f"ethosu.vela); install {VELA_REQUIREMENT}")
        _check_flatbuffer(content, path, target.name)
        return _compile(content, path, target, version, sha256, folder)

    _check_identifier(content, path, target.name)  # before any cache work
    cache = cache if cache is not None else ArtifactCache()
    artifact = cache.get_or_build(STAGE, material, build)
    return VelaReport.from_dict(json.loads(artifact.file(REPORT_FILE).read_text()))


def estimate_all(tflite_path: Path | str, targets: str | Iterable[str | VelaTarget], *,
                 cache=None) -> dict[str, VelaReport]:
    """:func:`estimate` for each target (names, :class:`VelaTarget` s, or a comma-separated
    string), keyed by target name in the order given."""
    if isinstance(targets, str):
        targets = parse_targets(targets)
    resolved = [_target(t) for t in targets]
    return {t.name: estimate(tflite_path, t, cache=cache) for t in resolved}


# ---------------------------------------------------------------------------------------
# kws vela
# ---------------------------------------------------------------------------------------


def register(subparsers) -> None:
    p = subparsers.add_parser("vela", help="Ethos-U NPU estimates of a TFLite model (Vela)")
    p.add_argument("model", type=Path, metavar="M.tflite", help="a TFLite model (int8 to run on the NPU)")
    p.add_argument("--target", type=argument_type(parse_targets), default=[TARGETS[DEFAULT_TARGET]],
                   metavar="NAME[,NAME...]",
                   help=f"{', '.join(TARGETS)} or {ALL_TARGETS} (default {DEFAULT_TARGET})")
    p.add_argument("--per-layer", action="store_true", help="also print each target's per-layer table")
    p.add_argument("--json", action="store_true", help="print a JSON list of reports")
    p.set_defaults(func=run_vela)


def run_vela(args: argparse.Namespace) -> int:
    reports = estimate_all(args.model, args.target)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports.values()], indent=1))
        return 0
    first = next(iter(reports.values()))
    print(f"{args.model} (sha256 {first.model_sha256[:12]}), Vela {first.vela_version}, "
          f"{VELA_CONFIG}")
    print(format_reports(reports.values()))
    if args.per_layer:
        for report in reports.values():
            print(f"\n{report.target} ({report.accelerator}, {report.system_config}, "
                  f"{report.memory_mode}): per layer")
            print(format_layers(report))
    return 0


def format_reports(reports: Iterable[VelaReport]) -> str:
    from tabulate import tabulate

    reports = list(reports)
    # U65 systems keep weights in DRAM; show the column only where some target uses it.
    dram = any(r.dram_bytes for r in reports)
    rows = [[r.target, f"{r.inference_us:.1f}", r.cycles_npu, r.cycles_total, r.sram_bytes,
             r.flash_bytes, *([r.dram_bytes] if dram else []), r.original_weight_bytes,
             r.encoded_weight_bytes, r.npu_ops, len(r.cpu_ops), _op_counts(r.cpu_ops)]
            for r in reports]
    headers = ["target", "µs", "NPU cycles", "total cycles", "SRAM B", "flash B",
               *(["DRAM B"] if dram else []), "weights B", "encoded B", "NPU ops", "CPU ops",
               "on CPU"]
    return tabulate(rows, headers=headers, intfmt=",")


def _op_counts(ops: Iterable[VelaOp]) -> str:
    """``QUANTIZE DEQUANTIZE`` or, for repeats, ``5x CONV_2D 4x DEPTHWISE_CONV_2D ...``."""
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.type] = counts.get(op.type, 0) + 1
    return " ".join(f"{n}x {kind}" if n > 1 else kind for kind, n in counts.items()) or "-"


def format_layers(report: VelaReport) -> str:
    from tabulate import tabulate

    def short(name: str, width: int = 48) -> str:
        # A fused operator's name lists every tensor it absorbed; the first one names it.
        first = name.split(";")[0]
        return first if len(first) <= width else first[: width - 3] + "..."

    rows = [[short(layer.name), layer.op, layer.vela_op, layer.target, layer.cycles, layer.macs,
             "-" if layer.mac_utilisation is None else f"{layer.mac_utilisation:.1f}"]
            for layer in report.layers]
    headers = ["layer", "op", "Vela op", "on", "cycles", "MACs", "MAC util %"]
    return tabulate(rows, headers=headers, intfmt=",")


__all__ = [
    "DEFAULT_TARGET",
    "TARGETS",
    "VelaError",
    "VelaLayer",
    "VelaOp",
    "VelaReport",
    "VelaTarget",
    "estimate",
    "estimate_all",
    "parse_targets",
    "register",
    "vela_config_path",
]
