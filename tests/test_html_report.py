"""``results/report.html`` and ``kws report`` on the crafted history of tests/test_plots.py:
one self-contained page (tables, the advisor's answer, one embedded PNG per plot, nothing
fetched from outside), checked as text and, where Chromium is installed, in a real
headless browser."""

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
from kws.plots import PLOTS_DIR, plots_for, write_plots
from tests.test_plots import DATA, TARGET, crafted_rows, history_row

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
    assert len(re.findall(r"<table[ >]", text)) == 3  # summary, beside the study, Pareto front
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
    assert parsed.tags.count("table") == 3 and len(parsed.images) == 5
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
