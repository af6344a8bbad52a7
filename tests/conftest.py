"""Shared fixtures: a tiny real checkpoint, trained in seconds on the head of the real corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RESOURCES = REPO / "resources"


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 400 most popular 2017 names, as a corpus file of its own."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    items = (RESOURCES / "names.txt").read_text().splitlines()[:400]
    path.write_text("\n".join(items) + "\n")
    return path
