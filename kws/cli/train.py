"""``kws train``: train (or fetch from the cache) a baseline, convert it and evaluate
each conversion with LiteRT, through the same cached steps as every case."""

from __future__ import annotations

import json
from pathlib import Path

from kws.errors import KwsError


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train (or fetch from the cache) a baseline DS-CNN")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="Speech Commands folder (default: the synthetic default dataset)")
    p.add_argument("--model", default="ds-cnn-s", help="ds-cnn-s|m|l, optionally -mlperf")
    p.add_argument("--alpha", type=float, default=1.0, help="width multiplier in (0, 1]")
    p.add_argument("--frontend", default="mlperf-tiny")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--labels", default=None, help="comma-separated label order (default: Arm's)")
    p.add_argument("--export", default="int8", help="comma-separated TFLite kinds to convert and "
                   "evaluate with LiteRT: int8, float16, dynamic, float32, or none (default int8)")
    p.add_argument("--out", type=Path, default=None,
                   help="also copy the model here: a folder receives model.h5 and model_<kind>.tflite")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(args) -> int:
    import shutil
    import time

    from kws.cli.args import labels_config
    from kws.export import KINDS, TFLITE_FILE
    from kws.models import parse_model
    from kws.pipeline import RunSpec
    from kws.train import TrainConfig

    kinds = [] if args.export == "none" else args.export.split(",")
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise KwsError(f"--export: unknown kind(s) {', '.join(bad)}; choose from {', '.join(KINDS)} or none")
    try:
        spec = RunSpec(model=parse_model(args.model, alpha=args.alpha), frontend=args.frontend,
                       data_dir=args.data_dir, data_config=labels_config(args.labels),
                       baseline=TrainConfig(epochs=args.epochs, batch_size=args.batch_size), seed=args.seed)
    except ValueError as exc:
        raise KwsError(str(exc)) from None
    from kws.baseline import MODEL_FILE
    from kws.pipeline import CasePipeline
    from kws.pipeline.measure import MEASUREMENTS, run_measurement
    from kws.pipeline.steps import CaseData, baseline_step, export_step

    pipeline = CasePipeline()
    cache, start = pipeline.cache, time.perf_counter()
    ds = pipeline.dataset(spec.data_dir, spec.data_config)
    train = spec.baseline_train
    artifact = baseline_step(ds, spec.frontend, spec.model, train, cache).run(cache)
    trained_now = cache.misses > 0
    data = CaseData(ds, spec.frontend, train, cache)
    exports = {k: export_step(artifact, k, data).run(cache) for k in kinds}
    accuracy = {k: run_measurement(MEASUREMENTS["accuracy"], pipeline.subject(None, None, [], art, artifact, data))[0]
                for k, art in exports.items()}
    seconds = time.perf_counter() - start
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(artifact.file(MODEL_FILE), args.out / MODEL_FILE)
        for kind, art in exports.items():
            shutil.copyfile(art.file(TFLITE_FILE), args.out / f"model_{kind}.tflite")
    meta = artifact.metadata
    record = {"model": spec.model.slug, "key": artifact.key, "path": str(artifact.path),
              "from_cache": not trained_now,
              "epochs_run": meta["epochs_run"], "best_epoch": meta["best_epoch"],
              "val_accuracy": meta["val_accuracy"],
              "test_accuracy": meta.get("test", {}).get("accuracy"),
              "train_seconds": meta["train_seconds"], "wall_seconds": seconds}
    for kind, art in exports.items():
        record[f"{kind}_test_accuracy"] = accuracy[kind]["deployed_accuracy"]
        record[f"{kind}_bytes"] = art.metadata["sizes"]["raw"]
        record[f"{kind}_gzip_bytes"] = art.metadata["sizes"]["gzip"]
    if args.json:
        print(json.dumps(record))
        return 0
    from tabulate import tabulate

    print(tabulate(list(record.items()), tablefmt="plain", floatfmt=".4f"))
    return 0
