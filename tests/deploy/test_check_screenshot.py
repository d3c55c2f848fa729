"""scripts/lib/check_screenshot.py, which `make evidence-bench` runs on headless chromium's
screenshot of `reaperctl report --html`: it passes a page whose chart series are drawn and fails a
blank page and a page of text without charts. (CI has no chromium; the bench machine has.)"""

from __future__ import annotations

import subprocess
import sys

from PIL import Image, ImageDraw

from conftest import ROOT

CHECK = ROOT / "scripts/lib/check_screenshot.py"


def verdict(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), str(path)], capture_output=True, text=True, timeout=60)


def page(tmp_path, name, draw) -> str:
    img = Image.new("RGB", (1280, 1700), (255, 255, 255))
    draw(ImageDraw.Draw(img))
    out = tmp_path / name
    img.save(out)
    return out


def test_a_page_with_its_charts_passes(tmp_path):
    def charts(d):
        for i, colour in enumerate(["#4e79a7", "#f28e2b", "#e15759", "#76b7b2"]):
            d.rectangle([100 + 120 * i, 300, 200 + 120 * i, 700], fill=colour)
        d.line([(100, 1000), (1100, 900)], fill="#59a14f", width=3)
        d.text((100, 100), "ec2-reaper evidence " * 10, fill=(0, 0, 0))
        d.rectangle([80, 1200, 1200, 1600], outline=(0, 0, 0), width=2)
    r = verdict(page(tmp_path, "ok.png", charts))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "charts drawn" in r.stdout


def test_a_blank_page_fails(tmp_path):
    r = verdict(page(tmp_path, "blank.png", lambda d: None))
    assert r.returncode == 1 and "nearly blank" in r.stdout


def test_text_without_charts_fails(tmp_path):
    def text(d):
        for y in range(50, 1650, 12):
            d.text((20, y), "account 111111111111 month 2030-01 terminated 4 stopped 2 " * 3, fill=(0, 0, 0))
        d.rectangle([0, 0, 1279, 400], fill=(200, 200, 200))
    r = verdict(page(tmp_path, "text.png", text))
    assert r.returncode == 1 and "chart series" in r.stdout, r.stdout
