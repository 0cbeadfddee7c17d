"""The Speech Commands reference split (``input_data.which_set`` in the TensorFlow
speech_commands example): a file's split depends only on its speaker, so the same
speaker always lands in the same split, and adding files never moves old ones."""

from __future__ import annotations

import hashlib
import os
import re

# The reference uses 2**27 - 1 as the largest number of files per class.
_MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
_NOHASH = re.compile(r"_nohash_.*$")


def _hash_name(filename: str) -> str:
    return _NOHASH.sub("", os.path.basename(filename))


def speaker_of(filename: str) -> str:
    """The speaker id in a Speech Commands file name.

    ``0a7c2a8d_nohash_0.wav`` -> ``0a7c2a8d``; the test set's unknown files carry the word
    first (``backward_0c540988_nohash_0.wav.wav`` -> ``0c540988``).
    """
    return _hash_name(filename).rsplit("_", 1)[-1]


def which_split(filename: str, validation_pct: float = 10.0, testing_pct: float = 10.0) -> str:
    """``"validation"``, ``"testing"`` or ``"training"`` for a clip, by the reference hash."""
    if not (validation_pct >= 0 and testing_pct >= 0 and validation_pct + testing_pct <= 100):
        raise ValueError(
            f"validation_pct ({validation_pct}) and testing_pct ({testing_pct}) must be >= 0 "
            "and sum to at most 100"
        )
    digest = hashlib.sha1(_hash_name(filename).encode("utf-8")).hexdigest()
    pct = (int(digest, 16) % (_MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_NUM_WAVS_PER_CLASS)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + testing_pct:
        return "testing"
    return "training"
