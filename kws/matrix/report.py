"""``results/summary.md``: per tier, a table like the study's Table 1 (pathway, gzip KB,
int8 accuracy, Vela time per inference, retrain time) with mean ± std over seeds and the
best of each column in bold, and our numbers beside the study's."""

from __future__ import annotations

import statistics
from html import escape
from pathlib import Path

from tabulate import tabulate

from kws._fs import atomic_write_bytes
from kws.metrics import Better, columns, get_metric
from kws.stats import mean_interval

#: REFERENCE: DS-CNN-S on Speech Commands v0.02, Vela 3.4 on Ethos-U55-256.
STUDY_BASELINE = {"accuracy": 95.05, "gzip_kb": 35.76}
STUDY = (
    # (label, our point id, gzip KB, accuracy %, Vela us)
    ("QAT", "qat", 30.42, 94.94, 118.95),
    ("PQAT (50%)", "pqat-s0.50", 25.18, 94.51, 113.42),
    ("CQAT (16)", "cqat-c16", 26.52, 94.79, 116.47),
    ("PCQAT (50%, 32)", "pcqat-s0.50-c32", 24.66, 94.50, 113.20),
)


def point_of(case: str) -> str:
    """The case id without its seed: the unit that mean ± std is taken over."""
    head, _, seed = case.rpartition("-seed")
    return head if seed.isdigit() else case


def latest_per_case(rows: list[dict]) -> dict[tuple[str, str], dict[str, dict]]:
    """{(tier, data): {case: its newest row}} (rows are in the order they were written)."""
    out: dict[tuple[str, str], dict[str, dict]] = {}
    for row in rows:
        out.setdefault((row["tier"], row.get("data_id", "?")), {})[row["case"]] = row
    return out


def _stats(values) -> tuple[float, float] | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _stat(rows: list[dict], metric, target: str | None) -> tuple[float, float | tuple] | None:
    """``(mean, spread)`` of a point's rows in the column's scale: ``spread`` is the std
    over seeds, or for a metric measured with intervals a 95% interval ``(low, high)``:
    the run's own for one seed, Student-t across seeds for several."""
    scale = metric.column_scale
    values = [v for r in rows if (v := metric.value(r["metrics"], target)) is not None]
    if not values:
        return None
    if not metric.has_interval:
        mean, std = _stats(values)
        return scale * mean, scale * std
    if len(values) == 1:
        interval = next((metric.interval(r["metrics"]) for r in rows if metric.value(r["metrics"]) is not None), None)
        return scale * values[0], (tuple(scale * x for x in interval) if interval else 0.0)
    mean, interval = mean_interval(values)
    return scale * mean, (scale * interval.low, scale * interval.high)


def _cell(stat, fmt: str, best: bool, mark: str = "", html: bool = False) -> str:
    if stat is None:
        return "-"
    mean, spread = stat
    if isinstance(spread, tuple):
        text = f"{mean:{fmt}} [{spread[0]:{fmt}}, {spread[1]:{fmt}}]"
    else:
        text = f"{mean:{fmt}} ± {spread:{fmt}}" if spread else f"{mean:{fmt}}"
    if html:
        return (f"<strong>{escape(text)}</strong>" if best else escape(text)) + escape(mark)
    return (f"**{text}**" if best else text) + mark


def _text(value, html: bool) -> str:
    """A plain cell: escaped for an HTML table."""
    return escape(str(value)) if html else value


def _tabulate(rows: list[list], headers: list[str], tablefmt: str) -> str:
    """``tablefmt`` is tabulate's, or ``"html"``: then the cells come escaped (the best of a
    column in ``<strong>``), which tabulate's own ``html`` would escape again."""
    if tablefmt == "html":
        return tabulate(rows, headers=[escape(h) for h in headers], tablefmt="unsafehtml", disable_numparse=True)
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


#: Marks on the drop column: the accuracy check's verdict on the evidence.
MARKS = {"inconclusive": " †", "fail": " ‡"}


def _mark(rows: list[dict]) -> str:
    verdicts = {(r.get("verdicts") or {}).get("accuracy") for r in rows}
    return next((m for v, m in MARKS.items() if v in verdicts), "")


def _points(cases: dict[str, dict]) -> dict[str, list[dict]]:
    """Rows by pathway point, in the registry's pathway order (rows arrive in the order
    workers finish), then in the order the grid lists the points."""
    from kws.pathways.registry import PATHWAYS

    order = {name: i for i, name in enumerate(PATHWAYS)}
    points: dict[str, list[dict]] = {}
    for case, row in cases.items():
        points.setdefault(point_of(case), []).append(row)
    ranked = sorted(enumerate(points.items()),
                    key=lambda item: (order.get(item[1][1][0].get("pathway"), len(order)), item[0]))
    return {point: rows for _, (point, rows) in ranked}


def targets_in(rows) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for target in (row["metrics"].get("vela") or {}):
            seen[target] = None
    return list(seen)


def _value(row: dict, name: str, scale: float = 1.0, target: str | None = None) -> float | None:
    value = get_metric(name).value(row["metrics"], target)
    return None if value is None else scale * value


def _columns(rows) -> list[tuple[str, object, str | None]]:
    """``(header, metric, target)`` for every summary column of :mod:`kws.metrics` that
    some of these rows measured: one per Vela target for a per-target metric."""
    rows = list(rows)
    targets = targets_in(rows)
    out = []
    for metric in columns():
        if metric.per_target:
            out += [(metric.header(t), metric, t) for t in targets]
        elif any(metric.value(r["metrics"]) is not None for r in rows):
            out.append((metric.header(), metric, None))
    return out


def _label(point: str, rows: list[dict]) -> str:
    """A point's name in tables; a search trial's also names the point it ran
    (``search-u55-t0007 = lfilterqat-r20-30-00-10-25``)."""
    grid_case = rows[0].get("grid_case")
    return f"{point} = {point_of(grid_case)}" if grid_case else point


def tier_table(cases: dict[str, dict], tablefmt: str = "github") -> str:
    """The tier's table: one row per pathway point. ``tablefmt``: tabulate's format, or
    ``"html"`` (escaped cells, the best of each column in ``<strong>``)."""
    html = tablefmt == "html"
    points = _points(cases)
    cols = _columns(cases.values())
    stats = {p: {h: _stat(rows, m, t) for h, m, t in cols} for p, rows in points.items()}
    best = {}
    for header, metric, _ in cols:
        means = [s[header][0] for s in stats.values()
                 if s[header] is not None and not (metric.best_ignores_zero and s[header][0] == 0)]
        if len(means) > 1 and metric.better is not Better.NEITHER:
            best[header] = (min if metric.better is Better.LOWER else max)(means)
    table = []
    for point, rows in points.items():
        cells = [_cell(stats[point][h], m.column_format, best.get(h) == (stats[point][h] or (None,))[0],
                       _mark(rows) if m.name == "accuracy_drop" else "", html)
                 for h, m, _ in cols]
        table.append([_text(_label(point, rows), html), len(rows), *cells])
    return _tabulate(table, ["pathway", "seeds", *(h for h, _, _ in cols)], tablefmt)


def study_table(cases: dict[str, dict], tablefmt: str = "github") -> str:
    """Our figures beside the study's Table 1 (:data:`STUDY`); ``tablefmt`` as in
    :func:`tier_table`."""
    html = tablefmt == "html"
    points = _points(cases)
    targets = targets_in(cases.values())
    rows = []
    study = (("baseline (int8)", "ptq_int8", STUDY_BASELINE["gzip_kb"], STUDY_BASELINE["accuracy"], None), *STUDY)
    for label, point, kb, acc, us in study:
        ours = points.get(point, [])

        def get(value, ours=ours):
            return _stats(value(r) for r in ours) if ours else None

        rows.append([
            _text(label, html), f"{kb:.2f}",
            _cell(get(lambda r: _value(r, "gzip_bytes", 1e-3)), ".2f", False, html=html),
            f"{acc:.2f}", _cell(get(lambda r: _value(r, "deployed_accuracy", 100)), ".2f", False, html=html),
            "-" if us is None else f"{us:.2f}",
            *[_cell(get(lambda r, t=t: _value(r, "vela_us", target=t)), ".2f", False, html=html) for t in targets]])
    headers = ["study point", "study KB", "ours KB", "study acc %", "ours acc %", "study us (U55-256, Vela 3.4)",
               *[f"ours us {t}" for t in targets]]
    return _tabulate(rows, headers, tablefmt)


def _wall_line(sessions: list[dict], tier: str, data: str) -> str:
    """The newest cold and warm sessions' wall times of ``tier`` on ``data``."""
    mine = [s for s in sessions if s.get("tier") == tier and s.get("data_id") == data]
    parts = []
    for warm, label in ((False, "cold (stages trained)"), (True, "warm (all from the cache)")):
        runs = [s for s in mine if bool(s.get("warm")) == warm]
        if runs:
            s = max(runs, key=lambda r: r["time"])
            workers = f"{s['workers']} workers" if s.get("workers") else "in process"
            parts.append(f"{label} {_minutes(s['wall_s'])} ({s['cases']} cases, {workers}, {s['time'][:10]})")
    return f"Wall time of the newest session: {'; '.join(parts)}." if parts else ""


def _minutes(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


def render(rows: list[dict], sessions: list[dict] = ()) -> str:
    parts = ["# Benchmark summary", "",
             ("Written by the benchmark suite at the end of each session from `history.jsonl`: the newest run "
             "of every case, mean ± std over seeds, the best of each column in bold. Accuracy is the "
             "deployed model's (int8 unless the pathway deploys otherwise) on the test split, with its 95% "
             "interval in brackets (Wilson for one run, Student-t across seeds); the drop is against the "
             "full-width baseline's int8 model on the same clips (paired bootstrap interval). † marks a drop "
             "whose interval straddles the accuracy limit (inconclusive), ‡ one beyond it with 95% "
             "confidence. Retrain time is the pathway's fine-tuning (its width baseline for `alpha`)."), ""]
    for (tier, data), cases in latest_per_case(rows).items():
        newest = max(r["time"] for r in cases.values())
        commits = sorted({r["commit"][:10] for r in cases.values()})
        evals = sorted({r["eval_data"] for r in cases.values() if r.get("eval_data")})
        scored = f"; also scored on `{'`, `'.join(evals)}`" if evals else ""
        wall = _wall_line(list(sessions), tier, data)
        parts += [f"## Tier `{tier}` on `{data}`", "",
                  f"{len(cases)} cases; newest run {newest}; commit(s) {', '.join(commits)}{scored}.",
                  *([wall] if wall else []), "", tier_table(cases), "",
                  "### Beside the study (DS-CNN-S, full Speech Commands v0.02, 95.05% baseline)", "",
                  study_table(cases), ""]
    return "\n".join(parts)


def write_summary(path: Path, rows: list[dict], sessions: list[dict] = ()) -> None:
    atomic_write_bytes(Path(path), render(rows, sessions).encode())
