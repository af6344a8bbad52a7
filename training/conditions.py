"""
Conditions of a conditioned model (for names-era: sex and decade of birth; for names-world: sex
and country), and how they become tokens.

Every combination of factor values, each factor either given or left out, is a condition of its
own, except the one with every factor left out, which is the plain boundary token (no condition).
With factors sex (F, M) and decade (1880, ..., 2020) that is 3 x 16 - 1 = 47 conditions: (F, 1880),
..., (F, None), (M, ...), (None, 1880), .... During training each factor of an item is left out
with probability `dropout`, so the model also learns "a girl's name, any decade", "a name of the
1920s, either sex" and, with both left out, names of any sex and decade.

    space = ConditionSpace.build(["sex", "decade"])
    space.index({"sex": "F", "decade": 1920})   # -> 0-based condition index
    space.meta(vocab_size=27, dropout=0.1)      # the meta.json "conditions" entry
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from training.corpus import DECADES, LAST_YEAR, SEXES
from training.countries import CODES

# every factor a corpus can give its items: names-era gives sex and decade, names-world sex and
# country (ISO 3166-1 alpha-2)
FACTORS: dict[str, tuple[Any, ...]] = {"sex": SEXES, "decade": DECADES, "country": CODES}
# how a request's fields map onto the factors: sex and country as they are; a year onto its decade
REQUEST_FIELDS: dict[str, dict[str, Any]] = {
    "sex": {"factor": "sex", "values": list(SEXES)},
    "year": {"factor": "decade", "min": DECADES[0], "max": LAST_YEAR, "bucket": 10},
    "country": {"factor": "country", "values": list(CODES)},
}


@dataclass(frozen=True)
class ConditionSpace:
    factors: dict[str, tuple[Any, ...]]  # factor -> its values, in order
    combos: tuple[tuple[Any, ...], ...]  # every condition: one value or None per factor

    @classmethod
    def build(cls, names: list[str]) -> ConditionSpace:
        unknown = [n for n in names if n not in FACTORS]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"--conditions must be 'none' or a comma-separated subset of {', '.join(FACTORS)}, "
                f"got {','.join(names)!r}"
            )
        factors = {n: FACTORS[n] for n in FACTORS if n in names}  # in the canonical order
        choices = [(*values, None) for values in factors.values()]
        combos = tuple(c for c in itertools.product(*choices) if any(v is not None for v in c))
        return cls(factors, combos)

    def __len__(self) -> int:
        return len(self.combos)

    def index(self, values: dict[str, Any]) -> int:
        """The 0-based condition of the given factor values (a factor absent or None: left out)."""
        return self.combos.index(tuple(values.get(f) for f in self.factors))

    def value_indices(self, rows: list[dict[str, Any]]) -> Tensor:
        """(N, F) each row's value index per factor; a factor absent from a row or None is
        len(values), "left out" (as in index()), which lookup() and the Conditioner read as such."""
        return torch.tensor(
            [
                [len(vals) if r.get(f) is None else vals.index(r[f]) for f, vals in self.factors.items()]
                for r in rows
            ]
        )

    def lookup(self) -> Tensor:
        """A table from value indices (with len(values) standing for "left out") to the condition
        index, -1 where every factor is left out: table[i_1, ..., i_F]."""
        sizes = [len(v) + 1 for v in self.factors.values()]
        table = torch.full(sizes, -1, dtype=torch.long)
        for k, combo in enumerate(self.combos):
            at = tuple(
                len(vals) if v is None else vals.index(v)
                for v, vals in zip(combo, self.factors.values(), strict=True)
            )
            table[at] = k
        return table

    def meta(self, vocab_size: int, dropout: float) -> dict[str, Any]:
        """The meta.json "conditions" entry: the factors, the token of every condition, and how
        request fields map onto them (what the service needs, with nothing from training/)."""
        return {
            "factors": {f: list(v) for f, v in self.factors.items()},
            "tokens": [
                {**dict(zip(self.factors, combo, strict=True)), "token": vocab_size + k}
                for k, combo in enumerate(self.combos)
            ],
            "fields": {k: v for k, v in REQUEST_FIELDS.items() if v["factor"] in self.factors},
            "placement": "the condition's token stands where the boundary would: the left padding and "
            "the start of the name; without any condition, the boundary itself",
            "absent": "a factor left out of the request is marginalised: the token is the one trained "
            f"with that factor dropped (each factor dropped from {dropout:.0%} of training items)",
            "dropout": dropout,
        }
