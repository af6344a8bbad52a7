"""
A corpus as training data: the train/validation/test split, the items as padded tensors, their
conditions and draw weights, and the loss of a model over them (what training, scoring and the
ensembles all measure). No training loop here: training/train.py.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from training.conditions import ConditionSpace
from training.corpus import EraItem, WorldItem, read_items
from training.model import IGNORE_INDEX, HierarchicalModel

# how a conditioned corpus's items are drawn in training, as a function of (births, births of the
# item's sex and decade in all): alike; by a function of births; by births within each sex and
# decade ("share"), which gives every condition the same weight however many births it had; or
# between "births" and "share" ("share-sqrt": births within each sex and decade, and each sex and
# decade by the square root of its births, so the 1880s, with a fortieth of the 1950s' births, get
# a sixth of their draws rather than a fortieth)
WEIGHTINGS = {
    "none": lambda births, cell: torch.ones_like(births),
    "log": lambda births, cell: 1 + torch.log(births),
    "sqrt": lambda births, cell: torch.sqrt(births),
    "births": lambda births, cell: births,
    "share": lambda births, cell: births / cell,
    "share-sqrt": lambda births, cell: births / torch.sqrt(cell),
}


@dataclass
class Split:
    train: list[str]
    val: list[str]
    test: list[str]

    def only(self, names: set[str]) -> Split:
        """The same split, each part keeping only `names`; every part must keep one."""
        kept = Split(*([s for s in part if s in names] for part in (self.train, self.val, self.test)))
        if not (kept.train and kept.val and kept.test):
            raise ValueError(
                f"the corpus's split leaves {len(kept.train)}/{len(kept.val)}/{len(kept.test)} "
                "train/val/test names to these items; every part needs one"
            )
        return kept

    def without_in_training(self, names: set[str]) -> Split:
        """The same split with `names` left out of its training part (validation and test keep theirs)."""
        return Split([s for s in self.train if s not in names], self.val, self.test)


def split_items(items: list[str], val_fraction: float, test_fraction: float, seed: int) -> Split:
    """Shuffle with `seed` and cut into train/val/test; every part must end up non-empty."""
    order = list(items)
    random.Random(seed).shuffle(order)
    n = len(order)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    if min(n_val, n_test, n_train) < 1:
        raise ValueError(
            f"a split of {n} items with val {val_fraction} and test {test_fraction} leaves an empty "
            f"part (train {n_train}, val {n_val}, test {n_test})"
        )
    return Split(order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])


def held_out_of(corpora: tuple[str, ...], val_fraction: float, test_fraction: float, seed: int) -> set[str]:
    """The items that runs on `corpora` with this seed and these fractions hold out (val, test)."""
    held: set[str] = set()
    for path in corpora:
        items, _ = read_items(Path(path))
        split = split_items(items, val_fraction, test_fraction, seed)
        held.update(split.val, split.test)
    return held


def excluded_held_out(
    corpus: Path, listed: tuple[str, ...], val_fraction: float, test_fraction: float, seed: int
) -> tuple[set[str], set[str]]:
    """What `--exclude-held-out LISTED` leaves out of a run on `corpus`: (the items left out of the
    corpus before it is split, the names left out of its training part after). The listed corpora's
    held-out items leave the corpus, unless the run's own corpus is listed: then its split stays the
    one every run on it makes (its test names are what it is scored on), and the others' held-out
    names leave its training part only."""
    others = tuple(p for p in listed if Path(p).resolve() != corpus.resolve())
    held = held_out_of(others, val_fraction, test_fraction, seed)
    return (set(), held) if len(others) < len(listed) else (held, set())


class Encoded:
    """Items as padded tensors: x (N, ctx + L) inputs and y (N, L + 1) targets; for conditioned
    items also their factor value indices (N, F) and births (N,)."""

    def __init__(
        self,
        items: list[str],
        stoi: dict[str, int],
        context_length: int,
        factors: Tensor | None = None,
        births: Tensor | None = None,
    ) -> None:
        self.lengths = torch.tensor([len(s) for s in items])
        max_len = int(self.lengths.max())
        self.pad = context_length - 1
        ids = torch.tensor([[stoi[c] for c in s] + [0] * (max_len - len(s)) for s in items], dtype=torch.long)
        self.x = torch.cat([torch.zeros(len(items), self.pad + 1, dtype=torch.long), ids], dim=1)
        # targets: the characters, then the end of the item (0), then padding that is not counted
        position = torch.arange(max_len + 1).unsqueeze(0)  # (1, L + 1)
        self.y = torch.cat([ids, torch.zeros(len(items), 1, dtype=torch.long)], dim=1)
        self.y = self.y.masked_fill(position > self.lengths.unsqueeze(1), IGNORE_INDEX)
        self.n_targets = int((self.y != IGNORE_INDEX).sum())
        self.factors, self.births = factors, births
        self.weights: Tensor | None = None  # per item, for weighted sampling and weighted loss

    def __len__(self) -> int:
        return self.x.size(0)

    def batch(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        longest = int(self.lengths[rows].max())  # trim the right padding this batch does not need
        return self.x[rows, : self.pad + 1 + longest], self.y[rows, : longest + 1]


class Conditioner:
    """Puts each row's condition into a batch: its token in the padding and at the start
    ("tokens"), or its index for the model's `cond` argument ("global")."""

    def __init__(
        self, space: ConditionSpace, vocab_size: int, context_length: int, mode: str, dropout: float
    ) -> None:
        self.space, self.vocab_size, self.mode, self.dropout = space, vocab_size, mode, dropout
        self.start = context_length  # columns 0 .. context_length - 1: the left padding and the start
        self.table = space.lookup()
        self.absent = torch.tensor([len(v) for v in space.factors.values()])  # "left out", per factor

    def __call__(
        self, x: Tensor, factors: Tensor, gen: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T) with its boundary padding; factors (B, F). With `gen`, each factor is left out
        with the dropout probability. Returns x for the model, and cond (B,) in "global" mode."""
        if gen is not None and self.dropout > 0:
            drop = torch.rand(factors.shape, generator=gen) < self.dropout
            factors = torch.where(drop, self.absent.expand_as(factors), factors)
        k = self.table[tuple(factors.unbind(1))]  # (B,) condition index, -1: none
        if self.mode == "global":
            return x, k + 1
        token = torch.where(k >= 0, k + self.vocab_size, 0)  # (B,)
        x = x.clone()
        x[:, : self.start] = token.unsqueeze(1)
        return x, None


@torch.inference_mode()
def item_losses(
    model: HierarchicalModel, data: Encoded, cond: Conditioner | None = None, batch_size: int = 2048
) -> tuple[Tensor, Tensor]:
    """Nats summed over each item's characters (end included), and how many there are: (N,), (N,)."""
    was_training = model.training
    model.eval()
    sums, counts = torch.zeros(len(data), dtype=torch.float64), torch.zeros(len(data), dtype=torch.long)
    for start in range(0, len(data), batch_size):
        rows = torch.arange(start, min(start + batch_size, len(data)))
        x, y = data.batch(rows)
        c = None
        if cond is not None and data.factors is not None:
            x, c = cond(x, data.factors[rows])
        logits, _ = model(x, cond=c)
        nll = F.cross_entropy(logits.transpose(1, 2), y, ignore_index=IGNORE_INDEX, reduction="none")
        sums[rows] = nll.double().sum(1)
        counts[rows] = (y != IGNORE_INDEX).sum(1)
    model.train(was_training)
    return sums, counts


def evaluate(
    model: HierarchicalModel, data: Encoded, cond: Conditioner | None = None, weighted: bool = False
) -> float:
    """Mean nats per predicted character over every item of `data`; `weighted`: each item's
    characters count by the item's weight, as the items are drawn in training."""
    sums, counts = item_losses(model, data, cond)
    return mean_nats(sums, counts, data.weights if weighted else None)


def mean_nats(sums: Tensor, counts: Tensor, weights: Tensor | None = None) -> float:
    """Nats per character from each item's summed nats and its characters (N,), (N,): every item
    alike, or each counted `weights` (N,) times."""
    if weights is not None:
        return float((sums * weights).sum() / (counts.double() * weights).sum())
    return float(sums.sum()) / int(counts.sum())


@dataclass
class Corpus:
    """What a run trains on: one text per item and, for a conditioned corpus, each item's factor
    values and births."""

    texts: list[str]
    factors: list[dict[str, Any]] | None = None  # per item, e.g. {"sex": "F", "decade": 1920}
    births: list[int] | None = None  # per item: births, or the office's count (names-world)

    @classmethod
    def of_era(cls, items: list[EraItem]) -> Corpus:
        return cls(
            [it.name for it in items],
            [{"sex": it.sex, "decade": it.decade} for it in items],
            [it.births for it in items],
        )

    @classmethod
    def of_world(cls, items: list[WorldItem]) -> Corpus:
        return cls(
            [it.name for it in items],
            [{"sex": it.sex, "country": it.country} for it in items],
            [it.count for it in items],
        )

    def of_countries(self, codes: tuple[str, ...]) -> Corpus:
        """The items of these countries alone (a names-world corpus); ValueError for another corpus."""
        if not self.factors or "country" not in self.factors[0]:
            raise ValueError("--countries applies to a corpus whose items have a country (names-world)")
        keep = [i for i, f in enumerate(self.factors) if f["country"] in codes]
        return self.subset(keep)

    def without(self, held: set[str]) -> Corpus:
        return self.subset([i for i, s in enumerate(self.texts) if s not in held])

    def subset(self, keep: list[int]) -> Corpus:
        return Corpus(
            [self.texts[i] for i in keep],
            None if self.factors is None else [self.factors[i] for i in keep],
            None if self.births is None else [self.births[i] for i in keep],
        )
