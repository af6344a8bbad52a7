"""
A model's training items as the service keeps them: a fixed set of names that answers `name in
items` in a small part of a frozenset's memory.

A frozenset of str costs about 100 bytes a name (the string object and its slot in the table), and
the service holds one per distinct item list: 194,000 names for the US models, and names-world
alone has 428,494 (some 45 MB, where one more model may add at most 30). An ItemSet keeps, for
lookups, each name's hash in a sorted array of 64-bit integers (`in` is a binary search within the
hash's range of the array, about half a microsecond against a frozenset's 0.17), and the names as
one string, read only to iterate (reports and tests, never a request). Python's str hash is fixed
for the life of a process, which is all an index built at start-up needs; two names of one hash
(the odds are about n / 2^64 per lookup) count as one.

Nothing here imports FastAPI or training/.
"""

from __future__ import annotations

import weakref
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator

_SHIFT = 52  # a hash's top 12 bits pick its range: (hash >> 52) + 2048, from 0 to 4,095
_HALF = 1 << 11
_BUCKETS = 1 << 12


class ItemSet:
    __slots__ = ("__weakref__", "_hash", "_hashes", "_lowered", "_starts", "_text")

    def __init__(self, names: Iterable[str] | str) -> None:
        """The set of `names`, or of the lines of a text (items.txt); blank ones are not items."""
        text = names if isinstance(names, str) else "\n".join(names)
        self._text = text  # the names as given, to iterate
        hashes = set(map(hash, text.split("\n")))
        hashes.discard(hash(""))
        self._hashes = array("q", sorted(hashes))  # (N,) for lookups
        # where each of the 4,096 ranges of hashes (by their top 12 bits) begins in _hashes: a
        # lookup searches only its range (about 25 hashes for the US names, not 104,819)
        self._starts = array("q", (bisect_left(self._hashes, (b - _HALF) << _SHIFT) for b in range(_BUCKETS)))
        self._starts.append(len(self._hashes))
        self._hash = hash(self._hashes.tobytes())
        # the names lowercased (the safe filter's real names): this set when they already are
        self._lowered = self if text == text.lower() else ItemSet(text.lower())

    @classmethod
    def of_lines(cls, text: str) -> ItemSet:
        """The set of the text's lines, shared with any set of the same lines alive in the process.

        Models trained on the same names (the four US given-name models hold the same 104,819 in
        four orders) then hold one set, and only the first pays for sorting its hashes: the others
        are recognised by their lines' count and the sum of their hashes, which no order changes
        (two different lists alike in both: odds of about 2^-64)."""
        lines = text.split("\n")
        key = (len(lines), sum(map(hash, lines)))
        found = _BY_LINES.get(key)
        if found is None:
            found = _BY_LINES.setdefault(key, cls(text))
        return found

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        h = hash(name)
        b = (h >> _SHIFT) + _HALF
        i = bisect_left(self._hashes, h, self._starts[b], self._starts[b + 1])
        return i < len(self._hashes) and self._hashes[i] == h

    def __iter__(self) -> Iterator[str]:
        """Each name once, in its first place (not on the request path: reports and tests)."""
        return (s for s in dict.fromkeys(self._text.split("\n")) if s)

    def __len__(self) -> int:
        return len(self._hashes)

    def __eq__(self, other: object) -> bool:
        """The same names, in whatever order (compared by their hashes)."""
        if not isinstance(other, ItemSet):
            return NotImplemented
        return self._hash == other._hash and self._hashes == other._hashes

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"ItemSet({len(self)} names)"

    @property
    def lowered(self) -> ItemSet:
        """The same names in lowercase (itself when they are)."""
        return self._lowered


# every ItemSet made by of_lines and still in use, by its lines' count and hash sum
_BY_LINES: weakref.WeakValueDictionary[tuple[int, int], ItemSet] = weakref.WeakValueDictionary()
