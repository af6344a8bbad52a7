"""
The step loop of a batch, compiled with TorchScript (pure torch, no FastAPI).

`BatchLoop` drives a checkpoint's incremental `step` for every row of a batch until each row is
finished, and samples, scores and captures as it goes. It is scripted once per model at load time,
so a whole batch runs as one call: no Python between steps, and no holding of the GIL, which the
event loop serving HTTP needs at the same time. app/sampling.py prepares its inputs and reads its
outputs; `StepAdapter` gives checkpoints that only have `forward` the same `init_state`/`step`.

A row reads its forced tokens first (a prefix, or a name and its end to score), then, if it is a
sampling row, samples until it produces the end (0) or passes max_length. Random numbers come from
`uniform` (B, W), drawn beforehand from each request's own generator: row r uses
uniform[r, step - prefix_len[r]], so nothing a row draws depends on the rest of the batch.
"""

# no `from __future__ import annotations`: TorchScript reads these annotations at run time
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

MIN_ROWS = 4  # batches are padded to this many rows: below it the matmul kernels round differently


class StepAdapter(nn.Module):
    """init_state/step for a checkpoint with only forward(): the state is the last
    context_length tokens, and each step runs forward over them."""

    def __init__(self, module: torch.jit.ScriptModule, context_length: int) -> None:
        super().__init__()
        self.inner = module
        self.context_length = context_length

    def forward(self, idx: Tensor) -> Tensor:
        logits: Tensor = self.inner(idx)
        return logits

    @torch.jit.export
    def init_state(self, batch_size: int) -> list[Tensor]:
        return [torch.zeros(batch_size, self.context_length, dtype=torch.long)]

    @torch.jit.export
    def step(self, idx: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        window = torch.cat([state[0][:, 1:], idx.unsqueeze(1)], dim=1)  # (B, ctx)
        return self.inner(window), [window]


class BatchLoop(nn.Module):
    def __init__(self, stepper: nn.Module, min_rows: int) -> None:
        super().__init__()
        self.stepper = stepper  # has step(idx (B,), state) -> (logits (B, V), state)
        self.min_rows = min_rows  # never compute fewer rows: small batches round differently

    def forward(
        self,
        begin_logits: Tensor,  # (B, V) after the start boundary
        begin_state: list[Tensor],  # the state after the start boundary, for B rows
        forced: Tensor,  # (B, F) tokens each row must read first, padded with 0
        forced_len: Tensor,  # (B,)
        done_at: Tensor,  # (B,) non-sampling rows are finished after this step
        is_sampling: Tensor,  # (B,) bool
        is_score: Tensor,  # (B,) bool: add up the log-probability of the forced tokens
        capture: Tensor,  # (B,) bool: keep the logits after the forced tokens (next-char)
        min_len: Tensor,  # (B,) sampling rows may not end before this many characters
        max_len: Tensor,  # (B,) ... nor go past this many
        prefix_len: Tensor,  # (B,)
        temperature: Tensor,  # (B,)
        top_k: Tensor,  # (B,) V for none
        top_p: Tensor,  # (B,) above 1 for none
        uniform: Tensor,  # (B, W) float64
        steps: int,  # upper bound on the number of steps
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        B, V = begin_logits.size(0), begin_logits.size(1)
        any_top_k = bool((top_k < V).any())
        any_top_p = bool((top_p < 1.0).any())
        any_score = bool(is_score.any())
        any_capture = bool(capture.any())
        finished = torch.zeros(B, dtype=torch.bool)
        ended = torch.zeros(B, dtype=torch.bool)  # sampling rows that produced the end in time
        samples = torch.zeros(B, steps, dtype=torch.long)  # every token each row read or produced
        score_lp = torch.zeros(B, dtype=torch.float64)
        captured = torch.zeros(B, V)
        # only unfinished rows are computed: `active` lists them (ascending); logits and state
        # hold exactly those rows, and finished rows are dropped, keeping at least min_rows
        active = torch.arange(B)
        logits, state = begin_logits, begin_state
        width = forced.size(1)
        step = 0
        while True:
            flen = forced_len.index_select(0, active)
            in_forced = step < flen
            token = forced.index_select(0, active)[:, min(step, width - 1)]
            token = torch.where(in_forced, token, torch.zeros_like(token))
            if any_score:
                lp = F.log_softmax(logits.double(), dim=1).gather(1, token.unsqueeze(1)).squeeze(1)
                keep_lp = in_forced & is_score.index_select(0, active)
                score_lp.index_add_(0, active, torch.where(keep_lp, lp, torch.zeros_like(lp)))
            if any_capture:
                cap = capture.index_select(0, active) & (flen == step)
                if bool(cap.any()):
                    captured.index_copy_(0, active[cap], logits[cap])
            fin = finished.index_select(0, active)
            sampling = is_sampling.index_select(0, active)
            choose = sampling & ~in_forced & ~fin
            if bool(choose.any()):
                sampled = self._sample(
                    logits, step, active, min_len, prefix_len, temperature, top_k, top_p, uniform,
                    any_top_k, any_top_p,
                )  # fmt: skip
                token = torch.where(choose, sampled, token)
                stop = choose & ((token == 0) | (step >= max_len.index_select(0, active)))
                ended.index_fill_(0, active[stop & (token == 0)], True)
                fin = fin | stop
            fin = fin | (~sampling & (step >= done_at.index_select(0, active)))
            finished.index_copy_(0, active, fin)
            samples.select(1, step).index_copy_(0, active, token)
            if bool(fin.all()) or step + 1 >= steps:
                break
            keep = ~fin
            if not bool(keep.all()):
                short = self.min_rows - int(keep.sum())
                if short > 0:  # keep some finished rows as padding
                    keep.index_fill_(0, fin.nonzero().squeeze(1)[:short], True)
                active, token, logits = active[keep], token[keep], logits[keep]
                state = [s[keep] for s in state]
            logits, state = self.stepper.step(token, state)  # type: ignore[operator]
            step += 1
        return samples, ended, score_lp, captured

    def _sample(
        self,
        logits: Tensor,
        step: int,
        active: Tensor,
        min_len: Tensor,
        prefix_len: Tensor,
        temperature: Tensor,
        top_k: Tensor,
        top_p: Tensor,
        uniform: Tensor,
        any_top_k: bool,
        any_top_p: bool,
    ) -> Tensor:
        """A token (A,) for every active row by inverse CDF; only sampling rows' are used."""
        logits = logits / temperature.index_select(0, active).unsqueeze(1)
        early = step < min_len.index_select(0, active)  # the name may not end yet
        logits[:, 0] = torch.where(early, torch.full_like(logits[:, 0], -math.inf), logits[:, 0])
        if any_top_k:
            ranked = torch.sort(logits, dim=1, descending=True)[0]
            kth = ranked.gather(1, (top_k.index_select(0, active) - 1).unsqueeze(1))  # (A, 1)
            logits = logits.masked_fill(logits < kth, -math.inf)
        probs = torch.softmax(logits, dim=1)
        if any_top_p:
            sorted_p, order = torch.sort(probs, dim=1, descending=True)
            before = torch.cumsum(sorted_p, dim=1) - sorted_p  # mass ranked above each token
            sorted_p = sorted_p.masked_fill(before >= top_p.index_select(0, active).unsqueeze(1), 0.0)
            probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
        col = (step - prefix_len.index_select(0, active)).clamp(0, uniform.size(1) - 1)
        u = uniform.index_select(0, active).gather(1, col.unsqueeze(1)).to(probs.dtype)  # (A, 1)
        cdf = torch.cumsum(probs, dim=1)
        token = (cdf < u * cdf[:, -1:]).sum(dim=1)
        return token.clamp(max=probs.size(1) - 1)
