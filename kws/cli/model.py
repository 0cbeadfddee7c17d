"""``kws model info NAME``: parameter and MAC counts of a DS-CNN model, or of a model of
one's own with what each technique makes of it.

:mod:`kws.models` imports TensorFlow only when a model is built, so registering this
command reads the architecture names without loading it.
"""

from __future__ import annotations

import argparse
import json

from kws.cli.args import model_source, width_multiplier
from kws.errors import KwsError
from kws.models import ARCHITECTURES, model_summary, parse_model_spec


def register(subparsers) -> None:
    model = subparsers.add_parser("model", help="DS-CNN models, or one of your own")
    sub = model.add_subparsers(dest="model_command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="parameter and MAC counts of a model")
    info.add_argument("name", type=model_source,
                      help=f"one of {sorted(ARCHITECTURES)}, optionally with -mlperf; or a Keras model file, "
                           "SavedModel folder or package.module:factory")
    info.add_argument("--alpha", type=width_multiplier, default=1.0, help="width multiplier in (0, 1]")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    try:
        config = parse_model_spec(args.name, alpha=args.alpha)
        summary = model_summary(config if config.input_shape else config.with_input_shape(config.shapes()[0]))
    except ValueError as exc:
        raise KwsError(str(exc)) from None
    print(json.dumps(summary) if args.json else tabulate(summary.items(), tablefmt="plain"))
    return 0
