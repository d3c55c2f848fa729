"""Checks a screenshot of `reaperctl report --html` (headless chromium, `make evidence-bench`) for
its charts: the page rendered (not blank, not an error page) and the chart series' colours cover
real areas, so the bars and lines were drawn rather than left as text or empty SVG.

    python scripts/lib/check_screenshot.py PNG

Exit 0 and one line of figures when the charts are there; exit 1 naming what is missing.
"""

from __future__ import annotations

import sys

from PIL import Image

# The first series colours of render/evidence_html.rs's palette (Tableau 10).
PALETTE = {"#4e79a7": (0x4E, 0x79, 0xA7), "#f28e2b": (0xF2, 0x8E, 0x2B), "#e15759": (0xE1, 0x57, 0x59),
           "#76b7b2": (0x76, 0xB7, 0xB2), "#59a14f": (0x59, 0xA1, 0x4F)}
# A colour counts within this distance per channel (antialiasing, colour management).
TOLERANCE = 6
MIN_SERIES_PIXELS = 300
MIN_SERIES = 3
MIN_INK = 0.03


def near(px: tuple[int, int, int], want: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(px, want))


def check(path: str) -> tuple[bool, str]:
    img = Image.open(path).convert("RGB")
    w, h = img.size
    counts = {name: 0 for name in PALETTE}
    ink = 0
    for n, px in img.getcolors(maxcolors=w * h):
        if px != (255, 255, 255):
            ink += n
        for name, rgb in PALETTE.items():
            if near(px, rgb):
                counts[name] += n
    series = [name for name, n in counts.items() if n >= MIN_SERIES_PIXELS]
    figures = (f"{w}x{h} px, {ink / (w * h):.1%} ink, series colours "
               + ", ".join(f"{k} {v} px" for k, v in counts.items()))
    if ink / (w * h) < MIN_INK:
        return False, f"the page is nearly blank: {figures}"
    if len(series) < MIN_SERIES:
        return False, f"fewer than {MIN_SERIES} chart series drawn (at least {MIN_SERIES_PIXELS} px each): {figures}"
    return True, figures


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: check_screenshot.py PNG")
    ok, text = check(sys.argv[1])
    print(f"screenshot: {'charts drawn' if ok else 'CHARTS MISSING'}: {text}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
