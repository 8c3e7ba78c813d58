"""A minimal hand-drawn SVG line chart (matplotlib is not a dependency)."""
from __future__ import annotations

import math
from collections.abc import Sequence

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 420, 280, 60, 20, 30, 45
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _ticks(lo: float, hi: float) -> list[float]:
    return [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def panel(title: str, xlabel: str, ylabel: str, series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
          x0: float) -> str:
    """One log-log panel at horizontal offset x0; series are (label, [(x, y), ...])."""
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts if y > 0]
    xlo, xhi = min(xs) / 1.5, max(xs) * 1.5
    ylo, yhi = min(ys) / 2, max(ys) * 2

    def px(x: float) -> float:
        return x0 + PAD_L + (math.log10(x) - math.log10(xlo)) / (math.log10(xhi) - math.log10(xlo)) * (W - PAD_L - PAD_R)

    def py(y: float) -> float:
        return PAD_T + (1 - (math.log10(y) - math.log10(ylo)) / (math.log10(yhi) - math.log10(ylo))) * (H - PAD_T - PAD_B)

    out = [f'<text x="{x0 + W / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>',
           (f'<rect x="{x0 + PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" '
            'fill="none" stroke="#888"/>')]
    for t in _ticks(xlo, xhi):
        if xlo <= t <= xhi:
            out.append(f'<text x="{px(t):.1f}" y="{H - PAD_B + 14}" text-anchor="middle" font-size="10">{t:g}</text>')
    for t in _ticks(ylo, yhi):
        if ylo <= t <= yhi:
            out.append(f'<line x1="{x0 + PAD_L}" x2="{x0 + W - PAD_R}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
                       'stroke="#eee"/>')
            out.append(f'<text x="{x0 + PAD_L - 4}" y="{py(t) + 3:.1f}" text-anchor="end" font-size="10">{t:g}</text>')
    out.append(f'<text x="{x0 + W / 2}" y="{H - 8}" text-anchor="middle" font-size="11">{xlabel}</text>')
    out.append(f'<text x="{x0 + 14}" y="{H / 2}" text-anchor="middle" font-size="11" '
               f'transform="rotate(-90 {x0 + 14} {H / 2})">{ylabel}</text>')
    for i, (label, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts if y > 0)
        out.append(f'<polyline points="{coords}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            if y > 0:
                out.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{color}"/>')
        out.append(f'<text x="{x0 + PAD_L + 8}" y="{PAD_T + 14 + 13 * i}" font-size="10" fill="{color}">{label}</text>')
    return "\n".join(out)


def figure(panels: Sequence[str]) -> str:
    body = "\n".join(panels)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W * len(panels)}" height="{H}" '
            f'font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n{body}\n</svg>\n')
