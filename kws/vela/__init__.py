"""Ethos-U NPU estimates for any TFLite model: Arm's Vela compiler, run per target.

``kws vela M.tflite --target ethos-u55-256,ethos-u85-256,my-npu.toml`` compiles the model
with Vela 5.2 for each target (built-in, or described in a TOML file) and reports the
estimated inference time, NPU and memory-access cycles, peak SRAM and flash use, the bytes
moved to and from each memory, the weights before and after Vela's weight encoding, which
operators stay on the CPU and why, and the layers of lowest MAC utilisation.

Only int8/int16 operators run on the NPU: a model with float input or output keeps
QUANTIZE/DEQUANTIZE on the CPU, and a float or dynamic-range model runs entirely on the
CPU. Both are reported, not refused.

:mod:`~kws.vela.targets` holds the table of NPU configurations, :mod:`~kws.vela.report`
reads Vela's output, and :mod:`~kws.vela.compiler` runs Vela and caches what it says.
TensorFlow is never imported here.
"""

from kws.vela.compiler import (
    COMPILED_FILE,
    LOG_FILE,
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
    LOW_UTILISATION_LAYERS,
    LOW_UTILISATION_MIN_SHARE,
    MEMORIES,
    VelaLayer,
    VelaLowUtilisation,
    VelaOp,
    VelaReport,
    VelaTraffic,
    build_report,
    cpu_operators,
    cpu_reasons,
    low_utilisation,
    parse_per_layer,
    parse_summary,
)
from kws.vela.targets import (
    ALL_TARGETS,
    DEFAULT_TARGET,
    TARGET_FILE_SUFFIX,
    TARGETS,
    VELA_CONFIG,
    VELA_DISTRIBUTION,
    Accelerator,
    MemoryMode,
    SystemConfig,
    TargetFileError,
    VelaTarget,
    load_target_file,
    parse_targets,
    vela_config_path,
)

__all__ = [
    "ALL_TARGETS",
    "COMPILED_FILE",
    "DEFAULT_TARGET",
    "LOG_FILE",
    "LOW_UTILISATION_LAYERS",
    "LOW_UTILISATION_MIN_SHARE",
    "MEMORIES",
    "PER_LAYER_FILE",
    "REPORT_FILE",
    "REPORT_FORMAT",
    "STAGE",
    "SUMMARY_FILE",
    "TARGETS",
    "TARGET_FILE_SUFFIX",
    "VELA_CONFIG",
    "VELA_DISTRIBUTION",
    "VELA_REQUIREMENT",
    "VELA_TIMEOUT_S",
    "Accelerator",
    "MemoryMode",
    "SystemConfig",
    "TargetFileError",
    "VelaError",
    "VelaLayer",
    "VelaLowUtilisation",
    "VelaOp",
    "VelaReport",
    "VelaTarget",
    "VelaTraffic",
    "build_report",
    "cpu_operators",
    "cpu_reasons",
    "estimate",
    "estimate_all",
    "load_target_file",
    "low_utilisation",
    "parse_per_layer",
    "parse_summary",
    "parse_targets",
    "vela_config_path",
    "vela_version",
]
