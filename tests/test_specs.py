"""specs/requirements.md against the code and the tests.

Owns: the spec defines every requirement ID the code cites (in model/, impl/ and harness/,
ranges such as "X4-X6" included); every P, S, F, X, E, L, R, D, T, G and M requirement is cited by
at least one test file (so a requirement without a test fails here, naming the missing IDs);
every test named in a "Checked by" entry exists; every specs/ or docs/ file the code
names exists.

Model tests name processes "D1", "D2"; a quoted D-ID is such a label, a value and not a
citation, so it does not count as citing the delivery-agent convention D1 or D2.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "requirements.md"
CODE_DIRS = ("model", "impl", "harness")
THIS = Path(__file__).resolve()

# Family letter -> how many IDs it has (P1-P7, S1-S4, ...).
FAMILIES = {
    "P": 7,
    "S": 6,
    "F": 9,
    "X": 16,
    "E": 8,
    "L": 1,
    "N": 1,
    "A": 13,
    "R": 10,
    "D": 9,
    "T": 8,
    "G": 5,
    "M": 10,
}
MUST_BE_TESTED = "PSFXELRDTGM"

_ONE = re.compile(r"\b([PSFXELNARDTGM])(\d{1,2})\b")
_RANGE = re.compile(r"\b([PSFXELNARDTGM])(\d{1,2})\s*-\s*\1?(\d{1,2})\b")
_PROCESS_LABEL = re.compile(r"([\"'])D\d{1,2}\1")
_HEADING = re.compile(r"^### ([A-Z]\d{1,2}) ", re.MULTILINE)
_TEST_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
_FILE_REF = re.compile(r"\b((?:specs|docs)/[\w/.-]+\.(?:md|py))\b")


def expected_ids() -> set[str]:
    return {f"{fam}{n}" for fam, count in FAMILIES.items() for n in range(1, count + 1)}


def cited_ids(text: str) -> set[str]:
    """Every requirement ID a text cites: single IDs and ranges such as "F1-F3"."""
    found = {f"{fam}{num}" for fam, num in _ONE.findall(text)}
    for fam, first, last in _RANGE.findall(text):
        found |= {f"{fam}{n}" for n in range(int(first), int(last) + 1)}
    return found


def spec_ids() -> list[str]:
    return _HEADING.findall(SPEC.read_text(encoding="utf-8"))


def sections() -> dict[str, str]:
    text = SPEC.read_text(encoding="utf-8")
    parts = _HEADING.split(text)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def code_files() -> list[Path]:
    return sorted(p for d in CODE_DIRS for p in (ROOT / d).rglob("*.py"))


def test_cited_ids_expands_ranges() -> None:
    assert cited_ids("rules F1-F3 and X4-X6, also A8-A9; L1") == {
        "F1",
        "F2",
        "F3",
        "X4",
        "X5",
        "X6",
        "A8",
        "A9",
        "L1",
    }
    assert cited_ids("B1-B11, M4P100Q0R0, 0xF1, P100") == set()
    assert cited_ids("D1-D3 and D8") == {"D1", "D2", "D3", "D8"}


def test_a_process_label_is_not_a_citation() -> None:
    text = 'Process("D1", 100, "h"); label = \'D2\'  # D3: a citation'
    assert cited_ids(_PROCESS_LABEL.sub("", text)) == {"D3"}


def test_spec_defines_every_id_once_with_source_and_checks() -> None:
    ids = spec_ids()
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicated, f"IDs defined twice in {SPEC.name}: {duplicated}"
    missing = sorted(expected_ids() - set(ids))
    unknown = sorted(set(ids) - expected_ids())
    assert not missing and not unknown, f"missing: {missing}; unexpected: {unknown}"
    for rid, body in sections().items():
        assert "Source:" in body, f"{rid} has no Source"
        assert "Checked by:" in body, f"{rid} has no 'Checked by'"


def test_every_id_cited_in_code_is_in_the_spec() -> None:
    defined = set(spec_ids())
    missing: dict[str, list[str]] = {}
    for path in code_files():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for rid in sorted(cited_ids(line) - defined):
                missing.setdefault(rid, []).append(f"{path.relative_to(ROOT)}:{lineno}")
    assert not missing, "IDs cited in code but not defined in specs/requirements.md: " + "; ".join(
        f"{rid} ({', '.join(where[:3])})" for rid, where in sorted(missing.items())
    )


def test_every_requirement_is_cited_by_a_test() -> None:
    cited: set[str] = set()
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.resolve() != THIS:
            cited |= cited_ids(_PROCESS_LABEL.sub("", path.read_text(encoding="utf-8")))
    required = {rid for rid in spec_ids() if rid[0] in MUST_BE_TESTED}
    untested = sorted(required - cited, key=lambda r: (MUST_BE_TESTED.index(r[0]), int(r[1:])))
    assert not untested, (
        f"{len(untested)} requirement(s) cited by no test file under tests/: " + ", ".join(untested)
    )


def test_tests_named_in_the_spec_exist() -> None:
    absent = []
    for file, name in _TEST_REF.findall(SPEC.read_text(encoding="utf-8")):
        path = ROOT / file
        if not path.is_file() or not re.search(
            rf"^\s*def {name}\(", path.read_text(encoding="utf-8"), re.MULTILINE
        ):
            absent.append(f"{file}::{name}")
    assert not absent, f"named in specs/requirements.md but not found: {sorted(set(absent))}"


def test_spec_and_doc_files_named_in_code_exist() -> None:
    dangling = []
    for path in [*code_files(), *sorted((ROOT / "tests").glob("*.py"))]:
        if path.resolve() == THIS:
            continue
        for ref in _FILE_REF.findall(path.read_text(encoding="utf-8")):
            if not (ROOT / ref).exists():
                dangling.append(f"{path.relative_to(ROOT)}: {ref}")
    assert not dangling, f"references to files that do not exist: {sorted(set(dangling))}"
