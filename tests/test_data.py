"""Speech Commands loading: split, layouts, label mapping, WAV reading, augmentation."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from kws.cli import main
from kws.data import (
    ARM_LABELS,
    KEYWORDS,
    MLPERF_LABELS,
    SILENCE,
    UNKNOWN,
    Augmentation,
    DataConfig,
    Layout,
    SpeechCommands,
    detect_layout,
    read_wav,
    speaker_of,
    which_split,
)
from kws.data.augment import augment, time_shift
from kws.errors import BadAudioError, DatasetError
from tests.helpers import make_archive, make_test_set, tone, write_wav

# ----- reference split ------------------------------------------------------------


def test_which_split_ignores_the_repetition_suffix():
    splits = {which_split(f"{spk:08x}_nohash_{n}.wav") for spk in range(3) for n in range(5)}
    per_speaker = [{which_split(f"{spk:08x}_nohash_{n}.wav") for n in range(5)} for spk in range(50)]
    assert all(len(s) == 1 for s in per_speaker)
    assert splits <= {"training", "validation", "testing"}


def test_which_split_proportions_follow_the_percentages():
    names = [f"{i:08x}_nohash_0.wav" for i in range(20_000)]
    counts = {s: 0 for s in ("training", "validation", "testing")}
    for n in names:
        counts[which_split(n, 10, 20)] += 1
    assert abs(counts["validation"] / 20_000 - 0.10) < 0.01
    assert abs(counts["testing"] / 20_000 - 0.20) < 0.01


def test_which_split_known_names_match_the_reference_formula():
    # Values worked by hand from sha1(name) with the reference arithmetic.
    import hashlib

    for name in ("0a7c2a8d", "3bfd30e6", "ffd2ba2f", "c1d39ce8"):
        pct = (int(hashlib.sha1(name.encode()).hexdigest(), 16) % 2**27) * (100 / (2**27 - 1))
        expected = "validation" if pct < 10 else "testing" if pct < 20 else "training"
        assert which_split(f"{name}_nohash_3.wav") == expected
        assert which_split(f"/some/dir/yes/{name}_nohash_0.wav") == expected


def test_which_split_rejects_bad_percentages():
    with pytest.raises(ValueError, match="validation_pct"):
        which_split("a_nohash_0.wav", 60, 50)


def test_speaker_of_handles_both_layouts():
    assert speaker_of("0a7c2a8d_nohash_0.wav") == "0a7c2a8d"
    assert speaker_of("backward_0c540988_nohash_0.wav.wav") == "0c540988"


@pytest.mark.realdata
def test_real_keyword_clips_all_hash_to_testing(real_data_dir):
    """The canonical test set was cut from the archive's testing speakers: the reference
    hash of every keyword file there must say ``testing``."""
    root = real_data_dir / "speech_commands_test_v0.02_subset"
    names = [p.name for w in KEYWORDS for p in (root / w).glob("*.wav")]
    unknown = [p.name for p in (root / UNKNOWN).glob("*.wav")]
    assert len(names) > 1000
    assert {which_split(n) for n in names} == {"testing"}
    assert {which_split(f"{speaker_of(n)}_nohash_0.wav") for n in unknown} == {"testing"}


# ----- WAV reading ----------------------------------------------------------------


def test_read_wav_int16_round_trips(tmp_path):
    x = tone(1)
    out, info = read_wav(write_wav(tmp_path / "a.wav", x))
    assert out.dtype == np.int16 and out.shape == (16_000,)
    np.testing.assert_array_equal(out, x)
    assert (info.sample_rate, info.channels, info.dtype) == (16_000, 1, "int16")


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda x: (x / 32768).astype(np.float32), id="float32"),
        pytest.param(lambda x: ((x.astype(np.int32) >> 8) + 128).astype(np.uint8), id="uint8"),
        pytest.param(lambda x: x.astype(np.int32) << 16, id="int32"),
        pytest.param(lambda x: np.stack([x, x], axis=1), id="stereo"),
    ],
)
def test_read_wav_other_encodings_give_the_same_clip(tmp_path, encode):
    x = tone(2)
    out, _ = read_wav(write_wav(tmp_path / "a.wav", encode(x)))
    tolerance = 256 if out is not None and encode(x).dtype == np.uint8 else 1
    assert np.max(np.abs(out.astype(int) - x.astype(int))) <= tolerance


def test_read_wav_resamples_other_rates(tmp_path):
    rate = 8_000
    t = np.arange(rate) / rate
    x = (np.sin(2 * np.pi * 440 * t) * 10_000).astype(np.int16)
    out, info = read_wav(write_wav(tmp_path / "a.wav", x, rate=rate))
    assert info.sample_rate == rate and out.shape == (16_000,)
    spectrum = np.abs(np.fft.rfft(out.astype(float)))
    assert np.argmax(spectrum) == pytest.approx(440, abs=1)  # 1 Hz bins for 16,000 samples


def test_read_wav_pads_short_and_crops_long(tmp_path):
    short, _ = read_wav(write_wav(tmp_path / "s.wav", tone(3, n=8_000)))
    assert short.shape == (16_000,) and not short[8_000:].any() and short[:8_000].any()
    long_ = tone(4, n=24_000)
    out, info = read_wav(write_wav(tmp_path / "l.wav", long_))
    np.testing.assert_array_equal(out, long_[:16_000])
    assert info.samples == 24_000


def _raw(name: str, data: bytes):
    def make(d):
        (d / name).write_bytes(data)
        return d / name

    return make


def _truncated(tmp_path):
    data = write_wav(tmp_path / "full.wav", tone(5)).read_bytes()
    p = tmp_path / "truncated.wav"
    p.write_bytes(data[: len(data) // 2])
    return p


@pytest.mark.parametrize(
    "make, reason",
    [
        (_truncated, "truncated"),
        (_raw("text.wav", b"not audio at all"), "not a readable WAV"),
        (_raw("empty.wav", b""), "not a readable WAV"),
        (_raw("header.wav", b"RIFF\x24\x00\x00\x00WAVEfmt "), "not a readable WAV"),
        (lambda d: write_wav(d / "zeros.wav", np.zeros(16_000, np.int16)), "every sample is zero"),
        (lambda d: write_wav(d / "nosamples.wav", np.zeros(0, np.int16)), "no samples"),
        (lambda d: write_wav(d / "nan.wav", np.full(100, np.nan, np.float32)), "NaN"),
        (lambda d: d / "missing.wav", "not found"),
    ],
)
def test_read_wav_bad_files_raise_naming_the_file(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(BadAudioError, match=reason) as err:
        read_wav(path)
    assert str(path) in str(err.value) and err.value.path == path


# ----- layouts and the 12-label mapping --------------------------------------------


def test_layouts_are_detected(tmp_path):
    assert detect_layout(make_archive(tmp_path / "a", speakers=2)) is Layout.TRAINING_ARCHIVE
    assert detect_layout(make_test_set(tmp_path / "t")) is Layout.TEST_SET
    with pytest.raises(DatasetError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")


def test_archive_maps_words_to_twelve_labels_with_sampled_unknown_and_silence(tmp_path):
    ds = SpeechCommands(make_archive(tmp_path / "a", speakers=40))
    counts = {s: len(ds.clips(s)) for s in ("training", "validation", "testing")}
    for split, clips in ((s, ds.clips(s)) for s in counts):
        labels = [c.label for c in clips]
        assert set(labels) <= set(ARM_LABELS)
        keyword_n = sum(label in KEYWORDS for label in labels)
        assert labels.count(SILENCE) == int(np.ceil(keyword_n * 0.1))
        unknown_available = sum(1 for c in ds._all_word_clips if c.label == UNKNOWN and c.split == split)
        assert labels.count(UNKNOWN) == min(unknown_available, int(np.ceil(keyword_n * 0.1)))
        assert all(c.word in ("bed", "cat") for c in clips if c.label == UNKNOWN)
    assert counts["training"] > counts["validation"] > 0 and counts["testing"] > 0
    # Speakers never cross splits.
    spk = {s: {c.speaker for c in ds.clips(s) if c.speaker} for s in counts}
    assert not (spk["training"] & spk["validation"]) and not (spk["training"] & spk["testing"])


def test_archive_uses_the_split_lists_when_present(tmp_path):
    root = make_archive(tmp_path / "a", speakers=6)
    (root / "validation_list.txt").write_text("yes/00000000_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("no/00000001_nohash_0.wav\n")
    ds = SpeechCommands(root, DataConfig(unknown_pct=0, silence_pct=0))
    assert [c.path.relative_to(root).as_posix() for c in ds.clips("validation")] == ["yes/00000000_nohash_0.wav"]
    assert [c.path.relative_to(root).as_posix() for c in ds.clips("testing")] == ["no/00000001_nohash_0.wav"]
    assert "validation_list.txt" in ds.split_source


def test_label_order_is_a_parameter(tmp_path):
    root = make_archive(tmp_path / "a", speakers=20)
    arm = SpeechCommands(root)
    mlperf = SpeechCommands(root, DataConfig(labels=MLPERF_LABELS))
    names_arm = [ARM_LABELS[i] for i in arm.labels("training")]
    names_mlperf = [MLPERF_LABELS[i] for i in mlperf.labels("training")]
    assert names_arm == names_mlperf
    assert not np.array_equal(arm.labels("training"), mlperf.labels("training"))


def test_wanted_words_and_percentages_are_configurable(tmp_path):
    root = make_archive(tmp_path / "a", speakers=30)
    config = DataConfig(wanted_words=("yes", "no"), labels=(SILENCE, UNKNOWN, "yes", "no"),
                        silence_pct=50, unknown_pct=100)
    clips = SpeechCommands(root, config).clips("training")
    labels = [c.label for c in clips]
    kw = labels.count("yes") + labels.count("no")
    assert labels.count(SILENCE) == int(np.ceil(kw * 0.5))
    assert labels.count(UNKNOWN) == kw  # plenty of unknown words: 10 others x 30 speakers
    assert {c.word for c in clips if c.label == UNKNOWN} >= {"up", "bed"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(labels=KEYWORDS), "must list each of"),
        (dict(silence_pct=120), "silence_pct must be in"),
        (dict(validation_pct=50, testing_pct=50), "must leave some training"),
        (dict(wanted_words=()), "at least one word"),
    ],
)
def test_data_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**kwargs)


def test_sampling_is_seeded(tmp_path):
    root = make_archive(tmp_path / "a", speakers=30)
    a = SpeechCommands(root, DataConfig(seed=1)).clips("training")
    b = SpeechCommands(root, DataConfig(seed=1)).clips("training")
    c = SpeechCommands(root, DataConfig(seed=2)).clips("training")
    assert a == b and a != c


def test_missing_and_empty_label_folders_are_named(tmp_path):
    root = make_archive(tmp_path / "a", speakers=2)
    shutil.rmtree(root / "stop")
    with pytest.raises(DatasetError, match="no folder for label.*stop"):
        SpeechCommands(root)
    (root / "stop").mkdir()
    with pytest.raises(DatasetError, match="no .wav files: stop"):
        SpeechCommands(root)
    test_root = make_test_set(tmp_path / "t")
    shutil.rmtree(test_root / "_silence_")
    with pytest.raises(DatasetError, match="_silence_"):
        SpeechCommands(test_root)


def test_archive_without_other_words_cannot_make_unknown(tmp_path):
    root = make_archive(tmp_path / "a", words=KEYWORDS, speakers=2)
    with pytest.raises(DatasetError, match="nothing to sample _unknown_"):
        SpeechCommands(root)
    assert SpeechCommands(root, DataConfig(unknown_pct=0)).clips("training")


def test_test_set_layout_reads_all_twelve_folders(tmp_path):
    ds = SpeechCommands(make_test_set(tmp_path / "t", per_label=3))
    clips = ds.clips("testing")
    assert len(clips) == 36 and not ds.clips("training")
    unknown = [c for c in clips if c.label == UNKNOWN]
    assert {c.word for c in unknown} == {"bed"} and all(c.speaker for c in unknown)
    waves, labels = ds.load("testing")
    assert waves.shape == (36, 16_000) and waves.dtype == np.int16
    assert np.all(np.abs(waves).max(axis=1) > 0)  # real silence clips, not zeros
    assert sorted(np.bincount(labels, minlength=12)) == [3] * 12


def test_load_generates_silence_and_labels_in_order(tmp_path):
    ds = SpeechCommands(make_archive(tmp_path / "a", speakers=30))
    for split in ("training", "testing"):
        waves, labels = ds.load(split)
        assert len(waves) == len(labels) == len(ds.clips(split))
        silence = labels == ARM_LABELS.index(SILENCE)
        assert silence.any() and not np.any(np.abs(waves[~silence]).max(axis=1) == 0)
        np.testing.assert_array_equal(labels, ds.labels(split))
    train, train_labels = ds.load("training")
    assert not train[train_labels == 0].any(), "training silence is zeros (noise comes from augmentation)"
    test, test_labels = ds.load("testing")
    assert test[test_labels == 0].any(), "evaluation silence is fixed background noise"
    np.testing.assert_array_equal(test, ds.load("testing")[0])


def test_bad_clip_raises_or_is_skipped_and_counted(tmp_path):
    root = make_archive(tmp_path / "a", speakers=30)
    victim = next(c for c in SpeechCommands(root).clips("training") if c.label == "yes").path
    victim.write_bytes(victim.read_bytes()[:100])
    with pytest.raises(BadAudioError, match=victim.name):
        SpeechCommands(root).load("training")
    ds = SpeechCommands(root, skip_bad=True)
    waves, labels = ds.load("training")
    assert len(ds.skipped) == 1 and ds.skipped[0].path == victim
    assert len(waves) == len(labels) == len(ds.clips("training")) - 1


def test_fingerprint_changes_with_content_and_config(tmp_path):
    root = make_archive(tmp_path / "a", speakers=30)
    before = SpeechCommands(root).fingerprint("training")
    assert SpeechCommands(root).fingerprint("training") == before
    assert SpeechCommands(root, DataConfig(seed=5)).fingerprint("training") != before
    clip = next(c for c in SpeechCommands(root).clips("training") if c.path is not None).path
    write_wav(clip, tone(999, n=15_000))
    assert SpeechCommands(root).fingerprint("training") != before


# ----- augmentation ---------------------------------------------------------------


def test_time_shift_moves_and_zero_fills():
    x = np.arange(1, 11, dtype=np.float32)[None].repeat(2, axis=0)
    out = time_shift(x, np.array([3, -2]))
    np.testing.assert_array_equal(out[0], [0, 0, 0, 1, 2, 3, 4, 5, 6, 7])
    np.testing.assert_array_equal(out[1], [3, 4, 5, 6, 7, 8, 9, 10, 0, 0])


def test_augmentation_is_deterministic_under_a_seed_and_respects_its_ranges():
    waves = np.stack([tone(i) for i in range(200)])
    silence = np.zeros(200, bool)
    silence[:20] = True
    waves[:20] = 0
    noise = [np.random.default_rng(0).uniform(-1, 1, 48_000).astype(np.float32)]
    aug = Augmentation(background_volume=0.1, background_frequency=0.5, time_shift_ms=100)
    a = augment(waves, silence, noise, aug, np.random.default_rng(7))
    b = augment(waves, silence, noise, aug, np.random.default_rng(7))
    c = augment(waves, silence, noise, aug, np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    fg, bg = a
    peak = np.abs(bg).max(axis=1)
    assert np.all(np.abs(fg[:20]).max(axis=1) > 0), "silence always gets noise"
    assert not bg[:20].any(), "silence gets its noise as foreground, as evaluation silence has it"
    assert np.all(peak[20:] <= 0.1 + 1e-6)
    mixed = np.mean(peak[20:] > 0)
    assert 0.35 < mixed < 0.65, f"background on {mixed:.0%} of clips, expected about 50%"
    shifts = [np.argmax(np.correlate(f[:4000], w[:4000].astype(np.float32) / 32768, "full")) - 3999
              for f, w in zip(fg[20:40], waves[20:40])]
    assert max(abs(s) for s in shifts) <= 1600 and len(set(shifts)) > 5


@pytest.mark.parametrize("frontend", ["mlperf-tiny", "arm"])
def test_training_silence_reaches_the_front_end_as_evaluation_silence_does(frontend):
    """Evaluation silence is noise in the waveform; augmented training silence at the same
    volume must give the same features (mlperf-tiny peak-normalises only the foreground)."""
    from kws.features import extract

    noise = [np.random.default_rng(0).uniform(-0.5, 0.5, 48_000).astype(np.float32)]
    fg, bg = augment(np.zeros((4, 16000), np.int16), np.ones(4, bool), noise, Augmentation(),
                     np.random.default_rng(3))
    as_evaluated = np.round(fg * 32768).astype(np.int16)
    trained = extract(fg, frontend, background=bg)
    evaluated = extract(as_evaluated, frontend)
    np.testing.assert_allclose(trained, evaluated, atol=1e-2)


def test_augmentation_off_changes_nothing():
    waves = np.stack([tone(i) for i in range(5)])
    aug = Augmentation(background_volume=0, background_frequency=0, time_shift_ms=0)
    fg, bg = augment(waves, np.zeros(5, bool), [], aug, np.random.default_rng(0))
    np.testing.assert_array_equal(fg, waves / np.float32(32768))
    assert not bg.any()


@pytest.mark.parametrize("field, value", [("background_volume", 2), ("background_frequency", -0.1),
                                          ("time_shift_ms", 1000)])
def test_augmentation_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=field):
        Augmentation(**{field: value})


# ----- kws data info --------------------------------------------------------------


def test_data_info_reports_counts_speakers_and_problems(tmp_path, capsys):
    root = make_archive(tmp_path / "a", speakers=30)
    (root / "tree").mkdir()
    write_wav(root / "cat" / "0badf00d_nohash_0.wav", tone(1, rate=8_000), rate=8_000)
    (root / "cat" / "0badf00d_nohash_1.wav").write_bytes(b"RIFF")
    assert main(["data", "info", str(root), "--json"]) == 1  # an unreadable file fails the check
    info = json.loads(capsys.readouterr().out)
    assert info["layout"] == "training-archive" and info["split_source"].startswith("reference hash")
    assert info["clips"]["training"]["yes"] + info["clips"]["validation"].get("yes", 0) + \
        info["clips"]["testing"].get("yes", 0) == 30
    assert info["speakers_total"] == 31
    problems = "\n".join(info["problems"])
    assert "tree" in problems and "1 unreadable file" in problems and "8000" in problems
    assert "cat/0badf00d_nohash_1.wav" in problems  # named, with its reason
    assert info["clip_problems"] == {"long": ["cat/0badf00d_nohash_0.wav"]}  # 2 s at 8 kHz
    assert info["duration_s"] == pytest.approx(12 * 30 + 2, abs=0.01)  # the 8 kHz clip lasts 2 s


def test_data_info_table_on_the_test_layout(tmp_path, capsys):
    assert main(["data", "info", str(make_test_set(tmp_path / "t"))]) == 0
    out = capsys.readouterr().out
    assert "layout: test-set" in out and "problems found: none" in out
    assert "| _silence_ " in out
    n = int(re.search(r"\| total +\| +\d+ \| +\d+ \| +(\d+) \|", out).group(1))
    assert f"test split: {n:,} clips from " in out  # its size, and how sure its figures are
    assert re.search(r"one accuracy near 90%: \+-\d+\.\d\d pp, of a paired difference", out)


def test_data_info_missing_folder_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["data", "info", str(tmp_path / "nope")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument DIR:" in err and "does not exist" in err


@pytest.mark.realdata
def test_real_test_subset_loads_completely(real_data_dir):
    ds = SpeechCommands(real_data_dir / "speech_commands_test_v0.02_subset")
    assert ds.layout is Layout.TEST_SET
    info = ds.info()
    assert info.files_read == sum(info.counts["testing"].values()) > 2000
    assert info.problems == [] and set(info.sample_rates) == {16_000}
    waves, labels = ds.load("testing")
    assert waves.shape == (info.files_read, 16_000)
    assert np.all(np.abs(waves).max(axis=1) > 0)
    assert set(np.unique(labels)) == set(range(12))


# ----- features through the cache --------------------------------------------------


def test_features_are_cached_and_the_second_run_reads_nothing(tmp_path, monkeypatch):
    from kws.features import FeatureCache

    root = make_archive(tmp_path / "a", speakers=20)
    cache = FeatureCache()
    feats, labels = SpeechCommands(root).features("validation", "mlperf-tiny", cache=cache)
    assert feats.shape == (len(labels), 49, 10) and feats.dtype == np.float32
    assert np.all(np.isfinite(feats)), "generated silence must not give NaN"
    assert cache.misses == 1 and cache.hits == 0  # features and labels: one entry

    again = SpeechCommands(root)
    monkeypatch.setattr(again, "load", lambda split: pytest.fail("cache hit must not read audio"))
    feats2, labels2 = again.features("validation", "mlperf-tiny", cache=cache)
    np.testing.assert_array_equal(feats, feats2)
    np.testing.assert_array_equal(labels, labels2)
    assert cache.hits == 1

    # A touched clip or another front-end is a miss.
    clip = next(c.path for c in again.clips("validation") if c.path is not None)
    write_wav(clip, tone(12345))
    SpeechCommands(root).features("validation", "mlperf-tiny", cache=cache)
    SpeechCommands(root).features("validation", "arm", cache=cache)
    assert cache.misses == 3


def test_features_with_skip_bad_keep_labels_aligned(tmp_path):
    root = make_archive(tmp_path / "a", speakers=30)
    victim = next(c for c in SpeechCommands(root).clips("training") if c.label == "no").path
    victim.write_bytes(b"RIFF....garbage")
    feats, labels = SpeechCommands(root, skip_bad=True).features("training")
    again, labels2 = SpeechCommands(root, skip_bad=True).features("training")
    assert len(feats) == len(labels) == len(SpeechCommands(root).clips("training")) - 1
    np.testing.assert_array_equal(labels, labels2)


def test_one_artifact_cache_reaches_the_features_of_a_run(tmp_path, monkeypatch):
    """The cache a run is handed (an ArtifactCache) serves its features, under its root."""
    from kws.cache import ArtifactCache
    from kws.train import TrainConfig, prepare_data

    root = make_archive(tmp_path / "a", speakers=20)
    cache = ArtifactCache(tmp_path / "store")
    feats, labels = SpeechCommands(root).features("validation", "mlperf-tiny", cache=cache)
    assert cache.features.misses == 1 and (cache.hits, cache.misses) == (0, 0)
    assert {e.stage for e in cache.entries(verify=True)} == {"features"}
    assert all(e.path.parent == cache.root / "features" for e in cache.entries())
    default = SpeechCommands(root).features("validation", "mlperf-tiny")  # cache=None: the default root
    np.testing.assert_array_equal(default[0], feats)
    np.testing.assert_array_equal(default[1], labels)

    config = TrainConfig(epochs=1, augmentation_versions=2)
    data = prepare_data(SpeechCommands(root), "mlperf-tiny", config, cache=cache)
    np.testing.assert_array_equal(data.val, feats)
    misses = cache.features.misses
    again = SpeechCommands(root)
    monkeypatch.setattr(again, "load", lambda split: pytest.fail("cache hit must not read audio"))
    data2 = prepare_data(again, "mlperf-tiny", config, cache=cache)
    assert cache.features.misses == misses
    np.testing.assert_array_equal(data2.train, data.train)


def test_read_wav_accepts_unknown_extra_chunks(tmp_path):
    """Real recordings (``doing_the_dishes.wav``) carry extra chunks after the data."""
    x = tone(6)
    data = write_wav(tmp_path / "a.wav", x).read_bytes()
    extra = b"zzzz" + (8).to_bytes(4, "little") + b"anything"
    riff_size = int.from_bytes(data[4:8], "little") + len(extra)
    p = tmp_path / "extra.wav"
    p.write_bytes(data[:4] + riff_size.to_bytes(4, "little") + data[8:] + extra)
    out, _ = read_wav(p)
    np.testing.assert_array_equal(out, x)


@pytest.mark.realdata
def test_real_background_noise_loads(real_data_dir):
    from kws.data.dataset import _wavs

    noise = _wavs(real_data_dir / "_background_noise_")
    assert len(noise) == 6
    for p in noise:
        samples, info = read_wav(p, length=None)
        assert info.sample_rate == 16_000 and info.duration_s > 50 and samples.any()


def test_data_features_stops_on_a_bad_clip_or_skips_and_counts(tmp_path, capsys):
    root = make_archive(tmp_path / "a", speakers=30)
    victim = next(c for c in SpeechCommands(root).clips("training") if c.label == "go").path
    victim.write_bytes(victim.read_bytes()[:2000])
    assert main(["data", "features", str(root)]) == 2
    err = capsys.readouterr().err
    assert victim.name in err and "truncated" in err
    assert main(["data", "features", str(root), "--skip-bad", "--frontend", "arm"]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable clip" in out and "3 extracted" in out
    assert main(["data", "features", str(root), "--skip-bad", "--frontend", "arm"]) == 0
    assert "3 split(s) fetched, 0 extracted" in capsys.readouterr().out


def test_data_features_rejects_an_unknown_frontend(tmp_path, capsys):
    root = make_archive(tmp_path / "a", speakers=2)
    with pytest.raises(SystemExit) as exit_:
        main(["data", "features", str(root), "--frontend", "nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --frontend:" in err and "mlperf-tiny" in err
