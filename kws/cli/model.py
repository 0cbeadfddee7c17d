"""``kws model info NAME``: parameter and MAC counts of a DS-CNN model.

:mod:`kws.models` imports TensorFlow only when a model is built, so registering this
command reads the architecture names without loading it.
"""

from __future__ import annotations

import argparse
import json

from kws.cli.args import model_name, width_multiplier
from kws.errors import KwsError
from kws.models import ARCHITECTURES, model_summary, parse_model


def register(subparsers) -> None:
    model = subparsers.add_parser("model", help="DS-CNN models")
    sub = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="parameter and MAC counts of a model")
    info.add_argument("name", type=model_name, help=f"one of {sorted(ARCHITECTURES)}, optionally with -mlperf")
    info.add_argument("--alpha", type=width_multiplier, default=1.0, help="width multiplier in (0, 1]")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    try:
        config = parse_model(args.name, alpha=args.alpha)
    except ValueError as exc:
        raise KwsError(str(exc)) from None
    summary = model_summary(config)
    print(json.dumps(summary) if args.json else tabulate(summary.items(), tablefmt="plain"))
    return 0
