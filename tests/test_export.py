"""TFLite conversion: the four kinds, their sizes, int8 fidelity, calibration data."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from kws.evaluate import TFLiteRunner
from kws.export import KINDS, representative_dataset, representative_samples, sizes, to_tflite
from kws.models import ModelConfig, build_model

N_CLASSES = 12


def separable_features(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MFCC-shaped features whose class is a fixed random pattern plus noise: a model
    learns them in a few epochs, so int8 agreement is measured on a real decision."""
    templates = np.random.default_rng(1234).standard_normal((N_CLASSES, 49, 10)) * 3
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(N_CLASSES), n_per_class)
    feats = templates[labels] + rng.standard_normal((len(labels), 49, 10))
    return feats.astype(np.float32), labels.astype(np.int32)


@pytest.fixture(scope="module")
def trained():
    """DS-CNN-S trained briefly on separable features, with its training features."""
    from kws.compat import keras, tf

    tf.keras.utils.set_random_seed(0)
    feats, labels = separable_features(40, seed=0)
    model = build_model(ModelConfig("ds-cnn-s"))
    for layer in model.layers:
        # The default momentum (0.99) leaves the moving statistics near their initial
        # values after a few dozen steps, so inference would not reflect the training.
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.8
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(feats[..., None], labels, epochs=4, batch_size=32, shuffle=True, verbose=0)
    return model, feats


@pytest.fixture(scope="module")
def exported(trained) -> dict[str, bytes]:
    model, feats = trained
    return {kind: to_tflite(model, kind, feats if kind == "int8" else None) for kind in KINDS}


def test_sizes_shrink_with_quantisation(exported):
    s = {kind: sizes(blob) for kind, blob in exported.items()}
    for measure in ("raw", "gzip"):
        assert s["int8"][measure] < s["float16"][measure] < s["float32"][measure], s
        assert s["dynamic"][measure] < s["float32"][measure], s
    # Weights dominate the file and take 4 bytes each in float32, 1 in int8.
    assert s["float32"]["raw"] > 1.8 * s["int8"]["raw"]


def test_sizes_reports_gzip_and_zlib_reproducibly(exported):
    blob = exported["float32"]
    first, second = sizes(blob), sizes(blob)
    assert first == second
    assert first["raw"] == len(blob)
    assert first["gzip"] == len(gzip.compress(blob, compresslevel=9, mtime=0))
    assert first["zlib"] < first["gzip"]  # same deflate stream, smaller header and trailer


def test_every_kind_is_a_loadable_tflite_model(exported):
    for kind, blob in exported.items():
        assert blob[4:8] == b"TFL3", kind
        interp = Interpreter(model_content=blob)
        interp.allocate_tensors()
        assert tuple(interp.get_output_details()[0]["shape"]) == (1, N_CLASSES), kind


def test_int8_model_has_int8_io_and_float_kinds_keep_float_io(exported):
    for kind, blob in exported.items():
        interp = Interpreter(model_content=blob)
        inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
        expected = np.int8 if kind == "int8" else np.float32
        assert inp["dtype"] == expected and out["dtype"] == expected, kind
        if kind == "int8":
            assert inp["quantization"][0] > 0 and out["quantization"][0] > 0


def test_int8_predictions_agree_with_the_float_model(trained, exported):
    model, _ = trained
    feats, labels = separable_features(10, seed=1)  # unseen draws of the same classes
    float_pred = model.predict(feats[..., None], verbose=0).argmax(axis=1)
    int8_pred = TFLiteRunner(exported["int8"]).predict(feats).argmax(axis=1)
    assert (float_pred == labels).mean() > 0.9, "the float model did not learn the classes"
    assert (int8_pred == float_pred).mean() >= 0.95


def test_float32_tflite_matches_keras_logits(trained, exported):
    model, _ = trained
    feats, _ = separable_features(2, seed=2)
    expected = model.predict(feats[..., None], verbose=0)
    got = TFLiteRunner(exported["float32"]).predict(feats)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3)


def test_representative_generator_is_fresh_per_conversion(trained, exported):
    model, feats = trained
    again = to_tflite(model, "int8", feats)
    assert again == exported["int8"]
    gen = representative_dataset(representative_samples(feats, model.input_shape, 5))
    assert len(list(gen())) == len(list(gen())) == 5


def test_representative_samples_are_spread_deterministic_and_capped():
    feats = np.arange(1000 * 490, dtype=np.float32).reshape(1000, 49, 10)
    picked = representative_samples(feats, (None, 49, 10, 1), max_samples=100)
    assert picked.shape == (100, 49, 10, 1)
    rows = picked[:, 0, 0, 0] / 490
    assert rows[0] == 0 and rows[-1] == 999  # both ends of a label-grouped array
    np.testing.assert_array_equal(picked, representative_samples(feats, (None, 49, 10, 1), 100))
    assert len(representative_samples(feats[:7], (None, 490))) == 7


def test_int8_without_representative_data_is_refused(trained):
    with pytest.raises(ValueError, match="representative"):
        to_tflite(trained[0], "int8")


def test_unknown_kind_lists_the_kinds(trained):
    with pytest.raises(ValueError, match="float32, dynamic, float16, int8"):
        to_tflite(trained[0], "int4")


def test_representative_of_the_wrong_shape_is_refused(trained):
    with pytest.raises(ValueError, match=r"representative rows have shape \(99, 40\)"):
        to_tflite(trained[0], "int8", np.zeros((4, 99, 40), np.float32))
    with pytest.raises(ValueError, match="non-empty"):
        to_tflite(trained[0], "int8", np.zeros((0, 49, 10), np.float32))
