"""
The step loop of a batch, compiled with TorchScript (pure torch, no FastAPI).

`BatchLoop` drives a checkpoint's incremental `step` for every row of a batch until each row is
finished, and samples, scores and captures as it goes. It is scripted once per model at load time,
so a whole batch runs as one call: no Python between steps, and no holding of the GIL, which the
event loop serving HTTP needs at the same time. app/inference/sampling.py prepares its inputs and reads its
outputs; `StepAdapter` gives checkpoints that only have `forward` the same `init_state`/`step`.

A row reads its forced tokens first (a prefix, or a name and its end to score), then, if it is a
sampling row, samples until it produces the end (0) or passes max_length.

Random numbers are counter-based: the uniform a row uses at a position is a hash (SplitMix64) of its
task's key (the request's seed and sampling round, app/inference/sampling.py), its row number within
the round and the position, each mixed in after the one before. Nothing a row draws depends on the
rest of the batch, and no generator has to be stepped from Python per request.
"""

# no `from __future__ import annotations`: TorchScript reads these annotations at run time
import math
from enum import Enum
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

GOLDEN_GAMMA = 0x9E3779B97F4A7C15  # SplitMix64's increment (2^64 / golden ratio), as an unsigned int
MIN_ROWS = 4  # batches are padded to this many rows: below it the matmul kernels round differently
# deadline slots of a model's batch loop (BatchLoop.expired): requests with a deadline in progress at
# once, at most; slot 0 is never set (tasks without one)
DEADLINE_SLOTS = 1024
DEADLINE_EVERY = 4  # steps between two looks at the deadline flags


class Kind(Enum):
    """What a task's rows do after reading their forced tokens. (An Enum, not module constants:
    TorchScript reads an Enum's values but no plain global.)"""

    SAMPLE = 0  # sample until the end or max_length
    SCORE = 1  # nothing more: add up the log-probability of the forced tokens
    NEXT_CHAR = 2  # report the distribution after the forced tokens
    PADDING = 3  # nothing: rows that fill a small batch up to MIN_ROWS


class TaskSettings(NamedTuple):
    """The settings of every task of a batch, a list per field with one entry per task, in batch
    order (a task is a request's piece of the batch; its rows are consecutive). Columns rather
    than a list of per-task objects: TorchScript takes this as one typed argument, and the loop
    turns each field into one per-row tensor. app/inference/sampling.py fills it by name
    (Task.settings gives a task's fields)."""

    rows: list[int]  # rows of the task
    kind: list[int]  # a Kind value
    temperature: list[float]
    top_k: list[int]  # the vocabulary size: no top-k cut
    top_p: list[float]  # 1.0 or more: no nucleus cut
    min_length: list[int]  # the end is masked before this many characters (sampling)
    max_length: list[int]  # a sample longer than this stops, not ended (sampling)
    prefix_length: list[int]  # forced characters that count towards the name (sampling)
    start: list[int]  # the row of the begin tables the rows begin from: the condition (0: none)
    # the row number, within its request's round, of the task's first row: a round may be cut
    # into pieces, each a task here, and a row's random numbers follow its number in the round
    offset: list[int]
    key: list[int]  # the random key of the request's round (seed and round number), as int64
    # the task's deadline slot: once BatchLoop.expired[slot] is set, its rows stop where they are
    # (cut, reported as not run); 0: no deadline
    slot: list[int]


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
    top_p: Tensor,  # (A,) 1 or more for none
    any_top_k: bool,
    any_top_p: bool,
    no_end: Tensor,  # (A,) bool: the boundary (token 0) may not come next
    any_temperature: bool = True,  # False: every temperature is 1, so dividing changes nothing
    any_no_end: bool = True,  # False: no_end has no True, so masking changes nothing
) -> Tensor:
    """Next-token probabilities (A, V) after each row's temperature, top-k and nucleus cut. The
    nucleus cut is not renormalised: inverse-CDF sampling scales by each row's total anyway.
    Whatever the settings, the likeliest token the end mask allows keeps its probability: top_k is
    at least 1, and the nucleus cut never takes the first token (a top_p of 1e-46 is 0 in float32,
    and would otherwise cut every token, leaving nothing to sample)."""
    if any_temperature:
        logits = logits / temperature.unsqueeze(1)
    elif any_no_end:
        logits = logits.clone()  # masked in place below: not the caller's tensor
    if any_no_end:
        logits.select(1, 0).masked_fill_(no_end, -math.inf)
    if any_top_k:
        ranked = torch.sort(logits, dim=1, descending=True)[0]
        kth = ranked.gather(1, (top_k - 1).unsqueeze(1))  # (A, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    probs = torch.softmax(logits, dim=1)
    if any_top_p:
        sorted_p, order = torch.sort(probs, dim=1, descending=True)
        before = torch.cumsum(sorted_p, dim=1) - sorted_p  # mass ranked above each token
        cut = (before >= top_p.unsqueeze(1)) & (top_p < 1.0).unsqueeze(1)
        cut.select(1, 0).fill_(False)  # the likeliest stays
        sorted_p = sorted_p.masked_fill(cut, 0.0)
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
    # logits (K, V) and state of a sequence that has read only its start, for each of the K start
    # tokens (the boundary, then a conditioned checkpoint's condition tokens): where every row
    # begins. Made by `start`, in TorchScript, and never handed to Python: a tensor that has a
    # Python object takes the GIL each time a C++ reference to it is dropped, and the batch's
    # thread would drop them when the batch ends
    begin_logits: Tensor
    begin_state: list[Tensor]
    by_label: Tensor  # label_order as a tensor
    # per deadline slot, whether its request's deadline has passed: set from the event loop's thread
    # while a batch runs (app/inference/batching.py), read by the batch every DEADLINE_EVERY steps.
    # An attribute, so the batch's thread never holds the last reference to it
    expired: Tensor

    def __init__(self, stepper: nn.Module, min_rows: int, label_order: list[int]) -> None:
        super().__init__()
        self.stepper = stepper  # has step(idx (B,), state) -> (logits (B, V), state)
        self.min_rows = min_rows  # never compute fewer rows: small batches round differently
        self.label_order = label_order  # (V,) the tokens in the order their labels sort (next-char ties)
        self.begin_logits = self.by_label = torch.zeros(0)
        self.begin_state = []
        self.expired = torch.zeros(DEADLINE_SLOTS, dtype=torch.bool)
        self.deadline_every = DEADLINE_EVERY  # an attribute: TorchScript reads no plain global

    @torch.jit.export
    def start(self, tokens: list[int], steps: int) -> None:
        """Compute begin_logits and begin_state: each start token read `steps` times from
        init_state (once for the boundary, which init_state already assumes; a condition token
        fills the whole context, as in training). Call once, before any batch."""
        idx = torch.tensor(tokens)
        state = self.stepper.init_state(len(tokens))  # type: ignore[operator]
        logits = torch.zeros(0)
        for _ in range(steps):
            logits, state = self.stepper.step(idx, state)  # type: ignore[operator]
        self.begin_logits, self.begin_state = logits, state
        self.by_label = torch.tensor(self.label_order)

    @torch.jit.export
    def launch(
        self, tasks: TaskSettings, forced: list[list[int]], forced_len: list[int], steps: int
    ) -> torch.jit.Future[
        tuple[list[list[int]], list[bool], list[float], list[list[int]], list[list[float]], list[bool]]
    ]:
        """`forward` started on torch's inter-op thread pool: returns at once with a future. The
        batch then runs with no Python and no GIL at all, and the caller's thread (the event loop)
        carries on serving HTTP meanwhile."""
        return torch.jit.fork(self.forward, tasks, forced, forced_len, steps)

    def forward(
        self,
        tasks: TaskSettings,  # (T,) per field
        forced: list[list[int]],  # (B, F) tokens each row must read first, padded with 0
        forced_len: list[int],  # (B,)
        steps: int,  # upper bound on the number of steps
    ) -> tuple[list[list[int]], list[bool], list[float], list[list[int]], list[list[float]], list[bool]]:
        """Returns, as Python lists: the tokens of each row (B, the steps run); whether each
        sampling row ended in time (B,); each row's summed log-probability (B,), for scoring rows;
        for the next-char rows, in row order, every token likeliest first (ties in label order)
        with its probability after temperature and top-k, in float64 summing to 1; and whether each
        row was cut short by its request's deadline (B,).

        Lists in and out, not tensors: every tensor the caller frees in Python hands the GIL over
        (torch releases it to free the memory), and while the event loop is busy each hand-over
        waits up to a switch interval. With lists there are none."""
        # per-row settings from per-task ones (here, not in Python: the event loop then does a
        # handful of list operations per batch, not a handful per task)
        rows_per_task = torch.tensor(tasks.rows)
        forced_t = torch.tensor(forced)  # (B, F), then padded with 0 to (B, steps)
        forced_len_t = torch.tensor(forced_len)
        B, V = forced_t.size(0), self.begin_logits.size(1)
        forced_t = F.pad(forced_t, [0, steps - forced_t.size(1)])
        task_of_row = torch.repeat_interleave(torch.arange(rows_per_task.size(0)), rows_per_task)  # (B,)
        kind = torch.tensor(tasks.kind).index_select(0, task_of_row)
        is_sampling = kind == Kind.SAMPLE.value
        is_score, capture = kind == Kind.SCORE.value, kind == Kind.NEXT_CHAR.value
        temperature = torch.tensor(tasks.temperature, dtype=torch.float).index_select(0, task_of_row)
        top_k = torch.tensor(tasks.top_k).index_select(0, task_of_row)
        top_p = torch.tensor(tasks.top_p, dtype=torch.float).index_select(0, task_of_row)
        min_len = torch.tensor(tasks.min_length).index_select(0, task_of_row)
        max_len = torch.tensor(tasks.max_length).index_select(0, task_of_row)
        prefix_len = torch.tensor(tasks.prefix_length).index_select(0, task_of_row)
        begin = torch.tensor(tasks.start).index_select(0, task_of_row)
        slot = torch.tensor(tasks.slot).index_select(0, task_of_row)
        any_deadline = bool((slot > 0).any())
        # a row that only reads is finished after its last forced token, or, for next-char, once
        # it has seen the logits after them; a sampling row, when it stops (never by this)
        done_at = torch.where(capture, forced_len_t, forced_len_t - 1).masked_fill_(is_sampling, steps)
        # the step a row starts sampling at: after its forced tokens (never, for other rows)
        sample_from = forced_len_t.masked_fill(~is_sampling, steps)
        max_min_len = int(min_len.max())  # from this step on no row has the end masked
        starts = torch.cumsum(rows_per_task, 0) - rows_per_task
        offset = torch.tensor(tasks.offset).index_select(0, task_of_row)
        row_in_round = torch.arange(B) - starts.index_select(0, task_of_row) + offset
        # (B,) a stream per row: the row number added to its task's key (already a hash of the
        # stream, seed and round) and mixed again, so that rows and seeds never trade places
        row_key = mix(torch.tensor(tasks.key).index_select(0, task_of_row) + row_in_round)
        # the uniform each row uses at each step, all made at once: a hash of the row's stream
        # and its position (characters sampled so far), 0x2545F4914F6CDD1D spreading the
        # positions of one row far apart in the key space
        position = torch.arange(steps).unsqueeze(0) - prefix_len.unsqueeze(1)  # (B, steps)
        uniforms = uniform(row_key.unsqueeze(1) + position * 0x2545F4914F6CDD1D).float()
        logits = self.begin_logits.index_select(0, begin)
        state = [s.index_select(0, begin) for s in self.begin_state]
        any_top_k = bool(((top_k < V) & is_sampling).any())
        any_top_p = bool(((top_p < 1.0) & is_sampling).any())
        any_temperature = bool((temperature != 1.0).any())
        any_score = bool(is_score.any())
        any_capture = bool(capture.any())
        ended = torch.zeros(B, dtype=torch.bool)  # sampling rows that produced the end in time
        samples = torch.zeros(B, steps, dtype=torch.long)  # every token each row read or produced
        score_lp = torch.zeros(B, dtype=torch.float64)
        captured = torch.zeros(B, V)
        # only unfinished rows are computed: `active` lists them (ascending); logits and state
        # hold exactly those rows, and finished rows are dropped, keeping at least min_rows.
        # Per-row settings are gathered for the active rows when that set changes, not every step.
        per_row_settings = [forced_len_t, sample_from, is_score, capture, min_len, max_len, done_at,
                            temperature, top_k, top_p, forced_t, uniforms, slot]  # fmt: skip
        active = torch.arange(B)
        fin = torch.zeros(B, dtype=torch.bool)  # finished and ended, for the active rows
        ended_a = torch.zeros(B, dtype=torch.bool)
        cut = torch.zeros(B, dtype=torch.bool)  # rows stopped by their request's deadline
        cut_a = torch.zeros(B, dtype=torch.bool)
        settings = per_row_settings
        step = 0
        while True:
            flen, sample_from_a, scoring, capturing, min_len_a, max_len_a, done_at_a = settings[:7]
            temperature_a, top_k_a, top_p_a, forced_a, uniforms_a, slot_a = settings[7:]
            # the forced token: 0 once past a row's forced ones (sampling rows overwrite it)
            token = forced_a.select(1, step)
            if any_score:
                lp = F.log_softmax(logits.double(), dim=1).gather(1, token.unsqueeze(1)).squeeze(1)
                score_lp.index_add_(0, active, lp.masked_fill(~((step < flen) & scoring), 0.0))
            if any_capture:
                cap = capturing & (flen == step)
                if bool(cap.any()):
                    captured.index_copy_(0, active[cap], logits[cap])
            choose = (step >= sample_from_a) & ~fin
            if bool(choose.any()):
                no_end = step < max_min_len
                p_next = filter_rows(
                    logits, temperature_a, top_k_a, top_p_a, any_top_k, any_top_p,
                    step < min_len_a if no_end else fin,  # the name may not end yet
                    any_temperature, no_end,
                )  # fmt: skip
                # inverse CDF: the first token whose cumulative probability passes u * total
                cdf = torch.cumsum(p_next, dim=1)
                u = uniforms_a.select(1, step).unsqueeze(1)
                sampled = (cdf < u * cdf[:, -1:]).sum(dim=1).clamp(max=V - 1)
                token = torch.where(choose, sampled, token)
                end = token == 0
                stop = choose & (end | (step >= max_len_a))
                ended_a = ended_a | (stop & end)
                fin = fin | stop
            fin = fin | (step >= done_at_a)
            samples.select(1, step).index_copy_(0, active, token)
            if any_deadline and step % self.deadline_every == 0:
                late = self.expired.index_select(0, slot_a) & ~fin
                if bool(late.any()):
                    cut_a, fin = cut_a | late, fin | late
            n_open = fin.size(0) - int(fin.sum())
            if n_open == 0 or step + 1 >= steps:
                break
            # drop finished rows once they are an eighth of the batch, keeping min_rows rows
            n_keep = max(n_open, self.min_rows)
            if (fin.size(0) - n_keep) * 8 >= fin.size(0) and n_keep < fin.size(0):
                keep = ~fin
                short = n_keep - n_open
                if short > 0:  # keep some finished rows as padding
                    keep.index_fill_(0, fin.nonzero().squeeze(1)[:short], True)
                ended.index_copy_(0, active, ended_a)
                cut.index_copy_(0, active, cut_a)
                rows = keep.nonzero().squeeze(1)  # one index for every tensor: cheaper than a mask each
                active, token = active.index_select(0, rows), token.index_select(0, rows)
                fin, ended_a = fin.index_select(0, rows), ended_a.index_select(0, rows)
                cut_a = cut_a.index_select(0, rows)
                logits = logits.index_select(0, rows)
                state = [s.index_select(0, rows) for s in state]
                settings = [t.index_select(0, active) for t in per_row_settings]
            logits, state = self.stepper.step(token, state)  # type: ignore[operator]
            step += 1
        ended.index_copy_(0, active, ended_a)
        cut.index_copy_(0, active, cut_a)
        order: list[list[int]] = []
        next_probs: list[list[float]] = []
        if any_capture:
            rows = capture.nonzero().squeeze(1)
            k = top_k.index_select(0, rows)
            p = filter_rows(
                captured.index_select(0, rows),
                temperature.index_select(0, rows),
                k,
                torch.ones(k.size()),  # no nucleus cut
                bool((k < V).any()),
                False,
                torch.zeros(k.size(), dtype=torch.bool),
            ).double()
            p = p / p.sum(dim=1, keepdim=True)
            by_label = self.by_label
            # a stable sort of the label-ordered columns: likeliest first, equal ones by label
            sorted_p, pos = torch.sort(p.index_select(1, by_label), dim=1, descending=True, stable=True)
            order_rows: list[list[int]] = by_label[pos].tolist()
            prob_rows: list[list[float]] = sorted_p.tolist()
            order, next_probs = order_rows, prob_rows
        tokens: list[list[int]] = samples[:, : step + 1].tolist()  # the steps run, not all `steps`
        ended_list: list[bool] = ended.tolist()
        score_list: list[float] = score_lp.tolist()
        cut_list: list[bool] = cut.tolist()
        return tokens, ended_list, score_list, order, next_probs, cut_list
