"""Reliability at the edges of the data, synthesis and cache code, on real files and real
processes: clips that conversion would silently change, a ``kws synth`` killed mid-run,
builds killed inside the cache, and cache entries that cannot be read."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from kws.cache import ArtifactCache
from kws.cli import main
from kws.data import SpeechCommands, read_wav
from kws.data.wav import LONG, NEAR_SILENT, OVER_RANGE, SHORT
from kws.errors import BadAudioError
from kws.features import FeatureCache
from kws.store.fs import temp_prefix
from tests.helpers import make_archive, tone, write_wav

REPO = Path(__file__).resolve().parent.parent


def run_kws(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The real command line in its own process."""
    return subprocess.run([sys.executable, "-m", "kws.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)


# ----- clips that conversion would change silently -------------------------------------------


def late_speech(seconds: float = 5.0, start: float = 1.5) -> np.ndarray:
    """A long recording that is silent until ``start`` seconds, then speaks."""
    x = np.zeros(int(seconds * 16_000), np.int16)
    x[int(start * 16_000) : int(start * 16_000) + 16_000] = tone(7)
    return x


def test_a_long_clip_silent_where_it_is_cropped_is_bad_audio_naming_the_file(tmp_path):
    path = write_wav(tmp_path / "late.wav", late_speech())
    with pytest.raises(BadAudioError, match=r"silent in the first 1 s.*lasts 5.00 s.*starts at 1.50 s") as err:
        read_wav(path)
    assert err.value.path == path and str(path) in str(err.value)


def test_the_dataset_stops_on_a_clip_silent_after_cropping_or_skips_it(tmp_path):
    root = make_archive(tmp_path / "a", speakers=12)
    victim = next(c for c in SpeechCommands(root).clips("training") if c.label == "yes").path
    write_wav(victim, late_speech())
    with pytest.raises(BadAudioError, match="silent in the first 1 s") as err:
        SpeechCommands(root).load("training")
    assert err.value.path == victim
    ds = SpeechCommands(root, skip_bad=True)
    waves, labels = ds.load("training")
    assert [e.path for e in ds.skipped] == [victim] and len(waves) == len(labels)


def test_clips_load_as_before_and_their_problems_are_recorded(tmp_path):
    long_ = tone(4, n=32_000)
    out, info = read_wav(write_wav(tmp_path / "long.wav", long_))
    np.testing.assert_array_equal(out, long_[:16_000])
    assert info.problems == (LONG,)

    short = tone(3, n=3_000)
    out, info = read_wav(write_wav(tmp_path / "short.wav", short))
    np.testing.assert_array_equal(out, np.pad(short, (0, 13_000)))
    assert info.problems == (SHORT,)

    loud = np.sin(np.arange(16_000) / 5) * 3.0
    out, info = read_wav(write_wav(tmp_path / "loud.wav", loud.astype(np.float32)))
    expected = np.round(np.clip(loud.astype(np.float32).astype(np.float64), -1, 1) * 32768)
    np.testing.assert_array_equal(out, np.clip(expected, -32768, 32767).astype(np.int16))
    assert info.problems == (OVER_RANGE,) and info.peak == pytest.approx(3.0, abs=1e-3)

    quiet = np.round(tone(5) / np.abs(tone(5)).max() * 20).astype(np.int16)  # peak 20 of 32768
    _, info = read_wav(write_wav(tmp_path / "quiet.wav", quiet))
    assert info.problems == (NEAR_SILENT,)

    normal = tone(6)
    out, info = read_wav(write_wav(tmp_path / "normal.wav", normal))
    np.testing.assert_array_equal(out, normal)
    assert info.problems == ()


def problem_archive(root: Path) -> Path:
    make_archive(root, speakers=12)
    long_ = np.concatenate([tone(11), tone(12)])  # 2 s, speech in the first second
    write_wav(root / "yes" / "1ong0000_nohash_0.wav", long_)
    write_wav(root / "no" / "5h0rt000_nohash_0.wav", tone(13, n=2_000))
    write_wav(root / "up" / "10ud0000_nohash_0.wav", (np.sin(np.arange(16_000) / 5) * 3).astype(np.float32))
    write_wav(root / "down" / "1a7e0000_nohash_0.wav", late_speech())
    (root / "left" / "bad00000_nohash_0.wav").write_bytes(b"RIFF....garbage")
    return root


def test_data_info_names_every_problem_file_and_fails_on_unusable_ones(tmp_path):
    root = problem_archive(tmp_path / "a")
    result = run_kws("data", "info", str(root))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    problems = "\n".join(lines[lines.index("problems found:"):])
    assert "2 unreadable file(s)" in problems
    assert "down/1a7e0000_nohash_0.wav (silent in the first 1 s" in problems
    assert "left/bad00000_nohash_0.wav (not a readable WAV" in problems
    assert "1 clip(s) longer than 1 s (only the first second is used): yes/1ong0000_nohash_0.wav" in problems
    assert "shorter than 0.5 s (padded with silence): no/5h0rt000_nohash_0.wav" in problems
    assert "beyond +/-1.5 (clipped to [-1, 1]): up/10ud0000_nohash_0.wav" in problems

    report = json.loads(run_kws("data", "info", str(root), "--json").stdout)
    assert report["clip_problems"] == {LONG: ["yes/1ong0000_nohash_0.wav"], SHORT: ["no/5h0rt000_nohash_0.wav"],
                                       OVER_RANGE: ["up/10ud0000_nohash_0.wav"]}
    assert set(report["unreadable"]) == {"down/1a7e0000_nohash_0.wav", "left/bad00000_nohash_0.wav"}

    clean = run_kws("data", "info", str(make_archive(tmp_path / "clean", speakers=12)))
    assert clean.returncode == 0 and "problems found: none" in clean.stdout


def test_loading_warns_once_about_clips_with_problems(tmp_path, caplog):
    root = problem_archive(tmp_path / "a")
    (root / "left" / "bad00000_nohash_0.wav").unlink()
    (root / "down" / "1a7e0000_nohash_0.wav").unlink()
    ds = SpeechCommands(root)
    with caplog.at_level(logging.WARNING, logger="kws.data"):
        for split in ("training", "validation", "testing"):
            ds.load(split)
    named = {name for names in ds.clip_problems.values() for name in names}
    warnings = [r for r in caplog.records if "clips with problems" in r.getMessage()]
    assert len(warnings) <= 3 and all(str(root) in w.getMessage() for w in warnings)
    assert named <= {"yes/1ong0000_nohash_0.wav", "no/5h0rt000_nohash_0.wav", "up/10ud0000_nohash_0.wav"}


# ----- a killed kws synth ---------------------------------------------------------------------


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for init, which may never reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_a_killed_synth_takes_its_workers_with_it_and_the_next_run_cleans_up(tmp_path):
    out = tmp_path / "speech"
    env = dict(os.environ, KWS_SYNTH_WORKERS="2")
    # Its own session, so that no signal of this test can reach the test process's group.
    proc = subprocess.Popen(
        [sys.executable, "-m", "kws.cli", "synth", "--out", str(out), "--clips-per-word", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, env=env, start_new_session=True,
    )
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            workers = children_of(proc.pid)  # two workers and the resource tracker
            if len(workers) >= 3 and len(list(tmp_path.glob(".speech.*.tmp/*/*.wav"))) >= 10:
                break
            time.sleep(0.05)
        assert proc.poll() is None and len(workers) >= 3, "synthesis ended before it could be killed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(running(p) for p in workers):
            time.sleep(0.05)
        assert [p for p in workers if running(p)] == [], "workers outlived their parent"
        ready, _, _ = select.select([proc.stdout], [], [], 5)
        assert ready and proc.stdout.read() == b"", "the stdout pipe did not reach its end"
    finally:
        for pid in workers:  # only if the assertion above failed
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        proc.stdout.close()

    (stale,) = tmp_path.glob(".speech.*.tmp")
    assert f".p{proc.pid}-" in stale.name and not out.exists()
    # The workers' eSpeak NG scratch folders are removed by the next process that makes one.
    from kws import _espeak

    scratch = _espeak._scratch_folder()
    os.rmdir(scratch)
    tmp = Path(tempfile.gettempdir())
    assert [p for pid in workers for p in tmp.glob(f".kws-espeak.p{pid}-*")] == []

    code = main(["synth", "--out", str(out), "--clips-per-word", "1", "--unknown-clips-per-word", "0"])
    assert code == 0 and (out / "SYNTH.json").is_file()
    assert list(tmp_path.glob(".speech.*")) == []


def test_a_live_writers_temporary_folder_is_kept(tmp_path):
    from kws.store.fs import remove_stale_siblings

    mine = tmp_path / f"{temp_prefix(tmp_path / 'out')}xyz.tmp"
    mine.mkdir()
    unknown = tmp_path / ".out.abc.tmp"  # no creator recorded, and recent
    unknown.mkdir()
    assert remove_stale_siblings(tmp_path / "out") == []
    assert mine.is_dir() and unknown.is_dir()


# ----- a build killed inside the artifact cache -----------------------------------------------

KILLED_BUILDER = """
    import sys, time
    from kws.cache import ArtifactCache

    def build(folder):
        (folder / "model.bin").write_bytes(b"x" * 100_000)
        print("building", flush=True)
        time.sleep(120)

    ArtifactCache().get_or_build("train", {"model": "ds-cnn-s"}, build)
"""


def test_a_killed_cache_build_is_shown_by_ls_and_du_and_removed_by_clear(tmp_path):
    env = dict(os.environ, KWS_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_BUILDER)], stdout=subprocess.PIPE,
                            text=True, cwd=REPO, env=env, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "building"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    (leftover,) = (tmp_path / "cache" / "artifacts" / "train").glob(".*.tmp")

    ls = run_kws("cache", "ls", env=env)
    assert ls.returncode == 0 and "incomplete build (stale)" in ls.stdout
    assert "0 entries, 1 incomplete" in ls.stdout and "kws cache clear" in ls.stdout
    records = json.loads(run_kws("cache", "ls", "--json", env=env).stdout)
    assert [(r["status"], r["path"]) for r in records] == [("incomplete (stale)", str(leftover))]
    du = run_kws("cache", "du", env=env)
    row = next(line for line in du.stdout.splitlines() if line.startswith("incomplete builds (stale)"))
    assert row.split()[3] == "1" and "97.7 KB" in row

    clear = run_kws("cache", "clear", env=env)
    assert clear.returncode == 0 and "removed 0 entries and 1 stale incomplete build" in clear.stdout
    assert not leftover.exists()
    assert "no cached artifacts" in run_kws("cache", "ls", env=env).stdout


# ----- cache entries that cannot be read, and damaged features ---------------------------------


def test_ls_lists_an_entry_with_a_garbage_manifest_as_corrupt(capsys, caplog):
    cache = ArtifactCache()
    def stores(data: bytes):
        return lambda folder: (folder / "m.bin").write_bytes(data) and None

    good = cache.get_or_build("train", {"n": 1}, stores(b"1"))
    bad = cache.get_or_build("train", {"n": 2}, stores(b"2"))
    (bad.path / "manifest.json").write_text("\x00garbage{")
    with caplog.at_level(logging.WARNING):
        assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if bad.key[:12] in line)
    assert "corrupt: manifest.json is unreadable" in row
    assert good.key[:12] in out and "1 entries, 1 corrupt" in out
    assert caplog.records == [], "the listing reports it once, as a row"
    assert main(["cache", "ls", "--json"]) == 0
    records = {r["key"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert records == {good.key: "ok", bad.key: "corrupt"}
    assert main(["cache", "du"]) == 0
    assert "corrupt entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert not bad.path.exists() and not good.path.exists()


def test_a_damaged_split_in_the_feature_cache_warns_once(tmp_path, caplog):
    root = make_archive(tmp_path / "a", speakers=12)
    cache = FeatureCache(tmp_path / "store")
    feats, labels = SpeechCommands(root).features("validation", cache=cache)
    (entry,) = [p for p in (tmp_path / "store" / "features").iterdir() if not p.name.startswith(".")]
    for array in entry.glob("*.npy"):
        array.write_bytes(b"damaged")
    with caplog.at_level(logging.WARNING, logger="kws.store"):
        again, labels2 = SpeechCommands(root).features("validation", cache=cache)
    assert [r.getMessage().count("corrupt") for r in caplog.records] == [1]
    assert again.tobytes() == feats.tobytes() and labels2.tobytes() == labels.tobytes()
    assert (cache.misses, cache.rebuilds) == (2, 1)
