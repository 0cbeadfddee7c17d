"""``kws data info DIR``: what a Speech Commands folder holds and what is wrong with it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tabulate import tabulate

from kws.data.dataset import ARM_LABELS, KEYWORDS, SPLITS, DataConfig, DatasetInfo, SpeechCommands


def comma_list(text: str) -> tuple[str, ...]:
    items = tuple(s.strip() for s in text.split(",") if s.strip())
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="inspect Speech Commands folders")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="clips per label per split, speakers, duration, problems")
    info.add_argument("root", type=Path, metavar="DIR")
    info.add_argument("--wanted-words", type=comma_list, default=KEYWORDS)
    info.add_argument("--labels", type=comma_list, default=None,
                      help="label order (default: Arm's, _silence_,_unknown_,yes,...)")
    info.add_argument("--silence-pct", type=float, default=10.0)
    info.add_argument("--unknown-pct", type=float, default=10.0)
    info.add_argument("--no-read", action="store_true", help="count files without decoding them")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    labels = args.labels or (ARM_LABELS if tuple(args.wanted_words) == KEYWORDS
                             else ("_silence_", "_unknown_", *args.wanted_words))
    try:
        config = DataConfig(wanted_words=args.wanted_words, labels=labels,
                            silence_pct=args.silence_pct, unknown_pct=args.unknown_pct)
    except ValueError as exc:
        raise SystemExit(f"kws data info: error: {exc}") from None
    info = SpeechCommands(args.root, config).info(read_audio=not args.no_read)
    print(json.dumps(info_dict(info), indent=2) if args.json else format_info(info, labels))
    return 0


def info_dict(info: DatasetInfo) -> dict:
    return {
        "root": str(info.root),
        "layout": info.layout.value,
        "split_source": info.split_source,
        "clips": {s: dict(info.counts[s]) for s in SPLITS},
        "speakers": {s: len(info.speakers[s]) for s in SPLITS},
        "speakers_total": len(set().union(*info.speakers.values())),
        "files_read": info.files_read,
        "duration_s": round(info.duration_s, 1),
        "sample_rates": {str(k): v for k, v in info.sample_rates.items()},
        "problems": info.problems,
    }


def format_info(info: DatasetInfo, labels: tuple[str, ...]) -> str:
    rows = [[label, *(info.counts[s].get(label, 0) for s in SPLITS)] for label in labels]
    rows.append(["total", *(sum(info.counts[s].values()) for s in SPLITS)])
    rows.append(["speakers", *(len(info.speakers[s]) for s in SPLITS)])
    d = info_dict(info)
    lines = [
        f"{info.root}",
        f"layout: {info.layout.value}; split: {info.split_source}",
        f"speakers: {d['speakers_total']}; files decoded: {info.files_read}; "
        f"audio: {info.duration_s / 60:.1f} min",
        "",
        tabulate(rows, headers=["label", *SPLITS], tablefmt="github"),
        "",
        "problems found:" if info.problems else "problems found: none",
        *(f"  - {p}" for p in info.problems),
    ]
    return "\n".join(lines)
