"""The matrix on many machines: ``--kws-shard K/N`` (every case on one shard, trained
prefixes never split, shards balanced by estimated cost, the same partition on every
machine) and ``kws results merge`` (each row once, the summary rewritten, the gate on
the merged rows). No training: cases are generated, rows are copied from results/."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from kws.cli import main
from kws.matrix.grid import generate, load_grid
from kws.matrix.shard import Shard, cost, groups, needs, partition, select
from tests.test_matrix import GRID, ROOT, THRESHOLDS, _collect, _ids, _options

TIERS = ("smoke", "nightly")
SHARD_COUNTS = (1, 2, 3, 4, 5)
BAD_SHARDS = ("0/2", "3/2", "x")
HISTORY = ROOT / "results" / "history.jsonl"


def _cases(tier: str):
    return generate(load_grid(GRID)[tier])


def _needs_of(cases) -> dict[str, float]:
    return {k: v for case in cases for k, v in needs(case).items()}


# ----- the partition ------------------------------------------------------------------------


@pytest.mark.parametrize("count", SHARD_COUNTS)
@pytest.mark.parametrize("tier", TIERS)
def test_every_case_lands_on_one_shard_and_no_group_is_split(tier, count):
    cases = _cases(tier)
    plans = partition(cases, count)
    assert [str(p.shard) for p in plans] == [f"{k}/{count}" for k in range(1, count + 1)]
    slugs = [c.slug for p in plans for c in p.cases]
    assert len(slugs) == len(set(slugs)) == len(cases) and set(slugs) == {c.slug for c in cases}
    home = {c.group: p.shard for p in plans for c in p.cases}
    assert all(home[c.group] == p.shard for p in plans for c in p.cases), "a group spans two shards"
    assert sorted(g for p in plans for g in p.groups) == sorted(groups(cases))


@pytest.mark.parametrize("count", SHARD_COUNTS)
@pytest.mark.parametrize("tier", TIERS)
def test_no_shard_costs_more_than_its_share_plus_the_largest_group(tier, count):
    cases = _cases(tier)
    plans = partition(cases, count)
    ideal = cost(_needs_of(cases)) / count
    largest = max(cost(_needs_of(members)) for members in groups(cases).values())
    worst = max(p.cost_s for p in plans)
    assert worst <= ideal + largest, f"{tier} {count} shards: {worst:.0f} s > {ideal:.0f} s + {largest:.0f} s"
    assert all(p.cost_s == pytest.approx(cost(_needs_of(p.cases))) for p in plans)


@pytest.mark.parametrize("tier", TIERS)
def test_the_partition_does_not_depend_on_the_order_of_the_cases(tier):
    cases = _cases(tier)
    shuffled = cases[:]
    random.Random(0).shuffle(shuffled)

    def shards(given):
        return [({c.slug for c in p.cases}, p.groups, p.cost_s) for p in partition(given, 3)]

    assert shards(cases) == shards(cases) == shards(shuffled) == shards(cases[::-1])


def test_three_seeds_on_three_shards_train_each_baseline_once():
    """The nightly grid's three seeds take a shard each; on two shards one seed is split
    (its baseline trained on both), the balance being worth more than a baseline."""
    cases = [c for c in _cases("nightly") if not c.model_label]  # DS-CNN-S, the tier's own model
    assert [{c.seed for c in p.cases} for p in partition(cases, 3)] == [{0}, {1}, {2}]
    assert sum(len({c.seed for c in p.cases}) for p in partition(cases, 2)) == 4


def test_a_larger_model_and_a_front_end_variant_cost_baselines_of_their_own():
    """DS-CNN-L's baseline and stages cost by its MACs (10.7x DS-CNN-S's: 5.2x the time,
    as measured); a front-end variant's baseline is not the default front-end's."""
    nightly = {c.slug: c for c in _cases("nightly")}
    small, large = needs(nightly["pqat-s0.50-seed0"]), needs(nightly["pqat-s0.50-dsl-seed0"])
    assert large["nightly-seed0-ds-cnn-l"] == pytest.approx(5.2 * small["nightly-seed0-ds-cnn-s"], rel=0.02)
    assert cost(large) > 4 * cost(small)
    tradeoffs = {c.slug: c for c in _cases("tradeoffs")}
    own, eight_k = needs(tradeoffs["p-s0.50-poly-seed0"]), needs(tradeoffs["p-s0.50-poly-fe8k-seed0"])
    assert not own.keys() & eight_k.keys()


def test_a_case_needs_its_baseline_its_prefixes_and_its_check_references():
    cases = {c.slug: c for c in _cases("nightly")}
    pcqat = needs(cases["pcqat-s0.50-c32-seed0"])
    # a baseline, its int8 model, prune / cluster / QAT, the deployed model, and the
    # reference qat case's QAT stage and int8 model
    assert len(pcqat) == 8
    assert sorted(pcqat.values()).count(74.0) == 1 and 28.8 in pcqat.values()
    # p-s0.50 shares everything with pcqat-s0.50-c32 but its deployed model
    assert len(needs(cases["p-s0.50-seed0"]).keys() - pcqat.keys()) == 1
    alpha = needs(cases["alpha-a0.50-seed0"])
    # its own width (fewer MACs: cheaper), and the full width it is scored against
    assert sorted(alpha.values()).count(74.0) == 1 and alpha["nightly-seed0-ds-cnn-s-a0.5"] < 74.0
    smoke = next(c for c in _cases("smoke") if c.slug == "pcqat-s0.50-c32-seed0")
    assert cost(needs(smoke)) < cost(pcqat)  # 12 baseline and 2 fine-tuning epochs, not 20 and 3


# ----- the option ---------------------------------------------------------------------------


def test_a_shard_parses_from_k_of_n():
    assert Shard.parse("2/4") == Shard(2, 4) and str(Shard.parse(" 2 / 4 ")) == "2/4"
    for bad in BAD_SHARDS:
        with pytest.raises(ValueError, match=f"'{bad}': K/N expected"):
            Shard.parse(bad)


def test_the_shards_collect_disjoint_tests_whose_union_is_the_matrix(pytester):
    """Each shard as a machine runs it: a pytest process of its own."""
    whole = _collect(pytester)
    runs, checks = _ids(whole), _ids(whole, "test_check")

    def collected(shard: str):
        result = pytester.runpytest_subprocess(*_options("--kws-grid", str(GRID), "--kws-thresholds",
                                                         str(THRESHOLDS), "--collect-only", "-q",
                                                         "--kws-shard", shard))
        assert result.ret == 0, result.stderr.str()
        return _ids(result), _ids(result, "test_check")

    (runs1, checks1), (runs2, checks2) = collected("1/2"), collected("2/2")
    assert len(runs) == 17 and runs1 and runs2
    assert runs1.isdisjoint(runs2) and runs1 | runs2 == runs
    assert checks1.isdisjoint(checks2) and checks1 | checks2 == checks
    # a check runs on the shard of its case
    assert all(any(check.startswith(f"{case}-") for case in runs1) for check in checks1)
    expected = {c.slug for c in select(_cases("smoke"), Shard(1, 2)).cases}
    assert runs1 == expected


def test_help_shows_the_shard_option(pytester):
    pytester.runpytest(*_options("--help")).stdout.fnmatch_lines(["*--kws-shard=K/N*run only shard K of N*"])


@pytest.mark.parametrize("value", BAD_SHARDS)
def test_a_bad_shard_is_a_usage_error_naming_it(pytester, value):
    result = _collect(pytester, "--kws-shard", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"argument --kws-shard: '{value}': K/N expected" in result.stderr.str()


def test_the_shard_is_in_every_row_and_in_the_session_line(tmp_path, monkeypatch):
    from kws.matrix.session import SESSIONS_FILE, MatrixSession
    from kws.matrix.thresholds import load_thresholds
    from kws.record import CaseRecord

    tier = load_grid(GRID)["smoke"]
    session = MatrixSession(tier, load_thresholds(THRESHOLDS), tmp_path / "results", ROOT, shard=Shard(2, 3))
    monkeypatch.setattr(MatrixSession, "data_id", "synth-x")
    monkeypatch.setattr(MatrixSession, "commit", {"commit": "abc", "dirty": False})
    assert [c.slug for c in session.cases] == [c.slug for c in select(session.all_cases, Shard(2, 3)).cases]
    case = session.cases[0]
    row = session.row(case, CaseRecord(pathway=case.pathway, metrics={"deployed_accuracy": 0.9}))
    assert row["shard"] == "2/3"
    session.rows = {row["case"]: row}
    session.finish()
    (line,) = [json.loads(text) for text in (tmp_path / "results" / SESSIONS_FILE).read_text().splitlines()]
    assert line["shard"] == "2/3" and line["cases"] == 1
    whole = MatrixSession(tier, load_thresholds(THRESHOLDS), tmp_path / "whole", ROOT)
    assert whole.cases == whole.all_cases and whole.row(case, CaseRecord(pathway="p"))["shard"] is None


# ----- kws results merge --------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_rows() -> list[dict]:
    """Three rows of the committed history, in the layout this version writes."""
    rows = [json.loads(line) for line in HISTORY.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "schema" in r and (r["metrics"].get("intervals") or {}).get("deployed_accuracy")]
    assert len(rows) >= 3, f"{HISTORY}: fewer than 3 rows with intervals to copy"
    return rows[-3:]


def _row(real: dict, case: str, time: str, **metrics) -> dict:
    return {**real, "case": case, "time": time, "metrics": {**real["metrics"], **metrics}}


def _folder(path: Path, rows: list[dict], sessions: list[dict] = ()) -> Path:
    path.mkdir(parents=True)
    (path / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if sessions:
        (path / "sessions.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sessions))
    return path


def _session(shard: str) -> dict:
    return {"time": "2030-01-01T02:00:00+00:00", "tier": "nightly", "data_id": "synth-x", "cases": 1,
            "warm": False, "wall_s": 60.0, "shard": shard}


def _merge(*argv) -> int:
    return main(["results", "merge", *map(str, argv)])


def _history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def test_merge_takes_every_row_once_and_merging_again_adds_nothing(real_rows, tmp_path, capsys):
    a, b, c = (_row(r, r["case"], f"2030-01-01T00:00:0{i}+00:00") for i, r in enumerate(real_rows))
    one = _folder(tmp_path / "shard1", [a, b], [_session("1/2")])
    two = _folder(tmp_path / "shard2", [c, a], [_session("2/2")])  # a: also in shard 1
    out = tmp_path / "merged"
    assert _merge(one, two, "--out", out) == 0
    assert [r["case"] for r in _history(out)] == [a["case"], b["case"], c["case"]]
    assert len((out / "sessions.jsonl").read_text().splitlines()) == 2
    summary = (out / "summary.md").read_text()
    assert f"## Tier `{a['tier']}`" in summary and (out / "report.html").is_file()
    printed = capsys.readouterr().out
    assert f"{two}: 2 row(s), 1 new" in printed and "3 row(s) and 2 session line(s) added" in printed
    before = (out / "history.jsonl").read_bytes(), (out / "sessions.jsonl").read_bytes()
    assert _merge(one, two, "--out", out) == 0
    assert ((out / "history.jsonl").read_bytes(), (out / "sessions.jsonl").read_bytes()) == before
    assert "0 row(s) and 0 session line(s) added, 3 row(s) in all" in capsys.readouterr().out


def test_the_gate_fails_a_merged_row_that_dropped_beyond_noise(real_rows, tmp_path, capsys):
    from kws.stats import accuracy_interval

    real = real_rows[-1]
    n = real["metrics"].get("n_test") or 1000

    def run(acc: float, time: str) -> dict:
        interval = accuracy_interval(round(acc * n), n).to_list()
        intervals = {**real["metrics"]["intervals"], "deployed_accuracy": interval}
        return _row(real, real["case"], time, deployed_accuracy=acc, intervals=intervals)

    out = _folder(tmp_path / "results", [run(0.90, "2030-01-01T00:00:00+00:00"),
                                         run(0.90, "2030-01-02T00:00:00+00:00")])
    steady = _folder(tmp_path / "steady", [run(0.90, "2030-01-03T00:00:00+00:00")])
    assert _merge(steady, "--out", out, "--gate") == 0
    assert "kws gate: 1 case(s) compared with their history, no regression" in capsys.readouterr().out
    dropped = _folder(tmp_path / "dropped", [run(0.50, "2030-01-04T00:00:00+00:00")])
    assert _merge(dropped, "--out", out, "--gate") == 1
    printed = capsys.readouterr().out
    assert "kws gate: 1 regression(s)" in printed
    assert f"{real['case']}: int8 accuracy 50.00% is 40.00 pp [" in printed
    assert "beyond it with 95% confidence" in printed
    assert len(_history(out)) == 4  # the regressed row is recorded all the same


def test_a_folder_without_a_history_is_named_and_nothing_is_written(real_rows, tmp_path, capsys):
    good = _folder(tmp_path / "shard1", real_rows[:1])
    empty = tmp_path / "shard2"
    empty.mkdir()
    out = tmp_path / "merged"
    assert _merge(good, empty, "--out", out) == 2
    assert capsys.readouterr().err == (f"kws results: error: {empty}: no history.jsonl in this folder "
                                       "(is it a shard's --kws-results folder?)\n")
    assert not out.exists()


def test_merge_refuses_an_out_that_is_a_file_and_thresholds_without_the_gate(real_rows, tmp_path, capsys):
    shard = _folder(tmp_path / "shard1", real_rows[:1])
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    with pytest.raises(SystemExit):
        _merge(shard, "--out", a_file)
    assert f"argument --out: {a_file} is a file, not a folder" in capsys.readouterr().err
    assert _merge(shard, "--out", tmp_path / "out", "--thresholds", THRESHOLDS) == 2
    assert "--thresholds sets the limits of --gate: give --gate too" in capsys.readouterr().err


def test_merge_reports_an_unreadable_line_with_its_file_and_number(real_rows, tmp_path, capsys):
    shard = _folder(tmp_path / "shard1", real_rows[:2])
    with (shard / "history.jsonl").open("a") as f:
        f.write('{"case": "half-writ\n')
    assert _merge(shard, "--out", tmp_path / "merged") == 0
    assert f"kws results: {shard / 'history.jsonl'}:3: unreadable history line skipped" in capsys.readouterr().err
    assert len(_history(tmp_path / "merged")) == 2
