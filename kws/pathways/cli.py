"""``kws pathways`` lists the deployment tree; ``kws run PATHWAY`` runs (or fetches) one."""

from __future__ import annotations

import json
from pathlib import Path

from kws.errors import KwsError
from kws.pathways.prune import SCHEDULES
from kws.pathways.registry import HYPERPARAMETERS, PATHWAYS, PathwayParams, get_pathway, make_params


def register(subparsers) -> None:
    ls = subparsers.add_parser("pathways", help="list the pathways and the hyperparameters each takes")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    run = subparsers.add_parser("run", help="run (or fetch from the cache) one pathway")
    run.add_argument("pathway", help=f"one of: {', '.join(PATHWAYS)}")
    run.add_argument("--sparsity", type=float, default=None, help="fraction of zero weights, in (0, 1)")
    run.add_argument("--clusters", type=int, default=None, help="clusters per tensor (or per channel)")
    run.add_argument("--schedule", choices=SCHEDULES, default=None, help="pruning schedule")
    run.add_argument("--alpha", type=float, default=None, help="width multiplier, in (0, 1)")
    run.add_argument("--epochs", type=int, default=None,
                     help=f"fine-tuning epochs per stage (default {PathwayParams.epochs})")
    run.add_argument("--learning-rate", type=float, default=None,
                     help=f"fine-tuning learning rate (default {PathwayParams.learning_rate})")
    run.add_argument("--seed", type=int, default=None)
    run.add_argument("--baseline-epochs", type=int, default=30)
    run.add_argument("--model", default="ds-cnn-s", help="ds-cnn-s|m|l, optionally -mlperf")
    run.add_argument("--frontend", default="mlperf-tiny")
    run.add_argument("--data-dir", type=Path, default=None,
                     help="Speech Commands folder (default: the synthetic default dataset)")
    run.add_argument("--record", type=Path, default=None,
                     help="where to write the JSON record (default: runs/ under the cache folder)")
    run.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
    run.set_defaults(func=_run)


def _list(args) -> int:
    if args.json:
        print(json.dumps([{"name": p.name, "family": p.family, "takes": list(p.takes),
                           "export": p.export, "description": p.description} for p in PATHWAYS.values()]))
        return 0
    from tabulate import tabulate

    rows = [(p.name, p.family, ", ".join(p.takes) or "-", p.export, p.description)
            for p in PATHWAYS.values()]
    print(tabulate(rows, headers=["pathway", "family", "takes", "deploys as", "stages"], tablefmt="github"))
    return 0


def _run(args) -> int:
    from kws.models import parse_model
    from kws.train import TrainConfig

    given = {k: getattr(args, k) for k in (*HYPERPARAMETERS, "epochs", "learning_rate", "seed")}
    try:
        pathway = get_pathway(args.pathway)
        model = parse_model(args.model)
        params = make_params(pathway, model, **given)
        base_train = TrainConfig(epochs=args.baseline_epochs)
    except ValueError as exc:
        raise KwsError(str(exc)) from None
    from kws.pathways.run import run_pathway

    record = run_pathway(pathway.name, params, data_dir=args.data_dir, model=model,
                         base_train=base_train, frontend=args.frontend)
    text = json.dumps(record, indent=1, default=str)
    path = args.record or default_record_path(record)
    from kws._fs import atomic_write_bytes

    atomic_write_bytes(path, text.encode())
    print(text if args.json else f"{format_record(record)}\nrecord: {path}")
    return 0


def default_record_path(record: dict) -> Path:
    from kws._fs import cache_root

    params = "-".join(f"{k}{v}" for k, v in record["params"].items())
    return cache_root() / "runs" / f"{record['pathway']}-{params}-{record['keys']['deployed'][:12]}.json"


def format_record(record: dict) -> str:
    from tabulate import tabulate

    m, t = record["metrics"], record["times"]
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    rows = [
        ("pathway", f"{record['pathway']} {record['params']}"),
        ("deploys as", record["export"]),
        ("accuracy: baseline float / int8", f"{pct(m['baseline_float_accuracy'])} / {pct(m['baseline_int8_accuracy'])}"),
        ("accuracy: pathway float / deployed", f"{pct(m['float_accuracy'])} / {pct(m['deployed_accuracy'])}"),
        ("size raw / gzip", f"{m['bytes']:,} B / {m['gzip_bytes']:,} B "
                            f"(baseline int8 gzip {m['baseline_int8_gzip_bytes']:,} B)"),
        ("sparsity (checked layers, TFLite)", pct(m.get("sparsity"))),
        ("max unique values per channel", m.get("max_unique_per_channel", "-")),
        ("retrain time", f"{t['retrain_s']:.1f} s " + " ".join(f"{k}={v:.1f}s" for k, v in t["stages_s"].items())),
        ("trained in this run", ", ".join(t["trained_now"]) or "nothing (all cached)"),
    ]
    return tabulate(rows, tablefmt="plain")
