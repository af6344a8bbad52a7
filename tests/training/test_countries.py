"""Names of the world: one normalisation of every name, and the committed names-world corpus as a
user of each country's names relies on it (its letters, both sexes, the office's counts)."""

from __future__ import annotations

import gzip
import json
import unicodedata
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support import RESOURCES
from training.corpus import CorpusError, WorldItem, read_world
from training.countries import CODES, COUNTRIES, normalise


@pytest.mark.parametrize(
    "raw, kept",
    [
        ("CHLOÉ", "chloé"),
        ("Chloe\u0301", "chloé"),  # decomposed e + combining acute: one letter after NFC
        ("  MARIA   CARMEN ", "maria carmen"),
        ("JEAN-PIERRE", "jean-pierre"),
        ("O'Neil", "o'neil"),
        ("SØREN", "søren"),
        ("Александр", "александр"),
        ("ג'ורג'", "ג'ורג'"),  # Hebrew has no case; the geresh may end a name
        ("İlayda", "ilayda"),  # not i + U+0307
        ("Strauß", "strauß"),  # lower() keeps ß (casefold would not)
    ],
)
def test_normalise_keeps_a_names_letters(raw: str, kept: str) -> None:
    assert normalise(raw) == kept
    assert unicodedata.is_normalized("NFC", kept)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "  ",
        "R0SA",
        "M.N.",
        "MARY-",
        "-LIDIA",
        "'AISYAH",
        "MARIAº",
        "JET;AIME",
        "Sa\ufffda",
        "?Tefan",
        "hаталья",
    ],
)
def test_normalise_refuses_what_is_not_a_name(raw: str) -> None:
    assert normalise(raw) is None


@pytest.fixture(scope="module")
def world() -> list[WorldItem]:
    items, _ = read_world(RESOURCES / "names-world.tsv.gz")
    return items


def test_world_corpus_holds_every_country_with_both_sexes(world: list[WorldItem]) -> None:
    assert len(CODES) == len(set(CODES)) >= 19
    per: dict[tuple[str, str], int] = defaultdict(int)
    for it in world:
        per[it.country, it.sex] += 1
    assert {(c, s) for c in CODES for s in "FM"} == set(per)
    assert min(per.values()) >= 150  # Iceland's boys, the fewest
    provenance = json.loads((RESOURCES / "corpora.json").read_text())["names-world"]
    about = provenance["countries"]
    assert set(about) == set(CODES)
    for country in COUNTRIES:
        entry = about[country.code]
        assert (entry["female"], entry["male"]) == (per[country.code, "F"], per[country.code, "M"])
        assert entry["office"] and entry["licence"] and entry["counts"]
    assert provenance["items"] == len(world)


def test_world_corpus_keeps_each_scripts_letters(world: list[WorldItem]) -> None:
    letters: dict[str, set[str]] = defaultdict(set)
    names: dict[tuple[str, str], list[str]] = defaultdict(list)
    for it in world:
        letters[it.country].update(it.name)
        names[it.country, it.sex].append(it.name)  # most frequent first
    assert {"é", "è", "ç", "ë"} <= letters["FR"] and "françoise" in names["FR", "F"][:5]
    assert {"æ", "ø", "å"} <= letters["DK"] and "søren" in names["DK", "M"][:10]
    assert {"ä", "ö"} <= letters["FI"] and {"ñ", " "} <= letters["ES"]
    assert {"ð", "þ"} <= letters["IS"]
    assert names["ES", "F"][0] == "maria carmen"  # INE's compound names
    assert names["RU", "M"][:2] == ["александр", "сергей"]
    assert all("\u0400" <= c <= "\u04ff" or c in " -" for c in letters["RU"])
    assert "א" in letters["IL"] and not any("a" <= c <= "z" for c in letters["IL"])
    assert names["US", "F"][:2] == ["mary", "elizabeth"]  # SSA births over 1880-2024
    assert not any("\ufffd" in found for found in letters.values())
    for it in world:
        assert normalise(it.name) == it.name and it.count > 0


def test_world_corpus_is_ordered_by_country_sex_and_count(world: list[WorldItem]) -> None:
    keys = [(it.country, it.sex, -it.count, it.name) for it in world]
    assert keys == sorted(keys)


@pytest.mark.parametrize(
    "line, message",
    [
        ("anna\tXX\tF\t5\n", "line 1: expected name"),
        ("anna\tFR\tX\t5\n", "line 1"),
        ("anna\tFR\tF\t0\n", "line 1"),
        ("Anna\tFR\tF\t3\n", "line 1"),  # not lowercased
        ("chloe\u0301\tFR\tF\t3\n", "line 1"),  # not NFC
        ("anna\tFR\tF\t3\nanna\tFR\tF\t4\n", "line 2"),
    ],
)
def test_bad_world_corpus_names_the_line(tmp_path: Path, line: str, message: str) -> None:
    p = tmp_path / "bad.tsv.gz"
    p.write_bytes(gzip.compress(line.encode()))
    with pytest.raises(CorpusError, match=message) as info:
        read_world(p)
    assert str(p) in str(info.value)
