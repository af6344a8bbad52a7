"""
The curl examples of README.md, CONTRIBUTING.md and docs/*.md, run against a real server.

An example is a fenced code block whose first line starts with `$ curl`: each `$ ` line is a shell
command, the lines after it (to the next `$ ` line or the end of the block) its expected output.
Commands address `localhost:8000`; they are run with bash against a real uvicorn process serving the
repository's models instead, and the output is compared with each float within a relative 1e-6
of the page's (see `same`). tests/test_docs.py runs them all.

    python -m tests.docs_examples            # check, print the differences
    python -m tests.docs_examples --update   # rewrite every example's output with what it printed
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO

HOST = "localhost:8000"
FLOAT = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?")
REL_TOLERANCE = 1e-6  # how far a printed float may be from the page's, relatively
FENCE = "```"


def doc_files() -> list[Path]:
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


@dataclass
class Example:
    path: Path
    line: int  # 1-based line of the command
    command: str
    expected: list[str]

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}: {self.command[:80]}"


def examples(path: Path) -> Iterator[Example]:
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith(FENCE) and i + 1 < len(lines) and lines[i + 1].startswith("$ curl"):
            j = i + 1
            current: Example | None = None
            while j < len(lines) and not lines[j].startswith(FENCE):
                if lines[j].startswith("$ "):
                    if current is not None:
                        yield current
                    current = Example(path, j + 1, lines[j][2:], [])
                elif current is not None:
                    current.expected.append(lines[j])
                j += 1
            if current is not None:
                yield current
            i = j
        i += 1


def same(got: str, expected: str, rel: float = REL_TOLERANCE) -> bool:
    """Whether an example printed what the page shows: the same text around the floats, and each
    float within `rel` of the page's. A tolerance, not rounding: a value whose float32 arithmetic
    rounds a little differently on another CPU may fall on either side of a rounding boundary."""
    got, expected = got.rstrip("\n"), expected.rstrip("\n")
    if FLOAT.split(got) != FLOAT.split(expected):
        return False
    pairs = zip(FLOAT.findall(got), FLOAT.findall(expected), strict=True)
    return all(math.isclose(float(a), float(b), rel_tol=rel, abs_tol=1e-12) for a, b in pairs)


def run(example: Example, base: str, timeout: float = 60) -> str:
    command = example.command.replace(HOST, base.removeprefix("http://"))
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return done.stdout.rstrip("\n")


def check(base: str) -> list[tuple[Example, str]]:
    """Every example whose output differs: (example, what it printed)."""
    wrong = []
    for path in doc_files():
        if path.exists():
            for ex in examples(path):
                got = run(ex, base)
                if not same(got, "\n".join(ex.expected)):
                    wrong.append((ex, got))
    return wrong


def update(base: str) -> int:
    """Rewrite each example's expected output with what it printed; return how many changed."""
    changed = 0
    for path in doc_files():
        if not path.exists():
            continue
        lines = path.read_text().splitlines()
        for ex in reversed(list(examples(path))):  # from the end: earlier line numbers stay valid
            got = run(ex, base)
            if same(got, "\n".join(ex.expected)):
                continue
            start = ex.line  # the output follows the command line
            lines[start : start + len(ex.expected)] = got.splitlines()
            changed += 1
        path.write_text("\n".join(lines) + "\n")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.docs_examples", description=__doc__.split("\n")[1])
    parser.add_argument("--update", action="store_true", help="rewrite the expected outputs in place")
    args = parser.parse_args(argv)
    from tests.support.server import serve

    with serve(env={"NAMEGEN_TORCH_THREADS": "1"}) as srv:
        if args.update:
            print(f"{update(srv.url)} examples updated")
            return 0
        wrong = check(srv.url)
    for ex, got in wrong:
        print(f"{ex}\n  expected: {chr(10).join(ex.expected)[:300]}\n  got:      {got[:300]}")
    print(f"{len(wrong)} examples differ")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
