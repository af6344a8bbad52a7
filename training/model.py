"""
The hierarchical ("WaveNet-ish") character model, written as a causal dilated convolution.

The seed notebook fuses neighbouring characters in pairs, Linear(2C -> H) -> LayerNorm -> tanh, then
pairs of pairs, level after level, until a context of 2^levels characters is one vector. At the last
position of a window that tree is exactly a causal convolution with kernel 2 and dilations 1, 2, 4,
...: level l combines its input at t - 2^(l-1) with its input at t. Written that way one forward pass
over a left-padded name gives the next-character logits at every position, so training sees every
character of every name at once.

    model = HierarchicalModel(ModelConfig(vocab_size=27))
    logits, loss = model(idx, targets)   # idx (B, T) with T >= context_length

The exported checkpoint runs the same function one step at a time with a per-level queue of past
inputs (Fast WaveNet, Paine et al. 2016): see ScriptedGenerator in training/export.py.

Conditions (for example sex and decade of birth) enter in one of two ways:
- "tokens": each condition is a token of its own after the vocabulary (ids vocab_size and up), and
  the caller puts it where the boundary token would stand, in the left padding and at the start of
  the item. The model is the same network with a larger embedding table, so `forward(idx)` and the
  exported `step` work unchanged, and the condition is in the window at every position of an item
  shorter than the context.
- "global": WaveNet's global conditioning, a learned vector per condition added to every level's
  pre-activation: `forward(idx, targets, cond)`. Training and evaluation only (not exported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

IGNORE_INDEX = -1  # target value of padding positions: not counted in the loss


def mean_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy in nats of logits (B, T, V) against targets (B, T), padding
    (IGNORE_INDEX) not counted."""
    return F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )


@dataclass
class ModelConfig:
    vocab_size: int = 27  # characters of the corpus + the boundary token (index 0)
    n_embd: int = 24  # character embedding size
    # width of each fusion level; the number of levels sets the context: 2 ** len(hidden)
    hidden: tuple[int, ...] = (160, 160, 160, 160)
    dropout: float = 0.1  # after every level's tanh, training only
    n_conditions: int = 0  # condition tokens after the vocabulary (ids vocab_size, ...); 0: none
    conditioning: str = "tokens"  # "tokens" or "global" (see the module docstring)

    @property
    def context_length(self) -> int:
        return 2 ** len(self.hidden)

    @property
    def dilations(self) -> list[int]:
        return [2**i for i in range(len(self.hidden))]

    def validate(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(f"vocab_size must be at least 2, got {self.vocab_size}")
        if self.n_embd < 1:
            raise ValueError(f"n_embd must be a positive integer, got {self.n_embd}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be one or more positive sizes, got {list(self.hidden)}")
        if len(self.hidden) > 10:
            raise ValueError(f"at most 10 levels (context 1024), got {len(self.hidden)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.n_conditions < 0 or self.conditioning not in ("tokens", "global"):
            raise ValueError(
                f"need n_conditions >= 0 and conditioning 'tokens' or 'global', got "
                f"{self.n_conditions}, {self.conditioning!r}"
            )

    @property
    def n_tokens(self) -> int:
        """Rows of the embedding table: the vocabulary, and the condition tokens in "tokens" mode."""
        return self.vocab_size + (self.n_conditions if self.conditioning == "tokens" else 0)


class FuseLevel(nn.Module):
    """One level: fuse the input at t - dilation with the input at t (both (B, *, n_in))."""

    def __init__(self, n_in: int, n_out: int, dilation: int, dropout: float, n_global: int = 0) -> None:
        super().__init__()
        self.dilation = dilation
        self.linear = nn.Linear(2 * n_in, n_out)
        self.norm = nn.LayerNorm(n_out)
        self.drop = nn.Dropout(dropout)
        # "global" conditioning: a vector per condition (row 0: none) added before the norm
        self.cond = nn.Embedding(n_global + 1, n_out) if n_global else None
        if self.cond is not None:
            nn.init.zeros_(self.cond.weight)

    def forward(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        # x: (B, T, n_in) -> (B, T - dilation, n_out): position t sees inputs t-d and t
        d = self.dilation
        pair = torch.cat([x[:, :-d], x[:, d:]], dim=-1)  # (B, T-d, 2*n_in)
        h = self.linear(pair)
        if self.cond is not None and cond is not None:
            h = h + self.cond(cond).unsqueeze(1)  # (B, 1, n_out): the same at every position
        return self.drop(torch.tanh(self.norm(h)))


class CharModel(nn.Module):
    """What every model here answers besides forward: its context and its parameter count."""

    config: ModelConfig

    @property
    def context_length(self) -> int:
        return self.config.context_length

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class HierarchicalModel(CharModel):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.wte = nn.Embedding(config.n_tokens, config.n_embd)
        sizes = [config.n_embd, *config.hidden]
        n_global = config.n_conditions if config.conditioning == "global" else 0
        self.levels = nn.ModuleList(
            FuseLevel(sizes[i], sizes[i + 1], d, config.dropout, n_global)
            for i, d in enumerate(config.dilations)
        )
        self.lm_head = nn.Linear(sizes[-1], config.vocab_size)

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """idx: (B, T) token ids, left-padded with at least context_length - 1 boundary tokens
        (or, in "tokens" conditioning, condition tokens). cond: (B,) condition index + 1 (0: none),
        for "global" conditioning only.

        Returns logits (B, T - context_length + 1, V): the prediction after each of the last
        T - context_length + 1 tokens, each from the context_length tokens ending there; and, given
        targets of that shape (IGNORE_INDEX where padding), the mean cross-entropy in nats."""
        x = self.wte(idx)  # (B, T, C)
        for level in self.levels:
            x = level(x, cond)  # (B, T - d, H): the sequence shrinks by each dilation, 2^L - 1 in all
        logits = self.lm_head(x)  # (B, T - context_length + 1, V)
        return logits, None if targets is None else mean_loss(logits, targets)


class Ensemble(CharModel):
    """Several HierarchicalModels of one vocabulary and context as one model, whose next-character
    distribution is the mean of theirs: a mixture, not an average of logits or weights. Members are
    trained apart (each its own run, seed and chain of stages) and put together afterwards by
    `python -m training ensemble`.

        logits, loss = Ensemble([a, b])(idx, targets)   # logits: log of the mean probabilities
    """

    def __init__(self, members: list[HierarchicalModel]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        first = members[0].config
        for m in members[1:]:
            c = m.config
            if (c.vocab_size, c.context_length, c.n_conditions) != (
                first.vocab_size,
                first.context_length,
                first.n_conditions,
            ):
                raise ValueError("ensemble members must share vocabulary, context length and conditions")
        self.members = nn.ModuleList(members)

    @property  # type: ignore[override]
    def config(self) -> ModelConfig:
        """The first member's: what the members share (vocabulary, context, conditions)."""
        member: HierarchicalModel = self.members[0]  # type: ignore[assignment]
        return member.config

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cond: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        # (K, B, T', V): each member's log-probabilities; their mean probability, as a log
        logp = torch.stack([F.log_softmax(m(idx, cond=cond)[0], dim=-1) for m in self.members])
        logits = torch.logsumexp(logp, dim=0) - math.log(len(self.members))  # (B, T', V)
        return logits, None if targets is None else mean_loss(logits, targets)
