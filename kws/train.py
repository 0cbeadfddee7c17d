"""Baseline training: the reference recipe (Adam, batch 100, piecewise learning rate,
class weights, early stopping on validation accuracy with the best weights restored),
seeded end to end, fed by a ``tf.data`` pipeline over cached features.

Augmentation follows the recipes (background noise and time shift on the waveform) but
is computed once per *augmentation version* and cached with the features: epoch ``e``
trains on version ``e % augmentation_versions``. Extracting features afresh every epoch
would share the two cores with training and cost about a fifth of the training rate; a
pool of cached versions keeps the pipeline off the critical path and lets every later run
(another model, a fine-tuning stage) reuse the same augmented data.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from kws.data import Augmentation, SpeechCommands
from kws.data.augment import AUGMENT_VERSION, augment
from kws.data.dataset import SILENCE
from kws.errors import KwsError
from kws.progress import progress

#: Batches per call into the compiled training step (the same weights whatever the
#: number). 16 measured no faster on 2 CPU cores: 0.94x and 0.88x one call per batch in
#: two clean-clone CI runs (bench/test_bench_train.py, median of 5 interleaved fits),
#: 1.0-1.3x in isolated runs; a DS-CNN-S step at batch 100 already keeps ~1.7 cores busy.
STEPS_PER_EXECUTION = 1


class TrainingDivergedError(KwsError, FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """``lr_boundaries``: epochs at which the learning rate steps to the next value
    (default: thirds of ``epochs``, as MLPerf Tiny's 12/24 of 36)."""

    epochs: int = 30
    batch_size: int = 100
    learning_rates: tuple[float, ...] = (5e-4, 1e-4, 2e-5)
    lr_boundaries: tuple[int, ...] | None = None
    early_stopping_patience: int | None = 10
    class_weights: bool = True
    augmentation: Augmentation | None = field(default_factory=Augmentation)
    augmentation_versions: int = 8
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "learning_rates", tuple(self.learning_rates))
        if self.lr_boundaries is not None:
            object.__setattr__(self, "lr_boundaries", tuple(self.lr_boundaries))
        for name in ("epochs", "batch_size", "augmentation_versions"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rates or min(self.learning_rates) <= 0:
            raise ValueError(f"learning_rates must be positive, got {self.learning_rates}")
        if len(self.boundaries) != len(self.learning_rates) - 1:
            raise ValueError(f"lr_boundaries {self.lr_boundaries} needs one entry fewer than "
                             f"learning_rates {self.learning_rates}")
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ValueError(f"early_stopping_patience must be >= 1 or None, got {self.early_stopping_patience}")

    @property
    def boundaries(self) -> tuple[int, ...]:
        if self.lr_boundaries is not None:
            return self.lr_boundaries
        steps = len(self.learning_rates)
        return tuple(round(self.epochs * i / steps) for i in range(1, steps))

    def learning_rate(self, epoch: int) -> float:
        return self.learning_rates[sum(epoch >= b for b in self.boundaries)]

    def params(self) -> dict:
        return asdict(self)


# ----- data -------------------------------------------------------------------------


@dataclass
class TrainingData:
    """Features ready for training: ``train`` is ``[versions, N, frames, coeffs]``."""

    train: np.ndarray
    train_labels: np.ndarray
    val: np.ndarray
    val_labels: np.ndarray
    fingerprint: dict

    @property
    def num_labels(self) -> int:
        return int(max(self.train_labels.max(), self.val_labels.max()) + 1)


def prepare_data(ds: SpeechCommands, frontend, config: TrainConfig, *, cache=None) -> TrainingData:
    """Clean validation features and ``augmentation_versions`` augmented copies of the
    training features, all through the feature cache (built once, then read).

    ``cache``: the run's :class:`~kws.cache.ArtifactCache` (its feature cache is used),
    a :class:`~kws.features.FeatureCache`, or None for the default store's."""
    from kws.features import extract, feature_cache, get_frontend

    cache = feature_cache(cache)
    frontend = get_frontend(frontend)
    clean, labels = ds.features("training", frontend, cache=cache)
    val, val_labels = ds.features("validation", frontend, cache=cache)
    if len(val) == 0:
        raise KwsError(f"{ds.root}: the validation split is empty; early stopping needs it")
    versions = [clean]
    if config.augmentation is not None:
        waves: list[np.ndarray] = []

        def augmented(version: int) -> Callable[[], np.ndarray]:
            def compute() -> np.ndarray:
                if not waves:
                    waves.append(ds.load("training")[0])
                rng = np.random.default_rng([config.seed, version])
                silence = labels == ds.config.label_index(SILENCE)
                fg, bg = augment(waves[0], silence, ds.background_noise, config.augmentation, rng)
                return extract(fg, frontend, background=bg)
            return compute

        fingerprint = ds.fingerprint("training")
        versions = [
            cache.get_or_compute(fingerprint, frontend, augmented(v), extra={
                "augmentation": asdict(config.augmentation), "augment_version": AUGMENT_VERSION,
                "seed": config.seed, "version": v})
            for v in progress(range(config.augmentation_versions), desc="augment", unit="version", leave=False)
        ]
    return TrainingData(np.stack(versions), labels, val, val_labels, fingerprint={
        "training": ds.fingerprint("training"), "validation": ds.fingerprint("validation"),
        "frontend": frontend.feature_params()})


def make_dataset(train: np.ndarray, labels: np.ndarray, batch_size: int, epochs: int, seed: int):
    """A ``tf.data`` pipeline over all epochs: each epoch its own seeded order over its
    augmentation version, gathered in batches, prefetched. Returns (dataset, steps/epoch)."""
    from kws.compat import tf

    versions, n = train.shape[:2]
    order = np.stack([np.random.default_rng([seed, 1, e]).permutation(n) for e in range(epochs)])
    features = tf.constant(train[..., None])
    targets = tf.constant(labels)
    order_t = tf.constant(order)

    def epoch(e):
        version = features[e % versions]
        batches = tf.data.Dataset.from_tensor_slices(tf.gather(order_t, e)).batch(batch_size)
        return batches.map(lambda i: (tf.gather(version, i), tf.gather(targets, i)))

    ds = tf.data.Dataset.range(epochs).flat_map(epoch).prefetch(tf.data.AUTOTUNE)
    return ds, math.ceil(n / batch_size)


def class_weights(labels: np.ndarray, num_labels: int) -> dict[int, float]:
    """Inverse-frequency weights normalised to mean 1 over the labels present."""
    counts = np.bincount(labels, minlength=num_labels).astype(float)
    weights = np.where(counts > 0, counts.sum() / (np.count_nonzero(counts) * np.maximum(counts, 1)), 0.0)
    return {i: float(w) for i, w in enumerate(weights)}


# ----- training ---------------------------------------------------------------------


def _callbacks(config: TrainConfig, stage: str):
    from kws.compat import keras

    class NanGuard(keras.callbacks.Callback):
        """Stops at the end of the first epoch whose mean loss is not finite (one
        non-finite batch makes the mean so) and remembers where, to raise clearly. It
        reads the loss once per epoch: a per-batch hook would make Keras hand back every
        batch's logs and end each multi-step execution early."""

        diverged_at: tuple[int, float] | None = None

        def on_epoch_end(self, epoch, logs=None):
            loss = (logs or {}).get("loss")
            if loss is not None and not math.isfinite(loss):
                self.diverged_at = (epoch, loss)
                self.model.stop_training = True

    class EpochProgress(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = progress(total=config.epochs, desc=stage, unit="epoch", leave=False)

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            self.bar.set_postfix(loss=f"{logs.get('loss', float('nan')):.3f}",
                                 acc=f"{logs.get('accuracy', 0):.3f}",
                                 val=f"{logs.get('val_accuracy', 0):.3f}")
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    guard = NanGuard()
    callbacks = [guard, EpochProgress(),
                 keras.callbacks.LearningRateScheduler(config.learning_rate)]
    if config.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", patience=config.early_stopping_patience,
            restore_best_weights=True,
            # BatchNorm's moving statistics lag for the first epochs of a fresh model, so
            # validation accuracy sits at chance; don't let that count against patience.
            start_from_epoch=min(config.epochs // 3, 10)))
    return guard, callbacks


def wants_every_batch(callback) -> bool:
    """Whether ``callback`` overrides a per-batch training hook (TFMOT's
    ``UpdatePruningStep`` does: it advances the pruning step once per batch)."""
    from kws.compat import keras

    base = keras.callbacks.Callback
    return any(getattr(type(callback), hook) is not getattr(base, hook)
               for hook in ("on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end"))


def fit(model, data: TrainingData, config: TrainConfig, *, stage: str = "train",
        compile_model: bool = True, callbacks: tuple = (),
        steps_per_execution: int = STEPS_PER_EXECUTION) -> dict:
    """Train ``model`` in place; returns the epoch history and timing. Raises
    :class:`TrainingDivergedError` if the loss goes NaN.

    ``steps_per_execution`` batches run per call into the compiled training step (the
    same batches, in the same order, so the same weights); it falls back to 1 when a
    callback needs to see every batch."""
    from kws.compat import keras

    guard, own = _callbacks(config, stage)
    callbacks = [*own, *callbacks]
    if any(wants_every_batch(cb) for cb in callbacks):
        steps_per_execution = 1
    if compile_model:
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rates[0]),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], steps_per_execution=steps_per_execution)
    dataset, steps = make_dataset(data.train, data.train_labels, config.batch_size,
                                  config.epochs, config.seed)
    weights = class_weights(data.train_labels, model.output_shape[-1]) if config.class_weights else None
    start = time.perf_counter()
    history = model.fit(dataset, epochs=config.epochs, steps_per_epoch=steps,
                        validation_data=(data.val[..., None], data.val_labels),
                        validation_batch_size=500, class_weight=weights,
                        callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    if guard.diverged_at is not None:
        epoch, loss = guard.diverged_at
        raise TrainingDivergedError(
            f"{stage}: the training loss became {loss} in epoch {epoch + 1} "
            f"(learning rate {config.learning_rate(epoch)}); no model was stored")
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    best = int(np.argmax(hist["val_accuracy"]))
    return {"history": hist, "epochs_run": len(hist["loss"]), "best_epoch": best + 1,
            "val_accuracy": hist["val_accuracy"][best], "train_seconds": seconds,
            "samples_per_s": len(data.train_labels) * len(hist["loss"]) / seconds}


def seed_everything(seed: int) -> None:
    """Python, NumPy and TensorFlow seeds, and deterministic TensorFlow kernels."""
    from kws.compat import keras, tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
