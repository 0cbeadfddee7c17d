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

The modules, in the order a dataset is made: :mod:`~kws.synth.defaults` (words, voices,
sizes), :mod:`~kws.synth.plan` (parameters, speakers, clips), :mod:`~kws.synth.audio`
(one clip), :mod:`~kws.synth.noise` (background recordings), :mod:`~kws.synth.workers`
(every clip, in parallel), :mod:`~kws.synth.dataset` (:func:`synthesize`) and
:mod:`~kws.synth.cached` (:func:`default_dataset`).

Only the plain-data defaults are imported with the package; every other name is imported
on first use, so that the command line can register ``kws synth`` (which shows the
defaults) without loading numpy, scipy and the loader.
"""

from __future__ import annotations

import importlib

from kws.synth.defaults import (
    DEFAULT_CLIPS_PER_WORD,
    DEFAULT_SPEAKERS,
    FEMALE_VARIANTS,
    MALE_VARIANTS,
    NEAR_MISSES,
    OTHER_WORDS,
    UNKNOWN_CLIPS_FRACTION,
    UNKNOWN_WORDS,
    VOICES,
)

#: Public name -> the module that defines it.
_LAZY = {
    "KEYWORDS": "kws.data.config",
    "which_split": "kws.data.split",
    "ClipSpec": "kws.synth.plan",
    "Speaker": "kws.synth.plan",
    "SynthConfig": "kws.synth.plan",
    "make_config": "kws.synth.plan",
    "make_speakers": "kws.synth.plan",
    "plan_clips": "kws.synth.plan",
    "ClipResult": "kws.synth.audio",
    "render_clip": "kws.synth.audio",
    "NOISE_DIR_NAME": "kws.synth.noise",
    "MANIFEST_NAME": "kws.synth.dataset",
    "SYNTH_FORMAT_VERSION": "kws.synth.dataset",
    "synthesize": "kws.synth.dataset",
    "default_key": "kws.synth.cached",
    "default_dataset": "kws.synth.cached",
}

__all__ = [
    "DEFAULT_CLIPS_PER_WORD",
    "DEFAULT_SPEAKERS",
    "FEMALE_VARIANTS",
    "MALE_VARIANTS",
    "NEAR_MISSES",
    "OTHER_WORDS",
    "UNKNOWN_CLIPS_FRACTION",
    "UNKNOWN_WORDS",
    "VOICES",
    *_LAZY,
]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
