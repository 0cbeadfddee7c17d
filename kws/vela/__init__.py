"""Ethos-U NPU estimates for any TFLite model: Arm's Vela compiler, run per target.

``kws vela M.tflite --target ethos-u55-256,ethos-u55-256-deep`` compiles the model with
Vela 5.2 for each target and reports the estimated inference time, NPU and memory-access
cycles, SRAM and flash use, the weights before and after Vela's weight encoding, and
which operators stay on the CPU.

Only int8/int16 operators run on the NPU: a model with float input or output keeps
QUANTIZE/DEQUANTIZE on the CPU, and a float or dynamic-range model runs entirely on the
CPU. Both are reported, not refused.

:mod:`~kws.vela.targets` holds the table of NPU configurations, :mod:`~kws.vela.report`
reads Vela's output, and :mod:`~kws.vela.compiler` runs Vela and caches what it says.
TensorFlow is never imported here.
"""

from kws.vela.compiler import (
    COMPILED_FILE,
    PER_LAYER_FILE,
    REPORT_FILE,
    REPORT_FORMAT,
    STAGE,
    SUMMARY_FILE,
    VELA_REQUIREMENT,
    VELA_TIMEOUT_S,
    VelaError,
    estimate,
    estimate_all,
    vela_version,
)
from kws.vela.report import (
    VelaLayer,
    VelaOp,
    VelaReport,
    build_report,
    cpu_operators,
    parse_per_layer,
    parse_summary,
)
from kws.vela.targets import (
    ALL_TARGETS,
    DEFAULT_TARGET,
    TARGETS,
    VELA_CONFIG,
    VELA_DISTRIBUTION,
    Accelerator,
    MemoryMode,
    SystemConfig,
    VelaTarget,
    parse_targets,
    vela_config_path,
)

__all__ = [
    "ALL_TARGETS",
    "COMPILED_FILE",
    "DEFAULT_TARGET",
    "PER_LAYER_FILE",
    "REPORT_FILE",
    "REPORT_FORMAT",
    "STAGE",
    "SUMMARY_FILE",
    "TARGETS",
    "VELA_CONFIG",
    "VELA_DISTRIBUTION",
    "VELA_REQUIREMENT",
    "VELA_TIMEOUT_S",
    "Accelerator",
    "MemoryMode",
    "SystemConfig",
    "VelaError",
    "VelaLayer",
    "VelaOp",
    "VelaReport",
    "VelaTarget",
    "build_report",
    "cpu_operators",
    "estimate",
    "estimate_all",
    "parse_per_layer",
    "parse_summary",
    "parse_targets",
    "vela_config_path",
    "vela_version",
]
