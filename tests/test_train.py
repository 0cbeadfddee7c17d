"""Baseline training: the schedule, determinism, NaN handling, the cached stage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kws.baseline import load_model, train_baseline
from kws.cache import ArtifactCache
from kws.data import Augmentation, DataConfig, SpeechCommands
from kws.models import ModelConfig
from kws.train import (
    TrainConfig,
    TrainingData,
    TrainingDivergedError,
    class_weights,
    fit,
    make_dataset,
    prepare_data,
    seed_everything,
)
from tests.helpers import make_archive

TINY = ModelConfig(alpha=0.25)
SHORT = TrainConfig(epochs=2, batch_size=32, augmentation_versions=2, early_stopping_patience=None)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return make_archive(tmp_path_factory.mktemp("data") / "a", speakers=24)


def test_learning_rate_steps_at_thirds_by_default():
    config = TrainConfig(epochs=36)
    assert config.boundaries == (12, 24)
    assert [config.learning_rate(e) for e in (0, 11, 12, 23, 24, 35)] == [5e-4, 5e-4, 1e-4, 1e-4, 2e-5, 2e-5]
    assert TrainConfig(epochs=10, lr_boundaries=(2, 5)).learning_rate(4) == 1e-4


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=0), "epochs must be >= 1"),
    (dict(learning_rates=(1e-3, -1)), "learning_rates must be positive"),
    (dict(lr_boundaries=(3,)), "one entry fewer"),
    (dict(early_stopping_patience=0), "early_stopping_patience"),
])
def test_train_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


def test_class_weights_balance_the_labels():
    labels = np.array([0] * 10 + [1] * 30 + [2] * 60)
    weights = class_weights(labels, 4)
    per_class_mass = [weights[i] * np.sum(labels == i) for i in range(3)]
    assert np.allclose(per_class_mass, per_class_mass[0]) and weights[3] == 0


def test_pipeline_uses_each_epochs_version_in_a_seeded_order():
    train = np.stack([np.full((10, 2, 2), v, np.float32) + np.arange(10)[:, None, None] * 10
                      for v in range(2)])
    labels = np.arange(10, dtype=np.int32)
    ds, steps = make_dataset(train, labels, batch_size=4, epochs=3, seed=0)
    batches = [(x.numpy(), y.numpy()) for x, y in ds]
    assert steps == 3 and len(batches) == 9
    for epoch in range(3):
        xs = np.concatenate([b[0] for b in batches[epoch * 3:(epoch + 1) * 3]])
        ys = np.concatenate([b[1] for b in batches[epoch * 3:(epoch + 1) * 3]])
        assert sorted(ys) == list(range(10))
        np.testing.assert_array_equal(xs[:, 0, 0, 0], ys * 10 + epoch % 2)
    orders = [np.concatenate([b[1] for b in batches[e * 3:(e + 1) * 3]]) for e in range(2)]
    assert not np.array_equal(orders[0], orders[1])
    again = [y.numpy() for _, y in make_dataset(train, labels, 4, 3, 0)[0]]
    assert all(np.array_equal(a, b[1]) for a, b in zip(again, batches))


def test_augmented_versions_are_cached_and_differ(archive):
    from kws.features import FeatureCache

    ds = SpeechCommands(archive)
    cache = FeatureCache()
    data = prepare_data(ds, "mlperf-tiny", SHORT, cache=cache)
    assert data.train.shape[:2] == (2, len(ds.clips("training")))
    assert not np.allclose(data.train[0], data.train[1])
    clean, _ = ds.features("training", "mlperf-tiny")
    assert not np.allclose(data.train[0], clean)
    misses = cache.misses
    prepare_data(SpeechCommands(archive), "mlperf-tiny", SHORT, cache=cache)
    assert cache.misses == misses, "a second run must not augment or extract again"
    plain = prepare_data(ds, "mlperf-tiny", TrainConfig(augmentation=None), cache=cache)
    np.testing.assert_array_equal(plain.train[0], clean)


def _train_once(archive, config=SHORT):
    data = prepare_data(SpeechCommands(archive), "mlperf-tiny", config)
    seed_everything(config.seed)
    from kws.models import build_model

    model = build_model(TINY)
    result = fit(model, data, config)
    return result, model


def test_training_is_deterministic_under_a_seed(archive):
    a, model_a = _train_once(archive)
    b, model_b = _train_once(archive)
    assert a["history"]["loss"] == pytest.approx(b["history"]["loss"], rel=1e-5)
    assert a["history"]["val_accuracy"] == b["history"]["val_accuracy"]
    for wa, wb in zip(model_a.get_weights(), model_b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    c, _ = _train_once(archive, replace(SHORT, seed=1, augmentation=Augmentation(time_shift_ms=50)))
    assert c["history"]["loss"] != a["history"]["loss"]


def test_nan_loss_stops_with_a_clear_error():
    from kws.models import build_model

    rng = np.random.default_rng(0)
    train = rng.standard_normal((1, 64, 49, 10)).astype(np.float32)
    labels = rng.integers(0, 12, 64).astype(np.int32)
    data = TrainingData(train, labels, train[0, :8], labels[:8], fingerprint={})
    model = build_model(TINY)
    # Weights that have blown up: the logits, and so the loss, are NaN from the first step.
    head = model.get_layer("logits")
    head.set_weights([np.full_like(w, np.nan) for w in head.get_weights()])
    with pytest.raises(TrainingDivergedError, match="nan-check: the training loss became nan in epoch 1"):
        fit(model, data, SHORT, stage="nan-check")


def test_baseline_is_cached_and_a_warm_run_does_not_train(archive, monkeypatch):
    cache = ArtifactCache()
    config = DataConfig()
    art = train_baseline(archive, model=TINY, train=SHORT, data_config=config, cache=cache)
    assert cache.misses == 1
    meta = art.metadata
    assert meta["epochs_run"] == 2 and len(meta["history"]["loss"]) == 2
    assert 0 <= meta["test"]["accuracy"] <= 1 and meta["test"]["n"] == len(SpeechCommands(archive).clips("testing"))
    import kws.train

    monkeypatch.setattr(kws.train, "fit", lambda *a, **k: pytest.fail("warm run retrained"))
    again = train_baseline(archive, model=TINY, train=SHORT, data_config=config, cache=cache)
    assert again.key == art.key and cache.hits == 1
    a, b = load_model(art), load_model(again)
    assert a is not b and a.count_params() == b.count_params()
    # Any change of input is another key.
    keys = {art.key}
    for kwargs in (dict(train=replace(SHORT, seed=3)),
                   dict(model=ModelConfig(alpha=0.5)), dict(frontend="arm")):
        monkeypatch.undo()
        keys.add(train_baseline(archive, **{"model": TINY, "train": SHORT, **kwargs},
                                data_config=config, cache=cache).key)
    assert len(keys) == 4


def test_train_cli_trains_exports_and_then_fetches(archive, tmp_path, capsys, monkeypatch):
    import errno
    import json
    import shutil

    from kws.cli import main

    args = ["train", "--data-dir", str(archive), "--alpha", "0.25", "--epochs", "2",
            "--export", "int8,float32", "--json", "--out", str(tmp_path / "out")]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["from_cache"] is False and first["epochs_run"] == 2
    assert 0 <= first["int8_test_accuracy"] <= 1
    assert first["int8_bytes"] < first["float32_bytes"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"model.h5", "model_int8.tflite",
                                                             "model_float32.tflite"}
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["from_cache"] is True and second["key"] == first["key"]
    assert second["int8_test_accuracy"] == first["int8_test_accuracy"]

    # A copy that fails after the work (a full disk): the record is printed all the same
    # and the error names the file.
    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfile", full_disk)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["key"] == first["key"]
    assert err == (f"kws train: error: --out: cannot write {tmp_path / 'out' / 'model.h5'}: "
                   "No space left on device (the model stays in the cache)\n")


def _usage_error(capsys, *args: str) -> str:
    """argparse rejects the value before any work: exit 2, one message naming the option."""
    from kws.cli import main

    with pytest.raises(SystemExit) as excinfo:
        main(["train", *args])
    assert excinfo.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def test_train_cli_rejects_bad_arguments(archive, tmp_path, capsys):
    data = ["--data-dir", str(archive)]
    assert "argument --export: unknown kind(s) 'int4'" in _usage_error(capsys, *data, "--export", "int4")
    assert "argument --epochs: must be an integer >= 1, got '0'" in _usage_error(capsys, *data, "--epochs", "0")
    assert "argument --seed: must be an integer >= 0, got '-1'" in _usage_error(capsys, *data, "--seed=-1")
    assert "argument --frontend: front-end 'bogus'" in _usage_error(capsys, *data, "--frontend", "bogus")
    assert "argument --alpha: must be a number in (0, 1], got '0'" in _usage_error(capsys, *data, "--alpha", "0")
    afile = tmp_path / "afile"
    afile.write_text("")
    assert f"argument --out: {afile} is a file, not a folder" in _usage_error(capsys, *data, "--out", str(afile))
    assert f"argument --data-dir: {afile} is a file, not a folder" in _usage_error(capsys, "--data-dir", str(afile))
