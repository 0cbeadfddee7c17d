"""``kws search promote STUDY --top N``: the best trials of a study become named points of
its tier in the grid file (``[[tiers.<tier>.points]]``), so the matrix runs them as
regression cases and ``--kws-gate`` watches them every night.

The grid file is edited in place with tomlkit, so its comments and layout stay; points
an earlier promotion of the same study wrote are replaced; a trial whose point the tier
already runs is left out and named. The file is checked as a grid before it is written,
and written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kws.search.objectives import SearchError
from kws.search.study import SPEC_ATTR, front, objective_index


@dataclass(frozen=True)
class Promoted:
    name: str
    trial: int
    pathway: str
    axes: dict
    slug: str


def promote(study, grid_path: Path, *, top: int, tier: str | None = None,
            by: str | None = None) -> tuple[list[Promoted], list[str]]:
    """Write the ``top`` best trials of ``study`` (its feasible Pareto front, best first
    on objective ``by``, the first by default) into ``grid_path``. Returns what was
    promoted and the notes on what was left out."""
    import tomlkit

    from kws._fs import atomic_write_bytes
    from kws.matrix.grid import GridError, generate, load_grid, slug
    from kws.pathways.axes import Point

    if top < 1:
        raise SearchError(f"--top must be >= 1, got {top}")
    grid_path = Path(grid_path)
    if not grid_path.is_file():
        raise SearchError(f"--grid {grid_path}: no such grid file")
    identity = study.user_attrs[SPEC_ATTR]
    tier = tier or identity["tier"]
    try:
        tiers = load_grid(grid_path)
    except GridError as exc:
        raise SearchError(str(exc)) from None
    if tier not in tiers:
        raise SearchError(f"--tier {tier}: {grid_path} has no [tiers.{tier}]; valid: {', '.join(tiers)}")
    best = front(study, objective_index(study, by))
    if not best:
        raise SearchError(f"study {study.study_name!r} has no completed trial that meets its constraints; "
                          "nothing to promote")
    document = tomlkit.parse(grid_path.read_text())
    table = document["tiers"][tier]
    kept = [p for p in table.get("points", []) if p.get("study") != study.study_name]
    existing = {slug(c.pathway, c.point, 0) for c in generate(_without_points(tiers[tier]))}
    existing |= {_slug_of(p) for p in kept}
    promoted, notes = [], []
    for trial in best:
        if len(promoted) == top:
            break
        pathway, axes = trial.user_attrs["pathway"], dict(trial.user_attrs.get("point") or {})
        case = slug(pathway, Point(axes), 0)
        if case in existing:
            notes.append(f"trial {trial.number} ({case.removesuffix('-seed0')}) is already a case of tier {tier}")
            continue
        existing.add(case)
        promoted.append(Promoted(f"{study.study_name}-t{trial.number:04d}", trial.number, pathway, axes, case))
    points = tomlkit.aot()
    for p in kept:
        points.append(p)
    for p in promoted:
        entry = tomlkit.table()
        entry.update({"name": p.name, "study": study.study_name, "trial": p.trial, "pathway": p.pathway})
        entry.update({k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in p.axes.items()})
        points.append(entry)
    if "points" in table:
        del table["points"]
    if len(points):
        table.append("points", points)
    text = tomlkit.dumps(document)
    _check(grid_path, text)
    atomic_write_bytes(grid_path, text.encode())
    return promoted, notes


def _slug_of(entry) -> str:
    from kws.matrix.grid import slug
    from kws.pathways.axes import Point

    axes = {k: (tuple(v) if isinstance(v, list) else v) for k, v in entry.items()
            if k not in ("name", "study", "trial", "pathway")}
    return slug(entry["pathway"], Point(axes), 0)


def _without_points(tier):
    from dataclasses import replace

    # The tier's own model and front-end only: a search ran on them, and a case a model
    # or front-end variant runs is not the same case.
    return replace(tier, points=(), seeds=(0,), models={}, frontends={})


def _check(grid_path: Path, text: str) -> None:
    """The edited grid must load before it replaces the file."""
    import tempfile

    from kws.matrix.grid import GridError, load_grid

    with tempfile.NamedTemporaryFile("w", suffix=".toml", dir=grid_path.parent, delete=True) as tmp:
        tmp.write(text)
        tmp.flush()
        try:
            load_grid(Path(tmp.name))
        except GridError as exc:
            raise SearchError(f"promoting would make {grid_path} invalid: {exc}") from None
