"""
The step loop of a batch, compiled with TorchScript (pure torch, no FastAPI).

`BatchLoop` drives a checkpoint's incremental `step` for every row of a batch until each row is
finished, and samples, scores and captures as it goes. It is scripted once per model at load time,
so a whole batch runs as one call: no Python between steps, and no holding of the GIL, which the
event loop serving HTTP needs at the same time. app/sampling.py prepares its inputs and reads its
outputs; `StepAdapter` gives checkpoints that only have `forward` the same `init_state`/`step`.

A row reads its forced tokens first (a prefix, or a name and its end to score), then, if it is a
sampling row, samples until it produces the end (0) or passes max_length.

Random numbers are counter-based: the uniform a row uses at a position is a hash (SplitMix64) of its
task's key (the request's seed and sampling round), its row number within the task and the
position. Nothing a row draws depends on the rest of the batch, and no generator has to be stepped
from Python per request: the worker thread holds the GIL, which the event loop needs, for a handful
of calls per batch.
"""

# no `from __future__ import annotations`: TorchScript reads these annotations at run time
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

MIN_ROWS = 4  # batches are padded to this many rows: below it the matmul kernels round differently


# SplitMix64 (Steele, Lea and Flood 2014) over torch int64, whose arithmetic wraps like uint64's.
# TorchScript reads no global constants, so the functions spell theirs out; as signed 64-bit:
# 0x9E3779B97F4A7C15 = -7046029254386353131, 0xBF58476D1CE4E5B9 = -4658895280553007687,
# 0x94D049BB133111EB = -7723592293110705685.


def _shift_right(z: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 values (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix(x: Tensor) -> Tensor:
    """SplitMix64's output function: int64 -> well-mixed int64."""
    z = x + -7046029254386353131
    z = (z ^ _shift_right(z, 30)) * -4658895280553007687
    z = (z ^ _shift_right(z, 27)) * -7723592293110705685
    return z ^ _shift_right(z, 31)


def uniform(key: Tensor) -> Tensor:
    """A float64 in [0, 1) for each int64 key: the top 53 bits of mix(key)."""
    return _shift_right(mix(key), 11).double() * (1.0 / 9007199254740992.0)


def filter_rows(
    logits: Tensor,  # (A, V)
    temperature: Tensor,  # (A,)
    top_k: Tensor,  # (A,) V for none
    top_p: Tensor,  # (A,) above 1 for none
    any_top_k: bool,
    any_top_p: bool,
    no_end: Tensor,  # (A,) bool: the boundary (token 0) may not come next
) -> Tensor:
    """Next-token probabilities (A, V) after each row's temperature, top-k and nucleus cut. The
    nucleus cut is not renormalised: inverse-CDF sampling scales by each row's total anyway."""
    logits = logits / temperature.unsqueeze(1)
    logits[:, 0] = torch.where(no_end, torch.full_like(logits[:, 0], -math.inf), logits[:, 0])
    if any_top_k:
        ranked = torch.sort(logits, dim=1, descending=True)[0]
        kth = ranked.gather(1, (top_k - 1).unsqueeze(1))  # (A, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, dim=1)
    if any_top_p:
        sorted_p, order = torch.sort(probs, dim=1, descending=True)
        before = torch.cumsum(sorted_p, dim=1) - sorted_p  # mass ranked above each token
        sorted_p = sorted_p.masked_fill(before >= top_p.unsqueeze(1), 0.0)  # the top one stays
        probs = torch.zeros_like(probs).scatter(1, order, sorted_p)
    return probs


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
        task_rows: Tensor,  # (T,) rows of each task; a task's rows are consecutive
        task_params: Tensor,  # (T, 7) float64: kind, temperature, top_k, top_p, min_len, max_len,
        # prefix_len; kind 0 samples, 1 scores (adds up the log-probability of its forced
        # tokens), 2 captures the logits after its forced tokens (next-char), 3 is padding
        forced: Tensor,  # (B, F) tokens each row must read first, padded with 0
        forced_len: Tensor,  # (B,)
        task_keys: Tensor,  # (T,) int64: each task's random key (seed and round)
        begin_logits: Tensor,  # (1, V) after the start boundary
        begin_state: list[Tensor],  # the state after the start boundary, batch 1
        steps: int,  # upper bound on the number of steps
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        # per-row settings from per-task ones (here, not in Python: the worker thread then holds
        # the GIL for a handful of calls per batch, not a handful per task)
        B, V = forced.size(0), begin_logits.size(1)
        per_row = task_params.repeat_interleave(task_rows, dim=0)  # (B, 7)
        kind = per_row[:, 0].long()
        is_sampling, is_score, capture = kind == 0, kind == 1, kind == 2
        temperature = per_row[:, 1].float()
        top_k, top_p = per_row[:, 2].long(), per_row[:, 3].float()
        min_len, max_len, prefix_len = per_row[:, 4].long(), per_row[:, 5].long(), per_row[:, 6].long()
        # a row that only reads is finished after its last forced token, or, for next-char, once
        # it has seen the logits after them
        done_at = torch.where(capture, forced_len, forced_len - 1)
        starts = torch.cumsum(task_rows, 0) - task_rows
        row_key = task_keys.repeat_interleave(task_rows) ^ (  # (B,) a stream per row of a task
            (torch.arange(B) - starts.repeat_interleave(task_rows)) * -7046029254386353131
        )
        logits = begin_logits.expand(B, V)
        state: list[Tensor] = []
        for s in begin_state:
            size: list[int] = s.size()  # type: ignore[assignment]
            size[0] = B
            state.append(s.expand(size).contiguous())
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
        width = forced.size(1)
        step = 0
        while True:
            flen = forced_len.index_select(0, active)
            in_forced = step < flen
            token = forced.select(1, min(step, width - 1)).index_select(0, active)
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
                    logits, step, active, min_len, prefix_len, temperature, top_k, top_p, row_key,
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
            n_done = fin.size(0) - int(keep.sum())
            if n_done * 8 >= fin.size(0):  # drop finished rows once they are an eighth of the batch
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
        row_key: Tensor,
        any_top_k: bool,
        any_top_p: bool,
    ) -> Tensor:
        """A token (A,) for every active row by inverse CDF; only sampling rows' are used."""
        probs = filter_rows(
            logits,
            temperature.index_select(0, active),
            top_k.index_select(0, active),
            top_p.index_select(0, active),
            any_top_k,
            any_top_p,
            step < min_len.index_select(0, active),  # the name may not end yet
        )
        position = step - prefix_len.index_select(0, active)  # (A,) characters sampled so far
        # 0x2545F4914F6CDD1D spreads the positions of one row far apart in the key space
        key = row_key.index_select(0, active) + position * 0x2545F4914F6CDD1D
        u = uniform(key).unsqueeze(1).to(probs.dtype)
        cdf = torch.cumsum(probs, dim=1)
        token = (cdf < u * cdf[:, -1:]).sum(dim=1)
        return token.clamp(max=probs.size(1) - 1)
