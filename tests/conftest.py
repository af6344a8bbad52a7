"""Shared fixtures and helpers: a small real corpus, and reading checkpoints as the tests need."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from checkpoint_format import torchscript
from tests.support import REPO

RESOURCES = REPO / "resources"


def era_sample(folder: Path, every: int) -> Path:
    """Every `every`-th line of the names-era corpus, as a corpus file of its own in `folder`."""
    lines = gzip.decompress((RESOURCES / "names-era.tsv.gz").read_bytes()).splitlines(keepends=True)
    path = folder / "era.tsv.gz"
    path.write_bytes(gzip.compress(b"".join(lines[::every])))
    return path


def world_sample(folder: Path, every: int) -> Path:
    """Every `every`-th line of the names-world corpus, as a corpus file of its own in `folder`, with
    a corpora.json beside it that describes it as resources/corpora.json does the whole corpus (each
    country's office and licence, and its girls' and boys' names counted in the sample)."""
    lines = gzip.decompress((RESOURCES / "names-world.tsv.gz").read_bytes()).splitlines(keepends=True)
    kept = lines[::every]
    path = folder / "world.tsv.gz"
    path.write_bytes(gzip.compress(b"".join(kept)))
    entry = json.loads((RESOURCES / "corpora.json").read_text())["names-world"]
    countries = {code: {**c, "female": 0, "male": 0} for code, c in entry["countries"].items()}
    for line in kept:
        _, code, sex, _ = line.decode().split("\t")
        countries[code]["female" if sex == "F" else "male"] += 1
    sample = {**entry, "sha256": hashlib.sha256(b"".join(kept)).hexdigest(), "items": len(kept)}
    sample["countries"] = {code: c for code, c in countries.items() if c["female"] + c["male"]}
    (folder / "corpora.json").write_text(json.dumps({"world": sample}))
    return path


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 400 most popular names of 2024, as a corpus file of its own."""
    path = tmp_path_factory.mktemp("corpus") / "small.txt"
    items = (RESOURCES / "names.txt").read_text().splitlines()[:400]
    path.write_text("\n".join(items) + "\n")
    return path


def read_checkpoint(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """A checkpoint's module and its extra files (meta.json, items.txt) as text."""
    return torchscript.load(path, ("meta.json", "items.txt"))


def load_parts(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, Any], list[str]]:
    """A checkpoint's module, its parsed meta.json and its items."""
    module, extra = read_checkpoint(path)
    return module, json.loads(extra["meta.json"]), extra["items.txt"].splitlines()
