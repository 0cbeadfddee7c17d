"""Model variants of a tier (``[tiers.T.models.<label>]``) and the tiers that use them:
ids, groups, run specs and check references of the variants' cases, the grid file's
validation of them, the ids of every tier's own cases left as they were, the nightly
tier's larger models and the ``tradeoffs`` tier. No training: cases are generated."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from kws.matrix.checks import applicable
from kws.matrix.grid import TIERS, Case, GridError, generate, load_grid, slug
from kws.matrix.shard import needs
from kws.matrix.thresholds import load_thresholds
from kws.pathways.axes import Point
from kws.pathways.registry import PATHWAYS
from tests.test_matrix import F8K, GRID, THRESHOLDS, _collect, _ids

TIER = """
[tiers.smoke]
seeds = [0, 1]
baseline_epochs = 1
finetune_epochs = 1
pathways = ["ptq_int8", "qat", "p", "pqat", "cqat", "pcqat"]

[tiers.smoke.axes]
sparsity = [0.5]
clusters = [8]
schedule = ["constant"]
"""
DSM = """
[tiers.smoke.models.dsm]
model = "ds-cnn-m"
"""
#: The nightly tier's model variants: the QAT family at the study's points, seed 0.
NIGHTLY_VARIANT_IDS = [f"{case}-{label}-seed0" for label in ("dsm", "dsl") for case in (
    "ptq_int8", "qat", "pqat-s0.50", "cqat-c16", "pcqat-s0.50-c8", "pcqat-s0.50-c32")]
TRADEOFF_PATHWAYS = ("ptq_dynamic", "ptq_fp16", "ptq_int8", "p_dynamic-s0.50-poly", "p_fp16-s0.50-poly",
                     "p-s0.50-poly")


def _grid(tmp_path: Path, *parts: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text("\n".join([TIER, *parts]))
    return path


def _cases(tmp_path: Path, *parts: str) -> list[Case]:
    return generate(load_grid(_grid(tmp_path, *parts))["smoke"])


def _slugs(cases) -> list[str]:
    return [c.slug for c in cases]


# ----- ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("frontend, model, expected", [
    ("", "", "pqat-s0.50-seed0"),
    ("8k", "", "pqat-s0.50-fe8k-seed0"),
    ("", "dsl", "pqat-s0.50-dsl-seed0"),
    ("8k", "dsl", "pqat-s0.50-dsl-fe8k-seed0"),
])
def test_a_model_variant_adds_its_label_before_the_front_end_and_the_seed(frontend, model, expected):
    assert slug("pqat", Point(sparsity=0.5), 0, frontend, model) == expected
    case = Case("pqat", Point(sparsity=0.5), "smoke", frontend_label=frontend, model_label=model)
    assert case.slug == expected


def _nightly_own_ids() -> set[str]:
    """The nightly tier's own ids, spelled out independently of the code that makes them."""
    sparsity, schedules, clusters = ("0.50", "0.75", "0.875"), ("", "-poly"), (8, 16, 32)
    pruned = [f"s{s}{k}" for s, k in itertools.product(sparsity, schedules)]
    points = ["ptq_dynamic", "ptq_fp16", "ptq_int8", "qat", "p24", "p24qat"]
    points += [f"{p}-{s}" for p in ("p", "pqat") for s in pruned]
    points += [f"{p}-c{c}" for p in ("c", "cqat", "cpc", "cpcqat") for c in clusters]
    points += [f"{p}-{s}-c{c}" for p in ("pc", "pcqat") for s in pruned for c in clusters]
    points += [f"alpha-a{a}" for a in ("0.50", "0.75")] + [f"{p}-s{s}" for p in ("filter", "filterqat")
                                                            for s in sparsity]
    points += [f"lfilterqat-r{r}" for r in ("20-00-25-35-60", "15-05-00-35-55", "00-00-20-40-40")]
    assert len(points) == 77
    return {f"{p}-seed{seed}" for p in points for seed in (0, 1, 2)}


SMOKE_IDS = ["ptq_dynamic-seed0", "ptq_fp16-seed0", "ptq_int8-seed0", "qat-seed0", "p-s0.50-seed0", "c-c16-seed0",
             "pc-s0.50-c16-seed0", "pqat-s0.50-seed0", "cqat-c16-seed0", "pcqat-s0.50-c32-seed0", "p24-seed0",
             "p24qat-seed0", "cpc-c16-seed0", "cpcqat-c16-seed0", "alpha-a0.50-seed0", "filter-s0.50-seed0",
             "filterqat-s0.50-seed0"]


def test_the_ids_of_each_tiers_own_model_are_unchanged():
    """Slugs are the keys of results/: a tier's own model adds nothing to its ids, and its
    cases come first, in the order they always had."""
    grid = load_grid(GRID)
    assert _slugs(generate(grid["smoke"])) == SMOKE_IDS
    nightly = generate(grid["nightly"])
    own = [c for c in nightly if not c.model_label]
    assert set(_slugs(own)) == _nightly_own_ids() and len(own) == 231
    assert nightly[:231] == own and _slugs(generate(replace(grid["nightly"], models={}))) == _slugs(own)


def test_the_configuration_of_an_own_case_does_not_name_the_variant_label(tmp_path):
    """History keys come from :meth:`Case.config`: the model slug, never a label, so the
    tier's own cases keep their keys; a variant's case has keys of its own."""
    cases = {c.slug: c for c in _cases(tmp_path, DSM)}
    own, variant = cases["pqat-s0.50-seed0"], cases["pqat-s0.50-dsm-seed0"]
    assert own.config() == {"pathway": "pqat", "params": {"sparsity": 0.5, "schedule": "constant", "epochs": 1,
                                                          "learning_rate": 1e-4, "seed": 0},
                            "model": "ds-cnn-s", "frontend": "mlperf-tiny", "baseline_epochs": 1}
    assert variant.config() == {**own.config(), "model": "ds-cnn-m"}
    assert own.config_key("d") == replace(own, model_label="").config_key("d") != variant.config_key("d")


# ----- cases of a variant -------------------------------------------------------------------


def test_a_model_variant_runs_the_tiers_cases_again_on_its_own_model_and_group(tmp_path):
    cases = _cases(tmp_path, DSM)
    own = _slugs(generate(load_grid(_grid(tmp_path))["smoke"]))
    assert _slugs(cases) == own + [s.replace("-seed", "-dsm-seed") for s in own]
    by_id = {c.slug: c for c in cases}
    variant, base = by_id["pcqat-s0.50-c8-dsm-seed1"], by_id["pcqat-s0.50-c8-seed1"]
    assert variant.model_label == "dsm" and variant.spec.model.slug == "ds-cnn-m"
    assert base.spec.model.slug == "ds-cnn-s" and variant.spec.seed == base.spec.seed == 1
    # pytest-xdist groups per model: the variant's stages never share a worker's trained prefix.
    assert variant.group == "smoke-seed1-dsm-ds-cnn-m-" + base.group.split("-ds-cnn-s-", 1)[1]
    assert by_id["p-s0.50-dsm-seed1"].group == variant.group != base.group


def test_a_variant_narrows_pathways_and_seeds_to_some_of_the_tiers(tmp_path):
    cases = _cases(tmp_path, DSM + 'pathways = ["ptq_int8", "pqat"]\nseeds = [1]\n')
    assert [s for s in _slugs(cases) if "-dsm-" in s] == ["ptq_int8-dsm-seed1", "pqat-s0.50-dsm-seed1"]
    tier = load_grid(_grid(tmp_path, DSM + "seeds = [1]\n"))["smoke"]
    # --kws-seeds replaces the tier's seeds: a variant runs those of its own among them.
    assert not any(c.model_label for c in generate(replace(tier, seeds=(0, 5))))
    assert {c.seed for c in generate(replace(tier, seeds=(1, 5))) if c.model_label} == {1}


def test_a_variants_axes_replace_the_tiers_in_order_tier_variant_tier_pathway_variant_pathway(tmp_path):
    text = TIER.replace("[tiers.smoke.axes]", "[tiers.smoke.pathway_axes.pcqat]\nclusters = [32]\n\n"
                                              "[tiers.smoke.axes]")
    (tmp_path / "grid.toml").write_text(text + DSM + """
[tiers.smoke.models.dsm.axes]
clusters = [16]
sparsity = [0.5, 0.75]
[tiers.smoke.models.dsm.pathway_axes.pqat]
sparsity = [0.875]
schedule = ["polynomial"]
""")
    ids = _slugs(generate(load_grid(tmp_path / "grid.toml")["smoke"]))
    variant = [s for s in ids if "-dsm-" in s and s.endswith("seed0")]
    assert variant == ["ptq_int8-dsm-seed0", "qat-dsm-seed0", "p-s0.50-dsm-seed0", "p-s0.75-dsm-seed0",
                       "pqat-s0.875-poly-dsm-seed0", "cqat-c16-dsm-seed0",
                       "pcqat-s0.50-c32-dsm-seed0", "pcqat-s0.75-c32-dsm-seed0"]
    # the tier's own cases keep the tier's axes
    assert {"cqat-c8-seed0", "pcqat-s0.50-c32-seed0", "pqat-s0.50-seed0"} <= set(ids)
    assert "cqat-c16-seed0" not in ids and "p-s0.75-seed0" not in ids


def test_a_variant_runs_on_the_tiers_front_ends_or_those_it_names(tmp_path):
    frontends = f'[tiers.smoke.frontends]\nf8k = "{F8K}"\n'
    everywhere = _cases(tmp_path, frontends, DSM + 'pathways = ["ptq_int8"]\nseeds = [0]\n')
    variant = [c for c in everywhere if c.model_label]
    assert _slugs(variant) == ["ptq_int8-dsm-seed0", "ptq_int8-dsm-fef8k-seed0"]
    on_8k = variant[1]
    assert on_8k.spec.model.slug == "ds-cnn-m" and on_8k.spec.model.input_shape == (24, 10, 1)
    assert on_8k.spec.frontend_name == F8K and on_8k.frontend_label == "f8k"
    assert len({c.group for c in variant}) == 2
    for named, expected in (('["default"]', ["ptq_int8-dsm-seed0"]), ('[""]', ["ptq_int8-dsm-seed0"]),
                            ('["f8k"]', ["ptq_int8-dsm-fef8k-seed0"])):
        only = _cases(tmp_path, frontends, DSM + f'pathways = ["ptq_int8"]\nseeds = [0]\nfrontends = {named}\n')
        assert [s for s in _slugs(only) if "-dsm-" in s] == expected, named


def test_named_points_run_on_the_tiers_own_model_only(tmp_path):
    point = '[[tiers.smoke.points]]\nname = "found"\npathway = "p"\nsparsity = 0.6\n'
    ids = _slugs(_cases(tmp_path, point, DSM))
    assert "p-s0.60-seed0" in ids and "p-s0.60-seed1" in ids
    assert not any("s0.60" in s for s in ids if "-dsm-" in s)


def test_a_variant_spec_is_the_tiers_recipe_on_the_variants_model(tmp_path):
    tier = load_grid(_grid(tmp_path, DSM.replace("ds-cnn-m", "ds-cnn-s") + "alpha = 0.5\n"))["smoke"]
    own, variant = tier.spec(1), tier.spec(1, model="dsm")
    assert own.model.slug == "ds-cnn-s" and variant.model.slug == "ds-cnn-s-a0.5"
    assert variant.model.filters == 32 and replace(variant, model=own.model) == own
    assert tier.spec(1, F8K, "dsm").model.input_shape == (24, 10, 1)
    with pytest.raises(ValueError, match="tier smoke has no model variant 'dsl'; its variants: dsm"):
        tier.spec(0, model="dsl")
    # What `kws search --frontend` does to a tier keeps working.
    assert replace(tier, frontend=F8K, frontends={}).spec(0).frontend_name == F8K


def test_a_checks_reference_is_the_same_variants_case(tmp_path):
    from kws.matrix.session import MatrixSession

    path = _grid(tmp_path, f'[tiers.smoke.frontends]\nf8k = "{F8K}"\n', DSM)
    session = MatrixSession(tier=load_grid(path)["smoke"], thresholds=load_thresholds(THRESHOLDS),
                            results_dir=tmp_path, project_root=tmp_path)
    case = next(c for c in session.all_cases if c.slug == "pcqat-s0.50-c8-dsm-fef8k-seed1")
    for pathway in ("ptq_int8", "qat"):
        reference = session.reference(case, pathway)
        assert reference.slug == f"{pathway}-dsm-fef8k-seed1" and reference.spec == case.spec
        assert reference in session.all_cases


def test_a_shard_counts_the_variants_own_baseline(tmp_path):
    cases = {c.slug: c for c in _cases(tmp_path, DSM)}
    variant, own = needs(cases["pqat-s0.50-dsm-seed0"]), needs(cases["pqat-s0.50-seed0"])
    baselines = {k for k in variant if ":" not in k and "/" not in k}
    assert baselines == {"smoke-seed0-ds-cnn-m"}  # its own, and its references' (ptq_int8, qat) the same
    assert all(k.startswith("smoke-seed0-ds-cnn-m") for k in variant)
    assert not variant.keys() & own.keys() and len(variant) == len(own)


# ----- the grid file ------------------------------------------------------------------------


@pytest.mark.parametrize("variant, message", [
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nwidth = 1\n',
     r"\.models\.dsm: unknown key\(s\) \['width'\]; valid: \['alpha', 'axes', "),
    ('[tiers.smoke.models.DSM]\nmodel = "ds-cnn-m"\n', "label 'DSM' must be 1-16 lower-case letters or digits, "
                                                       "starting with a letter"),
    ('[tiers.smoke.models.8k]\nmodel = "ds-cnn-m"\n', "label '8k' must be 1-16 lower-case"),
    ('[tiers.smoke.models.abcdefghijklmnopq]\nmodel = "ds-cnn-m"\n', "label 'abcdefghijklmnopq' must be 1-16"),
    ('[tiers.smoke.models.c16]\nmodel = "ds-cnn-m"\n', "label 'c16' reads as another part of a case id"),
    ('[tiers.smoke.models.fem]\nmodel = "ds-cnn-m"\n', "label 'fem' reads as another part of a case id"),
    ('[tiers.smoke.models.seed3]\nmodel = "ds-cnn-m"\n', "label 'seed3' reads as another part"),
    ('[tiers.smoke.models.poly]\nmodel = "ds-cnn-m"\n', "label 'poly' reads as another part"),
    ('[tiers.smoke.models.dsm]\nalpha = 0.5\n', r"\.models\.dsm: missing \['model'\]"),
    ("[tiers.smoke.models]\ndsm = 3\n", r"\.models\.dsm: a table expected, got 3"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-xl"\n',
     r"\.models\.dsm: unknown model 'ds-cnn-xl'; valid: ds-cnn-s, ds-cnn-m, ds-cnn-l \(each optionally -mlperf\)"),
    ('[tiers.smoke.models.dsm]\nmodel = 3\n', r"\.models\.dsm: unknown model 3"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nalpha = 0\n', r"alpha must be a number in \(0, 1\]"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nalpha = 1.5\n', r"alpha must be a number in \(0, 1\].*1\.5"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nalpha = true\n', r"alpha must be a number in \(0, 1\]"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\npathways = ["pq"]\n', r"unknown pathway\(s\) \['pq'\]; valid: "),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\npathways = ["c"]\n',
     r"\.models\.dsm: pathways \['c'\] are not among the tier's pathways \['ptq_int8', 'qat'"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\npathways = []\n',
     r"\.models\.dsm: pathways must be a non-empty list of distinct pathway names, got \[\]"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\npathways = ["qat", "qat"]\n', "pathways must be a non-empty"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nseeds = []\n', "seeds must be a non-empty list of distinct "
                                                                   "integers, got"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nseeds = [2]\n',
     r"seeds \[2\] are not among the tier's seeds \[0, 1\]"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nfrontends = []\n',
     "frontends must be a non-empty list of the tier's front-end labels"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nfrontends = ["f16k"]\n',
     r"\.models\.dsm: unknown front-end label\(s\) \['f16k'\]; the tier's: default"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\nfrontends = ["default", ""]\n', "names a front-end twice"),
    ('[tiers.smoke.models.same]\nmodel = "ds-cnn-s"\nalpha = 1.0\n',
     r"\.models\.same: ds-cnn-s is the tier's model already \(same name and alpha\)"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\n[tiers.smoke.models.again]\nmodel = "ds-cnn-m"\n',
     r"\.models\.again: ds-cnn-m is the model of variant 'dsm' already"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\n[tiers.smoke.models.dsm.axes]\nwidth = [1]\n',
     r"\.models\.dsm\.axes: unknown axis \['width'\]"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\n[tiers.smoke.models.dsm.axes]\nsparsity = []\n',
     r"\.models\.dsm\.axes: sparsity must be a non-empty list"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\n[tiers.smoke.models.dsm.pathway_axes.pq]\nclusters = [4]\n',
     r"\.models\.dsm\.pathway_axes: unknown pathway 'pq'"),
    ('[tiers.smoke.models.dsm]\nmodel = "ds-cnn-m"\n[tiers.smoke.models.dsm.axes]\nsparsity = [1.5]\n',
     r"\[tiers\.smoke\]: models\.dsm: sparsity must be in"),
    # Clusters are limited by the model's width: 16 filters hold at most 16 per channel.
    ('[tiers.smoke.models.narrow]\nmodel = "ds-cnn-s"\nalpha = 0.25\n[tiers.smoke.models.narrow.axes]\n'
     "clusters = [32]\n", r"\[tiers\.smoke\]: models\.narrow: clusters must be in \[2, 16\] for ds-cnn-s-a0\.25"),
])
def test_a_bad_model_variant_names_the_file_and_the_entry(tmp_path, variant, message):
    path = _grid(tmp_path, variant)
    with pytest.raises(GridError, match=message) as err:
        load_grid(path)
    assert str(err.value).startswith(f"{path}: [tiers.smoke]")


def test_a_narrow_variant_takes_the_clusters_its_width_holds(tmp_path):
    """The same clusters pass on the tier's model and on a variant wide enough."""
    cases = _cases(tmp_path, '[tiers.smoke.models.narrow]\nmodel = "ds-cnn-s"\nalpha = 0.25\n')
    assert "cqat-c8-narrow-seed0" in _slugs(cases)
    assert next(c for c in cases if c.model_label).spec.model.filters == 16


def test_duplicate_ids_are_still_refused_in_a_tier_with_variants(tmp_path):
    point = '[[tiers.smoke.points]]\nname = "again"\npathway = "pqat"\nsparsity = 0.5\n'
    with pytest.raises(GridError, match=r"duplicate case ids \['pqat-s0.50-seed0', 'pqat-s0.50-seed1'\]"):
        load_grid(_grid(tmp_path, point, DSM))


def test_a_variant_naming_a_front_end_the_tier_dropped_fails_to_generate(tmp_path):
    tier = load_grid(_grid(tmp_path, f'[tiers.smoke.frontends]\nf8k = "{F8K}"\n',
                           DSM + 'frontends = ["f8k"]\n'))["smoke"]
    with pytest.raises(ValueError, match="models.dsm: the tier has no front-end variant 'f8k'"):
        generate(replace(tier, frontends={}))


# ----- the pathways that prune, then quantise the weights only ------------------------------


@pytest.mark.parametrize("name, export, limit", [("p_dynamic", "dynamic", 0.90 * 1.30),
                                                  ("p_fp16", "float16", 0.90 * 2.10)])
def test_pruning_then_weights_only_quantisation_is_checked_for_sparsity_and_size(name, export, limit):
    pathway, p = PATHWAYS[name], PATHWAYS["p"]
    assert list(PATHWAYS).index(name) in (list(PATHWAYS).index("p") + 1, list(PATHWAYS).index("p") + 2)
    assert pathway.family == p.family == "prune" and pathway.takes == p.takes and pathway.export == export
    point = Point(sparsity=0.5, schedule="polynomial")
    assert pathway.stages(point) == p.stages(point) and pathway.promises(point) == {"sparsity": 0.5}
    case = Case(name, point, "tradeoffs")
    # No NPU check for float activations; the sparsity promise survives a weights-only format.
    assert applicable(case) == ["accuracy", "sparsity", "size"]
    thresholds = load_thresholds(THRESHOLDS)
    assert thresholds.limits("tradeoffs", name).gzip_ratio == pytest.approx(limit)
    ptq = {"p_dynamic": "ptq_dynamic", "p_fp16": "ptq_fp16"}[name]
    assert thresholds.limits("tradeoffs", name).gzip_ratio < thresholds.limits("tradeoffs", ptq).gzip_ratio


# ----- the tiers of bench/grid.toml ---------------------------------------------------------


def test_every_copy_of_the_tier_names_agrees_and_names_the_grids_tiers():
    from kws.cli.recommend import TIERS as RECOMMEND_TIERS
    from kws.cli.search import TIERS as SEARCH_TIERS

    assert SEARCH_TIERS == RECOMMEND_TIERS == TIERS and "tradeoffs" in TIERS
    assert set(load_grid(GRID)) == set(TIERS)


def test_the_nightly_tier_runs_the_qat_family_on_ds_cnn_m_and_l_at_seed_0():
    nightly = load_grid(GRID)["nightly"]
    cases = generate(nightly)
    variant = [c for c in cases if c.model_label]
    assert _slugs(variant) == NIGHTLY_VARIANT_IDS and len(cases) == 231 + 12
    assert {c.model_label: c.spec.model.slug for c in variant} == {"dsm": "ds-cnn-m", "dsl": "ds-cnn-l"}
    assert {c.spec.finetune.epochs for c in variant} == {nightly.finetune_epochs}
    # --kws-seeds replaces the tier's seeds; the variants run at seed 0 only.
    assert not any(c.model_label for c in generate(replace(nightly, seeds=(5,))))


def test_the_tradeoffs_tier_crosses_front_end_width_pruning_and_ptq_kind():
    tier = load_grid(GRID)["tradeoffs"]
    cases = generate(tier)
    expected = [f"{p}{m}{fe}-seed0" for m in ("", "-a30", "-a70") for fe in ("", "-fe8k") for p in TRADEOFF_PATHWAYS]
    assert _slugs(cases) == expected and len(cases) == 36
    assert {(c.model_label, c.spec.model.slug, c.spec.model.alpha) for c in cases} == {
        ("", "ds-cnn-s", 1.0), ("a30", "ds-cnn-s-a0.3", 0.3), ("a70", "ds-cnn-s-a0.7", 0.7)}
    on_8k = {c.spec.frontend.sample_rate for c in cases if c.frontend_label == "8k"}
    assert on_8k == {8000} and {c.spec.model.input_shape for c in cases} == {(49, 10, 1)}
    assert {c.spec.baseline.epochs for c in cases} == {12} and {c.spec.finetune.epochs for c in cases} == {2}
    # Per model and front-end, one baseline the PTQ kinds share and one pruning stage the
    # pruned kinds share.
    assert len({c.group for c in cases}) == 3 * 2 * 2


def test_collect_only_lists_the_new_tiers_ids(pytester):
    tradeoffs = _collect(pytester, "--kws-tier", "tradeoffs")
    assert tradeoffs.ret == 0 and len(_ids(tradeoffs)) == 36
    assert {"p-s0.50-poly-a30-fe8k-seed0", "ptq_fp16-a70-seed0", "p_dynamic-s0.50-poly-fe8k-seed0"} <= _ids(tradeoffs)
    checks = _ids(tradeoffs, "test_check")
    assert "p_fp16-s0.50-poly-a30-seed0-sparsity" in checks and "p_fp16-s0.50-poly-a30-seed0-npu" not in checks
    nightly = _collect(pytester, "--kws-tier", "nightly")
    assert nightly.ret == 0 and set(NIGHTLY_VARIANT_IDS) <= _ids(nightly) and len(_ids(nightly)) == 243
    assert "pcqat-s0.50-c8-dsl-seed0-clusters" in _ids(nightly, "test_check")
