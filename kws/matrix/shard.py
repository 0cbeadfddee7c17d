"""The benchmark matrix split across machines: ``--kws-shard K/N`` keeps the cases of
shard K of N, chosen so that a trained prefix is trained on one shard only and the shards
take about the same time.

The unit is :attr:`Case.group` (the baseline of one seed and model, plus the first
technique stage with its parameters): every case whose stages share a trained prefix
lands on the same shard, and the checks of a case follow it. Groups are given to shards
by greedy longest-processing-time assignment on an estimated cost: each group, dearest
first, goes to the shard whose estimated time grows the least with it.

Baselines. The baseline of one (tier, seed, front-end, model) is the dearest single
artifact (a larger model's by its MACs, :func:`size_factor`; a trained model file's costs
nothing), and
every group of that seed needs it (each case is scored against the baseline's int8 model,
and its checks against the same seed's ``ptq_int8`` and ``qat`` cases). A shard's cost
therefore counts each artifact it needs once (:func:`needs`: baselines, stage prefixes,
conversions, check references), so a group joins a shard that already holds its seed's
baseline unless that would unbalance the shards by more than a second baseline costs.
With three seeds and up to three shards this gives one seed per shard; with two shards,
or more shards than seeds, some seeds' groups spread over several shards, and each of
those shards needs the seed's baseline: trained once per shard, or once in all when the
shards share a cache folder (``KWS_CACHE_DIR`` on a shared file system: the store's
per-key lock makes every other process wait for the build and then load the entry,
:meth:`kws.store.Store.get_or_build`). The cost counts the baseline on each such shard
either way: a shard that waits for another's build spends that wall time too.

The partition depends only on the set of cases and N (groups sorted by cost, then by
name and seed; ties go to the lowest shard), so every machine of a sharded run computes the same one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from kws.matrix.checks import CHECKS, applicable
from kws.matrix.grid import Case
from kws.pathways.axes import Point
from kws.pathways.registry import PATHWAYS

#: Seconds per artifact, measured on 2 CPU cores at the nightly recipe: a baseline of
#: ``NIGHTLY_BASELINE_EPOCHS`` epochs, a technique stage of ``NIGHTLY_FINETUNE_EPOCHS``
#: epochs (per stage family), a TFLite conversion with its measurements. Other recipes
#: scale the training times by their epochs.
BASELINE_S = 74.0
STAGE_S = {"prune": 21.5, "cluster": 20.4, "qat": 28.8, "filter": 15.9}
#: A family not measured yet counts as the dearest one.
UNMEASURED_STAGE_S = max(STAGE_S.values())
#: The int8 conversion; the float16 and dynamic-range ones are taken as the same.
CONVERSION_S = 7.5
NIGHTLY_BASELINE_EPOCHS = 20
NIGHTLY_FINETUNE_EPOCHS = 3
#: The figures above are DS-CNN-S's; another model's training scales with its
#: multiply-accumulates to this power, which fits the DS-CNN-L baseline measured at the
#: nightly recipe on the same 2 cores (383 s at 10.7x the MACs: 5.2x the time).
REFERENCE_MACS = 2_656_768
MACS_EXPONENT = 0.7

_SHARD_RE = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __post_init__(self):
        if not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: K/N needs 1 <= K <= N")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"2/4"``; anything else raises ``ValueError`` naming the value."""
        match = _SHARD_RE.fullmatch(text)
        index, count = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        if not match or not 1 <= index <= count:
            raise ValueError(f"{text!r}: K/N expected, the shard K of N shards with 1 <= K <= N (e.g. 2/4)")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class ShardPlan:
    """What one shard runs: its groups and cases (in the order given), and the estimated
    seconds of every artifact they need, each once."""

    shard: Shard
    groups: tuple[str, ...]
    cases: tuple[Case, ...]
    cost_s: float


# ----- the cost model ----------------------------------------------------------------------


def needs(case: Case) -> dict[str, float]:
    """Every artifact ``case`` builds or loads, by identity, with its estimated seconds:
    its baselines, the int8 model of the full-width baseline, each prefix of its stage
    chain, its deployed model, and the same for the reference cases of its checks."""
    found = _own_needs(case)
    for reference in sorted({CHECKS[name].reference for name in applicable(case)} - {None}):
        found.update(_own_needs(Case(reference, Point(), case.tier, case.spec, case.frontend_label, case.model_label)))
    return found


def size_factor(model) -> float:
    """How much longer ``model`` trains than DS-CNN-S (from its MACs)."""
    return (model.macs() / REFERENCE_MACS) ** MACS_EXPONENT


def _own_needs(case: Case) -> dict[str, float]:
    spec = case.spec
    pathway = PATHWAYS[case.pathway]
    trained = pathway.model(spec.model, case.point)
    # A front-end variant trains baselines of its own, as a model variant does.
    where = f"{case.tier}-seed{case.seed}" + (f"-fe{case.frontend_label}" if case.frontend_label else "")
    full, model = f"{where}-{spec.model.slug}", f"{where}-{trained.slug}"
    epochs = spec.baseline.epochs / NIGHTLY_BASELINE_EPOCHS
    found = {full: BASELINE_S * epochs * size_factor(spec.model) * (not spec.model.trained),
             f"{full}:int8": CONVERSION_S, model: BASELINE_S * epochs * size_factor(trained) * (not trained.trained)}
    prefix = model
    for stage in pathway.stages(case.point):
        stage = stage.with_finetune(spec.finetune)
        prefix += f"/{stage.family}{json.dumps(stage.params(), sort_keys=True, default=str)}"
        found[prefix] = (STAGE_S.get(stage.family, UNMEASURED_STAGE_S) * size_factor(trained)
                         * spec.finetune.epochs / NIGHTLY_FINETUNE_EPOCHS)
    found[f"{prefix}:{case.export}"] = CONVERSION_S
    return found


def cost(artifacts: dict[str, float]) -> float:
    """Estimated seconds to build ``artifacts`` (exactly rounded: independent of order)."""
    return math.fsum(artifacts.values())


# ----- the partition -----------------------------------------------------------------------


def groups(cases: Iterable[Case]) -> dict[str, list[Case]]:
    """The cases of each :attr:`Case.group`."""
    found: dict[str, list[Case]] = {}
    for case in cases:
        found.setdefault(case.group, []).append(case)
    return found


def partition(cases: Iterable[Case], count: int) -> list[ShardPlan]:
    """The ``count`` shards of ``cases``: each group on one shard, the groups dealt
    dearest first to the shard whose estimated cost grows least with them."""
    if count < 1:
        raise ValueError(f"shard count {count}: must be >= 1")
    cases = list(cases)
    by_group = groups(cases)
    group_needs = {g: {k: v for c in members for k, v in needs(c).items()} for g, members in by_group.items()}
    order = sorted(by_group, key=lambda g: (-cost(group_needs[g]), *_seedless(g, by_group[g][0])))
    held: list[dict[str, float]] = [{} for _ in range(count)]
    loads = [0.0] * count
    dealt: list[list[str]] = [[] for _ in range(count)]
    for group in order:
        added = [{k: v for k, v in group_needs[group].items() if k not in held[i]} for i in range(count)]
        best = min(range(count), key=lambda i: (loads[i] + cost(added[i]), i))
        held[best].update(added[best])
        loads[best] += cost(added[best])
        dealt[best].append(group)
    plans = []
    for i in range(count):
        mine = set(dealt[i])
        plans.append(ShardPlan(Shard(i + 1, count), tuple(sorted(mine)),
                               tuple(c for c in cases if c.group in mine), cost(held[i])))
    return plans


def _seedless(group: str, case: Case) -> tuple[str, int]:
    """The group's name without its seed, then the seed: groups of equal cost come seed
    after seed, so that each seed starts on a shard of its own."""
    return group.replace(f"-seed{case.seed}-", "-", 1), case.seed


def select(cases: Iterable[Case], shard: Shard) -> ShardPlan:
    """Shard ``shard`` of ``cases``."""
    return partition(cases, shard.count)[shard.index - 1]
