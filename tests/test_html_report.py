"""``results/report.html`` and ``kws report`` on the crafted history of tests/test_plots.py:
one self-contained page (tables, the advisor's answer, Vela's advice, one embedded PNG per
plot and the recommended case's per-layer plots where they are at hand, nothing fetched
from outside), checked as text and, where Chromium is installed, in a real headless
browser."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kws.cli import main
from kws.html_report import REPORT_FILE, render_html, write_html_report
from kws.matrix.history import append_history
from kws.plots import PLOTS_DIR, case_plot_name, case_source, plots_for, png_bytes, vela_layers_figure, write_plots
from kws.vela import LOW_UTILISATION_LAYERS, VelaLayer
from tests.test_plots import DATA, OTHER_TARGET, TARGET, crafted_rows, history_row

#: The default recommendation on the crafted rows: the fastest point whose drop's upper end
#: is within 1 pp (cqat-c16 at 114 us, drop -2 pp), then ptq_int8 (115 us, drop 0).
CHOICE, RUNNER_UP = "cqat-c16", "ptq_int8"


class _Page(HTMLParser):
    """The page's tables, images and every URL-valued attribute."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[str] = []
        self.images: list[dict] = []
        self.urls: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href", "action", "data", "poster") and v]


def _flat(text: str) -> str:
    """The page's text as a reader sees it: tags gone (inline ones without a blank),
    entities decoded, blanks folded."""
    inline = re.sub(r"</?(code|strong)>", "", text)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", inline)).split())


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return crafted_rows()


@pytest.fixture(scope="module")
def page(rows, tmp_path_factory) -> Path:
    results = tmp_path_factory.mktemp("results")
    sessions = [{"time": "2026-11-30T00:10:00+00:00", "tier": "smoke", "data_id": DATA, "cases": 13,
                 "warm": False, "wall_s": 300.0, "workers": 2}]
    return write_html_report(results, rows, sessions, plots=write_plots(results, rows))


def test_the_page_is_self_contained(page):
    text = page.read_text()
    parsed = _Page(text)
    assert "http" not in text and "<script" not in text and "url(" not in text and "@import" not in text
    assert parsed.urls, "the page has images and in-page links"
    assert [u for u in parsed.urls if not u.startswith(("data:image/png;base64,", "#"))] == []
    assert text.count('src="') == text.count('src="data:image/png;base64,') == len(parsed.images)


def test_the_page_embeds_one_png_per_plot_as_written(page, rows):
    images = _Page(page.read_text()).images
    plots = plots_for(rows)
    assert len(images) == len(plots) == 5
    for image, plot in zip(images, plots):
        data = base64.b64decode(image["src"].removeprefix("data:image/png;base64,"), validate=True)
        assert data == (page.parent / PLOTS_DIR / plot.filename).read_bytes()
        assert (int(image["width"]), int(image["height"])) == plot.size_px
        assert image["alt"] == plot.title


def test_the_page_holds_the_summary_the_study_the_front_and_the_recommendation(page):
    text = page.read_text()
    flat = _flat(text)
    assert len(re.findall(r"<table[ >]", text)) == 4  # summary, beside the study, Pareto front, Vela's advice
    assert f"Tier smoke on {DATA}" in flat
    assert "Wall time of the newest session: cold (stages trained) 5 min 00 s" in flat
    # The summary's own table, in HTML: the best of a column in <strong>, marks escaped.
    assert "<th>int8 accuracy %" in text and "<td>pcqat-s0.50-c16" in text
    assert "<strong>89.50 [87.45, 91.25]</strong>" in text
    assert "PCQAT (50%, 32)" in flat and "study us (U55-256, Vela 3.4)" in flat
    assert f"For target {TARGET}: minimise latency" in flat
    assert "int8 accuracy drop <= 1.00 pp, judged on the upper end of its 95% interval" in flat
    assert f"Choice: {CHOICE} (1 seed)" in flat and f"Runner-up: {RUNNER_UP} (1 seed)" in flat
    front = text[text.index("<h3>Pareto front</h3>"):text.index("<h3>Summary</h3>")]
    assert f"<td>{CHOICE}</td>" in front and "<td>CHOICE</td>" in front
    assert "Dominated:" in front and "p-s0.50 by " in front


def test_the_same_history_gives_the_same_page(page, rows):
    assert render_html(rows, [], None) == render_html(rows, [], None)
    again = write_html_report(page.parent / "again", rows)  # plots rendered in memory: the same bytes
    sources = [[i["src"] for i in _Page(path.read_text()).images] for path in (again, page)]
    assert sources[0] == sources[1]


def test_without_estimates_for_the_default_target_the_page_says_so_and_recommends_without_one(tmp_path):
    rows = [history_row("ptq_int8-seed0", family="ptq", correct=850, gzip=30_000, us=None),
            history_row("qat-seed0", family="qat", correct=860, gzip=30_400, us=None)]
    flat = _flat(render_html(rows))
    assert f"no Vela estimates for target {TARGET!r}" in flat
    assert "Shown instead: the choice without an NPU target." in flat
    assert "For no NPU target: minimise size" in flat and "Choice: ptq_int8" in flat


def test_an_empty_history_gives_a_page_that_says_so(tmp_path):
    text = write_html_report(tmp_path, []).read_text()
    assert "The history holds no benchmark rows." in text and "<img" not in text


# ----- Vela's advice and the recommended case's plots ------------------------------------------

DW_1 = "ds-cnn-s/dw_1_relu/Relu;ds-cnn-s/dw_1_bn/FusedBatchNormV3;ds-cnn-s/dw_1/depthwise"
POOL = "ds-cnn-s/avg_pool/AvgPool"


def _advised(row: dict, target: str = TARGET, **fields) -> dict:
    """``row`` with Vela's advice fields set on ``target`` (a field given as None is left out)."""
    estimate = dict(row["metrics"]["vela"][target])
    estimate.pop("cpu_ops", None)
    estimate.update({k: v for k, v in fields.items() if v is not None})
    return {**row, "metrics": {**row["metrics"], "vela": {**row["metrics"]["vela"], target: estimate}}}


def _advice(text: str) -> str:
    return text[text.index("<h3>Advice from Vela</h3>"):text.index("<h3>Plots</h3>")]


def test_the_advice_table_lists_each_int8_case_per_target_with_its_lowest_layers_and_cpu_operators(rows):
    low = [{"name": POOL, "op": "AvgPool", "mac_utilisation": 0.57, "cycles": 5476, "cycles_share": 0.0967},
           {"name": DW_1, "op": "DepthwiseConv2D", "mac_utilisation": 5.66, "cycles": 4968, "cycles_share": 0.0877}]
    cpu = [{"type": "QUANTIZE", "name": "serving_default_mfcc:0_int8", "reason": "float input <script>"},
           {"type": "DEQUANTIZE", "name": "Identity", "reason": None}]
    crafted = {r["case"]: r for r in rows}
    crafted["qat-seed0"] = _advised(crafted["qat-seed0"], low_utilisation=low, cpu_ops=cpu)
    crafted["qat-seed0"] = _advised(crafted["qat-seed0"], OTHER_TARGET, low_utilisation=[], cpu_ops=[])
    crafted["ptq_int8-seed0"] = _advised(crafted["ptq_int8-seed0"], low_utilisation=low[:1], cpu_ops=[])
    text = render_html(list(crafted.values()))
    advice = _advice(text)
    body = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", advice)
    # Every int8 case once per target it was estimated on, in case order; ptq_fp16 (float16) not at all.
    int8 = sorted(c for c, r in crafted.items() if r["export"] == "int8")
    assert [(case, target) for case, target, *_ in body] == sorted(
        [(c, TARGET) for c in int8] + [("ptq_int8-seed0", OTHER_TARGET), ("qat-seed0", OTHER_TARGET)])
    cells = {(case, target): (layers, on_cpu) for case, target, layers, on_cpu in body}
    layers, on_cpu = cells["qat-seed0", TARGET]
    assert layers.split("<br>") == ["avg_pool (AvgPool): 0.6% MAC utilisation, 5,476 cycles (10% of the total)",
                                    "dw_1 (DepthwiseConv2D): 5.7% MAC utilisation, 4,968 cycles (9% of the total)"]
    assert on_cpu.split("<br>") == ["QUANTIZE serving_default_mfcc:0_int8: float input &lt;script&gt;",
                                    "DEQUANTIZE Identity: Vela gave no reason"]
    assert cells["qat-seed0", OTHER_TARGET] == ("none", "none")
    assert cells["ptq_int8-seed0", TARGET] == (
        "avg_pool (AvgPool): 0.6% MAC utilisation, 5,476 cycles (10% of the total)", "none")
    # A field that a row's run predates is said to be missing, not "none" (the crafted rows
    # record cpu_ops, empty, but no low_utilisation).
    assert cells["cqat-c16-seed0", TARGET] == ("not recorded (an earlier run)", "none")
    assert f"the {LOW_UTILISATION_LAYERS} NPU layers of lowest MAC utilisation" in _flat(advice)


def test_without_int8_estimates_the_advice_says_so():
    rows = [history_row("ptq_fp16-seed0", family="ptq", correct=850, gzip=45_000, us=None, export="float16")]
    assert "No int8 case has a Vela estimate." in _flat(_advice(render_html(rows)))


def _case_png(row: dict, source: str | None = None) -> bytes:
    layers = [VelaLayer("m/conv_1/Conv2D", "Conv2D", "Conv2D", "NPU", 900, 900, 0, 0, 0, 0, 4000, 20.0, 0),
              VelaLayer(POOL, "AvgPool", "AvgPool", "NPU", 300, 300, 0, 0, 0, 0, 100, 0.5, 0)]
    return png_bytes(vela_layers_figure(layers, TARGET, row["case"]), source or case_source(row))


def test_the_recommended_cases_plots_are_embedded_under_the_recommendation_when_drawn_from_its_newest_run(
        rows, tmp_path):
    keyed = [{**r, "keys": {"baseline": "b" * 64, "deployed": f"{i:064x}"}} for i, r in enumerate(rows)]
    chosen = next(r for r in keyed if r["case"] == f"{CHOICE}-seed0")
    other = next(r for r in keyed if r["case"] == f"{RUNNER_UP}-seed0")
    folder = tmp_path / PLOTS_DIR
    folder.mkdir()
    current = _case_png(chosen)
    (folder / case_plot_name(chosen["case"], f"vela-{TARGET}")).write_bytes(current)
    (folder / case_plot_name(other["case"], f"vela-{TARGET}")).write_bytes(_case_png(other))
    text = write_html_report(tmp_path, keyed, plots=write_plots(tmp_path, keyed)).read_text()
    recommendation = text[text.index("<h3>Recommendation"):text.index("<h3>Pareto front</h3>")]
    (image,) = _Page(recommendation).images
    assert base64.b64decode(image["src"].removeprefix("data:image/png;base64,")) == current
    assert (int(image["width"]), int(image["height"])) == (1200, 650)
    assert (f"The recommended case {CHOICE}-seed0: Vela's cycles and MAC utilisation per layer on {TARGET} "
            f"(case-{CHOICE}-seed0-vela-{TARGET}.png).") in _flat(recommendation)
    assert len(_Page(text).images) == len(plots_for(keyed)) + 1  # the runner-up's plot is not embedded

    # A plot of an earlier run of the case (another deployed model) is not shown as this one's.
    (folder / case_plot_name(chosen["case"], f"vela-{TARGET}")).write_bytes(_case_png(chosen, "an earlier run"))
    text = write_html_report(tmp_path, keyed, plots=write_plots(tmp_path, keyed)).read_text()
    recommendation = text[text.index("<h3>Recommendation"):text.index("<h3>Pareto front</h3>")]
    assert _Page(recommendation).images == []
    assert (f"The per-layer plots of {CHOICE}-seed0 in plots/ are of an earlier run: kws report --case "
            f"{CHOICE}-seed0 draws them anew.") in _flat(recommendation)


# ----- kws report -----------------------------------------------------------------------------


def test_kws_report_writes_the_plots_and_the_page_and_prints_their_paths(rows, tmp_path, capsys):
    append_history(tmp_path / "history.jsonl", rows)
    assert main(["report", "--results", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    expected = [tmp_path / PLOTS_DIR / p.filename for p in plots_for(rows)] + [tmp_path / REPORT_FILE]
    assert out.splitlines() == [str(p) for p in expected] and err == ""
    assert all(p.is_file() for p in expected)


@pytest.mark.parametrize("content", [None, "", "\n\n"], ids=["missing", "empty", "blank"])
def test_kws_report_without_history_rows_is_a_one_line_error_naming_the_file(content, tmp_path, capsys):
    history = tmp_path / "history.jsonl"
    if content is not None:
        history.write_text(content)
    assert main(["report", "--results", str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("kws report: error: ") and str(history) in err
    assert not (tmp_path / REPORT_FILE).exists() and not (tmp_path / PLOTS_DIR).exists()


def test_kws_report_case_names_an_unknown_case_and_writes_nothing(rows, tmp_path, capsys):
    append_history(tmp_path / "history.jsonl", rows)
    assert main(["report", "--results", str(tmp_path), "--case", "p-s0.875-seed4"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"kws report: error: --case: no case p-s0.875-seed4 in {tmp_path / 'history.jsonl'} "
                          "(its cases: cqat-c16-seed0, p-s0.50-seed0, ")
    assert not (tmp_path / REPORT_FILE).exists() and not (tmp_path / PLOTS_DIR).exists()


def test_kws_report_case_whose_models_are_not_in_this_machines_cache_says_what_to_run(rows, tmp_path, monkeypatch,
                                                                                         capsys):
    from kws._fs import CACHE_ENV

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "empty-cache"))
    keyed = [{**r, "keys": {"baseline": "b" * 64, "0:qat": "c" * 64, "deployed": "d" * 64}} for r in rows]
    append_history(tmp_path / "history.jsonl", keyed)
    assert main(["report", "--results", str(tmp_path), "--case", "qat-seed0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith("kws report: error: case qat-seed0 is not in this machine's artifact cache "
                          f"({tmp_path / 'empty-cache' / 'artifacts'}): missing baseline (baseline bbbbbbbbbbbb)")
    assert "run `kws run qat --seed 0 --model ds-cnn-s` (the recipe of tier smoke)" in err
    assert not (tmp_path / REPORT_FILE).exists() and not (tmp_path / PLOTS_DIR).exists()


def test_kws_report_reads_the_sessions_file_the_suite_writes():
    from kws.cli.report import SESSIONS_FILE
    from kws.matrix.session import SESSIONS_FILE as WRITTEN

    assert SESSIONS_FILE == WRITTEN


# ----- in a real browser ------------------------------------------------------------------------


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium is not installed (Debian package chromium; .ci/run installs it)")


def _browse(browser: str, page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [browser, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)


#: matplotlib's tab:blue (the qat family's points) and tab:orange (prune), as painted.
PLOT_COLOURS = ((31, 119, 180), (255, 127, 14))


def test_the_page_renders_in_headless_chromium_with_its_tables_and_images_and_no_console_error(page, tmp_path):
    import matplotlib.image
    import numpy as np

    browser = _chromium()
    dom = _browse(browser, page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    parsed = _Page(dom.stdout)
    assert parsed.tags.count("table") == 4 and len(parsed.images) == 5
    assert all(i["src"].startswith("data:image/png;base64,") for i in parsed.images)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], "the page logged to the console"
    # Painted: a screenshot tall enough for the whole page shows the plots' own colours
    # (a broken image would show none of them).
    shot = tmp_path / "page.png"
    done = _browse(browser, page, tmp_path / "profile", "--window-size=1300,9000", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = (matplotlib.image.imread(shot)[..., :3] * 255).round().astype(int)
    for colour in PLOT_COLOURS:
        assert np.all(np.abs(pixels - colour) <= 6, axis=-1).sum() > 200, f"no {colour} painted"
    assert not [line for line in done.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
