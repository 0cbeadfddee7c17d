"""L1 filter pruning: which filters survive, the smaller model's equivalence with the
masked original, its sizes, QAT and int8 export, and the stage end to end."""

from __future__ import annotations

import numpy as np
import pytest

from kws.models import ModelConfig, build_model, count_macs
from kws.pathways.base import CLUSTERS, SPARSITY, FineTune, StageContext
from kws.pathways.structured import (
    FilterPrune,
    filter_norms,
    filter_widths,
    kept_count,
    kept_filters,
    layer_ratios,
    mask_filters,
    plan_filters,
    shrink,
)
from kws.train import TrainConfig, TrainingData

PRUNED = ("conv_1", "pw_1", "pw_2", "pw_3", "pw_4")
#: One ratio per layer group of DS-CNN-S, uneven, with whole layers among them.
UNEVEN = (0.0, 0.5, 0.25, 0.0, 0.75)


def randomize(model, seed: int = 0):
    """Random weights everywhere, including non-zero biases and BatchNorm statistics, so
    every copied or folded value shows in the output."""
    from kws.compat import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.get_weights()[0].shape
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.5, c),
                               rng.normal(0, 0.5, c), rng.uniform(0.5, 1.5, c)])
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape) for w in layer.get_weights()])
    return model


@pytest.fixture(scope="module")
def model():
    return randomize(build_model(ModelConfig()))


@pytest.fixture(scope="module")
def features():
    return np.random.default_rng(1).normal(size=(32, 49, 10, 1)).astype(np.float32)


def tiny_context(seed: int = 3) -> StageContext:
    """48 random clips, one epoch in batches of 16: a stage runs in seconds."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(1, 48, 49, 10)).astype(np.float32)
    labels = np.arange(48, dtype=np.int32) % 12
    data = TrainingData(train, labels, train[0, :16], labels[:16], fingerprint={})
    base = TrainConfig(epochs=1, batch_size=16, augmentation=None, early_stopping_patience=None)
    return StageContext(data, base, label_names=tuple(map(str, range(12))))


def masked_by_hand(model, keep):
    """The original with each removed filter's BatchNorm gamma and beta zeroed, built
    here independently of the module's own masking."""
    from kws.compat import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name, kept in keep.items():
        bn = copy.get_layer(f"{name}_bn")
        gamma, beta, mean, var = bn.get_weights()
        removed = np.setdiff1d(np.arange(len(gamma)), kept)
        gamma[removed] = 0
        beta[removed] = 0
        bn.set_weights([gamma, beta, mean, var])
    return copy


@pytest.mark.parametrize("sparsity", [0.5, 0.75, 0.875])
def test_smaller_model_keeps_shapes_and_loses_params_and_macs(model, sparsity):
    small = shrink(model, plan_filters(model, sparsity))
    assert small.input_shape == model.input_shape == (None, 49, 10, 1)
    assert small.output_shape == model.output_shape == (None, 12)
    assert filter_widths(model) == dict.fromkeys(PRUNED, 64)
    assert filter_widths(small) == dict.fromkeys(PRUNED, round(64 * (1 - sparsity)))
    for i in range(1, 5):  # each depthwise conv follows the width feeding it
        assert small.get_layer(f"dw_{i}").get_weights()[0].shape[2] == round(64 * (1 - sparsity))
    assert small.count_params() < model.count_params()
    assert count_macs(small) < count_macs(model)
    assert [layer.name for layer in small.layers] == [layer.name for layer in model.layers]
    assert [type(layer) for layer in small.layers] == [type(layer) for layer in model.layers]


def test_kept_filters_are_those_with_the_largest_l1_norms(model):
    from kws.compat import keras

    rng = np.random.default_rng(2)
    m = keras.models.clone_model(model)
    m.set_weights(model.get_weights())
    layer = m.get_layer("pw_2")
    kernel, bias = layer.get_weights()
    # Column k gets L1 norm norms[k]: signs are random, magnitudes fixed.
    norms = rng.permutation(np.arange(1, 65, dtype=np.float64))
    unit = np.abs(rng.normal(size=kernel.shape)) + 0.1
    unit /= unit.reshape(-1, 64).sum(axis=0)
    kernel = (unit * norms * rng.choice([-1, 1], size=kernel.shape)).astype(np.float32)
    layer.set_weights([kernel, bias])
    np.testing.assert_allclose(filter_norms(kernel), norms, rtol=1e-5)

    keep = plan_filters(m, 0.75)
    expected = np.sort(np.flatnonzero(norms > 48))  # the 16 largest of 1..64
    np.testing.assert_array_equal(keep["pw_2"], expected)
    small = shrink(m, keep)
    # pw_2's surviving kernel: its kept columns, over the channels pw_1 kept.
    np.testing.assert_array_equal(small.get_layer("pw_2").get_weights()[0],
                                  kernel[:, :, keep["pw_1"]][..., expected])
    np.testing.assert_array_equal(small.get_layer("pw_2_bn").get_weights()[2],
                                  m.get_layer("pw_2_bn").get_weights()[2][expected])


def test_ties_keep_the_lower_index_and_order_is_preserved():
    kernel = np.ones((1, 1, 3, 6), np.float32)
    kernel[..., 4] = 5
    np.testing.assert_array_equal(kept_filters(kernel, 0.5), [0, 1, 4])
    assert len(kept_filters(kernel, 0.99)) == 1  # at least one filter always survives


@pytest.mark.parametrize("sparsity", [0.5, 0.75])
def test_smaller_model_reproduces_the_masked_original(model, features, sparsity):
    keep = plan_filters(model, sparsity)
    small = shrink(model, keep)
    reference = masked_by_hand(model, keep)
    expected = reference(features, training=False).numpy()
    got = small(features, training=False).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1, np.abs(expected).max()), rtol=0)
    # Not vacuous: masking changes the original's output, so the match is the masking's.
    original = model(features, training=False).numpy()
    assert np.abs(original - expected).max() > 0.1
    np.testing.assert_allclose(mask_filters(model, keep)(features, training=False).numpy(),
                               expected, atol=1e-5, rtol=0)


def test_smaller_model_quantizes_and_exports_to_int8(model, features):
    from ai_edge_litert.interpreter import Interpreter

    from kws.compat import tfmot
    from kws.export import to_tflite

    small = shrink(model, plan_filters(model, 0.75))
    qat = tfmot.quantization.keras.quantize_model(small)
    assert qat.output_shape == (None, 12)
    flat = to_tflite(qat, "int8", representative=features[..., 0])
    interpreter = Interpreter(model_content=flat)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert inp["dtype"] == np.int8 and out["dtype"] == np.int8
    assert list(inp["shape"]) == [1, 49, 10, 1] and list(out["shape"]) == [1, 12]


@pytest.mark.parametrize("sparsity", [0, 1, -0.25, 1.5])
def test_bad_sparsity_is_rejected_naming_the_field(sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be in \(0, 1\)"):
        FilterPrune(sparsity=sparsity)


def test_models_that_are_not_a_single_chain_are_rejected():
    from kws.compat import keras

    inputs = keras.Input((49, 10, 1))
    a = keras.layers.Conv2D(4, 1, name="a")(inputs)
    b = keras.layers.Conv2D(4, 1, name="b")(inputs)
    out = keras.layers.Add(name="add")([a, b])
    with pytest.raises(ValueError, match="single chain"):
        plan_filters(keras.Model(inputs, out), 0.5)


def test_pruned_filters_are_not_preserved_as_sparsity_or_clusters():
    stage = FilterPrune(sparsity=0.5)
    assert stage.family == "filter"
    assert stage.preserved(frozenset({SPARSITY, CLUSTERS})) == frozenset()


def test_run_fine_tunes_the_smaller_model_and_reports_its_sizes():
    from kws.compat import keras
    from kws.pathways.registry import get_pathway, make_point

    ctx = tiny_context()
    train = ctx.data.train
    (stage,) = get_pathway("filter").stages(make_point(get_pathway("filter"), sparsity=0.75))
    stage = stage.with_finetune(FineTune(epochs=1))
    assert stage == FilterPrune(sparsity=0.75, finetune=FineTune(epochs=1))

    original = randomize(build_model(ModelConfig()), seed=4)
    before = [w.copy() for w in original.get_weights()]
    small, meta = stage.run(original, ctx, frozenset())
    assert meta["params_before"] == original.count_params()
    assert meta["params_after"] == small.count_params() < meta["params_before"]
    assert meta["macs_after"] == count_macs(small) < meta["macs_before"] == count_macs(original)
    assert meta["widths_before"] == dict.fromkeys(PRUNED, 64)
    assert meta["widths_after"] == dict.fromkeys(PRUNED, 16)
    assert meta["epochs_run"] == 1 and meta["train_seconds"] > 0
    assert meta["shrink_max_abs_error"] < 1e-3
    assert small.output_shape == (None, 12)
    assert np.all(np.isfinite(small(train[0, :4, ..., None], training=False).numpy()))
    # A plain Keras model (no TFMOT wrappers), and the original left untouched.
    assert all(type(layer).__module__.startswith("tf_keras") for layer in small.layers)
    assert isinstance(small, keras.Model)
    for a, b in zip(before, original.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert meta["ratios"] == dict.fromkeys(PRUNED, 0.75)


# ----- a ratio per layer group --------------------------------------------------------


def test_each_layer_keeps_the_share_its_own_ratio_leaves(model):
    keep = plan_filters(model, None, UNEVEN)
    assert {name: len(kept) for name, kept in keep.items()} == dict(zip(PRUNED, (64, 32, 48, 64, 16)))
    assert filter_widths(shrink(model, keep)) == dict(zip(PRUNED, (64, 32, 48, 64, 16)))
    assert layer_ratios(model, None, UNEVEN) == dict(zip(PRUNED, UNEVEN))


def test_a_ratio_of_zero_keeps_its_layer_whole(model):
    keep = plan_filters(model, None, UNEVEN)
    np.testing.assert_array_equal(keep["conv_1"], np.arange(64))
    np.testing.assert_array_equal(keep["pw_3"], np.arange(64))
    small = shrink(model, keep)
    for a, b in zip(small.get_layer("conv_1").get_weights(), model.get_layer("conv_1").get_weights()):
        np.testing.assert_array_equal(a, b)  # conv_1 reads the whole input: nothing changes


def test_one_ratio_stands_for_every_layer_as_sparsity_does(model):
    broadcast, uniform = plan_filters(model, None, (0.75,)), plan_filters(model, 0.75)
    assert list(broadcast) == list(uniform) == list(PRUNED)
    for name in PRUNED:
        np.testing.assert_array_equal(broadcast[name], uniform[name])


@pytest.mark.parametrize("ratios", [UNEVEN, (0.7, 0.1, 0.6, 0.3, 0.45)])
def test_smaller_model_reproduces_the_masked_original_with_uneven_ratios(model, features, ratios):
    keep = plan_filters(model, None, ratios)
    assert len({len(kept) for kept in keep.values()}) > 1, "the ratios must differ between layers"
    expected = masked_by_hand(model, keep)(features, training=False).numpy()
    got = shrink(model, keep)(features, training=False).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4 * max(1, np.abs(expected).max()), rtol=0)
    assert np.abs(model(features, training=False).numpy() - expected).max() > 0.1


def test_ratios_of_the_wrong_count_name_the_prunable_layers(model):
    with pytest.raises(ValueError, match=r"need 5, one per prunable layer \(conv_1, pw_1, pw_2, pw_3, pw_4\)"):
        plan_filters(model, None, (0.1, 0.2))


@pytest.mark.parametrize("given, message", [
    ({"ratios": (0.5, 1.0)}, r"ratios must be one or more fractions in \[0, 1\)"),
    ({"ratios": (-0.1,)}, r"ratios must be one or more fractions in \[0, 1\)"),
    ({"ratios": ()}, r"ratios must be one or more fractions"),
    ({"multiple_of": 0}, "multiple_of must be an integer >= 1"),
])
def test_bad_ratios_are_rejected_naming_the_field(given, message):
    with pytest.raises(ValueError, match=message):
        FilterPrune(**given)


def test_kept_counts_round_to_a_multiple_when_asked():
    assert kept_count(64, 0.05, 4) == 60 and kept_count(64, 0.05) == 61
    assert kept_count(16, 0.3, 4) == 12 and kept_count(16, 0.95, 4) == 4  # at least one multiple
    assert kept_count(10, 0.0, 4) == 10  # a ratio of 0 keeps the layer whole, multiple or not


def test_the_cache_key_of_a_uniform_filter_stage_is_unchanged():
    """The parameters are the stage's cache key: stages stored before per-group ratios
    existed must keep theirs."""
    assert FilterPrune(sparsity=0.5).params() == {
        "finetune": {"epochs": 15, "learning_rate": 1e-4}, "sparsity": 0.5}
    grouped = FilterPrune(ratios=[0.2, 0.0], multiple_of=4)
    assert grouped.ratios == (0.2, 0.0)
    assert grouped.params() == {"finetune": {"epochs": 15, "learning_rate": 1e-4}, "ratios": [0.2, 0.0],
                                "multiple_of": 4}
    assert FilterPrune(ratios=(0.5,)).params() != FilterPrune(sparsity=0.5).params()


def test_per_group_pruning_then_two_four_and_qat_deploys_half_zeros_in_narrower_layers():
    """The lfilter24qat chain on a 16-filter model: each group keeps a multiple of 4
    filters, so 2:4 pruning zeroes exactly half of every checked layer and QAT keeps it."""
    from ai_edge_litert.interpreter import Interpreter

    from kws.export import to_tflite
    from kws.inspect import inspect_tflite
    from kws.pathways.registry import get_pathway, make_point

    tiny = ModelConfig(alpha=0.25)
    pathway = get_pathway("lfilter24qat")
    point = make_point(pathway, tiny, filter_ratios="0,0.5,0.25,0.3,0.75")
    assert pathway.promises(point) == {SPARSITY: 0.5}
    ctx = tiny_context(seed=5)
    model, preserved, metas = randomize(build_model(tiny), seed=6), frozenset(), []
    for stage in pathway.stages(point):
        model, meta = stage.with_finetune(FineTune(epochs=1)).run(model, ctx, preserved)
        preserved = stage.preserved(preserved)
        metas.append(meta)
    widths = dict(zip(PRUNED, (16, 8, 12, 12, 4)))  # 0.3 of 16 leaves 11.2: rounded to 12
    assert metas[0]["widths_before"] == dict.fromkeys(PRUNED, 16) and metas[0]["widths_after"] == widths
    assert metas[0]["ratios"] == dict(zip(PRUNED, (0.0, 0.5, 0.25, 0.3, 0.75)))
    assert metas[2]["scheme"] == "pqat" and preserved == {SPARSITY}

    clips = ctx.data.train[0, :16]
    flat = to_tflite(model, "int8", representative=clips)
    stats = inspect_tflite(flat, m_by_n=(2, 4))
    assert {layer.name for layer in stats.checked()} >= {"pw_1", "pw_2", "pw_3", "pw_4"}
    assert all(layer.m_by_n_ok for layer in stats.checked())
    assert stats.sparsity() >= 0.5 - 0.01
    assert {name: stats.get(name).shape[0] for name in PRUNED} == widths  # output channels first
    interpreter = Interpreter(model_content=flat)
    interpreter.allocate_tensors()
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 12]
