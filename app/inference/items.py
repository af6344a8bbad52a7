"""
A model's training items as the service keeps them: a fixed set of names that answers `name in
items` in a small part of a frozenset's memory.

A frozenset of str costs about 100 bytes a name (the string object and its slot in the table), and
the service holds one per distinct item list: 194,000 names for the US models, and names-world
alone has 428,494 (some 45 MB, where one more model may add at most 30). An ItemSet keeps, for
lookups, each name's hash in a sorted array of 64-bit integers (`in` is a binary search, about a
microsecond), and the names themselves as one string, read only to iterate (reports and tests,
never a request). Python's str hash is fixed for the life of a process, which is all an index built
at start-up needs; two names of one hash (the odds are about n / 2^64 per lookup) count as one.

Nothing here imports FastAPI or training/.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator


class ItemSet:
    __slots__ = ("_hash", "_hashes", "_len", "_lowered", "_text")

    def __init__(self, names: Iterable[str]) -> None:
        unique = [s for s in dict.fromkeys(names) if s]  # blank lines of items.txt are not items
        self._text = "\n".join(unique)  # one string: the names, in their first order, to iterate
        self._hashes = array("q", sorted({hash(s) for s in unique}))  # (N,) for lookups
        self._len = len(unique)
        self._hash = hash(self._hashes.tobytes())
        # the names lowercased (the safe filter's real names): this set when they already are
        self._lowered = self if self._text == self._text.lower() else ItemSet(s.lower() for s in unique)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        h = hash(name)
        i = bisect_left(self._hashes, h)
        return i < len(self._hashes) and self._hashes[i] == h

    def __iter__(self) -> Iterator[str]:
        return iter(self._text.split("\n") if self._text else ())

    def __len__(self) -> int:
        return self._len

    def __eq__(self, other: object) -> bool:
        """The same names, in whatever order (compared by their hashes)."""
        if not isinstance(other, ItemSet):
            return NotImplemented
        return self._hash == other._hash and self._hashes == other._hashes

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"ItemSet({self._len} names)"

    @property
    def lowered(self) -> ItemSet:
        """The same names in lowercase (itself when they are)."""
        return self._lowered
