"""The benchmark matrix: every pathway of the deployment tree at every point of the
tier's grid (``bench/grid.toml``), one case each.

``test_run`` trains (or fetches from the artifact cache), converts, measures (LiteRT,
Vela, inspection) and records the case in ``results/``; ``test_latency`` times one
LiteRT inference with pytest-benchmark; ``test_check`` runs each check of
``kws.matrix.checks`` that applies to a case, against ``bench/thresholds.toml``.

    pytest bench/test_matrix.py -k cqat                   # one family
    pytest bench/test_matrix.py -k "pcqat and accuracy"   # one check of some cases
    pytest bench/test_matrix.py -m prune                  # pruning-only pathways
    pytest bench/test_matrix.py --kws-tier nightly -n auto --dist loadgroup
"""

from __future__ import annotations

from pathlib import Path

from kws.pipeline.measure import litert_invoker


def test_run(kws_case, kws_session, benchmark):
    benchmark.group = "case: train or fetch, convert, measure (s)"
    record = benchmark.pedantic(kws_session.result, args=(kws_case,), rounds=1, iterations=1)
    row = kws_session.row(kws_case, record)
    benchmark.extra_info.update(
        case=kws_case.slug, tier=kws_case.tier, config_key=row["config_key"], data=row["data_id"],
        trained_now=list(record.trained_now), times=row["times"], metrics=record.metrics, keys=record.keys,
        versions=record.versions)
    accuracy = record.metric("deployed_accuracy")
    assert accuracy is not None and 0.0 <= accuracy <= 1.0, f"{kws_case.slug}: deployed accuracy {accuracy}"


def test_latency(kws_case, kws_result, benchmark):
    """Host latency of one batch-1 inference of the deployed model under LiteRT."""
    benchmark.group = "LiteRT latency of the deployed model, one inference"
    infer = litert_invoker(Path(kws_result.files["deployed"]))
    out = benchmark.pedantic(infer, rounds=100, iterations=5, warmup_rounds=10)
    benchmark.extra_info.update(case=kws_case.slug, export=kws_case.export)
    labels = kws_case.spec.data_config.labels
    assert out.shape[-1] == len(labels), f"{kws_case.slug}: output shape {out.shape} for {len(labels)} labels"


def test_check(kws_check, kws_session):
    kws_session.check(kws_check.check, kws_check.case)
