"""ItemSet: a model's training items, answering `in` from a sorted array of hashes."""

from __future__ import annotations

import gc

from app.inference import items as items_module
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


def test_the_same_lines_in_another_order_share_one_set_while_it_lives() -> None:
    a = ItemSet.of_lines("emma\nliam\nnoah")
    assert ItemSet.of_lines("noah\nemma\nliam") is a  # the four US models' item lists, in brief
    assert ItemSet.of_lines("noah\nemma") is not a and ItemSet.of_lines("noah\nemma\nliam\nliam") == a
    key = (3, sum(map(hash, ["emma", "liam", "noah"])))
    assert items_module._BY_LINES[key] is a
    del a
    gc.collect()
    assert key not in items_module._BY_LINES  # a set no model holds any more is let go


def test_every_name_of_a_large_set_is_found_and_no_other() -> None:
    """Thousands of names spread over every range of hashes: each is found in its own range."""
    names = [f"name{i}" for i in range(20_000)]
    held = ItemSet(names[::2])
    assert len(held) == 10_000
    assert all(name in held for name in names[::2]) and not any(name in held for name in names[1::2])
