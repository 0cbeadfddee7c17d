"""``kws train``: train (or fetch from the cache) a baseline, convert it and evaluate
each conversion with LiteRT, through the same cached steps as every case."""

from __future__ import annotations

import json
from pathlib import Path

from kws.cli import args
from kws.errors import KwsError


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="train (or fetch from the cache) a baseline DS-CNN")
    p.add_argument("--data-dir", type=args.input_folder, default=None,
                   help="Speech Commands folder (default: the synthetic default dataset)")
    p.add_argument("--model", type=args.model_source, default="ds-cnn-s",
                   help="ds-cnn-s|m|l (optionally -mlperf), package.module:factory, or a trained Keras model "
                        "file (.keras, .h5) or SavedModel folder, which is scored and converted, not retrained")
    p.add_argument("--alpha", type=args.width_multiplier, default=1.0, help="width multiplier in (0, 1]")
    p.add_argument("--frontend", type=args.frontend_spec, default="mlperf-tiny",
                   help="preset (mlperf-tiny, arm) or preset,key=value,... (default mlperf-tiny)")
    p.add_argument("--epochs", type=args.positive_int, default=30)
    p.add_argument("--batch-size", type=args.positive_int, default=100)
    p.add_argument("--learning-rates", type=args.learning_rates, default=None,
                   help="piecewise learning rates, stepping at equal shares of the epochs "
                        "(default 5e-4,1e-4,2e-5; the smoke and nightly tiers: 2e-3,4e-4,8e-5)")
    p.add_argument("--seed", type=args.seed, default=0)
    p.add_argument("--labels", type=args.label_list, default=None,
                   help="comma-separated label order (default: Arm's)")
    p.add_argument("--export", type=args.export_kinds, default="int8",
                   help="comma-separated TFLite kinds to convert and "
                   "evaluate with LiteRT: int8, float16, dynamic, float32, or none (default int8)")
    p.add_argument("--out", type=args.output_folder, default=None,
                   help="also copy the model here: a folder receives model.h5 and model_<kind>.tflite")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)


def _run(ns) -> int:
    """Every option was validated by argparse; what is left to check needs two options
    together (a model and its width), before any work all the same."""
    import time

    from kws.models import parse_model_spec
    from kws.pipeline import RunSpec
    from kws.train import TrainConfig

    try:
        spec = RunSpec(model=parse_model_spec(ns.model, alpha=ns.alpha), frontend=ns.frontend,
                       data_dir=ns.data_dir, data_config=args.labels_config(ns.labels),
                       baseline=TrainConfig(epochs=ns.epochs, batch_size=ns.batch_size, **(
                           {"learning_rates": ns.learning_rates} if ns.learning_rates else {})),
                       seed=ns.seed)
    except ValueError as exc:
        raise KwsError(str(exc)) from None
    from kws.baseline import MODEL_FILE
    from kws.export import TFLITE_FILE
    from kws.pipeline import CasePipeline

    pipeline = CasePipeline()
    start = time.perf_counter()
    data = pipeline.case_data(spec)
    artifact = pipeline.baseline(data, spec.model)
    trained_now = pipeline.cache.misses > 0
    scored = {k: pipeline.scored_export(artifact, k, data) for k in ns.export}
    exports = {k: art for k, (art, _, _) in scored.items()}
    accuracy = {k: measured for k, (_, measured, _) in scored.items()}
    seconds = time.perf_counter() - start
    meta = artifact.metadata
    record = {"model": spec.model.slug, "key": artifact.key, "path": str(artifact.path),
              "from_cache": not trained_now,
              "trained": meta.get("trained", True),
              "epochs_run": meta.get("epochs_run"), "best_epoch": meta.get("best_epoch"),
              "val_accuracy": meta.get("val_accuracy"),
              "test_accuracy": meta.get("test", {}).get("accuracy"),
              "train_seconds": meta["train_seconds"], "wall_seconds": seconds}
    for kind, art in exports.items():
        record[f"{kind}_test_accuracy"] = accuracy[kind].metrics["deployed_accuracy"]
        record[f"{kind}_test_accuracy_interval"] = accuracy[kind].metrics["intervals"]["deployed_accuracy"]
        record[f"{kind}_bytes"] = art.metadata["sizes"]["raw"]
        record[f"{kind}_gzip_bytes"] = art.metadata["sizes"]["gzip"]
    if ns.json:
        print(json.dumps(record))
    else:
        from tabulate import tabulate

        print(tabulate(list(record.items()), tablefmt="plain", floatfmt=".4f"))
    if ns.out:
        # After the record is printed: a copy that fails (a full disk) loses nothing the
        # cache does not keep, and the error names the file.
        _copy_out(ns.out, {MODEL_FILE: artifact.file(MODEL_FILE),
                           **{f"model_{kind}.tflite": art.file(TFLITE_FILE) for kind, art in exports.items()}})
    return 0


def _copy_out(folder: Path, files: dict[str, Path]) -> None:
    import shutil

    target = folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, source in files.items():
            target = folder / name
            shutil.copyfile(source, target)
    except OSError as exc:
        raise KwsError(f"--out: cannot write {target}: {exc.strerror or exc} "
                       f"(the model stays in the cache)") from None
