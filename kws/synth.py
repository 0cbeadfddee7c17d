"""The embedded default dataset: keywords spoken by eSpeak NG, synthesised offline.

The output has the layout of the Speech Commands v0.02 training archive, so the loader
reads it exactly like the real dataset::

    OUT/<word>/<speaker>_nohash_<n>.wav     16 kHz mono int16, exactly 1 s
    OUT/_background_noise_/*.wav           long noise recordings (synthesised or copied)
    OUT/validation_list.txt, testing_list.txt
    OUT/SYNTH.json                          how it was made: parameters, counts, speakers

A speaker is one fixed eSpeak NG voice (English accent + voice variant + rate + pitch +
pitch range) with an 8-hex-digit id. Speakers are assigned to splits through the
reference hash of their id, so no speaker appears in two splits, and each clip is a pure
function of ``(seed, word, speaker, repetition)``: the same seed gives byte-identical
WAV files whatever the order or the number of worker processes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import json
import math
import os
import shutil
import sys
import time
import wave
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kws import progress as _progress
from kws._fs import atomic_directory, cache_root
from kws.data.dataset import BACKGROUND_DIR, KEYWORDS, LIST_FILES, SPLITS
from kws.data.split import which_split
from kws.data.wav import CLIP_SAMPLES, SAMPLE_RATE
from kws.errors import BadAudioError, DatasetError, KwsError

__all__ = [
    "KEYWORDS",
    "UNKNOWN_WORDS",
    "DEFAULT_CLIPS_PER_WORD",
    "DEFAULT_SPEAKERS",
    "Speaker",
    "synthesize",
    "default_dataset",
    "register",
    "which_split",
]

# Words that sound like a keyword: the model must learn to reject them.
NEAR_MISSES: tuple[str, ...] = (
    "yet", "know", "upper", "dawn", "write", "stock", "goal", "often", "own", "lift",
)
# The other words of the real Speech Commands v0.02 vocabulary.
OTHER_WORDS: tuple[str, ...] = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "backward", "forward", "follow", "learn", "visual",
)
UNKNOWN_WORDS: tuple[str, ...] = NEAR_MISSES + OTHER_WORDS

DEFAULT_CLIPS_PER_WORD: int = 500
# Unknown words get this fraction of ``clips_per_word`` each unless told otherwise.
UNKNOWN_CLIPS_FRACTION: float = 0.2
# Speakers are drawn once per dataset; each split gets its share (10 % / 10 % / 80 %).
DEFAULT_SPEAKERS: int = 256

SYNTH_FORMAT_VERSION = 1
MANIFEST_NAME = "SYNTH.json"
NOISE_DIR_NAME = BACKGROUND_DIR
_SPLIT_SHARES = {"training": 0.8, "validation": 0.1, "testing": 0.1}

# English accents bundled with espeakng-loader (espeak-ng-data/lang/gmw).
VOICES: tuple[str, ...] = (
    "en", "en-us", "en-us-nyc", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
# Voice variants (espeak-ng-data/voices/!v) that sound like a person; robotic, echoing,
# whispered and novelty variants are left out.
MALE_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3", "klatt4",
    "klatt5", "klatt6", "croak", "Alex", "Andy", "Denis", "Diogo", "Gene", "Gene2", "Henrique",
    "Hugo", "Jacky", "Lee", "Mario", "Michael", "Mike", "Nguyen", "Reed", "adam", "antonio",
    "benjamin", "boris", "david", "ed", "edward", "edward2", "grandpa", "gustave", "ian",
    "iven", "iven2", "iven3", "iven4", "john", "kaukovalta", "marcelo", "max", "michel",
    "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert",
    "sandro", "travis", "victor",
)
FEMALE_VARIANTS: tuple[str, ...] = (
    "f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty", "belinda",
    "grandma", "linda", "shelby", "steph", "steph2", "steph3", "zac",
)
# Words for the babble noise: none of them is, or sounds much like, a dataset word.
_BABBLE_WORDS: tuple[str, ...] = (
    "the", "people", "water", "morning", "because", "number", "little", "table", "window",
    "garden", "music", "paper", "river", "city", "family", "picture", "evening", "question",
    "simple", "market", "station", "village", "yellow", "mountain", "children", "kitchen",
    "doctor", "pencil", "summer", "winter", "butter", "sugar", "letter", "country", "orange",
    "basket", "camera", "travel", "animal", "purple", "flower", "holiday", "machine", "planet",
    "silver", "ticket", "engine", "island", "jacket", "lemon", "minute", "bottle", "cookie",
    "teacher", "weather", "library", "hospital", "bicycle", "chicken", "monday", "tuesday",
)


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


@dataclass(frozen=True)
class ClipResult:
    relpath: str
    speech_s: float
    rate: int
    respoken: bool  # said again faster because it was longer than max_speech_s
    cropped: bool
    noisy: bool


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
    """The dataset's speakers, split 80/10/10 by the reference hash of their ids."""
    schedule = _split_schedule(_SPLIT_SHARES)
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


# ----- audio ----------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def _resampling_filter(up: int, down: int) -> np.ndarray:
    """The low-pass filter ``resample_poly`` designs by default, designed once, not per call."""
    import scipy.signal

    m = max(up, down)
    return scipy.signal.firwin(2 * 10 * m + 1, 1.0 / m, window=("kaiser", 5.0))


def _resample(x: np.ndarray, rate: int) -> np.ndarray:
    """Polyphase resampling to 16 kHz (22,050 Hz -> 16 kHz is up 320, down 441)."""
    import scipy.signal

    if rate == SAMPLE_RATE:
        return x
    g = math.gcd(rate, SAMPLE_RATE)
    up, down = SAMPLE_RATE // g, rate // g
    return scipy.signal.resample_poly(x, up, down, window=_resampling_filter(up, down))


def _trim(x: np.ndarray, floor_db: float = -40.0, frame: int = 160) -> np.ndarray:
    """``x`` without leading and trailing 10 ms frames quieter than ``floor_db`` below the
    loudest frame (one quiet frame is kept on each side for the onset and release)."""
    n = len(x) // frame
    if n == 0:
        return x[:0]
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    active = np.flatnonzero(rms > rms.max() * 10 ** (floor_db / 20))
    if rms.max() <= 0 or active.size == 0:
        return x[:0]
    start = max(active[0] - 1, 0) * frame
    end = min((active[-1] + 2) * frame, len(x))
    return x[start:end]


def _speak(text: str, speaker: Speaker, *, rate: int, pitch: int, seed: int, max_samples: int):
    """The utterance at 16 kHz, trimmed, at most ``max_samples`` long: (samples, rate used,
    respoken, cropped). Too long an utterance is spoken again faster; cropping is the last
    resort."""
    from kws import _espeak

    for attempt in range(3):
        raw, rate_in = _espeak.render(
            text, speaker.espeak_voice, rate=rate, pitch=pitch,
            pitch_range=speaker.pitch_range, seed=seed,
        )
        x = _trim(_resample(raw.astype(np.float64) / 32768.0, rate_in))
        if x.size == 0:
            raise KwsError(f"eSpeak NG produced silence for {text!r} with {speaker.espeak_voice}")
        if len(x) <= max_samples:
            return x, rate, attempt > 0, False
        rate = min(int(math.ceil(rate * len(x) / max_samples * 1.05)), 450)
    fade = np.linspace(1.0, 0.0, SAMPLE_RATE // 50)  # 20 ms fade-out hides the cut
    x = x[:max_samples].copy()
    x[-len(fade):] *= fade
    return x, rate, True, True


def _mix_noise(clip: np.ndarray, speech: slice, noise: np.ndarray, snr_db: float, offset: int):
    """Add a 1 s stretch of ``noise`` so that speech power / noise power = ``snr_db``."""
    segment = noise[offset : offset + len(clip)]
    noise_power = float(np.mean(segment**2))
    speech_power = float(np.mean(clip[speech] ** 2))
    if noise_power <= 0 or speech_power <= 0:
        return clip
    return clip + segment * math.sqrt(speech_power / (noise_power * 10 ** (snr_db / 10)))


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2")


def _wav_bytes(samples: np.ndarray) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(np.ascontiguousarray(samples, dtype="<i2").tobytes())
    return buf.getvalue()


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """Plain write: the whole dataset folder is published atomically at the end."""
    path.write_bytes(_wav_bytes(samples))


def render_clip(spec: ClipSpec, config: SynthConfig, seed: int, noises: Sequence[np.ndarray]):
    """One 1 s clip as float64 in [-1, 1], plus what was done to it."""
    rng = np.random.default_rng(
        [seed, _STREAM_CLIP, _key(spec.word), spec.speaker.index, spec.n]
    )
    speaker = spec.speaker
    rate = int(round(speaker.rate * rng.uniform(1 - config.rate_jitter, 1 + config.rate_jitter)))
    jitter = int(rng.integers(-config.pitch_jitter, config.pitch_jitter + 1))
    pitch = int(np.clip(speaker.pitch + jitter, 0, 100))
    weights = np.asarray(config.ending_weights) / sum(config.ending_weights)
    text = spec.word + str(rng.choice(config.endings, p=weights))
    max_samples = int(config.max_speech_s * SAMPLE_RATE)
    speech, rate, respoken, cropped = _speak(
        text, speaker, rate=rate, pitch=pitch, seed=int(rng.integers(2**31)),
        max_samples=max_samples,
    )
    peak = 10 ** (rng.uniform(*config.peak_dbfs) / 20)
    speech = speech * (peak / np.max(np.abs(speech)))
    onset = int(rng.integers(0, CLIP_SAMPLES - len(speech) + 1))
    clip = np.zeros(CLIP_SAMPLES)
    clip[onset : onset + len(speech)] = speech
    noisy = bool(noises) and rng.random() >= config.clean_share
    if noisy:
        noise = noises[int(rng.integers(len(noises)))]
        clip = _mix_noise(
            clip, slice(onset, onset + len(speech)), noise,
            snr_db=rng.uniform(*config.snr_db),
            offset=int(rng.integers(0, len(noise) - CLIP_SAMPLES + 1)),
        )
    result = ClipResult(spec.relpath, len(speech) / SAMPLE_RATE, rate, respoken, cropped, noisy)
    return clip, result


def _render_batch(
    specs: Sequence[ClipSpec], out: Path, config: SynthConfig, seed: int,
    noises: Sequence[np.ndarray],
) -> list[ClipResult]:
    results = []
    for spec in specs:
        clip, result = render_clip(spec, config, seed, noises)
        _write_wav(out / spec.relpath, _to_int16(clip))
        results.append(result)
    return results


# ----- background noise -----------------------------------------------------------------
def _spectral_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown),
    nothing below 20 Hz so that brown noise does not drift."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    gain = np.zeros_like(f)
    audible = f >= 20
    gain[audible] = f[audible] ** (-exponent / 2)
    return np.fft.irfft(spectrum * gain, n)


def _smooth_envelope(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """A slowly varying positive envelope (low-passed noise), mean about 1."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum[np.fft.rfftfreq(n, 1 / SAMPLE_RATE) > cutoff_hz] = 0
    env = np.abs(np.fft.irfft(spectrum, n))
    return env / (env.mean() + 1e-12)


def _mains_hum(rng: np.random.Generator, n: int) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    fundamental = 50.0
    hum = sum(
        np.sin(2 * np.pi * fundamental * k * t + rng.uniform(0, 2 * np.pi)) / k**1.2
        for k in range(1, 10)
    )
    wobble = 1 + 0.1 * np.sin(2 * np.pi * 0.3 * t)
    hiss = 0.03 * rng.standard_normal(n)
    return hum * wobble + hiss


def _running_water(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(f < 300) | (f > 5000)] = 0
    return np.fft.irfft(spectrum, n) * (0.3 + _smooth_envelope(rng, n, 12.0))


def _babble(rng: np.random.Generator, n: int, config: SynthConfig, streams: int = 6) -> np.ndarray:
    """Several synthetic voices talking over each other."""
    from kws import _espeak

    total = np.zeros(n)
    variants = config.male_variants + config.female_variants
    for _ in range(streams):
        voice = f"{rng.choice(config.voices)}+{rng.choice(variants)}"
        stream, filled = np.zeros(n), int(rng.integers(0, SAMPLE_RATE))
        while filled < n:
            words = rng.choice(_BABBLE_WORDS, size=int(rng.integers(4, 10)))
            raw, rate_in = _espeak.render(
                " ".join(words) + ".", voice, rate=int(rng.integers(140, 220)),
                pitch=int(rng.integers(20, 80)), pitch_range=int(rng.integers(30, 90)),
                seed=int(rng.integers(2**31)),
            )
            x = _resample(raw.astype(np.float64) / 32768.0, rate_in)[: n - filled]
            stream[filled : filled + len(x)] = x
            filled += len(x) + int(rng.integers(SAMPLE_RATE // 20, SAMPLE_RATE // 2))
        rms = np.sqrt(np.mean(stream**2))
        total += stream / (rms + 1e-12) * rng.uniform(0.5, 1.0)
    return total


def _synthetic_noises(config: SynthConfig, seed: int) -> dict[str, np.ndarray]:
    """Name -> noise at 16 kHz, each at -20 dBFS RMS."""
    n = int(config.noise_seconds * SAMPLE_RATE)
    makers = {
        "white_noise.wav": lambda rng: _spectral_noise(rng, n, 0.0),
        "pink_noise.wav": lambda rng: _spectral_noise(rng, n, 1.0),
        "brown_noise.wav": lambda rng: _spectral_noise(rng, n, 2.0),
        "mains_hum.wav": lambda rng: _mains_hum(rng, n),
        "running_water.wav": lambda rng: _running_water(rng, n),
        "babble.wav": lambda rng: _babble(rng, n, config),
    }
    noises = {}
    for name, make in makers.items():
        x = make(np.random.default_rng([seed, _STREAM_NOISE, _key(name)]))
        x = x * (10 ** (-20 / 20) / (np.sqrt(np.mean(x**2)) + 1e-12))
        noises[name] = np.clip(x, -0.99, 0.99)
    return noises


def _noise_files(noise_dir: Path) -> list[Path]:
    """The WAVs of ``noise_dir/_background_noise_`` or, if there is none, of ``noise_dir``."""
    if not noise_dir.is_dir():
        raise DatasetError(f"noise_dir {noise_dir} is not a folder")
    folder = noise_dir / NOISE_DIR_NAME if (noise_dir / NOISE_DIR_NAME).is_dir() else noise_dir
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not files:
        raise DatasetError(f"noise_dir {noise_dir} holds no .wav files (looked in {folder})")
    return files


def _is_16k_mono_pcm16(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as w:
            return (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SAMPLE_RATE, 1, 2)
    except (wave.Error, EOFError, OSError):
        return False


def _write_noises(
    folder: Path, config: SynthConfig, seed: int, noise_dir: Path | None
) -> list[dict]:
    """Fill ``folder`` with the background recordings; returns their manifest entries."""
    from kws.data.wav import read_wav

    folder.mkdir()
    entries = []
    if noise_dir is None:
        for name, x in _synthetic_noises(config, seed).items():
            samples = _to_int16(x)
            _write_wav(folder / name, samples)
            seconds = len(samples) / SAMPLE_RATE
            entries.append({"file": name, "seconds": seconds, "source": "synthetic"})
        return entries
    for path in _noise_files(noise_dir):
        name = path.stem + ".wav"
        if _is_16k_mono_pcm16(path):
            shutil.copyfile(path, folder / name)  # an exact copy of the recording
            with wave.open(str(folder / name), "rb") as w:
                samples, rate, channels = w.getnframes(), SAMPLE_RATE, 1
        else:
            data, info = read_wav(path, sample_rate=SAMPLE_RATE, length=None)
            _write_wav(folder / name, data)
            samples, rate, channels = len(data), info.sample_rate, info.channels
        if samples < CLIP_SAMPLES:
            raise BadAudioError(path, "background noise must be at least 1 s long")
        entries.append({
            "file": name, "seconds": samples / SAMPLE_RATE, "source": str(path),
            "original_sample_rate": rate, "original_channels": channels,
        })
    return entries


def _load_noises(folder: Path) -> list[np.ndarray]:
    """The background recordings as float64 in [-1, 1], in file-name order."""
    noises = []
    for path in sorted(folder.glob("*.wav")):
        with wave.open(str(path), "rb") as w:
            data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        noises.append(data.astype(np.float64) / 32768.0)
    return noises


# ----- parallel rendering ---------------------------------------------------------------
_worker_noises: list[np.ndarray] = []


def _init_worker(noise_folder: str) -> None:
    global _worker_noises
    _worker_noises = _load_noises(Path(noise_folder))


def _worker_batch(specs, out: str, config: SynthConfig, seed: int) -> list[ClipResult]:
    return _render_batch(specs, Path(out), config, seed, _worker_noises)


def _workers(n_clips: int) -> int:
    """Worker processes: ``$KWS_SYNTH_WORKERS`` if set, else one per CPU for big jobs
    (starting one costs about as long as rendering a thousand clips)."""
    env = os.environ.get("KWS_SYNTH_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise KwsError(f"KWS_SYNTH_WORKERS must be an integer, got {env!r}") from None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, 8)) if n_clips >= 1500 else 1


def _batches(specs: Sequence[ClipSpec], size: int) -> list[Sequence[ClipSpec]]:
    return [specs[i : i + size] for i in range(0, len(specs), size)]


def _render_serial(
    specs: Sequence[ClipSpec], out: Path, config: SynthConfig, seed: int, bar
) -> list[ClipResult]:
    noises = _load_noises(out / NOISE_DIR_NAME)
    results = []
    for batch in _batches(specs, 16):
        results += _render_batch(batch, out, config, seed, noises)
        bar.update(len(batch))
    return results


def _render_parallel(
    specs: Sequence[ClipSpec], out: Path, config: SynthConfig, seed: int, bar, workers: int
) -> list[ClipResult]:
    import multiprocessing

    # spawn, not fork: the caller may hold threads (TensorFlow) that fork would break.
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker, initargs=(str(out / NOISE_DIR_NAME),),
    )
    try:
        futures = [
            pool.submit(_worker_batch, batch, str(out), config, seed)
            for batch in _batches(specs, 64)
        ]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                bar.update(len(future.result()))
        return [r for future in futures for r in future.result()]
    finally:
        # On error, drop queued batches and let running ones finish before the caller
        # removes the temporary folder they write into.
        pool.shutdown(wait=True, cancel_futures=True)


def _render_all(
    specs: Sequence[ClipSpec], out: Path, config: SynthConfig, seed: int, bar
) -> list[ClipResult]:
    workers = _workers(len(specs))
    if workers > 1:
        try:
            return _render_parallel(specs, out, config, seed, bar, workers)
        except BrokenProcessPool:
            # Workers cannot start when the main module cannot be re-imported (a script
            # read from stdin, some notebooks). Clips are deterministic, so redoing them
            # here rewrites any finished ones with the same bytes.
            bar.reset()
    return _render_serial(specs, out, config, seed, bar)


# ----- the dataset ----------------------------------------------------------------------
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise KwsError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise KwsError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def make_config(clips_per_word: int, unknown_clips_per_word: int | None) -> SynthConfig:
    clips_per_word = _check_int("clips_per_word", clips_per_word, 1)
    if unknown_clips_per_word is None:
        unknown_clips_per_word = max(1, round(clips_per_word * UNKNOWN_CLIPS_FRACTION))
    unknown_clips_per_word = _check_int("unknown_clips_per_word", unknown_clips_per_word, 0)
    speakers = _check_int("DEFAULT_SPEAKERS", DEFAULT_SPEAKERS, 3)
    return SynthConfig(clips_per_word, unknown_clips_per_word, speakers)


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
            trash = out.with_name(f".{out.name}.old-{os.getpid()}-{time.monotonic_ns()}")
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


# ----- the cached default dataset -------------------------------------------------------
def _default_config() -> SynthConfig:
    # Module attributes are read at call time so that tests can shrink the default.
    return make_config(DEFAULT_CLIPS_PER_WORD, None)


def default_key(seed: int = 0) -> str:
    """Short hash of everything that shapes the default dataset."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        loader_version = version("espeakng-loader")
    except PackageNotFoundError:  # pragma: no cover
        loader_version = "unknown"
    blob = json.dumps(
        {
            "config": asdict(_default_config()), "seed": seed,
            "format_version": SYNTH_FORMAT_VERSION, "espeakng_loader": loader_version,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def default_dataset(*, seed: int = 0) -> Path:
    """The default dataset, synthesised into the cache on first use and reused after.

    A file lock next to it makes concurrent callers (pytest-xdist workers) build it once.
    """
    from filelock import FileLock

    seed = _check_int("seed", seed, 0)
    root = cache_root() / "datasets"
    path = root / f"synth-{default_key(seed)}"
    if (path / MANIFEST_NAME).is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if not (path / MANIFEST_NAME).is_file():
            config = _default_config()
            synthesize(
                path, seed=seed, clips_per_word=config.clips_per_word,
                unknown_clips_per_word=config.unknown_clips_per_word, overwrite=True,
            )
    return path


# ----- command line ---------------------------------------------------------------------
def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="synthesise the keyword dataset offline with eSpeak NG",
        description=(
            "Write a Speech Commands-style dataset (training-archive layout) of keywords "
            "and unknown words spoken by synthetic eSpeak NG speakers."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder (must not exist)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--clips-per-word", type=int, default=DEFAULT_CLIPS_PER_WORD,
        help=f"clips of each keyword (default {DEFAULT_CLIPS_PER_WORD})",
    )
    parser.add_argument(
        "--unknown-clips-per-word", type=int, default=None,
        help="clips of each unknown word (default: a fifth of --clips-per-word)",
    )
    parser.add_argument(
        "--noise-dir", type=Path, default=None,
        help="copy background noise from this folder instead of synthesising it",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.set_defaults(func=_run_cli)


def _run_cli(args: argparse.Namespace) -> int:
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
