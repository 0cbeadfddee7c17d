"""Plots of the benchmark results, written to ``results/plots/``: what each pathway point
buys, from the newest row of every case per tier and data
(:func:`kws.matrix.report.latest_per_case`), its seeds folded by :mod:`kws.advisor`.

Per tier and data (:func:`plots_for` lists them):

- ``accuracy-vs-size``: deployed accuracy against gzip size, every pathway point with its
  95% interval (the run's Wilson interval for one seed, Student-t across several), the
  Pareto front over those two figures (:func:`kws.advisor.pareto_front`: accuracy equal
  within its noise), and the study's Table 1 points (:data:`kws.matrix.report.STUDY`);
- ``accuracy-vs-latency-<target>``: the same against Vela's time per inference, one plot
  per Vela target the rows have (the study's points on :data:`STUDY_TARGET` only);
- ``accuracy-vs-sparsity``, ``accuracy-vs-clusters``: one panel per pathway that takes the
  axis, one line per value of its other axes (``pcqat-c32``), with the 95% interval as a
  band where the line spans several values measured over several seeds, else as error
  bars.

Axis labels and units come from :mod:`kws.metrics` through :mod:`kws.advisor`'s figures.
Figures are built with matplotlib's object API (no pyplot, no global state) and rendered
by the Agg canvas under matplotlib's default style, whatever a matplotlibrc says: the same
rows give the same PNG bytes (fixed size and DPI, no software version in the metadata).
Drawing functions take an ``Axes`` and return it; :func:`build_figure` makes a figure,
:func:`png_bytes` renders it and :func:`write_plots` alone writes files.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from kws._fs import atomic_write_bytes
from kws.advisor import FIGURES, Candidate, candidates, display_unit, pareto_front
from kws.matrix.report import STUDY, STUDY_BASELINE, latest_per_case, point_of, targets_in
from kws.metrics import METRICS
from kws.pathways.axes import AXES

#: The folder of the results folder that holds the plots.
PLOTS_DIR = "plots"
DPI = 100
#: Figure size in inches per kind of plot (times :data:`DPI`: the PNG's pixel size).
TRADEOFF_SIZE = (10.0, 7.0)
SWEEP_SIZE = (12.0, 7.5)
#: The x-axis figure (:data:`kws.advisor.FIGURES`) of each trade-off plot.
TRADEOFFS = {"size": "size", "latency": "latency"}
#: The axes (:data:`kws.pathways.axes.AXES`) that accuracy is plotted against.
SWEEPS = ("sparsity", "clusters")
#: The target of the study's Table 1 latencies (Vela 3.4 on an Ethos-U55 with 256 MACs).
STUDY_TARGET = "ethos-u55-256"
#: Colour per pathway family (the rows' ``family``); another family gets :data:`OTHER_COLOR`.
FAMILY_COLORS = {"ptq": "tab:gray", "qat": "tab:blue", "prune": "tab:orange", "cluster": "tab:green",
                 "structured": "tab:red"}
OTHER_COLOR = "tab:brown"
STUDY_COLOR = "tab:purple"
#: What the plots' file names end with: the stale ones of an earlier run are found by it.
_SUFFIX = re.compile(r"-accuracy-vs-[A-Za-z0-9._-]+\.png$")


def _safe(text: str) -> str:
    """``text`` as a file-name part: letters, digits, ``.``, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text) or "_"


@dataclass(frozen=True)
class Plot:
    """One plot of one tier and data: ``kind`` is a key of :data:`TRADEOFFS` or an axis of
    :data:`SWEEPS`; ``target`` the Vela target of a latency plot."""

    tier: str
    data_id: str
    kind: str
    target: str | None = None

    def __post_init__(self):
        assert self.kind in (*TRADEOFFS, *SWEEPS), f"unknown plot kind {self.kind!r}"
        assert (self.kind == "latency") == (self.target is not None), f"{self.kind} plot with target {self.target}"

    @property
    def filename(self) -> str:
        target = f"-{_safe(self.target)}" if self.target else ""
        return f"{_safe(self.tier)}-{_safe(self.data_id)}-accuracy-vs-{self.kind}{target}.png"

    @property
    def figsize(self) -> tuple[float, float]:
        return TRADEOFF_SIZE if self.kind in TRADEOFFS else SWEEP_SIZE

    @property
    def size_px(self) -> tuple[int, int]:
        """(width, height) of the PNG in pixels."""
        width, height = self.figsize
        return round(width * DPI), round(height * DPI)

    @property
    def title(self) -> str:
        what = f"Vela {self.target} latency" if self.kind == "latency" else self.kind
        return f"Accuracy vs {what}: tier {self.tier} on {self.data_id}"

    @property
    def caption(self) -> str:
        if self.kind in TRADEOFFS:
            study = (" Stars: the study's Table 1 (DS-CNN-S on the full Speech Commands v0.02, Vela 3.4)."
                     if self.kind == "size" or self.target == STUDY_TARGET else "")
            return (f"Every pathway point (seeds folded: the mean), coloured by family, with the 95% interval of its "
                    f"accuracy (Wilson for one seed, Student-t across seeds). Dashed: the Pareto front over accuracy "
                    f"and {FIGURES[TRADEOFFS[self.kind]].label_for(self.target)} (accuracy equal within its noise)."
                    f" Dotted: the full-width baseline's int8 accuracy.{study}")
        return (f"One panel per pathway that takes the {self.kind} axis, one line per value of its other axes; "
                f"the 95% interval of the accuracy as a band (several values over several seeds, Student-t) or "
                f"as error bars. Dotted: the full-width baseline's int8 accuracy.")


def plots_for(rows: Sequence[dict]) -> list[Plot]:
    """Every plot the rows give, per (tier, data) in the order the history first has them:
    size; latency per Vela target; each sweep axis that some pathway point holds."""
    out = []
    for (tier, data_id), cases in latest_per_case(list(rows)).items():
        out.append(Plot(tier, data_id, "size"))
        out += [Plot(tier, data_id, "latency", target) for target in targets_in(cases.values())]
        out += [Plot(tier, data_id, axis) for axis in SWEEPS
                if any(axis in (row.get("point") or {}) for row in cases.values())]
    return out


# ----- data ---------------------------------------------------------------------------------


def _families(rows: Sequence[dict], tier: str, data_id: str) -> dict[str, str]:
    """{pathway point: its family} from the newest rows."""
    cases = latest_per_case(list(rows)).get((tier, data_id), {})
    return {point_of(case): row.get("family") or "other" for case, row in cases.items()}


def _axis_points(rows: Sequence[dict], tier: str, data_id: str) -> dict[str, dict]:
    """{pathway point: its axis values} from the newest rows (rows without them are the
    earlier layout: no axis values)."""
    cases = latest_per_case(list(rows)).get((tier, data_id), {})
    return {point_of(case): dict(row.get("point") or {}) for case, row in cases.items()}


def baseline_accuracy(rows: Sequence[dict], tier: str, data_id: str) -> float | None:
    """The full-width baseline's int8 accuracy, the mean over the newest rows (in %)."""
    cases = latest_per_case(list(rows)).get((tier, data_id), {})
    metric = METRICS["baseline_int8_accuracy"]
    values = [v for row in cases.values() if (v := metric.value(row["metrics"])) is not None]
    return display_unit("accuracy")[1] * statistics.fmean(values) if values else None


def plotted(rows: Sequence[dict], plot: Plot) -> list[Candidate]:
    """The pathway points a trade-off plot shows: those measured for its target with both
    figures."""
    figure = TRADEOFFS[plot.kind]
    pool = candidates(rows, tier=plot.tier, data_id=plot.data_id, target=plot.target)
    return [c for c in pool if c.unavailable is None and c.value(figure) is not None
            and c.value("accuracy") is not None]


def study_points(plot: Plot) -> list[tuple[str, float, float]]:
    """The study's Table 1 points on a trade-off plot: ``(label, x, accuracy %)`` in the
    plot's units (none on a latency plot of another target than :data:`STUDY_TARGET`)."""
    if plot.kind == "size":
        return [("baseline (int8)", STUDY_BASELINE["gzip_kb"], STUDY_BASELINE["accuracy"]),
                *((label, kb, accuracy) for label, _, kb, accuracy, _ in STUDY)]
    if plot.kind == "latency" and plot.target == STUDY_TARGET:
        return [(label, us, accuracy) for label, _, _, accuracy, us in STUDY if us is not None]
    return []


@dataclass(frozen=True)
class SweepPoint:
    """One value of a sweep line: accuracy (%) with its 95% interval, over ``seeds`` seeds."""

    x: float
    accuracy: float
    low: float
    high: float
    seeds: int


def sweep_lines(rows: Sequence[dict], tier: str, data_id: str, axis: str) -> dict[str, dict[str, list[SweepPoint]]]:
    """{pathway: {line label: its points in axis order}} for the pathway points that hold
    ``axis``. A line is the pathway with the values of its other axes, named like a case
    id without the swept axis (``pcqat-c32`` on the sparsity plot)."""
    scale = display_unit("accuracy")[1]
    points = _axis_points(rows, tier, data_id)
    out: dict[str, dict[str, list[SweepPoint]]] = {}
    for c in candidates(rows, tier=tier, data_id=data_id, target=None):
        values = points.get(c.point, {})
        accuracy = c.value("accuracy")
        if axis not in values or accuracy is None:
            continue
        others = [fragment for name, a in AXES.items() if name != axis and name in values
                  and (fragment := a.fragment(values[name])) is not None]
        low, high = c.interval("accuracy") or (accuracy, accuracy)
        line = out.setdefault(c.pathway, {}).setdefault("-".join([c.pathway, *others]), [])
        line.append(SweepPoint(float(values[axis]), scale * accuracy, scale * low, scale * high, c.seeds))
    for lines in out.values():
        for line in lines.values():
            line.sort(key=lambda p: p.x)
    return out


# ----- drawing --------------------------------------------------------------------------------


def _axis_label(figure: str, target: str | None = None) -> str:
    return f"{FIGURES[figure].label_for(target)} ({display_unit(figure)[0]})"


def draw_tradeoff(ax: Axes, pool: Sequence[Candidate], front: Sequence[Candidate], *, figure: str,
                  target: str | None = None, families: dict[str, str] | None = None,
                  study: Sequence[tuple[str, float, float]] = (), baseline: float | None = None) -> Axes:
    """Accuracy against ``figure`` (a key of :data:`kws.advisor.FIGURES`): the candidates
    of ``pool`` (gid ``points:<family>``, their intervals ``interval:<family>``, each
    labelled with its point), the ``front`` joined in order of ``figure`` (gid ``front``),
    the ``study`` points (gid ``study``) and the baseline's accuracy (gid ``baseline``)."""
    x_scale, y_scale = display_unit(figure)[1], display_unit("accuracy")[1]
    families = families or {}
    groups: dict[str, list[Candidate]] = {}
    for c in pool:
        groups.setdefault(families.get(c.point, "other"), []).append(c)
    order = [f for f in FAMILY_COLORS if f in groups] + sorted(set(groups) - set(FAMILY_COLORS))
    for family in order:
        group, color = groups[family], FAMILY_COLORS.get(family, OTHER_COLOR)
        xs = [x_scale * c.value(figure) for c in group]
        ys = [y_scale * c.value("accuracy") for c in group]
        intervals = [c.interval("accuracy") or (c.value("accuracy"),) * 2 for c in group]
        yerr = [[y - y_scale * low for y, (low, _) in zip(ys, intervals)],
                [y_scale * high - y for y, (_, high) in zip(ys, intervals)]]
        bars = ax.errorbar(xs, ys, yerr=yerr, fmt="none", ecolor=color, alpha=0.5, capsize=3)
        for artist in bars.lines[2]:
            artist.set_gid(f"interval:{family}")
        ax.scatter(xs, ys, color=color, s=28, zorder=3, label=family, gid=f"points:{family}")
    if front:
        ordered = sorted(front, key=lambda c: c.value(figure))
        ax.plot([x_scale * c.value(figure) for c in ordered], [y_scale * c.value("accuracy") for c in ordered],
                linestyle="--", color="black", linewidth=1, marker="o", markersize=11, markerfacecolor="none",
                zorder=2, label="Pareto front", gid="front")
    if study:
        ax.scatter([x for _, x, _ in study], [y for _, _, y in study], marker="*", s=150, color=STUDY_COLOR,
                   zorder=4, label="study, Table 1", gid="study")
    if baseline is not None:
        ax.axhline(baseline, linestyle=":", color="dimgray", linewidth=1, label="baseline int8", gid="baseline")
    for c in pool:
        _label(ax, c.point, x_scale * c.value(figure), y_scale * c.value("accuracy"))
    for label, x, y in study:
        _label(ax, f"study: {label}", x, y, color=STUDY_COLOR)
    ax.set_xlabel(_axis_label(figure, target))
    ax.set_ylabel(_axis_label("accuracy"))
    ax.margins(x=0.08, y=0.06)
    ax.grid(True, alpha=0.3)
    return ax


def _label(ax: Axes, text: str, x: float, y: float, color: str = "black") -> None:
    # Kept out of the layout: labels are moved apart once the axes are placed (_spread_labels).
    dx, dy, ha = _OFFSETS[0]
    annotation = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va="center",
                             fontsize=7,
                             color=color, gid="label",
                             arrowprops={"arrowstyle": "-", "linewidth": 0.4, "color": color, "alpha": 0.6,
                                         "shrinkA": 0, "shrinkB": 4})
    annotation.set_in_layout(False)


#: Where a point's label may go, in points from it, and its horizontal alignment: rings of
#: growing radius, twelve directions each, nearest first (a far label keeps a leader line
#: to its point). :func:`_spread_labels` takes the first that stays inside the axes and
#: overlaps no marker and no label placed before it.
_OFFSETS = tuple(
    (round(radius * math.cos(math.radians(angle)), 1), round(radius * math.sin(math.radians(angle)), 1),
     "left" if angle % 360 < 75 or angle % 360 > 285 else "right" if 105 < angle % 360 < 255 else "center")
    for radius in (6, 14, 24, 36, 50, 66, 84)
    for angle in (30, -30, 150, 210, 0, 180, 60, -60, 120, 240, 90, 270))
#: Half the side of the square kept free around each marker, in pixels.
_MARKER_HALF = 4.0
#: ... and around each ring that marks the Pareto front.
_RING_HALF = 8.0


def _text_box(annotation: Annotation, renderer) -> Bbox:
    """The extent of an annotation's text alone (its own includes the leader line)."""
    annotation.update_positions(renderer)
    return Text.get_window_extent(annotation, renderer)


def _spread_labels(fig: Figure) -> None:
    """Move each point label (gid ``label``, in order of its point's x) to the first place
    of :data:`_OFFSETS` inside its axes that overlaps no marker and no label placed before
    it; where none is free, to the one that overlaps fewest. Needs the layout done."""
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        frame = ax.get_window_extent(renderer)
        markers = [(xy, _MARKER_HALF) for c in ax.collections if str(c.get_gid()).startswith(("points:", "study"))
                   for xy in c.get_offsets()]
        markers += [(xy, _RING_HALF) for line in ax.lines if line.get_gid() == "front" for xy in line.get_xydata()]
        placed = [Bbox.from_extents(x - half, y - half, x + half, y + half)
                  for xy, half in markers for x, y in [ax.transData.transform(xy)]]
        labels = sorted((t for t in ax.texts if t.get_gid() == "label"), key=lambda t: (t.xy[0], t.xy[1]))
        for text in labels:
            best = None
            for dx, dy, ha in _OFFSETS:
                text.set_position((dx, dy))
                text.set_horizontalalignment(ha)
                box = _text_box(text, renderer)
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                score = (not inside, sum(box.overlaps(other) for other in placed))
                if best is None or score < best[0]:
                    best = (score, (dx, dy, ha), box)
                if score == (False, 0):
                    break
            _, (dx, dy, ha), box = best
            text.set_position((dx, dy))
            text.set_horizontalalignment(ha)
            placed.append(box)


def draw_sweep(ax: Axes, lines: dict[str, list[SweepPoint]], axis: str, baseline: float | None = None) -> Axes:
    """Accuracy against ``axis`` for each line (gid ``line:<label>``): its interval as a
    band (gid ``band:<label>``) where the line spans several values and some were measured
    over several seeds, else as error bars (gid ``interval:<label>``)."""
    values = sorted({p.x for line in lines.values() for p in line})
    for label, points in lines.items():
        xs, ys = [p.x for p in points], [p.accuracy for p in points]
        (line,) = ax.plot(xs, ys, marker="o", label=label, gid=f"line:{label}")
        color = line.get_color()
        if len(points) > 1 and any(p.seeds > 1 for p in points):
            ax.fill_between(xs, [p.low for p in points], [p.high for p in points], color=color, alpha=0.2,
                            linewidth=0, gid=f"band:{label}")
        else:
            yerr = [[p.accuracy - p.low for p in points], [p.high - p.accuracy for p in points]]
            bars = ax.errorbar(xs, ys, yerr=yerr, fmt="none", ecolor=color, capsize=3)
            for artist in bars.lines[2]:
                artist.set_gid(f"interval:{label}")
    if baseline is not None:
        ax.axhline(baseline, linestyle=":", color="dimgray", linewidth=1, gid="baseline")
    if AXES[axis].type is int and values and min(values) > 0:
        ax.set_xscale("log", base=2)
        ax.minorticks_off()
    if values:
        ax.set_xticks(values, [f"{v:g}" for v in values])
        pad = 0.1 * (max(values) - min(values)) if len(values) > 1 else 0.05 * (abs(values[0]) or 1)
        if ax.get_xscale() == "log":
            ax.set_xlim(min(values) / 1.25, max(values) * 1.25)
        else:
            ax.set_xlim(min(values) - pad, max(values) + pad)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return ax


# ----- figures --------------------------------------------------------------------------------


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """matplotlib's default style, so that a user's matplotlibrc changes no byte."""
    with matplotlib.style.context("default"):
        yield


def _figure(plot: Plot) -> Figure:
    fig = Figure(figsize=plot.figsize, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def build_figure(plot: Plot, rows: Sequence[dict]) -> Figure:
    """The figure of ``plot`` from history ``rows``, laid out with its labels placed."""
    with _style():
        fig = _figure(plot)
        baseline = baseline_accuracy(rows, plot.tier, plot.data_id)
        if plot.kind in TRADEOFFS:
            figure = TRADEOFFS[plot.kind]
            pool = plotted(rows, plot)
            front = pareto_front(pool, ["accuracy", figure]).front if pool else ()
            ax = fig.add_subplot()
            draw_tradeoff(ax, pool, front, figure=figure, target=plot.target,
                          families=_families(rows, plot.tier, plot.data_id), study=study_points(plot),
                          baseline=baseline)
            fig.legend(loc="outside lower center", ncols=4, fontsize=8)
        else:
            by_pathway = sweep_lines(rows, plot.tier, plot.data_id, plot.kind)
            ncols = min(3, max(1, len(by_pathway)))
            nrows = max(1, math.ceil(len(by_pathway) / ncols))
            axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False).ravel()
            for ax, (pathway, lines) in zip(axes, by_pathway.items()):
                draw_sweep(ax, lines, plot.kind, baseline)
                ax.set_title(pathway, fontsize=10)
            for ax in axes[len(by_pathway):]:
                ax.remove()
            fig.supylabel(_axis_label("accuracy"))
            fig.supxlabel(f"{plot.kind}: {AXES[plot.kind].help}", fontsize=9)
        fig.suptitle(plot.title, fontsize=11)
        fig.canvas.draw()
        _spread_labels(fig)
    return fig


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes: its own size at :data:`DPI`, no software version in them."""
    buffer = io.BytesIO()
    with _style():
        fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def render_plots(rows: Sequence[dict]) -> list[tuple[Plot, bytes]]:
    """Every plot of :func:`plots_for`, rendered in memory."""
    return [(plot, png_bytes(build_figure(plot, rows))) for plot in plots_for(rows)]


def write_plots(results_dir: Path, rows: Sequence[dict], sessions: Sequence[dict] = ()) -> list[Path]:
    """Write every plot of ``rows`` to ``results_dir/plots/`` (each atomically) and return
    their paths in :func:`plots_for` order. Plots an earlier run wrote there that this one
    does not (a tier or target no longer in the history) are removed; other files are left
    alone. ``sessions`` (the lines of ``sessions.jsonl``) is taken so that the end of a
    session calls this and :func:`kws.html_report.write_html_report` alike; no plot reads
    it."""
    folder = Path(results_dir) / PLOTS_DIR
    written = []
    for plot, data in render_plots(rows):
        path = folder / plot.filename
        atomic_write_bytes(path, data)
        written.append(path)
    if folder.is_dir():
        for path in folder.iterdir():
            if _SUFFIX.search(path.name) and not path.name.startswith(".") and path not in written:
                path.unlink(missing_ok=True)
    return written
