"""Every curl example in README.md, CONTRIBUTING.md and docs/*.md, run against a real uvicorn
process: its output must be what the page shows (floats to 6 significant digits). Refresh the pages
after a change of outputs with `python -m tests.docs_examples --update`."""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_examples import FENCE, Example, doc_files, examples, run, same
from tests.support.server import serve

pytestmark = pytest.mark.e2e

EXAMPLES = [ex for path in doc_files() if path.exists() for ex in examples(path)]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(env={"NAMEGEN_TORCH_THREADS": "1"}) as srv:
        yield srv.url


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.path.name}:{e.line}" for e in EXAMPLES])
def test_example_prints_what_the_page_shows(server: str, example: Example) -> None:
    assert example.expected, f"{example}: no output shown"
    got = run(example, server)
    assert same(got, "\n".join(example.expected)), f"{example} printed:\n{got}"


def test_an_example_matches_with_floats_a_little_apart_and_nothing_else() -> None:
    page = '{"char":"o","prob":0.037775457186814076,"count":3}'
    assert same('{"char":"o","prob":0.03777544699601465,"count":3}', page)  # another CPU's rounding
    assert not same('{"char":"o","prob":0.0378,"count":3}', page)
    assert not same('{"char":"o","prob":0.037775457186814076,"count":4}', page)
    assert not same('{"char":"a","prob":0.037775457186814076,"count":3}', page)


def test_every_curl_command_in_the_docs_is_an_example() -> None:
    """A curl line in a code block that is not a `$ curl` example would never be run."""
    stray = []
    for path in doc_files():
        if not path.exists():
            continue
        in_block, is_example = False, False
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.startswith(FENCE):
                in_block = not in_block
                is_example = False
                continue
            if in_block and line.startswith("$ curl"):
                is_example = True
            if in_block and not is_example and "curl " in line and "localhost" in line:
                stray.append(f"{path.name}:{number}")
    assert not stray, stray
    assert len(EXAMPLES) >= 15


def test_the_readmes_python_example_prints_what_the_readme_shows(server: str) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    found = re.search(r"```python\n(.*?)```\n\nprints\n\n```\n(.*?)```", readme, re.S)
    assert found, "README.md: no Python example followed by what it prints"
    code, shown = found.groups()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(code.replace("http://localhost:8000", server), {})  # the README's example, as a reader runs it
    assert out.getvalue() == shown
