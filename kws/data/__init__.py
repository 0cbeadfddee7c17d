"""Speech Commands loading: layouts, the reference split, the 12-label mapping, WAV
reading and training-time augmentation. Nothing here imports TensorFlow."""

from kws.data.augment import Augmentation
from kws.data.config import (
    ARM_LABELS,
    KEYWORDS,
    MLPERF_LABELS,
    SILENCE,
    SPLITS,
    UNKNOWN,
    Clip,
    DataConfig,
    Layout,
)
from kws.data.dataset import SpeechCommands, detect_layout
from kws.data.split import speaker_of, which_split
from kws.data.wav import read_wav

__all__ = [
    "ARM_LABELS",
    "KEYWORDS",
    "MLPERF_LABELS",
    "SILENCE",
    "SPLITS",
    "UNKNOWN",
    "Augmentation",
    "Clip",
    "DataConfig",
    "Layout",
    "SpeechCommands",
    "detect_layout",
    "read_wav",
    "speaker_of",
    "which_split",
]
