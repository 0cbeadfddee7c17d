"""Evaluating TFLite and Keras KWS models: LiteRT runner, scoring, ``kws eval``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kws.cli import main
from kws.data import ARM_LABELS, KEYWORDS, MLPERF_LABELS, SpeechCommands
from kws.errors import KwsError
from kws.evaluate import EvalResult, TFLiteRunner, evaluate, evaluate_keras, score
from kws.export import to_tflite
from kws.features import extract
from kws.models import ModelConfig, build_model
from tests.helpers import make_archive, make_test_set, write_wav

FRONTEND = "mlperf-tiny"
EPOCHS = 15


# ----- fixtures: two small datasets and a model trained on them -------------------

#: Pitch of each word's clips. The helpers' clips do not depend on the word; re-voicing
#: them gives a task a small model learns, so that a wrong label order or input layout
#: shows as a collapse in accuracy.
WORD_F0 = {word: 120.0 + 40.0 * i for i, word in enumerate((*KEYWORDS, "bed", "cat"))}


def pitched(f0: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16_000) / 16_000
    f = f0 * rng.uniform(0.98, 1.02)
    x = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 6)) * np.hanning(len(t))
    x = x + 0.02 * rng.standard_normal(len(t))
    return np.round(x / np.abs(x).max() * rng.uniform(3000, 20000)).astype(np.int16)


def voice_words(root: Path) -> Path:
    """Rewrite every word clip under ``root`` (either layout) in its word's pitch."""
    for seed, path in enumerate(sorted(root.rglob("*.wav"))):
        folder = path.parent.name
        if folder == "_unknown_":
            word = path.name.split("_", 1)[0]
        elif folder.startswith("_"):  # silence and background noise stay noise
            continue
        else:
            word = folder
        write_wav(path, pitched(WORD_F0[word], seed))
    return root


@pytest.fixture(scope="module")
def archive_dir(tmp_path_factory) -> Path:
    return voice_words(make_archive(tmp_path_factory.mktemp("archive") / "speech"))


@pytest.fixture(scope="module")
def test_set_dir(tmp_path_factory) -> Path:
    return voice_words(make_test_set(tmp_path_factory.mktemp("testset") / "speech"))


def split_features(root: Path, split: str = "testing") -> tuple[np.ndarray, np.ndarray]:
    """Features of a split, computed here rather than through the feature cache (module
    fixtures run before each test gets its own empty cache)."""
    waves, labels = SpeechCommands(root).load(split)
    return extract(waves, FRONTEND), labels


@pytest.fixture(scope="module")
def eval_sets(archive_dir, test_set_dir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"archive": split_features(archive_dir), "test-set": split_features(test_set_dir)}


@pytest.fixture(scope="module")
def trained(archive_dir):
    """DS-CNN-S (ARM label order) trained briefly on the archive's training split."""
    from kws.compat import keras, tf

    feats, labels = split_features(archive_dir, "training")
    tf.keras.utils.set_random_seed(0)
    model = build_model(ModelConfig("ds-cnn-s"))
    for layer in model.layers:
        # The default momentum (0.99) leaves the moving statistics near their initial
        # values after a few dozen steps, so inference would not reflect the training.
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(feats[..., None], labels, epochs=EPOCHS, batch_size=16, verbose=0)
    return model, feats


@pytest.fixture(scope="module")
def arm_model(trained, tmp_path_factory) -> Path:
    model, feats = trained
    path = tmp_path_factory.mktemp("models") / "arm.tflite"
    path.write_bytes(to_tflite(model, "int8", feats))
    return path


@pytest.fixture(scope="module")
def mlperf_model(trained, tmp_path_factory) -> Path:
    """The same network with its output units reordered to MLPerf Tiny's label order, as a
    model trained with that order would be."""
    from kws.compat import keras

    model, feats = trained
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    dense = clone.get_layer("logits")
    kernel, bias = dense.get_weights()
    order = [ARM_LABELS.index(name) for name in MLPERF_LABELS]
    dense.set_weights([kernel[:, order], bias[order]])
    path = tmp_path_factory.mktemp("models") / "mlperf.tflite"
    path.write_bytes(to_tflite(clone, "int8", feats))
    return path


def tiny_model(input_shape: tuple, outputs: int = 12):
    """A small conv net on any input that holds 49x10 values (or any 2-D/3-D input)."""
    from kws.compat import keras

    layers = keras.layers
    inputs = keras.Input(shape=input_shape)
    x = inputs
    if len(input_shape) != 3:
        size = int(np.prod(input_shape))
        x = layers.Reshape((49, 10, 1) if size == 490 else (*input_shape, 1))(x)
    x = layers.Conv2D(8, (5, 3), strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(outputs)(x))


@pytest.fixture(scope="module")
def flat_model(eval_sets) -> dict:
    """A model whose input is the flat (1, 490) vector, as float32 and int8 TFLite."""
    model = tiny_model((490,))
    feats, _ = eval_sets["test-set"]
    return {"keras": model, "float32": to_tflite(model, "float32"),
            "int8": to_tflite(model, "int8", feats)}


@pytest.fixture(scope="module")
def wide_model() -> bytes:
    """A model for a 99x40 front-end, which 49x10 features cannot feed."""
    return to_tflite(tiny_model((99, 40)), "float32")


def write(path: Path, blob: bytes) -> Path:
    path.write_bytes(blob)
    return path


def run_eval(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def eval_json(capsys, model: Path, data: Path, *args: str) -> dict:
    rc, out, err = run_eval(capsys, "--model", model, "--data-dir", data, "--json", *args)
    assert rc == 0, err
    return json.loads(out)


def eval_error(capsys, *args: str) -> str:
    rc, out, err = run_eval(capsys, *args)
    assert rc == 2 and out == ""
    assert err.startswith("kws eval: error: ") and err.count("\n") == 1, err
    return err


def eval_usage_error(capsys, *args: str) -> str:
    """A bad option value: argparse stops before any work, naming the option."""
    with pytest.raises(SystemExit) as excinfo:
        main(["eval", *map(str, args)])
    out, err = capsys.readouterr()
    assert excinfo.value.code == 2 and out == "" and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("kws eval: error: argument "), err
    return last


# ----- scoring -----------------------------------------------------------------------


def test_score_counts_confusion_rows_true_columns_predicted():
    result = score(np.array([0, 1, 1, 2, 0]), np.array([0, 1, 2, 2, 2]), ("a", "b", "c"))
    assert result.confusion == [[1, 0, 0], [0, 1, 0], [1, 1, 1]]
    assert result.accuracy == pytest.approx(3 / 5) and result.n == 5
    assert result.per_label == {"a": 1.0, "b": 1.0, "c": pytest.approx(1 / 3)}


def test_label_without_clips_has_no_accuracy_and_serialises_as_null():
    result = score(np.array([0, 0]), np.array([0, 1]), ("a", "b", "c"))
    assert result.per_label["c"] is None
    assert json.loads(json.dumps(result.to_dict()))["per_label"] == {"a": 1.0, "b": 0.0, "c": None}


def test_evaluate_takes_the_argmax_of_any_predict_fn():
    feats = np.zeros((4, 49, 10), np.float32)
    scores = np.eye(3, dtype=np.float32)[[2, 0, 1, 1]]
    result = evaluate(lambda x: scores, feats, np.array([2, 0, 0, 1]), ("x", "y", "z"))
    assert isinstance(result, EvalResult)
    assert result.accuracy == 0.75 and result.to_dict()["labels"] == ["x", "y", "z"]


def test_evaluate_refuses_scores_of_the_wrong_width():
    with pytest.raises(KwsError, match=r"scores of shape \(2, 10\), expected \(2, 12\)"):
        evaluate(lambda x: np.zeros((2, 10)), np.zeros((2, 49, 10)), np.array([0, 1]), ARM_LABELS)
    with pytest.raises(ValueError, match="features has 3 rows but labels has 2"):
        evaluate(lambda x: x, np.zeros((3, 49, 10)), np.array([0, 1]), ARM_LABELS)


def test_keras_and_int8_tflite_evaluations_agree(trained, arm_model, eval_sets):
    model, _ = trained
    feats, labels = eval_sets["test-set"]
    keras_result = evaluate_keras(model, feats, labels, ARM_LABELS)
    lite_result = evaluate(TFLiteRunner(arm_model).predict, feats, labels, ARM_LABELS)
    assert keras_result.n == lite_result.n == len(labels)
    assert abs(keras_result.accuracy - lite_result.accuracy) <= 2 / len(labels)


# ----- the LiteRT runner -------------------------------------------------------------


@pytest.mark.parametrize("input_shape", [(490,), (49, 10), (49, 10, 1)])
def test_runner_feeds_every_input_layout(input_shape, flat_model):
    model = flat_model["keras"] if input_shape == (490,) else tiny_model(input_shape)
    feats = np.random.default_rng(0).standard_normal((20, 49, 10)).astype(np.float32)
    blob = flat_model["float32"] if input_shape == (490,) else to_tflite(model, "float32")
    runner = TFLiteRunner(blob)
    assert runner.input_shape == (1, *input_shape)
    expected = model.predict(feats.reshape(20, *input_shape), verbose=0)
    np.testing.assert_allclose(runner.predict(feats), expected, rtol=1e-4, atol=1e-4)


def test_runner_quantises_int8_input_and_dequantises_output(flat_model, eval_sets):
    runner = TFLiteRunner(flat_model["int8"])
    assert runner.input_shape == (1, 490)
    assert runner.input_quant.dtype == np.int8 and runner.output_quant.dtype == np.int8
    feats, _ = eval_sets["test-set"]
    got = runner.predict(feats)
    expected = flat_model["keras"].predict(feats.reshape(len(feats), 490), verbose=0)
    assert got.dtype == np.float32
    # int8 error is a few quantisation steps of the output, not a scrambled input.
    assert np.abs(got - expected).max() < 8 * runner.output_quant.scale
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.99


def test_runner_batches_and_falls_back_to_single_clips(arm_model, eval_sets, monkeypatch):
    feats, _ = eval_sets["test-set"]
    batched = TFLiteRunner(arm_model, batch_size=16)
    assert batched.batch_size == 16
    expected = batched.predict(feats)  # 36 clips: two full batches and a padded one

    from ai_edge_litert.interpreter import Interpreter

    def refuse(self, *args, **kwargs):
        raise ValueError("cannot resize")

    monkeypatch.setattr(Interpreter, "resize_tensor_input", refuse)
    single = TFLiteRunner(arm_model, batch_size=16)
    assert single.batch_size == 1
    np.testing.assert_array_equal(single.predict(feats), expected)


def test_runner_names_both_shapes_when_features_do_not_fit(wide_model):
    runner = TFLiteRunner(wide_model)
    with pytest.raises(KwsError, match=r"model input \(1, 99, 40\) holds 3960 values but "
                                       r"features gives 49x10 = 490"):
        runner.predict(np.zeros((2, 49, 10), np.float32))


# ----- kws eval ------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["archive", "test-set"])
def test_eval_json_on_both_layouts(capsys, layout, arm_model, archive_dir, test_set_dir, eval_sets):
    data = archive_dir if layout == "archive" else test_set_dir
    report = eval_json(capsys, arm_model, data)
    feats, labels = eval_sets[layout]
    expected = evaluate(TFLiteRunner(arm_model).predict, feats, labels, ARM_LABELS)
    assert report["n"] == len(SpeechCommands(data).clips("testing")) == len(labels)
    assert report["accuracy"] == pytest.approx(expected.accuracy)
    assert report["accuracy"] >= 0.8
    assert report["labels"] == list(ARM_LABELS)
    assert report["model"] == str(arm_model) and report["frontend"] == FRONTEND
    assert report["confusion"] == expected.confusion


def test_eval_per_label_numbers_follow_from_the_confusion_matrix(capsys, arm_model, test_set_dir):
    report = eval_json(capsys, arm_model, test_set_dir)
    confusion = np.array(report["confusion"])
    assert confusion.shape == (12, 12) and confusion.sum() == report["n"] == 36
    assert list(report["per_label"]) == report["labels"]
    for i, label in enumerate(report["labels"]):
        assert report["per_label"][label] == pytest.approx(confusion[i, i] / confusion[i].sum())
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())


def test_eval_text_report(capsys, arm_model, test_set_dir):
    rc, out, err = run_eval(capsys, "--model", arm_model, "--data-dir", test_set_dir)
    assert rc == 0, err
    report = eval_json(capsys, arm_model, test_set_dir)
    assert f"top-1 accuracy {report['accuracy']:.2%} over 36 clips" in out
    assert "confusion matrix" in out
    for label in ARM_LABELS:
        assert label in out


def test_eval_mlperf_label_order(capsys, arm_model, mlperf_model, test_set_dir):
    arm = eval_json(capsys, arm_model, test_set_dir)
    mlperf = eval_json(capsys, mlperf_model, test_set_dir, "--labels", ",".join(MLPERF_LABELS))
    assert mlperf["labels"] == list(MLPERF_LABELS)
    assert mlperf["accuracy"] == pytest.approx(arm["accuracy"])
    assert mlperf["per_label"] == pytest.approx(arm["per_label"])
    # Read with the wrong order, the same model scores far lower.
    wrong = eval_json(capsys, mlperf_model, test_set_dir)
    assert wrong["accuracy"] < arm["accuracy"] - 0.3


def test_eval_split_option_on_the_archive(capsys, arm_model, archive_dir):
    report = eval_json(capsys, arm_model, archive_dir, "--split", "training")
    assert report["split"] == "training"
    assert report["n"] == len(SpeechCommands(archive_dir).clips("training"))
    assert report["n"] > 12


def test_eval_reshaping_and_float_io_models(capsys, tmp_path, test_set_dir, eval_sets, flat_model):
    feats, labels = eval_sets["test-set"]
    for kind in ("float32", "int8"):
        path = write(tmp_path / f"{kind}.tflite", flat_model[kind])
        report = eval_json(capsys, path, test_set_dir)
        expected = evaluate(TFLiteRunner(path).predict, feats, labels, ARM_LABELS)
        assert report["n"] == 36 and report["accuracy"] == pytest.approx(expected.accuracy)


# ----- kws eval: bad input -------------------------------------------------------------


def test_eval_missing_model_file(capsys, tmp_path, test_set_dir):
    err = eval_usage_error(capsys, "--model", tmp_path / "nope.tflite", "--data-dir", test_set_dir)
    assert f"argument --model: {tmp_path / 'nope.tflite'} does not exist" in err
    err = eval_usage_error(capsys, "--model", tmp_path, "--data-dir", test_set_dir)
    assert f"argument --model: {tmp_path} is a folder, not a file" in err


def test_eval_file_that_is_not_a_tflite_model(capsys, tmp_path, test_set_dir):
    bogus = write(tmp_path / "m.tflite", b"this is a text file, not a flatbuffer")
    err = eval_error(capsys, "--model", bogus, "--data-dir", test_set_dir)
    assert f"{bogus} is not a TFLite model" in err
    broken = write(tmp_path / "b.tflite", b"\x00" * 4 + b"TFL3" + b"\x00" * 8)
    err = eval_error(capsys, "--model", broken, "--data-dir", test_set_dir)
    assert f"{broken}: LiteRT cannot load the model" in err


def test_eval_label_count_differs_from_the_model_outputs(capsys, tmp_path, test_set_dir):
    ten = write(tmp_path / "ten.tflite", to_tflite(tiny_model((49, 10, 1), outputs=10), "float32"))
    err = eval_error(capsys, "--model", ten, "--data-dir", test_set_dir)
    assert f"--labels lists 12 labels but {ten} outputs 10 classes" in err


def test_eval_unknown_or_incomplete_labels(capsys, arm_model, test_set_dir):
    labels = ",".join(["_silence_", "_unknown_", "yes", "no", "up", "down", "left", "right",
                       "on", "off", "stop", "goo"])
    err = eval_usage_error(capsys, "--model", arm_model, "--data-dir", test_set_dir, "--labels", labels)
    assert "argument --labels: unknown label(s) goo; valid labels are _silence_, _unknown_, yes" in err
    err = eval_usage_error(capsys, "--model", arm_model, "--data-dir", test_set_dir,
                           "--labels", ",".join(ARM_LABELS[:11]))
    assert "argument --labels:" in err and "exactly once" in err


def test_eval_missing_data_folder(capsys, arm_model, tmp_path):
    err = eval_usage_error(capsys, "--model", arm_model, "--data-dir", tmp_path / "absent")
    assert f"argument --data-dir: {tmp_path / 'absent'} does not exist" in err
    err = eval_usage_error(capsys, "--model", arm_model, "--data-dir", arm_model)
    assert f"argument --data-dir: {arm_model} is a file, not a folder" in err


def test_eval_missing_label_folder(capsys, arm_model, test_set_dir, tmp_path):
    data = shutil.copytree(test_set_dir, tmp_path / "speech")
    shutil.rmtree(data / "stop")
    err = eval_error(capsys, "--model", arm_model, "--data-dir", data)
    assert "has no folder for label(s) stop" in err


def test_eval_empty_split(capsys, arm_model, test_set_dir):
    err = eval_error(capsys, "--model", arm_model, "--data-dir", test_set_dir, "--split", "training")
    assert f"the training split of {test_set_dir} has no clips" in err


def test_eval_model_input_does_not_fit_the_frontend(capsys, tmp_path, test_set_dir, wide_model):
    big = write(tmp_path / "big.tflite", wide_model)
    err = eval_error(capsys, "--model", big, "--data-dir", test_set_dir)
    assert ("model input (1, 99, 40) holds 3960 values but front-end mlperf-tiny "
            "gives 49x10 = 490") in err
    err = eval_error(capsys, "--model", big, "--data-dir", test_set_dir,
                     "--frontend", "mlperf-tiny,sample_rate=8000")
    assert "front-end mlperf-tiny,sample_rate=8000 gives 24x10 = 240" in err


def test_eval_bad_frontend_spec(capsys, arm_model, test_set_dir):
    err = eval_usage_error(capsys, "--model", arm_model, "--data-dir", test_set_dir,
                           "--frontend", "mlperf-tiny,frames=3")
    assert "argument --frontend:" in err and "unknown key 'frames'" in err


# ----- real data -------------------------------------------------------------------------


@pytest.mark.realdata
def test_eval_on_the_real_test_set(capsys, real_data_dir, arm_model):
    data = real_data_dir / "speech_commands_test_v0.02_subset"
    report = eval_json(capsys, arm_model, data)
    clips = [p for label in ARM_LABELS for p in (data / label).iterdir() if p.name.endswith(".wav")]
    assert report["n"] == len(clips) > 0
    assert 0 <= report["accuracy"] <= 1
    assert set(report["per_label"]) == set(ARM_LABELS)
    assert sum(map(sum, report["confusion"])) == report["n"]


def test_end_to_end_latency_times_the_front_end_and_front_end_plus_inference(flat_model, wide_model, tmp_path):
    """The total latency: the front-end on one clip, then that plus one inference
    on the features it produced (int8 input quantised on the way)."""
    from kws.features import get_frontend
    from kws.pipeline.measure import end_to_end_us

    model = write(tmp_path / "int8.tflite", flat_model["int8"])
    frontend_us, total_us = end_to_end_us(model, get_frontend("mlperf-tiny"), runs=5)
    assert frontend_us > 0 and total_us > 0
    with pytest.raises(ValueError, match=r"model input \(1, 99, 40\) does not take front-end mlperf-tiny's "
                                         r"features \(49, 10\)"):
        end_to_end_us(write(tmp_path / "wide.tflite", wide_model), get_frontend("mlperf-tiny"), runs=1)
