"""The outputs the docs quote, and the commands that print them.

A quoted output in a doc is a fenced block preceded by the line
`<!-- output: LANG, made at COMMIT -->`; the command it quotes is the nearest fenced block
of that LANG before it (`python`: run as a script in a fresh interpreter; `sh`: run by sh
with the venv's bin/ first on PATH). COMMIT names the commit whose code printed it.
`tests/test_docs.py` reruns every command and compares what it prints with the quote, and
checks that COMMIT is in the history of the checkout. `python tests/doc_outputs.py
docs/counterexamples.md` writes the fresh outputs into the doc, stamped with HEAD; it
refuses while code outside docs/ has uncommitted changes, since HEAD would then not be the
code that printed them.

Volatile parts (wall-clock seconds: JSON's "seconds", a report's ", 0.33 seconds" and a
progress line's "1.2s]") are masked before comparing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(r"^<!-- output: (python|sh)(?:, made at ([0-9a-f]{7,40}))? -->$")
FENCE = re.compile(r"^```(\w*)$")
VOLATILE = re.compile(
    r'("seconds": )[0-9.e-]+|(, )[0-9]+\.[0-9]+( seconds)|( )[0-9]+\.[0-9]+(s\] )'
)  # a progress line's "[300/3000 examples 1.2s] " too


@dataclass(frozen=True)
class Quote:
    doc: Path
    command_lang: str
    command: str
    first: int  # the quoted output's lines: [first, last) of the doc (inside the fence)
    last: int
    output: str
    made_at: str | None  # the commit named in its mark; None when the mark names none

    @property
    def label(self) -> str:
        return f"{self.doc.name}:{self.first}"


def quotes(doc: Path) -> list[Quote]:
    lines = doc.read_text().splitlines()
    blocks: list[tuple[str, int, int]] = []  # (lang, first line inside, end line)
    found: list[Quote] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening and opening.group(1):
            end = next(j for j in range(i + 1, len(lines)) if lines[j] == "```")
            blocks.append((opening.group(1), i + 1, end))
            i = end + 1
            continue
        mark = MARK.match(lines[i])
        if mark:
            lang = mark.group(1)
            command = next(b for b in reversed(blocks) if b[0] == lang)
            start = i + 1
            if not FENCE.match(lines[start]):
                raise ValueError(f"{doc}:{start + 1}: no fenced block after the output mark")
            end = next(j for j in range(start + 1, len(lines)) if lines[j] == "```")
            found.append(
                Quote(
                    doc,
                    lang,
                    "\n".join(lines[command[1] : command[2]]),
                    start + 1,
                    end,
                    "\n".join(lines[start + 1 : end]),
                    mark.group(2),
                )
            )
            blocks.append(("output", start + 1, end))
            i = end + 1
            continue
        i += 1
    return found


def run(quote: Quote) -> str:
    """What the quoted command prints now, in a fresh process."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    argv = [sys.executable, "-c", quote.command] if quote.command_lang == "python" else None
    done = subprocess.run(
        argv if argv else ["sh", "-c", quote.command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )
    if done.returncode not in (0, 1):  # a violation found exits 1 on the CLI
        raise RuntimeError(f"{quote.label}: the command failed: {done.stderr.strip()[-500:]}")
    return done.stdout.rstrip("\n")


def masked(text: str) -> str:
    def hide(m: re.Match[str]) -> str:
        before, after = m.group(1) or m.group(2) or m.group(4), m.group(3) or m.group(5) or ""
        return f"{before}<seconds>{after}"

    return VOLATILE.sub(hide, text)


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)


def head_commit() -> str:
    """HEAD's short name, once the code (everything outside docs/) is committed."""
    dirty = git("status", "--porcelain", "--", ".", ":(exclude)docs").stdout.strip()
    if dirty:
        raise SystemExit(
            "doc_outputs: commit the code first (uncommitted: "
            + ", ".join(line[3:] for line in dirty.splitlines()[:5])
            + "); a quote's stamp must name the commit that printed it"
        )
    return git("rev-parse", "--short=12", "HEAD").stdout.strip()


def in_history(commit: str) -> bool | None:
    """Whether `commit` is HEAD or one of its ancestors; None where that cannot be known
    (no git checkout, or a shallow clone that does not hold the commit)."""
    try:
        if git("merge-base", "--is-ancestor", commit, "HEAD").returncode == 0:
            return True
        shallow = git("rev-parse", "--is-shallow-repository").stdout.strip() == "true"
    except OSError:  # no git
        return None
    held = git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0
    return None if shallow and not held else False


def rewrite(doc: Path, commit: str) -> int:
    """Write every quote's fresh output into `doc`, stamped `commit` where it changed or had
    no stamp (an unchanged quote keeps the older commit that printed it too); the number of
    quotes rewritten."""
    lines = doc.read_text().splitlines()
    changed = 0
    for quote in reversed(quotes(doc)):
        fresh = run(quote)
        if masked(fresh) != masked(quote.output) or quote.made_at is None:
            changed += 1
            lines[quote.first : quote.last] = fresh.splitlines()
            lines[quote.first - 2] = f"<!-- output: {quote.command_lang}, made at {commit} -->"
    doc.write_text("\n".join(lines) + "\n")
    return changed


if __name__ == "__main__":
    made_at = head_commit()
    for name in sys.argv[1:]:
        print(f"{name}: {rewrite(Path(name), made_at)} quotes rewritten at {made_at}")
