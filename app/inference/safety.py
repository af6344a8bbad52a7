"""
Which generated names are not safe to show: those that are, or contain, an obscenity or a slur,
and full names that are one when read together.

The words come from maintained lists: `wordfilter`'s (PyPI, MIT; Darius Kazemi's list for text
generators: slurs and obscenities), `better-profanity`'s (PyPI, MIT; swear words), LDNOOBW's lists
(npm naughty-words 1.2.0, CC BY 4.0; written into words/ by `python -m training wordlists`) for
English and the languages of names-world's countries that it covers (Danish, Dutch,
Finnish, French, German, Italian, Norwegian, Russian, Spanish, Swedish), and namegen's own additions
(words/namegen-en.txt: English slurs the lists miss). No maintained list covers Hebrew or Icelandic:
names of Israel and Iceland are checked against the others only. Every name is checked against
every language, whatever its country. Three rules:

- A name that *is* a listed word (case-insensitive) is refused, even when it is a real name: Coon,
  Wigger or Polack are US surnames, and still slurs. NAMES_FIRST lists the few listed words that
  are real names first of all (Wang, Aryan, Cumming, Guido, Pollock): those real names pass.
- A name that contains a listed word is refused, unless it is a real name: every item of the loaded
  models' corpora (SSA given names of every year, 1990 census surnames) is allowed, so Dickson,
  Hancock or Cassandra pass. (An invented name has no word boundaries, hence substrings.)
- A full name is refused when its parts are (Sambo Coon), when a listed word spans the join and
  starts or ends the full name (Shi Tanya, Bea Ner; a word wholly inside it, across the space, is not
  read as one), or when the pair is a well-known prank name (words/prank-names.txt: Mike Hunt, Hugh
  Jass).

Two cuts keep the lists to what is offensive inside a name. Entries of fewer than 4 letters (ass,
cum, len, rum, ...; in Latin letters: хуй stays) and those with other characters than letters
(leetspeak, phrases; a name has letters only) are left out. And EVERYDAY words, which the lists
carry but which are ordinary words or real given names and turn up inside ordinary invented names
(hell, kill, organ, escort, lolita; Anita, Regina, trio), are refused only as the whole name, and a
real name that is one of them is allowed. bench/safety.py measures what the filter refuses on each
model's samples and on the real names (docs/models.md has the figures).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from app.inference.items import ItemSet

# ordinary English words of the lists, refused only as the whole name
# fmt: off
EVERYDAY = frozenset([
    "arian", "crap", "crazie", "crazy", "damn", "dopey", "drunk", "dumb", "dummy", "eskimo", "gypsy",
    "hell", "hemp", "herp", "hump", "idiot", "insane", "insanitie", "insanity", "jerk", "kill", "lame",
    "lech", "loin", "lunatic", "lust", "massa", "maxi", "meth", "moron", "murder", "nimrod", "ninny",
    "nude", "oral", "organ", "ovary", "ovum", "paddy", "pawn", "pasty", "potty", "prig", "racy", "revue",
    "screw", "seaman", "seamen", "sissy", "slope", "sniper", "spade", "strip", "stroke", "stupid",
    "teat", "thug", "toke", "tramp", "trashy", "ugly", "unwed", "urine", "virgin", "vodka", "weed",
    "willy", "womb", "woody",
    # LDNOOBW's ordinary words, real names and body parts
    "bareback", "barenaked", "bastinado", "bondage", "boner", "busty", "butt", "domination", "erotic",
    "erotism", "escort", "eunuch", "fecal", "genitals", "grope", "hardcore", "hooker", "horny",
    "humping", "intercourse", "kinky", "lolita", "lovemaking", "mong", "nipple", "nipples", "nudity",
    "panties", "panty", "playboy", "poof", "poon", "rectum", "sadism", "santorum", "scat", "semen",
    "sexual", "sexuality", "sexually", "sexy", "smut", "snatch", "suck", "sucks", "swinger", "topless",
    "tosser", "tushy", "twink", "twinkie", "undressing", "vibrator", "voyeur", "voyuer",
    # the other languages' lists: ordinary words, and real names somewhere in names-world (Anita,
    # Regina, Mona, Pippa, Péter, Palle, Reet, Olla, Concha), which are common inside other names
    # (Italian surnames of the US census too: Pesce, Fava, Vacca, Martillo)
    "anale", "anita", "arrusa", "asno", "balen", "balle", "bander", "belino", "biga", "bite", "bitte",
    "casci", "concha", "cozza", "fava", "folle", "gerbe", "gerber", "griet", "ische", "johny", "kanen",
    "kusta", "lutka", "martillo", "matje", "molo", "mona", "monta", "moona", "mufti", "muna", "mussa",
    "muts", "mutta", "naida", "olla", "orina", "paal", "palen", "palle", "palli", "panna", "pano",
    "perse", "pesce", "péter", "picio", "pipi", "pippa", "piru", "pitt", "pompa", "poppen", "porco",
    "regina", "reet", "reva", "rosette", "satan", "sega", "sorca", "spagnola", "stake", "subba",
    "tavara", "tette", "topa", "trio", "tusan", "vacca", "zizi", "манда", "мент", "муда", "фига",
])
# fmt: on
# listed words that are, first of all, real names (Wang, Aryan, Cumming, Guido, Pollock): a real
# name that is one of these is allowed; every other listed word is refused even as a real name
NAMES_FIRST = frozenset(
    [
        # surnames of the US census first, crude words in another language's list second
        "bocchino",
        "checca",
        "fick",
        "ficken",
        "figone",
        "hoerig",
        "kimme",
        "kuker",
        "kukene",
        "marica",
        "padlo",
        "poot",
        "prutt",
        "schiesser",
        "aryan",
        "cumming",
        "dick",
        "dink",
        "dong",
        "fack",
        "fanny",
        "feck",
        "gaylord",
        "goy",
        "guido",
        "hebe",
        "hoar",
        "hoare",
        "hoor",
        "hymen",
        "kock",
        "kooch",
        "kummer",
        "lube",
        "lusty",
        "mick",
        "muther",
        "pollock",
        "prude",
        "reefer",
        "reich",
        "rump",
        "shota",
        "skeet",
        "teets",
        "tinkle",
        "toots",
        "wang",
        "weiner",
        "willies",
        "yury",
    ]
)
MIN_LETTERS = 4  # shorter entries in Latin letters are too common inside names to match anywhere


WORDS = Path(__file__).resolve().parent / "words"  # the lists kept in this repository


def _listed(path: Path) -> set[str]:
    """The entries of one of words/'s files: lowercase, comments and blank lines skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {w.strip().lower() for w in lines if w.strip() and not w.startswith("#")}


def package_words() -> tuple[frozenset[str], frozenset[str]]:
    """(words refused anywhere in a name, words refused as the whole name), from every list."""
    raw = json.loads(resources.files("wordfilter").joinpath("badwords.json").read_text(encoding="utf-8"))
    words = {w.lower().replace("-", "") for w in raw}  # "half-breed": a name has no hyphen
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text(encoding="utf-8")
    listed = {line.strip().lower() for line in text.splitlines()}
    for path in sorted(WORDS.glob("ldnoobw-*.txt")):  # one per language: training/wordlists.py LANGUAGES
        listed |= _listed(path)
    words |= {w for w in listed if len(w) >= MIN_LETTERS or not w.isascii()}
    words |= _listed(WORDS / "namegen-en.txt")
    words = {unicodedata.normalize("NFC", w) for w in words if w.isalpha()}
    return frozenset(words - EVERYDAY), frozenset(words & EVERYDAY)


def prank_names() -> frozenset[str]:
    """The prank full names, without their spaces (mikehunt)."""
    return frozenset(w.replace(" ", "") for w in _listed(WORDS / "prank-names.txt"))


def trie_pattern(words: Iterable[str]) -> re.Pattern[str]:
    """A regular expression that finds any of `words`, written as the trie of their letters
    ((?:a(?:bo|nal)|...)): Python's re tries the branches of a flat alternation one after the other
    at every position of the text (13 us per name for these 800 words), while a trie's branches
    part at the first letter that differs (0.5 us)."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}  # a word ends here

    def branch(node: dict[str, Any]) -> str:
        ends = "" in node
        alternatives = [re.escape(ch) + branch(sub) for ch, sub in sorted(node.items()) if ch]
        if not alternatives:
            return ""
        body = alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"
        return f"(?:{body})?" if ends else body

    return re.compile(branch(trie) if trie else r"(?!)")


class NameSets:
    """Membership in any of several sets of lowercase names, without the copy their union would be
    (the models' item sets: 194,000 names, whose union took 8 MB more resident memory)."""

    def __init__(self, sets: Iterable[Collection[str]]) -> None:
        unique: dict[int, Collection[str]] = {}
        for names in sets:  # a set shared by several models is looked in once
            unique.setdefault(id(names), names)
        self.sets = tuple(unique.values())

    def __contains__(self, name: object) -> bool:
        return any(name in names for names in self.sets)

    def __len__(self) -> int:
        """Distinct names in all (counted: for reports, not on the request path)."""
        return len(set().union(*self.sets))


@dataclass(frozen=True)
class SafetyFilter:
    """refuses(name): whether a generated name is or contains an obscenity or a slur;
    refuses_full(given, family): the same for a full name, across the join."""

    anywhere: frozenset[str]  # refused wherever they appear in the name, and as the whole name
    whole: frozenset[str]  # refused only as the whole name, and not when that is a real name
    allowed: NameSets | frozenset[str]  # real names (lowercase): never refused for a word inside them
    pranks: frozenset[str] = frozenset()  # full names refused as a pair, without the space

    @classmethod
    def from_packages(cls, real: Iterable[Collection[str]] = ()) -> SafetyFilter:
        """The packages' words, with sets of real names that are never refused for a word inside
        them (the models' item sets, read in place, lowercased where they are not; a set of
        lowercase names is read in place too, and any other collection is made one, for lookups in
        constant time)."""
        anywhere, whole = package_words()
        lowered = [
            s.lowered
            if isinstance(s, ItemSet)
            else s
            if isinstance(s, (set, frozenset)) and all(n.islower() for n in s)
            else frozenset(n.lower() for n in s)
            for s in real
        ]
        return cls(anywhere, whole, NameSets(lowered), prank_names())

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", trie_pattern(self.anywhere))
        object.__setattr__(self, "_longest", max(map(len, self.anywhere), default=0))

    def match(self, name: str) -> str | None:
        """The word that makes `name` unsafe, or None."""
        text = name.lower()
        found = self._pattern.search(text)  # type: ignore[attr-defined]
        if found is None and text not in self.whole:
            return None  # nearly every name: no listed word (and, so, not one as the whole name)
        if text in self.allowed:  # a slur is one whether or not somebody bears it
            return text if text in self.anywhere and text not in NAMES_FIRST else None
        if text in self.whole:
            return text
        return str(found.group(0))

    def refuses(self, name: str) -> bool:
        return self.match(name) is not None

    def match_full(self, given: str, family: str) -> str | None:
        """What makes the full name unsafe: a part's word, a word across the join, or the pair
        being a prank name; None when it is safe."""
        return self.match(given) or self.match(family) or self.match_join(given, family)

    def match_join(self, given: str, family: str) -> str | None:
        """What makes a full name of two safe parts unsafe: a word across the join, or the pair
        being a prank name; None when it is safe. (match_full without checking each part again,
        for parts already filtered.)"""
        joined = (given + family).lower()
        if joined in self.pranks:
            return f"{given.lower()} {family.lower()}"
        join = len(given)
        start = max(0, join - self._longest + 1)  # type: ignore[attr-defined]
        for at in range(start, join):
            # a word across the join that starts the full name (Shi Tanya) or ends it (Bea Ner);
            # one wholly inside it (Aniara Boocome: "abo") is not read as a word across a space
            head = self._pattern.match(joined, at) if at == 0 else None  # type: ignore[attr-defined]
            if head is not None and head.end() > join:
                return str(head.group(0))
            tail = self._pattern.fullmatch(joined, at)  # type: ignore[attr-defined]
            if tail is not None:
                return str(tail.group(0))
        return None

    def refuses_full(self, given: str, family: str) -> bool:
        return self.match_full(given, family) is not None
