"""Bar charts drawn on the server as SVG (no JavaScript): one group of bars per day,
one colour per series, every label escaped.  The numbers are shown beside the chart in a
table by the page, so the picture is never the only way to read them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 720, 220
LEFT, BOTTOM, TOP = 40, 28, 12
COLOURS = ("#1f5fa8", "#b3261e", "#8a9199", "#1e6b35")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """``labels`` (days) along the bottom, one bar per series for each."""
    top = max([v for s in series for v in s.values] + [1])
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(labels), 1)
    bar = max(slot * 0.8 / max(len(series), 1), 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'role="img" aria-label="{escape(title)}" class="chart">',
             f"<title>{escape(title)}</title>",
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" '
             'stroke="#5c6670"/>',
             f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end" font-size="11">{top}</text>',
             f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>']
    every = max(1, len(labels) // 10)
    for i, label in enumerate(labels):
        x0 = LEFT + i * slot + slot * 0.1
        for k, s in enumerate(series):
            value = s.values[i] if i < len(s.values) else 0
            h = plot_h * value / top
            parts.append(f'<rect x="{x0 + k * bar:.1f}" y="{TOP + plot_h - h:.1f}" '
                         f'width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{COLOURS[k % len(COLOURS)]}">'
                         f"<title>{escape(s.name)} {escape(label)}: {value}</title></rect>")
        if i % every == 0:
            parts.append(f'<text x="{LEFT + i * slot + slot / 2:.1f}" y="{HEIGHT - 8}" '
                         f'text-anchor="middle" font-size="11">{escape(label[5:])}</text>')
    for k, s in enumerate(series):
        parts.append(f'<rect x="{LEFT + 10 + k * 130}" y="2" width="10" height="10" '
                     f'fill="{COLOURS[k % len(COLOURS)]}"/><text x="{LEFT + 24 + k * 130}" '
                     f'y="11" font-size="11">{escape(s.name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def by_day(days: Sequence[str], rows: Sequence[Mapping[str, object]], key: str) -> list[int]:
    """The sum of ``key`` per day (rows with a ``date``), in the order of ``days``."""
    totals = dict.fromkeys(days, 0)
    for r in rows:
        day, value = str(r["date"]), r[key]
        if day in totals and isinstance(value, int):
            totals[day] += value
    return [totals[d] for d in days]
