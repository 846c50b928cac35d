"""Server-rendered SVG charts: a line chart, horizontal bars, and points with intervals.

No JavaScript and nothing fetched: each chart is one ``<svg>`` element built here. Every label (a
behavior's name, a dataset's) goes through ``markupsafe.escape``; numbers are formatted by us. The
result is ``Markup`` so a template shows it as it is, and only this module builds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

__all__ = ["Series", "bars", "lines", "points"]

_W, _H = 640, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 40
_COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")


@dataclass(frozen=True)
class Series:
    """One line or set of points: ``ys[i]`` at ``xs[i]``; ``lows``/``highs`` draw an interval per point."""

    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    lows: Sequence[float] | None = None
    highs: Sequence[float] | None = None
    notes: Sequence[str] | None = None  # a short label beside each point (a budget)


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    span = (hi - lo) or 1.0
    return lo, (b - a) / span


def _frame(title: str, body: list[str], legend: Sequence[str]) -> Markup:
    items = "".join(
        f'<text x="{_LEFT + 8 + 150 * i}" y="{_H - 6}" fill="{_COLORS[i % len(_COLORS)]}" font-size="11">'
        f"■ {escape(label)}</text>"
        for i, label in enumerate(legend)
    )
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(body)}{items}</svg>'
    )


def _axes(x_lo: float, x_hi: float, y_lo: float, y_hi: float, x_labels: Sequence[str] | None = None) -> list[str]:
    out = [
        f'<line x1="{_LEFT}" y1="{_H - _BOTTOM}" x2="{_W - _RIGHT}" y2="{_H - _BOTTOM}" stroke="#888"/>',
        f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_H - _BOTTOM}" stroke="#888"/>',
    ]
    for i in range(5):
        value = y_lo + (y_hi - y_lo) * i / 4
        y = _H - _BOTTOM - (_H - _TOP - _BOTTOM) * i / 4
        out.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_fmt(value)}</text>')
        out.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_W - _RIGHT}" y2="{y:.1f}" stroke="#eee"/>')
    if x_labels is None:
        x_labels = [_fmt(x_lo + (x_hi - x_lo) * i / 4) for i in range(5)]
    n = len(x_labels)
    for i, label in enumerate(x_labels):
        x = _LEFT + (_W - _LEFT - _RIGHT) * (i / (n - 1) if n > 1 else 0.5)
        out.append(
            f'<text x="{x:.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle" font-size="10">{escape(label)}</text>'
        )
    return out


def lines(title: str, series: Sequence[Series], *, x_labels: Sequence[str] | None = None) -> Markup:
    """Lines over the same x positions (0..n-1 when ``x_labels`` name them, e.g. days)."""
    xs = [x for s in series for x in s.xs] or [0.0]
    ys = [y for s in series for y in s.ys] or [0.0]
    x_lo, x_hi = min(xs), max(xs)
    if x_lo == x_hi:  # one day alone sits in the middle, under its label
        x_lo, x_hi = x_lo - 1, x_hi + 1
    y_hi = max(max(ys), 1.0)
    x0, xk = _scale(x_lo, x_hi, _LEFT, _W - _RIGHT)
    _, yk = _scale(0.0, y_hi, _TOP, _H - _BOTTOM)
    body = _axes(x_lo, x_hi, 0.0, y_hi, _thin(x_labels) if x_labels else None)
    for i, s in enumerate(series):
        pairs = zip(s.xs, s.ys, strict=True)
        pts = " ".join(f"{_LEFT + (x - x0) * xk:.1f},{_H - _BOTTOM - y * yk:.1f}" for x, y in pairs)
        color = _COLORS[i % len(_COLORS)]
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{pts}"/>')
        if len(s.xs) <= 40:  # a point per value, so one day alone still shows
            for xy in pts.split():
                cx, cy = xy.split(",")
                body.append(f'<circle cx="{cx}" cy="{cy}" r="3" fill="{color}"/>')
    return _frame(title, body, [s.label for s in series])


def _thin(labels: Sequence[str], most: int = 6) -> list[str]:
    """At most ``most`` labels spread over the axis (the first and the last kept)."""
    if len(labels) <= most:
        return list(labels)
    step = (len(labels) - 1) / (most - 1)
    return [labels[round(i * step)] for i in range(most)]


def bars(title: str, items: Sequence[tuple[str, float]], *, unit: str = "") -> Markup:
    """Horizontal bars, one per ``(label, value)``, longest first as given."""
    height = 22 * max(len(items), 1) + 20
    top = max((v for _, v in items), default=1.0) or 1.0
    label_w, width = 260, _W - 260 - 60
    body = []
    for i, (label, value) in enumerate(items):
        y = 10 + 22 * i
        w = width * value / top
        shown = label if len(label) <= 40 else label[:39] + "…"
        body.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="11">{escape(shown)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="16" fill="{_COLORS[0]}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11">{_fmt(value)}{escape(unit)}</text>'
        )
    return Markup(
        f'<svg class="chart" role="img" viewBox="0 0 {_W} {height}" width="{_W}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def points(
    title: str,
    series: Sequence[Series],
    *,
    y_lo: float = 0.0,
    y_hi: float = 1.0,
    x_title: str = "",
    y_title: str = "",
) -> Markup:
    """Points joined in order, with vertical intervals (accuracy with its 95% interval against mean
    output tokens, one point per budget: ``bmem eval plot``'s left panel)."""
    xs = [x for s in series for x in s.xs] or [0.0]
    pad = (max(xs) - min(xs)) * 0.08 or 1.0
    x_lo, x_hi = min(xs) - pad, max(xs) + pad
    x0, xk = _scale(x_lo, x_hi, _LEFT, _W - _RIGHT)
    _, yk = _scale(y_lo, y_hi, _TOP, _H - _BOTTOM)
    body = _axes(x_lo, x_hi, y_lo, y_hi)

    def at(x: float, y: float) -> tuple[float, float]:
        return _LEFT + (x - x0) * xk, _H - _BOTTOM - (y - y_lo) * yk

    x_at, y_at = _W - _RIGHT, _H - _BOTTOM - 6
    body.append(f'<text x="{x_at}" y="{y_at}" text-anchor="end" font-size="10">{escape(x_title)}</text>')
    body.append(f'<text x="{_LEFT + 6}" y="{_TOP + 10}" font-size="10">{escape(y_title)}</text>')
    for i, s in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        joined = " ".join(f"{px:.1f},{py:.1f}" for px, py in (at(x, y) for x, y in zip(s.xs, s.ys, strict=True)))
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{joined}"/>')
        for j, (x, y) in enumerate(zip(s.xs, s.ys, strict=True)):
            px, py = at(x, y)
            if s.lows is not None and s.highs is not None:
                _, lo = at(x, s.lows[j])
                _, hi = at(x, s.highs[j])
                body.append(f'<line x1="{px:.1f}" y1="{lo:.1f}" x2="{px:.1f}" y2="{hi:.1f}" stroke="{color}"/>')
            body.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="4" fill="{color}"/>')
            if s.notes is not None:
                body.append(f'<text x="{px + 6:.1f}" y="{py - 6:.1f}" font-size="10">{escape(s.notes[j])}</text>')
    return _frame(title, body, [s.label for s in series])
