"""A minimal ctypes binding to libespeak-ng, as shipped by the ``espeakng-loader`` wheel.

Only what offline word synthesis needs: render one utterance with a given voice, rate,
pitch and pitch range to an int16 array (synchronous mode, samples handed to a callback).

libespeak-ng keeps global state that carries over from one utterance to the next (the
pitch-flutter phase, the glottal cycle counter, the automatic gain control), so the same
request gives slightly different samples depending on what was said before. To make every
utterance a pure function of its arguments, :func:`render` loads a fresh copy of the
library for each call and unloads it afterwards (about half a millisecond). The same global
state means that parallel synthesis must use processes, not threads.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass

import numpy as np

from kws.errors import KwsError

# espeak_AUDIO_OUTPUT: synthesise in the calling thread and hand samples to the callback.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize option: return an error instead of calling exit() on bad data.
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0

# espeak_PARAMETER values this module sets.
_RATE = 1
_VOLUME = 2
_PITCH = 3
_RANGE = 4
_WORDGAP = 7

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class EspeakError(KwsError, RuntimeError):
    """libespeak-ng could not be loaded or refused a request."""


@dataclass(frozen=True)
class EngineInfo:
    version: str
    sample_rate: int
    library_path: str
    data_path: str


def _declare(lib: ctypes.CDLL) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
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
    lib.espeak_ng_SetRandSeed.restype = ctypes.c_int


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.srand.argtypes = [ctypes.c_uint]
    libc.srand.restype = None
    return libc


class _Session:
    """One freshly loaded and initialised libespeak-ng; unloaded by :meth:`close`."""

    def __init__(self, library_path: str, data_path: str) -> None:
        self.library_path = library_path
        self.libc = _libc()
        try:
            self.lib = ctypes.CDLL(library_path, mode=os.RTLD_LOCAL)
        except OSError as exc:
            raise EspeakError(f"cannot load libespeak-ng from {library_path}: {exc}") from exc
        _declare(self.lib)
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT
        )
        if rate <= 0:
            self.close()
            raise EspeakError(f"espeak_Initialize failed with the voice data at {data_path}")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        # The callback object must stay referenced while the library may call it.
        self._callback = _SynthCallback(self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, samples, count, _events) -> int:
        if count > 0 and samples:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
        return 0  # 0 = keep synthesising

    def version(self) -> str:
        return self.lib.espeak_Info(None).decode()

    def set_voice(self, name: str) -> None:
        if self.lib.espeak_SetVoiceByName(name.encode()) != _EE_OK:
            raise EspeakError(f"eSpeak NG has no voice {name!r}")

    def set_parameter(self, parameter: int, value: int) -> None:
        if self.lib.espeak_SetParameter(parameter, int(value), 0) != _EE_OK:
            raise EspeakError(f"eSpeak NG refused parameter {parameter} = {value}")

    def synth(self, text: str, seed: int) -> np.ndarray:
        # The library seeds its own generator from the clock at initialisation, and the
        # breath noise of some voices (e.g. ``+Reed``) draws from libc's rand().
        self.lib.espeak_ng_SetRandSeed(seed & 0x7FFFFFFF)
        self.libc.srand(seed & 0xFFFFFFFF)
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        status = self.lib.espeak_Synth(
            data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        chunks, self._chunks = self._chunks, []
        if status != _EE_OK:
            raise EspeakError(f"espeak_Synth failed with status {status} on {text!r}")
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)

    def close(self) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)


def _data_overlay(data_path: str, into: str) -> dict[str, str]:
    """Mirror ``data_path`` in ``into`` with symlinks, adding a lower-case alias for every
    language file; returns language name -> lower-case file path (``en-us`` -> ``gmw/en-us``).

    eSpeak NG lower-cases a voice name before looking for a file of that name and, not
    finding ``lang/gmw/en-us`` (the file is ``en-US``), scans every voice file instead:
    a few milliseconds per utterance once each one starts from a fresh library.
    """
    for entry in os.scandir(data_path):
        if entry.name != "lang":
            os.symlink(entry.path, os.path.join(into, entry.name))
    lang = os.path.join(data_path, "lang")
    files: dict[str, str] = {}
    for folder, _dirs, names in os.walk(lang):
        rel = os.path.relpath(folder, lang)
        target_dir = os.path.normpath(os.path.join(into, "lang", rel))
        os.makedirs(target_dir, exist_ok=True)
        for name in names:
            os.symlink(os.path.join(folder, name), os.path.join(target_dir, name))
            lower = name.lower()
            if lower != name and lower not in names:
                os.symlink(os.path.join(folder, name), os.path.join(target_dir, lower))
            path = lower if rel == "." else f"{rel.replace(os.sep, '/')}/{lower}"
            files.setdefault(lower, path)
    return files


def _scratch_folder() -> str:
    """A fresh private folder in the temporary directory, named after this process.

    A process killed with SIGKILL (a synthesis worker whose parent died) skips the
    ``atexit`` removal, so each new folder first removes those whose process is gone.
    Only dead creators count: a live one may render for as long as it likes.
    """
    from pathlib import Path

    from kws.store.fs import remove_stale_siblings, temp_prefix

    anchor = Path(tempfile.gettempdir()) / "kws-espeak"
    remove_stale_siblings(anchor, live_age=None)
    return tempfile.mkdtemp(prefix=temp_prefix(anchor), suffix=".tmp", dir=anchor.parent)


class _Loader:
    """Loads libespeak-ng so that each load starts from a clean state.

    Unloading only resets the library if nothing else in the process holds it open
    (another package may have loaded the same file); then a private copy is used.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self.library_path = espeakng_loader.get_library_path()
        self.original_data_path = espeakng_loader.get_data_path()
        self._scratch = _scratch_folder()
        atexit.register(shutil.rmtree, self._scratch, True)
        self.data_path = os.path.join(self._scratch, "espeak-ng-data")
        os.mkdir(self.data_path)
        self._language_files = _data_overlay(self.original_data_path, self.data_path)
        self._private = False

    def voice_file(self, voice: str) -> str:
        """``en-us+m3`` -> ``gmw/en-us+m3``: a name eSpeak NG finds without a scan."""
        base, plus, variant = voice.partition("+")
        return self._language_files.get(base.lower(), base) + plus + variant

    def _still_loaded(self, path: str) -> bool:
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
        except OSError:
            return False
        _ctypes.dlclose(lib._handle)  # undo the reference RTLD_NOLOAD just took
        return True

    def _use_private_copy(self) -> None:
        private = os.path.join(self._scratch, "libespeak-ng-private.so")
        shutil.copyfile(self.library_path, private)
        self.library_path = private
        self._private = True

    def open(self) -> _Session:
        return _Session(self.library_path, self.data_path)

    def close(self, session: _Session) -> None:
        session.close()
        if not self._private and self._still_loaded(session.library_path):
            self._use_private_copy()


_loader: _Loader | None = None
_lock = threading.Lock()


def _get_loader() -> _Loader:
    global _loader
    if _loader is None:
        _loader = _Loader()
    return _loader


def render(
    text: str, voice: str, *, rate: int, pitch: int, pitch_range: int, seed: int = 0
) -> tuple[np.ndarray, int]:
    """Speak ``text`` with ``voice`` (e.g. ``"en-us+m3"``): (int16 samples, sample rate).

    ``rate`` is in words per minute (80..450), ``pitch`` and ``pitch_range`` are eSpeak's
    0..100 scales (50 = the voice's own). The result depends only on the arguments.
    """
    with _lock:
        loader = _get_loader()
        session = loader.open()
        try:
            session.set_voice(loader.voice_file(voice))
            session.set_parameter(_RATE, rate)
            session.set_parameter(_PITCH, pitch)
            session.set_parameter(_RANGE, pitch_range)
            session.set_parameter(_VOLUME, 100)
            session.set_parameter(_WORDGAP, 0)
            return session.synth(text, seed), session.sample_rate
        finally:
            loader.close(session)


def info() -> EngineInfo:
    """The library's version and output sample rate."""
    with _lock:
        loader = _get_loader()
        session = loader.open()
        try:
            return EngineInfo(
                version=session.version(),
                sample_rate=session.sample_rate,
                library_path=loader.library_path,
                data_path=loader.original_data_path,
            )
        finally:
            loader.close(session)
