"""
Which generated names are not safe to show: those that contain an obscenity or a slur.

The words come from two maintained, MIT-licensed lists that PyPI packages ship: `wordfilter`'s
(Darius Kazemi's list for text generators: slurs and obscenities) and `better-profanity`'s (swear
words). A name is refused when, lowercased, it contains one of them anywhere (substring matching:
an invented name has no word boundaries), unless it is a real name: every item of the loaded
models' corpora (SSA given names of every year, 1990 census surnames) is allowed, so Dickson,
Hancock or Cassandra are never refused.

Two cuts keep the lists to what is offensive inside a name. better-profanity's entries of fewer
than 4 letters (ass, cum, len, rum, ...) and those with other characters than letters (leetspeak,
phrases; a name has letters only) are left out. And EVERYDAY words, which both lists carry but
which are ordinary English and turn up inside ordinary invented names (hell, kill, organ, drunk),
are refused only as the whole name. bench/safety.py measures what the filter refuses on each
model's samples and on the real names (docs/models.md has the figures).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

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
])
# fmt: on
MIN_LETTERS = 4  # better-profanity's shorter entries are too common inside names to match anywhere


def package_words() -> tuple[frozenset[str], frozenset[str]]:
    """(words refused anywhere in a name, words refused as the whole name), from the packages."""
    raw = json.loads(resources.files("wordfilter").joinpath("badwords.json").read_text(encoding="utf-8"))
    words = {w.lower().replace("-", "") for w in raw}  # "half-breed": a name has no hyphen
    text = resources.files("better_profanity").joinpath("profanity_wordlist.txt").read_text(encoding="utf-8")
    words |= {w for w in (line.strip().lower() for line in text.splitlines()) if len(w) >= MIN_LETTERS}
    words = {w for w in words if w.isascii() and w.isalpha()}
    return frozenset(words - EVERYDAY), frozenset(words & EVERYDAY)


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


@dataclass(frozen=True)
class SafetyFilter:
    """refuses(name): whether a generated name contains an obscenity or a slur."""

    anywhere: frozenset[str]  # refused wherever they appear in the name
    whole: frozenset[str]  # refused only as the whole name
    allowed: frozenset[str]  # real names: never refused

    @classmethod
    def from_packages(cls, allowed: Iterable[str]) -> SafetyFilter:
        anywhere, whole = package_words()
        return cls(anywhere, whole, frozenset(s.lower() for s in allowed))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", trie_pattern(self.anywhere))

    def match(self, name: str) -> str | None:
        """The word that makes `name` unsafe, or None."""
        text = name.lower()
        if text in self.allowed:
            return None
        if text in self.whole:
            return text
        found = self._pattern.search(text)  # type: ignore[attr-defined]
        return found.group(0) if found else None

    def refuses(self, name: str) -> bool:
        return self.match(name) is not None
