"""A minimal ctypes binding to libespeak-ng, as shipped by the ``espeakng-loader`` wheel.

Only what offline word synthesis needs: initialise in synchronous retrieval mode, pick a
voice, set rate/pitch/range, and render one utterance to an int16 array. libespeak-ng
keeps global state, so a process holds a single engine; parallel synthesis must use
processes, not threads.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from kws.errors import KwsError

# espeak_AUDIO_OUTPUT: synthesise in the calling thread and hand samples to the callback.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize option: return an error instead of calling exit() on bad data.
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0

# espeak_PARAMETER
RATE = 1
VOLUME = 2
PITCH = 3
RANGE = 4
WORDGAP = 7

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(KwsError, RuntimeError):
    """libespeak-ng could not be loaded or refused a request."""


class _Engine:
    """The process-wide libespeak-ng instance."""

    def __init__(self) -> None:
        import espeakng_loader

        self.library_path = espeakng_loader.get_library_path()
        self.data_path = espeakng_loader.get_data_path()
        try:
            lib = ctypes.CDLL(self.library_path)
        except OSError as exc:
            raise EspeakError(f"cannot load libespeak-ng from {self.library_path}: {exc}") from exc
        self._declare(lib)
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            raise EspeakError(f"espeak_Initialize failed with data at {self.data_path}")
        self.lib = lib
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        # The callback object must outlive every synthesis call, so it lives on the engine.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)
        self.version = lib.espeak_Info(None).decode()
        # Some generators (speechPlayer, used by the klatt voices) draw from libc's rand().
        self._libc = ctypes.CDLL(None)
        self._libc.srand.argtypes = [ctypes.c_uint]
        self._libc.srand.restype = None

    @staticmethod
    def _declare(lib: ctypes.CDLL) -> None:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
            ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None

    def _collect(self, samples, count, _events) -> int:
        if count > 0 and samples:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = keep synthesising

    def set_voice(self, name: str) -> None:
        if self.lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise EspeakError(f"eSpeak NG has no voice {name!r}")

    def set_parameter(self, parameter: int, value: int) -> None:
        if self.lib.espeak_SetParameter(parameter, int(value), 0) != _EE_OK:
            raise EspeakError(f"eSpeak NG refused parameter {parameter} = {value}")

    def seed(self, seed: int) -> None:
        """Seed both random sources eSpeak NG draws from (it seeds itself from the clock)."""
        self.lib.espeak_ng_SetRandSeed(seed & 0x7FFFFFFF)
        self._libc.srand(seed & 0xFFFFFFFF)

    def synth(self, text: str) -> np.ndarray:
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        status = self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth failed ({status}) on {text!r}")
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def engine() -> _Engine:
    """The process's engine, created on first use."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
        return _engine


def synthesize(
    text: str, voice: str, *, rate: int, pitch: int, pitch_range: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Render ``text`` with ``voice`` (e.g. ``"en-us+m3"``): (int16 samples, sample rate).

    Every parameter and the random seed are set on each call, so the result does not
    depend on earlier calls.
    """
    eng = engine()
    with _engine_lock:
        eng.set_voice(voice)
        eng.set_parameter(RATE, rate)
        eng.set_parameter(PITCH, pitch)
        eng.set_parameter(RANGE, pitch_range)
        eng.set_parameter(VOLUME, 100)
        eng.set_parameter(WORDGAP, 0)
        eng.seed(seed)
        return eng.synth(text), eng.sample_rate


def version() -> str:
    return engine().version


def data_path() -> Path:
    return Path(engine().data_path)
