"""The HTML matrix report as a browser draws it (issue 4, part 3).

Owns: `maildircheck matrix --format html` over a matrix with a violated cell (the correct
strategy and vpopmail-4.10.14 under ext4-ordered), opened in headless Chromium: the DOM it
builds holds the inline SVG timeline with its lane and its violation band, and its
screenshot shows that band drawn - the SVG's violation colour over the band's area, at the
band's width - and the table's violated cell. The screenshot and the page are kept under
build/test-artifacts/ (or $MAILDIRCHECK_ARTIFACTS) and their paths printed. Skipped only
when no Chromium is installed; each browser run is bounded by a timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from maildircheck.harness.check import Check
from maildircheck.harness.cli import main
from maildircheck.harness.svg import VIOLATION_FILL
from maildircheck.harness.verify import Verdict, verify
from maildircheck.model.environments import ENVIRONMENTS

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1200, 2000)
TIMEOUT = 120  # seconds for one browser run
FLAWED, ENV, BUDGET = "vpopmail-4.10.14", "ext4-ordered", 50
BAD_CELL = (0xFF, 0xDD, 0xDD)  # the matrix page's .bad background, #fdd

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)


def rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def artifacts() -> Path:
    where = Path(os.environ.get("MAILDIRCHECK_ARTIFACTS", ROOT / "build" / "test-artifacts"))
    where.mkdir(parents=True, exist_ok=True)
    return where


def chromium(page: Path, scratch: Path, *args: str) -> str:
    """Run headless Chromium on `page` with its own profile and HOME under `scratch`;
    its stdout. The whole process group is killed if it outlives TIMEOUT."""
    assert CHROMIUM is not None
    scratch.mkdir()
    home = scratch / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={scratch / 'profile'}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
        page.as_uri(),
    ]
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the renderers go with it
    )
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"chromium did not finish within {TIMEOUT} s: {' '.join(argv)}")
    assert proc.returncode == 0, f"chromium exited {proc.returncode}: {err[-2000:]}"
    return out


@dataclass
class Report:
    page: Path
    verdict: Verdict  # the flawed cell, as verify finds it on its own


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Report:
    page = tmp_path_factory.mktemp("report") / "matrix.html"
    argv = ["matrix", "--strategies", f"correct,{FLAWED}", "--envs", ENV]
    argv += ["--max-examples", str(BUDGET), "--format", "html", "--output", str(page)]
    assert main(argv) == 0
    verdict = verify(Check.of(FLAWED, ENV, ENVIRONMENTS[ENV].threat, max_examples=BUDGET, seed=1))
    assert verdict.violation is not None and verdict.timeline is not None
    return Report(page, verdict)


@dataclass
class Svg:
    """What is inside the page's <svg> elements, as the browser's DOM has it."""

    count: int = 0
    lanes: list[str] = field(default_factory=list)
    calls: int = 0
    bands: list[dict[str, str]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    size: tuple[int, int] = (0, 0)


class SvgParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.svg = Svg()
        self.depth = 0  # inside an <svg> when > 0
        self.text: list[str] | None = None  # the text element being read
        self.cls = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "svg":
            self.svg.count += 1
            self.svg.size = (int(a["width"]), int(a["height"]))
            self.depth += 1
        elif self.depth and tag == "rect" and "band" in a.get("class", "").split():
            self.svg.bands.append(a)
        elif self.depth and tag == "text":
            self.cls, self.text = a.get("class", ""), []

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self.depth -= 1
        elif tag == "text" and self.text is not None:
            text = "".join(self.text)
            if self.cls == "lane":
                self.svg.lanes.append(text)
            elif self.cls == "event":
                self.svg.events.append(text)
            elif self.cls == "call":
                self.svg.calls += 1
            self.text = None

    def handle_data(self, data: str) -> None:
        if self.text is not None:
            self.text.append(data)


def test_the_browser_dom_holds_the_svg_timeline(report: Report, tmp_path: Path) -> None:
    dom = chromium(report.page, tmp_path / "chromium", "--dump-dom")
    assert f'<section id="{FLAWED}--{ENV}">' in dom, "the violated cell's section is missing"
    parser = SvgParser()
    parser.feed(dom)
    svg = parser.svg
    timeline = report.verdict.timeline
    assert timeline is not None
    assert svg.count == 1, "one diagram: one violated cell"
    assert svg.lanes == ["D1"], "a lane per process"
    assert svg.calls == timeline.syscalls, "every syscall of the counterexample is drawn"
    (band,) = [b for b in svg.bands if "violation" in b["class"].split()]
    assert band["fill"] == VIOLATION_FILL
    assert any(e.startswith("VIOLATED P1") for e in svg.events), svg.events


@pytest.fixture(scope="module")
def screenshot(report: Report, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    scratch = tmp_path_factory.mktemp("screenshot")
    png = scratch / "matrix.png"
    chromium(report.page, scratch / "chromium", f"--screenshot={png}")
    assert png.exists(), "chromium wrote no screenshot"
    keep = artifacts()
    shutil.copy(report.page, keep / "matrix-report.html")
    shutil.copy(png, keep / "matrix-report.png")
    yield keep / "matrix-report.png"


def test_the_screenshot_shows_the_svg_drawn(
    report: Report, screenshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with capsys.disabled():
        print(f"\n[test_html_browser] screenshot: {screenshot}")
    parser = SvgParser()
    parser.feed(report.page.read_text(encoding="utf-8"))
    (band,) = [b for b in parser.svg.bands if "violation" in b["class"].split()]
    band_w, band_h = int(band["width"]), int(band["height"])

    image = Image.open(screenshot).convert("RGB")
    assert image.size == WINDOW
    data = image.tobytes()
    pixels = [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]
    width = image.size[0]

    def near(p: tuple[int, int, int], q: tuple[int, int, int]) -> bool:
        return all(abs(a - b) <= 4 for a, b in zip(p, q, strict=True))

    not_white = sum(1 for p in pixels if p != (255, 255, 255))
    assert not_white > 0.01 * len(pixels), "the page is (nearly) blank"

    violation = rgb(VIOLATION_FILL)
    where = [i for i, p in enumerate(pixels) if near(p, violation)]
    # the band's text covers part of it; most of its area shows the fill
    assert len(where) > 0.5 * band_w * band_h, (
        f"{len(where)} pixels of the violation band's colour {VIOLATION_FILL}, "
        f"expected most of {band_w}x{band_h}: the SVG is not drawn"
    )
    xs = [i % width for i in where]
    ys = [i // width for i in where]
    assert abs((max(xs) - min(xs) + 1) - band_w) <= 2, "the band is drawn at its width"
    assert abs((max(ys) - min(ys) + 1) - band_h) <= 2, "the band is drawn at its height"

    bad = sum(1 for p in pixels if near(p, BAD_CELL))
    assert bad > 500, "the table's violated cell is drawn"
