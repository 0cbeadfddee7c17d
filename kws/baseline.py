"""The baseline stage: a DS-CNN trained from scratch, cached in the artifact cache.

Its key holds the data fingerprint (every clip's path, size and mtime, per split), the
front-end, the model and training configs and the seed, so a warm run reads no audio,
extracts nothing and trains nothing. Every stage of a pathway descends from this one.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from kws import models
from kws.data import DataConfig, SpeechCommands
from kws.models import ModelConfig, save_model
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


def material(ds: SpeechCommands, frontend, model: ModelConfig, train: TrainConfig) -> dict:
    """What the baseline depends on (``frontend``: a parsed front-end)."""
    return {
        "data": {split: ds.fingerprint(split) for split in ("training", "validation", "testing")},
        "data_config": ds.config,
        "frontend": frontend.feature_params(),
        "model": model.params(),
        "train": train.params(),
    }


def train_baseline(data=None, *, model: ModelConfig = ModelConfig(),
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


def fit_model(model_config: ModelConfig, ds: SpeechCommands) -> ModelConfig:
    """The model config with as many outputs as the data has labels."""
    if model_config.num_labels != len(ds.config.labels):
        return replace(model_config, num_labels=len(ds.config.labels))
    return model_config


def build(folder: Path, ds: SpeechCommands, frontend, model_config: ModelConfig, train: TrainConfig,
          cache=None) -> dict:
    """Train the baseline into ``folder``; metadata: the training result and the float
    test accuracy."""
    from kws.evaluate import evaluate_keras
    from kws.models import build_model
    from kws.train import fit, prepare_data, seed_everything

    data = prepare_data(ds, frontend, train, cache=cache)
    seed_everything(train.seed)
    model = build_model(model_config)
    result = fit(model, data, train, stage=f"{STAGE} {model_config.slug}")
    test, test_labels = ds.features("testing", frontend, cache=cache)
    if len(test):
        result["test"] = evaluate_keras(model, test, test_labels, ds.config.labels).to_dict()
    save_model(model, folder / MODEL_FILE)
    (folder / HISTORY_FILE).write_text(json.dumps(result["history"], indent=1))
    return result


def load_model(artifact):
    """A fresh Keras model from a stored artifact (never a shared instance)."""
    return models.load_model(artifact.file(MODEL_FILE))
