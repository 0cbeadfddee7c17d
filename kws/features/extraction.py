"""MFCC extraction in batches: one traced TensorFlow graph per front-end and batch size.

Two reference recipes are reproduced exactly:

``mlperf-tiny``
    The MLPerf Tiny KWS reference (``get_dataset.py``): the clip is divided by its
    maximum sample, padded to one second, passed through ``tf.signal.stft`` (30 ms Hann
    frames every 20 ms), the magnitude is warped to 40 mel bands (20-4000 Hz) with
    ``tf.signal.linear_to_mel_weight_matrix``, ``log(mel + 1e-6)`` is taken and the first
    10 coefficients of ``tf.signal.mfccs_from_log_mel_spectrograms`` are kept: 49 x 10.

``arm``
    The Arm ML-zoo recipe (``data_preprocessing.py``, itself the TensorFlow
    ``speech_commands`` example): PCM / 32768, clipped to [-1, 1], then the
    ``AudioSpectrogram`` op (40 ms windows every 20 ms, magnitude squared) and the
    ``Mfcc`` op (40 channels, 20-4000 Hz, 10 coefficients): 49 x 10.

TensorFlow is imported lazily (through :mod:`kws.compat`), on the first extraction, so
that importing this module stays cheap for the command line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from kws.features.frontend import (
    CLIP_SAMPLES,
    INPUT_SAMPLE_RATE,
    INT16_SCALE,
    FrontEnd,
    _check_positive_int,
    get_frontend,
)

#: Clips per ``tf.function`` call. Large enough to amortise the per-call overhead of
#: TensorFlow, small enough that a batch's complex STFT (~50 MB at 256) stays in memory.
DEFAULT_BATCH_SIZE = 256

# Constants of the reference recipes.
_TF_SIGNAL_LOG_OFFSET = 1e-6  # log(mel + 1e-6) in the MLPerf Tiny recipe


def extract(
    waveforms: np.ndarray,
    frontend: str | FrontEnd = "mlperf-tiny",
    *,
    background: np.ndarray | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> np.ndarray:
    """MFCC features ``float32 [N, frames, coefficients]`` of ``N`` one-second clips.

    ``waveforms`` is ``int16 [N, L]`` PCM or float ``[N, L]`` in [-1, 1] (PCM / 32768),
    ``L <= 16000``; shorter clips are zero-padded at the end. ``background`` (float
    ``[N, 16000]`` in the same units, already scaled by the augmentation volume) is mixed
    in where the recipe mixes it:

    * ``tf-signal`` (MLPerf Tiny): after the clip is divided by its maximum, followed by
      ``clip_by_value(-1, 1)``. As in the reference, the clip to [-1, 1] happens only on
      the augmented (training) path, i.e. only when ``background`` is given; zero rows
      add no noise but are still clipped, like the reference's volume-0 draws.
    * ``audio-ops`` (Arm): added to PCM / 32768, then clipped to [-1, 1] (always, as in
      the reference, where evaluation simply mixes in zero noise).

    Deviation from MLPerf Tiny, only where its recipe is undefined: it divides by
    ``max(samples)``, which gives inf/NaN for an all-zero clip (a generated silence) and
    flips or blows up a clip whose samples are all <= 0. Such clips are divided by their
    maximum absolute sample instead, and an all-zero clip by 1. Clips with a positive
    maximum, i.e. every ordinary recording, are computed exactly as the reference does.

    With ``sample_rate=8000`` the 16 kHz input (and background) is first resampled with
    ``scipy.signal.resample_poly(x, 1, 2)``.

    Work is done ``batch_size`` clips at a time in one traced TensorFlow graph per
    front-end and batch size (the last batch is zero-padded, then trimmed).
    """
    fe = get_frontend(frontend)
    _check_positive_int("batch_size", batch_size)
    audio = _checked_clips(waveforms, "waveforms")
    noise = None if background is None else _checked_clips(background, "background")
    if noise is not None and noise.shape[0] != audio.shape[0]:
        raise ValueError(
            f"background has {noise.shape[0]} clips but waveforms has {audio.shape[0]}"
        )
    out = np.empty((audio.shape[0], *fe.output_shape), np.float32)
    for start in range(0, audio.shape[0], batch_size):
        stop = min(start + batch_size, audio.shape[0])
        out[start:stop] = _extract_batch(fe, audio, noise, start, stop, batch_size)
    if not np.isfinite(out).all():
        # The inputs were checked finite and the normalisation is guarded, so this is a
        # bug, not bad data: refuse to hand NaN/inf to training or to the cache.
        raise FloatingPointError(f"front-end {fe.name!r} produced non-finite features")
    return out


def _checked_clips(clips: np.ndarray, what: str) -> np.ndarray:
    """Validate ``[N, L]`` clips; int16 stays int16 (converted per batch to save memory)."""
    clips = np.asarray(clips)
    if clips.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array [clips, samples], got shape {clips.shape}")
    if clips.shape[1] > CLIP_SAMPLES:
        raise ValueError(
            f"{what}: clips are {clips.shape[1]} samples long; at most {CLIP_SAMPLES} "
            f"(one second at {INPUT_SAMPLE_RATE} Hz) is supported"
        )
    if clips.dtype == np.int16:
        return clips
    if not np.issubdtype(clips.dtype, np.floating):
        raise ValueError(f"{what}: dtype {clips.dtype} is neither int16 PCM nor float")
    if not np.isfinite(clips).all():
        raise ValueError(f"{what}: contains NaN or inf samples")
    return clips


def _batch_input(
    fe: FrontEnd, clips: np.ndarray, start: int, stop: int, batch_size: int
) -> np.ndarray:
    """Rows ``start:stop`` as float32 ``[batch_size, fe.num_samples]``, zero-padded."""
    batch = np.zeros((batch_size, CLIP_SAMPLES), np.float32)
    rows = clips[start:stop]
    if rows.dtype == np.int16:
        # Division by 2**15 is exact in float32, so max-normalisation is unaffected.
        batch[: stop - start, : rows.shape[1]] = rows.astype(np.float32) / INT16_SCALE
    else:
        batch[: stop - start, : rows.shape[1]] = rows
    if fe.sample_rate != INPUT_SAMPLE_RATE:
        from scipy.signal import resample_poly

        factor = INPUT_SAMPLE_RATE // fe.sample_rate
        batch = resample_poly(batch, 1, factor, axis=-1).astype(np.float32)
    return batch


def _extract_batch(
    fe: FrontEnd,
    audio: np.ndarray,
    noise: np.ndarray | None,
    start: int,
    stop: int,
    batch_size: int,
) -> np.ndarray:
    graph = _graph_for(fe, batch_size, with_background=noise is not None)
    inputs = [_batch_input(fe, audio, start, stop, batch_size)]
    if noise is not None:
        inputs.append(_batch_input(fe, noise, start, stop, batch_size))
    return graph(*inputs).numpy()[: stop - start]


# One traced graph per (front-end, batch size, with/without background): tracing costs
# about a second, so it must happen once, not per call of extract().
_GRAPHS: dict[tuple[FrontEnd, int, bool], Callable] = {}
_GRAPHS_LOCK = threading.Lock()


def _graph_for(fe: FrontEnd, batch_size: int, *, with_background: bool) -> Callable:
    key = (fe, batch_size, with_background)
    with _GRAPHS_LOCK:
        if key not in _GRAPHS:
            _GRAPHS[key] = _trace(fe, batch_size, with_background)
        return _GRAPHS[key]


def _trace(fe: FrontEnd, batch_size: int, with_background: bool) -> Callable:
    from kws.compat import tf

    spec = tf.TensorSpec([batch_size, fe.num_samples], tf.float32)
    recipe = _tf_signal_mfcc if fe.recipe == "tf-signal" else _audio_ops_mfcc

    if with_background:

        def features(audio, noise):
            mixed = _mix(_normalize(fe, audio), noise)
            return recipe(fe, mixed)

        signature = [spec, spec]
    else:

        def features(audio):
            audio = _normalize(fe, audio)
            if fe.recipe == "audio-ops":
                audio = tf.clip_by_value(audio, -1.0, 1.0)
            return recipe(fe, audio)

        signature = [spec]
    return tf.function(features, input_signature=signature).get_concrete_function()


def _normalize(fe: FrontEnd, audio):
    """Scale each clip as its recipe does (see :func:`extract` for the guard)."""
    if fe.normalize == "int16":
        return audio
    from kws.compat import tf

    peak = tf.reduce_max(audio, axis=-1, keepdims=True)
    peak_abs = tf.reduce_max(tf.abs(audio), axis=-1, keepdims=True)
    scale = tf.where(peak > 0, peak, tf.where(peak_abs > 0, peak_abs, tf.ones_like(peak)))
    return audio / scale


def _mix(audio, noise):
    """Background noise enters after normalisation, then the mix is clipped to [-1, 1].

    (MLPerf Tiny's constant time shift -- pad 2 each side, slice from 2 -- is the
    identity and is therefore not performed.)
    """
    from kws.compat import tf

    return tf.clip_by_value(audio + noise, -1.0, 1.0)


def _tf_signal_mfcc(fe: FrontEnd, audio):
    from kws.compat import tf

    stfts = tf.signal.stft(
        audio,
        frame_length=fe.frame_length,
        frame_step=fe.frame_step,
        fft_length=None,
        window_fn=tf.signal.hann_window,
    )
    spectrograms = tf.abs(stfts)
    mel_matrix = tf.signal.linear_to_mel_weight_matrix(
        num_mel_bins=fe.num_mel_bins,
        num_spectrogram_bins=stfts.shape[-1],
        sample_rate=fe.sample_rate,
        lower_edge_hertz=fe.lower_edge_hz,
        upper_edge_hertz=fe.upper_edge_hz,
    )
    mel = tf.tensordot(spectrograms, mel_matrix, 1)
    log_mel = tf.math.log(mel + _TF_SIGNAL_LOG_OFFSET)
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)[..., : fe.num_coefficients]


def _audio_ops_mfcc(fe: FrontEnd, audio):
    from kws.compat import tf

    # The ops take [samples, channels]; the batch rides on the channel axis, which the
    # ops process independently, giving [batch, frames, bins] and [batch, frames, coeffs].
    # Each op runs its channels on one thread, so the batch is split into one chain of
    # ops per core, which the graph executor runs concurrently.
    chunks = tf.split(audio, _split_sizes(audio.shape[0], _cpu_count()), axis=0)
    return tf.concat([_audio_ops_chain(fe, tf.transpose(chunk)) for chunk in chunks], 0)


def _audio_ops_chain(fe: FrontEnd, samples_by_channel):
    from kws.compat import tf

    spectrogram = tf.raw_ops.AudioSpectrogram(
        input=samples_by_channel,
        window_size=fe.frame_length,
        stride=fe.frame_step,
        magnitude_squared=True,
    )
    return tf.raw_ops.Mfcc(
        spectrogram=spectrogram,
        sample_rate=fe.sample_rate,
        upper_frequency_limit=fe.upper_edge_hz,
        lower_frequency_limit=fe.lower_edge_hz,
        filterbank_channel_count=fe.num_mel_bins,
        dct_coefficient_count=fe.num_coefficients,
    )


def _cpu_count() -> int:
    # sched_getaffinity honours taskset / container CPU limits; cpu_count does not.
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _split_sizes(total: int, parts: int) -> list[int]:
    """``total`` split into at most ``parts`` near-equal positive sizes."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]
