"""What the dataset will hold, decided before any audio is made: its parameters, its
speakers (split by the reference hash of their ids) and every clip, each a pure function of
the seed."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from kws.data.config import KEYWORDS, SPLITS
from kws.data.split import which_split
from kws.errors import KwsError
from kws.synth import defaults
from kws.synth.defaults import FEMALE_VARIANTS, MALE_VARIANTS, UNKNOWN_WORDS, VOICES


@dataclass(frozen=True)
class SynthConfig:
    """Every parameter that shapes the dataset; part of the default dataset's cache key."""

    clips_per_word: int
    unknown_clips_per_word: int
    speakers: int
    keywords: tuple[str, ...] = KEYWORDS
    unknown_words: tuple[str, ...] = UNKNOWN_WORDS
    voices: tuple[str, ...] = VOICES
    male_variants: tuple[str, ...] = MALE_VARIANTS
    female_variants: tuple[str, ...] = FEMALE_VARIANTS
    female_share: float = 0.45
    rate_wpm: tuple[int, int] = (110, 190)
    pitch: tuple[int, int] = (20, 80)  # eSpeak's 0..100 scale, 50 = the variant's own
    pitch_range: tuple[int, int] = (15, 90)
    # Per clip, as a person never says a word twice the same way.
    rate_jitter: float = 0.08
    pitch_jitter: int = 6
    # Trailing punctuation sets the intonation: statement, exclamation, question, list.
    endings: tuple[str, ...] = (".", "!", "?", ",")
    ending_weights: tuple[float, ...] = (0.45, 0.2, 0.2, 0.15)
    peak_dbfs: tuple[float, float] = (-30.0, -6.0)
    snr_db: tuple[float, float] = (10.0, 40.0)
    clean_share: float = 0.25
    max_speech_s: float = 0.9
    noise_seconds: float = 60.0
    # Shares of the speakers (and so of each word's clips) per split, in SPLITS order.
    split_shares: tuple[float, float, float] = defaults.SPLIT_SHARES

    @property
    def words(self) -> tuple[str, ...]:
        return self.keywords + self.unknown_words

    def clips_for(self, word: str) -> int:
        return self.clips_per_word if word in self.keywords else self.unknown_clips_per_word


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: a fixed eSpeak NG voice."""

    index: int
    speaker_id: str
    split: str
    voice: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int

    @property
    def espeak_voice(self) -> str:
        return f"{self.voice}+{self.variant}"


@dataclass(frozen=True)
class ClipSpec:
    word: str
    speaker: Speaker
    n: int

    @property
    def relpath(self) -> str:
        return f"{self.word}/{self.speaker.speaker_id}_nohash_{self.n}.wav"


# Independent random streams (first entries of each generator's seed sequence).
_STREAM_SPEAKER, _STREAM_ORDER, _STREAM_CLIP, _STREAM_NOISE = 1, 2, 3, 4


def _key(text: str) -> int:
    """A stable integer for a string, for seeding (``hash()`` changes between runs)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


# ----- speakers and the clip plan -------------------------------------------------------
def _split_schedule(shares: dict[str, float]) -> Iterator[str]:
    """An endless sequence of splits in proportion to ``shares``.

    Validation and testing come first, so even a handful of clips covers every split;
    after that each step goes to the split furthest behind its share.
    """
    counts = Counter()
    for split in ("validation", "testing"):
        if shares[split] > 0:
            counts[split] += 1
            yield split
    while True:
        step = sum(counts.values()) + 1
        split = max(SPLITS, key=lambda s: shares[s] * step - counts[s])
        counts[split] += 1
        yield split


def _speaker_id(seed: int, index: int, split: str, taken: set[str]) -> str:
    """A new 8-hex-digit id that the reference hash puts into ``split``."""
    for attempt in range(100_000):
        sid = hashlib.sha256(f"kws-synth/{seed}/{index}/{attempt}".encode()).hexdigest()[:8]
        if sid not in taken and which_split(f"{sid}_nohash_0.wav") == split:
            return sid
    raise KwsError(f"no speaker id for split {split} found")  # pragma: no cover


def make_speakers(config: SynthConfig, seed: int) -> tuple[Speaker, ...]:
    """The dataset's speakers, split by ``config.split_shares`` through the reference hash
    of their ids."""
    schedule = _split_schedule(dict(zip(SPLITS, config.split_shares, strict=True)))
    taken: set[str] = set()
    speakers = []
    for i in range(config.speakers):
        split = next(schedule)
        rng = np.random.default_rng([seed, _STREAM_SPEAKER, i])
        female = rng.random() < config.female_share
        variants = config.female_variants if female else config.male_variants
        sid = _speaker_id(seed, i, split, taken)
        taken.add(sid)
        speakers.append(
            Speaker(
                index=i,
                speaker_id=sid,
                split=split,
                voice=str(rng.choice(config.voices)),
                variant=str(rng.choice(variants)),
                rate=int(rng.integers(config.rate_wpm[0], config.rate_wpm[1] + 1)),
                pitch=int(rng.integers(config.pitch[0], config.pitch[1] + 1)),
                pitch_range=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
            )
        )
    return tuple(speakers)


def _plan_word(
    word: str, count: int, schedule: Iterator[str], groups: dict[str, list[Speaker]], seed: int
) -> list[ClipSpec]:
    """``count`` clips of ``word``: splits from ``schedule``, speakers taken in turn (in a
    per-word order) within each split, so each speaker repeats the word as rarely as
    possible."""
    rng = np.random.default_rng([seed, _STREAM_ORDER, _key(word)])
    order = {split: rng.permutation(len(groups[split])) for split in SPLITS}
    used = Counter()
    clips = []
    for _ in range(count):
        split = next(schedule)
        members = groups[split]
        j = used[split]
        used[split] += 1
        speaker = members[order[split][j % len(members)]]
        clips.append(ClipSpec(word, speaker, j // len(members)))
    return clips


def plan_clips(config: SynthConfig, speakers: Sequence[Speaker], seed: int) -> list[ClipSpec]:
    """Every clip of the dataset. Each keyword is balanced across the splits on its own;
    the unknown words share one schedule, as together they form the ``_unknown_`` class."""
    groups = {split: [s for s in speakers if s.split == split] for split in SPLITS}
    shares = {split: len(groups[split]) / len(speakers) for split in SPLITS}
    clips: list[ClipSpec] = []
    for word in config.keywords:
        clips += _plan_word(word, config.clips_per_word, _split_schedule(shares), groups, seed)
    unknown_schedule = _split_schedule(shares)
    for word in config.unknown_words:
        clips += _plan_word(word, config.unknown_clips_per_word, unknown_schedule, groups, seed)
    return clips


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise KwsError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise KwsError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def make_config(clips_per_word: int, unknown_clips_per_word: int | None) -> SynthConfig:
    clips_per_word = _check_int("clips_per_word", clips_per_word, 1)
    if unknown_clips_per_word is None:
        unknown_clips_per_word = max(1, round(clips_per_word * defaults.UNKNOWN_CLIPS_FRACTION))
    unknown_clips_per_word = _check_int("unknown_clips_per_word", unknown_clips_per_word, 0)
    speakers = _check_int("DEFAULT_SPEAKERS", defaults.DEFAULT_SPEAKERS, 3)
    return SynthConfig(clips_per_word, unknown_clips_per_word, speakers)

