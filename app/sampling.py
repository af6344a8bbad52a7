"""
Sampling, next-character distributions and scoring on a loaded checkpoint. Pure torch: no FastAPI.

All n names of a request are sampled together as one batch, one character per step for the whole
batch, with the request's own `torch.Generator`: the same model, settings and seed give the same
names whatever else runs at the same time. Constraints are applied while sampling where that is
exact (a prefix is fed before sampling starts; the end token is masked until min_length) and by
rejection where it is not (names longer than max_length, duplicates, names from the training
corpus). Rejected samples are replaced by further batches, for a bounded number of rounds; the
result says how many were found.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from app.registry import LoadedModel

END = "<end>"


@dataclass(frozen=True)
class SampleSpec:
    n: int
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    prefix: str = ""  # lowercase, already checked against the model's alphabet
    min_length: int = 1
    max_length: int = 24
    unique: bool = True
    novel: bool = False
    max_rounds: int = 8  # batches sampled at most, the first of exactly n sequences
    max_batch: int = 16384  # sequences in one batch at most (later rounds oversample)


@dataclass
class SampleResult:
    names: list[str]  # lowercase, at most n
    rounds: int
    sampled: int  # sequences sampled in all rounds
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count

    @property
    def complete(self) -> bool:
        return self.rejected.get("missing", 0) == 0


def filter_probs(logits: Tensor, temperature: float, top_k: int | None, top_p: float | None) -> Tensor:
    """Next-token probabilities (B, V) after temperature, top-k and nucleus (top-p) filtering."""
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)
        before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # mass of the tokens ranked above
        sorted_p = sorted_p.masked_fill(before >= top_p, 0.0)  # the top token always stays
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


@torch.inference_mode()
def _sample_batch(model: LoadedModel, spec: SampleSpec, batch: int, gen: torch.Generator) -> list[str | None]:
    """`batch` names that start with the prefix; None for one still going at max_length."""
    logits, state = model.after(spec.prefix)
    logits = logits.expand(batch, -1)
    state = model.expand_state(state, batch)
    done = torch.zeros(batch, dtype=torch.bool)
    chars: list[Tensor] = []
    for length in range(len(spec.prefix), spec.max_length + 1):  # length of the name so far
        if length < spec.min_length:
            logits = logits.clone()
            logits[:, 0] = -math.inf  # the name may not end yet
        probs = filter_probs(logits, spec.temperature, spec.top_k, spec.top_p)
        nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)  # (B,)
        nxt = nxt.masked_fill(done, 0)
        done = done | (nxt == 0)
        if length == spec.max_length or bool(done.all()):
            break
        chars.append(nxt)
        logits, state = model.step(nxt, state)
    rows = torch.stack(chars, dim=1).tolist() if chars else [[] for _ in range(batch)]
    out: list[str | None] = []
    for row, finished in zip(rows, done.tolist(), strict=True):
        if not finished:
            out.append(None)
            continue
        end = row.index(0) if 0 in row else len(row)
        out.append(spec.prefix + model.decode(row[:end]))
    return out


def sample_names(model: LoadedModel, spec: SampleSpec, gen: torch.Generator) -> SampleResult:
    """Sample up to spec.n names meeting every constraint, in at most spec.max_rounds batches."""
    names: list[str] = []
    seen: set[str] = set()
    rejected = {"too_long": 0, "duplicate": 0, "in_corpus": 0}
    sampled, rounds, batch = 0, 0, spec.n
    while len(names) < spec.n and rounds < spec.max_rounds:
        rounds += 1
        for name in _sample_batch(model, spec, batch, gen):
            if len(names) == spec.n:
                break
            sampled += 1
            if name is None:
                rejected["too_long"] += 1
            elif spec.unique and name in seen:
                rejected["duplicate"] += 1
            elif spec.novel and name in model.items:
                rejected["in_corpus"] += 1
            else:
                names.append(name)
                seen.add(name)
        missing = spec.n - len(names)
        # next round: oversample by the acceptance rate seen so far, within bounds
        accept = max(len(names) / sampled, 0.02)
        batch = min(spec.max_batch, max(16, math.ceil(1.25 * missing / accept)))
    rejected = {k: v for k, v in rejected.items() if v}
    if len(names) < spec.n:
        rejected["missing"] = spec.n - len(names)
    return SampleResult(names=names, rounds=rounds, sampled=sampled, rejected=rejected)


@torch.inference_mode()
def next_char_distribution(
    model: LoadedModel, prefix: str, temperature: float = 1.0, top_k: int | None = None
) -> list[tuple[str, float]]:
    """(char, probability) for every vocabulary entry after `prefix`, most likely first;
    the boundary is reported as "<end>"."""
    logits, _ = model.after(prefix)
    probs = filter_probs(logits, temperature, top_k, None)[0].double()
    probs = probs / probs.sum()
    labels = [END, *model.vocab[1:]]
    pairs = sorted(zip(labels, probs.tolist(), strict=True), key=lambda cp: (-cp[1], cp[0]))
    return pairs


@dataclass(frozen=True)
class Score:
    name: str
    logprob: float  # natural log of the probability of the name and its end
    nats_per_char: float  # -logprob / (len(name) + 1)
    perplexity: float
    in_corpus: bool


@torch.inference_mode()
def score_names(model: LoadedModel, names: list[str]) -> list[Score]:
    """Log-probability of each (lowercase, in-alphabet, non-empty) name, all in one batch."""
    B, L = len(names), max(len(s) for s in names)
    targets = torch.zeros(B, L + 1, dtype=torch.long)  # chars then the end boundary (0)
    for i, s in enumerate(names):
        targets[i, : len(s)] = torch.tensor(model.encode(s), dtype=torch.long)
    lengths = torch.tensor([len(s) + 1 for s in names])
    logits, state = model.after("")
    logits, state = logits.expand(B, -1), model.expand_state(state, B)
    logprob = torch.zeros(B, dtype=torch.float64)
    for t in range(L + 1):
        lp = torch.log_softmax(logits.double(), dim=-1).gather(1, targets[:, t : t + 1]).squeeze(1)
        logprob += torch.where(t < lengths, lp, torch.zeros_like(lp))
        if t < L:
            logits, state = model.step(targets[:, t], state)
    out = []
    for s, lp_, n in zip(names, logprob.tolist(), lengths.tolist(), strict=True):
        npc = -lp_ / n
        out.append(Score(s, lp_, npc, math.exp(npc), s in model.items))
    return out
