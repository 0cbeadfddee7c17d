"""Running Vela on a model for a target, once: the result is cached (stage ``vela``),
keyed by the model's bytes, the target, the content of a target's own ``vela.ini`` and
the Vela version, and a cache hit does not run Vela.

Vela runs in a subprocess (``python -m ethosu.vela``), not through
``ethosu.vela.vela.main`` in-process: Vela 5.2's C++ core (regor) segfaults on a truncated
flatbuffer, which in-process would take the caller (a pytest worker) down with it;
``main`` also resets the interpreter's recursion limit and its native core prints straight
to file descriptor 1. The subprocess costs about 0.2 s of start-up per compile.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from kws.errors import KwsError
from kws.vela.report import VelaReport, build_report
from kws.vela.targets import (
    DEFAULT_TARGET,
    VELA_DISTRIBUTION,
    VelaTarget,
    _find_spec,
    _target,
    parse_targets,
)

STAGE = "vela"
#: Bump when the meaning or the fields of a stored report change: every key changes.
#: 2: traffic per memory, CPU operators' reasons, the lowest-utilisation layers.
REPORT_FORMAT = 2

VELA_REQUIREMENT = "ethos-u-vela==5.2.0"
#: Generous: DS-CNN-S compiles in well under a second.
VELA_TIMEOUT_S = 300

#: Names of the files stored in a cache entry.
SUMMARY_FILE = "summary.csv"
PER_LAYER_FILE = "per-layer.csv"
REPORT_FILE = "report.json"
COMPILED_FILE = "model_vela.tflite"
#: What Vela printed (its reasons for CPU operators among it).
LOG_FILE = "vela.log"

_TFLITE_IDENTIFIER = b"TFL3"


class VelaError(KwsError):
    """Vela could not estimate a model; the message names the model, the target and why."""

    def __init__(self, path: Path | str, target: str, reason: str):
        self.path = Path(path)
        self.target = target
        self.reason = reason
        super().__init__(f"{self.path} (target {target}): {reason}")


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


def _vela_argv(model: Path, target: VelaTarget, out: Path, config: str) -> list[str]:
    return [sys.executable, "-m", "ethosu.vela", str(model),
            "--accelerator-config", target.accelerator, "--config", config,
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
             folder: Path, config: bytes | None = None) -> dict:
    """Run Vela on ``content`` (with ``config``, the bytes of the target's own vela.ini);
    store its CSVs, compiled model, output and the report in ``folder``."""
    with tempfile.TemporaryDirectory(prefix="kws-vela-") as tmp:
        work = Path(tmp)
        # Copies of the bytes that were hashed, under fixed names: Vela names its outputs
        # after the input file, and a vela.ini edited meanwhile must not be read.
        model = work / "model.tflite"
        model.write_bytes(content)
        ini = target.vela_config
        if config is not None:
            ini = str(work / "vela.ini")
            Path(ini).write_bytes(config)
        out = work / "out"
        try:
            result = subprocess.run(_vela_argv(model, target, out, ini), cwd=work, capture_output=True,
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
                                  per_layer.read_text(), compiled.read_bytes(), result.stdout)
        except ValueError as exc:
            raise VelaError(path, target.name, f"cannot read Vela's output: {exc}") from None
        shutil.copyfile(summary, folder / SUMMARY_FILE)
        shutil.copyfile(per_layer, folder / PER_LAYER_FILE)
        shutil.copyfile(compiled, folder / COMPILED_FILE)
    (folder / LOG_FILE).write_text(result.stdout)
    (folder / REPORT_FILE).write_text(json.dumps(report.to_dict(), indent=1))
    return {"target": target.name, "inference_us": report.inference_us,
            "cycles_total": report.cycles_total, "all_on_npu": report.all_on_npu}


def estimate(tflite_path: Path | str, target: str | VelaTarget = DEFAULT_TARGET, *,
             cache=None) -> VelaReport:
    """Vela's estimate for the TFLite model at ``tflite_path`` on ``target`` (a name in
    :data:`TARGETS`, a target file's path or name, or a :class:`VelaTarget`), cached: a
    hit does not run Vela. A target's own vela.ini is read now, and its content is part
    of the key."""
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
    config = None
    if target.config is not None:
        try:
            config = target.config.read_bytes()
        except OSError as exc:
            raise VelaError(path, target.name, f"cannot read its vela.ini {target.config}: "
                                               f"{exc.strerror or exc}") from None
        material["vela_config_sha256"] = hashlib.sha256(config).hexdigest()

    def build(folder: Path) -> dict:
        if version is None:
            raise VelaError(path, target.name, f"Vela is not installed (cannot import "
                                               f"ethosu.vela); install {VELA_REQUIREMENT}")
        _check_flatbuffer(content, path, target.name)
        return _compile(content, path, target, version, sha256, folder, config)

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

