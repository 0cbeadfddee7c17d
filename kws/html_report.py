"""``results/report.html``: the benchmark results as one self-contained page.

Per tier and data, from the newest row of every case
(:func:`kws.matrix.report.latest_per_case`): the default recommendation of
:mod:`kws.advisor` (minimise latency on :data:`kws.vela.targets.DEFAULT_TARGET` with at
most a 1.0 pp drop, judged on the drop's interval: :class:`kws.advisor.Constraints`'
defaults), the Pareto front it was chosen from, the summary table and the table beside
the study (:func:`kws.matrix.report.tier_table`, :func:`~kws.matrix.report.study_table`,
as in ``summary.md``), and the plots of :mod:`kws.plots`.

The page needs nothing else: the plots are PNG data URIs, the style is inline, there is
no script and no link outside the page. It holds no time of its own making, so the same
history gives the same bytes.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from kws._fs import atomic_write_bytes
from kws.advisor import (
    FIGURES,
    AdvisorError,
    Candidate,
    Constraints,
    Recommendation,
    display_unit,
    recommend,
    show,
)
from kws.matrix.report import _wall_line, latest_per_case, study_table, targets_in, tier_table
from kws.vela.targets import DEFAULT_TARGET

REPORT_FILE = "report.html"
TITLE = "kws-pathways benchmark report"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1280px;
       padding: 0 1em; color: #1b1b1b; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { font-size: 1.05em; margin-top: 1.5em; }
table { border-collapse: collapse; font-size: .85em; margin: .5em 0; }
th, td { border: 1px solid #d0d0d0; padding: .25em .5em; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; } tbody tr:nth-child(even) { background: #fafafa; }
.scroll { overflow-x: auto; } .front td:last-child { white-space: normal; min-width: 18em; }
.meta, figcaption, .note { color: #555; font-size: .9em; }
.choice { background: #eef6ee; border-left: 4px solid #3a7d3a; padding: .5em 1em; }
.none { background: #fbf1e6; border-left: 4px solid #b86b1f; padding: .5em 1em; }
figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def _id(tier: str, data_id: str) -> str:
    return "tier-" + re.sub(r"[^A-Za-z0-9_-]+", "-", f"{tier}-{data_id}")


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


# ----- the advisor's answer ------------------------------------------------------------------


def default_recommendation(rows: Sequence[dict], tier: str, data_id: str) -> tuple[Recommendation | None, str]:
    """:func:`kws.advisor.recommend` with its defaults for this tier and data, and a note:
    without Vela estimates for the default target, the choice without a target (the
    smallest gzip size) and why; ``None`` when the advisor cannot answer (the note says
    why)."""
    try:
        return recommend(rows, tier=tier, data_id=data_id, target=DEFAULT_TARGET, constraints=Constraints()), ""
    except AdvisorError as exc:
        note = f"{exc}."
    try:
        return (recommend(rows, tier=tier, data_id=data_id, target=None, constraints=Constraints()),
                note + " Shown instead: the choice without an NPU target.")
    except AdvisorError as exc:
        return None, f"{note} {exc}."


def _figure_names(target: str | None) -> list[str]:
    return [n for n, f in FIGURES.items() if target is not None or not f.per_target]


def _figures_text(c: Candidate, names: Sequence[str]) -> str:
    return ", ".join(f"{name} {show(name, c.value(name), c.interval(name))}" for name in names)


def _candidate_line(role: str, c: Candidate, rec: Recommendation) -> str:
    seeds = f"{c.seeds} seed{'s' * (c.seeds != 1)}"
    return (f"<p><strong>{escape(role)}</strong> <code>{escape(c.point)}</code> ({escape(seeds)}): "
            f"{escape(_figures_text(c, _figure_names(rec.target)))}</p>")


def recommendation_html(rec: Recommendation | None, note: str) -> str:
    """The choice and the runner-up, or the binding limit and the closest points."""
    parts = [f'<p class="note">{escape(note)}</p>'] if note else []
    if rec is None:
        return "\n".join(parts)
    target = f"target <code>{escape(rec.target)}</code>" if rec.target else "no NPU target"
    limits = "; ".join(limit.text(bound, rec.target, rec.constraints.lenient)
                       for limit, bound in rec.constraints.active()) or "none"
    parts.append(f"<p>For {target}: {escape(rec.objective.direction)} {escape(rec.objective.name)} "
                 f"({escape(rec.objective.label_for(rec.target))}); limits: {escape(limits)}.</p>")
    if rec.choice is not None:
        block = [_candidate_line("Choice:", rec.choice, rec)]
        block.append(_candidate_line("Runner-up:", rec.runner_up, rec) if rec.runner_up is not None
                     else "<p><strong>Runner-up:</strong> none (no other point meets the limits)</p>")
        parts.append(f'<div class="choice">{"".join(block)}</div>')
    else:
        block = ["<p><strong>No pathway point meets the limits.</strong></p>"]
        if rec.binding is not None:
            admits = (f": without it alone, {len(rec.binding.admits)} would qualify ({', '.join(rec.binding.admits)})"
                      if rec.binding.admits else " (no single limit lifted admits a point)")
            block.append(f"<p>Binding limit: {escape(rec.binding.limit)} {rec.binding.bound:g}{escape(admits)}.</p>")
        block += [f"<p>Closest: <code>{escape(a.candidate.point)}</code>: {escape(a.ruled_out or '')}</p>"
                  for a in rec.closest]
        parts.append(f'<div class="none">{"".join(block)}</div>')
    return "\n".join(parts)


def front_table(rec: Recommendation) -> str:
    """The Pareto front the recommendation was chosen from: one row per point on it, then
    a line naming each dominated point and what dominates it."""
    names = _figure_names(rec.target)
    head = "".join(f"<th>{escape(h)}</th>" for h in
                   ["pathway point", "seeds", *(f"{n} {display_unit(n)[0]}" for n in names), "verdict"])
    body = []
    for c in rec.front.front:
        a = rec.assessment(c.point)
        verdict = {0: "CHOICE", 1: "runner-up"}.get(a.rank, "eligible" if a.eligible else f"ruled out: {a.ruled_out}")
        cells = [c.point, str(c.seeds), *(show(n, c.value(n), c.interval(n), unit=False) for n in names), verdict]
        body.append("<tr>" + "".join(f"<td>{escape(x)}</td>" for x in cells) + "</tr>")
    objectives = ", ".join(FIGURES[n].label_for(rec.target) for n in rec.front.objectives)
    dominated = "; ".join(f"{point} by {d.by}" for point, d in rec.front.dominated.items())
    return "\n".join([
        f'<p class="note">Objectives: {escape(objectives)}; accuracy counts as equal within its 95% interval '
        f"(<code>kws.advisor.dominates</code>).</p>",
        f'<div class="scroll"><table class="front"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
        "</table></div>",
        f'<p class="note">Dominated: {escape(dominated or "none")}.</p>'])


# ----- the page ---------------------------------------------------------------------------------


def _plots_html(plots, images: Mapping[str, bytes]) -> str:
    out = []
    for plot in plots:
        width, height = plot.size_px
        out.append(f'<figure><img src="{_data_uri(images[plot.filename])}" width="{width}" height="{height}" '
                   f'alt="{escape(plot.title)}"><figcaption>{escape(plot.title)}. {escape(plot.caption)}'
                   f"</figcaption></figure>")
    return "\n".join(out)


def _section(rows: Sequence[dict], sessions: Sequence[dict], tier: str, data_id: str, cases: dict[str, dict],
             plots, images: Mapping[str, bytes]) -> str:
    newest = max(r["time"] for r in cases.values())
    commits = sorted({r["commit"][:10] for r in cases.values()})
    evals = sorted({r["eval_data"] for r in cases.values() if r.get("eval_data")})
    scored = f"; also scored on {', '.join(evals)}" if evals else ""
    wall = _wall_line(list(sessions), tier, data_id)  # summary.md's own sentence: both say the same
    rec, note = default_recommendation(rows, tier, data_id)
    targets = targets_in(cases.values())
    return "\n".join([
        f'<section id="{_id(tier, data_id)}">',
        f"<h2>Tier <code>{escape(tier)}</code> on <code>{escape(data_id)}</code></h2>",
        f'<p class="meta">{len(cases)} cases; newest run {escape(newest)}; commit(s) {escape(", ".join(commits))}'
        f"{escape(scored)}. Vela targets: {escape(', '.join(targets) or 'none')}.</p>",
        *([f'<p class="meta">{escape(wall)}</p>'] if wall else []),
        "<h3>Recommendation (the advisor's defaults)</h3>", recommendation_html(rec, note),
        *(["<h3>Pareto front</h3>", front_table(rec)] if rec is not None else []),
        "<h3>Summary</h3>",
        '<p class="note">The newest run of every case, mean over seeds, the best of each column in bold; accuracy '
        "with its 95% interval (Wilson for one run, Student-t across seeds), the drop against the full-width "
        "baseline's int8 model on the same clips (paired bootstrap). † marks a drop whose interval straddles the "
        "accuracy limit, ‡ one beyond it with 95% confidence.</p>",
        f'<div class="scroll">{tier_table(cases, tablefmt="html")}</div>',
        "<h3>Beside the study (DS-CNN-S, full Speech Commands v0.02, 95.05% baseline)</h3>",
        f'<div class="scroll">{study_table(cases, tablefmt="html")}</div>',
        "<h3>Plots</h3>", _plots_html(plots, images), "</section>"])


def render_html(rows: Sequence[dict], sessions: Sequence[dict] = (), images: Mapping[str, bytes] | None = None) -> str:
    """The page. ``images``: PNG bytes by plot file name (:attr:`kws.plots.Plot.filename`);
    a plot not in it is rendered here."""
    from kws.plots import build_figure, plots_for, png_bytes

    rows = list(rows)
    images = dict(images or {})
    plots = plots_for(rows)
    for plot in plots:
        if plot.filename not in images:
            images[plot.filename] = png_bytes(build_figure(plot, rows))
    groups = latest_per_case(rows)
    toc = "".join(f'<li><a href="#{_id(tier, data)}">tier {escape(tier)} on {escape(data)}</a></li>'
                  for tier, data in groups)
    sections = [_section(rows, sessions, tier, data, cases,
                         [p for p in plots if (p.tier, p.data_id) == (tier, data)], images)
                for (tier, data), cases in groups.items()]
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(TITLE)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{escape(TITLE)}</h1>",
        f'<p class="meta">From {len(rows)} history rows: the newest run of every case per tier and data. '
        "Written by <code>kws report</code> and at the end of each benchmark session.</p>",
        f"<nav><ul>{toc}</ul></nav>" if len(groups) > 1 else "",
        *(sections or ['<p class="none">The history holds no benchmark rows.</p>']),
        "</body>", "</html>", ""])


def write_html_report(results_dir: Path, rows: Sequence[dict], sessions: Sequence[dict] = (),
                      plots: Sequence[Path] | None = None) -> Path:
    """Write ``results_dir/report.html`` atomically and return its path. ``plots``: the
    PNG files :func:`kws.plots.write_plots` just wrote, embedded as they are (a plot not
    among them is rendered in memory); ``None`` renders every plot in memory."""
    images = {Path(p).name: Path(p).read_bytes() for p in plots or ()}
    path = Path(results_dir) / REPORT_FILE
    atomic_write_bytes(path, render_html(rows, sessions, images).encode("utf-8"))
    return path
