"""The benchmark matrix: every pathway of the deployment tree at every point of the
tier's grid (``bench/grid.toml``), one case each.

``test_run`` trains (or fetches from the artifact cache), converts, evaluates with
LiteRT and estimates with Vela, then records the case in ``results/``; ``test_latency``
times one LiteRT inference with pytest-benchmark. Each check of ``kws.matrix.checks`` is
its own test, generated only for the cases it applies to, against the limits of
``bench/thresholds.toml``.

    pytest bench/test_matrix.py -k cqat              # one family
    pytest bench/test_matrix.py -m prune             # pruning-only pathways
    pytest bench/test_matrix.py --kws-tier nightly -n auto --dist loadgroup
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kws.matrix.session import litert_invoker


def test_run(kws_case, kws_session, benchmark, request):
    record = benchmark.pedantic(kws_session.result, args=(kws_case,), rounds=1, iterations=1)
    row = kws_session.row(kws_case, record)
    benchmark.extra_info.update(
        case=kws_case.slug, tier=kws_case.tier, config_key=row["config_key"], data=row["data_id"],
        trained_now=record["times"]["trained_now"], times=record["times"], metrics=row["metrics"],
        keys=record["keys"], versions=record["versions"])
    request.node.user_properties.append(("kws_row", row))
    accuracy = record["metrics"]["deployed_accuracy"]
    assert accuracy is not None and 0.0 <= accuracy <= 1.0, f"{kws_case.slug}: deployed accuracy {accuracy}"


def test_latency(kws_case, kws_result, benchmark):
    """Host latency of one batch-1 inference of the deployed model under LiteRT."""
    infer = litert_invoker(Path(kws_result["files"]["deployed"]))
    out = benchmark.pedantic(infer, rounds=100, iterations=5, warmup_rounds=10)
    benchmark.extra_info.update(case=kws_case.slug, export=kws_case.export)
    assert out.shape[-1] == 12, f"{kws_case.slug}: output shape {out.shape}"


@pytest.mark.kws_check("accuracy")
def test_accuracy(kws_case, kws_session):
    kws_session.check("accuracy", kws_case)


@pytest.mark.kws_check("sparsity")
def test_sparsity(kws_case, kws_session):
    kws_session.check("sparsity", kws_case)


@pytest.mark.kws_check("clusters")
def test_clusters(kws_case, kws_session):
    kws_session.check("clusters", kws_case)


@pytest.mark.kws_check("size")
def test_size(kws_case, kws_session):
    kws_session.check("size", kws_case)


@pytest.mark.kws_check("npu")
def test_npu(kws_case, kws_session):
    kws_session.check("npu", kws_case)


@pytest.mark.kws_check("vela_latency")
def test_vela_latency(kws_case, kws_session):
    kws_session.check("vela_latency", kws_case)


@pytest.mark.kws_check("vela_weights")
def test_vela_weights(kws_case, kws_session):
    kws_session.check("vela_weights", kws_case)
