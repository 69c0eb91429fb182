"""Server-made SVG charts: a bar per day, with a title per bar for screen readers and hover.

A few lines of our own rather than a charting package: the pages need one kind of chart,
drawn without script, and its numbers are always in a table beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from markupsafe import Markup, escape

WIDTH, HEIGHT = 900, 220
PAD_LEFT, PAD_BOTTOM, PAD_TOP = 40, 24, 12


def _nice_max(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten at or above value (at least 1)."""
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def daily_bars(days: Sequence[tuple[date, int]], label: str) -> Markup:
    """An SVG bar chart of one count per day."""
    top = _nice_max(max((v for _, v in days), default=0))
    plot_w = WIDTH - PAD_LEFT
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    slot = plot_w / max(len(days), 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH}" y2="{PAD_TOP + plot_h}" '
        'stroke="#888" stroke-width="1"/>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + 8}" text-anchor="end" font-size="13" '
        f'fill="#444">{top}</text>',
        f'<text x="{PAD_LEFT - 4}" y="{PAD_TOP + plot_h}" text-anchor="end" font-size="13" '
        'fill="#444">0</text>',
    ]
    for i, (d, value) in enumerate(days):
        h = plot_h * value / top
        x = PAD_LEFT + i * slot + slot * 0.15
        y = PAD_TOP + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
            f'fill="#2b6cb0"><title>{d.isoformat()}: {value}</title></rect>'
        )
        if i % 7 == 0 or (i == len(days) - 1 and i % 7 > 2):
            parts.append(
                f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - 6}" text-anchor="middle" '
                f'font-size="13" fill="#444">{d.strftime("%b %d")}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
