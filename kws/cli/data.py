"""``kws data info DIR``: what a Speech Commands folder holds and what is wrong with it;
``kws data features DIR``: its MFCC features, extracted once and cached.

``kws data info`` names the files behind each problem (clips too long, too short,
over-range or near-silent, and unreadable files) and exits with status 1 when a file
cannot be used, so that a script checking a dataset stops before training on it.

The dataset code (numpy, scipy) is imported when a command runs, not when it registers.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from kws.cli.args import comma_list, frontend_spec, input_folder, percentage
from kws.errors import KwsError

if TYPE_CHECKING:
    from kws.data.dataset import DataConfig, DatasetInfo


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="inspect Speech Commands folders")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    info = sub.add_parser("info", help="clips per label per split, speakers, duration, problems")
    _dataset_arguments(info)
    info.add_argument("--no-read", action="store_true", help="count files without decoding them")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=run_info)

    feats = sub.add_parser("features", help="extract (or fetch from the cache) every split's MFCCs")
    _dataset_arguments(feats)
    feats.add_argument("--frontend", type=frontend_spec, default="mlperf-tiny",
                       help="preset (mlperf-tiny, arm) or preset,key=value,... (default mlperf-tiny)")
    feats.add_argument("--skip-bad", action="store_true",
                       help="skip unreadable clips (and report how many) instead of stopping")
    feats.set_defaults(func=run_features)


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=input_folder, metavar="DIR", help="a Speech Commands folder (either layout)")
    # None stands for the dataset's KEYWORDS, read when the command runs.
    parser.add_argument("--wanted-words", type=comma_list, default=None,
                        help="comma-separated keywords (default: the 10 of the 12-label task)")
    parser.add_argument("--labels", type=comma_list, default=None,
                        help="label order (default: Arm's, _silence_,_unknown_,yes,...)")
    parser.add_argument("--silence-pct", type=percentage, default=10.0, help="generated silence, %% of each split")
    parser.add_argument("--unknown-pct", type=percentage, default=10.0, help="sampled unknown words, %% of each split")


def _config(args: argparse.Namespace) -> DataConfig:
    from kws.data.config import ARM_LABELS, KEYWORDS, DataConfig

    wanted_words = KEYWORDS if args.wanted_words is None else args.wanted_words
    labels = args.labels or (ARM_LABELS if tuple(wanted_words) == KEYWORDS
                             else ("_silence_", "_unknown_", *wanted_words))
    try:
        return DataConfig(wanted_words=wanted_words, labels=labels,
                          silence_pct=args.silence_pct, unknown_pct=args.unknown_pct)
    except ValueError as exc:
        raise KwsError(str(exc)) from None


def run_info(args: argparse.Namespace) -> int:
    from kws.data.dataset import SpeechCommands

    config = _config(args)
    info = SpeechCommands(args.root, config).info(read_audio=not args.no_read)
    print(json.dumps(info_dict(info), indent=2) if args.json else format_info(info, config.labels))
    return 1 if info.unreadable else 0


def run_features(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from kws.data.dataset import SPLITS, SpeechCommands
    from kws.features import FeatureCache, get_frontend

    frontend = get_frontend(args.frontend)
    ds = SpeechCommands(args.root, _config(args), skip_bad=args.skip_bad)
    cache = FeatureCache()
    rows = []
    for split in SPLITS:
        if not ds.clips(split):
            continue
        start = time.perf_counter()
        feats, _ = ds.features(split, frontend, cache=cache)
        rows.append([split, len(feats), "x".join(map(str, feats.shape[1:])),
                     f"{time.perf_counter() - start:.2f}"])
    print(tabulate(rows, headers=["split", "clips", "features", "seconds"], tablefmt="github"))
    print(f"front-end {frontend.name}; cache: {cache.hits} split(s) fetched, "
          f"{cache.misses} extracted, in {cache.root}")
    if ds.skipped:
        print(f"skipped {len(ds.skipped)} unreadable clip(s), e.g. {ds.skipped[0]}")
    return 0


def info_dict(info: DatasetInfo) -> dict:
    from kws.data.dataset import SPLITS

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
        "unreadable": info.unreadable,
        "clip_problems": info.clip_problems,
    }


def format_info(info: DatasetInfo, labels: tuple[str, ...]) -> str:
    from tabulate import tabulate

    from kws.data.dataset import SPLITS

    rows = [[label, *(info.counts[s].get(label, 0) for s in SPLITS)] for label in labels]
    rows.append(["total", *(sum(info.counts[s].values()) for s in SPLITS)])
    rows.append(["speakers", *(len(info.speakers[s]) for s in SPLITS)])
    d = info_dict(info)
    n_test = sum(info.counts["testing"].values())
    resolved = []
    if n_test:
        from kws.stats import resolution

        one, paired = resolution(n_test)
        resolved = [f"test split: {n_test:,} clips from {len(info.speakers['testing'])} speakers; 95% "
                    f"interval of one accuracy near 90%: +-{one * 100:.2f} pp, of a paired "
                    f"difference with 6% discordant clips: +-{paired * 100:.2f} pp"]
    lines = [
        f"{info.root}",
        f"layout: {info.layout.value}; split: {info.split_source}",
        f"speakers: {d['speakers_total']}; files decoded: {info.files_read}; "
        f"audio: {info.duration_s / 60:.1f} min",
        *resolved,
        "",
        tabulate(rows, headers=["label", *SPLITS], tablefmt="github"),
        "",
        "problems found:" if info.problems else "problems found: none",
        *(f"  - {p}" for p in info.problems),
    ]
    return "\n".join(lines)
