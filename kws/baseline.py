"""The baseline stage: the model trained from scratch (or a trained model file, adopted
as it is), cached in the artifact cache.

Its key holds the data fingerprint (every clip's path, size and mtime, per split), the
front-end, the model and training configs and the seed, so a warm run reads no audio,
extracts nothing and trains nothing. Every stage of a pathway descends from this one.
"""

from __future__ import annotations

import json
from pathlib import Path

from kws import models
from kws.data import DataConfig, SpeechCommands
from kws.errors import KwsError
from kws.models import ModelConfig, ModelSpec, save_model
from kws.train import TrainConfig

STAGE = "baseline"
MODEL_FILE = "model.h5"
HISTORY_FILE = "history.json"


def resolve_data_dir(data_dir: Path | str | None) -> Path:
    """``data_dir``, or the synthetic default dataset (built once, then cached)."""
    if data_dir is not None:
        return Path(data_dir)
    from kws.synth import default_dataset

    return default_dataset()


def material(ds: SpeechCommands, frontend, model: ModelSpec, train: TrainConfig) -> dict:
    """What the baseline depends on (``frontend``: a parsed front-end). A trained model
    file is the baseline itself: no training recipe plays a part."""
    found = {
        "data": {split: ds.fingerprint(split) for split in ("training", "validation", "testing")},
        "data_config": ds.config,
        "frontend": frontend.feature_params(),
        "model": model.params(),
    }
    return found if model.trained else {**found, "train": train.params()}


def train_baseline(data=None, *, model: ModelSpec = ModelConfig(),
                   train: TrainConfig = TrainConfig(), frontend="mlperf-tiny",
                   data_config: DataConfig = DataConfig(), cache=None):
    """The trained baseline's artifact (``model.h5``, ``history.json``; metadata with the
    history, validation and float test accuracy, training time), built on a miss.

    ``data``: a data folder (default: the synthetic default dataset), or an open
    :class:`SpeechCommands` (then ``data_config`` is its own), so a caller that already
    fingerprinted it does not stat every file again."""
    from kws.cache import ArtifactCache
    from kws.features import get_frontend
    from kws.pipeline.steps import baseline_step

    cache = cache if cache is not None else ArtifactCache()
    ds = data if isinstance(data, SpeechCommands) else SpeechCommands(resolve_data_dir(data), data_config)
    return baseline_step(ds, get_frontend(frontend), model, train, cache).run(cache)


def fit_model(model_config: ModelSpec, ds: SpeechCommands) -> ModelSpec:
    """The model with as many outputs as the data has labels (a model file must have
    them already; the error names both counts)."""
    if model_config.num_labels != len(ds.config.labels):
        try:
            return model_config.with_labels(len(ds.config.labels))
        except ValueError as exc:
            raise KwsError(f"{exc} (the data's labels: {', '.join(ds.config.labels)})") from None
    return model_config


def build(folder: Path, ds: SpeechCommands, frontend, model_config: ModelSpec, train: TrainConfig,
          cache=None) -> dict:
    """Train the baseline into ``folder``; metadata: the training result and the float
    test accuracy. A trained model file is stored as it is, after it is scored."""
    from kws.evaluate import evaluate_keras
    from kws.train import fit, prepare_data, seed_everything

    if model_config.trained:
        return adopt(folder, ds, frontend, model_config, cache)
    data = prepare_data(ds, frontend, train, cache=cache)
    seed_everything(train.seed)
    model = model_config.build()
    result = fit(model, data, train, stage=f"{STAGE} {model_config.slug}")
    test, test_labels = ds.features("testing", frontend, cache=cache)
    if len(test):
        result["test"] = evaluate_keras(model, test, test_labels, ds.config.labels).to_dict()
    save_model(model, folder / MODEL_FILE)
    (folder / HISTORY_FILE).write_text(json.dumps(result["history"], indent=1))
    return result


def adopt(folder: Path, ds: SpeechCommands, frontend, model_config: ModelSpec, cache=None) -> dict:
    """A trained model file as the baseline: scored on the test split first, its output
    order checked against the data's labels, stored unchanged (nothing retrains it)."""
    from kws.evaluate import evaluate_keras

    model = model_config.build()
    test, test_labels = ds.features("testing", frontend, cache=cache)
    meta = {"train_seconds": 0.0, "trained": False, "source": str(model_config.source), "history": {}}
    if len(test):
        meta["test"] = evaluate_keras(model, test, test_labels, ds.config.labels).to_dict()
        check_label_order(meta["test"]["confusion"], ds.config.labels, model_config.source)
    save_model(model, folder / MODEL_FILE)
    (folder / HISTORY_FILE).write_text("{}")
    return meta


#: How much better (in accuracy) another order of the outputs must score before a trained
#: model is taken to be ordered differently from the data's labels.
LABEL_ORDER_MARGIN = 0.2


def check_label_order(confusion, names: tuple[str, ...], source) -> None:
    """Refuse a trained model whose outputs evidently follow another label order: when
    matching outputs to labels by the test ``confusion`` matrix (rows: true labels,
    columns: outputs) scores at least :data:`LABEL_ORDER_MARGIN` better than the given
    order, the error names that order."""
    import numpy as np
    from scipy.optimize import linear_sum_assignment

    confusion = np.asarray(confusion, dtype=np.int64)
    n, total = len(names), max(int(confusion.sum()), 1)
    rows, cols = linear_sum_assignment(-confusion)
    best, given = confusion[rows, cols].sum() / total, np.trace(confusion) / total
    if best - given >= LABEL_ORDER_MARGIN:
        order = [""] * n
        for label, output in zip(rows, cols):
            order[output] = names[label]
        raise KwsError(f"model file {source}: its outputs look ordered differently from the data's labels "
                       f"({given:.1%} accuracy in the order {','.join(names)}, {best:.1%} in the order "
                       f"{','.join(order)}); give --labels in the model's output order")


def load_model(artifact):
    """A fresh Keras model from a stored artifact (never a shared instance)."""
    return models.load_model(artifact.file(MODEL_FILE))
