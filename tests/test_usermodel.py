"""A user's own model through the tree: factories and model files that are not DS-CNN,
which pathways apply to each and why, a trained file used as the baseline without
retraining, and the errors a mismatched model gets. Every stage runs for real."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from kws.cache import ArtifactCache
from kws.data import DataConfig
from kws.errors import KwsError
from kws.matrix.checks import CHECKS
from kws.matrix.grid import Case
from kws.matrix.history import read_history
from kws.matrix.thresholds import load_thresholds
from kws.models import load_model as load_keras
from kws.models import parse_model_spec, save_model
from kws.pathways import PATHWAYS, get_pathway, make_point
from kws.pathways.base import FineTune
from kws.pathways.registry import NotApplicable
from kws.pipeline import CasePipeline, RunSpec, Settings
from kws.train import TrainConfig
from kws.usermodel import KerasModel, probe
from tests.helpers import make_archive

BASE = TrainConfig(epochs=1, batch_size=32, augmentation_versions=1)
ROOT = Path(__file__).resolve().parents[1]
#: A front-end with other features than the default's 49 x 10: 25 frames of 13 coefficients.
OTHER_FRONTEND = "mlperf-tiny,frame_step=640,num_coefficients=13"

PTQ = {"ptq_dynamic", "ptq_fp16", "ptq_int8"}
#: Which pathways apply to each test model, and why the others do not.
APPLIES = {
    # Conv2D -> BN -> ReLU twice and a dense head: every technique; no width multiplier.
    "tests.zoo:plain_cnn": set(PATHWAYS) - {"alpha"},
    # Conv1D over time: TFMOT's default 8-bit QAT registry has no Conv1D and filter
    # pruning rewrites Conv2D chains only; pruning and clustering wrap it.
    "tests.zoo:temporal_cnn": PTQ | {"p", "p_dynamic", "p_fp16", "c", "pc", "p24", "cpc"},
    # A raw TensorFlow op (TFOpLambda): pruning and QAT refuse it, and the model TFMOT's
    # clustering clones around it no longer computes (its shapes break): PTQ only.
    "tests.zoo:relu6_cnn": PTQ,
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A small dataset, one artifact cache and one pipeline for the module."""
    data = make_archive(tmp_path_factory.mktemp("data") / "a", speakers=16)
    cache = ArtifactCache(tmp_path_factory.mktemp("artifacts"))
    pipeline = CasePipeline(cache, Settings(latency=False, vela_targets=()))

    def run(model, name: str, frontend: str = "mlperf-tiny", **given):
        pathway = get_pathway(name)
        spec = RunSpec(model=model, frontend=frontend, data_dir=data, baseline=BASE, finetune=FineTune(epochs=1))
        return pipeline.run(pathway, make_point(pathway, spec.model, **given), spec), spec

    run.data, run.cache, run.pipeline = data, cache, pipeline
    return run


def _fitted(source: str, shape=(49, 10, 1)):
    return parse_model_spec(source).with_input_shape(shape).with_labels(12)


# ----- which pathways apply, and why ---------------------------------------------------------


@pytest.mark.parametrize("source", sorted(APPLIES))
def test_each_model_is_told_which_pathways_apply(source):
    model = _fitted(source)
    assert {p.name for p in PATHWAYS.values() if p.not_applicable(model) is None} == APPLIES[source]
    assert "no width multiplier" in PATHWAYS["alpha"].not_applicable(model)


def test_the_reason_names_the_layers_a_technique_cannot_wrap():
    relu6, temporal = _fitted("tests.zoo:relu6_cnn"), _fitted("tests.zoo:temporal_cnn")
    assert "TFMOT pruning cannot wrap layer(s) tf.nn.relu6" in PATHWAYS["p"].not_applicable(relu6)
    assert "(TFOpLambda)" in PATHWAYS["qat"].not_applicable(relu6)
    assert "TFMOT clustering fails on it" in PATHWAYS["c"].not_applicable(relu6)
    assert "tconv_a (Conv1D)" in PATHWAYS["pqat"].not_applicable(temporal)
    assert "no Conv2D layer whose filters could be removed" in PATHWAYS["lfilter"].not_applicable(temporal)


@pytest.mark.parametrize("name", ["ds-cnn-s", "ds-cnn-l", "ds-cnn-s-mlperf"])
def test_a_ds_cnn_is_a_spec_like_any_other_and_tfmot_agrees_with_it(name):
    """What the DS-CNN spec declares (everything applies, its filter groups, its
    clustering limit) is what probing the built model finds."""
    model = parse_model_spec(name, alpha=0.25)
    facts = probe(model.build, scalable=model.scalable)
    assert facts.unsupported == {}
    assert facts.filter_groups == model.filter_groups()
    assert facts.min_weights == model.min_weights_per_channel()
    assert all(p.not_applicable(model) is None for p in PATHWAYS.values())


def test_the_axes_follow_the_model_it_is_built_from():
    plain = _fitted("tests.zoo:plain_cnn")
    assert plain.filter_groups() == ("conv_a", "conv_b")
    assert make_point(PATHWAYS["lfilter"], plain, filter_ratios="0.25,0.5").filter_ratios == (0.25, 0.5)
    with pytest.raises(ValueError, match=r"needs 2 ratios for plain-cnn, one per layer group \(conv_a, conv_b\)"):
        make_point(PATHWAYS["lfilter"], plain, filter_ratios="0.2,0.3,0.4,0.5,0.6")
    with pytest.raises(ValueError, match=r"clusters must be in \[2, 9\] for plain-cnn \(conv_a has 9 weights"):
        make_point(PATHWAYS["c"], plain, clusters=16)


# ----- through the tree ------------------------------------------------------------------------


def _check(name, case_model, pathway, point, record):
    case = Case(pathway, point, "smoke", RunSpec(model=case_model))
    limits = load_thresholds(ROOT / "bench" / "thresholds.toml").limits("smoke", pathway)
    CHECKS[name].run(case, record, limits, reference=None, targets=())


def test_a_plain_cnn_goes_through_the_tree_and_keeps_its_promises(env):
    model = parse_model_spec("tests.zoo:plain_cnn")
    record, spec = env(model, "pcqat", sparsity=0.5, clusters=4)
    assert record.model == "plain-cnn" and record.trained_now == ("prune", "cluster", "qat")
    assert record.metrics["sparsity"] == pytest.approx(0.5, abs=0.01)
    assert record.metrics["max_unique_per_channel"] <= 4
    point = make_point(PATHWAYS["pcqat"], spec.model, sparsity=0.5, clusters=4)
    for check in ("sparsity", "clusters"):
        _check(check, spec.model, "pcqat", point, record)
    smaller, _ = env(model, "lfilterqat", filter_ratios="0.5,0.25")
    assert smaller.metrics["gzip_bytes"] < record.metrics["baseline_int8_gzip_bytes"]
    assert smaller.stages[0].family == "filter"


def test_a_model_with_another_input_shape_follows_its_front_end(env, tmp_path):
    model = parse_model_spec("tests.zoo:temporal_cnn")
    record, spec = env(model, "p", frontend=OTHER_FRONTEND, sparsity=0.5)
    assert spec.model.input_shape == (25, 13, 1)
    assert record.spec["frontend"] == OTHER_FRONTEND
    assert record.metrics["sparsity"] == pytest.approx(0.5, abs=0.01)
    tflite = env.cache.path_for("tflite", record.keys["deployed"]) / "model.tflite"
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tflite))
    assert tuple(interpreter.get_input_details()[0]["shape"][1:]) == (25, 13, 1)
    assert interpreter.get_output_details()[0]["shape"][-1] == 12
    point = make_point(PATHWAYS["p"], spec.model, sparsity=0.5)
    _check("sparsity", spec.model, "p", point, record)

    # The same architecture loaded from a file (its trained baseline), pruned again and
    # deployed with dynamic-range weights: only the pruning stage trains.
    file = tmp_path / "temporal.h5"
    shutil.copyfile(env.cache.path_for("baseline", record.keys["baseline"]) / "model.h5", file)
    from_file, _ = env(KerasModel(str(file)), "p_dynamic", frontend=OTHER_FRONTEND, sparsity=0.5)
    assert from_file.trained_now == ("prune",) and from_file.export == "dynamic"
    assert from_file.metrics["baseline_float_accuracy"] == record.metrics["baseline_float_accuracy"]
    assert from_file.metrics["sparsity"] == pytest.approx(0.5, abs=0.01)


def test_an_unwrappable_model_is_refused_by_name_and_its_ptq_cases_still_run(env):
    model = parse_model_spec("tests.zoo:relu6_cnn")
    with pytest.raises(NotApplicable, match=r"pathway qat does not apply to model relu6-cnn: qat needs qat: TFMOT "
                                            r"quantisation-aware training cannot wrap layer\(s\) tf\.nn\.relu6.*"
                                            r"Pathways that apply to it: ptq_dynamic, ptq_fp16, ptq_int8$"):
        env(model, "qat")
    for name in sorted(PTQ):
        record, _ = env(model, name)
        assert 0 <= record.metrics["deployed_accuracy"] <= 1 and record.metrics["gzip_bytes"] > 0


# ----- a trained model file is the baseline ----------------------------------------------------


def test_a_trained_model_file_is_the_baseline_and_nothing_retrains_it(env, tmp_path, caplog):
    trained, _ = env(parse_model_spec("tests.zoo:plain_cnn"), "ptq_int8")
    folder = env.cache.path_for("baseline", trained.keys["baseline"])
    file = tmp_path / "my_kws.h5"
    shutil.copyfile(folder / "model.h5", file)

    caplog.set_level(logging.INFO, logger="kws.store.store")
    record, spec = env(KerasModel(str(file)), "pqat", sparsity=0.5)
    built = [m for m in caplog.messages if m.startswith("built ")]
    baseline = env.cache.path_for("baseline", record.keys["baseline"])
    assert [m.split()[1] for m in built if m.split()[1] in ("baseline", "prune", "qat")] == ["baseline", "prune", "qat"]
    manifest = json.loads((baseline / "manifest.json").read_text())
    assert "train" not in manifest["material"] and manifest["material"]["model"]["kind"] == "file"
    assert manifest["metadata"]["trained"] is False and manifest["metadata"]["train_seconds"] == 0.0
    assert record.trained_now == ("prune", "qat") and record.model == "my-kws"
    # The adopted baseline is the file's model, weight for weight, scored on the same clips.
    original, adopted = load_keras(folder / "model.h5"), load_keras(baseline / "model.h5")
    for a, b in zip(original.get_weights(), adopted.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert record.metrics["baseline_float_accuracy"] == trained.metrics["baseline_float_accuracy"]
    assert record.metrics["baseline_int8_accuracy"] == trained.metrics["baseline_int8_accuracy"]


def test_keras_and_savedmodel_files_load_as_the_same_model(env, tmp_path):
    model = _fitted("tests.zoo:plain_cnn").build()
    model.save(tmp_path / "net.keras")
    model.save(tmp_path / "net_savedmodel")
    expected = model.get_weights()
    for source in (tmp_path / "net.keras", tmp_path / "net_savedmodel"):
        spec = KerasModel(str(source))
        assert spec.trained and spec.with_input_shape((49, 10, 1)).with_labels(12).input_shape == (49, 10, 1)
        for a, b in zip(expected, spec.build().get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    assert KerasModel(str(tmp_path / "net_savedmodel")).slug == "net-savedmodel"


# ----- errors ------------------------------------------------------------------------------------


def test_a_file_fitted_to_another_front_end_names_both_shapes(tmp_path):
    file = tmp_path / "m.h5"
    save_model(_fitted("tests.zoo:plain_cnn").build(), file)
    with pytest.raises(ValueError, match=r"m\.h5 takes input \(49, 10, 1\), but the front-end's features are "
                                         r"\(25, 13, 1\)"):
        RunSpec(model=KerasModel(str(file)), frontend=OTHER_FRONTEND)


def test_a_file_with_other_outputs_than_the_data_has_labels_names_both(env, tmp_path):
    file = tmp_path / "ten.h5"
    save_model(_fitted("tests.zoo:plain_cnn").with_labels(10).build(), file)
    pipeline = CasePipeline(env.cache, Settings(latency=False, vela_targets=()))
    spec = RunSpec(model=KerasModel(str(file)), data_dir=env.data, baseline=BASE)
    with pytest.raises(KwsError, match=r"ten\.h5 has 10 outputs, but the data has 12 labels.*--labels.*"
                                       r"\(the data's labels: _silence_, _unknown_, yes"):
        pipeline.run("ptq_int8", spec=spec)


@pytest.mark.parametrize("source, message", [
    ("tests.zoo:not_a_model", r"factory tests.zoo:not_a_model gave a builtins.dict, not a tf_keras Model"),
    ("tests.zoo:absent", r"tests.zoo has no function absent"),
])
def test_a_factory_that_gives_no_model_is_named(source, message):
    with pytest.raises(ValueError, match=message):
        _fitted(source).build()


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "absent.h5", r"model file .*absent\.h5 does not exist"),
    (lambda p: p / "weights.npz", r"is not a DS-CNN name .* a model file \(\.keras, \.h5, \.hdf5\)"),
    (lambda p: p, r"a folder given as a model must be a SavedModel"),
    (lambda p: "no_such_module_here:build", r"cannot import no_such_module_here"),
])
def test_a_bad_model_source_is_named(tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        KerasModel(str(make(tmp_path)))


def test_a_trained_model_in_another_label_order_is_refused_with_its_order():
    from kws.baseline import check_label_order

    names = DataConfig().labels
    right = np.eye(12, dtype=int) * 5  # 5 clips of each label, each predicted as itself
    shifted = np.roll(right, -1, axis=1)  # output i means label i + 1
    with pytest.raises(KwsError, match=r"look ordered differently .* \(0\.0% accuracy .* 100\.0% in the order "
                                       r"_unknown_,yes,no,.*,go,_silence_\); give --labels"):
        check_label_order(shifted, names, "m.h5")
    check_label_order(right, names, "m.h5")  # the right order passes
    check_label_order(np.full((12, 12), 1), names, "m.h5")  # and so does a model that knows nothing


# ----- the matrix on a user's model --------------------------------------------------------------

USER_GRID = """
[tiers.smoke]
seeds = [0]
baseline_epochs = 1
finetune_epochs = 1
pathways = ["ptq_int8", "qat", "c"]
[tiers.smoke.axes]
clusters = [16]
"""


@pytest.mark.slow
def test_the_matrix_runs_a_users_model_and_reports_what_does_not_apply(pytester, tmp_path, monkeypatch):
    """``--kws-model``: the PTQ case of a model TFMOT cannot wrap runs and is recorded;
    its QAT and clustering cases are skipped with the layers named, and the end of the
    run lists them. A grid value the model cannot take (16 clusters of 9-weight channels)
    is not applicable either, with the limit named."""
    from tests.test_matrix import MATRIX_TESTS, THRESHOLDS, _options

    data = make_archive(tmp_path / "data", speakers=16)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the factories' package, for the session's process
    pytester.makepyfile(test_matrix=MATRIX_TESTS.read_text())
    grid = pytester.makefile(".toml", grid=USER_GRID)
    results = tmp_path / "results"
    common = ("--kws-grid", str(grid), "--kws-thresholds", str(THRESHOLDS), "--kws-results", str(results),
              "--kws-data-dir", str(data), "--kws-vela-targets", "ethos-u55-256", "--benchmark-disable", "-rs")

    relu6 = pytester.runpytest_subprocess(*_options(*common, "--kws-model", "tests.zoo:relu6_cnn"))
    outcomes = relu6.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes["skipped"] > 0 and outcomes["passed"] > 0, outcomes
    out = relu6.stdout.str()
    assert "not applicable to relu6-cnn: qat needs qat: TFMOT quantisation-aware training cannot wrap layer(s) " \
           "tf.nn.relu6 (TFOpLambda)" in out
    assert "kws: 2 case(s) not applicable to their model" in out
    rows = read_history(results / "history.jsonl")
    assert [(r["case"], r["model"]) for r in rows] == [("ptq_int8-seed0", "relu6-cnn")]

    plain = pytester.runpytest_subprocess(*_options(*common, "--kws-model", "tests.zoo:plain_cnn",
                                                    "--collect-only", "-q"))
    assert plain.ret == 0 and "c-c16-seed0" in plain.stdout.str()
    run = pytester.runpytest_subprocess(*_options(*common, "--kws-model", "tests.zoo:plain_cnn", "-k", "c-c16"))
    assert "not applicable to plain-cnn: clusters must be in [2, 9] for plain-cnn (conv_a has 9 weights per " \
           "output channel); got 16" in run.stdout.str()


def test_model_info_and_pathways_say_what_a_users_model_allows(capsys):
    from kws.cli import main

    assert main(["model", "info", "tests.zoo:relu6_cnn", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == "relu6-cnn" and info["input_shape"] == [49, 10, 1] and info["outputs"] == 12
    assert info["trained"] is False and info["macs"] > 0
    # A factory's raw op is named when it is built: tf.nn.relu6, or tf.nn.relu6_2 after two others.
    assert re.search(r"cannot wrap layer\(s\) tf\.nn\.relu6(_\d+)? \(TFOpLambda\)", info["no prune"])
    assert re.search(r"cannot wrap layer\(s\) tf\.nn\.relu6(_\d+)? \(TFOpLambda\)", info["no qat"])
    assert set(k for k in info if k.startswith("no ")) == {"no prune", "no cluster", "no qat", "no filter", "no width"}
    assert main(["pathways", "--model", "tests.zoo:temporal_cnn", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert {name for name, p in listed.items() if p["applies"]} == APPLIES["tests.zoo:temporal_cnn"]
    assert "tconv_a (Conv1D)" in listed["qat"]["why_not"]


def test_a_models_content_and_label_order_are_part_of_its_cases_history_key(tmp_path):
    from kws.data.config import MLPERF_LABELS

    file = tmp_path / "net.h5"

    def key(**data):
        spec = RunSpec(model=KerasModel(str(file)), **data)
        return Case("ptq_int8", make_point(PATHWAYS["ptq_int8"]), "smoke", spec).config_key("data")

    save_model(_fitted("tests.zoo:plain_cnn").build(), file)
    first = key()
    assert key() == first  # the same file
    assert key(data_config=DataConfig(labels=MLPERF_LABELS)) != first  # read in another label order
    save_model(_fitted("tests.zoo:plain_cnn").build(), file)  # other weights under the same name
    assert key() != first
