"""A user's own Keras model as a :class:`~kws.models.ModelSpec`: a model file (``.keras``,
``.h5``) or a SavedModel folder that carries Keras metadata, or ``package.module:factory``,
a function that builds one.

A model file carries trained weights, so it *is* the baseline: the tree starts from it
(its accuracy measured on the data first) and nothing retrains it. A factory is called as
``factory(input_shape=(frames, coefficients, 1), num_labels=12)`` and returns an untrained
tf_keras model, trained as the baseline like a DS-CNN.

What each technique may touch is asked of TFMOT itself (:func:`probe`): pruning, clustering
and quantisation-aware training each wrap a fresh copy of the model, and filter pruning
rewrites it; a technique that refuses is reported with the layers it cannot handle, and
the pathways that need it are not applicable to the model.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from kws.models import TECHNIQUES, ModelSpec

#: What ``--model`` accepts besides a DS-CNN name.
MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")
_FACTORY = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
WIDTH_REASON = "a fixed Keras model has no width multiplier (only a DS-CNN is rebuilt at a width)"


def is_factory(text: str) -> bool:
    return bool(_FACTORY.match(text)) and not Path(text).exists()


def check_source(text: str) -> str:
    """``text`` if it names a model file, a SavedModel folder or a factory; else a
    ``ValueError`` that says which of them it is not and why."""
    if is_factory(text):
        _factory_parts(text)  # its module must be found (it is imported when the model is built)
        return text
    path = Path(text)
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise ValueError(f"{path}: a folder given as a model must be a SavedModel (it has no saved_model.pb)")
        if not (path / "keras_metadata.pb").is_file():
            raise ValueError(f"{path}: this SavedModel carries no Keras metadata (keras_metadata.pb); save it "
                             "from tf_keras with model.save(folder), or as a .keras or .h5 file")
        return text
    if path.suffix.lower() not in MODEL_FILE_SUFFIXES:
        raise ValueError(f"{text!r} is not a DS-CNN name (ds-cnn-s|m|l, optionally -mlperf), a model file "
                         f"({', '.join(MODEL_FILE_SUFFIXES)}), a SavedModel folder or package.module:factory")
    if not path.is_file():
        raise ValueError(f"model file {path} does not exist")
    return text


def _file_digest(path: Path) -> str:
    """The SHA-256 of a file, or of a folder's files (each one's relative path and hash)."""
    from kws.store.fs import sha256_file

    if not path.is_dir():
        return sha256_file(path)
    files = sorted(p for p in path.rglob("*") if p.is_file())
    listing = "".join(f"{f.relative_to(path)}\0{sha256_file(f)}\n" for f in files)
    return hashlib.sha256(listing.encode()).hexdigest()


def _factory_parts(source: str):
    module, _, name = source.partition(":")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        spec, why = None, str(exc) or type(exc).__name__
    else:
        why = "no such module on the Python path"
    if spec is None or spec.origin is None:
        raise ValueError(f"{source}: cannot import {module} ({why}); a factory is package.module:function on "
                         "the Python path")
    return module, name, Path(spec.origin)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "model"


@dataclass(frozen=True)
class KerasModel(ModelSpec):
    """``source``: a model file or SavedModel folder (trained: the baseline), or
    ``package.module:factory`` (untrained: built for the front-end's input shape and the
    data's label count). ``input_shape`` and ``num_labels`` of a file are the file's own;
    fitting it to other ones fails, naming both."""

    source: str
    input_shape: tuple | None = None
    num_labels: int | None = None
    digest: str = field(default="", compare=False)

    def __post_init__(self):
        check_source(self.source)
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        if not self.digest:
            digest = _file_digest(Path(self.source)) if self.is_file else _file_digest(_factory_parts(self.source)[2])
            object.__setattr__(self, "digest", digest)

    # ----- identity -----------------------------------------------------------------

    @property
    def is_file(self) -> bool:
        return not is_factory(self.source)

    @property
    def trained(self) -> bool:  # type: ignore[override]
        return self.is_file

    @property
    def slug(self) -> str:
        if self.is_file:
            path = Path(self.source)
            name = path.name if path.is_dir() else path.stem
            # A file named only "model" (what `kws train --out` writes) says its folder's name.
            return _slug(f"{path.resolve().parent.name}-{name}" if name == "model" else name)
        return _slug(self.source.partition(":")[2])

    def params(self) -> dict:
        """The cache identity: a file's content hash (its shapes are its own), or the
        factory's name, its module's source hash and the shapes it is built for."""
        if self.is_file:
            return {"kind": "file", "name": Path(self.source).name, "sha256": self.digest}
        return {"kind": "factory", "factory": self.source, "module_sha256": self.digest,
                "input_shape": list(self.input_shape or ()), "num_labels": self.num_labels}

    # ----- fitting it to the front-end and the data ------------------------------------

    def with_input_shape(self, shape: tuple) -> KerasModel:
        shape = tuple(int(d) for d in shape)
        if self.is_file:
            own = self.shapes()[0]
            if own != shape:
                raise ValueError(f"model file {self.source} takes input {own}, but the front-end's features "
                                 f"are {shape} (frames x coefficients x 1); give the front-end it was trained on "
                                 f"(--frontend)")
        return replace(self, input_shape=shape)

    def with_labels(self, count: int) -> KerasModel:
        if self.is_file:
            own = self.shapes()[1]
            if own != count:
                raise ValueError(f"model file {self.source} has {own} outputs, but the data has {count} labels; "
                                 "give the words it was trained on (--labels, in its output order)")
        return replace(self, num_labels=count)

    # ----- building -------------------------------------------------------------------

    def build(self):
        """A fresh tf_keras model: the file's (with its weights) or the factory's."""
        from kws.compat import keras

        if self.is_file:
            from kws.models import load_model

            try:
                model = load_model(self.source)
            except (ValueError, OSError, TypeError, ImportError) as exc:
                raise ValueError(f"model file {self.source} does not load as a tf_keras model: "
                                 f"{str(exc).splitlines()[0]}") from None
            what = f"model file {self.source}"
        else:
            module, name, _ = _factory_parts(self.source)
            factory = getattr(importlib.import_module(module), name, None)
            if not callable(factory):
                raise ValueError(f"--model {self.source}: {module} has no function {name}")
            shape = self.input_shape or (49, 10, 1)
            model = factory(input_shape=shape, num_labels=self.num_labels or 12)
            what = f"factory {self.source}"
        if not isinstance(model, keras.Model):
            raise ValueError(f"{what} gave a {type(model).__module__}.{type(model).__name__}, not a tf_keras "
                             "Model (TFMOT wraps tf_keras models only: build it with `import tf_keras as keras`)")
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ValueError(f"{what}: a keyword-spotting model takes one input and gives one output; this one "
                             f"has {len(model.inputs)} and {len(model.outputs)}")
        if len(model.output_shape) != 2:
            raise ValueError(f"{what}: the output must be (batch, labels), got {model.output_shape}")
        if not self.is_file:
            got = (tuple(model.input_shape[1:]), model.output_shape[-1])
            want = (tuple(self.input_shape or (49, 10, 1)), self.num_labels or 12)
            if got != want:
                raise ValueError(f"factory {self.source} built a model with input {got[0]} and {got[1]} outputs; "
                                 f"it was asked for input {want[0]} and {want[1]} outputs")
        return model

    # ----- what the techniques may touch ----------------------------------------------

    def shapes(self) -> tuple[tuple[int, ...], int]:
        """``(input shape, outputs)`` of the built model (a file is loaded once per
        process for them; nothing is wrapped)."""
        key = ("shapes", self.digest) if self.is_file else ("shapes", self.source, self.digest, self.input_shape,
                                                              self.num_labels)
        if key not in _FACTS:
            model = self.build()
            _FACTS[key] = (tuple(int(d) for d in model.input_shape[1:]), int(model.output_shape[-1]))
        return _FACTS[key]

    def facts(self) -> Facts:
        return _facts(self)

    def unsupported(self, technique: str) -> str | None:
        return self.facts().unsupported.get(technique)

    def filter_groups(self) -> tuple[str, ...]:
        return self.facts().filter_groups

    def macs(self) -> int:
        return self.facts().macs

    def min_weights_per_channel(self) -> tuple[str, int]:
        found = self.facts().min_weights
        if found is None:
            raise ValueError(f"{self.slug} has no Conv2D or Dense layer to cluster")
        return found


@dataclass(frozen=True)
class Facts:
    """What :func:`probe` found of a built model."""

    input_shape: tuple
    outputs: int
    unsupported: dict  # technique -> why it cannot touch the model
    filter_groups: tuple[str, ...]
    min_weights: tuple[str, int] | None
    macs: int


_FACTS: dict[tuple, Facts | tuple] = {}


def _facts(spec: KerasModel) -> Facts:
    """:func:`probe` once per process per model: a file's facts are its content's, a
    factory's those of the shapes it is built for."""
    key = (spec.digest,) if spec.is_file else (spec.source, spec.digest, spec.input_shape, spec.num_labels)
    if key not in _FACTS:
        _FACTS[key] = probe(spec.build, scalable=False)
    return _FACTS[key]


def _layers_named(layers) -> str:
    return ", ".join(f"{layer.name} ({type(layer).__name__})" for layer in layers)


def probe(build, *, scalable: bool) -> Facts:
    """Ask TFMOT and the filter-pruning rewrite what they make of a fresh model from
    ``build()``: each technique wraps its own copy, runs a batch through it and strips
    it, as a stage would."""
    from kws.compat import tf

    tf_log = tf.get_logger()
    level = tf_log.level
    tf_log.setLevel("ERROR")  # TF warns of compile metrics of the copies it saves; none is trained
    try:
        return _probe(build, scalable)
    finally:
        tf_log.setLevel(level)


def _probe(build, scalable: bool) -> Facts:
    import tempfile

    import numpy as np
    from tensorflow_model_optimization.python.core.clustering.keras import clustering_registry
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as q8,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    from kws.compat import keras, tfmot
    from kws.models import count_macs, load_model, save_model
    from kws.pathways import structured

    with tempfile.TemporaryDirectory(prefix="kws-probe-") as tmp:
        # Every attempt starts from the model as the stages see it: stored and loaded again.
        stored = Path(tmp) / "model.h5"
        save_model(build(), stored)
        model = load_model(stored)
        batch = np.zeros((2, *model.input_shape[1:]), np.float32)
        layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
        unsupported: dict[str, str] = {}

        def attempt(technique: str, wrap, strip, supports, library: str):
            try:
                wrapped = wrap(load_model(stored))
                wrapped(batch)
                strip(wrapped)(batch)
            except Exception as exc:  # noqa: BLE001 - TFMOT raises ValueError, TypeError, RuntimeError
                refused = [layer for layer in layers if not supports(layer)]
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                unsupported[technique] = (f"{library} cannot wrap layer(s) {_layers_named(refused)}" if refused
                                          else f"{library} fails on it: {first[:300]}")

        def prunable(layer):
            return (prune_registry.PruneRegistry.supports(layer) or hasattr(layer, "get_prunable_weights")
                    or isinstance(layer, tfmot.sparsity.keras.PrunableLayer))

        attempt("prune", tfmot.sparsity.keras.prune_low_magnitude, tfmot.sparsity.keras.strip_pruning,
                prunable, "TFMOT pruning")
        ci = tfmot.clustering.keras.CentroidInitialization.LINEAR
        attempt("cluster", lambda m: tfmot.clustering.keras.cluster_weights(m, number_of_clusters=4,
                                                                            cluster_centroids_init=ci),
                tfmot.clustering.keras.strip_clustering, clustering_registry.ClusteringRegistry.supports,
                "TFMOT clustering")
        registry = q8.Default8BitQuantizeRegistry()
        attempt("qat", tfmot.quantization.keras.quantize_model, lambda m: m, registry.supports,
                "TFMOT quantisation-aware training")

    groups: tuple[str, ...] = ()
    try:
        groups = tuple(layer.name for layer in structured.chain(model) if structured.prunable(layer))
        if not groups:
            raise ValueError("it has no Conv2D layer whose filters could be removed")
        structured.shrink(model, structured.plan_filters(model, 0.5))
    except ValueError as exc:
        unsupported["filter"] = f"L1 filter pruning cannot rewrite it: {exc}"
        groups = ()
    if not scalable:
        unsupported["width"] = WIDTH_REASON
    assert set(unsupported) <= set(TECHNIQUES)

    weights = []
    for layer in layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            continue  # TFMOT clusters its 3x3 kernels per tensor; the limit is the others'
        if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Dense)):
            kernel = layer.get_weights()[0]
            weights.append((int(kernel.size // kernel.shape[-1]), layer.name))
    smallest = min(weights, key=lambda w: w[0]) if weights else None  # the first in chain order
    return Facts(input_shape=tuple(int(d) for d in model.input_shape[1:]), outputs=int(model.output_shape[-1]),
                 unsupported=unsupported, filter_groups=groups,
                 min_weights=(smallest[1], smallest[0]) if smallest else None, macs=count_macs(model))
