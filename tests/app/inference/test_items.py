"""ItemSet: a model's training items, answering `in` from a sorted array of hashes."""

from __future__ import annotations

from app.inference.items import ItemSet


def test_an_item_set_holds_its_names_and_nothing_else() -> None:
    items = ItemSet(["emma", "", "liam", "emma", "zoë", "Анна"])
    assert len(items) == 4 and list(items) == ["emma", "liam", "zoë", "Анна"]  # blank and repeat dropped
    assert all(name in items for name in ("emma", "liam", "zoë", "Анна"))
    assert not any(name in items for name in ("emm", "emma ", "Emma", "zoe", "анна", "", None, 3))
    assert "x" not in ItemSet([]) and list(ItemSet([])) == [] and len(ItemSet([""])) == 0


def test_item_sets_are_equal_for_the_same_names_in_any_order() -> None:
    a, b = ItemSet(["emma", "liam", "noah"]), ItemSet(["noah", "emma", "liam", "liam"])
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1  # one set for models of the same items
    assert a != ItemSet(["emma", "liam"]) and a != {"emma", "liam", "noah"}


def test_the_lowered_set_is_itself_when_every_name_is_lowercase() -> None:
    lower = ItemSet(["emma", "анна"])
    assert lower.lowered is lower
    mixed = ItemSet(["Emma", "O'Neil", "emma"])
    assert "emma" in mixed.lowered and "o'neil" in mixed.lowered and "O'Neil" not in mixed.lowered
    assert len(mixed.lowered) == 2 and "Emma" in mixed and "emma" in mixed
