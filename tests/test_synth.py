"""Tests for the eSpeak NG dataset synthesiser (``kws.synth``)."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import wave
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from kws import _espeak, synth
from kws._fs import cache_root
from kws.data import SPLITS
from kws.errors import DatasetError, KwsError
from kws.synth import audio, cached, defaults, plan

NAME = re.compile(r"^[0-9a-f]{8}_nohash_(\d+)\.wav$")


def reference_split(filename: str) -> str:
    """The Speech Commands split rule, written out independently of the code under test."""
    base = re.sub(r"_nohash_.*$", "", Path(filename).name)
    h = hashlib.sha1(base.encode()).hexdigest()
    pct = (int(h, 16) % (2**27)) * (100.0 / (2**27 - 1))
    return "validation" if pct < 10 else "testing" if pct < 20 else "training"


def read(path: Path) -> tuple[int, int, int, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return w.getframerate(), w.getnchannels(), w.getsampwidth(), data


def word_clips(root: Path) -> list[Path]:
    return sorted(
        p for p in root.glob("*/*.wav") if not p.parent.name.startswith("_")
    )


def tree_bytes(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def tiny(out: Path, **kwargs) -> dict:
    kwargs.setdefault("clips_per_word", 2)
    kwargs.setdefault("unknown_clips_per_word", 1)
    kwargs.setdefault("show_progress", False)
    return synth.synthesize(out, **kwargs)


# ----- layout -----------------------------------------------------------------------------
def test_every_word_has_a_folder_of_1s_16khz_int16_clips(small_synth_dir):
    folders = {p.name for p in small_synth_dir.iterdir() if p.is_dir()}
    assert set(synth.KEYWORDS) | set(synth.UNKNOWN_WORDS) | {"_background_noise_"} == folders
    clips = word_clips(small_synth_dir)
    unknown = synth.make_config(6, None).unknown_clips_per_word
    assert len(clips) == 6 * len(synth.KEYWORDS) + unknown * len(synth.UNKNOWN_WORDS)
    for path in clips:
        assert NAME.match(path.name), path
        rate, channels, width, data = read(path)
        assert (rate, channels, width, len(data)) == (16_000, 1, 2, 16_000), path
        # The quietest clip peaks at -30 dBFS (about 1000); silence would be far below.
        assert np.abs(data.astype(np.int32)).max() > 500, f"{path} is silent"


def test_keywords_and_unknown_words_are_the_documented_sets():
    assert synth.KEYWORDS == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    near_misses = {"yet", "know", "upper", "dawn", "write", "stock", "goal", "often", "own", "lift"}
    assert near_misses <= set(synth.UNKNOWN_WORDS)
    assert len(synth.UNKNOWN_WORDS) >= 12
    assert not set(synth.KEYWORDS) & set(synth.UNKNOWN_WORDS)


def test_background_noise_is_long_16khz_int16(small_synth_dir):
    files = sorted((small_synth_dir / "_background_noise_").glob("*.wav"))
    assert len(files) >= 5
    for path in files:
        rate, channels, width, data = read(path)
        assert (rate, channels, width) == (16_000, 1, 2)
        assert len(data) >= 30 * 16_000, path
        assert data.astype(np.float64).std() > 100, f"{path} is silent"
    assert len({p.read_bytes() for p in files}) == len(files)


def test_clips_differ_from_each_other(small_synth_dir):
    clips = word_clips(small_synth_dir)
    assert len({p.read_bytes() for p in clips}) == len(clips)


def test_repetition_indices_count_up_per_speaker_and_word(small_synth_dir):
    reps = defaultdict(list)
    for path in word_clips(small_synth_dir):
        speaker, n = path.name[:8], int(NAME.match(path.name).group(1))
        reps[(path.parent.name, speaker)].append(n)
    for key, ns in reps.items():
        assert sorted(ns) == list(range(len(ns))), key


# ----- split ------------------------------------------------------------------------------
def test_split_lists_follow_the_reference_hash(small_synth_dir):
    listed = {}
    for split in ("validation", "testing"):
        lines = (small_synth_dir / f"{split}_list.txt").read_text().splitlines()
        assert lines == sorted(lines)
        listed.update({line: split for line in lines})
    clips = word_clips(small_synth_dir)
    assert set(listed) <= {p.relative_to(small_synth_dir).as_posix() for p in clips}
    for path in clips:
        rel = path.relative_to(small_synth_dir).as_posix()
        assert listed.get(rel, "training") == reference_split(path.name), rel


def test_speakers_are_disjoint_across_splits_and_every_keyword_is_in_every_split(small_synth_dir):
    speakers = defaultdict(set)
    words = defaultdict(set)
    for path in word_clips(small_synth_dir):
        split = reference_split(path.name)
        speakers[split].add(path.name[:8])
        words[split].add(path.parent.name)
    assert speakers["training"] and speakers["validation"] and speakers["testing"]
    assert not speakers["training"] & speakers["validation"]
    assert not speakers["training"] & speakers["testing"]
    assert not speakers["validation"] & speakers["testing"]
    for split in ("training", "validation", "testing"):
        assert set(synth.KEYWORDS) <= words[split], split


def test_which_split_is_the_reference_rule():
    for i in range(2000):
        name = f"{hashlib.md5(str(i).encode()).hexdigest()[:8]}_nohash_{i % 3}.wav"
        assert synth.which_split(name) == reference_split(name)


def test_speaker_split_shares_are_exact_and_ids_unique():
    config = synth.make_config(1, 0)
    speakers = synth.make_speakers(config, seed=7)
    assert len(speakers) == synth.DEFAULT_SPEAKERS
    assert len({s.speaker_id for s in speakers}) == len(speakers)
    for s in speakers:
        assert re.fullmatch(r"[0-9a-f]{8}", s.speaker_id)
        assert reference_split(f"{s.speaker_id}_nohash_0.wav") == s.split
        assert s.voice in synth.VOICES
        assert s.variant in synth.MALE_VARIANTS + synth.FEMALE_VARIANTS
    n = len(speakers)
    counts = {split: sum(s.split == split for s in speakers) for split in SPLITS}
    for split, share in zip(SPLITS, config.split_shares, strict=True):
        assert abs(counts[split] - share * n) <= 1, split
    # Enough variety that speakers are not copies of each other.
    assert len({(s.voice, s.variant) for s in speakers}) > n // 2


def test_split_schedule_starts_with_validation_and_testing_then_keeps_shares():
    schedule = plan._split_schedule({"training": 0.8, "validation": 0.1, "testing": 0.1})
    steps = [next(schedule) for _ in range(1000)]
    assert steps[:2] == ["validation", "testing"]
    assert abs(steps.count("training") - 800) <= 2
    assert abs(steps.count("validation") - 100) <= 2


# ----- manifest and loader ----------------------------------------------------------------
def test_manifest_describes_what_is_on_disk(small_synth_dir):
    manifest = json.loads((small_synth_dir / "SYNTH.json").read_text())
    clips = word_clips(small_synth_dir)
    assert manifest["seed"] == 0
    assert manifest["parameters"]["clips_per_word"] == 6
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", manifest["espeak_ng_version"])
    assert manifest["counts"]["clips"] == len(clips)
    for word, count in manifest["counts"]["per_word"].items():
        assert len(list((small_synth_dir / word).glob("*.wav"))) == count
    per_split = {s: sum(reference_split(p.name) == s for p in clips) for s in SPLITS}
    assert manifest["counts"]["per_split"] == per_split
    ids = {s["speaker_id"] for s in manifest["speakers"]}
    assert {p.name[:8] for p in clips} <= ids
    noise = {e["file"] for e in manifest["background_noise"]}
    assert noise == {p.name for p in (small_synth_dir / "_background_noise_").glob("*.wav")}


def test_the_dataset_loader_reads_it(small_synth_dir):
    from kws.data import SpeechCommands

    data = SpeechCommands(small_synth_dir)
    info = data.info()
    assert info.problems == []
    assert info.split_source.startswith("validation_list")
    for split in SPLITS:
        for word in synth.KEYWORDS:
            assert info.counts[split][word] > 0, (split, word)


# ----- determinism ------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes_in_process_and_in_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_SYNTH_WORKERS", "1")
    tiny(tmp_path / "a", seed=11)
    monkeypatch.setenv("KWS_SYNTH_WORKERS", "2")
    tiny(tmp_path / "b", seed=11)
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a.keys() == b.keys()
    different = [name for name in a if a[name] != b[name]]
    assert different == []


def test_different_seed_gives_different_speakers_and_audio(tmp_path):
    tiny(tmp_path / "a", seed=1, unknown_clips_per_word=0)
    tiny(tmp_path / "b", seed=2, unknown_clips_per_word=0)
    a, b = word_clips(tmp_path / "a"), word_clips(tmp_path / "b")
    assert {p.name for p in a}.isdisjoint({p.name for p in b})
    noise_a = tree_bytes(tmp_path / "a" / "_background_noise_")
    noise_b = tree_bytes(tmp_path / "b" / "_background_noise_")
    assert all(noise_a[name] != noise_b[name] for name in noise_a)


def test_a_clip_does_not_depend_on_how_many_others_are_made(tmp_path):
    tiny(tmp_path / "few", seed=4, clips_per_word=2, unknown_clips_per_word=0)
    tiny(tmp_path / "more", seed=4, clips_per_word=4, unknown_clips_per_word=0)
    few, more = tree_bytes(tmp_path / "few"), tree_bytes(tmp_path / "more")
    shared = [name for name in few if name.endswith(".wav") and not name.startswith("_")]
    assert len(shared) == 2 * len(synth.KEYWORDS)
    assert all(few[name] == more[name] for name in shared)


def test_espeak_render_depends_only_on_its_arguments():
    args = dict(rate=160, pitch=40, pitch_range=60, seed=5)
    # +Reed adds breath noise from a random generator; +m3 has pitch flutter.
    first = _espeak.render("yes.", "en-us+Reed", **args)[0]
    _espeak.render(
        "hello there, how are you?", "en-gb-scotland+f2", rate=300, pitch=90, pitch_range=10, seed=9
    )
    again = _espeak.render("yes.", "en-us+Reed", **args)[0]
    assert np.array_equal(first, again)
    other_seed = _espeak.render("yes.", "en-us+Reed", **{**args, "seed": 6})[0]
    assert not np.array_equal(first, other_seed)
    samples, rate = _espeak.render("no", "en-us+m3", **args)
    assert rate == 22_050 and samples.dtype == np.int16 and np.abs(samples).max() > 1000


def test_espeak_unknown_voice_is_an_error():
    with pytest.raises(_espeak.EspeakError, match="no-such-voice"):
        _espeak.render("yes", "no-such-voice", rate=175, pitch=50, pitch_range=50)


def test_every_listed_voice_and_variant_speaks():
    config = synth.make_config(1, 0)
    def speak(voice: str) -> np.ndarray:
        return _espeak.render("stop", voice, rate=175, pitch=50, pitch_range=50)[0]

    for voice in config.voices:
        assert len(speak(f"{voice}+m1")) > 2000, voice
    for variant in config.male_variants + config.female_variants:
        assert len(speak(f"en+{variant}")) > 2000, variant
    # Accents differ in pronunciation, variants in timbre.
    assert len({speak(f"{voice}+m1").tobytes() for voice in config.voices}) == len(config.voices)


def test_long_utterances_are_spoken_faster_to_fit():
    speaker = synth.Speaker(0, "00000000", "training", "en-us", "m3", 80, 50, 50)
    speech, rate, respoken, cropped = audio._speak(
        "backward.", speaker, rate=80, pitch=50, seed=1, max_samples=8000
    )
    assert len(speech) <= 8000
    assert respoken and rate > 80


# ----- atomicity and errors ---------------------------------------------------------------
def test_a_failure_midway_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_SYNTH_WORKERS", "1")
    written = []
    real_write = audio._write_wav

    def failing_write(path, samples):
        if len(written) == 20:
            raise RuntimeError("disk full")
        written.append(path)
        real_write(path, samples)

    monkeypatch.setattr(audio, "_write_wav", failing_write)
    out = tmp_path / "parent" / "speech"
    with pytest.raises(RuntimeError, match="disk full"):
        tiny(out)
    assert len(written) == 20
    assert not out.exists()
    assert list(out.parent.iterdir()) == []


def test_refuses_a_non_empty_output_folder_unless_overwrite(tmp_path):
    out = tmp_path / "speech"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(DatasetError, match=re.escape(str(out))):
        tiny(out)
    assert (out / "keep.txt").read_text() == "mine"
    tiny(out, overwrite=True)
    assert not (out / "keep.txt").exists()
    assert (out / "SYNTH.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["speech"]


def test_an_empty_output_folder_is_filled(tmp_path):
    out = tmp_path / "speech"
    out.mkdir()
    tiny(out, unknown_clips_per_word=0)
    assert len(word_clips(out)) == 2 * len(synth.KEYWORDS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"clips_per_word": 0}, "clips_per_word must be >= 1, got 0"),
        ({"clips_per_word": 2.5}, "clips_per_word must be an integer"),
        ({"unknown_clips_per_word": -1}, "unknown_clips_per_word must be >= 0, got -1"),
        ({"seed": -3}, "seed must be >= 0, got -3"),
        ({"seed": True}, "seed must be an integer"),
    ],
)
def test_bad_parameters_are_named(tmp_path, kwargs, message):
    with pytest.raises(KwsError, match=re.escape(message)):
        synth.synthesize(tmp_path / "out", show_progress=False, **kwargs)
    assert not (tmp_path / "out").exists()


def test_output_path_that_is_a_file_is_an_error(tmp_path):
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(DatasetError, match="not a folder"):
        tiny(out)


def test_noise_dir_must_exist_and_hold_wavs(tmp_path):
    with pytest.raises(DatasetError, match="missing"):
        tiny(tmp_path / "out", noise_dir=tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no audio")
    with pytest.raises(DatasetError, match=r"empty.*no \.wav"):
        tiny(tmp_path / "out", noise_dir=empty)
    assert not (tmp_path / "out").exists()


def _write(path: Path, rate: int, data: np.ndarray) -> None:
    import scipy.io.wavfile

    scipy.io.wavfile.write(path, rate, data)


def test_noise_dir_recordings_are_copied_or_converted(tmp_path):
    noise = tmp_path / "noise" / "_background_noise_"
    noise.mkdir(parents=True)
    rng = np.random.default_rng(0)
    _write(noise / "hum.wav", 16_000, (rng.standard_normal(40_000) * 3000).astype(np.int16))
    stereo = (rng.standard_normal((16_000, 2)) * 0.1).astype(np.float32)  # 2 s at 8 kHz
    _write(noise / "fan.wav", 8_000, stereo)
    manifest = tiny(tmp_path / "out", noise_dir=tmp_path / "noise")
    copied = tmp_path / "out" / "_background_noise_"
    assert sorted(p.name for p in copied.iterdir()) == ["fan.wav", "hum.wav"]
    assert (copied / "hum.wav").read_bytes() == (noise / "hum.wav").read_bytes()
    rate, channels, width, data = read(copied / "fan.wav")
    assert (rate, channels, width) == (16_000, 1, 2)
    assert abs(len(data) - 32_000) <= 1
    assert manifest["noise_source"] == str(tmp_path / "noise")


@pytest.mark.realdata
def test_real_background_noise_is_copied_verbatim(tmp_path, real_data_dir):
    real = real_data_dir / "_background_noise_"
    tiny(tmp_path / "out", noise_dir=real_data_dir, unknown_clips_per_word=0)
    copied = tmp_path / "out" / "_background_noise_"
    originals = sorted(real.glob("*.wav"))
    assert originals
    assert sorted(p.name for p in copied.iterdir()) == [p.name for p in originals]
    for path in originals:
        # The real recordings are 16 kHz mono int16 already: copied byte for byte.
        assert (copied / path.name).read_bytes() == path.read_bytes()
        rate, channels, width, data = read(copied / path.name)
        assert (rate, channels, width) == (16_000, 1, 2)
        assert len(data) >= 30 * 16_000


# ----- the cached default dataset ---------------------------------------------------------
@pytest.fixture
def small_default(monkeypatch):
    monkeypatch.setattr(defaults, "DEFAULT_CLIPS_PER_WORD", 2)
    calls = []
    real = synth.synthesize

    def counting(*args, **kwargs):
        calls.append(kwargs.get("seed"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cached, "synthesize", counting)
    return calls


def test_default_dataset_is_built_once_then_reused(small_default, tmp_path):
    path = synth.default_dataset()
    assert path.parent == cache_root() / "datasets"
    assert re.fullmatch(r"synth-[0-9a-f]{12}", path.name)
    assert (path / "SYNTH.json").is_file()
    assert len(word_clips(path)) == 2 * len(synth.KEYWORDS) + len(synth.UNKNOWN_WORDS)
    assert small_default == [0]
    assert synth.default_dataset() == path
    assert small_default == [0]


def test_default_dataset_key_changes_with_seed_and_size(monkeypatch):
    monkeypatch.setattr(defaults, "DEFAULT_CLIPS_PER_WORD", 2)
    base = synth.default_key(0)
    assert synth.default_key(0) == base
    assert synth.default_key(1) != base
    monkeypatch.setattr(defaults, "DEFAULT_CLIPS_PER_WORD", 3)
    assert synth.default_key(0) != base


def test_concurrent_callers_build_the_default_dataset_once(small_default):
    paths, errors = [], []

    def call():
        try:
            paths.append(synth.default_dataset(seed=2))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(paths)) == 1
    assert small_default == [2]


# ----- command line -----------------------------------------------------------------------
def test_cli_synthesises_and_prints_a_summary(tmp_path, capsys):
    from kws.cli import main

    out = tmp_path / "speech"
    code = main([
        "synth", "--out", str(out), "--seed", "5", "--clips-per-word", "2",
        "--unknown-clips-per-word", "1",
    ])
    assert code == 0
    printed = capsys.readouterr().out
    n = 2 * len(synth.KEYWORDS) + len(synth.UNKNOWN_WORDS)
    assert f"{n} clips" in printed and "speakers" in printed and "clips/s" in printed
    manifest = json.loads((out / "SYNTH.json").read_text())
    assert manifest["seed"] == 5
    assert len(word_clips(out)) == n


def test_cli_reports_bad_parameters_and_existing_output(tmp_path, capsys):
    from kws.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["synth", "--out", str(tmp_path / "x"), "--clips-per-word", "0"])
    assert exit_.value.code == 2
    assert "argument --clips-per-word: must be an integer >= 1, got '0'" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["synth", "--out", str(tmp_path / "full"), "--clips-per-word", "1"]) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "full") in err and "--overwrite" in err
