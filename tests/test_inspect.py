"""Per-layer weight statistics: known patterns set by hand, the same patterns after TFLite
conversion, and what TFMOT's pruning and clustering really leave behind."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kws.export import to_tflite
from kws.inspect import (
    CHECKED,
    EXCLUDED,
    SKIPPED,
    SKIPPED_M_BY_N,
    ModelStats,
    format_stats,
    inspect_keras,
    inspect_tflite,
)
from kws.models import ModelConfig, build_model

PW = [f"pw_{i}" for i in range(1, 5)]
DW = [f"dw_{i}" for i in range(1, 5)]
DS_CNN_S_LAYERS = {"conv_1", *DW, *PW, "logits"}
CHANNELS = 64


def representative() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((64, 49, 10)).astype(np.float32)


def two_of_four_rows(n_inputs: int) -> np.ndarray:
    """Input positions kept by a 2:4 pattern: the first two of every four."""
    return np.arange(n_inputs) % 4 < 2


def patterned_pw_kernel() -> np.ndarray:
    """A [1, 1, 64, 64] kernel: half the inputs of every output channel are zero in a 2:4
    pattern, and each output channel holds exactly four values (0, -s, s/2, s) with its own
    scale s, so the whole tensor holds 1 + 3 * 64 distinct values."""
    kernel = np.zeros((1, 1, CHANNELS, CHANNELS), np.float32)
    keep = np.flatnonzero(two_of_four_rows(CHANNELS))
    for c in range(CHANNELS):
        s = 0.1 * (1 + c / 1000)  # scales in [0.1, 0.107): no level repeats across channels
        levels = np.array([-s, 0.5 * s, s], np.float32)
        kernel[0, 0, keep, c] = levels[np.arange(len(keep)) % 3]
    return kernel


def patterned_model():
    """DS-CNN-S with 2:4-pruned, 4-valued pw kernels, a 2:4-pruned logits kernel and
    per-channel BatchNorm scales that conversion folds into the pw weights."""
    model = build_model(ModelConfig())
    rng = np.random.default_rng(1)
    for name in PW:
        layer = model.get_layer(name)
        layer.set_weights([patterned_pw_kernel(), layer.get_weights()[1]])
        bn = model.get_layer(f"{name}_bn")
        gamma, beta, mean, variance = bn.get_weights()
        bn.set_weights([rng.uniform(0.5, 2.0, CHANNELS).astype(np.float32), beta, mean,
                        rng.uniform(0.5, 2.0, CHANNELS).astype(np.float32)])
    logits = model.get_layer("logits")
    kernel, bias = logits.get_weights()
    kernel[~two_of_four_rows(CHANNELS), :] = 0  # Dense kernel [in, out]: input axis 0
    logits.set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def patterned():
    return patterned_model()


@pytest.fixture(scope="module")
def patterned_int8(patterned):
    return to_tflite(patterned, "int8", representative=representative())


# ----- Keras: known patterns -----------------------------------------------------------


def test_keras_reports_the_patterns_that_were_set(patterned):
    stats = inspect_keras(patterned, m_by_n=(2, 4))
    assert {layer.name for layer in stats.layers} == DS_CNN_S_LAYERS
    for name in PW:
        pw = stats.get(name)
        assert (pw.kind, pw.status, pw.shape) == ("conv", CHECKED, (1, 1, 64, 64))
        assert (pw.total, pw.nonzero, pw.sparsity) == (4096, 2048, 0.5)
        assert pw.unique_per_channel_max == 4 and pw.unique_per_channel_mean == 4.0
        assert pw.unique_tensor == 1 + 3 * CHANNELS
        assert pw.m_by_n_ok is True
    logits = stats.get("logits")
    assert (logits.kind, logits.status, logits.total, logits.sparsity) == ("dense", CHECKED,
                                                                            768, 0.5)
    assert logits.m_by_n_ok is True
    conv = stats.get("conv_1")
    # One input channel: TFMOT forms no 2:4 groups there, so the layer stays dense.
    assert (conv.status, conv.sparsity, conv.unique_per_channel_max) == (SKIPPED_M_BY_N, 0.0, 40)
    zeros = 4 * 2048 + 384
    assert stats.sparsity() == pytest.approx(zeros / (4 * 4096 + 768))
    assert stats.max_unique_per_channel() == 33  # logits: 32 values per channel and zero
    plain = inspect_keras(patterned)
    assert plain.get("conv_1").status == CHECKED
    assert plain.sparsity() == pytest.approx(zeros / (2560 + 4 * 4096 + 768))
    assert plain.max_unique_per_channel() == 40  # conv_1's random kernel, 40 per channel


def test_depthwise_layers_are_reported_but_excluded(patterned):
    stats = inspect_keras(patterned, clusters=8, m_by_n=(2, 4))
    for name in DW:
        dw = stats.get(name)
        assert (dw.kind, dw.status, dw.m_by_n_ok) == ("depthwise", EXCLUDED, None)
        assert dw.shape == (3, 3, 64) and dw.unique_per_channel_max == 9
    assert {layer.name for layer in stats.checked()} == {*PW, "logits"}
    assert {layer.name for layer in inspect_keras(patterned, clusters=8).checked()} == {
        "conv_1", *PW, "logits"}


def test_m_by_n_fails_when_one_group_breaks():
    model = patterned_model()
    layer = model.get_layer("pw_3")
    kernel, bias = layer.get_weights()
    kernel[0, 0, 2, 5] = 0.1  # input 2 of output 5: the first group now has 3 non-zeros
    layer.set_weights([kernel, bias])
    stats = inspect_keras(model, m_by_n=(2, 4))
    assert stats.get("pw_3").m_by_n_ok is False
    assert stats.get("pw_3").nonzero == 2049
    assert all(stats.get(name).m_by_n_ok for name in ("pw_1", "pw_2", "pw_4", "logits"))
    assert stats.m_by_n_ok() is False
    assert inspect_keras(model).get("pw_3").m_by_n_ok is None  # not asked


def test_m_by_n_counts_a_short_last_group_like_tfmot():
    from kws.compat import keras

    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))
    kernel = np.zeros((6, 2), np.float32)
    kernel[[0, 1], :] = 1.0  # first group 2 of 4: fine
    kernel[[4], :] = 1.0  # short last group (inputs 4, 5): 1 non-zero
    model.get_layer("head").set_weights([kernel, np.zeros(2, np.float32)])
    assert inspect_keras(model, m_by_n=(2, 4)).get("head").m_by_n_ok is True
    kernel[5, 0] = 1.0  # the short group now holds 2 non-zeros: still at most n - m
    model.get_layer("head").set_weights([kernel, np.zeros(2, np.float32)])
    assert inspect_keras(model, m_by_n=(2, 4)).get("head").m_by_n_ok is True
    assert inspect_keras(model, m_by_n=(3, 4)).get("head").m_by_n_ok is False
    with pytest.raises(ValueError, match="m_by_n"):
        inspect_keras(model, m_by_n=(4, 4))


# ----- clusters: TFMOT's skip rule -------------------------------------------------------


def small_conv_model():
    """Conv2Ds with 9 and 36 weights per output channel, one without a bias, and a Dense."""
    from kws.compat import keras

    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, name="small")(inputs)  # 9 per channel, 36 in all
    x = keras.layers.Conv2D(8, 3, name="big")(x)  # 36 per channel, 288 in all
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="nobias")(x)  # 72 per channel
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def test_a_conv_with_fewer_weights_per_channel_than_clusters_is_skipped():
    stats = inspect_keras(small_conv_model(), clusters=16)
    assert stats.get("small").status == SKIPPED
    assert stats.get("big").status == CHECKED
    assert stats.get("head").status == CHECKED
    assert inspect_keras(small_conv_model()).get("small").status == CHECKED  # no clusters


# TFMOT leaves a Conv2D unclustered when the weights it would cluster are <= clusters:
# per output channel (channels counted from the bias, so a bias-less layer has 1 channel
# and always falls under) with cluster_per_channel, otherwise the whole kernel.
@pytest.mark.parametrize("clusters, per_channel, skipped", [
    (16, True, {"small", "nobias"}),
    (9, True, {"small", "nobias"}),
    (8, True, {"nobias"}),
    (36, False, {"small"}),
    (35, False, set()),
])
def test_skipped_layers_are_the_ones_tfmot_leaves_unclustered(clusters, per_channel, skipped):
    import warnings

    from kws.compat import tfmot

    model = small_conv_model()
    # Before clustering: cluster_weights swaps the wrapped layers' kernels for tensors.
    stats = inspect_keras(model, clusters=clusters, cluster_per_channel=per_channel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TFMOT warns about each layer it skips
        clustered = tfmot.clustering.keras.cluster_weights(
            model, number_of_clusters=clusters, cluster_per_channel=per_channel,
            cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.LINEAR)
    weight_layers = {layer.name for layer in stats.layers}
    assert weight_layers == {"small", "big", "nobias", "head"}
    # cluster_weights also wraps weightless layers (Flatten); compare the weight layers.
    wrapped = {layer.layer.name for layer in clustered.layers if hasattr(layer, "layer")}
    assert weight_layers - wrapped == skipped
    assert {layer.name for layer in stats.layers if layer.status == SKIPPED} == skipped
    assert {layer.name for layer in stats.checked()} == weight_layers - skipped


def test_min_weights_skips_small_layers():
    stats = inspect_keras(small_conv_model(), min_weights=100)
    assert stats.get("small").status == SKIPPED and stats.get("big").status == CHECKED


# ----- TFLite ----------------------------------------------------------------------------


def test_int8_tflite_keeps_the_patterns_per_output_channel(patterned, patterned_int8):
    keras_stats = inspect_keras(patterned, m_by_n=(2, 4))
    stats = inspect_tflite(patterned_int8, m_by_n=(2, 4))
    assert stats.source == "tflite"
    assert {layer.name for layer in stats.layers} == DS_CNN_S_LAYERS
    for layer in stats.layers:
        original = keras_stats.get(layer.name)
        assert (layer.kind, layer.status, layer.total) == (original.kind, original.status,
                                                           original.total)
    for name in PW:
        pw, original = stats.get(name), keras_stats.get(name)
        assert pw.shape == (64, 1, 1, 64)  # TFLite conv weights: [out, h, w, in]
        assert pw.sparsity >= original.sparsity - 0.01
        assert 2 <= pw.unique_per_channel_max <= original.unique_per_channel_max + 1
        assert pw.m_by_n_ok is True
    assert stats.get("logits").shape == (12, 64) and stats.get("logits").m_by_n_ok is True
    assert stats.get("dw_1").shape == (1, 3, 3, 64) and stats.get("dw_1").status == EXCLUDED
    assert stats.sparsity() >= keras_stats.sparsity() - 0.01


def test_int8_tflite_shows_a_broken_group(patterned_int8):
    model = patterned_model()
    layer = model.get_layer("pw_3")
    kernel, bias = layer.get_weights()
    kernel[0, 0, 2, 5] = 0.1
    layer.set_weights([kernel, bias])
    stats = inspect_tflite(to_tflite(model, "int8", representative=representative()),
                           m_by_n=(2, 4))
    assert stats.get("pw_3").m_by_n_ok is False
    assert inspect_tflite(patterned_int8, m_by_n=(2, 4)).get("pw_3").m_by_n_ok is True


@pytest.mark.parametrize("kind", ["float32", "float16"])
def test_float_conversions_parse(patterned, kind):
    stats = inspect_tflite(to_tflite(patterned, kind))
    assert {layer.name for layer in stats.layers} == DS_CNN_S_LAYERS
    for name in PW:
        pw = stats.get(name)
        # Folding BatchNorm scales each output channel: zeros and value counts survive.
        assert pw.sparsity == 0.5 and pw.unique_per_channel_max == 4
    assert stats.get("conv_1").unique_per_channel_max == 40


def test_int8_clusters_are_counted_per_channel(patterned_int8):
    stats = inspect_tflite(patterned_int8, clusters=16)
    assert stats.get("conv_1").status == CHECKED  # 40 weights per channel > 16
    assert inspect_tflite(patterned_int8, clusters=40).get("conv_1").status == SKIPPED
    assert inspect_tflite(patterned_int8, clusters=40,
                          cluster_per_channel=False).get("conv_1").status == CHECKED


def test_not_a_tflite_model_is_refused():
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        inspect_tflite(b"\0" * 64)


# ----- real TFMOT pipelines --------------------------------------------------------------


def fit_one_step(model, callbacks=()):
    from kws.compat import keras

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 49, 10, 1)).astype(np.float32)
    y = rng.integers(0, 12, 8)
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=list(callbacks))


def test_tfmot_pruning_leaves_half_zeros_and_no_depthwise_sparsity():
    from kws.compat import tfmot

    sparsity = tfmot.sparsity.keras
    # The wrapper bumps its step before updating masks, so the one step seen here is step
    # 1: with the default frequency of 100 it would never prune.
    pruned = sparsity.prune_low_magnitude(
        build_model(ModelConfig()),
        pruning_schedule=sparsity.ConstantSparsity(0.5, begin_step=0, frequency=1))
    fit_one_step(pruned, [sparsity.UpdatePruningStep()])
    stats = inspect_keras(sparsity.strip_pruning(pruned))
    assert {layer.name for layer in stats.checked()} == {"conv_1", *PW, "logits"}
    for layer in stats.checked():
        assert layer.sparsity == pytest.approx(0.5, abs=0.01), layer.name
    for name in DW:
        assert stats.get(name).status == EXCLUDED and stats.get(name).sparsity == 0.0
    assert stats.sparsity() == pytest.approx(0.5, abs=0.01)


def test_tfmot_m_by_n_pruning_matches_our_axis():
    from kws.compat import tfmot

    sparsity = tfmot.sparsity.keras
    pruned = sparsity.prune_low_magnitude(
        build_model(ModelConfig()),
        pruning_schedule=sparsity.ConstantSparsity(0.5, begin_step=0, frequency=1),
        sparsity_m_by_n=(2, 4))
    fit_one_step(pruned, [sparsity.UpdatePruningStep()])
    stats = inspect_keras(sparsity.strip_pruning(pruned), m_by_n=(2, 4))
    assert stats.m_by_n_ok() is True
    assert all(stats.get(name).sparsity == 0.5 for name in PW)
    # The same kernel read along the output axis is not 2:4: the axis matters.
    stripped = sparsity.strip_pruning(pruned)
    transposed = np.swapaxes(stripped.get_layer("pw_1").kernel.numpy(), -1, -2)
    stripped.get_layer("pw_1").set_weights([transposed, stripped.get_layer("pw_1").bias.numpy()])
    assert inspect_keras(stripped, m_by_n=(2, 4)).get("pw_1").m_by_n_ok is False


def test_tfmot_clustering_leaves_eight_values_per_tensor_and_per_int8_channel():
    import warnings

    from kws.compat import tfmot

    clustering = tfmot.clustering.keras
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clustered = clustering.cluster_weights(
            build_model(ModelConfig()), number_of_clusters=8,
            cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS)
    model = clustering.strip_clustering(clustered)
    stats = inspect_keras(model, clusters=8)
    assert {layer.name for layer in stats.checked()} == {"conv_1", *PW, "logits"}
    for layer in stats.checked():
        assert 2 <= layer.unique_tensor <= 8, layer.name
    for name in DW:  # never clustered: still close to one value per weight
        assert stats.get(name).unique_tensor > 500
    tflite = inspect_tflite(to_tflite(model, "int8", representative=representative()),
                            clusters=8)
    for layer in tflite.checked():
        assert layer.unique_per_channel_max <= 8 + 1, layer.name


# ----- guards and output -----------------------------------------------------------------


def depthwise_only_model():
    from kws.compat import keras

    inputs = keras.Input((8, 8, 4))
    x = keras.layers.DepthwiseConv2D(3, name="dw_a")(inputs)
    return keras.Model(inputs, keras.layers.DepthwiseConv2D(3, name="dw_b")(x))


def test_nothing_checked_raises_instead_of_passing():
    model = depthwise_only_model()
    stats = inspect_keras(model)
    assert [layer.status for layer in stats.layers] == [EXCLUDED, EXCLUDED]
    with pytest.raises(ValueError, match="no layer of the keras model was checked"):
        stats.sparsity()
    with pytest.raises(ValueError, match="keras"):
        stats.max_unique_per_channel()
    tflite = inspect_tflite(to_tflite(model, "float32"))
    assert len(tflite.layers) == 2
    with pytest.raises(ValueError, match="no layer of the tflite model was checked"):
        tflite.sparsity()
    with pytest.raises(ValueError, match="no weight layers"):
        ModelStats("tflite", ()).max_unique_per_channel()
    assert stats.to_dict()["sparsity"] is None


def test_everything_skipped_raises_too():
    stats = inspect_keras(small_conv_model(), min_weights=10**6)
    with pytest.raises(ValueError, match="skipped"):
        stats.sparsity()


def test_wrapped_models_are_refused():
    from kws.compat import tfmot

    pruned = tfmot.sparsity.keras.prune_low_magnitude(small_conv_model())
    with pytest.raises(ValueError, match="strip"):
        inspect_keras(pruned)


def test_table_and_dict(patterned):
    stats = inspect_keras(patterned, clusters=8, m_by_n=(2, 4))
    table = format_stats(stats)
    for text in ("pw_1", "logits", EXCLUDED, SKIPPED_M_BY_N, "sparsity", "keras: 5 layers checked"):
        assert text in table
    data = json.loads(json.dumps(stats.to_dict()))
    assert data["checked"] == 5 and len(data["layers"]) == 10
    assert data["layers"][1]["shape"] == [3, 3, 64]
    assert data["sparsity"] == pytest.approx(stats.sparsity())
