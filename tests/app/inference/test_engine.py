"""The scripted batch loop's pieces: its settings records (every per-row setting carried by name,
never by position), its random numbers (SplitMix64 over torch int64, checked against a plain
Python reference and for uniformity) and its temperature/top-k/top-p filter."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import pytest
import torch
from torch import Tensor

from app.inference.engine import (
    RowSettings,
    Sampling,
    TaskColumns,
    TaskSettings,
    check_columns,
    filter_rows,
    mix,
    select_rows,
    task_columns,
    uniform,
)

MASK = (1 << 64) - 1


def splitmix64_output(x: int) -> int:
    """Reference: SplitMix64's output function on unsigned 64-bit integers."""
    z = (x + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def to_signed(x: int) -> int:
    return x - (1 << 64) if x >= 1 << 63 else x


def test_settings_records_take_their_fields_by_name_only() -> None:
    """Sampling and TaskSettings are keyword-only: min_length and max_length (both ints) cannot
    trade places by being written in the wrong order."""
    with pytest.raises(TypeError):
        Sampling(1.0, 0, 1.0, 6, 3)  # type: ignore[misc]
    with pytest.raises(TypeError):
        TaskSettings(1, 0, 0, 0, -1, 0, 0, 0, Sampling())  # type: ignore[misc]


def distinct_task(k: int) -> TaskSettings:
    """A task whose every field holds a value no other field of any task holds (k: which task)."""
    return TaskSettings(
        rows=100 + k, kind=200 + k, prefix_length=300 + k, start=400 + k, twin_start=450 + k,
        offset=500 + k, key=600 + k, slot=700 + k,
        sampling=Sampling(temperature=0.8 + k, top_k=900 + k, top_p=0.01 + k, min_length=1100 + k,
                          max_length=1200 + k),
    )  # fmt: skip


def test_every_setting_reaches_its_own_column() -> None:
    tasks = [distinct_task(0), distinct_task(1)]
    columns = task_columns(tasks)
    for name in TaskColumns._fields:
        where = "sampling" if name in {f.name for f in dataclasses.fields(Sampling)} else None
        expected = [getattr(t.sampling if where else t, name) for t in tasks]
        assert getattr(columns, name) == expected, name


def test_columns_in_another_order_are_refused() -> None:
    """task_columns fills TaskColumns by position, fast; check_columns, run on it at import,
    refuses a NamedTuple whose fields are not TaskSettings' then Sampling's, in that order."""
    check_columns(TaskColumns)
    swapped = list(TaskColumns._fields)
    i, j = swapped.index("min_length"), swapped.index("max_length")
    swapped[i], swapped[j] = swapped[j], swapped[i]
    Swapped = NamedTuple("Swapped", [(name, list[int]) for name in swapped])  # type: ignore[misc]
    with pytest.raises(TypeError, match="min_length, max_length"):
        check_columns(Swapped)
    Missing = NamedTuple("Missing", [(name, list[int]) for name in TaskColumns._fields[:-1]])  # type: ignore[misc]
    with pytest.raises(TypeError):
        check_columns(Missing)


def select_every_other(rows: RowSettings) -> RowSettings:
    return select_rows(rows, torch.tensor([0, 2]))


def test_row_settings_keep_each_field_in_place_through_select() -> None:
    """Scripted as the loop is: every field of RowSettings comes back from select_rows holding its
    own values (field i's tensor is filled with i), for the rows kept."""
    names = list(RowSettings._fields)
    tensors = {name: torch.full((3, 2) if name in ("forced", "uniforms") else (3,), i) for i, name in
               enumerate(names)}  # fmt: skip
    for select in (select_every_other, torch.jit.script(select_every_other)):
        kept = select(RowSettings(**tensors))
        for i, name in enumerate(names):
            value = getattr(kept, name)
            assert value.size(0) == 2 and bool((value == i).all()), name


def test_mix_matches_the_reference_bit_for_bit() -> None:
    keys = [0, 1, 2, 12345, -1, -(1 << 63), (1 << 63) - 1, 0x9E3779B97F4A7C15 - (1 << 64)]
    got = mix(torch.tensor(keys, dtype=torch.long)).tolist()
    assert got == [to_signed(splitmix64_output(k & MASK)) for k in keys]


def test_uniforms_are_uniform_and_in_range() -> None:
    u = uniform(torch.arange(200_000, dtype=torch.long) * 0x2545F4914F6CDD1D)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.003
    counts = torch.histc(u.float(), bins=20, min=0, max=1)
    expected = 200_000 / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 45  # 19 degrees of freedom: p ~ 0.001 at 43.8


def filter_probs(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None) -> Tensor:
    """filter_rows with one setting for every row, renormalised: next-token probabilities (B, V)
    after temperature, top-k and nucleus (top-p) filtering."""
    B, V = logits.shape
    k = V if top_k is None else min(top_k, V)
    p = 1.0 if top_p is None else top_p  # 1: no nucleus cut
    probs = filter_rows(
        logits,
        torch.full((B,), temperature),
        torch.full((B,), k, dtype=torch.long),
        torch.full((B,), p),
        k < V,
        p < 1.0,
        torch.zeros(B, dtype=torch.bool),
    )
    if p < 1.0:
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def test_top_k_keeps_k() -> None:
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0, -1.0]])
    p = filter_probs(logits, 1.0, 2, None)
    assert (p > 0).sum() == 2 and p[0, 0] > p[0, 2] > 0 and math.isclose(float(p.sum()), 1.0, rel_tol=1e-6)


def test_top_p_keeps_the_smallest_set_with_that_mass() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    p = filter_probs(probs.log(), 1.0, None, 0.8)
    assert torch.allclose(p, torch.tensor([[0.5 / 0.8, 0.3 / 0.8, 0.0, 0.0]]))
    only_top = filter_probs(probs.log(), 1.0, None, 0.1)
    assert torch.equal(only_top, torch.tensor([[1.0, 0.0, 0.0, 0.0]]))


def test_a_vanishing_top_p_still_leaves_the_likeliest_token() -> None:
    """1e-46 passes the schema (top_p > 0) but is 0 in float32: the cut must still keep the top
    token, or there is nothing left to sample and every name comes back empty."""
    probs = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    for top_p in (1e-46, 0.0, 1e-9):
        p = filter_probs(probs.log(), 1.0, None, top_p)
        assert torch.equal(p, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])), top_p


def test_the_end_mask_and_every_cut_together_leave_a_token() -> None:
    """With the end masked (min_length not reached) and the end the likeliest, the nucleus and
    top-k cuts keep the likeliest of the rest."""
    logits = torch.tensor([[5.0, 1.0, 2.0, 0.5]])  # token 0, the end, is the likeliest
    B = logits.size(0)
    probs = filter_rows(
        logits, torch.ones(B), torch.ones(B, dtype=torch.long), torch.zeros(B), True, True,
        torch.ones(B, dtype=torch.bool),
    )  # fmt: skip
    assert torch.equal(probs > 0, torch.tensor([[False, False, True, False]]))


def test_temperature_sharpens() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    assert filter_probs(logits, 0.5, None, None)[0, 0] > filter_probs(logits, 1.0, None, None)[0, 0]
