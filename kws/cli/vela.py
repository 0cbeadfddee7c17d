"""``kws vela M.tflite --target NAME[,NAME...]``: Vela's Ethos-U estimates of a TFLite
model per target, as a table (``--per-layer``: and each target's layers; ``--advice``: the
layers of lowest MAC utilisation and Vela's reasons for each CPU operator) or as JSON
(everything, the advice included). A target is a built-in name or a TOML file describing
one (:func:`kws.vela.load_target_file`).

:mod:`kws.vela` imports neither TensorFlow nor numpy, and a cached estimate does not run
Vela, so the command answers a repeated question at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable

from kws.cli.args import input_file, vela_targets
from kws.vela import (
    ALL_TARGETS,
    DEFAULT_TARGET,
    LOW_UTILISATION_MIN_SHARE,
    TARGETS,
    VELA_CONFIG,
    VelaOp,
    VelaReport,
    VelaTarget,
    estimate_all,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("vela", help="Ethos-U NPU estimates of a TFLite model (Vela)")
    p.add_argument("model", type=input_file, metavar="M.tflite", help="a TFLite model (int8 to run on the NPU)")
    p.add_argument("--target", type=vela_targets, default=[TARGETS[DEFAULT_TARGET]],
                   metavar="NAME[,NAME...]",
                   help=f"{', '.join(TARGETS)}, {ALL_TARGETS}, or a target file T.toml (accelerator, "
                        f"system_config, memory_mode, optional config = a vela.ini, optional name) "
                        f"(default {DEFAULT_TARGET})")
    p.add_argument("--per-layer", action="store_true", help="also print each target's per-layer table")
    p.add_argument("--advice", action="store_true",
                   help="also print, per target, the layers of lowest MAC utilisation and Vela's reason "
                        "for each operator left on the CPU")
    p.add_argument("--json", action="store_true", help="print a JSON list of reports (with the advice)")
    p.set_defaults(func=run_vela)


def run_vela(args: argparse.Namespace) -> int:
    reports = estimate_all(args.model, args.target)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports.values()], indent=1))
        return 0
    first = next(iter(reports.values()))
    print(f"{args.model} (sha256 {first.model_sha256[:12]}), Vela {first.vela_version}, "
          f"{VELA_CONFIG}{_own_configs(args.target)}")
    print(format_reports(reports.values()))
    if args.advice:
        print()
        print(format_advice(reports.values()))
    elif any(r.cpu_ops for r in reports.values()):
        print("\n--advice: Vela's reason for each CPU operator, and the layers of lowest MAC utilisation")
    if args.per_layer:
        for report in reports.values():
            print(f"\n{report.target} ({report.accelerator}, {report.system_config}, "
                  f"{report.memory_mode}): per layer")
            print(format_layers(report))
    return 0


def _own_configs(targets: Iterable[VelaTarget]) -> str:
    """``"; target-x: /path/vela.ini"`` for the targets that bring their own vela.ini."""
    own = [f"{t.name}: {t.config}" for t in targets if t.config is not None]
    return "".join(f"; {entry}" for entry in own)


def format_reports(reports: Iterable[VelaReport]) -> str:
    from tabulate import tabulate

    reports = list(reports)
    # U65 and U85 systems keep weights in DRAM, the U55 ones in flash: show a memory's
    # columns only where some target uses it.
    dram = any(r.dram_bytes or r.dram_traffic_bytes for r in reports)
    flash = any(r.flash_bytes or r.flash_traffic_bytes for r in reports)
    rows = [[r.target, r.inference_us, r.cycles_npu, r.cycles_total, r.sram_bytes,
             *([r.flash_bytes] if flash else []), *([r.dram_bytes] if dram else []),
             r.sram_traffic_bytes, *([r.flash_traffic_bytes] if flash else []),
             *([r.dram_traffic_bytes] if dram else []), r.original_weight_bytes,
             r.encoded_weight_bytes, r.npu_ops, len(r.cpu_ops), _op_counts(r.cpu_ops)]
            for r in reports]
    headers = ["target", "µs", "NPU cycles", "total cycles", "peak SRAM B",
               *(["flash B"] if flash else []), *(["DRAM B"] if dram else []),
               "SRAM traffic B", *(["flash traffic B"] if flash else []), *(["DRAM traffic B"] if dram else []),
               "weights B", "encoded B", "NPU ops", "CPU ops", "on CPU"]
    return tabulate(rows, headers=headers, intfmt=",", floatfmt=".1f")


def _op_counts(ops: Iterable[VelaOp]) -> str:
    """``QUANTIZE DEQUANTIZE`` or, for repeats, ``5x CONV_2D 4x DEPTHWISE_CONV_2D ...``."""
    counts: dict[str, int] = {}
    for op in ops:
        counts[op.type] = counts.get(op.type, 0) + 1
    return " ".join(f"{n}x {kind}" if n > 1 else kind for kind, n in counts.items()) or "-"


def _short(name: str, width: int = 48) -> str:
    # A fused operator's name lists every tensor it absorbed; the first one names it.
    first = name.split(";")[0]
    return first if len(first) <= width else first[: width - 3] + "..."


def format_advice(reports: Iterable[VelaReport]) -> str:
    """The layers of lowest MAC utilisation per target, as a table, then the operators left
    on the CPU with Vela's reason, each once with the targets it stays on the CPU for."""
    from tabulate import tabulate

    reports = list(reports)
    rows = [[r.target, _short(n.name), n.op, n.mac_utilisation, n.cycles, 100 * n.cycles_share]
            for r in reports for n in r.low_utilisation]
    lines = [f"Lowest MAC utilisation (NPU layers with at least {LOW_UTILISATION_MIN_SHARE:.0%} of the cycles):"]
    if rows:
        lines.append(tabulate(rows, headers=["target", "layer", "op", "MAC util %", "cycles", "of total %"],
                              intfmt=",", floatfmt=".1f"))
    else:
        lines.append("  none: no NPU layer with MACs")
    on_cpu: dict[tuple[str, str, str | None], list[str]] = {}
    for r in reports:
        for op in r.cpu_ops:
            on_cpu.setdefault((op.type, op.name, op.reason), []).append(r.target)
    lines.append("\nOn the CPU, with Vela's reason:")
    if not on_cpu:
        lines.append("  nothing: every operator runs on the NPU")
    for (kind, name, reason), targets in on_cpu.items():
        where = "" if len(targets) == len(reports) else f" [{', '.join(targets)}]"
        lines.append(f"  {kind} {_short(name)}{where}: {reason or 'Vela gave no reason'}")
    return "\n".join(lines)


def format_layers(report: VelaReport) -> str:
    from tabulate import tabulate

    rows = [[_short(layer.name), layer.op, layer.vela_op, layer.target, layer.cycles, layer.macs,
             "-" if layer.mac_utilisation is None else f"{layer.mac_utilisation:.1f}"]
            for layer in report.layers]
    headers = ["layer", "op", "Vela op", "on", "cycles", "MACs", "MAC util %"]
    return tabulate(rows, headers=headers, intfmt=",")
