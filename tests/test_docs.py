"""docs/ against the code.

Owns: docs/lifecycle.md embeds exactly `mermaid()`'s text; the worked example of
docs/own-agent.md (docs/examples/my_agent.py) resolves as a strategy, delivers on the real
OS, holds under `sync` and is caught where the document says it is; the excerpt the
document shows is the file's own text; relative links between the documents resolve.
Budgets are small (100 examples, seed 1).
"""

from __future__ import annotations

import importlib.util
import inspect
import io
import itertools
import os
import re
from pathlib import Path

import pytest

from maildircheck.harness.check import Check
from maildircheck.harness.verify import verify
from maildircheck.impl.drivers import run_on_os
from maildircheck.impl.strategies import resolve, strategy_info
from maildircheck.model.lifecycle import mermaid
from maildircheck.model.outcome import Delivered, DeliveryRequest
from tests import doc_outputs

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLE = ROOT / "docs" / "examples" / "my_agent.py"
SPEC = f"{EXAMPLE}:deliver"


def fenced(text: str, lang: str) -> list[str]:
    """The bodies of the ```lang code blocks of a Markdown text."""
    return re.findall(rf"^```{lang}\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)


def test_lifecycle_doc_embeds_the_diagram() -> None:
    blocks = fenced((DOCS / "lifecycle.md").read_text(encoding="utf-8"), "mermaid")
    assert blocks == [mermaid() + "\n"], "docs/lifecycle.md: paste mermaid()'s output again"


# Mermaid's state-diagram lexer (mermaid-js/mermaid, stateDiagram.jison) reads a state id as
# [^:\n\s\-\{]+ and a transition label as ":" followed by [^:\n;]+ - so a hyphen in an id or a
# colon or semicolon inside a label makes the diagram fail to parse (checked with mermaid 10).
_EDGE = re.compile(r"^\s*(\S+) --> (\S+?)(?:: (.*))?$")


def test_lifecycle_diagram_is_valid_mermaid() -> None:
    bad = []
    for line in mermaid().splitlines()[1:]:
        m = _EDGE.match(line)
        assert m, f"not an edge: {line!r}"
        src, dst, label = m.group(1), m.group(2), m.group(3) or ""
        bad += [f"state id {s!r}" for s in (src, dst) if s != "[*]" and re.search(r"[-:{]", s)]
        bad += [f"label {label!r}" for c in ":;" if c in label]
    assert not bad, "Mermaid cannot parse: " + "; ".join(bad)


def test_example_resolves_as_a_strategy() -> None:
    func = resolve(SPEC)
    assert inspect.isgeneratorfunction(func)
    info = strategy_info(SPEC)
    assert info.bug_class is None and info.summary


def test_example_delivers_on_the_os(tmp_path: Path) -> None:
    root = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(parents=True)
    message = b"Subject: hi\r\n\r\nbinary \x00\xff body\n"
    outcome = run_on_os(resolve(SPEC)(DeliveryRequest(str(root))), io.BytesIO(message))
    assert isinstance(outcome, Delivered)
    assert os.listdir(root / "tmp") == []
    assert (root / "new" / outcome.name).read_bytes() == message


def test_example_holds_under_sync() -> None:
    v = verify(Check.of(SPEC, "sync", max_examples=100, seed=1))
    assert v.holds, f"{v.violation}\n{v.timeline.render() if v.timeline else ''}"


@pytest.mark.parametrize("env", ["ext4-ordered", "posix"])
def test_example_reports_success_too_early_without_a_directory_fsync(env: str) -> None:
    """docs/own-agent.md: no fsync of new/, so success is reported before the entry is
    durable - the no-early-success property."""
    v = verify(Check.of(SPEC, env, max_examples=100, seed=1))
    assert v.violation is not None, "the missing fsync of new/ was not found"
    assert v.violation.prop == "P2", str(v.violation)
    assert v.timeline is not None and "link(" in v.timeline.render()


def test_own_agent_excerpt_is_the_files_text() -> None:
    text = (DOCS / "own-agent.md").read_text(encoding="utf-8")
    heart = text.split("The heart of it:", 1)[1]
    excerpt = fenced(heart, "python")[0]
    assert excerpt in EXAMPLE.read_text(encoding="utf-8")


def test_relative_links_resolve() -> None:
    broken = []
    for doc in sorted(DOCS.rglob("*.md")):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert not broken, f"broken links: {broken}"


QUOTING_DOCS = [
    DOCS / n
    for n in (
        "counterexamples.md", "nfs.md", "explore.md", "campaigns.md", "own-agent.md", "lmtp.md"
    )
]


@pytest.mark.parametrize(
    "quote", [q for doc in QUOTING_DOCS for q in doc_outputs.quotes(doc)], ids=lambda q: q.label
)
def test_quoted_output_is_what_its_command_prints(quote: doc_outputs.Quote) -> None:
    """Every output a doc quotes is rerun, in a fresh process, and must match; regenerate
    with `python tests/doc_outputs.py docs/counterexamples.md docs/nfs.md docs/explore.md
    docs/campaigns.md docs/own-agent.md docs/lmtp.md`."""
    assert doc_outputs.masked(doc_outputs.run(quote)) == doc_outputs.masked(quote.output)


@pytest.mark.parametrize(
    "quote", [q for doc in QUOTING_DOCS for q in doc_outputs.quotes(doc)], ids=lambda q: q.label
)
def test_quoted_output_names_the_commit_that_printed_it(quote: doc_outputs.Quote) -> None:
    """The mark says `made at COMMIT`, a commit of this checkout's history (so a reader can
    check out the code that printed it). Where history cannot tell (no git checkout, a
    shallow clone without it) only the stamp's presence is checked."""
    assert quote.made_at, f"{quote.label}: the output mark names no commit; regenerate it"
    if (ROOT / ".git").exists():
        known = doc_outputs.in_history(quote.made_at)
        assert known is not False, f"{quote.label}: {quote.made_at} is not in HEAD's history"


def test_counterexamples_doc_quotes_every_example() -> None:
    assert len(doc_outputs.quotes(DOCS / "counterexamples.md")) == 6
    assert len(doc_outputs.quotes(DOCS / "nfs.md")) == 3  # pid-only-name, async, stale-nlink


def test_algorithm_table_cells_are_what_the_search_finds() -> None:
    """docs/algorithm.md quotes `bench/catalogue_table.py`; a bounded subset of its cells (the
    entries issue 11 added) is searched again and must agree."""
    spec = importlib.util.spec_from_file_location(
        "catalogue_table", ROOT / "bench/catalogue_table.py"
    )
    assert spec is not None and spec.loader is not None
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    text = (DOCS / "algorithm.md").read_text().split("<!-- catalogue table -->", 1)[1]
    lines = list(itertools.takewhile(lambda line: line.startswith("|"), text.strip().splitlines()))
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {
        cells[0].split(" (")[0]: dict(zip(head, cells, strict=True))
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])
    }
    for name, env in (
        ("large-mail-unsynced", "posix"),
        ("large-mail-unsynced", "sync"),
        ("no-random-name", "ext4-ordered"),
        ("always-defer", "btrfs"),
    ):
        assert table.cell(name, env) == rows[name][env], (name, env)


NFS_FAULTS = ("kill", "server-crash", "client-crash", "sigterm", "enospc", "edquot", "eio")


def nfs_table_rows() -> list[tuple[str, str, str, str, str]]:
    """docs/nfs.md's results table: (outcome, call, verdict, reason, counterexample) for
    each row whose call is plain `verify(...)` calls (the stale-nlink row loops over six
    checks that tests/test_catalogue.py runs)."""
    text = (DOCS / "nfs.md").read_text().split("| outcome | call |", 1)[1]
    lines = list(itertools.takewhile(lambda line: line.startswith("|"), text.splitlines()[2:]))
    rows = []
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if "for ENV in" not in cells[1]:
            rows.append((cells[0], cells[1], cells[2], cells[3], cells[4]))
    return rows


@pytest.mark.parametrize("row", nfs_table_rows(), ids=lambda row: row[0][:40])
def test_nfs_table_rows_are_what_their_calls_find(row: tuple[str, str, str, str, str]) -> None:
    """Each row of docs/nfs.md's table is its call's verdict: holds or violated, the
    property and its reason, and the counterexample's length."""
    _, call, verdict, reason, length = row
    calls = re.findall(r"`(verify\(.*?\))`", call)
    verdicts = [v.strip().split(" ")[0] for v in verdict.split(";")]
    assert calls and len(calls) == len(verdicts), call
    namespace = {"verify": verify, "Check": Check, "NFS_FAULTS": NFS_FAULTS}
    for code, expected in zip(calls, verdicts, strict=True):
        v = eval(code, namespace)  # the table's own call text
        assert ("holds" if v.holds else "violated") == expected, code
        evidence = v if v.violation is not None else v.environment
        if evidence is not None and evidence.violation is not None:
            assert f"{evidence.violation.prop}: {evidence.violation.why}" in reason, code
            assert evidence.timeline is not None
            assert str(evidence.timeline.syscalls) == length.split(" ")[0], code


@pytest.mark.parametrize(
    ("marker", "deliveries", "faults", "syscalls", "workers"),
    [("<!-- explore bounds -->", 1, 3, 30, 1), ("<!-- explore bounds two -->", 2, 1, 40, 2)],
)
def test_explore_bounds_table_row_is_what_the_explorer_finds(
    marker: str, deliveries: int, faults: int, syscalls: int, workers: int
) -> None:
    """docs/explore.md quotes `bench/explore_bounds.py` twice; each table's sync row is
    explored again (verdict, states, deepest run; the seconds are the machine's)."""
    spec = importlib.util.spec_from_file_location("bounds", ROOT / "bench/explore_bounds.py")
    assert spec is not None and spec.loader is not None
    bounds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bounds)
    text = (DOCS / "explore.md").read_text().split(marker, 1)[1].split("\n\n", 1)[0]
    rows = [line for line in text.strip().splitlines() if line.startswith("| sync |")]
    assert len(rows) == 1
    quoted = [c.strip() for c in rows[0].strip("|").split("|")]
    from maildircheck.harness.explore import Bound

    bound = Bound(syscalls, deliveries, faults)
    assert (bounds.SYSCALLS, bounds.FAULT_STEPS) == (30, 3)  # the defaults are the first table
    found = bounds.row("sync", bound, workers)
    assert quoted[:4] == ["sync", found["verdict"], str(found["states"]), str(found["depth"])]


@pytest.mark.parametrize(
    "row", [("vpopmail-4.10.14", "ext4-ordered"), ("close-unchecked", "ext4-ordered"),
            ("pid-only-name", "nfs3-sync")],
)  # fmt: skip
def test_detection_column_is_what_the_explorer_finds(row: tuple[str, str]) -> None:
    """docs/explore.md quotes `bench/detection.py`'s explored column; three rows are
    explored again with the benchmark's own bound (the shortest and the states)."""
    spec = importlib.util.spec_from_file_location("detection", ROOT / "bench/detection.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    text = (DOCS / "explore.md").read_text().split("<!-- detection column -->", 1)[1]
    cells = next(
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.strip().splitlines()
        if line.startswith(f"| {row[0]} | {row[1]} |")
    )
    faults = () if cells[2] == "none" else tuple(cells[2].split(","))
    worst = int(cells[3].split("(")[-1].rstrip(")"))
    found = bench.explored(Check.of(row[0], row[1], faults), worst)
    assert [cells[4], cells[5]] == [str(found["explored_length"]), f"{found['explored_states']:,}"]
