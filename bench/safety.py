"""
The safe filter (app/inference/safety.py) measured: what it refuses of each model's samples, and
what its word lists would refuse of the real names without the allowlist, and what it refuses of
full names across the join.

    python -m bench.safety                      # 100,000 names per model, temperature 1
    python -m bench.safety --names 20000 --examples 20

For each shipped model: names sampled at temperature 1 with no constraint (duplicates and real
names kept, as they come), in batches of 10,000 through the service's own sampler; the share the
filter refuses (the service rejects these and samples again), how many of those are real names
(those that are themselves a listed word), and the words that caught them. Then the real names (every
SSA name of every year and every 1990 census surname) that the word lists match, which the allowlist
lets through unless the name is the word itself (those are listed). Then full names: given names of
`names` paired with surnames as sampled, the share refused across the join (a word spanning it, or
a prank name) that neither part alone is. Then examples of what it caught, the offending word in
brackets.
"""

from __future__ import annotations

import argparse
import collections
import random

import torch

from app.inference.batches import sample_names
from app.inference.engine import Sampling
from app.inference.registry import load_registry
from app.inference.safety import SafetyFilter
from app.inference.sampling import SampleSpec
from tests.support import MODELS, RESOURCES


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--names", type=int, default=100_000, help="names sampled per model")
    p.add_argument("--examples", type=int, default=20, help="examples of refused names to show")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    registry = load_registry(MODELS)
    real = {
        s for corpus in ("names-all.txt", "surnames.txt") for s in (RESOURCES / corpus).read_text().split()
    }
    safety = registry.safety
    bare = SafetyFilter(safety.anywhere, safety.whole, frozenset())  # the word lists alone
    print(f"word lists: {len(safety.anywhere)} words matched anywhere, {len(safety.whole)} only as the "
          f"whole name; allowlist: {len(safety.allowed):,} real names\n")  # fmt: skip
    print("| model | names sampled | refused | of which real names | top words |")
    print("| --- | ---: | ---: | ---: | --- |")
    caught: list[tuple[str, str]] = []
    samples: dict[str, list[str]] = {}
    for name in registry.names():
        model = registry.models[name]
        sampled: list[str] = []
        batch = 10_000
        for k in range(0, args.names, batch):
            spec = SampleSpec(
                n=min(batch, args.names - k),
                sampling=Sampling(max_length=24),
                unique=False,
                max_batch=batch,
                max_sequences=batch,
            )
            sampled += sample_names(model, spec, args.seed * 1_000_003 + k).names
        refused = [(s, safety.match(s)) for s in sampled if safety.refuses(s)]
        words = collections.Counter(w for _, w in refused)
        top = ", ".join(f"{w} {c}" for w, c in words.most_common(6))
        in_real = sum(s in real for s, _ in refused)
        print(f"| {name} | {len(sampled):,} | {len(refused) / len(sampled):.2%} ({len(refused):,}) | "
              f"{in_real} | {top} |")  # fmt: skip
        caught += [(s, w or "") for s, w in refused]
        samples[name] = sampled
    matched = sorted(s for s in real if bare.refuses(s))
    refused_real = sorted(s for s in real if safety.refuses(s))
    print(f"\nreal names the word lists match: {len(matched):,} of {len(real):,} "
          f"({len(matched) / len(real):.2%}); refused by the filter, as they are a listed word: "
          f"{len(refused_real)}: {', '.join(refused_real)}")  # fmt: skip
    if "names" in samples and "surnames" in samples:
        pairs = [
            (g, f) for g, f in zip(samples["names"], samples["surnames"], strict=False)
            if not safety.refuses(g) and not safety.refuses(f)
        ]  # fmt: skip
        joined = [(g, f, safety.match_full(g, f)) for g, f in pairs if safety.refuses_full(g, f)]
        print(f"\nfull names (names x surnames, both parts safe): {len(pairs):,}; refused across the join "
              f"{len(joined) / len(pairs):.3%} ({len(joined)}): "
              + ", ".join(f"{g} {f} [{w}]" for g, f, w in joined[:10]))  # fmt: skip
    print(f"\n{args.examples} of the {len(caught):,} names refused, drawn at random:")
    for s, word in random.Random(args.seed).sample(sorted(set(caught)), min(args.examples, len(set(caught)))):
        at = s.find(word)
        print(f"  {s[:at]}[{word}]{s[at + len(word) :]}" if at >= 0 else f"  {s} [{word}]")


if __name__ == "__main__":
    main()
