"""``kws eval --model M.tflite --data-dir D``: top-1 accuracy, per-label accuracy and the
confusion matrix of a TFLite model on a Speech Commands folder.

The evaluator, the dataset code and LiteRT are imported when the command runs, not when
it registers.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from kws.cli.args import SPLITS, frontend_spec, input_file, input_folder, label_list, labels_config
from kws.errors import KwsError

if TYPE_CHECKING:
    from kws.evaluate import EvalResult


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="accuracy of a TFLite model on a Speech Commands folder")
    p.add_argument("--model", type=input_file, required=True, metavar="M.tflite", help="a TFLite model")
    p.add_argument("--data-dir", type=input_folder, required=True, metavar="DIR",
                   help="a Speech Commands folder (training archive or test-set layout)")
    p.add_argument("--frontend", type=frontend_spec, default="mlperf-tiny",
                   help="preset (mlperf-tiny, arm) or preset,key=value,... (default mlperf-tiny)")
    p.add_argument("--labels", type=label_list, default=None,
                   help="the model's output order, comma-separated "
                        "(default Arm's: _silence_,_unknown_,yes,no,...)")
    p.add_argument("--split", choices=SPLITS, default="testing",
                   help="split to evaluate (default testing; the test-set layout has only testing)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    from kws.data.dataset import SpeechCommands
    from kws.evaluate import TFLiteRunner, evaluate
    from kws.features import get_frontend

    runner = TFLiteRunner(args.model)
    config = labels_config(args.labels)
    if len(config.labels) != runner.num_classes:
        raise KwsError(f"--labels lists {len(config.labels)} labels but {args.model} outputs "
                       f"{runner.num_classes} classes")
    frontend = get_frontend(args.frontend)  # validated by argparse
    runner.check_features(*frontend.output_shape, source=f"front-end {frontend.name}")
    data = SpeechCommands(args.data_dir, config)
    if not data.clips(args.split):
        raise KwsError(f"the {args.split} split of {args.data_dir} has no clips")
    features, labels = data.features(args.split, frontend)
    result = evaluate(runner.predict, features, labels, config.labels)
    report = {**result.to_dict(), "model": str(args.model), "frontend": frontend.name,
              "data_dir": str(args.data_dir), "split": args.split}
    print(json.dumps(report) if args.json else format_result(result, report))
    return 0


def format_result(result: EvalResult, report: dict) -> str:
    from tabulate import tabulate

    head = (f"{report['model']} on {report['data_dir']} ({report['split']}, "
            f"front-end {report['frontend']}): top-1 accuracy {result.accuracy:.2%} "
            f"over {result.n} clips")
    totals = [sum(row) for row in result.confusion]
    per_label = tabulate(
        [(name, total, "-" if acc is None else f"{acc:.2%}")
         for (name, acc), total in zip(result.per_label.items(), totals)],
        headers=("label", "clips", "accuracy"),
    )
    confusion = tabulate(
        [(name, *row) for name, row in zip(result.labels, result.confusion)],
        headers=("true \\ predicted", *result.labels),
    )
    return f"{head}\n\n{per_label}\n\nconfusion matrix (rows: true label)\n{confusion}"
