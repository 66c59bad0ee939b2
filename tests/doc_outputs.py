"""The outputs the docs quote, and the commands that print them.

A quoted output in a doc is a fenced block preceded by the line `<!-- output: LANG -->`;
the command it quotes is the nearest fenced block of that LANG before it (`python`: run
as a script in a fresh interpreter; `sh`: run by sh with the venv's bin/ first on PATH).
`tests/test_docs.py` reruns every command and compares what it prints with the quote;
`python tests/doc_outputs.py docs/counterexamples.md` writes the fresh outputs into the doc.

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
MARK = re.compile(r"^<!-- output: (python|sh) -->$")
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


def rewrite(doc: Path) -> int:
    """Write every quote's fresh output into `doc`; the number of quotes that changed."""
    lines = doc.read_text().splitlines()
    changed = 0
    for quote in reversed(quotes(doc)):
        fresh = run(quote)
        if masked(fresh) != masked(quote.output):
            changed += 1
            lines[quote.first : quote.last] = fresh.splitlines()
    doc.write_text("\n".join(lines) + "\n")
    return changed


if __name__ == "__main__":
    for name in sys.argv[1:]:
        print(f"{name}: {rewrite(Path(name))} quotes rewritten")
