"""The artifact cache: keys, hits, atomic builds, locking across processes, verification,
clearing (all of it the storage core's, :mod:`kws.store`), and the ``kws cache`` commands."""

from __future__ import annotations

import datetime
import enum
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import kws.cache
import kws.cli.cache
import kws.store.store
from kws.cache import Artifact, ArtifactCache
from kws.cli import main
from kws.cli.cache import format_age, parse_age

MATERIAL = {
    "model": "ds-cnn-s",
    "frontend": {"recipe": "tf-signal", "num_mel_bins": 40},
    "train": {"epochs": 3, "learning_rate": 0.001},
    "seed": 0,
}


def writes(payload: bytes = b"weights", metadata: dict | None = None, calls: list | None = None):
    """A build that stores ``model.bin`` and records each call in ``calls``."""

    def build(folder: Path):
        if calls is not None:
            calls.append(folder)
        (folder / "model.bin").write_bytes(payload)
        return metadata if metadata is not None else {"accuracy": 0.9}

    return build


def run_python(code: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env},
    )


def stage_folder_names(cache: ArtifactCache, stage: str) -> list[str]:
    return sorted(p.name for p in (cache.root / stage).iterdir())


# ----- keys ----------------------------------------------------------------------------


def _with(material: dict, path: tuple[str, ...], value) -> dict:
    changed = json.loads(json.dumps(material))
    target = changed
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    return changed


@pytest.mark.parametrize("path, value", [
    (("model",), "ds-cnn-m"),
    (("frontend", "recipe"), "audio-ops"),
    (("frontend", "num_mel_bins"), 32),
    (("train", "epochs"), 4),
    (("train", "learning_rate"), 0.002),
    (("seed",), 1),
    (("extra",), None),
])
def test_key_changes_with_every_material_field(path, value):
    cache = ArtifactCache()
    assert cache.key("train", _with(MATERIAL, path, value)) != cache.key("train", MATERIAL)


def test_key_changes_with_stage_and_parent():
    cache = ArtifactCache()
    base = cache.key("train", MATERIAL)
    parent_a, parent_b = cache.key("baseline", {"a": 1}), cache.key("baseline", {"a": 2})
    keys = {
        base,
        cache.key("prune", MATERIAL),
        cache.key("train", MATERIAL, parent=parent_a),
        cache.key("train", MATERIAL, parent=parent_b),
    }
    assert len(keys) == 4


def test_key_changes_with_installed_versions_and_format(monkeypatch):
    cache = ArtifactCache()
    base = cache.key("train", MATERIAL)
    versions = kws.cache._installed_versions()
    assert versions["tensorflow"] and versions["ethos-u-vela"]  # read from the real install
    for name in versions:
        monkeypatch.setattr(kws.cache, "_installed_versions",
                            lambda name=name: {**versions, name: "0.0.0"})
        assert cache.key("train", MATERIAL) != base, name
    monkeypatch.setattr(kws.cache, "_installed_versions", lambda: versions)
    assert cache.key("train", MATERIAL) == base
    monkeypatch.setattr(kws.cache, "CACHE_FORMAT_VERSION", kws.cache.CACHE_FORMAT_VERSION + 1)
    assert cache.key("train", MATERIAL) != base


class Pooling(enum.Enum):
    AVG = "avg"
    MAX = "max"


@dataclass(frozen=True)
class ModelConfig:
    width: int
    pooling: Pooling
    label: str = field(default="", compare=False)


def test_key_normalises_python_and_numpy_values():
    cache = ArtifactCache()
    plain = {"cfg": {"width": 64, "pooling": "avg"}, "shape": [49, 10], "path": "data/x.npz",
             "lr": 0.5, "n": 3, "words": ["no", "yes"], "flag": True}
    rich = {"words": frozenset({"yes", "no"}), "flag": np.bool_(True), "n": np.int64(3),
            "lr": np.float32(0.5), "path": Path("data/x.npz"), "shape": (49, 10),
            "cfg": ModelConfig(64, Pooling.AVG, label="ignored: not compared")}
    assert cache.key("train", rich) == cache.key("train", plain)
    assert cache.key("train", {**rich, "cfg": ModelConfig(64, Pooling.MAX)}) != cache.key("train", plain)


def test_key_is_independent_of_dict_order():
    cache = ArtifactCache()
    reordered = dict(reversed(list(MATERIAL.items())))
    reordered["train"] = {"learning_rate": 0.001, "epochs": 3}
    assert cache.key("train", reordered) == cache.key("train", MATERIAL)


@pytest.mark.parametrize("seed", ["1", "2"])
def test_key_is_stable_across_processes_and_imports_no_tensorflow(seed):
    # A different string-hash seed reorders sets: the key must not depend on it.
    material = {"words": frozenset({"yes", "no", "up", "down", "left"}), "path": Path("a/b"),
                "shape": (49, 10), "model": "ds-cnn-s"}
    code = """
        import sys
        from pathlib import Path
        from kws.cache import ArtifactCache
        material = {"model": "ds-cnn-s", "shape": (49, 10), "path": Path("a/b"),
                    "words": frozenset({"left", "down", "up", "no", "yes"})}
        print(ArtifactCache().key("train", material, parent="ab" * 32))
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "tf_keras")))
    """
    result = run_python(code, PYTHONHASHSEED=seed)
    assert result.returncode == 0, result.stderr
    key, imported = result.stdout.split("\n")[:2]
    assert key == ArtifactCache().key("train", material, parent="ab" * 32)
    assert imported == "[]"


def test_key_rejects_what_cannot_be_serialised_naming_the_field():
    cache = ArtifactCache()
    with pytest.raises(TypeError, match=r"material\['train'\]\['optimizer'\].*object"):
        cache.key("train", {"train": {"optimizer": object()}})
    with pytest.raises(TypeError, match=r"material\['layers'\]\[1\].*fingerprint"):
        cache.key("train", {"layers": [1, np.zeros(3)]})
    with pytest.raises(TypeError, match=r"material\['bins'\].*key 3"):
        cache.key("train", {"bins": {3: "x"}})
    with pytest.raises(TypeError, match="material: must be a mapping"):
        cache.key("train", [("model", "x")])


@pytest.mark.parametrize("stage", ["", ".hidden", "a/b", "x" * 65, "..", "sp ace"])
def test_key_rejects_unsafe_stage_names(stage):
    with pytest.raises(ValueError, match="stage="):
        ArtifactCache().key(stage, MATERIAL)


def test_key_rejects_a_parent_that_is_not_a_key():
    with pytest.raises(ValueError, match="parent='model.keras'"):
        ArtifactCache().key("prune", MATERIAL, parent="model.keras")


# ----- hits and misses -----------------------------------------------------------------


def test_default_root_follows_kws_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KWS_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert ArtifactCache().root == tmp_path / "elsewhere" / "artifacts"


def test_hit_after_miss_builds_once():
    cache, calls = ArtifactCache(), []
    assert cache.get("train", MATERIAL) is None
    first = cache.get_or_build("train", MATERIAL, writes(b"abc", {"accuracy": 0.93}, calls))
    second = cache.get_or_build("train", MATERIAL, writes(b"other", calls=calls))
    assert len(calls) == 1
    assert (cache.hits, cache.misses, cache.rebuilds) == (1, 2, 0)  # get() missed, then built
    assert first == second
    assert second.metadata == {"accuracy": 0.93}
    assert second.file("model.bin").read_bytes() == b"abc"
    assert second.path == cache.root / "train" / first.key
    assert cache.get("train", MATERIAL) == first


def test_another_instance_and_process_sees_the_entry():
    built = ArtifactCache().get_or_build("train", MATERIAL, writes(b"abc"))
    again = ArtifactCache()
    fetched = again.get_or_build("train", MATERIAL, lambda folder: pytest.fail("rebuilt"))
    assert fetched.key == built.key and again.hits == 1


def test_manifest_records_what_the_stage_needs():
    cache = ArtifactCache()
    parent = cache.get_or_build("baseline", {"model": "ds-cnn-s"}, writes())

    def build(folder):
        (folder / "saved").mkdir()
        (folder / "saved" / "weights.bin").write_bytes(b"12345")
        return {"history": {"loss": [np.float32(1.5), 0.75]}, "sparsity": np.float64(0.5)}

    child = cache.get_or_build("prune", {"sparsity": 0.5}, build, parent=parent)
    manifest = json.loads((child.path / "manifest.json").read_text())
    assert manifest == child.manifest
    assert manifest["parent"] == parent.key and manifest["stage"] == "prune"
    assert manifest["key"] == child.key == cache.key("prune", {"sparsity": 0.5}, parent=parent.key)
    assert manifest["material"] == {"sparsity": 0.5}
    assert manifest["files"]["saved/weights.bin"]["size"] == 5
    assert len(manifest["files"]["saved/weights.bin"]["sha256"]) == 64
    assert child.metadata == {"history": {"loss": [1.5, 0.75]}, "sparsity": 0.5}
    assert manifest["build_seconds"] >= 0 and manifest["hostname"]
    assert set(manifest["versions"]) == {"tensorflow", "tf-keras", "tensorflow-model-optimization",
                                         "ethos-u-vela"}
    assert datetime.datetime.fromisoformat(manifest["created"]).tzinfo is not None
    assert child.file("saved") == child.path / "saved"
    assert child.size == 5


def test_file_names_missing_file_and_entry():
    artifact = ArtifactCache().get_or_build("train", MATERIAL, writes())
    with pytest.raises(KeyError, match=rf"'model.tflite'.*{artifact.path}.*model.bin"):
        artifact.file("model.tflite")


# ----- failures during a build ---------------------------------------------------------


class Boom(Exception):
    pass


def test_build_raising_leaves_nothing_and_propagates_unchanged():
    cache = ArtifactCache()
    error = Boom("out of memory")

    def build(folder):
        (folder / "model.bin").write_bytes(b"half")
        raise error

    with pytest.raises(Boom) as excinfo:
        cache.get_or_build("train", MATERIAL, build)
    assert excinfo.value is error
    assert cache.entries() == [] and cache.get("train", MATERIAL) is None
    assert [n for n in stage_folder_names(cache, "train") if not n.endswith(".lock")] == []
    assert cache.get_or_build("train", MATERIAL, writes(b"ok")).file("model.bin").read_bytes() == b"ok"


@pytest.mark.parametrize("metadata, message", [
    ([1, 2], "must return a mapping"),
    ({"model": object()}, r"metadata\['model'\]"),
])
def test_bad_metadata_is_an_error_and_stores_nothing(metadata, message):
    cache = ArtifactCache()
    with pytest.raises(TypeError, match=message):
        cache.get_or_build("train", MATERIAL, lambda folder: metadata)
    assert cache.entries() == []


def test_build_may_not_write_the_manifest():
    cache = ArtifactCache()

    def build(folder):
        (folder / "manifest.json").write_text("{}")

    with pytest.raises(ValueError, match="manifest.json"):
        cache.get_or_build("train", MATERIAL, build)
    assert cache.entries() == []


KILLED_BUILDER = """
    import sys, time
    from pathlib import Path
    from kws.cache import ArtifactCache

    def build(folder):
        with open(folder / "model.bin", "wb") as f:
            f.write(b"partial")
            f.flush()
            print("building", flush=True)
            time.sleep(60)
            f.write(b"never written")
        return {"builder": "killed"}

    ArtifactCache(Path(sys.argv[1])).get_or_build("train", {"model": "ds-cnn-s"}, build)
"""


def test_killed_builder_leaves_nothing_that_is_trusted():
    cache = ArtifactCache()
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(KILLED_BUILDER), str(cache.root)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    leftovers = [n for n in stage_folder_names(cache, "train") if n.endswith(".tmp")]
    assert len(leftovers) == 1  # the killed build's folder, half written
    assert cache.entries() == [] and cache.get("train", {"model": "ds-cnn-s"}) is None

    # Its name records the dead builder, so it is stale at once.
    assert [t.stale for t in cache.temporaries()] == [True]

    # The next build of that key removes the killed builder's folder first.
    calls = []
    artifact = cache.get_or_build("train", {"model": "ds-cnn-s"}, writes(b"complete", calls=calls))
    assert len(calls) == 1 and artifact.metadata == {"accuracy": 0.9}
    assert artifact.file("model.bin").read_bytes() == b"complete"
    assert [a.key for a in cache.entries()] == [artifact.key]
    assert not (cache.root / "train" / leftovers[0]).exists() and cache.temporaries() == []


def test_clear_removes_an_old_temporary_folder_of_unknown_origin():
    cache = ArtifactCache()
    artifact = cache.get_or_build("train", MATERIAL, writes())
    stale = cache.root / "train" / ".0123.abcd.tmp"  # no creator in its name
    stale.mkdir()
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    assert cache.clear(older_than=datetime.timedelta(days=1)) == 0
    assert not stale.exists() and cache.get("train", MATERIAL) == artifact


def test_clear_keeps_recent_temporary_folders():
    cache = ArtifactCache()
    cache.get_or_build("train", MATERIAL, writes())
    in_progress = cache.root / "train" / ".0123.abcd.tmp"
    in_progress.mkdir()
    assert cache.clear() == 1
    assert in_progress.is_dir()


CONCURRENT_FETCHER = """
    import json, os, sys, time
    from pathlib import Path
    from kws.cache import ArtifactCache

    root, counter, go = map(Path, sys.argv[1:4])
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("never told to go")
        time.sleep(0.005)

    def build(folder):
        with open(counter, "a") as f:
            f.write(f"{os.getpid()}\\n")
        time.sleep(1.0)
        (folder / "model.bin").write_bytes(b"weights")
        return {"builder": os.getpid()}

    cache = ArtifactCache(root)
    artifact = cache.get_or_build("train", {"model": "ds-cnn-s"}, build)
    print(json.dumps({"key": artifact.key, "metadata": artifact.metadata,
                      "hits": cache.hits, "misses": cache.misses}))
"""


def test_concurrent_fetch_builds_once(tmp_path):
    cache = ArtifactCache()
    counter, go = tmp_path / "builds.txt", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(CONCURRENT_FETCHER),
                          str(cache.root), str(counter), str(go)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    try:
        # Both are started and waiting before either looks at the cache, so the second
        # one arrives while the first is inside its one-second build.
        assert [p.stdout.readline().strip() for p in procs] == ["ready", "ready"]
        go.touch()
        outputs = [p.communicate(timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert len(counter.read_text().splitlines()) == 1
    assert results[0]["key"] == results[1]["key"]
    assert results[0]["metadata"] == results[1]["metadata"]
    assert sorted((r["hits"], r["misses"]) for r in results) == [(0, 1), (1, 0)]
    assert len(cache.entries()) == 1


# ----- verification --------------------------------------------------------------------


def _truncate(artifact: Artifact) -> None:
    path = artifact.file("model.bin")
    path.write_bytes(path.read_bytes()[:3])


def _flip_a_byte(artifact: Artifact) -> None:
    path = artifact.file("model.bin")
    data = bytearray(path.read_bytes())
    data[2] ^= 0xFF
    path.write_bytes(bytes(data))


def _delete_manifest(artifact: Artifact) -> None:
    (artifact.path / "manifest.json").unlink()


def _garble_manifest(artifact: Artifact) -> None:
    (artifact.path / "manifest.json").write_text('{"key": ')


def _delete_file(artifact: Artifact) -> None:
    artifact.file("model.bin").unlink()


def _add_file(artifact: Artifact) -> None:
    (artifact.path / "intruder.bin").write_bytes(b"x")


@pytest.mark.parametrize("damage", [_truncate, _flip_a_byte, _delete_manifest, _garble_manifest,
                                    _delete_file, _add_file])
def test_corrupt_entry_is_detected_and_rebuilt(damage, caplog):
    cache = ArtifactCache()
    original = cache.get_or_build("train", MATERIAL, writes(b"weights-v1"))
    damage(original)

    assert ArtifactCache().get("train", MATERIAL) is None
    calls = []
    with caplog.at_level(logging.WARNING, logger="kws.store"):
        rebuilt = cache.get_or_build("train", MATERIAL, writes(b"weights-v2", calls=calls))
    assert len(calls) == 1 and cache.rebuilds == 1
    assert str(original.path) in caplog.text and "corrupt" in caplog.text
    assert rebuilt.file("model.bin").read_bytes() == b"weights-v2"
    assert ArtifactCache().get("train", MATERIAL) == rebuilt
    assert not [n for n in stage_folder_names(cache, "train") if n.endswith(".tmp")]


def test_get_does_not_remove_a_corrupt_entry(caplog):
    cache = ArtifactCache()
    artifact = cache.get_or_build("train", MATERIAL, writes())
    _flip_a_byte(artifact)
    with caplog.at_level(logging.WARNING, logger="kws.store"):
        assert cache.get("train", MATERIAL) is None
    assert "model.bin does not match its sha256" in caplog.text
    assert artifact.path.is_dir() and cache.rebuilds == 0


def test_entries_skip_unreadable_and_optionally_verify():
    cache = ArtifactCache()
    good = cache.get_or_build("train", MATERIAL, writes())
    tampered = cache.get_or_build("train", {"model": "x"}, writes(b"abcdef"))
    broken = cache.get_or_build("convert", {"model": "y"}, writes())
    _flip_a_byte(tampered)
    _delete_manifest(broken)
    assert {a.key for a in cache.entries()} == {good.key, tampered.key}
    assert [a.key for a in cache.entries(verify=True)] == [good.key]


# ----- clearing and disk usage ---------------------------------------------------------


def _build_at(cache, monkeypatch, when: datetime.datetime, material: dict) -> Artifact:
    with monkeypatch.context() as patch:  # a local undo: KWS_CACHE_DIR stays patched
        patch.setattr(kws.store.store, "_now", lambda: when)
        return cache.get_or_build("train", material, writes())


def test_clear_older_than_removes_only_old_entries(monkeypatch):
    cache = ArtifactCache()
    now = datetime.datetime.now(datetime.UTC)
    old = _build_at(cache, monkeypatch, now - datetime.timedelta(days=10), {"n": 1})
    recent = _build_at(cache, monkeypatch, now - datetime.timedelta(days=2), {"n": 2})
    fresh = cache.get_or_build("train", {"n": 3}, writes())
    assert cache.clear(older_than=datetime.timedelta(days=7)) == 1
    assert not old.path.exists()
    assert {a.key for a in cache.entries()} == {recent.key, fresh.key}
    assert cache.clear(older_than=datetime.timedelta(hours=12)) == 1
    assert [a.key for a in cache.entries()] == [fresh.key]
    assert cache.clear() == 1 and cache.entries() == []


def test_clear_dates_an_entry_without_manifest_by_its_mtime():
    cache = ArtifactCache()
    artifact = cache.get_or_build("train", MATERIAL, writes())
    _delete_manifest(artifact)
    assert cache.clear(older_than=datetime.timedelta(days=1)) == 0
    old = time.time() - 3 * 86400
    os.utime(artifact.path, (old, old))
    assert cache.clear(older_than=datetime.timedelta(days=1)) == 1
    assert not artifact.path.exists()


def test_clear_rejects_negative_age():
    with pytest.raises(ValueError, match="older_than"):
        ArtifactCache().clear(older_than=datetime.timedelta(hours=-1))


def test_disk_usage_counts_every_stored_byte():
    cache = ArtifactCache()
    assert cache.disk_usage() == 0
    a = cache.get_or_build("train", MATERIAL, writes(b"x" * 1000))
    manifest_size = (a.path / "manifest.json").stat().st_size
    assert cache.disk_usage() == 1000 + manifest_size  # lock files are empty
    b = cache.get_or_build("convert", MATERIAL, writes(b"y" * 500), parent=a)
    assert cache.disk_usage() == 1500 + manifest_size + (b.path / "manifest.json").stat().st_size
    cache.clear()
    assert cache.disk_usage() == 0


# ----- command line --------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("7d", datetime.timedelta(days=7)),
    ("12h", datetime.timedelta(hours=12)),
    ("30m", datetime.timedelta(minutes=30)),
    ("90s", datetime.timedelta(seconds=90)),
    ("2w", datetime.timedelta(weeks=2)),
    ("1.5h", datetime.timedelta(minutes=90)),
])
def test_parse_age(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["7", "d", "7x", "-1d", "7 days", ""])
def test_parse_age_rejects_malformed(text):
    with pytest.raises(ValueError, match="30m, 12h, 7d"):
        parse_age(text)


@pytest.mark.parametrize("age, text", [
    (datetime.timedelta(days=7), "1w"), (datetime.timedelta(days=3), "3d"),
    (datetime.timedelta(hours=36), "36h"), (datetime.timedelta(seconds=90), "90s"),
])
def test_format_age(age, text):
    assert format_age(age) == text


def test_cli_ls_lists_entries(capsys):
    cache = ArtifactCache()
    train = cache.get_or_build("train", {"pathway": "prune-cluster-qat", "seed": 3}, writes())
    convert = cache.get_or_build("convert", {"model": "ds-cnn-s"}, writes(), parent=train)
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    train_row = next(line for line in out.splitlines() if line.startswith("train"))
    assert train.key[:12] in train_row and "pathway=prune-cluster-qat seed=3" in train_row
    assert train.key[:13] not in out
    convert_row = next(line for line in out.splitlines() if line.startswith("convert"))
    assert convert.key[:12] in convert_row and "model=ds-cnn-s" in convert_row
    assert "2 entries" in out

    assert main(["cache", "ls", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["key"] for r in records} == {train.key, convert.key}
    assert next(r for r in records if r["stage"] == "convert")["parent"] == train.key


def test_cli_ls_empty_cache(capsys):
    assert main(["cache", "ls"]) == 0
    assert "no cached artifacts" in capsys.readouterr().out
    assert main(["cache", "ls", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_du_reports_per_stage(capsys):
    cache = ArtifactCache()
    cache.get_or_build("train", {"n": 1}, writes(b"x" * 2000))
    cache.get_or_build("train", {"n": 2}, writes(b"x" * 2000))
    cache.get_or_build("vela", {"n": 1}, writes(b"x" * 10))
    assert main(["cache", "du"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:] if line.strip()}
    assert rows["train"] == "2" and rows["vela"] == "1" and rows["total"] == "3"
    assert f"{cache.disk_usage()} bytes" in out


def test_cli_clear_older_than(capsys, monkeypatch):
    cache = ArtifactCache()
    now = datetime.datetime.now(datetime.UTC)
    old = _build_at(cache, monkeypatch, now - datetime.timedelta(days=8), {"n": 1})
    fresh = cache.get_or_build("train", {"n": 2}, writes())
    before = cache.disk_usage()
    assert main(["cache", "clear", "--older-than", "7d"]) == 0
    out = capsys.readouterr().out
    assert "removed 1 entry older than 1w" in out
    freed = before - cache.disk_usage()
    assert freed > 0 and kws.cli.cache.human_bytes(freed) in out
    assert not old.path.exists() and fresh.path.exists()

    assert main(["cache", "clear"]) == 0
    assert "removed 1 entry (" in capsys.readouterr().out
    assert cache.entries() == []


@pytest.mark.parametrize("age", ["7x", "soon", "12"])
def test_cli_clear_rejects_a_malformed_age(age, capsys):
    ArtifactCache().get_or_build("train", MATERIAL, writes())
    with pytest.raises(SystemExit) as excinfo:
        main(["cache", "clear", "--older-than", age])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert "--older-than" in err and repr(age) in err and "30m, 12h, 7d" in err
    assert len(ArtifactCache().entries()) == 1  # nothing removed


def test_command_line_helpers_stay_importable_from_the_cache_module():
    from kws.cache import AGE_FORMS, format_age, human_bytes, parse_age, summarize

    assert parse_age is kws.cli.cache.parse_age and format_age is kws.cli.cache.format_age
    assert human_bytes is kws.cli.cache.human_bytes and summarize is kws.cli.cache.summarize
    assert "7d" in AGE_FORMS
    with pytest.raises(AttributeError, match="no_such_name"):
        kws.cache.no_such_name  # noqa: B018


def test_cache_command_module_imports_nothing_heavy():
    code = """
        import sys
        import kws.cli.cache
        print(sorted(m for m in ("numpy", "scipy", "tensorflow", "kws.cache", "kws.store") if m in sys.modules))
    """
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_cache_library_holds_no_command_line_code():
    import kws.store

    sources = [Path(kws.cache.__file__), *Path(kws.store.__file__).parent.glob("*.py")]
    assert len(sources) >= 5
    for source in sources:
        assert "argparse" not in source.read_text(), source


def test_an_atomic_write_gets_the_permissions_of_a_plain_write(tmp_path):
    import os
    import stat

    from kws.store.fs import atomic_write_bytes

    (tmp_path / "plain").write_bytes(b"x")
    atomic_write_bytes(tmp_path / "atomic", b"x")
    mode = stat.S_IMODE(os.stat(tmp_path / "atomic").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)  # not mkstemp's 0600
