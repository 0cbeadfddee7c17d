"""DS-CNN models: the published sizes, width scaling, and TFMOT compatibility."""

from __future__ import annotations

import json

import pytest

from kws.cli import main
from kws.models import ARCHITECTURES, ModelConfig, build_model, count_macs, model_summary, parse_model

# REFERENCE: Arm ML-zoo / "Hello Edge" DS-CNN sizes.
PUBLISHED = {
    "ds-cnn-s": {"params": 24_900, "macs": 2.66e6},
    "ds-cnn-m": {"macs": 9.8e6},
    "ds-cnn-l": {"params": 423_000, "macs": 28.3e6},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_sizes_match_the_published_ones(name):
    summary = model_summary(ModelConfig(name))
    for metric, value in PUBLISHED[name].items():
        assert summary[metric] == pytest.approx(value, rel=0.005), f"{name} {metric}"


def test_ds_cnn_s_shapes():
    model = build_model(ModelConfig("ds-cnn-s"))
    assert model.input_shape == (None, 49, 10, 1) and model.output_shape == (None, 12)
    assert model.get_layer("conv_1").output_shape == (None, 25, 5, 64)
    assert model.get_layer("pw_4").output_shape == (None, 25, 5, 64)
    large = build_model(ModelConfig("ds-cnn-l"))
    assert large.get_layer("dw_1").output_shape == (None, 13, 5, 276)
    assert large.get_layer("pw_5").output_shape == (None, 13, 5, 276)


@pytest.mark.parametrize("alpha, filters", [(0.5, 32), (0.25, 16), (0.3, 19)])
def test_alpha_scales_every_layer(alpha, filters):
    model = build_model(ModelConfig(alpha=alpha))
    convs = [layer for layer in model.layers if layer.__class__.__name__ == "Conv2D"]
    assert len(convs) == 5 and {layer.filters for layer in convs} == {filters}
    assert count_macs(model) < count_macs(build_model(ModelConfig()))


def test_batchnorm_momentum_is_a_config_value():
    momenta = {layer.momentum for layer in build_model(ModelConfig(bn_momentum=0.95)).layers
               if layer.__class__.__name__ == "BatchNormalization"}
    assert momenta == {0.95}


def test_mlperf_variant_adds_dropout_and_l2():
    model = build_model(parse_model("ds-cnn-s-mlperf"))
    rates = [layer.rate for layer in model.layers if layer.__class__.__name__ == "Dropout"]
    assert rates == [0.2, 0.4]
    assert len(model.losses) == 10  # L2 on 5 convs, 4 depthwise and the dense layer
    assert model.count_params() == build_model(ModelConfig()).count_params()


def test_models_are_keras_layers_only_and_tfmot_wraps_them_whole():
    from kws.compat import tfmot

    for name in ARCHITECTURES:
        model = build_model(ModelConfig(name))
        kinds = {layer.__class__.__name__ for layer in model.layers}
        assert not kinds & {"TFOpLambda", "Lambda", "SlicingOpLambda"}, kinds
    pruned = tfmot.sparsity.keras.prune_low_magnitude(build_model(ModelConfig()))
    assert sum("prune_low_magnitude" in layer.name for layer in pruned.layers) >= 10
    quantized = tfmot.quantization.keras.quantize_model(build_model(ModelConfig()))
    assert quantized.output_shape == (None, 12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="ds-cnn-xl"), "is not one of"),
    (dict(alpha=0), "alpha must be in"),
    (dict(alpha=1.5), "alpha must be in"),
    (dict(num_labels=1), "num_labels"),
    (dict(bn_momentum=1.0), "bn_momentum"),
])
def test_bad_model_configs_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**kwargs)


def test_model_info_cli(capsys):
    assert main(["model", "info", "ds-cnn-s", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 24_908 and info["macs"] == 2_656_768
    with pytest.raises(SystemExit) as excinfo:
        main(["model", "info", "ds-cnn-q"])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "argument name: 'ds-cnn-q' is not a DS-CNN name (ds-cnn-s|m|l, optionally -mlperf)" in err
