"""``kws pathways`` lists the deployment tree; ``kws run PATHWAY`` runs (or fetches) one
case through the same pipeline as the benchmark matrix and prints its record.

The axis flags (``--sparsity``, ``--schedule``, ...) come from the axes table, so a new
axis is a new flag without a change here.
"""

from __future__ import annotations

import json
from pathlib import Path

from kws.cli import args
from kws.errors import KwsError
from kws.pathways.axes import AXES


def register(subparsers) -> None:
    ls = subparsers.add_parser("pathways", help="list the pathways and the axes each takes")
    ls.add_argument("--model", type=args.model_source, default=None,
                    help="also say which pathways apply to this model (a DS-CNN name, a Keras model file or "
                         "SavedModel folder, or package.module:factory), and why the others do not")
    ls.add_argument("--frontend", type=args.frontend_spec, default="mlperf-tiny",
                    help="the front-end the model takes features from (default mlperf-tiny)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)

    run = subparsers.add_parser("run", help="run (or fetch from the cache) one pathway")
    run.add_argument("pathway", type=args.pathway_name, help="a pathway name (see `kws pathways`)")
    for axis in AXES.values():
        run.add_argument(axis.flag, dest=axis.name, type=str if axis.choices else args.axis_value(axis),
                         default=None, choices=[str(c) for c in axis.choices] or None,
                         help=f"{axis.help} (default {axis.text(axis.default)})")
    run.add_argument("--epochs", type=args.positive_int, default=None,
                     help="fine-tuning epochs per stage (default 15)")
    run.add_argument("--learning-rate", type=args.positive_number, default=None,
                     help="fine-tuning learning rate (default 1e-4)")
    run.add_argument("--seed", type=args.seed, default=0, help="fixes data order, augmentation and initialisation")
    run.add_argument("--baseline-epochs", type=args.positive_int, default=30)
    run.add_argument("--baseline-learning-rates", type=args.learning_rates, default=None,
                     help="the baseline's piecewise learning rates, stepping at equal shares of its "
                          "epochs (default 5e-4,1e-4,2e-5; the smoke and nightly tiers: 2e-3,4e-4,8e-5)")
    run.add_argument("--model", type=args.model_source, default="ds-cnn-s",
                     help="ds-cnn-s|m|l (optionally -mlperf), a trained Keras model file (.keras, .h5) or "
                          "SavedModel folder, used as the baseline, or package.module:factory")
    run.add_argument("--labels", type=args.label_list, default=None,
                     help="comma-separated label order: the model's output order (default: Arm's)")
    run.add_argument("--frontend", type=args.frontend_spec, default="mlperf-tiny",
                     help="a preset, or 'preset,key=value,...'")
    run.add_argument("--data-dir", type=args.input_folder, default=None,
                     help="Speech Commands folder (default: the synthetic default dataset)")
    run.add_argument("--vela-targets", type=args.vela_targets_or_none, default=None,
                     help="comma-separated Vela targets for an int8 model, or 'none' (default: ethos-u55-256)")
    run.add_argument("--eval-dir", type=args.input_folder, default=None,
                     help="also score the deployed model on this Speech Commands folder")
    run.add_argument("--record", type=args.output_file, default=None,
                     help="where to write the JSON record (default: runs/ under the cache folder)")
    run.add_argument("--json", action="store_true", help="print the JSON record instead of a table")
    run.set_defaults(func=_run)


def _list(ns) -> int:
    from kws.pathways.registry import PATHWAYS

    why = {}
    if ns.model is not None:
        from kws.models import parse_model_spec
        from kws.pipeline import RunSpec

        try:
            model = RunSpec(model=parse_model_spec(ns.model), frontend=ns.frontend).model
        except ValueError as exc:
            raise KwsError(f"--model: {exc}") from None
        why = {p.name: p.not_applicable(model) for p in PATHWAYS.values()}
    if ns.json:
        print(json.dumps([{"name": p.name, "family": p.family, "takes": list(p.takes),
                           "export": p.export, "description": p.description,
                           **({"applies": why[p.name] is None, "why_not": why[p.name]} if why else {})}
                          for p in PATHWAYS.values()]))
        return 0
    from tabulate import tabulate

    rows = [(p.name, p.family, ", ".join(p.takes) or "-", p.export, p.description) for p in PATHWAYS.values()]
    if not why:
        print(tabulate(rows, headers=["pathway", "family", "takes", "deploys as", "stages"], tablefmt="github"))
        return 0
    rows = [(*row[:4], "yes" if why[row[0]] is None else f"no: {why[row[0]].split(': ', 1)[1]}") for row in rows]
    print(tabulate(rows, headers=["pathway", "family", "takes", "deploys as", f"applies to {model.slug}"],
                   tablefmt="github"))
    return 0


def _spec_and_point(ns):
    """What argparse could not check alone, checked before any work: the axes against the
    pathway and the model (clusters depend on the model's width), and the recipes."""
    from kws.models import parse_model_spec
    from kws.pathways.base import FineTune
    from kws.pathways.registry import check_applies, get_pathway, make_point
    from kws.pipeline import RunSpec, Settings
    from kws.train import TrainConfig
    from kws.vela import DEFAULT_TARGET

    try:
        pathway, model = get_pathway(ns.pathway), parse_model_spec(ns.model)
    except ValueError as exc:
        raise KwsError(f"--model: {exc}") from None
    check_applies(pathway, model)  # NotApplicable: a KwsError naming the layers
    given = {name: getattr(ns, name) for name in AXES}
    for name, value in given.items():
        if value is not None and name in pathway.takes:
            try:
                AXES[name].validate(value, model)
            except ValueError as exc:
                raise KwsError(f"{AXES[name].flag}: {exc}") from None
    try:
        point = make_point(pathway, model, **given)
        finetune = FineTune(**{k: v for k, v in (("epochs", ns.epochs), ("learning_rate", ns.learning_rate))
                               if v is not None})
        spec = RunSpec(model=model, frontend=ns.frontend, data_dir=ns.data_dir,
                       data_config=args.labels_config(ns.labels),
                       baseline=TrainConfig(epochs=ns.baseline_epochs, **(
                           {"learning_rates": ns.baseline_learning_rates} if ns.baseline_learning_rates else {})),
                       finetune=finetune, seed=ns.seed)
    except ValueError as exc:
        raise KwsError(str(exc)) from None
    targets = (DEFAULT_TARGET,) if ns.vela_targets is None else ns.vela_targets
    return pathway, point, spec, Settings(vela_targets=targets, eval_dir=ns.eval_dir)


def _run(ns) -> int:
    pathway, point, spec, settings = _spec_and_point(ns)
    from kws._fs import atomic_write_bytes
    from kws.pipeline import run_case

    record = run_case(pathway, point, spec, settings=settings)
    text = record.to_json(indent=1)
    # The record is printed before it is written: a write that fails after the work (a
    # full disk, a folder removed meanwhile) then loses nothing, and the error names the file.
    print(text if ns.json else format_record(record))
    path = ns.record
    try:
        path = path or default_record_path(record)
        atomic_write_bytes(path, text.encode())
    except OSError as exc:
        if not ns.json:
            print(text)
        option = "--record: " if ns.record else ""
        raise KwsError(f"{option}cannot write the record to {path or exc.filename}: {exc.strerror or exc}; "
                       "it is printed above") from None
    if not ns.json:
        print(f"record: {path}")
    return 0


def default_record_path(record) -> Path:
    from kws._fs import cache_root

    text = {name: axis.text for name, axis in AXES.items()}
    params = "-".join(f"{k}{text.get(k, str)(v)}" for k, v in {**record.point, "seed": record.seed}.items())
    return cache_root() / "runs" / f"{record.pathway}-{params}-{record.keys['deployed'][:12]}.json"


def format_record(record) -> str:
    """The record as a two-column table: what was run and what it measured."""
    from tabulate import tabulate

    from kws.metrics import METRICS

    m = record.metrics
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}%"  # noqa: E731
    rows = [
        ("pathway", f"{record.pathway} {record.point} seed {record.seed}"),
        ("model / deploys as", f"{record.model} / {record.export}"),
        ("accuracy: baseline float / int8",
         f"{pct(m['baseline_float_accuracy'])} / {METRICS['baseline_int8_accuracy'].show_with_interval(m)}"),
        ("accuracy: pathway float / deployed",
         f"{pct(m['float_accuracy'])} / {METRICS['deployed_accuracy'].show_with_interval(m)}"),
        ("accuracy drop vs baseline int8 (paired 95% interval)",
         f"{METRICS['accuracy_drop'].show_with_interval(m)}"
         + (f", McNemar p = {m['accuracy_drop_p']:.4f}" if m.get("accuracy_drop_p") is not None else "")),
        ("size raw / gzip", f"{m['bytes']:,} B / {m['gzip_bytes']:,} B "
                            f"(baseline int8 gzip {m['baseline_int8_gzip_bytes']:,} B)"),
        ("sparsity (checked layers, TFLite)", pct(m.get("sparsity"))),
        ("max unique values per channel", m.get("max_unique_per_channel", "-")),
    ]
    for target in m.get("vela") or {}:
        us, weights = METRICS["vela_us"], METRICS["vela_encoded_weights"]
        rows.append((f"Vela {target}", f"{us.show(us.value(m, target))}, encoded weights "
                                       f"{weights.show(weights.value(m, target))}"))
    if m.get("eval_accuracy") is not None:
        rows.append(("accuracy on eval data", METRICS["eval_accuracy"].show_with_interval(m)))
    if m.get("litert_us") is not None:
        rows.append(("LiteRT latency (host, 1 thread)", f"{m['litert_us']:.1f} us"))
    if m.get("e2e_us") is not None:
        rows.append(("front-end + inference (host, 1 clip)",
                     f"{m['e2e_us']:.0f} us (front-end {m['frontend_us']:.0f} us)"))
    rows += [
        ("retrain time", f"{m['retrain_s']:.1f} s "
         + " ".join(f"{k}={v:.1f}s" for k, v in record.times.stages_s.items())),
        ("trained in this run", ", ".join(record.trained_now) or "nothing (all cached)"),
    ]
    return tabulate(rows, tablefmt="plain")
