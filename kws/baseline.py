"""The baseline stage: a DS-CNN trained from scratch, cached in the artifact cache.

Its key holds the data fingerprint (every clip's path, size and mtime, per split), the
front-end, the model and training configs and the seed, so a warm run reads no audio,
extracts nothing and trains nothing. Every stage of a pathway descends from this one.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from kws import models
from kws.data import DataConfig, SpeechCommands
from kws.errors import KwsError
from kws.models import ModelConfig, parse_model, save_model
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
    from kws.features import get_frontend

    return {
        "data": {split: ds.fingerprint(split) for split in ("training", "validation", "testing")},
        "data_config": ds.config,
        "frontend": get_frontend(frontend).feature_params(),
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

    cache = cache or ArtifactCache()
    if isinstance(data, SpeechCommands):
        ds, data_config = data, data.config
    else:
        ds = SpeechCommands(resolve_data_dir(data), data_config)
    if model.num_labels != len(data_config.labels):
        model = replace(model, num_labels=len(data_config.labels))
    return cache.get_or_build(STAGE, material(ds, frontend, model, train),
                              lambda folder: _build(folder, ds, frontend, model, train))


def _build(folder: Path, ds: SpeechCommands, frontend, model_config: ModelConfig,
           train: TrainConfig) -> dict:
    from kws.evaluate import evaluate_keras
    from kws.models import build_model
    from kws.train import fit, prepare_data, seed_everything

    data = prepare_data(ds, frontend, train)
    seed_everything(train.seed)
    model = build_model(model_config)
    result = fit(model, data, train, stage=f"{STAGE} {model_config.slug}")
    test, test_labels = ds.features("testing", frontend)
    if len(test):
        result["test"] = evaluate_keras(model, test, test_labels, ds.config.labels).to_dict()
    save_model(model, folder / MODEL_FILE)
    (folder / HISTORY_FILE).write_text(json.dumps(result["history"], indent=1))
    return result


def load_model(artifact):
    """A fresh Keras model from a stored artifact (never a shared instance)."""
    return models.load_model(artifact.file(MODEL_FILE))


# ----- CLI ----------------------------------------------------------------------------


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train (or fetch from the cache) a baseline DS-CNN")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="Speech Commands folder (default: the synthetic default dataset)")
    p.add_argument("--model", default="ds-cnn-s", help="ds-cnn-s|m|l, optionally -mlperf")
    p.add_argument("--alpha", type=float, default=1.0, help="width multiplier in (0, 1]")
    p.add_argument("--frontend", default="mlperf-tiny")
    p.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    p.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", default=None, help="comma-separated label order (default: Arm's)")
    p.add_argument("--export", default="int8", help="comma-separated TFLite kinds to convert and "
                   "evaluate with LiteRT: int8, float16, dynamic, float32, or none (default int8)")
    p.add_argument("--out", type=Path, default=None,
                   help="also copy the model here: a folder receives model.h5 and model_<kind>.tflite")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import shutil
    import time

    from kws.export import KINDS

    kinds = [] if args.export == "none" else args.export.split(",")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise KwsError(f"--export: unknown kind(s) {', '.join(bad)}; choose from {', '.join(KINDS)} or none")
    from kws.data.cli import labels_config

    data_config = labels_config(args.labels)
    try:
        model = parse_model(args.model, alpha=args.alpha)
        train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    except ValueError as exc:
        raise KwsError(str(exc)) from None
    from kws.cache import ArtifactCache

    cache = ArtifactCache()
    start = time.perf_counter()
    ds = SpeechCommands(resolve_data_dir(args.data_dir), data_config)
    artifact = train_baseline(ds, model=model, train=train, frontend=args.frontend, cache=cache)
    trained_now = cache.misses > 0
    from kws.export import TFLITE_FILE, export_stage

    exports = {k: export_stage(artifact, load_model, k, ds, args.frontend, cache=cache) for k in kinds}
    seconds = time.perf_counter() - start
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact.file(MODEL_FILE), args.out / MODEL_FILE)
        for kind, art in exports.items():
            shutil.copyfile(art.file(TFLITE_FILE), args.out / f"model_{kind}.tflite")
    meta = artifact.metadata
    record = {"model": model.slug, "key": artifact.key, "path": str(artifact.path),
              "from_cache": not trained_now,
              "epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"],
              "val_accuracy": meta["val_accuracy"],
              "test_accuracy": meta.get("test", {}).get("accuracy"),
              "train_seconds": meta["train_seconds"], "wall_seconds": seconds}
    for kind, art in exports.items():
        record[f"{kind}_test_accuracy"] = art.metadata.get("test", {}).get("accuracy")
        record[f"{kind}_bytes"] = art.metadata["sizes"]["raw"]
        record[f"{kind}_gzip_bytes"] = art.metadata["sizes"]["gzip"]
    if args.json:
        print(json.dumps(record))
        return 0
    from tabulate import tabulate

    print(tabulate([(k, v) for k, v in record.items()], tablefmt="plain", floatfmt=".4f"))
    return 0
