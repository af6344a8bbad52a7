"""training/conditions.py: a condition's value indices and the lookup table agree with index()."""

from __future__ import annotations

import pytest

from training.conditions import ConditionSpace


@pytest.mark.parametrize("factors", [["sex", "decade"], ["decade"]])
def test_value_indices_through_lookup_give_each_conditions_index(factors: list[str]) -> None:
    space = ConditionSpace.build(factors)
    table = space.lookup()
    for k, combo in enumerate(space.combos):
        given = {f: v for f, v in zip(space.factors, combo, strict=True) if v is not None}
        with_none = dict(zip(space.factors, combo, strict=True))  # left out written as None
        for row in (given, with_none):
            (indices,) = space.value_indices([row]).tolist()
            assert table[tuple(indices)].item() == k == space.index(row)


def test_every_factor_left_out_is_no_condition() -> None:
    space = ConditionSpace.build(["sex", "decade"])
    (indices,) = space.value_indices([{}]).tolist()
    assert indices == [len(v) for v in space.factors.values()]
    assert space.lookup()[tuple(indices)].item() == -1
