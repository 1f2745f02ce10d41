"""Small charts drawn on the server as inline SVG: no script, no external asset, nothing for a
browser to fetch. Pure functions from numbers to markup; every text is escaped.

``time_chart`` draws series of (time, value) points over a fixed time window: a line for a
quantity that evolves (the database's size), dots for events that each have a value (a backup's
duration), with the value axis from zero to a round maximum and the time axis in days or hours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

WIDTH, HEIGHT = 560, 180
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 24, 28
PALETTE = ("#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#64748b")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    """(Unix time, value), oldest first."""
    dots: bool = False
    """Dots (one per event) instead of a line."""


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 × 10ⁿ at or above ``value`` (1 for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def time_ticks(start: float, end: float) -> list[tuple[float, str]]:
    """Tick positions and labels: midnights (UTC) for a window of days, every few hours for a
    shorter one."""
    span = end - start
    if span > 2 * 86400:
        step = 86400.0
    elif span > 12 * 3600:
        step = 6 * 3600.0
    elif span > 3 * 3600:
        step = 3600.0
    else:
        step = 900.0
    first = math.ceil(start / step) * step
    ticks = []
    at = first
    while at <= end:
        moment = datetime.fromtimestamp(at, UTC)
        label = moment.strftime("%b %d") if step >= 86400 else moment.strftime("%H:%M")
        ticks.append((at, label))
        at += step
    return ticks


def time_chart(
    title: str,
    series: Sequence[Series],
    start: float,
    end: float,
    unit: Callable[[float], str],
    empty: str = "no data yet",
) -> str:
    """An ``<svg>`` (with ``role="img"`` and a ``<title>``) of ``series`` between ``start`` and
    ``end``; ``unit`` formats a value for the axis."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    values = [v for s in series for _, v in s.points]
    top = nice_ceiling(max(values, default=0.0))
    span = max(end - start, 1.0)

    def x(at: float) -> float:
        return LEFT + (min(max(at, start), end) - start) / span * plot_w

    def y(value: float) -> float:
        return TOP + plot_h - (max(value, 0.0) / top) * plot_h

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#f8fafc" '
        'stroke="#cbd5e1"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        level = TOP + plot_h - fraction * plot_h
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{level:.1f}" y2="{level:.1f}" '
            'stroke="#e2e8f0"/>'
            f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#475569">{escape(unit(top * fraction))}</text>'
        )
    for at, label in time_ticks(start, end):
        parts.append(
            f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" '
            'stroke="#94a3b8"/>'
            f'<text x="{x(at):.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="11" '
            f'fill="#475569">{escape(label)}</text>'
        )
    if not values:
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" '
            f'font-size="13" fill="#64748b">{escape(empty)}</text>'
        )
    for index, one in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        if one.dots:
            for at, value in one.points:
                parts.append(
                    f'<circle cx="{x(at):.1f}" cy="{y(value):.1f}" r="3" fill="{colour}">'
                    f"<title>{escape(one.name)}: {escape(unit(value))}</title></circle>"
                )
        elif one.points:
            path = " ".join(f"{px},{py:.1f}" for px, py in _per_pixel(one.points, x, y))
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
    legend_x = LEFT + 4
    for index, one in enumerate(series if len(series) > 1 else ()):
        colour = PALETTE[index % len(PALETTE)]
        parts.append(
            f'<circle cx="{legend_x}" cy="10" r="4" fill="{colour}"/>'
            f'<text x="{legend_x + 8}" y="14" font-size="11" fill="#334155">'
            f"{escape(one.name)}</text>"
        )
        legend_x += 14 + 7 * len(one.name)
    parts.append("</svg>")
    return "".join(parts)


def _per_pixel(
    points: Sequence[tuple[float, float]],
    x: Callable[[float], float],
    y: Callable[[float], float],
) -> list[tuple[int, float]]:
    """A line's points, one per pixel column (the newest in each): a week of samples is more
    points than the chart is wide."""
    columns: dict[int, float] = {}
    for at, value in points:
        columns[round(x(at))] = y(value)
    return sorted(columns.items())


def megabytes(value: float) -> str:
    mb = value / (1024 * 1024)
    return f"{mb / 1024:.3g} GB" if mb >= 1000 else f"{mb:.3g} MB"


def seconds(value: float) -> str:
    return f"{value:.0f} s" if value >= 100 else f"{value:.2g} s"
