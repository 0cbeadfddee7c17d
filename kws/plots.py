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

One case, from its models in the artifact cache (:func:`write_case_plots`, ``kws report
--case SLUG``), written as ``case-<slug>-*.png``:

- ``weights``: how the weights of the layers TFMOT compresses (Conv2D and Dense kernels;
  depthwise kernels excluded) collapse through the pathway, one panel per model: the
  baseline, each technique stage (float, from its ``model.h5``) and the deployed model
  (dequantised): pruning shows as a spike of exact zeros, clustering as a few spikes
  (:func:`weight_density_figure`);
- ``vela-<target>``: Vela's cycles and MAC utilisation per layer, in network order, the
  layers of lowest utilisation marked (:func:`vela_layers_figure`).

Axis labels and units come from :mod:`kws.metrics` through :mod:`kws.advisor`'s figures.
Figures are built with matplotlib's object API (no pyplot, no global state) and rendered
by the Agg canvas under matplotlib's default style, whatever a matplotlibrc says: the same
rows give the same PNG bytes (fixed size and DPI, no software version in the metadata).
Drawing functions take an ``Axes`` and return it; :func:`build_figure` makes a figure,
:func:`png_bytes` renders it and :func:`write_plots` alone writes files.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import math
import re
import statistics
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.style
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

from kws._fs import atomic_write_bytes
from kws.advisor import FIGURES, Candidate, candidates, display_unit, pareto_front
from kws.inspect.tflite import layer_label
from kws.matrix.report import STUDY, STUDY_BASELINE, latest_per_case, point_of, targets_in
from kws.metrics import METRICS
from kws.pathways.axes import AXES

log = logging.getLogger(__name__)

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
#: Search trials (``kws search``, case ids ``search-...``): many, so drawn small and
#: hollow in a group of their own, and named only where they are on the front.
SEARCH_GROUP = "search trials"
SEARCH_COLOR = "tab:olive"
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
    """The full-width baseline's int8 accuracy, the mean over the newest rows (in %), of
    the model and front-end most of the tier's cases run on; None when the tier's model
    or front-end variants are as many as its own (no one baseline to draw)."""
    cases = latest_per_case(list(rows)).get((tier, data_id), {})
    runs_on = collections.Counter(_model_and_frontend(row) for row in cases.values()).most_common(2)
    if not runs_on or (len(runs_on) == 2 and runs_on[0][1] == runs_on[1][1]):
        return None
    metric = METRICS["baseline_int8_accuracy"]
    values = [v for row in cases.values()
              if _model_and_frontend(row) == runs_on[0][0] and (v := metric.value(row["metrics"])) is not None]
    return display_unit("accuracy")[1] * statistics.fmean(values) if values else None


def _model_and_frontend(row: dict) -> tuple:
    spec = row.get("spec") or {}
    return spec.get("model"), spec.get("frontend")


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
        groups.setdefault(SEARCH_GROUP if _searched(c) else families.get(c.point, "other"), []).append(c)
    order = [f for f in FAMILY_COLORS if f in groups] + sorted(set(groups) - set(FAMILY_COLORS))
    for family in order:
        group = groups[family]
        color = SEARCH_COLOR if family == SEARCH_GROUP else FAMILY_COLORS.get(family, OTHER_COLOR)
        xs = [x_scale * c.value(figure) for c in group]
        ys = [y_scale * c.value("accuracy") for c in group]
        intervals = [c.interval("accuracy") or (c.value("accuracy"),) * 2 for c in group]
        yerr = [[y - y_scale * low for y, (low, _) in zip(ys, intervals)],
                [y_scale * high - y for y, (_, high) in zip(ys, intervals)]]
        bars = ax.errorbar(xs, ys, yerr=yerr, fmt="none", ecolor=color, alpha=0.5, capsize=3)
        for artist in bars.lines[2]:
            artist.set_gid(f"interval:{family}")
        if family == SEARCH_GROUP:
            ax.scatter(xs, ys, facecolors="none", edgecolors=color, s=18, zorder=3, label=family,
                       gid=f"points:{family}")
        else:
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
    on_front = {c.point for c in front}
    for c in pool:
        if not _searched(c) or c.point in on_front:
            _label(ax, c.point, x_scale * c.value(figure), y_scale * c.value("accuracy"))
    for label, x, y in study:
        _label(ax, f"study: {label}", x, y, color=STUDY_COLOR)
    ax.set_xlabel(_axis_label(figure, target))
    ax.set_ylabel(_axis_label("accuracy"))
    ax.margins(x=0.08, y=0.06)
    ax.grid(True, alpha=0.3)
    return ax


def _searched(c: Candidate) -> bool:
    return c.point.startswith("search-")


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


def png_bytes(fig: Figure, source: str | None = None) -> bytes:
    """The figure as PNG bytes: its own size at :data:`DPI`, no software version in them;
    ``source``, where given, in the PNG's ``Source`` text (:func:`png_text` reads it)."""
    buffer = io.BytesIO()
    metadata = {"Software": None, **({"Source": source} if source is not None else {})}
    with _style():
        fig.savefig(buffer, format="png", dpi=DPI, metadata=metadata)
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


# ----- one case: its weights through the pathway, and Vela per layer ------------------------------

#: What every case plot's file name starts with; :func:`write_plots` never removes them.
CASE_PREFIX = "case-"
#: The weights figure: its width, the height of each model's panel, and of the title band.
WEIGHTS_WIDTH, WEIGHTS_PANEL_HEIGHT, WEIGHTS_HEAD = 10.0, 2.0, 1.1
#: Bins of each weight histogram, over [-max |w|, max |w|]: odd, so that zero is the centre
#: of the middle bin.
WEIGHT_BINS = 201
#: Where the log-scaled count axis of the weights figure starts (below one weight).
_COUNT_FLOOR = 0.7
VELA_LAYERS_SIZE = (12.0, 6.5)
NPU_COLOR, CPU_COLOR, UTILISATION_COLOR, LOW_COLOR = "tab:blue", "tab:gray", "tab:orange", "tab:red"
ZERO_COLOR = "tab:red"
#: The layers the weights figure shows, as its title says.
COMPRESSED_LAYERS = "Conv2D and Dense kernels; depthwise kernels{} excluded: TFMOT neither prunes nor clusters them"


@dataclass(frozen=True)
class Kernels:
    """The kernels TFMOT compresses of one model, as floats with the output channels on
    axis 0, by layer name; ``excluded``: the depthwise layers left out."""

    layers: dict[str, np.ndarray]
    excluded: tuple[str, ...] = ()


def _keras_layers(model, keras) -> Iterator:
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _keras_layers(layer, keras)
        else:
            yield layer


_KERNEL = re.compile(r"kernel(:\d+)?")


def keras_kernels(model) -> Kernels:
    """The Conv2D and Dense kernels of a tf_keras model as stored (a QAT model's latent
    float kernels, read inside their quantisation wrappers); depthwise layers excluded."""
    from kws.compat import keras

    layers, excluded = {}, []
    for layer in _keras_layers(model, keras):
        inner = layer.layer if isinstance(layer, keras.layers.Wrapper) else layer
        if isinstance(inner, keras.layers.DepthwiseConv2D):  # before Conv2D: it subclasses it
            excluded.append(inner.name)
        elif (isinstance(inner, (keras.layers.Conv2D, keras.layers.Dense))
              and not isinstance(inner, keras.layers.Conv2DTranspose)):
            kernels = [w for w in layer.weights if _KERNEL.fullmatch(w.name.rsplit("/", 1)[-1])]
            assert len(kernels) == 1, f"layer {layer.name}: expected one kernel, found {[w.name for w in kernels]}"
            # Keras kernels hold the output channels last: Conv2D [h, w, in, out], Dense [in, out].
            layers[inner.name] = np.moveaxis(np.asarray(kernels[0].numpy(), dtype=np.float64), -1, 0)
    return Kernels(layers, tuple(excluded))


def tflite_kernels(tflite: bytes) -> Kernels:
    """The CONV_2D and FULLY_CONNECTED weights of a TFLite flatbuffer, dequantised (an int8
    model's per-channel scales and zero points applied; int8 conversion has folded each
    BatchNorm into them); DEPTHWISE_CONV_2D layers excluded. Read from the buffers as
    :func:`kws.inspect.inspect_tflite` reads them, with its helpers."""
    from kws.inspect.stats import Kind
    from kws.inspect.tflite import weight_tensors

    layers, excluded = {}, []
    for w in weight_tensors(tflite):
        if w.kind == Kind.DEPTHWISE:
            excluded.append(w.layer)
            continue
        name = w.tensor_name if w.layer in layers else w.layer
        # TFLite weights hold the output channels first: CONV_2D [out, h, w, in], FULLY_CONNECTED [out, in].
        layers[name] = _dequantised(w.tensor, w.weights)
    return Kernels(layers, tuple(excluded))


def _dequantised(tensor, weights: np.ndarray) -> np.ndarray:
    """``weights`` as floats: integers scaled per channel along the quantised dimension."""
    q = tensor.quantization
    if not np.issubdtype(weights.dtype, np.integer) or q is None or q.scale is None or not len(q.scale):
        return weights.astype(np.float64)

    def along(values) -> np.ndarray:  # one value per channel of the quantised dimension, or one for all
        values = np.asarray(values if values is not None and len(values) else [0], dtype=np.float64)
        shape = [1] * weights.ndim
        if values.size > 1:
            shape[q.quantizedDimension] = values.size
        return values.reshape(shape)

    return (weights.astype(np.float64) - along(q.zeroPoint)) * along(q.scale)


@dataclass(frozen=True)
class WeightDensity:
    """What one model's panel of the weights figure shows: the histogram of its non-zero
    weights (``counts`` over ``edges``), its exact zeros apart, and the counts its
    summary line gives."""

    label: str
    layers: int
    weights: int
    zeros: int
    #: Distinct values over all its compressed layers, and the most in one output channel.
    distinct: int
    distinct_per_channel: int
    counts: np.ndarray
    edges: np.ndarray
    excluded: tuple[str, ...]

    @property
    def zero_share(self) -> float:
        return self.zeros / self.weights

    @property
    def summary(self) -> str:
        return (f"{self.weights:,} weights in {self.layers} layers; zeros {self.zero_share:.1%}; "
                f"{self.distinct:,} distinct values, at most {self.distinct_per_channel:,} in one output channel")


def weight_density(label: str, kernels: Kernels | Mapping[str, np.ndarray], bins: int = WEIGHT_BINS) -> WeightDensity:
    """The panel of one model: ``kernels`` (or kernels by layer name, output channels
    first) binned into ``bins`` equal bins over [-max |w|, max |w|]."""
    if not isinstance(kernels, Kernels):
        kernels = Kernels(dict(kernels))
    assert kernels.layers, f"{label}: no Conv2D or Dense kernel to plot"
    values = np.concatenate([np.ravel(k) for k in kernels.layers.values()])
    nonzero = values[values != 0]
    edge = float(np.abs(values).max()) or 1.0
    counts, edges = np.histogram(nonzero, bins=bins, range=(-edge, edge))
    per_channel = max(len(np.unique(channel)) for k in kernels.layers.values()
                      for channel in np.reshape(k, (k.shape[0], -1)))
    return WeightDensity(label, len(kernels.layers), values.size, values.size - nonzero.size,
                         len(np.unique(values)), per_channel, counts, edges, kernels.excluded)


def draw_weight_density(ax: Axes, density: WeightDensity) -> Axes:
    """One model's weights: the histogram of its non-zero weights (gid ``hist:<label>``)
    and its exact zeros as one spike at 0 (gid ``zeros:<label>``), counts on a log axis,
    with its summary line (gid ``summary``)."""
    ax.stairs(density.counts, density.edges, fill=True, baseline=_COUNT_FLOOR, color=NPU_COLOR, alpha=0.85,
              label="non-zero weights (histogram)", gid=f"hist:{density.label}")
    if density.zeros:
        ax.vlines(0.0, _COUNT_FLOOR, density.zeros, color=ZERO_COLOR, linewidth=2.5, zorder=3,
                  label="exact zeros", gid=f"zeros:{density.label}")
    ax.set_yscale("log")
    top = max(density.zeros, int(density.counts.max(initial=0)), 1)
    ax.set_ylim(_COUNT_FLOOR, top * 4)
    ax.set_xlim(density.edges[0], density.edges[-1])
    ax.set_title(density.label, fontsize=10, loc="left")
    ax.text(0.995, 0.95, density.summary, transform=ax.transAxes, ha="right", va="top", fontsize=8,
            gid="summary", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5})
    ax.set_ylabel("weights")
    ax.grid(True, alpha=0.3)
    return ax


def weight_density_figure(models: Sequence[tuple[str, Kernels | Mapping[str, np.ndarray]]],
                          title: str = "Weight values through the pathway") -> Figure:
    """The weights figure: one panel per (label, kernels) of ``models``, in their order
    (the baseline, each technique stage, the deployed model), each model's weights binned
    over its own range; pruning shows as a spike of exact zeros, clustering as a few spikes."""
    densities = [weight_density(label, kernels) for label, kernels in models]
    assert densities, "no model to plot"
    with _style():
        fig = Figure(figsize=(WEIGHTS_WIDTH, WEIGHTS_HEAD + WEIGHTS_PANEL_HEIGHT * len(densities)), dpi=DPI,
                     layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(densities), 1, squeeze=False).ravel()
        for ax, density in zip(axes, densities):
            draw_weight_density(ax, density)
        axes[-1].set_xlabel("weight value (each panel over its own range)")
        excluded = sorted({name for d in densities for name in d.excluded})
        left_out = f" ({', '.join(excluded)})" if excluded else ""
        fig.suptitle(f"{title}\n{COMPRESSED_LAYERS.format(left_out)}", fontsize=11)
        handles = {h.get_label(): h for ax in axes for h in ax.get_legend_handles_labels()[0]}
        fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=2, fontsize=8)
    return fig


@dataclass(frozen=True)
class LayerBar:
    """One source operator of Vela's per-layer table: its rows of one name taken together
    (a convolution and the activation fused into it are one layer). ``mac_utilisation``
    is that of its part with the most MACs (None where no part has any); ``on``: ``NPU``,
    ``CPU`` or both."""

    name: str
    op: str
    on: str
    cycles: int
    macs: int
    mac_utilisation: float | None

    @property
    def label(self) -> str:
        return layer_label(self.name)


def vela_layer_bars(layers: Sequence) -> list[LayerBar]:
    """Vela's per-layer rows (:class:`kws.vela.VelaLayer`, in network order) as one bar per
    source operator: consecutive rows of one name are one."""
    groups: list[list] = []
    for layer in layers:
        if groups and groups[-1][0].name == layer.name:
            groups[-1].append(layer)
        else:
            groups.append([layer])
    bars = []
    for parts in groups:
        measured = [p for p in parts if p.mac_utilisation is not None]
        main = max(measured, key=lambda p: p.macs) if measured else None
        on = "+".join(sorted({p.target for p in parts}, reverse=True))
        bars.append(LayerBar(parts[0].name, parts[0].op, on, sum(p.cycles for p in parts),
                             sum(p.macs for p in parts), main.mac_utilisation if main else None))
    return bars


def draw_vela_layers(ax: Axes, bars: Sequence[LayerBar], lowest: Sequence[str] = ()) -> Axes:
    """Cycles per layer as bars (gid ``cycles:<label>``; grey where the layer runs on the
    CPU) and, on a second axis, MAC utilisation as a line (gid ``utilisation``); the layers
    named in ``lowest`` (lowest utilisation first) hatched and ranked (gid ``rank``), their
    utilisation ringed (gid ``lowest``). Returns ``ax``; the second axis is its twin."""
    xs = list(range(len(bars)))
    rank = {name: i for i, name in enumerate(lowest)}
    patches = ax.bar(xs, [b.cycles for b in bars], color=[CPU_COLOR if "CPU" in b.on else NPU_COLOR for b in bars],
                     alpha=0.85, zorder=2).patches
    for x, bar, patch in zip(xs, bars, patches):
        patch.set_gid(f"cycles:{bar.label}")
        if bar.name in rank:
            patch.set_edgecolor(LOW_COLOR)
            patch.set_linewidth(2)
            patch.set_hatch("//")
            ax.annotate(f"#{rank[bar.name] + 1}", (x, bar.cycles), xytext=(0, 3), textcoords="offset points",
                        ha="center", va="bottom", fontsize=9, color=LOW_COLOR, fontweight="bold", gid="rank")
    ax.set_xticks(xs, [f"{b.label} ({b.op}{'' if b.on == 'NPU' else ', ' + b.on})" for b in bars],
                  rotation=35, ha="right", fontsize=8, rotation_mode="anchor")
    ax.set_ylabel("cycles per inference")
    ax.set_xlim(-0.6, len(bars) - 0.4)
    ax.margins(y=0.12)
    ax.grid(True, axis="y", alpha=0.3)
    twin = ax.twinx()
    utilisation = [math.nan if b.mac_utilisation is None else b.mac_utilisation for b in bars]
    twin.plot(xs, utilisation, color=UTILISATION_COLOR, marker="o", linewidth=1.5, zorder=3,
              label="MAC utilisation", gid="utilisation")
    marked = [x for x, b in zip(xs, bars) if b.name in rank and b.mac_utilisation is not None]
    if marked:
        twin.scatter(marked, [utilisation[x] for x in marked], s=160, facecolors="none", edgecolors=LOW_COLOR,
                     linewidths=2, zorder=4, label="their MAC utilisation", gid="lowest")
    measured = [u for u in utilisation if not math.isnan(u)]
    twin.set_ylim(0, min(100.0, 1.25 * max(measured)) if measured and max(measured) > 0 else 100.0)
    twin.set_ylabel("MAC utilisation (% of the NPU's peak MACs/cycle)")
    return ax


def vela_layers_figure(per_layer, target: str, case: str | None = None) -> Figure:
    """Vela's per-layer figures of one model on ``target``: a :class:`kws.vela.VelaReport`
    (its layers and its lowest-utilisation layers) or its per-layer rows alone
    (:class:`kws.vela.VelaLayer`; the lowest then found by :func:`kws.vela.low_utilisation`
    over their cycles). Layers in network order."""
    from kws.vela import LOW_UTILISATION_MIN_SHARE, VelaReport, low_utilisation

    if isinstance(per_layer, VelaReport):
        layers, lowest = per_layer.layers, [n.name for n in per_layer.low_utilisation]
        total = f": {per_layer.cycles_total:,} cycles, {per_layer.inference_us:.1f} us per inference"
    else:
        layers = list(per_layer)
        lowest = [n.name for n in low_utilisation(layers, sum(layer.cycles for layer in layers))]
        total = ""
    assert layers, f"no per-layer rows to plot for {target}"
    bars = vela_layer_bars(layers)
    with _style():
        fig = Figure(figsize=VELA_LAYERS_SIZE, dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        draw_vela_layers(ax, bars, lowest)
        twin = next(a for a in fig.axes if a is not ax)
        from matplotlib.patches import Patch

        handles = [Patch(color=NPU_COLOR, label="cycles (NPU)"),
                   *([Patch(color=CPU_COLOR, label="cycles (CPU)")] if any("CPU" in b.on for b in bars) else []),
                   *twin.get_legend_handles_labels()[0]]
        if lowest:
            handles.append(Patch(facecolor="white", edgecolor=LOW_COLOR, hatch="//",
                                 label=f"the {len(lowest)} layers of lowest MAC utilisation with at least "
                                       f"{LOW_UTILISATION_MIN_SHARE:.0%} of the cycles (#1 lowest)"))
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), fontsize=8)
        what = f"{case} on {target}" if case else target
        fig.suptitle(f"Vela per layer: {what}{total}", fontsize=11)
    return fig


# ----- writing a case's plots ---------------------------------------------------------------------


def case_plot_name(case: str, what: str) -> str:
    """``case-<slug>-<what>.png``: ``what`` is ``weights`` or ``vela-<target>``."""
    return f"{CASE_PREFIX}{_safe(case)}-{_safe(what)}.png"


def case_plot_names(row: dict) -> list[str]:
    """The file names of a history row's case plots: its weights, then Vela per target."""
    targets = (row.get("metrics") or {}).get("vela") or {}
    return [case_plot_name(row["case"], "weights"), *(case_plot_name(row["case"], f"vela-{t}") for t in targets)]


def case_source(row: dict) -> str:
    """What a case plot's PNG records of its source: the case and its deployed model's key,
    so that a plot of an earlier run of the case is told from one of this row."""
    return f"kws-pathways case {row['case']} deployed {(row.get('keys') or {}).get('deployed')}"


def png_text(data: bytes) -> dict[str, str]:
    """The ``tEXt`` entries of a PNG ({} for bytes that are not one)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return {}
    out, at = {}, 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"tEXt":
            key, _, value = data[at + 8:at + 8 + length].partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        at += 12 + length
    return out


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG in pixels, from its header."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def is_current_case_plot(data: bytes, row: dict) -> bool:
    """Whether a case plot's PNG was drawn from ``row``'s models (:func:`case_source`)."""
    return png_text(data).get("Source") == case_source(row)


#: The key labels of a history row (``CaseRecord.keys``) other than its technique stages.
_BASELINE_KEY, _DEPLOYED_KEY = "baseline", "deployed"


def _stage_label(index: int, row: dict, family: str) -> str:
    stages = row.get("stages") or []
    params = stages[index].get("params", {}) if index < len(stages) else {}
    shown = [f"{name} {params[name]}" for name in ("sparsity", "clusters", "m_by_n") if params.get(name) is not None]
    shown += ["per channel"] if params.get("per_channel") else []
    latent = " (QAT's latent weights)" if family == "qat" else ""
    return f"stage {index + 1}: {family}" + (f" ({', '.join(shown)})" if shown else "") + f", Keras float{latent}"


def _run_hint(row: dict) -> str:
    """The ``kws run`` command that builds a row's models, from what the row records."""
    pathway = row.get("pathway") or row["case"].split("-")[0]
    words = ["kws", "run", pathway]
    for name, value in (row.get("point") or {}).items():
        if name in AXES:
            words += [AXES[name].flag, AXES[name].text(value)]
    spec = row.get("spec") or {}
    for name, flag in (("seed", "--seed"), ("model", "--model"), ("finetune_epochs", "--epochs"),
                       ("learning_rate", "--learning-rate"), ("baseline_epochs", "--baseline-epochs")):
        if spec.get(name) is not None:
            words += [flag, str(spec[name])]
    if spec.get("frontend") not in (None, "mlperf-tiny"):
        words += ["--frontend", str(spec["frontend"])]
    if spec.get("data") not in (None, "default"):
        words += ["--data-dir", str(spec["data"])]
    return " ".join(words)


def case_artifacts(row: dict, cache) -> list[tuple[str, object]]:
    """``(key label, artifact)`` of a history row's models in pathway order: the baseline,
    each technique stage, the deployed model; each entry verified. A model not in
    ``cache`` is a :class:`~kws.errors.KwsError` naming the case and what to run."""
    from kws.baseline import STAGE as BASELINE_STAGE
    from kws.cache import CACHE_FORMAT_VERSION
    from kws.errors import KwsError
    from kws.export import STAGE as EXPORT_STAGE
    from kws.store.entry import load_verified

    case, keys = row.get("case", "?"), row.get("keys") or {}
    if _BASELINE_KEY not in keys or _DEPLOYED_KEY not in keys:
        raise KwsError(f"case {case}: its history row holds no cache keys (an earlier layout); "
                       f"run `{_run_hint(row)}` and plot its record's case instead")
    stages = sorted((k for k in keys if k not in (_BASELINE_KEY, _DEPLOYED_KEY)),
                    key=lambda k: int(k.partition(":")[0]))
    order = [(_BASELINE_KEY, BASELINE_STAGE), *((k, k.partition(":")[2]) for k in stages),
             (_DEPLOYED_KEY, EXPORT_STAGE)]
    found, missing = [], []
    for label, stage in order:
        entry, problem = load_verified(cache.path_for(stage, keys[label]), stage, keys[label], CACHE_FORMAT_VERSION)
        if entry is None:
            missing.append(f"{label} ({stage} {keys[label][:12]}{': ' + problem if problem else ''})")
        found.append((label, entry))
    if missing:
        raise KwsError(f"case {case} is not in this machine's artifact cache ({cache.root}): missing "
                       f"{', '.join(missing)}; run `{_run_hint(row)}` (the recipe of tier {row.get('tier', '?')}) "
                       "or its tier of the benchmark matrix here first")
    return found


def case_figures(row: dict, cache) -> list[tuple[str, Figure]]:
    """Every case plot of a history row, drawn from its models in ``cache``: ``(file name,
    figure)``, the weights first, then Vela per target of the row (compiled through the
    cached Vela path with its per-layer table: a cache hit runs nothing). A target the
    row names that this process cannot resolve (a target file's name) is left out, with
    a warning naming it."""
    from kws.baseline import load_model
    from kws.export import TFLITE_FILE
    from kws.vela import estimate, parse_targets

    case = row["case"]
    models, tflite = [], None
    for label, artifact in case_artifacts(row, cache):
        if label == _BASELINE_KEY:
            models.append(("baseline, Keras float", keras_kernels(load_model(artifact))))
        elif label == _DEPLOYED_KEY:
            tflite = artifact.file(TFLITE_FILE)
            models.append((f"deployed {row.get('export', 'TFLite')}: dequantised, BatchNorm folded in",
                           tflite_kernels(tflite.read_bytes())))
        else:
            index, _, family = label.partition(":")
            models.append((_stage_label(int(index), row, family), keras_kernels(load_model(artifact))))
    weights = weight_density_figure(models, f"Weight values through the pathway: {case}")
    out = [(case_plot_name(case, "weights"), weights)]
    for target in (row.get("metrics") or {}).get("vela") or {}:
        try:
            (resolved,) = parse_targets(target)
        except ValueError as exc:
            log.warning("case %s: no Vela plot for target %r: %s", case, target, exc)
            continue
        report = estimate(tflite, resolved, cache=cache)
        out.append((case_plot_name(case, f"vela-{target}"), vela_layers_figure(report, target, case)))
    return out


def write_case_plots(results_dir: Path, row: dict, cache=None) -> list[Path]:
    """Draw a history row's case plots (:func:`case_figures`) from its models in the
    artifact cache (default: this machine's) and write them to ``results_dir/plots/``
    (each atomically, all drawn before any is written); return their paths. A case whose
    models are not in the cache is a :class:`~kws.errors.KwsError` naming it."""
    from kws.cache import ArtifactCache

    cache = cache if cache is not None else ArtifactCache()
    folder = Path(results_dir) / PLOTS_DIR
    rendered = [(folder / name, png_bytes(fig, case_source(row))) for name, fig in case_figures(row, cache)]
    for path, data in rendered:
        atomic_write_bytes(path, data)
    return [path for path, _ in rendered]
