"""``results/report.html``: the benchmark results as one self-contained page.

Per tier and data, from the newest row of every case
(:func:`kws.matrix.report.latest_per_case`): the default recommendation of
:mod:`kws.advisor` (minimise latency on :data:`kws.vela.targets.DEFAULT_TARGET` with at
most a 1.0 pp drop, judged on the drop's interval: :class:`kws.advisor.Constraints`'
defaults), the Pareto front it was chosen from, the summary table and the table beside
the study (:func:`kws.matrix.report.tier_table`, :func:`~kws.matrix.report.study_table`,
as in ``summary.md``), Vela's advice per int8 case and target (the layers of lowest MAC
utilisation, the operators left on the CPU with Vela's reason), and the plots of
:mod:`kws.plots`. Under the recommendation: the per-layer plots of the recommended case
(:func:`kws.plots.write_case_plots`, ``kws report --case``) where ``plots/`` holds ones
drawn from that case's newest run.

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
.advice td:nth-child(n+3) { white-space: normal; min-width: 22em; }
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


# ----- Vela's advice ------------------------------------------------------------------------------

#: What a row that predates a field of Vela's advice says in its cell.
NOT_RECORDED = "not recorded (an earlier run)"


def _low_utilisation_text(entries) -> list[str]:
    from kws.inspect.tflite import layer_label

    return [f"{layer_label(n['name'])} ({n['op']}): {n['mac_utilisation']:.1f}% MAC utilisation, "
            f"{n['cycles']:,} cycles ({n['cycles_share']:.0%} of the total)" for n in entries]


def _cpu_text(ops) -> list[str]:
    from kws.inspect.tflite import layer_label

    return [f"{op['type']} {layer_label(op['name'])}: {op.get('reason') or 'Vela gave no reason'}" for op in ops]


def _advice_cell(estimate: dict, field: str, describe) -> str:
    if field not in estimate:
        return escape(NOT_RECORDED)
    return "<br>".join(escape(line) for line in describe(estimate[field])) or "none"


def advice_table(cases: Mapping[str, dict]) -> str:
    """Vela's advice for every int8 case (its newest row) and every target its rows were
    estimated on: the layers of lowest MAC utilisation and the operators left on the CPU
    with Vela's reason, from the rows' ``metrics.vela[target]``."""
    int8 = {case: row for case, row in sorted(cases.items()) if row.get("export") == "int8"}
    targets = targets_in(int8.values())
    body = []
    for case, row in int8.items():
        estimates = row["metrics"].get("vela") or {}
        for target in targets:
            if target not in estimates:
                continue
            estimate = estimates[target]
            cells = [escape(case), escape(target),
                     _advice_cell(estimate, "low_utilisation", _low_utilisation_text),
                     _advice_cell(estimate, "cpu_ops", _cpu_text)]
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        return '<p class="note">No int8 case has a Vela estimate.</p>'
    from kws.vela import LOW_UTILISATION_LAYERS, LOW_UTILISATION_MIN_SHARE

    head = "".join(f"<th>{escape(h)}</th>" for h in ["case", "target", "lowest MAC utilisation", "on the CPU"])
    return "\n".join([
        f'<p class="note">Per int8 case and Vela target: the {LOW_UTILISATION_LAYERS} NPU layers of lowest MAC '
        f"utilisation among those with at least {LOW_UTILISATION_MIN_SHARE:.0%} of the cycles (where a faster layer "
        "saves most), and every operator Vela leaves on the CPU with its reason (<code>kws vela M.tflite "
        "--advice</code> says the same of any model).</p>",
        f'<div class="scroll"><table class="advice"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}'
        "</tbody></table></div>"])


def _case_plots_html(rec: Recommendation | None, cases: Mapping[str, dict], images: Mapping[str, bytes]) -> str:
    """The per-layer plots of the recommended pathway point's cases, where ``images``
    holds ones drawn from their newest rows; a note where they are of an earlier run."""
    from kws.matrix.report import point_of
    from kws.plots import case_plot_names, is_current_case_plot, png_size

    if rec is None or rec.choice is None:
        return ""
    out = []
    for case, row in sorted(cases.items()):
        if point_of(case) != rec.choice.point:
            continue
        # case_plot_names: the weights, then Vela per target of the row, in that order.
        shows = ["its weights through the pathway",
                 *(f"Vela's cycles and MAC utilisation per layer on {t}" for t in row["metrics"].get("vela") or {})]
        at_hand = [(name, what) for name, what in zip(case_plot_names(row), shows) if name in images]
        current = [(name, what) for name, what in at_hand if is_current_case_plot(images[name], row)]
        if at_hand and not current:
            out.append(f'<p class="note">The per-layer plots of <code>{escape(case)}</code> in plots/ are of an '
                       f"earlier run: <code>kws report --case {escape(case)}</code> draws them anew.</p>")
        for name, what in current:
            width, height = png_size(images[name])
            out.append(f'<figure><img src="{_data_uri(images[name])}" width="{width}" height="{height}" '
                       f'alt="{escape(case)}: {escape(what)}"><figcaption>The recommended case '
                       f"<code>{escape(case)}</code>: {escape(what)} ({escape(name)}).</figcaption></figure>")
    return "\n".join(out)


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
    case_plots = _case_plots_html(rec, cases, images)
    return "\n".join([
        f'<section id="{_id(tier, data_id)}">',
        f"<h2>Tier <code>{escape(tier)}</code> on <code>{escape(data_id)}</code></h2>",
        f'<p class="meta">{len(cases)} cases; newest run {escape(newest)}; commit(s) {escape(", ".join(commits))}'
        f"{escape(scored)}. Vela targets: {escape(', '.join(targets) or 'none')}.</p>",
        *([f'<p class="meta">{escape(wall)}</p>'] if wall else []),
        "<h3>Recommendation (the advisor's defaults)</h3>", recommendation_html(rec, note),
        *([case_plots] if case_plots else []),
        *(["<h3>Pareto front</h3>", front_table(rec)] if rec is not None else []),
        "<h3>Summary</h3>",
        '<p class="note">The newest run of every case, mean over seeds, the best of each column in bold; accuracy '
        "with its 95% interval (Wilson for one run, Student-t across seeds), the drop against the full-width "
        "baseline's int8 model on the same clips (paired bootstrap). † marks a drop whose interval straddles the "
        "accuracy limit, ‡ one beyond it with 95% confidence.</p>",
        f'<div class="scroll">{tier_table(cases, tablefmt="html")}</div>',
        "<h3>Beside the study (DS-CNN-S, full Speech Commands v0.02, 95.05% baseline)</h3>",
        f'<div class="scroll">{study_table(cases, tablefmt="html")}</div>',
        "<h3>Advice from Vela</h3>", advice_table(cases),
        "<h3>Plots</h3>", _plots_html(plots, images), "</section>"])


def render_html(rows: Sequence[dict], sessions: Sequence[dict] = (), images: Mapping[str, bytes] | None = None) -> str:
    """The page. ``images``: PNG bytes by plot file name (:attr:`kws.plots.Plot.filename`),
    and the case plots at hand (:func:`kws.plots.case_plot_names`); a plot of
    :func:`kws.plots.plots_for` not in it is rendered here, a case plot never is."""
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
    among them is rendered in memory); ``None`` renders every plot in memory. The case
    plots in ``results_dir/plots/`` (``kws report --case``) are read for the recommended
    case's."""
    from kws.plots import CASE_PREFIX, PLOTS_DIR

    folder = Path(results_dir) / PLOTS_DIR
    cases = sorted(folder.glob(f"{CASE_PREFIX}*.png")) if folder.is_dir() else []
    images = {p.name: p.read_bytes() for p in (*cases, *(Path(p) for p in plots or ()))}
    path = Path(results_dir) / REPORT_FILE
    atomic_write_bytes(path, render_html(rows, sessions, images).encode("utf-8"))
    return path
