"""Rendering every clip, in worker processes for big jobs. Clips do not depend on which
process renders them or in what order, so the result is the same either way.

Workers die with their parent. A parent that is killed (SIGKILL runs no cleanup) would
otherwise leave them rendering for minutes, holding its stdout open, so that whoever
reads that pipe never sees its end, and keeping multiprocessing's resource tracker
alive too. Each worker asks Linux to send it SIGKILL when its parent dies
(``prctl(PR_SET_PDEATHSIG)``), then checks that the parent has not died already, before
the request took effect. (Linux sends the signal when the *thread* that started the
worker ends; the pool starts its workers from the calling thread, which waits for the
pool to finish, so that is the parent's death.) The tracker exits by itself once the
last process holding its pipe (parent and workers) is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from kws.errors import KwsError
from kws.synth.audio import ClipResult, _render_batch
from kws.synth.noise import NOISE_DIR_NAME, _load_noises
from kws.synth.plan import ClipSpec, SynthConfig

_worker_noises: list[np.ndarray] = []

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Have this process killed when ``parent`` dies (Linux), and exit now if it already
    has. Elsewhere only the check runs: a worker then notices between batches."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        pass
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(noise_folder: str, parent: int) -> None:
    global _worker_noises
    _die_with_parent(parent)
    _worker_noises = _load_noises(Path(noise_folder))


def _worker_batch(specs, out: str, config: SynthConfig, seed: int, parent: int) -> list[ClipResult]:
    if os.getppid() != parent:  # orphaned where PR_SET_PDEATHSIG is not available
        os._exit(1)
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
        initializer=_init_worker, initargs=(str(out / NOISE_DIR_NAME), os.getpid()),
    )
    try:
        futures = [
            pool.submit(_worker_batch, batch, str(out), config, seed, os.getpid())
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

