"""
Test loss of a checkpoint on a corpus's test split, computed as training computes the card's.
A conditioned checkpoint may be given a condition first.

    python -m training score models/names.pt --corpus resources/names.txt
    python -m training score models/names-era.pt --corpus resources/names-female.txt --sex F --year 2015
    python -m training score models/names.pt --corpus resources/names.txt --markov 3,4

The split is the one `python -m training train` makes (same seed and fractions by default), and the
loss is training's own (`data.item_losses` and `mean_nats`, as `data.evaluate`, over the model
rebuilt from the checkpoint), so a checkpoint scored on its own corpus gives the test loss on its
card, and any other checkpoint scored on that corpus is measured on the same held-out names: the way
to compare routes to a better model (trained on one year alone, pretrained on every year and
fine-tuned, or the era model asked for the year's decade). A condition token fills the whole context
before the first character, as in training. Prints one line: checkpoint, corpus, condition, names
scored and nats per character (the end of each name counted, as on the cards). `--markov 3,4` adds
the baselines: a character Markov chain of each order (training/markov.py) trained on the same
split's training names and scored on its test names (then the checkpoint may be left out).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from training.conditions import ConditionSpace
from training.config import TrainConfig
from training.corpus import CorpusError, read_items
from training.data import Conditioner, Encoded, item_losses, mean_nats, split_items
from training.export import load_trained
from training.markov import Markov


def score_names(
    path: Path, names: list[str], condition: dict[str, Any], weights: list[float] | None = None
) -> float:
    """Mean nats per character (end included) of `names` under the checkpoint at `path`, every
    name given `condition` (factor -> value; empty: none); with `weights`, each name's characters
    count `weights[i]` times."""
    w = None if weights is None else torch.tensor(weights, dtype=torch.float64)
    return mean_nats(*name_losses(path, names, condition), w)


def name_losses(path: Path, names: list[str], condition: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """Each name's nats summed over its characters (end included), and how many there are: (N,),
    (N,), under the checkpoint at `path`, every name given `condition` (empty: none). What any mean
    of them (mean_nats, by name or by weight) is made from."""
    model, meta, _ = load_trained(path)
    stoi = {c: i for i, c in enumerate(meta["vocab"])}
    unknown = sorted({c for n in names for c in n if c not in stoi})
    if unknown:
        raise ValueError(f"characters {''.join(unknown)!r} are not in the vocabulary of {path}")
    ctx = int(meta["context_length"])
    if not condition:
        return item_losses(model, Encoded(names, stoi, ctx))
    if "conditions" not in meta:
        raise ValueError(f"{path} declares no conditions; drop --sex and --year")
    space = ConditionSpace.build(list(meta["conditions"]["factors"]))
    if any(f not in space.factors or v not in space.factors[f] for f, v in condition.items()):
        raise ValueError(f"{path} has no condition token for {condition}")
    factors = space.value_indices([condition]).expand(len(names), -1)  # (N, F)
    cond = Conditioner(space, len(stoi), ctx, "tokens", dropout=0.0)
    return item_losses(model, Encoded(names, stoi, ctx, factors=factors), cond)


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m training score", description=__doc__.split("\n")[1])
    parser.add_argument("model", type=Path, nargs="?", help="a checkpoint (.pt); optional with --markov")
    parser.add_argument(
        "--corpus", type=Path, required=True, help="one-item-per-line corpus whose test split is scored"
    )
    parser.add_argument("--sex", choices=["F", "M"], help="condition: sex (conditioned checkpoints only)")
    parser.add_argument("--year", type=int, help="condition: birth year; the model uses its decade")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training")
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction, help="as in training")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the split, as in training")
    parser.add_argument(
        "--markov",
        default="",
        metavar="ORDER,...",
        help="also score character Markov chains of these orders, trained on the split's training names",
    )
    args = parser.parse_args(argv)
    try:
        orders = [int(o) for o in args.markov.split(",") if o]
    except ValueError:
        parser.error(f"--markov: expected comma-separated orders, got {args.markov!r}")
    if args.model is None and not orders:
        parser.error("give a checkpoint, --markov ORDERS, or both")
    try:
        items, _ = read_items(args.corpus)
        split = split_items(items, args.val_fraction, args.test_fraction, args.seed)
        test = split.test
        decade = None if args.year is None else args.year // 10 * 10
        condition = {k: v for k, v in (("sex", args.sex), ("decade", decade)) if v is not None}
        if args.model is not None:
            loss = score_names(args.model, test, condition)
            asked = ", ".join(f"{k} {v}" for k, v in condition.items()) or "no condition"
            print(f"{args.model} on {args.corpus} test ({len(test)} names), {asked}: {loss:.4f} nats/char")
        for order in orders:
            chain_loss = Markov(split.train, order).loss(test)
            print(f"Markov-{order} on {args.corpus} test ({len(test)} names): {chain_loss:.4f} nats/char")
    except (CorpusError, ValueError, OSError) as e:
        print(f"error: {e}")
        return 2
    return 0
