"""The NPU configurations Vela estimates for: one table, :data:`TARGETS`, and targets that
users describe in a small TOML file. A new built-in target is one entry in the table,
built from the accelerators, system configurations and memory modes that the installed
Vela knows (the enums below list them).

Why several targets: DS-CNN-S is compute-bound on a U55-256 with fast flash, so
unstructured sparsity and clustering hardly change its time there; they show in the
encoded weights and flash size, and in time only where flash is slow
(``ethos-u55-256-deep``: Ethos_U55_Deep_Embedded). The Ethos-U85 is the only one that
skips the MACs of 2:4-sparse weights.

A target file (``--target my-npu.toml``, ``--kws-vela-targets my-npu.toml``), as Arm's
ML Inference Advisor describes its targets::

    name = "u85-256-flash"            # optional; default: the file's stem
    accelerator = "ethos-u85-256"
    system_config = "Ethos_U85_SYS_Flash_High"
    memory_mode = "Shared_Sram"
    config = "boards/vela.ini"        # optional; relative to this file; default Arm/vela.ini

Target names travel alone through the pipeline (``Settings.vela_targets``) and the
matrix's option, so a target read from a file is remembered by name for the rest of the
process (:func:`parse_targets` resolves it): every process that estimates parses the
option first (pytest-xdist workers parse the command line too).
"""

from __future__ import annotations

import configparser
import importlib.util
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kws.errors import KwsError

#: Vela resolves a two-part relative ``--config`` against the ``config_files`` folder
#: shipped inside the package (``ethosu/config_files/Arm/vela.ini``).
VELA_CONFIG = "Arm/vela.ini"
VELA_DISTRIBUTION = "ethos-u-vela"
#: A part of a target list that ends so is a target file, not a name.
TARGET_FILE_SUFFIX = ".toml"


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


class TargetFileError(KwsError, ValueError):
    """A target file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class VelaTarget:
    """An NPU configuration: Vela's ``--accelerator-config``, and the ``--system-config``
    and ``--memory-mode`` sections of a ``vela.ini`` (``config``; None: the shipped
    ``Arm/vela.ini``). The table uses the enums; any other name is passed to Vela
    unchecked (Vela checks it, and its message says what is wrong). Enum members are
    strings, so keys and reports hold the names.

    ``config`` is neither compared nor part of a cache key by its path: an estimate keys
    on the file's content (:func:`kws.vela.estimate`), so moving the file changes nothing
    and editing it changes the key."""

    name: str
    accelerator: Accelerator | str
    system_config: SystemConfig | str
    memory_mode: MemoryMode | str
    config: Path | None = field(default=None, compare=False)

    def __post_init__(self):
        for name in ("name", "accelerator", "system_config", "memory_mode"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"VelaTarget.{name} must be a non-empty string, got {value!r}")
        if self.config is not None and not isinstance(self.config, Path):
            raise ValueError(f"VelaTarget.config must be a Path or None, got {self.config!r}")

    @property
    def vela_config(self) -> str:
        """What Vela's ``--config`` is given for this target."""
        return VELA_CONFIG if self.config is None else str(self.config)


#: Vela 5.2's own defaults for an Ethos-U85 (``architecture_features.py``: the system
#: config and memory mode it picks when given none): 1 GHz, two SRAM ports at 32 GB/s and
#: DRAM at 12 GB/s, the NPU's 384 KiB SRAM a cache in front of DRAM.
_U85_SYSTEM = (SystemConfig.ETHOS_U85_SYS_DRAM_MID, MemoryMode.DEDICATED_SRAM_384KB)

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
        # Every Ethos-U85 size Vela 5.2 offers, on its default U85 system.
        *(VelaTarget(str(accelerator), accelerator, *_U85_SYSTEM)
          for accelerator in (Accelerator.ETHOS_U85_128, Accelerator.ETHOS_U85_256, Accelerator.ETHOS_U85_512,
                              Accelerator.ETHOS_U85_1024, Accelerator.ETHOS_U85_2048)),
    )
}
#: The study's target.
DEFAULT_TARGET = "ethos-u55-256"
#: ``--target all`` (and ``parse_targets("all")``) means every target in :data:`TARGETS`.
ALL_TARGETS = "all"

#: Targets read from files in this process, by name, with the file each came from.
_FROM_FILES: dict[str, tuple[VelaTarget, Path]] = {}


def parse_targets(spec: str) -> list[VelaTarget]:
    """``"ethos-u55-256,ethos-u85-256,boards/my-npu.toml"`` -> targets, in order, without
    repeats. ``all`` is every target of :data:`TARGETS`; a part ending in ``.toml`` is a
    target file (:func:`load_target_file`); the name of a target read from a file earlier
    in this process names it again. An unknown name raises ValueError listing the valid
    ones; a bad file, :class:`TargetFileError` naming the file and the key."""
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if not parts:
        raise ValueError(f"no target named in {spec!r}; valid: {_valid()}")
    picked: list[VelaTarget] = []
    unknown = []
    for part in parts:
        if part == ALL_TARGETS:
            picked += TARGETS.values()
        elif part.lower().endswith(TARGET_FILE_SUFFIX):
            picked.append(load_target_file(part))
        elif part in TARGETS:
            picked.append(TARGETS[part])
        elif part in _FROM_FILES:
            picked.append(_FROM_FILES[part][0])
        else:
            unknown.append(part)
    if unknown:
        raise ValueError(f"unknown Vela target {', '.join(map(repr, unknown))}; valid: {_valid()}")
    # Names are unique: a file may not take a built-in's name, nor another file's (_remember).
    unique: dict[str, VelaTarget] = {}
    for target in picked:
        unique.setdefault(target.name, target)
    return list(unique.values())


def _valid() -> str:
    return f"{', '.join(TARGETS)}, {ALL_TARGETS}, or a target file NAME{TARGET_FILE_SUFFIX}"


def _same(a: VelaTarget, b: VelaTarget) -> bool:
    return a == b and a.config == b.config


def _target(target: str | VelaTarget) -> VelaTarget:
    if isinstance(target, VelaTarget):
        return target
    if "," in target or target.strip() == ALL_TARGETS:
        raise ValueError(f"target={target!r}: name one target (estimate_all takes several)")
    return parse_targets(target)[0]


# ----- target files --------------------------------------------------------------------------------

#: The keys of a target file: required ones first.
_REQUIRED_KEYS = ("accelerator", "system_config", "memory_mode")
_OPTIONAL_KEYS = ("config", "name")


def load_target_file(path: Path | str) -> VelaTarget:
    """The :class:`VelaTarget` a TOML file describes (see the module's docstring), checked
    against the installed Vela: the accelerator is one of :class:`Accelerator`, the
    ``config`` file exists, and the system config and memory mode are sections of it (or of
    the shipped ``Arm/vela.ini``). Remembered by name for :func:`parse_targets`. Any
    problem raises :class:`TargetFileError` naming the file and the key."""
    path = Path(path).expanduser()
    data = _read_toml(path)
    unknown = [key for key in data if key not in (*_REQUIRED_KEYS, *_OPTIONAL_KEYS)]
    if unknown:
        raise TargetFileError(f"{path}: unknown key {', '.join(map(repr, unknown))}; a target file "
                              f"has {', '.join(_REQUIRED_KEYS)} and optionally {', '.join(_OPTIONAL_KEYS)}")
    missing = [key for key in _REQUIRED_KEYS if key not in data]
    if missing:
        raise TargetFileError(f"{path}: missing key {', '.join(map(repr, missing))}; a target file "
                              f"has {', '.join(_REQUIRED_KEYS)} and optionally {', '.join(_OPTIONAL_KEYS)}")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            raise TargetFileError(f"{path}: {key} = {value!r}: must be a non-empty string without "
                                  "surrounding blanks")
    accelerator = data["accelerator"]
    if accelerator not in set(Accelerator):
        raise TargetFileError(f"{path}: accelerator = {accelerator!r} is not an accelerator Vela knows; "
                              f"valid: {', '.join(Accelerator)}")
    config = _config_path(path, data.get("config"))
    ini, ini_name = _read_ini(path, config)
    for key, kind in (("system_config", "System_Config"), ("memory_mode", "Memory_Mode")):
        section = f"{kind}.{data[key]}"
        if not ini.has_section(section):
            offered = [s.split(".", 1)[1] for s in ini.sections() if s.startswith(f"{kind}.")]
            raise TargetFileError(f"{path}: {key} = {data[key]!r}: {ini_name} has no [{section}]; "
                                  f"it has: {', '.join(offered) or 'none'}")
    name = data.get("name", path.stem)
    _check_name(path, name, "name" in data)
    target = VelaTarget(name, Accelerator(accelerator), data["system_config"], data["memory_mode"], config)
    return _remember(target, path)


def _read_toml(path: Path) -> dict:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        raise TargetFileError(f"Vela target file {path} does not exist") from None
    except IsADirectoryError:
        raise TargetFileError(f"Vela target file {path} is a folder, not a file") from None
    except OSError as exc:
        raise TargetFileError(f"cannot read the Vela target file {path}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TargetFileError(f"{path}: not a valid TOML file ({exc})") from None


def _config_path(path: Path, value: str | None) -> Path | None:
    """The ``config`` key's file, relative to the target file's folder."""
    if value is None:
        return None
    config = (path.parent / Path(value).expanduser()).resolve()
    if not config.is_file():
        what = "a folder" if config.is_dir() else "nothing"
        raise TargetFileError(f"{path}: config = {value!r}: no vela.ini at {config} ({what} there)")
    if config.suffix != ".ini":
        raise TargetFileError(f"{path}: config = {value!r}: Vela reads only .ini files")
    return config


def _read_ini(path: Path, config: Path | None) -> tuple[configparser.ConfigParser, str]:
    ini = configparser.ConfigParser()
    try:
        source = config if config is not None else vela_config_path()
        ini.read_string(source.read_text(encoding="utf-8"), source=str(source))
    except (OSError, UnicodeDecodeError, configparser.Error) as exc:
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise TargetFileError(f"{path}: config: cannot read {config or VELA_CONFIG} as a vela.ini: "
                              f"{problem}") from None
    return ini, str(source) if config is not None else VELA_CONFIG


def _check_name(path: Path, name: str, given: bool) -> None:
    where = f"name = {name!r}" if given else f"its name {name!r} (the file's stem; set name = ...)"
    if name in TARGETS:
        raise TargetFileError(f"{path}: {where} is a built-in target's; give the file another name")
    if name == ALL_TARGETS or "," in name or name.lower().endswith(TARGET_FILE_SUFFIX):
        raise TargetFileError(f"{path}: {where} cannot be used: not {ALL_TARGETS!r}, no comma, no "
                              f"{TARGET_FILE_SUFFIX} ending")


def target_files() -> dict[str, Path]:
    """The targets read from files in this process: name -> file (for a child process to
    read them again, so that it knows them by name too)."""
    return {name: path for name, (_, path) in _FROM_FILES.items()}


def _remember(target: VelaTarget, path: Path) -> VelaTarget:
    """Keep ``target`` under its name; a name another file already gave to another target
    is refused (the reports of both would be keyed by the same name)."""
    earlier = _FROM_FILES.get(target.name)
    if earlier is not None and earlier[1] != path.resolve() and not _same(earlier[0], target):
        raise TargetFileError(f"{path}: name {target.name!r} is already used by {earlier[1]}, "
                              "which describes another target")
    _FROM_FILES[target.name] = (target, path.resolve())
    return target


# ----- the installed Vela --------------------------------------------------------------------------


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
