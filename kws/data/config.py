"""What a Speech Commands dataset is made of: the labels and their orders, the splits,
the layouts, the configuration that maps word folders to labels, and the records that
describe clips and a whole dataset. Plain data, so that the command line, the synthetic
dataset builder and cache keys can use it without loading anything."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
SILENCE = "_silence_"
UNKNOWN = "_unknown_"
BACKGROUND_DIR = "_background_noise_"
# The two label orders in the sources; an external model's order is always a parameter.
ARM_LABELS = (SILENCE, UNKNOWN, *KEYWORDS)
MLPERF_LABELS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes", SILENCE, UNKNOWN)
SPLITS = ("training", "validation", "testing")
LIST_FILES = {"validation": "validation_list.txt", "testing": "testing_list.txt"}


class Layout(enum.Enum):
    TRAINING_ARCHIVE = "training-archive"
    TEST_SET = "test-set"


@dataclass(frozen=True)
class DataConfig:
    """How a folder of word clips becomes a labelled dataset."""

    wanted_words: tuple[str, ...] = KEYWORDS
    labels: tuple[str, ...] = ARM_LABELS
    silence_pct: float = 10.0
    unknown_pct: float = 10.0
    validation_pct: float = 10.0
    testing_pct: float = 10.0
    # Background noise for silence and augmentation; default: the dataset's own folder.
    noise_dir: Path | None = None
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "wanted_words", tuple(self.wanted_words))
        object.__setattr__(self, "labels", tuple(self.labels))
        if not self.wanted_words:
            raise ValueError("wanted_words must name at least one word")
        expected = set(self.wanted_words) | {SILENCE, UNKNOWN}
        if len(self.labels) != len(set(self.labels)) or set(self.labels) != expected:
            raise ValueError(
                f"labels {list(self.labels)} must list each of {sorted(expected)} exactly once"
            )
        for name in ("silence_pct", "unknown_pct", "validation_pct", "testing_pct"):
            value = getattr(self, name)
            if not 0 <= value <= 100:
                raise ValueError(f"{name} must be in [0, 100], got {value}")
        if self.validation_pct + self.testing_pct >= 100:
            raise ValueError("validation_pct + testing_pct must leave some training data")

    def label_index(self, label: str) -> int:
        return self.labels.index(label)


@dataclass(frozen=True)
class Clip:
    """One example. ``path`` is ``None`` for a generated ``_silence_`` clip."""

    path: Path | None
    label: str
    word: str
    speaker: str | None
    split: str


@dataclass
class DatasetInfo:
    root: Path
    layout: Layout
    split_source: str
    counts: dict[str, Counter] = field(default_factory=dict)  # split -> label -> clips
    speakers: dict[str, set] = field(default_factory=dict)  # split -> speaker ids
    duration_s: float = 0.0
    files_read: int = 0
    sample_rates: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    # Files that cannot be used (relative path -> reason); any makes `kws data info` fail.
    unreadable: dict[str, str] = field(default_factory=dict)
    # Clip problems (a key of kws.data.wav.PROBLEMS) -> the relative paths that have them.
    clip_problems: dict[str, list[str]] = field(default_factory=dict)
