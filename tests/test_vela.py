"""Vela estimates on real Vela output: targets (built-in, Ethos-U85, described in TOML files),
parsing, traffic, advice, caching, CPU fallback and its reasons, errors, CLI."""

from __future__ import annotations

import configparser
import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from kws.cache import ArtifactCache
from kws.cli import main
from kws.export import representative_dataset, representative_samples, to_tflite
from kws.models import ModelConfig, build_model
from kws.vela import (
    DEFAULT_TARGET,
    LOW_UTILISATION_LAYERS,
    LOW_UTILISATION_MIN_SHARE,
    MEMORIES,
    PER_LAYER_FILE,
    STAGE,
    TARGETS,
    Accelerator,
    MemoryMode,
    SystemConfig,
    TargetFileError,
    VelaError,
    VelaReport,
    VelaTarget,
    estimate,
    estimate_all,
    load_target_file,
    parse_per_layer,
    parse_targets,
    vela_config_path,
)

#: Calibration rows: enough for valid ranges, few enough to convert in seconds.
CALIBRATION_ROWS = 16
#: Share of each kernel zeroed (by magnitude) in the sparse variant.
SPARSITY = 0.8


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Untrained DS-CNN-S as int8 (int8 I/O), as int8 with 80% of each kernel zeroed,
    as int8 with float input and output, and as float32 (nothing on the NPU)."""
    from kws.compat import tf

    tf.keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("vela-models")
    model = build_model(ModelConfig())
    calibration = np.random.default_rng(0).standard_normal((CALIBRATION_ROWS, 49, 10))
    paths = {"int8": folder / "dscnn_s_int8.tflite",
             "sparse": folder / "dscnn_s_sparse_int8.tflite",
             "float_io": folder / "dscnn_s_float_io.tflite",
             "float": folder / "dscnn_s_float.tflite"}
    paths["int8"].write_bytes(to_tflite(model, "int8", calibration))
    paths["float"].write_bytes(bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert()))

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset(
        representative_samples(calibration, model.input_shape))
    with warnings.catch_warnings():  # "statistics for quantized inputs": none are, here
        warnings.simplefilter("ignore")
        paths["float_io"].write_bytes(bytes(converter.convert()))  # int8 inside, float I/O

    for layer in model.layers:
        weights = layer.get_weights()
        if weights and weights[0].ndim >= 2:  # kernels; biases and BN stay
            kernel = weights[0]
            threshold = np.quantile(np.abs(kernel), SPARSITY)
            layer.set_weights([np.where(np.abs(kernel) <= threshold, 0, kernel), *weights[1:]])
    paths["sparse"].write_bytes(to_tflite(model, "int8", calibration))
    return paths


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> ArtifactCache:
    """One cache for the module, so that each model/target pair compiles once."""
    return ArtifactCache(tmp_path_factory.mktemp("vela-cache"))


@pytest.fixture(scope="module")
def reports(models, cache) -> dict[str, VelaReport]:
    return estimate_all(models["int8"], list(TARGETS), cache=cache)


@pytest.fixture(scope="module")
def report(reports) -> VelaReport:
    return reports[DEFAULT_TARGET]


# ----- targets ---------------------------------------------------------------------------


def test_every_target_names_sections_of_the_shipped_vela_ini():
    ini = configparser.ConfigParser()
    assert ini.read(vela_config_path()), vela_config_path()
    assert TARGETS, "no targets to check"
    for target in TARGETS.values():
        assert f"System_Config.{target.system_config}" in ini, target
        assert f"Memory_Mode.{target.memory_mode}" in ini, target
    assert DEFAULT_TARGET in TARGETS


def test_the_enums_list_what_the_installed_vela_offers():
    from ethosu.vela.architecture_features import Accelerator as VelaAccelerator

    ini = configparser.ConfigParser()
    assert ini.read(vela_config_path()), vela_config_path()
    assert [a.value for a in Accelerator] == VelaAccelerator.member_list()
    sections = {kind: [s.split(".", 1)[1] for s in ini.sections() if s.startswith(f"{kind}.")]
                for kind in ("System_Config", "Memory_Mode")}
    assert [s.value for s in SystemConfig] == sections["System_Config"]
    assert [m.value for m in MemoryMode] == sections["Memory_Mode"]


def test_enum_members_key_and_report_as_their_names(tmp_path):
    """The table's enum members are strings: a cache key or a report holds the plain name,
    so keys did not change when the table took enums."""
    target = TARGETS[DEFAULT_TARGET]
    plain = VelaTarget(target.name, str(target.accelerator), str(target.system_config),
                       str(target.memory_mode))
    assert type(plain.accelerator) is str and plain == target
    cache = ArtifactCache(tmp_path)
    assert cache.key(STAGE, {"target": target}) == cache.key(STAGE, {"target": plain})
    assert json.dumps(dataclasses.asdict(target)) == json.dumps(dataclasses.asdict(plain))


def test_parse_targets_keeps_order_drops_repeats_and_expands_all():
    picked = parse_targets(" ethos-u55-128,ethos-u55-256,ethos-u55-128 ")
    assert [t.name for t in picked] == ["ethos-u55-128", "ethos-u55-256"]
    assert parse_targets("all") == list(TARGETS.values())


def test_parse_targets_rejects_unknown_names_listing_the_valid_ones():
    with pytest.raises(ValueError, match="unknown Vela target 'ethos-u99'") as info:
        parse_targets("ethos-u55-256,ethos-u99")
    assert all(name in str(info.value) for name in TARGETS)
    with pytest.raises(ValueError, match="no target"):
        parse_targets(" , ")


def test_vela_target_rejects_empty_fields():
    with pytest.raises(ValueError, match="VelaTarget.memory_mode must be a non-empty string"):
        VelaTarget("x", "ethos-u55-256", "Ethos_U55_High_End_Embedded", "")


#: The Ethos-U85 sizes Vela 5.2 offers; each is a built-in target of the same name.
U85_SIZES = (128, 256, 512, 1024, 2048)


def test_every_ethos_u85_size_is_a_target_on_velas_default_u85_system():
    from ethosu.vela.architecture_features import ArchitectureFeatures

    u85 = [t for t in TARGETS.values() if t.accelerator.startswith("ethos-u85")]
    assert [t.name for t in u85] == [f"ethos-u85-{macs}" for macs in U85_SIZES]
    for target in u85:
        assert target.accelerator == target.name and target.config is None
        # What Vela itself picks for this accelerator when given no system config or memory mode.
        vela = ArchitectureFeatures(None, target.accelerator, ArchitectureFeatures.DEFAULT_CONFIG,
                                    ArchitectureFeatures.DEFAULT_CONFIG, ArchitectureFeatures.MAX_BLOCKDEP,
                                    False, None)
        assert (target.system_config, target.memory_mode) == (vela.system_config, vela.memory_mode)
    assert DEFAULT_TARGET == "ethos-u55-256"


# ----- reports from real Vela output -----------------------------------------------------------


def test_int8_report_holds_consistent_figures(report):
    assert report.target == DEFAULT_TARGET and report.accelerator == "ethos-u55-256"
    assert report.inference_us > 0
    assert report.cycles_total >= report.cycles_npu > 0
    # inference_time is cycles over the 500 MHz clock of the High_End_Embedded system.
    assert report.inference_us == pytest.approx(report.cycles_total / 500, rel=1e-3)
    assert report.inferences_per_second == pytest.approx(1e6 / report.inference_us, rel=1e-3)
    assert report.sram_bytes > 0 and report.flash_bytes > 0
    assert report.sram_bytes % 16 == 0, "KiB converted to bytes should be whole allocations"
    assert report.original_weight_bytes > 0 and report.encoded_weight_bytes > 0
    assert report.nn_macs > 2_000_000
    assert report.vela_version == "5.2.0"


def test_int8_io_model_runs_entirely_on_the_npu(report):
    # conv, 4 x (depthwise, pointwise), average pool, fully connected; the reshape folds away.
    assert report.npu_ops == 11
    assert report.cpu_ops == ()
    assert report.all_on_npu


def test_per_layer_records_name_ops_cycles_and_utilisation(report):
    assert report.layers, "no per-layer rows"
    assert all(layer.name and layer.op and layer.target == "NPU" for layer in report.layers)
    assert sum(layer.cycles for layer in report.layers) > 0
    measured = [layer.mac_utilisation for layer in report.layers if layer.mac_utilisation is not None]
    assert measured, "no layer with MACs"
    assert all(0 <= u <= 100 for u in measured), measured
    assert sum(layer.macs for layer in report.layers) == report.nn_macs
    assert any(layer.op == "DepthwiseConv2D" for layer in report.layers)


def test_report_survives_json(report):
    data = json.loads(json.dumps(report.to_dict()))
    assert VelaReport.from_dict(data) == report
    with pytest.raises(ValueError, match="unexpected"):
        VelaReport.from_dict({**data, "extra": 1})


def test_every_target_compiles_and_more_macs_per_cycle_is_not_slower(reports):
    assert set(reports) == set(TARGETS)
    assert all(r.inference_us > 0 and r.npu_ops == 11 and r.all_on_npu for r in reports.values())
    assert reports["ethos-u55-128"].inference_us >= reports["ethos-u55-256"].inference_us
    assert reports["ethos-u55-128"].cycles_npu >= reports["ethos-u55-256"].cycles_npu
    # Same NPU, slow flash: weight traffic costs time.
    assert reports["ethos-u55-256-deep"].inference_us > reports["ethos-u55-256"].inference_us
    # The U65 system keeps the weights in DRAM, not flash.
    assert reports["ethos-u65-256"].dram_bytes > 0 and reports["ethos-u65-256"].flash_bytes == 0


def test_ethos_u85_targets_compile_and_report(reports):
    u85 = [reports[f"ethos-u85-{macs}"] for macs in U85_SIZES]
    for report in u85:
        assert (report.accelerator, report.system_config, report.memory_mode) == (
            report.target, "Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB")
        # 1 GHz: one cycle per nanosecond.
        assert report.inference_us == pytest.approx(report.cycles_total / 1000, rel=1e-3)
        # Weights and feature maps in DRAM, the SRAM a cache in front of it; no flash.
        assert report.dram_bytes > 0 and report.flash_bytes == 0 and report.sram_bytes > 0
        assert report.weights_storage_area == "DRAM"
    times = [r.inference_us for r in u85]
    assert times == sorted(times, reverse=True), f"more MACs per cycle should not be slower: {times}"
    assert reports["ethos-u85-256"].inference_us < reports["ethos-u55-256"].inference_us


def test_sparsity_shrinks_the_encoded_weights(models, report, cache):
    sparse = estimate(models["sparse"], cache=cache)
    assert sparse.original_weight_bytes == report.original_weight_bytes
    assert sparse.encoded_weight_bytes < sparse.original_weight_bytes
    assert sparse.encoded_weight_bytes < 0.75 * report.encoded_weight_bytes
    assert sparse.flash_bytes < report.flash_bytes


def test_float_io_model_reports_its_cpu_operators(models, cache):
    report = estimate(models["float_io"], cache=cache)
    assert [op.type for op in report.cpu_ops] == ["QUANTIZE", "DEQUANTIZE"]
    assert not report.all_on_npu
    assert report.npu_ops == 11
    # The compiled model and the per-layer CSV agree on what stays on the CPU.
    assert {op.name for op in report.cpu_ops} == {
        layer.name for layer in report.layers if layer.target == "CPU"}


def test_per_layer_csv_names_may_hold_commas(report, models, cache):
    entry = cache.get(STAGE, _material(models["int8"], TARGETS[DEFAULT_TARGET]))
    assert entry is not None
    text = entry.file(PER_LAYER_FILE).read_text()
    first_row = text.splitlines()[1]
    edited = text.replace(first_row, first_row + ",with,commas", 1)
    layers = parse_per_layer(edited)
    assert layers[0].name == report.layers[0].name + ",with,commas"
    assert layers[1:] == list(report.layers[1:])


# ----- peak SRAM and traffic -------------------------------------------------------------


def test_reports_carry_peak_sram_and_traffic_per_memory(reports):
    u55, u85 = reports[DEFAULT_TARGET], reports["ethos-u85-256"]
    for report in (u55, u85):
        assert report.sram_bytes > 0, "peak SRAM"
        memories = [t.memory for t in report.traffic]
        assert memories and set(memories) <= set(MEMORIES)
        for t in report.traffic:
            parts = (t.feature_map_read_bytes, t.feature_map_write_bytes, t.weight_read_bytes,
                     t.weight_write_bytes)
            assert t.total_bytes > 0 and all(p >= 0 for p in parts) and sum(parts) <= t.total_bytes, t
        by_memory = {t.memory: t for t in report.traffic}
        assert report.sram_traffic_bytes == by_memory["sram"].total_bytes
        assert report.sram_traffic_bytes + report.dram_traffic_bytes + report.flash_traffic_bytes == sum(
            t.total_bytes for t in report.traffic)
    # The U55 system streams the encoded weights from off-chip flash; the U85 one from DRAM.
    u55_flash = {t.memory: t for t in u55.traffic}["off_chip_flash"]
    assert u55.dram_traffic_bytes == 0 and u55_flash.weight_read_bytes >= u55.encoded_weight_bytes
    assert u85.flash_traffic_bytes == 0 and {t.memory: t for t in u85.traffic}["dram"].weight_read_bytes > 0


def test_the_matrix_keeps_every_new_vela_field_per_target(report):
    from kws.metrics import METRICS, vela_fields

    fields = vela_fields()
    for name in ("vela_sram", "vela_sram_traffic", "vela_dram_traffic", "vela_flash_traffic"):
        assert METRICS[name].vela_field in fields
    assert {"cpu_ops", "traffic", "low_utilisation"} <= set(fields)
    assert set(fields) <= set(report.to_dict()), "a per-target field the report does not have"
    kept = {"vela": {DEFAULT_TARGET: {f: report.to_dict()[f] for f in fields}}}
    assert METRICS["vela_flash_traffic"].value(kept, DEFAULT_TARGET) == report.flash_traffic_bytes > 0


# ----- advice ----------------------------------------------------------------------------


def test_advice_names_the_layers_of_lowest_mac_utilisation(reports):
    for report in reports.values():
        advised = report.low_utilisation
        assert 0 < len(advised) <= LOW_UTILISATION_LAYERS, report.target
        eligible = [layer for layer in report.layers if layer.mac_utilisation is not None
                    and layer.cycles >= LOW_UTILISATION_MIN_SHARE * report.cycles_total]
        lowest = sorted(layer.mac_utilisation for layer in eligible)[:len(advised)]
        assert [n.mac_utilisation for n in advised] == lowest, report.target
        for note in advised:
            assert note.cycles_share == pytest.approx(note.cycles / report.cycles_total)
            assert any(layer.name == note.name and layer.op == note.op for layer in report.layers)
    # DS-CNN's average pool and depthwise convolutions use the MAC array least.
    assert {n.op for n in reports[DEFAULT_TARGET].low_utilisation} <= {"AvgPool", "DepthwiseConv2D"}


def test_cpu_operators_carry_velas_reason(models, cache):
    report = estimate(models["float_io"], "ethos-u85-256", cache=cache)
    reasons = {op.type: op.reason for op in report.cpu_ops}
    assert set(reasons) == {"QUANTIZE", "DEQUANTIZE"}
    assert "unsupported DataType Float32" in reasons["QUANTIZE"]
    assert reasons["DEQUANTIZE"] == "Unsupported opType"
    assert report.low_utilisation, "the int8 layers inside still get advice"


def test_a_float_model_runs_on_the_cpu_each_operator_with_a_reason(models, cache):
    report = estimate(models["float"], cache=cache)
    assert report.npu_ops == 0 and report.low_utilisation == ()
    assert len(report.cpu_ops) == 12 and all(op.reason for op in report.cpu_ops), report.cpu_ops
    assert all("Float32" in op.reason for op in report.cpu_ops)
    # Vela refuses a float convolution's fused activation first, and says so.
    conv = next(op for op in report.cpu_ops if op.type == "CONV_2D")
    assert conv.reason.startswith("its RELU: ")


def test_the_advice_survives_json(models, cache):
    report = estimate(models["float_io"], cache=cache)
    assert VelaReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


# ----- targets described in TOML files --------------------------------------------------


@pytest.fixture
def target_files(monkeypatch):
    """A fresh memory of targets read from files, so that each test's names are its own."""
    import kws.vela.targets

    monkeypatch.setattr(kws.vela.targets, "_FROM_FILES", {})


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


U85_FLASH = """name = "u85-256-flash"
accelerator = "ethos-u85-256"
system_config = "Ethos_U85_SYS_Flash_High"
memory_mode = "Shared_Sram"
"""


def test_a_target_file_round_trips_to_an_estimate(models, cache, tmp_path, target_files):
    path = _write(tmp_path / "board.toml", U85_FLASH)
    target = load_target_file(path)
    assert target == VelaTarget("u85-256-flash", "ethos-u85-256", "Ethos_U85_SYS_Flash_High", "Shared_Sram")
    assert target.config is None
    assert parse_targets(f"{path},ethos-u55-256") == [target, TARGETS["ethos-u55-256"]]
    # Read once, the target is known by its name, as the pipeline passes it on.
    assert parse_targets("u85-256-flash") == [target]
    report = estimate(models["int8"], "u85-256-flash", cache=cache)
    assert (report.target, report.accelerator, report.system_config, report.memory_mode) == (
        "u85-256-flash", "ethos-u85-256", "Ethos_U85_SYS_Flash_High", "Shared_Sram")
    assert report.flash_bytes > 0 and report.dram_bytes == 0, "this system keeps the weights in flash"
    assert report.inference_us != estimate(models["int8"], "ethos-u85-256", cache=cache).inference_us


def test_a_target_file_without_a_name_is_named_after_the_file(tmp_path, target_files):
    path = _write(tmp_path / "my-npu.toml", U85_FLASH.replace('name = "u85-256-flash"\n', ""))
    assert load_target_file(path).name == "my-npu"


#: A target file's text (``{ini}``: a copy of the shipped vela.ini) and what its error says
#: (``{here}``: the file's folder).
BAD_TARGET_FILES = {
    "unknown-accelerator": (U85_FLASH.replace('"ethos-u85-256"', '"ethos-u99-256"'),
                            ["accelerator = 'ethos-u99-256' is not an accelerator Vela knows",
                             *(a.value for a in Accelerator)]),
    "missing-key": (U85_FLASH.replace('memory_mode = "Shared_Sram"\n', ""), ["missing key 'memory_mode'"]),
    "unknown-key": (U85_FLASH + 'macs = "256"\n', ["unknown key 'macs'"]),
    "not-a-string": (U85_FLASH.replace('"ethos-u85-256"', "256"), ["accelerator = 256: must be a non-empty string"]),
    "missing-vela-ini": (U85_FLASH + 'config = "nowhere/vela.ini"\n',
                         ["config = 'nowhere/vela.ini': no vela.ini at {here}/nowhere/vela.ini"]),
    "not-an-ini": (U85_FLASH + 'config = "board.toml"\n', ["config = 'board.toml': Vela reads only .ini files"]),
    "system-config": (U85_FLASH.replace("Ethos_U85_SYS_Flash_High", "Nope"),
                      ["system_config = 'Nope': Arm/vela.ini has no [System_Config.Nope]", "Ethos_U85_SYS_DRAM_Mid"]),
    "memory-mode-of-own-ini": (U85_FLASH.replace("Shared_Sram", "Nope") + 'config = "{ini}"\n',
                               ["memory_mode = 'Nope': {ini} has no [Memory_Mode.Nope]", "Shared_Sram"]),
    "built-in-name": (U85_FLASH.replace("u85-256-flash", "ethos-u85-256"),
                      ["name = 'ethos-u85-256' is a built-in target's"]),
    "not-toml": ("accelerator = ethos-u85-256\n", ["not a valid TOML file", "line 1"]),
}


@pytest.mark.parametrize(("text", "says"), BAD_TARGET_FILES.values(), ids=BAD_TARGET_FILES)
def test_a_bad_target_file_names_the_file_and_the_key(text, says, tmp_path, target_files):
    ini = tmp_path / "own.ini"
    ini.write_bytes(vela_config_path().read_bytes())
    path = _write(tmp_path / "board.toml", text.replace("{ini}", str(ini)))
    with pytest.raises(TargetFileError) as info:
        parse_targets(f"ethos-u55-256,{path}")
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    for words in says:
        assert words.format(here=tmp_path, ini=ini) in message, message
    assert "\n" not in message


def test_a_missing_target_file_is_named(tmp_path, target_files):
    with pytest.raises(TargetFileError, match=f"Vela target file {tmp_path / 'absent.toml'} does not exist"):
        parse_targets(str(tmp_path / "absent.toml"))


def test_two_files_cannot_give_one_name_to_two_targets(tmp_path, target_files):
    load_target_file(_write(tmp_path / "a.toml", U85_FLASH))
    other = _write(tmp_path / "b.toml", U85_FLASH.replace("Shared_Sram", "Sram_Only"))
    with pytest.raises(TargetFileError, match=f"{other}: name 'u85-256-flash' is already used by "):
        load_target_file(other)



def test_the_command_line_and_the_matrix_option_take_a_target_file(models, cache, tmp_path, monkeypatch,
                                                                   capsys, target_files):
    import argparse

    from kws.matrix.plugin import _targets

    monkeypatch.setenv("KWS_CACHE_DIR", str(cache.root))
    path = _write(tmp_path / "board.toml", U85_FLASH)
    assert _targets(f"ethos-u55-256,{path}") == ("ethos-u55-256", "u85-256-flash")
    assert main(["vela", str(models["int8"]), "--target", str(path), "--json"]) == 0
    assert [d["target"] for d in json.loads(capsys.readouterr().out)] == ["u85-256-flash"]
    bad = _write(tmp_path / "bad.toml", U85_FLASH.replace('"ethos-u85-256"', '"ethos-u99-256"'))
    with pytest.raises(argparse.ArgumentTypeError, match=f"{bad}: accelerator = 'ethos-u99-256'"):
        _targets(str(bad))
    with pytest.raises(SystemExit) as exit_info:
        main(["vela", str(models["int8"]), "--target", str(bad)])
    assert exit_info.value.code == 2
    assert f"kws vela: error: argument --target: {bad}: accelerator = 'ethos-u99-256'" in capsys.readouterr().err


def test_a_target_files_own_vela_ini_is_part_of_the_cache_key(models, tmp_path, target_files):
    cache = ArtifactCache(tmp_path / "cache")
    ini = tmp_path / "board.ini"
    shipped = vela_config_path().read_text()
    ini.write_text(shipped)
    target = load_target_file(_write(tmp_path / "board.toml", U85_FLASH + 'config = "board.ini"\n'))
    assert target.config == ini.resolve()
    plain = VelaTarget("u85-256-flash", "ethos-u85-256", "Ethos_U85_SYS_Flash_High", "Shared_Sram")
    first = estimate(models["int8"], target, cache=cache)
    # The shipped file's content: the same figures, under a key of its own.
    assert first.inference_us == estimate(models["int8"], plain, cache=cache).inference_us
    assert (cache.hits, cache.misses) == (0, 2)
    # The same system at half the clock: a new key, and Vela reads the edited file.
    section = shipped.index("[System_Config.Ethos_U85_SYS_Flash_High]")
    ini.write_text(shipped[:section] + shipped[section:].replace("core_clock=500e6", "core_clock=250e6", 1))
    slower = estimate(models["int8"], target, cache=cache)
    assert (cache.hits, cache.misses) == (0, 3)
    assert slower.inference_us == pytest.approx(slower.cycles_total / 250, rel=1e-3)
    assert slower.inference_us > first.inference_us
    assert estimate(models["int8"], target, cache=cache) == slower
    assert (cache.hits, cache.misses) == (1, 3)


def test_an_unreadable_own_vela_ini_is_a_vela_error(models, tmp_path, target_files):
    ini = _write(tmp_path / "board.ini", vela_config_path().read_text())
    target = load_target_file(_write(tmp_path / "board.toml", U85_FLASH + 'config = "board.ini"\n'))
    ini.unlink()
    with pytest.raises(VelaError, match=f"cannot read its vela.ini {ini}"):
        estimate(models["int8"], target, cache=ArtifactCache(tmp_path / "cache"))


# ----- the cache -------------------------------------------------------------------------


def _material(path: Path, target: VelaTarget) -> dict:
    import hashlib

    from kws.vela import REPORT_FORMAT, vela_version

    return {"tflite_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "target": target,
            "vela": vela_version(), "report_format": REPORT_FORMAT}


def test_a_cache_hit_does_not_run_vela(models, monkeypatch):
    cache = ArtifactCache()
    first = estimate(models["int8"], cache=cache)
    assert (cache.hits, cache.misses) == (0, 1)

    def no_vela(*args, **kwargs):
        raise AssertionError("Vela ran on a cache hit")

    with monkeypatch.context() as patch:
        patch.setattr("kws.vela.compiler._compile", no_vela)
        again = estimate(str(models["int8"]), DEFAULT_TARGET, cache=cache)
    assert again == first
    assert (cache.hits, cache.misses) == (1, 1)
    estimate(models["int8"], "ethos-u55-128", cache=cache)
    assert (cache.hits, cache.misses) == (1, 2)
    stored = {f for a in cache.entries() for f in a.manifest["files"]}
    assert {"summary.csv", "per-layer.csv", "report.json"} <= stored


# ----- errors ----------------------------------------------------------------------------


def test_a_text_file_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "notes.tflite"
    path.write_text("not a model at all\n")
    with pytest.raises(VelaError, match="not a TFLite model") as info:
        estimate(path)
    assert str(path) in str(info.value) and DEFAULT_TARGET in str(info.value)


def test_a_truncated_model_is_refused_naming_the_path(models, tmp_path):
    path = tmp_path / "cut.tflite"
    path.write_bytes(models["int8"].read_bytes()[:20_000])
    cache = ArtifactCache()
    with pytest.raises(VelaError, match="truncated or corrupt TFLite flatbuffer") as info:
        estimate(path, cache=cache)
    assert str(path) in str(info.value)
    assert cache.entries() == []


def test_a_missing_model_file_is_a_vela_error(tmp_path):
    with pytest.raises(VelaError, match="cannot read the model"):
        estimate(tmp_path / "absent.tflite")


def test_missing_vela_says_what_to_install(models, monkeypatch):
    monkeypatch.setitem(sys.modules, "ethosu.vela.vela", None)  # import now fails
    with pytest.raises(VelaError, match=r"install ethos-u-vela==5\.2\.0") as info:
        estimate(models["int8"], cache=ArtifactCache())
    assert str(models["int8"]) in str(info.value)


#: Targets Vela refuses, and the words of its refusal.
BROKEN_TARGETS = {
    "system-config": (VelaTarget("bogus", "ethos-u55-256", "No_Such_System", "Shared_Sram"),
                      "Section System_Config.No_Such_System not found"),
    "memory-mode": (VelaTarget("bogus", "ethos-u55-256", "Ethos_U55_High_End_Embedded", "Nope"),
                    "Section Memory_Mode.Nope not found"),
    "accelerator": (VelaTarget("bogus", "ethos-u99-1", "Ethos_U55_High_End_Embedded", "Shared_Sram"),
                    "invalid choice: 'ethos-u99-1'"),
}


@pytest.mark.parametrize(("target", "vela_says"), BROKEN_TARGETS.values(), ids=BROKEN_TARGETS)
def test_a_failing_vela_run_reports_velas_message(models, target, vela_says):
    cache = ArtifactCache()
    with pytest.raises(VelaError, match="Vela failed") as info:
        estimate(models["int8"], target, cache=cache)
    message = str(info.value)
    assert vela_says in message
    assert str(models["int8"]) in message and "target bogus" in message
    assert "Traceback" not in message and "\n" not in message
    assert cache.entries() == [], "a failed compile must not be cached"


# ----- the command line ------------------------------------------------------------------


def test_cli_prints_a_table_per_target(models, capsys):
    assert main(["vela", str(models["float_io"]), "--target", "ethos-u55-256,ethos-u55-128",
                 "--per-layer"]) == 0
    out = capsys.readouterr().out
    assert str(models["float_io"]) in out
    table = out.split("\n\n")[0]
    assert "ethos-u55-256" in table and "ethos-u55-128" in table
    assert "QUANTIZE DEQUANTIZE" in table
    assert "ds-cnn-s/pw_4_relu/Relu" in out and "Vela op" in out  # the per-layer tables
    assert "Network summary" not in out, "Vela's own output leaked"


def test_cli_json_lists_one_report_per_target(models, reports, cache, monkeypatch, capsys):
    monkeypatch.setenv("KWS_CACHE_DIR", str(cache.root))  # the module's compiles
    assert main(["vela", str(models["int8"]), "--target", "all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["target"] for d in data] == list(TARGETS)
    assert all(VelaReport.from_dict(d).all_on_npu for d in data)
    assert all(d["low_utilisation"] and d["traffic"] for d in data), "the advice and traffic are in the JSON"


def test_cli_advice_prints_the_lowest_utilisation_layers_and_the_cpu_reasons(models, cache, monkeypatch,
                                                                              capsys):
    monkeypatch.setenv("KWS_CACHE_DIR", str(cache.root))
    argv = ["vela", str(models["float_io"]), "--target", "ethos-u55-256,ethos-u85-256"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "peak SRAM B" in out and "SRAM traffic B" in out
    assert "--advice: Vela's reason" in out and "Unsupported opType" not in out
    assert main([*argv, "--advice"]) == 0
    out = capsys.readouterr().out
    utilisation = out.split("Lowest MAC utilisation")[1].split("On the CPU")[0]
    assert utilisation.count("ethos-u55-256") == utilisation.count("ethos-u85-256") == LOW_UTILISATION_LAYERS
    assert "DepthwiseConv2D" in utilisation
    assert "DEQUANTIZE StatefulPartitionedCall:0: Unsupported opType" in out
    assert "QUANTIZE tfl.quantize [ethos-u55-256]: Operation has tensor with unsupported DataType Float32" in out


def test_cli_answers_from_the_cache_without_tensorflow_or_scipy(models, tmp_path):
    """A repeated ``kws vela`` is a cache lookup: from the command to the stored report it
    must not pay for loading TensorFlow or scipy. The second run fails if it reaches Vela.
    (The other commands' registration is checked in test_package.py.)"""
    env = {**os.environ, "KWS_CACHE_DIR": str(tmp_path / "cache")}
    model = str(models["int8"])
    run = ("import argparse, json, sys; import kws.vela.compiler as c; from kws.cli import vela; "
           "c._compile = None if sys.argv[2] == 'cached' else c._compile; "
           "parser = argparse.ArgumentParser(); vela.register(parser.add_subparsers()); "
           "args = parser.parse_args(['vela', sys.argv[1]]); assert args.func(args) == 0; "
           "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
           "& {'tensorflow', 'tf_keras', 'scipy', 'ai_edge_litert'})))")
    for state in ("compile", "cached"):
        result = subprocess.run([sys.executable, "-c", run, model, state], env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []


def test_cli_bad_file_exits_2_with_the_message(tmp_path, capsys):
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"\x00" * 64)
    assert main(["vela", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"kws vela: error: {path}" in err and "not a TFLite model" in err
