"""Host latency of int8 DS-CNN models under LiteRT.

Run with ``python -m pytest bench/test_bench_litert.py``. Each benchmark times one
inference at batch 1 (set the input, invoke, read the output) on one thread, the way a
keyword spotter runs on a device; ``benchmark.extra_info`` holds ``us_per_inference``
and the model's sizes (``raw``, ``gzip``, ``zlib`` bytes). Latency does not depend on
the weights' values, so the models are untrained and calibrated on random features.
"""

from __future__ import annotations

import numpy as np
import pytest

from kws.evaluate import TFLiteRunner
from kws.export import sizes, to_tflite
from kws.models import ModelConfig, build_model, count_macs

MODELS = ("ds-cnn-s", "ds-cnn-m", "ds-cnn-l")
THREADS = 1


@pytest.fixture(scope="module")
def random_features() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((200, 49, 10)).astype(np.float32)


@pytest.mark.parametrize("name", MODELS)
def test_litert_int8_latency(benchmark, random_features, name):
    model = build_model(ModelConfig(name))
    tflite = to_tflite(model, "int8", random_features)
    runner = TFLiteRunner(tflite, batch_size=1, num_threads=THREADS)
    interp = runner.interpreter
    input_index = interp.get_input_details()[0]["index"]
    output_index = interp.get_output_details()[0]["index"]
    clip = runner.input_quant.quantize(random_features[:1].reshape(runner.input_shape))

    def infer() -> np.ndarray:
        interp.set_tensor(input_index, clip)
        interp.invoke()
        return interp.get_tensor(output_index)

    out = benchmark.pedantic(infer, rounds=200, iterations=5, warmup_rounds=20)
    assert out.shape == (1, 12) and out.dtype == np.int8
    benchmark.extra_info.update(
        model=name,
        threads=THREADS,
        macs=count_macs(model),
        us_per_inference=benchmark.stats.stats.mean * 1e6,
        **sizes(tflite),
    )
