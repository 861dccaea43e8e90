"""The cohort report page: one self-contained HTML file with four inline-SVG charts.

``omicslake cohort report NAME`` fills a :class:`ReportData` from the Delta tables (small
aggregates only) and calls :func:`write_report`. Rendering is pure standard library and the
page loads nothing from outside (no scripts, fonts, stylesheets or images; a Content Security
Policy refuses them), so it can be mailed, archived next to a paper or opened on a ward PC
with no network. Every bar carries its numbers as ``data-`` attributes, so tests and scrapers
read the figures from the page instead of from pixels.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from omicslake.tiers import TIERS

STEP_KINDS = ("index", "observation", "inclusion", "exclusion", "final")
SEXES = ("M", "F", "U")
NO_DATA = "No data"

# Paul Tol's colour-blind-safe palette; "city" yellow is dark enough for white gaps.
PERSONS_FILL, EVENTS_FILL = "#4477aa", "#a6c8e8"
SEX_FILL = {"M": "#4477aa", "F": "#cc6677"}
TIER_FILL = {"national": "#332288", "provincial": "#117733", "city": "#ccbb44", "county": "#aa3377"}
OTHER_FILL = "#888888"
CARRIER_FILL = "#228833"

LABEL_W, PLOT_W, VALUE_W = 200, 420, 170  # horizontal bar chart columns (px)
BAR_H, BAR_GAP, ROW_GAP, TOP, AXIS_H = 14, 2, 10, 8, 42
HALF_W, GUTTER, SIDE = 250, 64, 80  # pyramid: each side's plot, the band-label gutter, margins


def _count(what: str, value: int) -> None:
    """Counts come from SQL aggregates; a negative or non-integer one is a bug upstream."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True)
class AttritionStep:
    """One rule of the cohort definition, in the order it is applied, and who is left after it."""

    rule_sequence: int
    rule_name: str
    kind: str  # one of STEP_KINDS: 'index' | 'observation' | 'inclusion' | 'exclusion' | 'final'
    persons: int  # distinct persons left after this rule
    events: int  # qualifying events (index dates) left after this rule

    def __post_init__(self) -> None:
        if self.kind not in STEP_KINDS:
            raise ValueError(f"attrition kind must be one of {STEP_KINDS}, got {self.kind!r}")
        _count(f"persons of rule {self.rule_name!r}", self.persons)
        _count(f"events of rule {self.rule_name!r}", self.events)


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows: a few hundred numbers at most, aggregated by Spark beforehand.

    ``pyramid`` rows are ``(age band, sex, persons)`` with bands like ``'40-49'``, ``'<18'`` or
    ``'90+'`` and sex ``'M'``, ``'F'`` or ``'U'`` (unknown: counted in a note, not drawn);
    ``centers`` rows are ``(center_id, tier, persons)``; ``carriers`` rows are
    ``(gene, carriers, members genotyped for that gene)``, drawn in the order given (the
    definition's). Repeated keys are summed."""

    name: str
    description: str
    cohort_definition_id: int
    version: int | None  # Delta version of gold.cohort the numbers were read at
    checksum: str  # checksum of the cohort definition
    built_at: str  # when the membership was built (ISO 8601, as stored)
    members: int
    attrition: list[AttritionStep] = field(default_factory=list)
    pyramid: list[tuple[str, str, int]] = field(default_factory=list)
    centers: list[tuple[str, str, int]] = field(default_factory=list)
    carriers: list[tuple[str, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        _count("members", self.members)
        for band, sex, persons in self.pyramid:
            if sex not in SEXES:
                raise ValueError(f"pyramid sex must be one of {SEXES}, got {sex!r} (band {band!r})")
            _count(f"persons in band {band!r} sex {sex}", persons)
        for center, _tier, persons in self.centers:
            _count(f"persons at center {center!r}", persons)
        for gene, carriers, tested in self.carriers:
            _count(f"carriers of {gene!r}", carriers)
            _count(f"members tested for {gene!r}", tested)
            if carriers > tested:
                raise ValueError(f"{gene}: {carriers} carriers but only {tested} members tested")


@dataclass(frozen=True)
class _Bar:
    """One drawn bar: its value on the axis, colour, the text beside it and its data- attributes."""

    value: float
    fill: str
    text: str
    data: dict[str, str]


# ---------------------------------------------------------------- small SVG helpers


def _fmt(n: float) -> str:
    """Counts with thousands separators; fractional values to at most 2 decimals."""
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}".rstrip("0").rstrip(".")


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def _clip(text: str, limit: int = 30) -> str:
    """Long names are cut on the chart (the full name stays in the bar's tooltip)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _attrs(data: dict[str, str]) -> str:
    return " ".join(f'data-{k}="{escape(v)}"' for k, v in data.items())


def _ticks(vmax: float, integer: bool = True) -> list[float]:
    """At most ~5 round ticks (1, 2 or 5 times a power of ten) covering ``vmax``."""
    if vmax <= 0:
        return [0.0, 1.0]
    raw = vmax / 4
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    step = max(step, 1.0) if integer else step
    return [round(i * step, 10) for i in range(math.ceil(vmax / step - 1e-9) + 1)]


def _svg(chart_id: str, title: str, desc: str, width: float, height: float, body: str) -> str:
    """An accessible SVG: role=img, labelled by its own <title> and <desc>."""
    return (
        f'<svg id="{chart_id}-svg" class="chart-svg" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'aria-labelledby="{chart_id}-title {chart_id}-desc">'
        f'<title id="{chart_id}-title">{escape(title)}</title>'
        f'<desc id="{chart_id}-desc">{escape(desc)}</desc>{body}</svg>'
    )


def _axis(x0: float, y: float, width: float, ticks: list[float], grid_h: float,
          fmt: Callable[[float], str], mirror: bool = False) -> str:
    """Grid lines, tick labels and a base line; ``mirror`` runs the values right to left."""
    top, parts = ticks[-1], [f'<line class="axis" x1="{x0}" y1="{y}" x2="{x0 + width}" y2="{y}"/>']
    for t in ticks:
        x = x0 + (width * (1 - t / top) if mirror else width * t / top)
        parts.append(f'<line class="grid" x1="{x:.2f}" y1="{y - grid_h:.2f}" x2="{x:.2f}" y2="{y}"/>')
        parts.append(f'<text class="tick" x="{x:.2f}" y="{y + 14}" text-anchor="middle">'
                     f'{escape(fmt(t))}</text>')
    return "".join(parts)


def _row_label(label: str, x: float, y_mid: float) -> str:
    """A row's name, cut to fit; a second line after a newline is drawn smaller (e.g. the rule kind)."""
    name, _, sub = label.partition("\n")
    if not sub:
        return (f'<text class="label" x="{x}" y="{y_mid + 4:.1f}" text-anchor="end">'
                f'{escape(_clip(name))}<title>{escape(name)}</title></text>')
    return (f'<text class="label" x="{x}" y="{y_mid - 2:.1f}" text-anchor="end">{escape(_clip(name))}'
            f'<title>{escape(name)}</title></text><text class="sublabel" x="{x}" y="{y_mid + 11:.1f}" '
            f'text-anchor="end">{escape(_clip(sub))}</text>')


def _hbars(chart_id: str, title: str, desc: str, rows: list[tuple[str, list[_Bar]]],
           axis_label: str, fmt: Callable[[float], str] = _fmt, integer: bool = True) -> str:
    """Horizontal bars, one or more per labelled row, all on one linear axis from zero."""
    ticks = _ticks(max((b.value for _, bars in rows for b in bars), default=0), integer)
    x0, y = LABEL_W, TOP
    parts = []
    for label, bars in rows:
        row_h = max(len(bars), 1) * (BAR_H + BAR_GAP) - BAR_GAP
        parts.append(_row_label(label, x0 - 8, y + row_h / 2))
        for bar in bars:
            w = PLOT_W * bar.value / ticks[-1]
            parts.append(f'<rect class="bar" x="{x0}" y="{y}" width="{w:.3f}" height="{BAR_H}" '
                         f'fill="{bar.fill}" {_attrs(bar.data)}><title>{escape(label)}: '
                         f'{escape(bar.text)}</title></rect>')
            parts.append(f'<text class="value" x="{x0 + w + 4:.2f}" y="{y + BAR_H - 3}">'
                         f'{escape(bar.text)}</text>')
            y += BAR_H + BAR_GAP
        y += ROW_GAP - BAR_GAP
    axis = _axis(x0, y, PLOT_W, ticks, y - TOP + 4, fmt)
    caption = (f'<text class="axis-label" x="{x0 + PLOT_W / 2}" y="{y + 34}" '
               f'text-anchor="middle">{escape(axis_label)}</text>')
    width = LABEL_W + PLOT_W + VALUE_W
    return _svg(chart_id, title, desc, width, y + AXIS_H, axis + "".join(parts) + caption)


def _section(chart_id: str, heading: str, note: str, body: str) -> str:
    return (f'<section id="{chart_id}" class="chart" aria-labelledby="{chart_id}-h">'
            f'<h2 id="{chart_id}-h">{escape(heading)}</h2><p class="note">{escape(note)}</p>{body}</section>')


def _no_data(reason: str) -> str:
    return f'<p class="no-data" role="status">{NO_DATA}: {escape(reason)}</p>'


def _legend(items: Iterable[tuple[str, str]]) -> str:
    lis = "".join(f'<li><span class="swatch" style="background:{fill}"></span>{escape(name)}</li>'
                  for name, fill in items)
    return f'<ul class="legend">{lis}</ul>'


def _fmt_pct(p: float) -> str:
    """Carrier frequencies are often below 1 %: keep two significant digits there."""
    return f"{p:.2g}%" if 0 < p < 1 else f"{p:.1f}%"


def _summed(rows: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """Sum repeated keys, keeping first-seen order (the caller's order is meaningful)."""
    out: dict[tuple[str, str], int] = {}
    for a, b, n in rows:
        out[(a, b)] = out.get((a, b), 0) + n
    return out


def _band_key(band: str) -> tuple[int, float, str]:
    """'<18' before '18-29' before '90+'; bands with no number (e.g. 'unknown') last."""
    m = re.search(r"\d+", band)
    if not m:
        return (1, 0.0, band)
    return (0, int(m.group()) - (0.5 if band.lstrip().startswith("<") else 0.0), band)


# ---------------------------------------------------------------- the four charts


def attrition_chart(steps: list[AttritionStep]) -> str:
    """Persons and events left after each rule, in rule order; % of the index persons kept."""
    cid, heading = "attrition", "Attrition by rule"
    note = "Persons and qualifying events left after each rule, applied in sequence."
    if not steps:
        return _section(cid, heading, note, _no_data("no attrition steps were recorded for this cohort."))
    steps = sorted(steps, key=lambda s: s.rule_sequence)
    base = steps[0].persons
    rows = []
    for s in steps:
        common = {"label": s.rule_name, "kind": s.kind, "sequence": str(s.rule_sequence)}
        rows.append((f"{s.rule_sequence}. {s.rule_name}\n{s.kind}", [
            _Bar(s.persons, PERSONS_FILL, f"{_fmt(s.persons)} persons ({_pct(s.persons, base):.1f}%)",
                 {**common, "series": "persons", "value": str(s.persons)}),
            _Bar(s.events, EVENTS_FILL, f"{_fmt(s.events)} events",
                 {**common, "series": "events", "value": str(s.events)}),
        ]))
    desc = "; ".join(f"{s.rule_name}: {s.persons} persons, {s.events} events" for s in steps)
    svg = _hbars(cid, heading, desc, rows, "persons / events left after the rule")
    return _section(cid, heading, note, _legend([("persons", PERSONS_FILL), ("events", EVENTS_FILL)]) + svg)


def _pyramid_bar(band: str, sex: str, n: int, scale: float, zero: float, y: float) -> str:
    """One side of a pyramid row: males grow leftwards from ``zero``, females rightwards."""
    w = HALF_W * n / scale
    x, tx, anchor = (zero - w, zero - w - 4, "end") if sex == "M" else (zero, zero + w + 4, "start")
    data = _attrs({"label": f"{band} {sex}", "band": band, "sex": sex, "value": str(n)})
    return (f'<rect class="bar" x="{x:.3f}" y="{y}" width="{w:.3f}" height="{BAR_H}" fill="{SEX_FILL[sex]}" '
            f'{data}><title>{escape(band)}, {"male" if sex == "M" else "female"}: {_fmt(n)}</title></rect>'
            f'<text class="value" x="{tx:.2f}" y="{y + BAR_H - 3}" text-anchor="{anchor}">{_fmt(n)}</text>')


def _pyramid_svg(bands: list[str], counts: dict[tuple[str, str], int]) -> str:
    """Oldest band on top, a shared scale for both sexes so the two sides compare."""
    ticks = _ticks(max(counts.get((b, s), 0) for b in bands for s in "MF"))
    left0, right0 = SIDE + HALF_W, SIDE + HALF_W + GUTTER
    parts = [f'<text class="side" x="{x}" y="{TOP + 10}" text-anchor="middle">{side}</text>'
             for x, side in ((left0 - HALF_W / 2, "Male"), (right0 + HALF_W / 2, "Female"))]
    y = TOP + 20
    for band in reversed(bands):
        parts.append(f'<text class="label" x="{left0 + GUTTER / 2}" y="{y + BAR_H - 3}" '
                     f'text-anchor="middle">{escape(_clip(band, 9))}</text>')
        parts += [_pyramid_bar(band, s, counts.get((band, s), 0), ticks[-1], z, y)
                  for s, z in (("M", left0), ("F", right0))]
        y += BAR_H + 4
    grid = y - TOP - 16
    axes = _axis(SIDE, y, HALF_W, ticks, grid, _fmt, mirror=True)
    axes += _axis(right0, y, HALF_W, ticks, grid, _fmt)
    caption = (f'<text class="axis-label" x="{left0 + GUTTER / 2}" y="{y + 34}" text-anchor="middle">'
               f'persons by age band (years)</text>')
    desc = "; ".join(f"{b}: {counts.get((b, 'M'), 0)} male, {counts.get((b, 'F'), 0)} female" for b in bands)
    width = 2 * (SIDE + HALF_W) + GUTTER
    return _svg("pyramid", "Age and sex pyramid", desc, width, y + AXIS_H, axes + "".join(parts) + caption)


def pyramid_chart(rows: list[tuple[str, str, int]], members: int) -> str:
    """Males left, females right, one row per age band; unknown sex is counted in the note."""
    cid, heading = "pyramid", "Age and sex"
    counts = _summed(rows)
    unknown = sum(n for (_, s), n in counts.items() if s == "U")
    note = "Members by age band at cohort entry, males left and females right."
    if unknown:
        note += f" {_fmt(unknown)} members of unknown sex are not drawn."
    bands = sorted({b for (b, s), n in counts.items() if s in "MF" and n}, key=_band_key)
    if not bands:
        why = "this cohort has no members." if not members else "no member has a recorded age band and sex."
        return _section(cid, heading, note, _no_data(why))
    legend = _legend([("male", SEX_FILL["M"]), ("female", SEX_FILL["F"])])
    return _section(cid, heading, note, legend + _pyramid_svg(bands, counts))


def _tier_order(tier: str) -> tuple[int, str]:
    return (TIERS.index(tier), "") if tier in TIERS else (len(TIERS), tier)


def centers_chart(rows: list[tuple[str, str, int]]) -> str:
    """Members per center, coloured and grouped by tier (national first), then tier totals."""
    cid, heading = "centers", "Centers and tiers"
    note = "Members per center and per tier; a member sampled at several centers counts at each."
    counts = {k: n for k, n in _summed(rows).items() if n}
    if not counts:
        return _section(cid, heading, note, _no_data("no member is linked to a center."))
    order = sorted(counts, key=lambda k: (_tier_order(k[1]), -counts[k], k[0]))
    by_center = [(c, [_Bar(counts[(c, t)], TIER_FILL.get(t, OTHER_FILL), f"{_fmt(counts[(c, t)])} ({t})",
                           {"label": c, "tier": t, "series": "center", "value": str(counts[(c, t)])})])
                 for c, t in order]
    totals: dict[str, int] = {}
    for (_, t), n in counts.items():
        totals[t] = totals.get(t, 0) + n
    tiers = sorted(totals, key=_tier_order)
    by_tier = [(t, [_Bar(totals[t], TIER_FILL.get(t, OTHER_FILL), _fmt(totals[t]),
                         {"label": t, "tier": t, "series": "tier", "value": str(totals[t])})]) for t in tiers]
    legend = _legend((t, TIER_FILL.get(t, OTHER_FILL)) for t in tiers)
    svg1 = _hbars("centers-by-center", "Members per center", "; ".join(
        f"{c} ({t}): {counts[(c, t)]}" for c, t in order), by_center, "members")
    svg2 = _hbars("centers-by-tier", "Members per tier (total)", "; ".join(
        f"{t}: {totals[t]}" for t in tiers), by_tier, "members")
    return _section(cid, heading, note, legend + svg1 + '<h3>Tier totals</h3>' + svg2)


def carriers_chart(rows: list[tuple[str, int, int]]) -> str:
    """Carrier frequency per gene of the definition: carriers / members genotyped, with counts."""
    cid, heading = "carriers", "Carrier frequency"
    note = "Members carrying a non-reference call in each gene of the definition, of those genotyped."
    genes: dict[str, list[int]] = {}
    for gene, carriers, tested in rows:
        c, t = genes.setdefault(gene, [0, 0])
        genes[gene] = [c + carriers, t + tested]
    if not genes:
        return _section(cid, heading, note, _no_data("the cohort definition names no genes."))
    untested = [g for g, (_, t) in genes.items() if not t]
    if untested:
        note += f" Not genotyped in any member: {', '.join(untested)}."
    drawn = [(g, c, t) for g, (c, t) in genes.items() if t]
    if not drawn:
        return _section(cid, heading, note, _no_data("no member was genotyped for the definition's genes."))
    bars = [(g, [_Bar(_pct(c, t), CARRIER_FILL, f"{_fmt(c)} / {_fmt(t)} ({_fmt_pct(_pct(c, t))})",
                      {"label": g, "value": f"{_pct(c, t):.6g}", "carriers": str(c), "tested": str(t)})])
            for g, c, t in drawn]
    desc = "; ".join(f"{g}: {c} carriers of {t} genotyped" for g, c, t in drawn)
    svg = _hbars(cid, heading, desc, bars, "carriers, % of members genotyped",
                 fmt=lambda v: f"{v:g}%", integer=False)
    return _section(cid, heading, note, svg)


# ---------------------------------------------------------------- the page

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:860px;
 padding:1.5rem;color:#1d1d1f;background:#fff}
h1{font-size:1.5rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:0 0 .2rem}
h3{font-size:1rem;margin:1rem 0 .2rem}.description{margin:.2rem 0 .8rem}
.citation{background:#f4f6f8;border-left:3px solid #4477aa;padding:.4rem .7rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.6rem 0}
dt{color:#555}dd{margin:0}code{overflow-wrap:anywhere}
section.chart{border-top:1px solid #ddd;padding:1rem 0}.note{color:#555;margin:.1rem 0 .5rem}
.no-data{padding:1rem;background:#fafafa;border:1px dashed #bbb;color:#444}
svg.chart-svg{display:block;max-width:100%;height:auto;overflow:visible}
svg text{font-size:12px;fill:#1d1d1f}svg text.tick,svg text.sublabel{fill:#555;font-size:11px}
svg text.side,svg text.axis-label{font-weight:600}svg line.grid{stroke:#e3e3e3}svg line.axis{stroke:#888}
ul.legend{list-style:none;padding:0;margin:.2rem 0 .4rem;display:flex;gap:1rem;flex-wrap:wrap}
.swatch{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:-1px}
"""


def _header(d: ReportData) -> str:
    """Name, description and the facts needed to cite exactly this membership."""
    version = "version not recorded" if d.version is None else f"version {d.version}"
    cite = (f"Cite as: cohort {d.name}, {version} (the Delta version of gold.cohort; definition "
            f"{d.cohort_definition_id}, checksum {d.checksum}; built {d.built_at}).")
    facts = [("Definition", f"{d.cohort_definition_id}"), ("Definition checksum", d.checksum),
             ("gold.cohort version", "not recorded" if d.version is None else str(d.version)),
             ("Built", d.built_at), ("Members", _fmt(d.members))]
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    return (f'<header><h1>Cohort report: {escape(d.name)}</h1>'
            f'<p class="description">{escape(d.description)}</p>'
            f'<p class="citation" data-version="{escape(str(d.version))}">{escape(cite)}</p>'
            f'<dl class="facts" data-members="{d.members}">{dl}</dl></header>')


def render_report(data: ReportData) -> str:
    """The whole page as one string: header, then attrition, pyramid, centers and carriers."""
    body = "".join([
        _header(data),
        attrition_chart(data.attrition),
        pyramid_chart(data.pyramid, data.members),
        centers_chart(data.centers),
        carriers_chart(data.carriers),
    ])
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>Cohort report: {escape(data.name)}</title>'
            f'<style>{CSS}</style></head><body><main>{body}</main>'
            f'<footer class="note">Generated by omicslake from gold.cohort.</footer></body></html>\n')


def write_report(data: ReportData, path: Path) -> Path:
    """Write the page atomically (a reader never sees half a file) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(data), encoding="utf-8")
    os.replace(tmp, path)
    return path
