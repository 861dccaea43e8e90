"""The cohort report page: its numbers and escaping read back from the HTML, then drawn by a
real headless Chromium (Debian's, driven by Playwright) to prove the charts render."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from omicslake.cohort_report import AttritionStep, ReportData, render_report, write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

STEPS = [  # given out of order on purpose: the chart sorts by rule_sequence
    AttritionStep(3, "age 18 or over at index", "inclusion", 520, 1300),
    AttritionStep(1, "non-reference call in BRCA1", "index", 900, 2400),
    AttritionStep(2, "365 days observed before index", "observation", 700, 1800),
    AttritionStep(4, "no prior cancer diagnosis", "exclusion", 430, 1020),
    AttritionStep(5, "cohort", "final", 412, 412),
]
PYRAMID = [("40-49", "M", 61), ("40-49", "F", 70), ("18-29", "M", 20), ("18-29", "F", 25),
           ("90+", "F", 1), ("90+", "M", 0), ("<18", "M", 3), ("<18", "F", 2), ("40-49", "U", 7)]
CENTERS = [("CTY-N1", "city", 60), ("NAT", "national", 120), ("PRV-N", "provincial", 90),
           ("PRV-S", "provincial", 70), ("CNT-S1A", "county", 25)]
CARRIERS = [("BRCA1", 37, 400), ("BRCA2", 4, 398), ("TP53", 1, 410)]
BASE = ReportData(
    name="brca1_region_carriers", description="Carriers of a non-reference call in BRCA1",
    cohort_definition_id=1, version=12, checksum="sha256:9f86d081884c7d65", built_at="2025-03-01T10:22:33Z",
    members=412, attrition=STEPS, pyramid=PYRAMID, centers=CENTERS, carriers=CARRIERS,
)
EMPTY = dataclasses.replace(BASE, members=0, attrition=[], pyramid=[], centers=[], carriers=[])
CHART_SVGS = ("attrition-svg", "pyramid-svg", "centers-by-center-svg", "centers-by-tier-svg", "carriers-svg")


class Page(HTMLParser):
    """The parts of the page the tests read: sections, svgs, bars (with their svg) and no-data texts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.svgs: dict[str, dict[str, str]] = {}
        self.bars: list[dict[str, str]] = []
        self.no_data: dict[str, str] = {}
        self._section = self._svg = self._no_data = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self._section = a["id"]
            self.sections.append(a["id"])
        elif tag == "svg":
            self._svg = a["id"]
            self.svgs[a["id"]] = a
        elif tag == "rect" and "bar" in a.get("class", "").split():
            self.bars.append({**a, "svg": self._svg})
        elif tag == "p" and a.get("class") == "no-data":
            self._no_data = self._section

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._no_data = None

    def handle_data(self, data: str) -> None:
        if self._no_data:
            self.no_data[self._no_data] = self.no_data.get(self._no_data, "") + data

    def in_svg(self, svg_id: str) -> list[dict[str, str]]:
        return [b for b in self.bars if b["svg"] == svg_id]


def test_header_cites_cohort_version_and_checksum():
    html = render_report(BASE)
    assert "<title>Cohort report: brca1_region_carriers</title>" in html
    assert "Cite as: cohort brca1_region_carriers, version 12" in html
    assert "sha256:9f86d081884c7d65" in html and "2025-03-01T10:22:33Z" in html
    assert 'data-members="412"' in html
    unversioned = render_report(dataclasses.replace(BASE, version=None))
    assert "cohort brca1_region_carriers, version not recorded" in unversioned


def test_every_chart_has_a_section_an_accessible_svg_and_axis_values():
    page = Page(render_report(BASE))
    assert page.sections == ["attrition", "pyramid", "centers", "carriers"]
    assert set(page.svgs) == set(CHART_SVGS)
    html = render_report(BASE)
    for svg_id, svg in page.svgs.items():
        chart = svg_id.removesuffix("-svg")
        assert svg["role"] == "img" and svg["aria-labelledby"] == f"{chart}-title {chart}-desc"
        assert f'<title id="{chart}-title">' in html and f'<desc id="{chart}-desc">' in html
    assert '<text class="tick" x="200.00" y="' in html  # the zero tick of the bar charts
    assert ">3,000</text>" in html and ">10%</text>" in html  # round axis maxima above 2,400 and 9.25 %


def test_attrition_bars_carry_persons_and_events_in_rule_order():
    bars = Page(render_report(BASE)).in_svg("attrition-svg")
    ordered = sorted(STEPS, key=lambda s: s.rule_sequence)
    assert [(b["data-label"], b["data-series"], int(b["data-value"])) for b in bars] == [
        (s.rule_name, series, getattr(s, series)) for s in ordered for series in ("persons", "events")]
    assert [b["data-kind"] for b in bars[::2]] == ["index", "observation", "inclusion", "exclusion", "final"]
    assert "(57.8%)" in render_report(BASE)  # 520 of the 900 index persons


def test_pyramid_sorts_bands_by_age_oldest_on_top_males_left():
    bars = Page(render_report(BASE)).in_svg("pyramid-svg")
    assert [(b["data-band"], b["data-sex"], int(b["data-value"])) for b in bars] == [
        ("90+", "M", 0), ("90+", "F", 1), ("40-49", "M", 61), ("40-49", "F", 70),
        ("18-29", "M", 20), ("18-29", "F", 25), ("<18", "M", 3), ("<18", "F", 2)]
    ys = [float(b["y"]) for b in bars[::2]]
    assert ys == sorted(ys)
    male, female = bars[2], bars[3]
    assert float(male["x"]) + float(male["width"]) <= float(female["x"])  # males end where the gutter starts
    assert "7 members of unknown sex are not drawn" in render_report(BASE)


def test_centers_grouped_by_tier_with_tier_totals():
    page = Page(render_report(BASE))
    bars = page.in_svg("centers-by-center-svg")
    centers = [(b["data-label"], b["data-tier"], int(b["data-value"])) for b in bars]
    assert centers == [("NAT", "national", 120), ("PRV-N", "provincial", 90), ("PRV-S", "provincial", 70),
                       ("CTY-N1", "city", 60), ("CNT-S1A", "county", 25)]
    totals = [(b["data-label"], int(b["data-value"])) for b in page.in_svg("centers-by-tier-svg")]
    assert totals == [("national", 120), ("provincial", 160), ("city", 60), ("county", 25)]
    fills = {b["data-tier"]: b["fill"] for b in bars}
    assert len(set(fills.values())) == 4


def test_carrier_frequency_is_carriers_over_tested_with_counts():
    page = Page(render_report(BASE))
    bars = page.in_svg("carriers-svg")
    assert [(b["data-label"], int(b["data-carriers"]), int(b["data-tested"])) for b in bars] == CARRIERS
    for b, (_, carriers, tested) in zip(bars, CARRIERS, strict=True):
        assert float(b["data-value"]) == pytest.approx(100 * carriers / tested, rel=1e-5)
    html = render_report(BASE)
    assert "37 / 400 (9.2%)" in html and "1 / 410 (0.24%)" in html


@pytest.mark.parametrize("svg_id", CHART_SVGS)
def test_bar_widths_are_proportional_to_values(svg_id):
    bars = Page(render_report(BASE)).in_svg(svg_id)
    pairs = [(float(b["data-value"]), float(b["width"])) for b in bars]
    top_value, top_width = max(pairs)
    assert top_width > 0
    for value, width in pairs:
        assert width == pytest.approx(top_width * value / top_value, abs=0.01)


def test_every_text_value_is_escaped():
    evil = dataclasses.replace(
        BASE, name='x"><script>alert(1)</script>', description="<script>alert('d')</script> & more",
        checksum="<img src=x onerror=alert(2)>", built_at="<b>now</b>",
        attrition=[AttritionStep(1, 'rule "<i>"', "index", 5, 6)], pyramid=[("<svg>", "M", 3)],
        centers=[('C"1', "<tier>", 2)], carriers=[("<GENE>", 1, 2)],
    )
    html = render_report(evil)
    assert "<script" not in html and "<img" not in html and "<b>" not in html and "<i>" not in html
    assert "&lt;script&gt;alert(&#x27;d&#x27;)&lt;/script&gt; &amp; more" in html
    assert 'data-label="rule &quot;&lt;i&gt;&quot;"' in html and 'data-label="C&quot;1"' in html
    page = Page(html)  # and the parsed attributes still carry the original text
    assert {b["data-label"] for b in page.bars} >= {'rule "<i>"', 'C"1', "<GENE>", "<svg> M"}


def test_empty_inputs_render_no_data_messages():
    page = Page(render_report(EMPTY))
    assert page.sections == ["attrition", "pyramid", "centers", "carriers"]
    assert page.bars == [] and page.svgs == {}
    assert page.no_data == {
        "attrition": "No data: no attrition steps were recorded for this cohort.",
        "pyramid": "No data: this cohort has no members.",
        "centers": "No data: no member is linked to a center.",
        "carriers": "No data: the cohort definition names no genes.",
    }
    untested = Page(render_report(
        dataclasses.replace(BASE, carriers=[("PALB2", 0, 0)], pyramid=[("40-49", "U", 4)])))
    assert untested.no_data["carriers"] == "No data: no member was genotyped for the definition's genes."
    assert untested.no_data["pyramid"] == "No data: no member has a recorded age band and sex."
    zero_step = AttritionStep(1, "none", "index", 0, 0)
    zeros = Page(render_report(dataclasses.replace(BASE, attrition=[zero_step])))
    assert [b["width"] for b in zeros.in_svg("attrition-svg")] == ["0.000", "0.000"]


def test_page_references_no_external_assets():
    for data in (BASE, EMPTY):
        html = render_report(data)
        assert not re.search(r"""\b(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
        assert not re.search(r"url\(|@import|<script|<link(?![^>]*href=\"data:)", html, re.I)
        assert "default-src 'none'" in html  # the browser refuses anything external anyway


def test_bad_numbers_fail_at_construction():
    with pytest.raises(ValueError, match="kind"):
        AttritionStep(1, "r", "included", 1, 1)
    with pytest.raises(ValueError, match="non-negative"):
        AttritionStep(1, "r", "index", -1, 1)
    with pytest.raises(ValueError, match="only 3 members tested"):
        dataclasses.replace(BASE, carriers=[("BRCA1", 4, 3)])
    with pytest.raises(ValueError, match="sex"):
        dataclasses.replace(BASE, pyramid=[("40-49", "X", 1)])


def test_write_report_creates_the_folder_and_returns_the_path(tmp_path):
    out = write_report(BASE, tmp_path / "reports" / "brca1.html")
    assert out == tmp_path / "reports" / "brca1.html"
    assert out.read_text(encoding="utf-8") == render_report(BASE)
    assert [p.name for p in out.parent.iterdir()] == ["brca1.html"]  # no temporary file left


# ---------------------------------------------------------------- a real browser


@pytest.fixture(scope="module")
def chromium():
    """Debian's Chromium under Playwright; never Playwright's own download (the network refuses it)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make tools` (it installs Debian's chromium and "
                    "chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _open(chromium, data: ReportData, tmp_path: Path):
    """The written file opened in a fresh page; returns (page, console errors, non-local requests)."""
    path = write_report(data, tmp_path / "report.html")
    page = chromium.new_page(viewport={"width": 1000, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(("file:", "data:")) else requests.append(r.url))
    page.goto(path.as_uri(), wait_until="load")
    return page, errors, requests


def test_chromium_draws_every_chart(chromium, tmp_path):
    page, errors, requests = _open(chromium, BASE, tmp_path)
    expected = Page(render_report(BASE))
    for svg_id in CHART_SVGS:
        svg = page.locator(f"#{svg_id}")
        box = svg.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, svg_id
        bars = svg.locator("rect.bar").all()
        assert len(bars) == len(expected.in_svg(svg_id)) > 0, svg_id
        drawn = [(float(b.get_attribute("data-value")), b.bounding_box()) for b in bars]
        top_value, top_box = max(drawn, key=lambda d: d[0])
        for value, bar in drawn:
            assert bar["height"] > 0 and (bar["width"] > 0) == (value > 0), (svg_id, value, bar)
            assert bar["width"] == pytest.approx(top_box["width"] * value / top_value, abs=0.5)
            assert box["x"] - 1 <= bar["x"] and bar["x"] + bar["width"] <= box["x"] + box["width"] + 1
    assert errors == [] and requests == []
    page.close()


def test_chromium_shows_no_data_messages(chromium, tmp_path):
    page, errors, requests = _open(chromium, EMPTY, tmp_path)
    messages = page.locator("p.no-data")
    assert messages.count() == 4 and all(m.is_visible() for m in messages.all())
    assert page.locator("svg").count() == 0
    assert errors == [] and requests == []
    page.close()
