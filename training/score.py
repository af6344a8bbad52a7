"""
Test loss of a checkpoint on a corpus's test split, read through its step() as the service reads it.
A conditioned checkpoint may be given a condition first.

    python -m training score models/names.pt --corpus resources/names.txt
    python -m training score models/names-era.pt --corpus resources/names-female.txt --sex F --year 2015

The split is the one `python -m training train` makes (same seed and fractions by default), so a
checkpoint scored on its own corpus gives the test loss on its card, and any other checkpoint scored
on that corpus is measured on the same held-out names: the way to compare routes to a better 2017
model (trained on 2017 alone, pretrained on every year and fine-tuned, or the era model asked for
the 2010s). A condition token fills the whole context before the first character, as in training.
Prints one line: checkpoint, corpus, condition, names scored and nats per character (the end of
each name counted, as on the cards).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from training.corpus import CorpusError, read_items
from training.evaluate import Checkpoint
from training.train import TrainConfig, split_items

CHUNK = 512  # names scored per batch of steps


@torch.inference_mode()
def split_loss(model: Checkpoint, names: list[str], start: int = 0) -> float:
    """Mean negative log-likelihood per character (end included) of `names` after `start`: the
    boundary (0), or a condition token read context-length times."""
    stoi = {c: i for i, c in enumerate(model.vocab)}
    unknown = sorted({c for n in names for c in n if c not in stoi})
    if unknown:
        raise ValueError(f"characters {''.join(unknown)!r} are not in the vocabulary of {model.path}")
    ctx = int(model.meta["context_length"])
    total, count = 0.0, 0
    for i in range(0, len(names), CHUNK):
        chunk = names[i : i + CHUNK]
        L = max(map(len, chunk)) + 1  # every name and its end
        targets = torch.full((len(chunk), L), -1, dtype=torch.long)  # (B, L), -1 past a name's end
        for r, name in enumerate(chunk):
            targets[r, : len(name) + 1] = torch.tensor([stoi[c] for c in name] + [0])
        state = model.module.init_state(len(chunk))
        token = torch.full((len(chunk),), start, dtype=torch.long)
        for _ in range(ctx if start else 1):
            logits, state = model.module.step(token, state)
        for t in range(L):
            y = targets[:, t]  # (B,)
            live = y >= 0
            logp = torch.log_softmax(logits.double(), dim=1)  # (B, V)
            total -= float(logp[live].gather(1, y[live].unsqueeze(1)).sum())
            count += int(live.sum())
            logits, state = model.module.step(y.clamp(min=0), state)
    return total / count


def main(argv: list[str] | None = None) -> int:
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(prog="python -m training score", description=__doc__.split("\n")[1])
    parser.add_argument("model", type=Path, help="a checkpoint (.pt)")
    parser.add_argument(
        "--corpus", type=Path, required=True, help="one-item-per-line corpus whose test split is scored"
    )
    parser.add_argument("--sex", choices=["F", "M"], help="condition: sex (conditioned checkpoints only)")
    parser.add_argument("--year", type=int, help="condition: birth year; the model uses its decade")
    parser.add_argument("--val-fraction", type=float, default=defaults.val_fraction, help="as in training")
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction, help="as in training")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of the split, as in training")
    args = parser.parse_args(argv)
    try:
        model = Checkpoint(args.model)
        items, _ = read_items(args.corpus)
        test = split_items(items, args.val_fraction, args.test_fraction, args.seed).test
        decade = None if args.year is None else args.year // 10 * 10
        condition = {k: v for k, v in (("sex", args.sex), ("decade", decade)) if v is not None}
        start = 0
        if condition:
            if not model.tokens:
                raise ValueError(f"{args.model} declares no conditions; drop --sex and --year")
            key = (condition.get("sex"), condition.get("decade"))
            if key not in model.tokens:
                raise ValueError(f"{args.model} has no condition token for {condition}")
            start = model.tokens[key]
        loss = split_loss(model, test, start)
    except (CorpusError, ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}")
        return 2
    asked = ", ".join(f"{k} {v}" for k, v in condition.items()) or "no condition"
    print(f"{args.model} on {args.corpus} test ({len(test)} names), {asked}: {loss:.4f} nats/char")
    return 0
