"""
A character Markov chain: the simplest model of a corpus's names, the baseline the neural models
are compared with (docs/models.md).

    from training.markov import Markov
    chain = Markov(train_names, order=4)
    chain.loss(test_names)                # nats per character, the end counted
    Markov(train_names, 4, weights=births).loss(test_names, test_births)   # names counted by births
    chain.sample(random.Random(0), 1000)  # names drawn at temperature 1

The probability of the next character given the last `order` characters is Witten-Bell
interpolation down to the uniform over the alphabet and the end: a context seen often with few
distinct followers trusts its own counts, a rare or varied one leans on the shorter context. No
hyperparameter to tune, and every character of the alphabet keeps a probability above zero, so a
test name is never infinitely unlikely.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

END = "\n"  # the boundary: pads the start of a name and ends it (no name holds a newline)


class Markov:
    def __init__(self, names: list[str], order: int, weights: list[float] | None = None) -> None:
        """The chain of `order` over `names`, each counted once, or `weights[i]` times (births:
        the chain then learns names as they are given, not as a list)."""
        if order < 0:
            raise ValueError(f"order must be 0 or more, got {order}")
        if weights is not None and len(weights) != len(names):
            raise ValueError(f"{len(weights)} weights for {len(names)} names")
        self.order = order
        self.symbols = [*sorted({c for name in names for c in name}), END]
        # counts[k][context of k characters][next character]
        self.counts: list[dict[str, Counter[str]]] = [defaultdict(Counter) for _ in range(order + 1)]
        for j, name in enumerate(names):
            padded = END * order + name + END
            w = 1 if weights is None else weights[j]
            for i in range(order, len(padded)):
                for k in range(order + 1):
                    self.counts[k][padded[i - k : i]][padded[i]] += w
        self._cache: dict[str, list[float]] = {}

    def distribution(self, context: str) -> list[float]:
        """P(next symbol | the last `order` characters of context, padded with the boundary), one
        probability per symbol of `self.symbols`."""
        context = (END * self.order + context)[len(context) :] if self.order else ""
        if context in self._cache:
            return self._cache[context]
        probs = [1.0 / len(self.symbols)] * len(self.symbols)
        for k in range(self.order + 1):
            seen = self.counts[k].get(context[len(context) - k :] if k else "")
            if not seen:
                continue
            total, kinds = sum(seen.values()), len(seen)
            probs = [
                (seen.get(s, 0) + kinds * p) / (total + kinds)
                for s, p in zip(self.symbols, probs, strict=True)
            ]
        self._cache[context] = probs
        return probs

    def logprob(self, name: str) -> float:
        """Natural log-probability of the name and its end (characters outside the alphabet have
        only the uniform's share)."""
        index = {s: i for i, s in enumerate(self.symbols)}
        total = 0.0
        for i, c in enumerate(name + END):
            probs = self.distribution(name[:i])
            total += math.log(probs[index[c]] if c in index else 1e-12)
        return total

    def loss(self, names: list[str], weights: list[float] | None = None) -> float:
        """Nats per character over `names`, each name's end counted, as the models' test loss;
        with `weights`, each name's characters count `weights[i]` times."""
        w = [1.0] * len(names) if weights is None else weights
        return -sum(wi * self.logprob(s) for s, wi in zip(names, w, strict=True)) / sum(
            wi * (len(s) + 1) for s, wi in zip(names, w, strict=True)
        )

    def sample(self, rng: random.Random, n: int, max_length: int = 32) -> list[str]:
        """n names drawn at temperature 1 (duplicates kept); a draw longer than max_length is
        dropped, as the service drops them."""
        names = []
        for _ in range(n):
            name = ""
            while len(name) <= max_length:
                c = rng.choices(self.symbols, weights=self.distribution(name))[0]
                if c == END:
                    names.append(name)
                    break
                name += c
        return names
