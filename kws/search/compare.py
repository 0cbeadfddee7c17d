"""``kws search compare``: how much a search found, against the QAT model it must beat
and against another study of the same budget (random search, most usefully).

For each Vela target the studies were judged on, it reports the fastest trial that meets
the accuracy limit with evidence (the upper end of the drop's 95% interval at or under
``max_drop_pp``) and its latency against the tier's ``qat`` case (run or fetched through
the cache), with the trial's point (per-layer ratios included); and the hypervolume each
study's trials dominate in (accuracy, latency), all of them and those that meet the
study's constraints, with the reference point at the QAT model's latency and the
baseline's int8 accuracy less ``reference_drop_pp``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kws.search.objectives import SearchError
from kws.search.study import SAMPLER_ATTR, SPEC_ATTR, feasible, hypervolume, point_text

#: How far below the baseline's accuracy the hypervolume's reference point lies.
REFERENCE_DROP_PP = 5.0


@dataclass(frozen=True)
class Reference:
    """The yardsticks on one target: the QAT model's latency, the baseline's int8 accuracy."""

    target: str
    qat_us: float
    baseline_accuracy: float


def references(tier, seed: int, targets, data_dir=None) -> dict[str, Reference]:
    """The tier's ``qat`` case at ``seed`` (through the cache): its Vela latency on each
    target, and the baseline's int8 accuracy."""
    from dataclasses import replace

    from kws.baseline import resolve_data_dir
    from kws.pipeline import CasePipeline, Settings

    spec = replace(tier.spec(seed), data_dir=resolve_data_dir(data_dir))
    record = CasePipeline(settings=Settings(vela_targets=tuple(targets))).run("qat", spec=spec)
    metrics = record.metrics
    return {t: Reference(t, float(metrics["vela"][t]["inference_us"]), float(metrics["baseline_int8_accuracy"]))
            for t in targets}


def _latency(trial, target: str) -> float | None:
    return ((trial.user_attrs.get("figures") or {}).get("vela_us") or {}).get(target)


def _accuracy(trial) -> float | None:
    return (trial.user_attrs.get("figures") or {}).get("accuracy")


def fastest(study, target: str, max_drop_pp: float) -> Any | None:
    """The completed trial with the lowest latency on ``target`` whose drop is at most
    ``max_drop_pp`` with 95% confidence."""
    import optuna

    best = None
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        interval = (t.user_attrs.get("figures") or {}).get("drop_interval")
        if interval is None or 100 * interval[1] > max_drop_pp or _latency(t, target) is None:
            continue
        if best is None or _latency(t, target) < _latency(best, target):
            best = t
    return best


def study_hypervolume(study, ref: Reference, reference_drop_pp: float = REFERENCE_DROP_PP, *,
                      feasible_only: bool = False) -> float:
    """The (accuracy, latency on ``ref.target``) hypervolume of the study's completed
    trials (with ``feasible_only``, those that meet its constraints), normalised so that
    the box from the reference point to (100%, 0 us) is 1."""
    import optuna

    floor = ref.baseline_accuracy - reference_drop_pp / 100
    points = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        accuracy, latency = _accuracy(t), _latency(t, ref.target)
        if (feasible(t) or not feasible_only) and accuracy is not None and latency is not None:
            points.append(((accuracy - floor) / (1 - floor), latency / ref.qat_us))
    return hypervolume(points, [True, False], [0.0, 1.0])


def compare(studies: dict[str, Any], refs: dict[str, Reference], *, max_drop_pp: float,
            reference_drop_pp: float = REFERENCE_DROP_PP) -> dict:
    """The comparison as plain data (what ``results/search/<name>.json`` holds)."""
    out: dict[str, Any] = {"max_drop_pp": max_drop_pp, "reference_drop_pp": reference_drop_pp,
                           "references": {t: vars(r) for t, r in refs.items()}, "studies": {}}
    for name, study in studies.items():
        import optuna

        identity = study.user_attrs.get(SPEC_ATTR) or {}
        trials = study.get_trials(deepcopy=False)
        entry = {"sampler": study.user_attrs.get(SAMPLER_ATTR), "objectives": identity.get("objectives"),
                 "trials": len(trials),
                 "completed": sum(t.state is optuna.trial.TrialState.COMPLETE for t in trials),
                 "failed": sum(t.state is optuna.trial.TrialState.FAIL for t in trials),
                 "hours": _hours(trials), "targets": {}}
        for target, ref in refs.items():
            best = fastest(study, target, max_drop_pp)
            entry["targets"][target] = {
                "hypervolume": study_hypervolume(study, ref, reference_drop_pp),
                "hypervolume_feasible": study_hypervolume(study, ref, reference_drop_pp, feasible_only=True),
                "feasible_trials": sum(feasible(t) for t in trials
                                       if t.state is optuna.trial.TrialState.COMPLETE),
                "fastest": None if best is None else {
                    "trial": best.number, "point": point_text(best), "params": best.params,
                    "latency_us": _latency(best, target),
                    "latency_vs_qat": _latency(best, target) / ref.qat_us,
                    "accuracy": _accuracy(best),
                    "drop_pp": 100 * best.user_attrs["figures"]["drop"],
                    "drop_interval_pp": [100 * v for v in best.user_attrs["figures"]["drop_interval"]],
                    "other_targets_us": {t: _latency(best, t) for t in refs if t != target}}}
        out["studies"][name] = entry
    names = list(studies)
    if len(names) == 2:
        a, b = (out["studies"][n]["targets"] for n in names)
        def ratio(key):
            return {t: (a[t][key] / b[t][key] if b[t][key] else None) for t in refs}

        out["hypervolume_ratio"] = ratio("hypervolume")
        out["hypervolume_feasible_ratio"] = ratio("hypervolume_feasible")
    return out


def _hours(trials) -> float | None:
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [t.datetime_complete for t in trials if t.datetime_complete]
    if not starts or not ends:
        return None
    return (max(ends) - min(starts)).total_seconds() / 3600


def check_comparable(studies: dict[str, Any]) -> None:
    """Studies compared must answer the same question: objectives, constraints, space,
    recipe and seed (all but the sampler)."""
    identities = {n: dict(s.user_attrs.get(SPEC_ATTR) or {}) for n, s in studies.items()}
    first_name, first = next(iter(identities.items()))
    for name, identity in identities.items():
        differ = [k for k in first if first.get(k) != identity.get(k)]
        if differ:
            raise SearchError(f"studies {first_name} and {name} differ in {', '.join(differ)}: they do not answer "
                              "the same question")
