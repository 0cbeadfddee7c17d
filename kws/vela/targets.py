"""The NPU configurations Vela estimates for: one table, :data:`TARGETS`. A new target is
one entry there, built from the accelerators, system configurations and memory modes that
the installed Vela knows (the enums below list them).

Why several targets: DS-CNN-S is compute-bound on a U55-256 with fast flash, so
unstructured sparsity and clustering hardly change its time there; they show in the
encoded weights and flash size, and in time only where flash is slow
(``ethos-u55-256-deep``: Ethos_U55_Deep_Embedded).
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

#: Vela resolves a two-part relative ``--config`` against the ``config_files`` folder
#: shipped inside the package (``ethosu/config_files/Arm/vela.ini``).
VELA_CONFIG = "Arm/vela.ini"
VELA_DISTRIBUTION = "ethos-u-vela"


class Accelerator(StrEnum):
    """Vela 5.2's ``--accelerator-config`` choices."""

    ETHOS_U55_32 = "ethos-u55-32"
    ETHOS_U55_64 = "ethos-u55-64"
    ETHOS_U55_128 = "ethos-u55-128"
    ETHOS_U55_256 = "ethos-u55-256"
    ETHOS_U65_256 = "ethos-u65-256"
    ETHOS_U65_512 = "ethos-u65-512"
    ETHOS_U85_128 = "ethos-u85-128"
    ETHOS_U85_256 = "ethos-u85-256"
    ETHOS_U85_512 = "ethos-u85-512"
    ETHOS_U85_1024 = "ethos-u85-1024"
    ETHOS_U85_2048 = "ethos-u85-2048"


class SystemConfig(StrEnum):
    """The ``System_Config`` sections of Vela 5.2's ``Arm/vela.ini``: clocks, and which
    memory (SRAM, DRAM, on- or off-chip flash) sits behind each AXI port at what speed."""

    ETHOS_U55_DEEP_EMBEDDED = "Ethos_U55_Deep_Embedded"
    ETHOS_U55_HIGH_END_EMBEDDED = "Ethos_U55_High_End_Embedded"
    ETHOS_U65_EMBEDDED = "Ethos_U65_Embedded"
    ETHOS_U65_MID_END = "Ethos_U65_Mid_End"
    ETHOS_U65_HIGH_END = "Ethos_U65_High_End"
    ETHOS_U65_CLIENT_SERVER = "Ethos_U65_Client_Server"
    ETHOS_U85_SYS_FLASH_LOW = "Ethos_U85_SYS_Flash_Low"
    ETHOS_U85_SYS_FLASH_HIGH = "Ethos_U85_SYS_Flash_High"
    ETHOS_U85_SYS_DRAM_LOW = "Ethos_U85_SYS_DRAM_Low"
    ETHOS_U85_SYS_DRAM_MID = "Ethos_U85_SYS_DRAM_Mid"
    ETHOS_U85_SYS_DRAM_HIGH = "Ethos_U85_SYS_DRAM_High"


class MemoryMode(StrEnum):
    """The ``Memory_Mode`` sections of Vela 5.2's ``Arm/vela.ini``: where weights and
    feature maps live."""

    SRAM_ONLY = "Sram_Only"
    SHARED_SRAM = "Shared_Sram"
    DEDICATED_SRAM = "Dedicated_Sram"
    DEDICATED_SRAM_256KB = "Dedicated_Sram_256KB"
    DEDICATED_SRAM_384KB = "Dedicated_Sram_384KB"
    DEDICATED_SRAM_512KB = "Dedicated_Sram_512KB"


@dataclass(frozen=True)
class VelaTarget:
    """An NPU configuration: Vela's ``--accelerator-config``, and the ``--system-config``
    and ``--memory-mode`` sections of the shipped ``Arm/vela.ini``. The table uses the
    enums; any other name is passed to Vela unchecked (Vela checks it, and its message
    says what is wrong). Enum members are strings, so keys and reports hold the names."""

    name: str
    accelerator: Accelerator | str
    system_config: SystemConfig | str
    memory_mode: MemoryMode | str

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"VelaTarget.{field.name} must be a non-empty string, got {value!r}")


TARGETS: dict[str, VelaTarget] = {
    t.name: t
    for t in (
        VelaTarget("ethos-u55-256", Accelerator.ETHOS_U55_256,
                   SystemConfig.ETHOS_U55_HIGH_END_EMBEDDED, MemoryMode.SHARED_SRAM),
        VelaTarget("ethos-u55-128", Accelerator.ETHOS_U55_128,
                   SystemConfig.ETHOS_U55_HIGH_END_EMBEDDED, MemoryMode.SHARED_SRAM),
        VelaTarget("ethos-u65-256", Accelerator.ETHOS_U65_256,
                   SystemConfig.ETHOS_U65_HIGH_END, MemoryMode.DEDICATED_SRAM),
        # Slow (off-chip) flash: where smaller encoded weights also save time.
        VelaTarget("ethos-u55-256-deep", Accelerator.ETHOS_U55_256,
                   SystemConfig.ETHOS_U55_DEEP_EMBEDDED, MemoryMode.SHARED_SRAM),
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


def _find_spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a missing parent package, or a module set to None
        return None


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
