"""Property checks of the collaborative optimisation stages (Hypothesis).

Random small conv, dense and depthwise-separable models of random widths go through the
project's own ``Prune``, ``Cluster`` and ``QAT`` stages, each fine-tuned for real through
TFMOT on a tiny random data set, and what each pathway promises to preserve is asserted
on the stripped Keras model and on the int8 TFLite. Every example trains real models:
the profiles in ``conftest.py`` keep the example count small (choose one with
``--hypothesis-profile``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from kws.export import to_tflite
from kws.inspect import ModelStats, inspect_keras, inspect_tflite
from kws.pathways.base import FineTune, Stage, StageContext
from kws.pathways.cluster import Cluster
from kws.pathways.prune import Prune
from kws.pathways.qat import QAT
from kws.train import TrainConfig, TrainingData, seed_everything

INPUT_SHAPE = (12, 10, 1)  # a short MFCC window: frames x coefficients x 1
TRAIN_SAMPLES = 128
VAL_SAMPLES = 16
# 16 steps per stage: enough for TFMOT's masks, centroids and quantiser ranges to be
# updated many times, few enough that an example costs seconds.
BASE = TrainConfig(epochs=1, batch_size=8, augmentation=None, augmentation_versions=1,
                   class_weights=False)
FINETUNE = FineTune(epochs=1, learning_rate=1e-3)
SPARSITY_TOLERANCE = 0.01
# Rounding to int8 may turn tiny weights into zeros, never a zero into anything else:
# the tolerance only absorbs float error in the ratio.
INT8_SPARSITY_TOLERANCE = 1e-6
# The first convolution sees one input channel; a 4x10 kernel (DS-CNN's 10x4, turned to
# fit 10 coefficients) gives it 40 weights per output channel.
FIRST_KERNEL = (4, 10)
MAX_CLUSTERS = 32

ARCHITECTURES = st.sampled_from(("conv", "dense", "depthwise_separable"))
WIDTHS = st.integers(8, 32)
# At least 4 labels: the Dense head then holds >= 8 x 4 = 32 weights, as many as the
# largest cluster count, so k-means++ always finds k distinct weights to start from.
LABELS = st.integers(4, 6)
SPARSITY = st.floats(0.2, 0.9)
CLUSTERS = st.integers(2, MAX_CLUSTERS)
SEEDS = st.integers(0, 2**16)


@dataclass(frozen=True)
class ModelSpec:
    """A small KWS-shaped model: ``widths[0]`` filters (or units) in the first layer, one
    further layer (conv, dense) or depthwise-separable block per remaining width, then a
    Dense head with one output per label."""

    kind: str
    widths: tuple[int, ...]
    labels: int

    def __str__(self) -> str:
        return f"{self.kind} {'x'.join(map(str, self.widths))} -> {self.labels}"

    def clustered_sizes(self) -> tuple[int, ...]:
        """Kernel sizes of the layers TFMOT prunes and clusters: every Conv2D and Dense
        (never the depthwise kernels)."""
        if self.kind == "dense":
            first, per_input = math.prod(INPUT_SHAPE), 1
        else:
            first = math.prod(FIRST_KERNEL) * INPUT_SHAPE[-1]
            per_input = 9 if self.kind == "conv" else 1  # 3x3 conv, or 1x1 pointwise
        return (first * self.widths[0],
                *(per_input * a * b for a, b in pairwise(self.widths)),
                self.widths[-1] * self.labels)


MODEL_SPECS = st.builds(ModelSpec, kind=ARCHITECTURES,
                        widths=st.lists(WIDTHS, min_size=2, max_size=3).map(tuple),
                        labels=LABELS)


def sparsity_preserving_clusters(spec: ModelSpec, sparsity: float) -> st.SearchStrategy[int]:
    """Cluster counts that TFMOT's sparsity-preserving clustering accepts on ``spec``
    pruned to ``sparsity``.

    It reserves one centroid for zero and refuses ``number_of_clusters <= 2``. Its
    k-means++ initialisation then samples the other k - 1 centroids from the layer's
    non-zero weights, and fails (``InvalidArgumentError: Expected num_to_sample <=
    points.rows()`` from ``KmeansPlusPlusInitialization``) when a layer keeps fewer
    than k - 1 of them: a small, strongly pruned Dense head.
    """
    nonzero = min(math.floor(size * (1 - sparsity)) for size in spec.clustered_sizes())
    return st.integers(3, min(MAX_CLUSTERS, nonzero + 1))


@st.composite
def pruned_and_clustered(draw) -> tuple[ModelSpec, float, int]:
    spec, sparsity = draw(MODEL_SPECS), draw(SPARSITY)
    return spec, sparsity, draw(sparsity_preserving_clusters(spec, sparsity))


PRUNED_AND_CLUSTERED = pruned_and_clustered()


def build_model(spec: ModelSpec):
    from kws.compat import keras

    layers = keras.layers
    inputs = keras.Input(INPUT_SHAPE)
    x = inputs
    if spec.kind == "dense":
        x = layers.Flatten()(x)
        for width in spec.widths:
            x = layers.Dense(width, activation="relu")(x)
    else:
        x = _conv_bn_relu(layers, x, spec.widths[0], FIRST_KERNEL, strides=2)
        for width in spec.widths[1:]:
            if spec.kind == "conv":
                x = _conv_bn_relu(layers, x, width, (3, 3))
            else:
                x = layers.DepthwiseConv2D((3, 3), padding="same", use_bias=False)(x)
                x = layers.ReLU()(layers.BatchNormalization()(x))
                x = _conv_bn_relu(layers, x, width, (1, 1))
        x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(spec.labels)(x))


def _conv_bn_relu(layers, x, filters: int, kernel, strides=1):
    # BatchNorm after every convolution, as in DS-CNN: int8 conversion folds it into the
    # weights, scaling each output channel.
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))


def random_context(spec: ModelSpec, seed: int) -> StageContext:
    """Random features and labels: the properties hold whatever the data."""
    rng = np.random.default_rng(seed)

    def split(n: int):
        return (rng.standard_normal((n, *INPUT_SHAPE[:2])).astype(np.float32),
                rng.integers(0, spec.labels, n))

    train, train_labels = split(TRAIN_SAMPLES)
    val, val_labels = split(VAL_SAMPLES)
    data = TrainingData(train[None], train_labels, val, val_labels, fingerprint={})
    labels = tuple(f"label{i}" for i in range(spec.labels))
    return StageContext(data=data, base_train=BASE, label_names=labels)


def run_stages(spec: ModelSpec, seed: int, stages: list[Stage]):
    """A fresh seeded model through ``stages``, chained as a pathway chains them (each
    stage is told what its parents preserved); returns each stage's model and the data."""
    from kws.compat import keras

    keras.backend.clear_session()
    seed_everything(seed)
    ctx = random_context(spec, seed)
    model, preserved, models = build_model(spec), frozenset(), []
    for s in stages:
        model, _ = s.run(model, ctx, preserved)
        preserved = s.preserved(preserved)
        models.append(model)
    return models, ctx


def int8(model, ctx: StageContext) -> bytes:
    return to_tflite(model, "int8", ctx.data.train[0])


def checked(stats: ModelStats, spec: ModelSpec) -> ModelStats:
    """``stats``, once it is sure to check some layer: a property over no layers would
    pass vacuously."""
    assert stats.checked(), (f"no layer of the {stats.source} model was checked ({spec}): "
                             f"{[(layer.name, layer.status) for layer in stats.layers]}")
    return stats


def clusters_bind(stats: ModelStats, clusters: int, spec: ModelSpec) -> ModelStats:
    """``stats``, once some checked layer has more weights per output channel than
    ``clusters``: a layer with fewer holds at most that many values anyway."""
    out_axis = 0 if stats.source == "tflite" else -1
    per_channel = [layer.total // layer.shape[out_axis] for layer in checked(stats, spec).checked()]
    assert max(per_channel) > clusters, (
        f"no checked layer has more than {clusters} weights per output channel ({spec}): "
        f"{per_channel}")
    return stats


def qat_kernel_sparsity(model, spec: ModelSpec) -> float:
    """Zeros over weights of the float kernels a QAT model trains (its Conv2D and Dense
    layers; not depthwise): a QAT model cannot be stripped back to plain Keras layers,
    so :func:`inspect_keras` does not read it."""
    from kws.compat import keras

    kernels = [weight.numpy() for layer in model.layers
               if isinstance(getattr(layer, "layer", None), (keras.layers.Conv2D, keras.layers.Dense))
               and not isinstance(layer.layer, keras.layers.DepthwiseConv2D)
               for weight in layer.weights if weight.name.endswith("/kernel:0")]
    assert kernels, f"no Conv2D or Dense kernel found in the QAT model ({spec})"
    return sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels)


def prune(sparsity: float) -> Prune:
    return Prune(sparsity=sparsity, finetune=FINETUNE)


def cluster(clusters: int) -> Cluster:
    # Per-tensor clustering, as the PC and PCQAT pathways run it.
    return Cluster(clusters=clusters, finetune=FINETUNE)


def qat() -> QAT:
    return QAT(finetune=FINETUNE)


def _inspect_clusters(source, clusters: int) -> ModelStats:
    """Inspected with TFMOT's skip rule for per-tensor clustering."""
    if isinstance(source, bytes):
        return inspect_tflite(source, clusters=clusters, cluster_per_channel=False)
    return inspect_keras(source, clusters=clusters, cluster_per_channel=False)


# ----- properties ------------------------------------------------------------------------
# Sparsity-preserving clustering keeps k values per tensor *including* zero: TFMOT
# initialises k - 1 centroids from the non-zero weights plus one zero centroid, and keeps
# that centroid at zero while it trains (PCQAT's quantiser likewise masks it), so no
# bound below needs a "+1" for the zero. int8 conversion maps each float value of a
# channel to one int8 value (after scaling the channel by its folded BatchNorm), so a
# channel never gains values, and an exact zero stays the zero point.


@given(case=PRUNED_AND_CLUSTERED, seed=SEEDS)
def test_sparsity_survives_sparsity_preserving_clustering(case, seed):
    spec, sparsity, clusters = case
    (pruned, clustered), _ = run_stages(spec, seed, [prune(sparsity), cluster(clusters)])
    before = checked(inspect_keras(pruned), spec).sparsity()
    assert before >= sparsity - SPARSITY_TOLERANCE, (
        f"pruning reached sparsity {before:.3f} < target {sparsity:.3f} ({spec})")
    after = checked(_inspect_clusters(clustered, clusters), spec).sparsity()
    assert after >= sparsity - SPARSITY_TOLERANCE, (
        f"sparsity {after:.3f} < target {sparsity:.3f} after sparsity-preserving clustering "
        f"to {clusters} clusters ({spec})")


@given(spec=MODEL_SPECS, sparsity=SPARSITY, seed=SEEDS)
def test_sparsity_survives_pqat(spec, sparsity, seed):
    (_, quantised), ctx = run_stages(spec, seed, [prune(sparsity), qat()])
    # PQAT's quantiser multiplies the kernel by its pruning mask, so pruned weights get no
    # gradient and the float kernels themselves stay zero.
    trained = qat_kernel_sparsity(quantised, spec)
    assert trained >= sparsity - SPARSITY_TOLERANCE, (
        f"sparsity {trained:.3f} < target {sparsity:.3f} in the PQAT model's kernels ({spec})")
    deployed = checked(inspect_tflite(int8(quantised, ctx)), spec).sparsity()
    assert deployed >= sparsity - SPARSITY_TOLERANCE, (
        f"sparsity {deployed:.3f} < target {sparsity:.3f} after PQAT, int8 ({spec})")


@given(case=PRUNED_AND_CLUSTERED, seed=SEEDS)
def test_sparsity_and_clusters_survive_pcqat(case, seed):
    spec, sparsity, clusters = case
    (*_, quantised), ctx = run_stages(spec, seed,
                                      [prune(sparsity), cluster(clusters), qat()])
    stats = clusters_bind(_inspect_clusters(int8(quantised, ctx), clusters), clusters, spec)
    assert stats.sparsity() >= sparsity - SPARSITY_TOLERANCE, (
        f"sparsity {stats.sparsity():.3f} < target {sparsity:.3f} after PCQAT, int8 ({spec})")
    assert stats.max_unique_per_channel() <= clusters, (
        f"{stats.max_unique_per_channel()} unique int8 values in a channel > {clusters} "
        f"clusters after PCQAT ({spec})")


@given(spec=MODEL_SPECS, clusters=CLUSTERS, seed=SEEDS)
def test_clusters_survive_cqat(spec, clusters, seed):
    (_, quantised), ctx = run_stages(spec, seed, [cluster(clusters), qat()])
    stats = clusters_bind(_inspect_clusters(int8(quantised, ctx), clusters), clusters, spec)
    assert stats.max_unique_per_channel() <= clusters, (
        f"{stats.max_unique_per_channel()} unique int8 values in a channel > {clusters} "
        f"clusters after CQAT ({spec})")


@given(case=PRUNED_AND_CLUSTERED, seed=SEEDS)
def test_zeros_and_clusters_survive_int8_conversion(case, seed):
    spec, sparsity, clusters = case
    (_, clustered), ctx = run_stages(spec, seed, [prune(sparsity), cluster(clusters)])
    float_stats = clusters_bind(_inspect_clusters(clustered, clusters), clusters, spec)
    int8_stats = clusters_bind(_inspect_clusters(int8(clustered, ctx), clusters), clusters,
                               spec)
    assert len(int8_stats.checked()) == len(float_stats.checked()), (
        f"{len(int8_stats.checked())} int8 layers checked, {len(float_stats.checked())} "
        f"Keras layers ({spec})")
    assert float_stats.max_unique_per_channel() <= clusters, (
        f"{float_stats.max_unique_per_channel()} unique values in a channel > {clusters} "
        f"clusters before conversion ({spec})")
    assert int8_stats.sparsity() >= float_stats.sparsity() - INT8_SPARSITY_TOLERANCE, (
        f"int8 sparsity {int8_stats.sparsity():.3f} < Keras sparsity "
        f"{float_stats.sparsity():.3f} ({spec}, {sparsity:.3f} pruned, {clusters} clusters)")
    assert int8_stats.max_unique_per_channel() <= clusters, (
        f"{int8_stats.max_unique_per_channel()} unique int8 values in a channel > {clusters} "
        f"clusters ({spec}, {sparsity:.3f} pruned)")
