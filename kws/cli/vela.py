"""``kws vela M.tflite --target NAME[,NAME...]``: Vela's Ethos-U estimates of a TFLite
model per target, as a table (``--per-layer``: and each target's layers) or as JSON.

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
    TARGETS,
    VELA_CONFIG,
    VelaOp,
    VelaReport,
    estimate_all,
)


def register(subparsers) -> None:
    p = subparsers.add_parser("vela", help="Ethos-U NPU estimates of a TFLite model (Vela)")
    p.add_argument("model", type=input_file, metavar="M.tflite", help="a TFLite model (int8 to run on the NPU)")
    p.add_argument("--target", type=vela_targets, default=[TARGETS[DEFAULT_TARGET]],
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
