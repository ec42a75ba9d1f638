"""Server-rendered SVG charts: no JavaScript, no CDN. Each returns safe markup with a title for
screen readers; values are formatted by the caller's `fmt`."""

from __future__ import annotations

from typing import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

PALETTE = ["#2f6fde", "#1f7a4d", "#c2571a", "#8a3ffc", "#b3261e", "#0f7c8a", "#9a6400", "#5b6577"]
WIDTH, HEIGHT = 560, 240
LEFT, RIGHT, TOP, BOTTOM = 60, 28, 14, 34


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _nice_max(value: float, floor: float = 4) -> float:
    """A round axis maximum, four equal whole steps of 1, 2 or 5 × 10^k, at least `value` and `floor`."""
    import math

    raw_step = max(value, floor) / 4
    magnitude = 10 ** math.floor(math.log10(raw_step))
    for multiple in (1, 2, 5, 10):
        if multiple * magnitude >= raw_step:
            return 4 * max(multiple * magnitude, 1)
    return 4 * 10 * magnitude


def _axes(maximum: float, fmt: Callable[[float], str]) -> list[str]:
    parts = []
    plot_h = HEIGHT - TOP - BOTTOM
    for k in range(5):
        v = maximum * k / 4
        y = TOP + plot_h - plot_h * k / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ef"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(v))}</text>')
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float]) -> list[str]:
    every = max(1, -(-len(labels) // 6))
    last = len(labels) - 1
    return [f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{escape(label)}</text>'
            for i, (label, x) in enumerate(zip(labels, xs)) if (last - i) % every == 0]


def _svg(title: str, parts: list[str], height: int = HEIGHT) -> SafeString:
    body = "".join(parts)
    return mark_safe(
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{body}</svg>'
    )


def line_chart(*, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
               fmt: Callable[[float], str] = lambda v: f"{v:,.0f}", floor: float = 4) -> SafeString:
    maximum = _nice_max(max((max(values, default=0) for _, values in series), default=0), floor)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    xs = [LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]
    parts = _axes(maximum, fmt) + _x_labels(labels, xs)
    for s, (name, values) in enumerate(series):
        points = " ".join(f"{xs[i]:.1f},{TOP + plot_h - plot_h * v / maximum:.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline fill="none" stroke="{color(s)}" stroke-width="2.5" points="{points}">'
                     f'<title>{escape(name)}</title></polyline>')
        for i, v in enumerate(values):
            y = TOP + plot_h - plot_h * v / maximum
            parts.append(f'<circle cx="{xs[i]:.1f}" cy="{y:.1f}" r="3" fill="{color(s)}">'
                         f'<title>{escape(name)}, {escape(labels[i])}: {escape(fmt(v))}</title></circle>')
    return _svg(title, parts)


def bar_chart(*, title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]],
              fmt: Callable[[float], str] = lambda v: f"{v:,.0f}", stacked: bool = False,
              floor: float = 4) -> SafeString:
    """Grouped (or stacked) vertical bars, one group per label."""
    if stacked:
        totals = [sum(values[i] for _, values in series) for i in range(len(labels))]
        maximum = _nice_max(max(totals, default=0), floor)
    else:
        maximum = _nice_max(max((max(values, default=0) for _, values in series), default=0), floor)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(labels), 1)
    slot = plot_w / n
    inner = slot * 0.75
    bar_w = inner if stacked else inner / max(len(series), 1)
    xs = [LEFT + slot * i + slot / 2 for i in range(n)]
    parts = _axes(maximum, fmt) + _x_labels(labels, xs)
    for i in range(n):
        base = TOP + plot_h
        for s, (name, values) in enumerate(series):
            v = values[i]
            h = plot_h * v / maximum
            if stacked:
                x, y = xs[i] - inner / 2, base - h
                base -= h
            else:
                x, y = xs[i] - inner / 2 + s * bar_w, TOP + plot_h - h
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
                         f'fill="{color(s)}"><title>{escape(name)}, {escape(labels[i])}: {escape(fmt(v))}</title></rect>')
    return _svg(title, parts)


def hbar_chart(*, title: str, items: Sequence[tuple[str, float, str]]) -> SafeString:
    """Horizontal bars: (label, value, value as text)."""
    row = 26
    height = max(len(items), 1) * row + 10
    label_w = 150
    maximum = max((v for _, v, _ in items), default=0) or 1
    plot_w = WIDTH - label_w - 90
    parts = []
    for i, (label, value, text) in enumerate(items):
        y = 6 + i * row
        w = plot_w * value / maximum
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row - 8}" rx="3" '
                     f'fill="{color(i)}"><title>{escape(label)}: {escape(text)}</title></rect>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 15}">{escape(text)}</text>')
    if not items:
        parts.append(f'<text x="{WIDTH / 2}" y="24" text-anchor="middle">No data yet</text>')
    return _svg(title, parts, height=height)
