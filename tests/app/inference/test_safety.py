"""The safe filter: known obscenities and slurs inside invented names are refused, real names
only when they are such a word themselves, full names across the join too; and the word lists are
the packages' and the repository's (what bench/safety.py measures on samples)."""

from __future__ import annotations

import gzip
import unicodedata

import pytest

from app.inference.registry import Registry
from app.inference.safety import EVERYDAY, NAMES_FIRST, SafetyFilter, package_words, trie_pattern
from tests.support import RESOURCES

REAL = [
    line
    for corpus in ("names-all.txt", "surnames.txt")
    for line in (RESOURCES / corpus).read_text().splitlines()
]


WORLD = frozenset(
    line.split("\t")[0]
    for line in gzip.decompress((RESOURCES / "names-world.tsv.gz").read_bytes()).decode().splitlines()
)


@pytest.fixture(scope="module")
def world_safety() -> SafetyFilter:
    return SafetyFilter.from_packages([REAL, WORLD])


@pytest.fixture(scope="module")
def safety() -> SafetyFilter:
    return SafetyFilter.from_packages([REAL])


@pytest.mark.parametrize(
    "name",
    ["Shitney", "Fuckerson", "Nigella" + "r", "Cuntessa", "Pussyanne", "Whorelyn", "Kikeson", "Jizzabel",
     "Faggota", "Rapeya", "Nazilyn", "Twatley", "Sluttany", "Dickanna", "Wetbackson"],
)  # fmt: skip
def test_invented_names_with_an_obscenity_or_slur_are_refused(safety: SafetyFilter, name: str) -> None:
    assert name.lower() not in set(REAL)  # invented
    assert safety.refuses(name) and safety.refuses(name.upper())


@pytest.mark.parametrize(
    "name", ["Dickson", "Hancock", "Cassandra", "Dickens", "Cockburn", "Manalo", "Knightley", "Hitchcock",
             "Analise", "Sexton", "Nigel", "Mickey", "Abbott", "Lamar", "Weiner", "Wang", "Aryan", "Cumming",
             "Guido", "Pollock"],
)  # fmt: skip
def test_real_names_with_a_word_inside_are_allowed(safety: SafetyFilter, name: str) -> None:
    assert name.lower() in set(REAL) and not safety.refuses(name)


@pytest.mark.parametrize(
    "name",
    ["Coon", "Wigger", "Nigg", "Polack", "Beaner", "Sambo", "Trannie", "Kraut", "Dago", "Jap", "Dyke",
     "Negro", "Wanker", "Rape", "Klan"],
)  # fmt: skip
def test_a_real_name_that_is_a_slur_or_an_obscenity_is_refused(safety: SafetyFilter, name: str) -> None:
    """US surnames or given names, and still slurs: being a real name does not let them out."""
    assert name.lower() in set(REAL) and safety.refuses(name)


@pytest.mark.parametrize(
    "name",
    ["Redskin", "Towelhead", "Zipperhead", "Porchmonkey", "Darkie", "Jewboy", "Spastic", "Greaseball",
     "Bollocks", "Kkk"],
)  # fmt: skip
def test_slurs_the_first_lists_missed_are_refused(safety: SafetyFilter, name: str) -> None:
    assert safety.refuses(name)


def test_real_names_are_refused_only_when_they_are_a_listed_word(safety: SafetyFilter) -> None:
    refused = {s for s in REAL if safety.refuses(s)}
    assert refused and all(s in safety.anywhere and s not in NAMES_FIRST for s in refused)


@pytest.mark.parametrize(
    ("given", "family"), [("Mike", "Hunt"), ("Hugh", "Jass"), ("Sambo", "Coon"), ("Ben", "Dover"),
                          ("Shi", "Tanya"), ("Emma", "Wigger"), ("Bea", "Ner")],
)  # fmt: skip
def test_full_names_are_checked_across_the_join(safety: SafetyFilter, given: str, family: str) -> None:
    """Prank names, and a word that spans the join and starts or ends the full name (Shi + Tanya:
    "shit"; Bea + Ner: "beaner"), are refused as a pair."""
    assert safety.refuses_full(given, family)


def test_ordinary_full_names_pass(safety: SafetyFilter) -> None:
    # Aniara Boocome: "abo" lies across the space, inside the name: not read as a word
    pairs = [
        ("Emma", "Smith"),
        ("Mike", "Hunter"),
        ("Hugh", "Jackman"),
        ("Cass", "Andra"),
        ("Aniara", "Boocome"),
    ]
    for given, family in pairs:
        assert not safety.refuses_full(given, family), (given, family)


@pytest.mark.parametrize(
    "name", ["Arschlochina", "Enculéa", "Coñolina", "Vittuliina", "Fittany", "Klootzakia", "Хуйлана",
             "Жопалина", "Troiabella", "Kusipääla"],
)  # fmt: skip
def test_invented_names_with_a_word_of_another_language_are_refused(safety: SafetyFilter, name: str) -> None:
    assert safety.refuses(name) and safety.refuses(name.upper())


@pytest.mark.parametrize(
    "name", ["Anita", "Regina", "Mona", "Pippa", "Péter", "Palle", "Reet", "Concha", "Margareeta",
             "Ramona", "Amanda", "Аманда", "Клемент", "Olla"],
)  # fmt: skip
def test_names_that_another_languages_list_holds_are_allowed(world_safety: SafetyFilter, name: str) -> None:
    """Real names somewhere in names-world, or names with such a word inside (Margareeta: reet,
    Аманда: манда), which are ordinary in the languages the names come from."""
    assert not world_safety.refuses(name)


def test_everyday_words_count_only_as_the_whole_name(safety: SafetyFilter) -> None:
    """hell, kill or organ inside an invented name (Shellany, Akillia) is not an obscenity."""
    assert not safety.refuses("Shellany") and not safety.refuses("Akillia") and not safety.refuses("Korganne")
    assert safety.refuses("Hell") and safety.refuses("DRUNK")


def test_the_lists_are_the_packages_letters_only() -> None:
    anywhere, whole = package_words()
    assert {"fuck", "shit", "cunt", "nigger", "kike", "faggot", "twat"} <= anywhere
    assert whole <= EVERYDAY and not anywhere & EVERYDAY
    assert all(
        w.isalpha() and w == w.lower() and unicodedata.is_normalized("NFC", w) for w in anywhere | whole
    )
    assert "ass" not in anywhere and "len" not in anywhere  # too short to match anywhere
    # the languages of names-world's countries: their own letters, short words in other scripts kept
    assert {"arschloch", "enculé", "coño", "kusipää", "fitta", "klootzak", "хуй", "блядь"} <= anywhere


def test_the_trie_finds_exactly_what_a_plain_search_finds() -> None:
    words = ["ab", "abc", "b", "cde", "xyz"]
    pattern = trie_pattern(words)
    for text in ["", "a", "ab", "zzabcz", "cd", "xcdez", "yx", "qqb"]:
        assert (pattern.search(text) is not None) == any(w in text for w in words), text
    assert trie_pattern([]).search("anything") is None


def test_the_registry_allows_every_loaded_models_items_but_listed_words() -> None:
    from app.inference.registry import load_registry
    from tests.app.conftest import REPO_MODELS

    registry: Registry = load_registry(REPO_MODELS)
    safety = registry.safety
    assert all(
        not safety.refuses(s) or s in safety.anywhere
        for m in registry.models.values()
        for s in list(m.items)[:20000]
    )
