"""The durability matrix (issue 4, part 2): cells agree with verify, and the Markdown,
JSON and self-contained HTML renderings carry the same verdicts and counterexamples."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.cli import main
from maildircheck.harness.matrix import Matrix, cell_checks, run_matrix
from maildircheck.harness.verify import verify
from maildircheck.model.environments import ENVIRONMENTS

STRATEGIES = ["correct", "no-dir-fsync"]
ENVS = ["sync", "ext4-ordered", "nfs3-async-export"]


@pytest.fixture(scope="module")
def matrix() -> Matrix:
    return run_matrix(cell_checks(STRATEGIES, ENVS, max_examples=60, seed=1))


def test_cells_agree_with_verify(matrix: Matrix) -> None:
    assert matrix.cell_text("no-dir-fsync", "ext4-ordered") == "P2 violated"
    assert matrix.cell_text("no-dir-fsync", "sync") == "holds"
    assert matrix.cell_text("correct", "nfs3-async-export") == "environment cannot keep it"
    threat = ENVIRONMENTS["ext4-ordered"].threat
    alone = verify(Check.of("no-dir-fsync", "ext4-ordered", threat, max_examples=60, seed=1))
    cell = matrix.cells[("no-dir-fsync", "ext4-ordered")]
    assert cell.timeline is not None and alone.timeline is not None
    assert cell.timeline.as_json() == alone.timeline.as_json()


def test_markdown_links_each_violation_to_its_counterexample(matrix: Matrix) -> None:
    text = matrix.as_markdown()
    assert "[P2 violated](#no-dir-fsync--ext4-ordered)" in text
    assert "### no-dir-fsync--ext4-ordered" in text
    assert "Replay: `maildircheck verify --strategy no-dir-fsync --env ext4-ordered" in text


def test_html_is_self_contained_and_complete(matrix: Matrix) -> None:
    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []
            self.ids: set[str] = set()
            self.hrefs: set[str] = set()

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)
            for k, v in attrs:
                if k == "id" and v:
                    self.ids.add(v)
                if k in ("href", "src") and v:
                    self.hrefs.add(v)

    page = Collect()
    page.feed(matrix.as_html())
    assert "table" in page.tags and "pre" in page.tags
    assert "script" not in page.tags and "link" not in page.tags
    assert all(h.startswith("#") for h in page.hrefs)  # nothing outside the page
    assert {h[1:] for h in page.hrefs} <= page.ids  # every link lands


def test_cli_writes_json_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    code = main(
        [
            "matrix",
            "--strategies",
            "vpopmail-4.10.14",
            "--envs",
            "sync",
            "--max-examples",
            "50",
            "--format",
            "json",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads(out.read_text())
    (cell,) = data["cells"]
    assert cell["result"] == "P1 violated" and cell["violation"]["property"] == "P1"
    assert not (tmp_path / "m.json.tmp").exists()


def test_cli_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["matrix", "--envs", "nope"]) == 2
    assert "unknown environment" in capsys.readouterr().err


def test_workers_give_the_same_matrix(matrix: Matrix) -> None:
    spread = run_matrix(cell_checks(STRATEGIES, ENVS, max_examples=60, seed=1), workers=2)
    for key, cell in matrix.cells.items():
        other = spread.cells[key]
        assert matrix.cell_text(*key) == spread.cell_text(*key)
        assert (cell.timeline.as_json() if cell.timeline else None) == (
            other.timeline.as_json() if other.timeline else None
        )


def test_svg_timeline_has_a_lane_per_process_and_marks_faults_and_crashes() -> None:
    import xml.etree.ElementTree as ET

    from maildircheck.harness.svg import FAULT, render_svg

    v = verify(
        Check.of(
            "success-when-gone", "nfs3-sync", ("enospc", "server-crash"), max_examples=300, seed=1
        )
    )
    assert v.timeline is not None
    root = ET.fromstring(render_svg(v.timeline))
    ns = {"s": "http://www.w3.org/2000/svg"}
    lanes = [t.text for t in root.findall("s:text[@class='lane']", ns)]
    actors = {ln.actor for ln in v.timeline.lines if ln.kind == "syscall"}
    assert set(lanes) == actors and all(a.startswith(("a:", "b:")) for a in actors)
    red = [t for t in root.findall("s:text[@class='call']", ns) if t.get("fill") == FAULT]
    assert red, "the injected fault is drawn in red"
    shown = ["".join(t.itertext()).replace(t.findtext("s:title", "", ns), "") for t in red]
    assert any("ENOSPC" in text and "[fault:" in text for text in shown), (
        "a long faulted call wraps inside its lane; its reply and fault stay visible"
    )
    events = [t.findtext("s:title", "", ns) for t in root.findall("s:text[@class='event']", ns)]
    assert any("VIOLATED P2" in e for e in events)
    (band,) = root.findall("s:rect[@class='band violation']", ns)
    assert int(band.get("width", "0")) > 0


def test_html_embeds_the_svg_diagrams(matrix: Matrix) -> None:
    page = matrix.as_html()
    violated = sum(1 for cell in matrix.cells.values() if cell.violation is not None)
    assert page.count("<svg ") == violated > 0
