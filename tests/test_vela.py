"""Vela estimates on real Vela output: targets, parsing, caching, CPU fallback, errors, CLI."""

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
    PER_LAYER_FILE,
    STAGE,
    TARGETS,
    Accelerator,
    MemoryMode,
    SystemConfig,
    VelaError,
    VelaReport,
    VelaTarget,
    estimate,
    estimate_all,
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
    and as int8 with float input and output."""
    from kws.compat import tf

    tf.keras.utils.set_random_seed(0)
    folder = tmp_path_factory.mktemp("vela-models")
    model = build_model(ModelConfig())
    calibration = np.random.default_rng(0).standard_normal((CALIBRATION_ROWS, 49, 10))
    paths = {"int8": folder / "dscnn_s_int8.tflite",
             "sparse": folder / "dscnn_s_sparse_int8.tflite",
             "float_io": folder / "dscnn_s_float_io.tflite"}
    paths["int8"].write_bytes(to_tflite(model, "int8", calibration))

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
    assert all(r.inference_us > 0 and r.npu_ops == 11 for r in reports.values())
    assert reports["ethos-u55-128"].inference_us >= reports["ethos-u55-256"].inference_us
    assert reports["ethos-u55-128"].cycles_npu >= reports["ethos-u55-256"].cycles_npu
    # Same NPU, slow flash: weight traffic costs time.
    assert reports["ethos-u55-256-deep"].inference_us > reports["ethos-u55-256"].inference_us
    # The U65 system keeps the weights in DRAM, not flash.
    assert reports["ethos-u65-256"].dram_bytes > 0 and reports["ethos-u65-256"].flash_bytes == 0


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


def test_cli_json_lists_one_report_per_target(models, capsys):
    assert main(["vela", str(models["int8"]), "--target", "all", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["target"] for d in data] == list(TARGETS)
    assert all(VelaReport.from_dict(d).all_on_npu for d in data)


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
