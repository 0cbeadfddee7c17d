"""Writing a dataset: plan it, fill a temporary folder (noise, clips, split lists,
``SYNTH.json``) and publish it in place of the output folder only once it is complete.

The temporary folder (and the old output set aside by ``overwrite``) is a hidden sibling
of the output whose name records the writing process (:func:`kws.store.fs.temp_prefix`):
a run that was killed leaves it behind, and the next run for the same output removes it
once its writer is gone (:func:`kws.store.fs.remove_stale_siblings`)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from kws import progress as _progress
from kws.data.dataset import LIST_FILES, SPLITS
from kws.data.wav import CLIP_SAMPLES, SAMPLE_RATE
from kws.errors import DatasetError
from kws.store.fs import atomic_directory, temp_prefix
from kws.synth.audio import ClipResult
from kws.synth.defaults import DEFAULT_CLIPS_PER_WORD
from kws.synth.noise import NOISE_DIR_NAME, _noise_files, _write_noises
from kws.synth.plan import ClipSpec, Speaker, SynthConfig, _check_int, make_config, make_speakers, plan_clips
from kws.synth.workers import _render_all

SYNTH_FORMAT_VERSION = 1
MANIFEST_NAME = "SYNTH.json"


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DatasetError(f"output path {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DatasetError(
            f"output folder {out} already exists and is not empty (pass overwrite=True, "
            "or --overwrite, to replace it)"
        )


def _summary(results: Sequence[ClipResult], specs: Sequence[ClipSpec]) -> dict:
    speech = np.array([r.speech_s for r in results])
    per_split = Counter(s.speaker.split for s in specs)
    return {
        "clips": len(specs),
        "per_word": dict(Counter(s.word for s in specs)),
        "per_split": {split: per_split[split] for split in SPLITS},
        "speech_seconds": {
            "min": round(float(speech.min()), 4), "mean": round(float(speech.mean()), 4),
            "max": round(float(speech.max()), 4),
        },
        "respoken_faster": sum(r.respoken for r in results),
        "cropped": sum(r.cropped for r in results),
        "with_noise": sum(r.noisy for r in results),
    }


def _manifest(
    config: SynthConfig, seed: int, speakers: Sequence[Speaker], specs: Sequence[ClipSpec],
    results: Sequence[ClipResult], noises: list[dict], noise_dir: Path | None,
) -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from kws import _espeak

    try:
        loader_version = version("espeakng-loader")
    except PackageNotFoundError:  # pragma: no cover
        loader_version = "unknown"
    counts = _summary(results, specs)
    counts["speakers_per_split"] = dict(Counter(s.split for s in speakers))
    return {
        "generator": "kws.synth",
        "format_version": SYNTH_FORMAT_VERSION,
        "layout": "speech_commands_v0.02 training archive",
        "seed": seed,
        "sample_rate": SAMPLE_RATE,
        "clip_samples": CLIP_SAMPLES,
        "espeak_ng_version": _espeak.info().version,
        "espeakng_loader_version": loader_version,
        "parameters": asdict(config),
        "noise_source": "synthetic" if noise_dir is None else str(noise_dir),
        "split_rule": "reference hash of the speaker id: 10 % validation, 10 % testing",
        "counts": counts,
        "background_noise": noises,
        "speakers": [asdict(s) for s in speakers],
    }


def _write_lists(out: Path, specs: Sequence[ClipSpec]) -> None:
    for split, name in LIST_FILES.items():
        paths = sorted(s.relpath for s in specs if s.speaker.split == split)
        (out / name).write_text("".join(p + "\n" for p in paths))


def _show(show_progress: bool | None) -> bool:
    return _progress.enabled() if show_progress is None else bool(show_progress)


@contextlib.contextmanager
def _publishing(out: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary sibling of ``out`` that replaces it once the body has succeeded."""
    trash = None
    with atomic_directory(out) as tmp:
        yield tmp
        if overwrite and out.exists():
            trash = out.with_name(f"{temp_prefix(out)}old{uuid.uuid4().hex[:8]}.tmp")
            os.replace(out, trash)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def synthesize(
    out: Path | str,
    *,
    seed: int = 0,
    clips_per_word: int = DEFAULT_CLIPS_PER_WORD,
    unknown_clips_per_word: int | None = None,
    noise_dir: Path | str | None = None,
    overwrite: bool = False,
    show_progress: bool | None = None,
) -> dict:
    """Synthesise the dataset into ``out`` (created atomically) and return its manifest.

    ``clips_per_word`` clips of each keyword and ``unknown_clips_per_word`` (default: a
    fifth as many) of each unknown word, spoken by ``DEFAULT_SPEAKERS`` speakers.
    Background noise is synthesised, or copied from ``noise_dir`` (a folder of WAVs or one
    holding ``_background_noise_/``). ``out`` must not exist or be empty, unless
    ``overwrite``.
    """
    seed = _check_int("seed", seed, 0)
    config = make_config(clips_per_word, unknown_clips_per_word)
    out = Path(out)
    noise_dir = None if noise_dir is None else Path(noise_dir)
    _check_out(out, overwrite)
    if noise_dir is not None:
        _noise_files(noise_dir)  # fail before any work
    speakers = make_speakers(config, seed)
    specs = plan_clips(config, speakers, seed)
    with _publishing(out, overwrite) as tmp:
        noises = _write_noises(tmp / NOISE_DIR_NAME, config, seed, noise_dir)
        for word in config.words:
            if config.clips_for(word):
                (tmp / word).mkdir()
        with _progress.progress(
            total=len(specs), desc="synth", unit="clip", disable=not _show(show_progress)
        ) as bar:
            results = _render_all(specs, tmp, config, seed, bar)
        _write_lists(tmp, specs)
        manifest = _manifest(config, seed, speakers, specs, results, noises, noise_dir)
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest

