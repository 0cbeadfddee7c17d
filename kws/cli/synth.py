"""``kws synth --out DIR``: synthesise the keyword dataset offline with eSpeak NG.

Registering the command reads the defaults from :mod:`kws.synth.defaults` (plain data);
the synthesiser itself (numpy, scipy, eSpeak NG) is imported when the command runs.
"""

from __future__ import annotations

import argparse
import sys
import time

from kws.cli.args import input_folder, non_negative_int, output_folder, positive_int, seed
from kws.synth.defaults import DEFAULT_CLIPS_PER_WORD


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="synthesise the keyword dataset offline with eSpeak NG",
        description=(
            "Write a Speech Commands-style dataset (training-archive layout) of keywords "
            "and unknown words spoken by synthetic eSpeak NG speakers."
        ),
    )
    parser.add_argument("--out", required=True, type=output_folder, help="output folder (must not exist)")
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--clips-per-word", type=positive_int, default=DEFAULT_CLIPS_PER_WORD,
        help=f"clips of each keyword (default {DEFAULT_CLIPS_PER_WORD})",
    )
    parser.add_argument(
        "--unknown-clips-per-word", type=non_negative_int, default=None,
        help="clips of each unknown word (default: a fifth of --clips-per-word)",
    )
    parser.add_argument(
        "--noise-dir", type=input_folder, default=None,
        help="copy background noise from this folder instead of synthesising it",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from kws.synth import synthesize

    start = time.perf_counter()
    manifest = synthesize(
        args.out, seed=args.seed, clips_per_word=args.clips_per_word,
        unknown_clips_per_word=args.unknown_clips_per_word, noise_dir=args.noise_dir,
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    counts = manifest["counts"]
    split = counts["per_split"]
    speakers = counts["speakers_per_split"]
    print(
        f"Wrote {counts['clips']} clips of {len(counts['per_word'])} words to {args.out} "
        f"({split['training']} training / {split['validation']} validation / "
        f"{split['testing']} testing), spoken by {len(manifest['speakers'])} speakers "
        f"({speakers.get('training', 0)} / {speakers.get('validation', 0)} / "
        f"{speakers.get('testing', 0)}) with eSpeak NG {manifest['espeak_ng_version']}, "
        f"plus {len(manifest['background_noise'])} background-noise files "
        f"({manifest['noise_source']}); seed {manifest['seed']}, "
        f"{seconds:.1f} s, {counts['clips'] / seconds:.0f} clips/s.",
        file=sys.stdout,
    )
    return 0
