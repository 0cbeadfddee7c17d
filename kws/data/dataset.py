"""Speech Commands v0.02 in either of its two layouts, mapped to the 12-label task.

- The training archive: one folder per word, ``_background_noise_/``, and
  ``validation_list.txt`` / ``testing_list.txt`` (when the lists are absent the split is
  the reference hash, :func:`kws.data.split.which_split`). ``_unknown_`` is sampled from
  every non-keyword word and ``_silence_`` is generated, each a percentage of the split,
  as in the reference ``input_data.py``.
- The canonical test set: twelve label folders, real ``_silence_`` clips and
  ``_unknown_`` files named ``<word>_<speaker>_nohash_<n>.wav``; every clip is ``testing``.

The labels, splits and :class:`DataConfig` are plain data in :mod:`kws.data.config`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from dataclasses import asdict
from functools import cached_property
from pathlib import Path

import numpy as np

from kws.data.config import BACKGROUND_DIR, LIST_FILES, SILENCE, SPLITS, UNKNOWN, Clip, DataConfig, DatasetInfo, Layout
from kws.data.split import speaker_of, which_split
from kws.data.wav import CLIP_SAMPLES, NEAR_SILENT, PROBLEMS, SAMPLE_RATE, read_wav
from kws.errors import BadAudioError, DatasetError
from kws.progress import progress

log = logging.getLogger(__name__)

_WAV_SUFFIX = ".wav"
#: File names shown per problem in a report; the rest are counted.
_NAMES_SHOWN = 10


def detect_layout(root: Path | str) -> Layout:
    """The test-set layout has ``_silence_``/``_unknown_`` folders; the archive has neither."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist")
    if (root / SILENCE).is_dir() or (root / UNKNOWN).is_dir():
        return Layout.TEST_SET
    return Layout.TRAINING_ARCHIVE


def _wavs(folder: Path) -> list[Path]:
    # The test set names some unknown files ``*.wav.wav``; both end in ``.wav``.
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WAV_SUFFIX))


class SpeechCommands:
    """A Speech Commands folder in either layout (detected), as labelled clip lists.

    ``skip_bad=True`` skips unreadable clips when loading audio and counts them in
    :attr:`skipped` instead of raising. Clips that load but have a problem (see
    :mod:`kws.data.wav`: too long, too short, over-range, near-silent) load as always; the
    last :meth:`load` lists them in :attr:`clip_problems` and logs one warning.
    """

    def __init__(self, root: Path | str, config: DataConfig = DataConfig(), *, skip_bad: bool = False):
        self.root = Path(root)
        self.config = config
        self.skip_bad = skip_bad
        self.layout = detect_layout(self.root)
        self.skipped: list[BadAudioError] = []
        self.clip_problems: dict[str, list[str]] = {}
        self._fingerprints: dict[str, str] = {}
        self._check_label_folders()

    # ----- clip lists -------------------------------------------------------------
    def _word_folders(self) -> list[Path]:
        return sorted(
            p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))
        )

    def _check_label_folders(self) -> None:
        if self.layout is Layout.TEST_SET:
            required = [*self.config.wanted_words, SILENCE, UNKNOWN]
        else:
            required = list(self.config.wanted_words)
        missing = [w for w in required if not (self.root / w).is_dir()]
        if missing:
            raise DatasetError(
                f"{self.root} ({self.layout.value} layout) has no folder for label(s) "
                f"{', '.join(missing)}"
            )
        empty = [w for w in required if not _wavs(self.root / w)]
        if empty:
            raise DatasetError(f"{self.root}: label folder(s) with no .wav files: {', '.join(empty)}")
        only_wanted = self.layout is Layout.TRAINING_ARCHIVE and len(self._word_folders()) == len(required)
        if only_wanted and self.config.unknown_pct > 0:
            raise DatasetError(
                f"{self.root} has no word folders besides the wanted words, so there is "
                "nothing to sample _unknown_ from (set unknown_pct=0 to train without it)"
            )

    @cached_property
    def split_source(self) -> str:
        if self.layout is Layout.TEST_SET:
            return "test-set layout (every clip is testing)"
        if all((self.root / f).is_file() for f in LIST_FILES.values()):
            return "validation_list.txt / testing_list.txt"
        return f"reference hash ({self.config.validation_pct:g}% / {self.config.testing_pct:g}%)"

    @cached_property
    def _listed(self) -> dict[str, str]:
        """relative path -> split from the list files (empty when the hash decides)."""
        if not self.split_source.startswith("validation_list"):
            return {}
        listed = {}
        for split, name in LIST_FILES.items():
            for line in (self.root / name).read_text().splitlines():
                if line.strip():
                    listed[line.strip()] = split
        return listed

    def _split_of(self, path: Path) -> str:
        if self.layout is Layout.TEST_SET:
            return "testing"
        if self._listed:
            return self._listed.get(path.relative_to(self.root).as_posix(), "training")
        return which_split(path.name, self.config.validation_pct, self.config.testing_pct)

    @cached_property
    def _all_word_clips(self) -> list[Clip]:
        """Every file clip, unknown words not yet sampled."""
        wanted = set(self.config.wanted_words)
        clips = []
        if self.layout is Layout.TEST_SET:
            for label in self.config.labels:
                for p in _wavs(self.root / label):
                    word = p.name.split("_", 1)[0] if label == UNKNOWN else label
                    speaker = None if label == SILENCE else speaker_of(p.name)
                    clips.append(Clip(p, label, word, speaker, "testing"))
            return clips
        for folder in self._word_folders():
            label = folder.name if folder.name in wanted else UNKNOWN
            for p in _wavs(folder):
                clips.append(Clip(p, label, folder.name, speaker_of(p.name), self._split_of(p)))
        return clips

    @cached_property
    def _clips(self) -> dict[str, list[Clip]]:
        by_split: dict[str, list[Clip]] = {s: [] for s in SPLITS}
        unknown: dict[str, list[Clip]] = {s: [] for s in SPLITS}
        for clip in self._all_word_clips:
            (unknown if clip.label == UNKNOWN and self.layout is Layout.TRAINING_ARCHIVE else by_split)[
                clip.split
            ].append(clip)
        if self.layout is Layout.TRAINING_ARCHIVE:
            for i, split in enumerate(SPLITS):
                rng = np.random.default_rng([self.config.seed, i])
                n = len(by_split[split])
                n_unknown = math.ceil(n * self.config.unknown_pct / 100)
                picks = rng.permutation(len(unknown[split]))[:n_unknown]
                by_split[split] += [unknown[split][j] for j in sorted(picks)]
                n_silence = math.ceil(n * self.config.silence_pct / 100)
                by_split[split] += [Clip(None, SILENCE, SILENCE, None, split)] * n_silence
        return by_split

    def clips(self, split: str) -> list[Clip]:
        """The clips of ``split`` in a fixed order (labels grouped; shuffle when training)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return list(self._clips[split])

    def labels(self, split: str) -> np.ndarray:
        return np.array([self.config.label_index(c.label) for c in self.clips(split)], np.int32)

    # ----- audio ------------------------------------------------------------------
    @cached_property
    def noise_dir(self) -> Path | None:
        folder = self.config.noise_dir or self.root / BACKGROUND_DIR
        return Path(folder) if Path(folder).is_dir() else None

    @cached_property
    def background_noise(self) -> list[np.ndarray]:
        """The long background recordings as float32 in [-1, 1] (empty if there are none)."""
        if self.noise_dir is None:
            return []
        noise = [read_wav(p, length=None)[0] for p in _wavs(self.noise_dir)]
        short = [p.name for p, n in zip(_wavs(self.noise_dir), noise) if len(n) < CLIP_SAMPLES]
        if short:
            raise DatasetError(f"background noise shorter than 1 s in {self.noise_dir}: {short}")
        return [n.astype(np.float32) / 32768.0 for n in noise]

    def _silence(self, split: str, count: int) -> np.ndarray:
        """Generated silence. Training: zeros (augmentation adds fresh noise each epoch).
        Validation and testing: fixed, seeded background noise at a random volume in [0, 1],
        as the reference generates it, so evaluation sets do not change between runs."""
        out = np.zeros((count, CLIP_SAMPLES), np.int16)
        if split == "training" or not self.background_noise or count == 0:
            return out
        rng = np.random.default_rng([self.config.seed, SPLITS.index(split), 1])
        for row in out:
            noise = self.background_noise[rng.integers(len(self.background_noise))]
            start = rng.integers(0, len(noise) - CLIP_SAMPLES + 1)
            clip = noise[start : start + CLIP_SAMPLES] * rng.uniform(0, 1)
            row[:] = np.clip(np.round(clip * 32768), -32768, 32767)
        return out

    def load(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Waveforms (int16 ``[N, 16000]``) and label indices of ``split``.

        With ``skip_bad`` unreadable files are left out (and listed in :attr:`skipped`);
        otherwise the first one raises :class:`BadAudioError` naming it.
        """
        clips = self.clips(split)
        files = [c for c in clips if c.path is not None]
        waves, labels = [], []
        self.clip_problems = {}
        for clip in progress(files, desc=f"read {split}", unit="clip", leave=False):
            try:
                wave, wav = read_wav(clip.path)
            except BadAudioError as exc:
                if not self.skip_bad:
                    raise
                self.skipped.append(exc)
                continue
            waves.append(wave)
            self._note_problems(clip, wav.problems, self.clip_problems)
            labels.append(self.config.label_index(clip.label))
        if self.clip_problems:
            counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(self.clip_problems.items()))
            log.warning("%s (%s): clips with problems, loaded as they are: %s; "
                        "`kws data info %s` lists them", self.root, split, counts, self.root)
        n_silence = len(clips) - len(files)
        waves.append(self._silence(split, n_silence))
        labels += [self.config.label_index(SILENCE)] * n_silence
        stacked = np.concatenate([np.atleast_2d(w) for w in waves if len(w)] or [np.zeros((0, CLIP_SAMPLES), np.int16)])
        return stacked.astype(np.int16), np.asarray(labels, np.int32)

    def features(self, split: str, frontend="mlperf-tiny", *, cache=None) -> tuple[np.ndarray, np.ndarray]:
        """MFCC features ``[N, frames, coeffs]`` and labels of ``split``, unaugmented.

        Served from the feature cache when the clip list (paths, sizes, mtimes), the
        config and every front-end parameter are unchanged, so the second run of anything
        skips reading and extraction. Features and labels share one cache entry.
        ``cache``: the run's :class:`~kws.cache.ArtifactCache` (its feature cache is
        used), a :class:`~kws.features.FeatureCache`, or None.
        """
        from kws.features import extract, feature_cache, get_frontend

        cache, frontend = feature_cache(cache), get_frontend(frontend)

        def compute() -> dict[str, np.ndarray]:
            waves, labels = self.load(split)
            return {"features": extract(waves, frontend), "labels": labels}

        # Labels are stored with the features: with skip_bad they depend on which files failed.
        arrays = cache.get_or_compute_arrays(self.fingerprint(split), frontend, compute,
                                             names=("features", "labels"))
        feats, labels = arrays["features"], arrays["labels"]
        if len(labels) != len(feats):
            raise DatasetError(f"feature cache for {self.root} ({split}) holds {len(feats)} "
                               f"feature rows but {len(labels)} labels; clear the cache")
        return feats, labels

    # ----- identity ---------------------------------------------------------------
    def fingerprint(self, split: str) -> str:
        """A hash of everything ``load(split)`` depends on: each file's path, size and
        modification time, the labels, the config and the background recordings.

        Computed once per instance (every cache key of a run asks for it); a dataset that
        changes on disk is seen by a new ``SpeechCommands``."""
        if split not in self._fingerprints:
            self._fingerprints[split] = self._compute_fingerprint(split)
        return self._fingerprints[split]

    def _compute_fingerprint(self, split: str) -> str:
        h = hashlib.sha256()
        config = {k: str(v) for k, v in asdict(self.config).items()}
        h.update(repr((self.layout.value, split, sorted(config.items()), self.skip_bad)).encode())
        for clip in self.clips(split):
            h.update(_stat_entry(clip.path, clip.label))
        if split != "training" and self.noise_dir is not None:
            for p in _wavs(self.noise_dir):
                h.update(_stat_entry(p, BACKGROUND_DIR))
        return h.hexdigest()

    # ----- report -----------------------------------------------------------------
    def info(self, *, read_audio: bool = True) -> DatasetInfo:
        """Clips per label per split, speakers, duration and problems found.

        ``read_audio`` decodes every file (finds corrupt ones, sums the real duration)."""
        info = DatasetInfo(self.root, self.layout, self.split_source)
        for split in SPLITS:
            clips = self.clips(split)
            info.counts[split] = Counter(c.label for c in clips)
            info.speakers[split] = {c.speaker for c in clips if c.speaker}
        info.problems += self._split_problems(info)
        info.problems += self._folder_problems()
        if read_audio:
            self._read_all(info)
        return info

    def _split_problems(self, info: DatasetInfo) -> list[str]:
        problems = []
        for a, b in (("training", "validation"), ("training", "testing"), ("validation", "testing")):
            shared = info.speakers[a] & info.speakers[b]
            if shared:
                problems.append(f"{len(shared)} speaker(s) appear in both {a} and {b}")
        for split in SPLITS:
            if self.layout is Layout.TRAINING_ARCHIVE and not info.counts[split]:
                problems.append(f"the {split} split is empty")
        if self._listed:
            missing = [p for p in self._listed if not (self.root / p).is_file()]
            if missing:
                problems.append(f"{len(missing)} file(s) named in the split lists do not exist, e.g. {missing[0]}")
        return problems

    def _folder_problems(self) -> list[str]:
        problems = []
        if self.layout is Layout.TEST_SET:
            return problems
        empty = [f.name for f in self._word_folders() if not _wavs(f)]
        if empty:
            problems.append(f"word folder(s) with no .wav files: {', '.join(empty)}")
        if self.noise_dir is None:
            problems.append("no _background_noise_ folder: no noise augmentation, silence is all zeros")
        return problems

    def _note_problems(self, clip: Clip, problems: tuple[str, ...], into: dict[str, list[str]]) -> None:
        for problem in problems:
            if problem == NEAR_SILENT and clip.label == SILENCE:
                continue  # a quiet _silence_ clip is what it should be
            into.setdefault(problem, []).append(self._relative(clip.path))

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _read_all(self, info: DatasetInfo) -> None:
        for clip in progress(self._all_word_clips, desc="read", unit="clip", leave=False):
            try:
                _, wav = read_wav(clip.path)
            except BadAudioError as exc:
                info.unreadable[self._relative(clip.path)] = exc.reason
                continue
            info.files_read += 1
            info.duration_s += wav.duration_s
            info.sample_rates[wav.sample_rate] += 1
            self._note_problems(clip, wav.problems, info.clip_problems)
        if info.unreadable:
            named = [f"{name} ({reason})" for name, reason in info.unreadable.items()]
            info.problems.append(f"{len(named)} unreadable file(s): {_names(named)}")
        for problem, text in PROBLEMS.items():
            names = info.clip_problems.get(problem)
            if names:
                info.problems.append(f"{len(names)} clip(s) {text}: {_names(names)}")
        other = {r: n for r, n in info.sample_rates.items() if r != SAMPLE_RATE}
        if other:
            info.problems.append(f"clips not at 16 kHz (resampled when loaded): {dict(other)}")


def _names(names: list[str]) -> str:
    shown = "; ".join(names[:_NAMES_SHOWN])
    return shown if len(names) <= _NAMES_SHOWN else f"{shown}; and {len(names) - _NAMES_SHOWN} more"


def _stat_entry(path: Path | None, label: str) -> bytes:
    if path is None:
        return f"{label}\n".encode()
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{label}\n".encode()


# The labels, splits and configuration are defined in kws.data.config and importable from
# here too, where callers have always found them.
__all__ = [
    "BACKGROUND_DIR",
    "LIST_FILES",
    "SILENCE",
    "SPLITS",
    "UNKNOWN",
    "Clip",
    "DataConfig",
    "DatasetInfo",
    "Layout",
    "SpeechCommands",
    "detect_layout",
]
