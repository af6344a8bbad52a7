"""
The step loop of a batch, compiled with TorchScript (pure torch, no FastAPI), and the settings
records it reads.

One module, longer than most: it is one compiled unit. The records that cross from Python into
TorchScript (Sampling, TaskSettings, TaskColumns), the per-row settings the loop builds from them
(RowSettings) and the loop that reads them stay together, so that a new per-row setting is one
edit here: a Sampling field, its TaskColumns column, its RowSettings field (built in
BatchLoop.expand, narrowed in select_rows) and where the loop uses it (CONTRIBUTING.md, "Where to
add a request field").

`BatchLoop` drives a checkpoint's incremental `step` for every row of a batch until each row is
finished, and samples, scores and captures as it goes. It is scripted once per model at load time,
so a whole batch runs as one call: no Python between steps, and no holding of the GIL, which the
event loop serving HTTP needs at the same time. app/inference/batches.py prepares its inputs and
reads its outputs; `StepAdapter` gives checkpoints that only have `forward` the same `init_state`/`step`.

A row reads its forced tokens first (a prefix, or a name and its end to score), then, if it is a
sampling row, samples until it produces the end (0) or passes max_length.

A task may begin from a pair of conditions (`Start.twin`: a sex-neutral name is one that a girl's
and a boy's condition both find likely): each of its rows then runs as two copies side by side, one
per condition, whose next-token log-probabilities are averaged at every step (the normalised
geometric mean of the two distributions); both copies read and choose the same token, and only the
first reports, with the difference between the two conditions' log-probabilities of what the row
read and chose (its gap: what tells a name both find about as likely from one that only the mean
allowed).

Random numbers are counter-based: the uniform a row uses at a position is a hash (SplitMix64) of its
task's key (the request's stream, seed and round, app/inference/sampling.py), its row number within
the round and the position, each mixed in after the one before. Nothing a row draws depends on the
rest of the batch, and no generator has to be stepped from Python per request.
"""

# no `from __future__ import annotations`: TorchScript reads these annotations at run time
import math
from dataclasses import dataclass, fields
from enum import Enum
from operator import attrgetter
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from app.config import DEFAULT_MAX_LENGTH

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


class Start(NamedTuple):
    """Where a task's rows begin: a row of the model's begin table (the boundary, 0, or a
    condition's token), and for a pair of conditions (sex neutral: F and M) the other one's row,
    whose log-probabilities are averaged with the first's at every step (-1: none)."""

    row: int = 0
    twin: int = -1


NO_CONDITION = Start()


@dataclass(frozen=True, kw_only=True, slots=True)
class Sampling:
    """How a task's rows choose their characters: a /generate request's fields (the defaults:
    the service's), a /next-char request's temperature and top_k. Keyword-only, like every
    settings record here: a field is only ever passed by name."""

    temperature: float = 1.0
    top_k: int = 0  # sample only from the k likeliest tokens; 0: no cut
    top_p: float = 1.0  # nucleus: the smallest set of tokens with this mass; 1.0: no cut
    min_length: int = 1  # the end is masked before this many characters (sampling rows)
    max_length: int = DEFAULT_MAX_LENGTH  # a sample longer than this stops, not ended (sampling rows)


NO_SAMPLING = Sampling(min_length=0, max_length=0)  # the settings of rows that choose no character


@dataclass(kw_only=True, slots=True)
class TaskSettings:
    """One task's settings in a batch: a task is a request's piece of the batch, its rows
    consecutive (app/inference/sampling.py Task.settings makes them, one per piece per batch: not
    frozen, which would cost three times as much to make)."""

    rows: int  # rows of the task
    kind: int  # a Kind value
    prefix_length: int  # forced characters that count towards the name (sampling)
    start: int  # the row of the begin tables the rows begin from: the condition (0: none)
    twin_start: int  # a pair's other condition (Start.twin); -1: none
    # the row number, within its request's round, of the task's first row: a round may be cut
    # into pieces, each a task here, and a row's random numbers follow its number in the round
    offset: int
    key: int  # the random key of the request's round (stream, seed and round number), as int64
    # the task's deadline slot: once BatchLoop.expired[slot] is set, its rows stop where they are
    # (cut, reported as not run); 0: no deadline
    slot: int
    sampling: Sampling


class TaskColumns(NamedTuple):
    """The TaskSettings of every task of a batch, a list per field, in batch order: TaskSettings'
    own fields, then Sampling's (checked below, at import). Columns rather than a list of objects:
    TorchScript takes a NamedTuple of lists as one typed argument at a third of the cost."""

    rows: list[int]
    kind: list[int]
    prefix_length: list[int]
    start: list[int]
    twin_start: list[int]
    offset: list[int]
    key: list[int]
    slot: list[int]
    temperature: list[float]
    top_k: list[int]
    top_p: list[float]
    min_length: list[int]
    max_length: list[int]


_TASK_FIELDS = tuple(f.name for f in fields(TaskSettings) if f.name != "sampling")
_SAMPLING_FIELDS = tuple(f.name for f in fields(Sampling))


def check_columns(columns: type[tuple[Any, ...]]) -> None:
    """TypeError unless `columns` (a NamedTuple) has TaskSettings' fields, then Sampling's, by name
    and in order: what lets task_columns fill it by position, fast, and stay right."""
    names = getattr(columns, "_fields", ())
    if names != _TASK_FIELDS + _SAMPLING_FIELDS:
        raise TypeError(
            f"{columns.__name__} must have TaskSettings' fields, then Sampling's, in order: "
            f"{', '.join(_TASK_FIELDS + _SAMPLING_FIELDS)}; it has {', '.join(names)}"
        )


check_columns(TaskColumns)  # at import: a reordered, missing or extra column never runs
_task_values, _sampling_values = attrgetter(*_TASK_FIELDS), attrgetter(*_SAMPLING_FIELDS)


def task_columns(tasks: list[TaskSettings]) -> TaskColumns:
    """The batch's TaskColumns: each record's fields read by name, in the order check_columns
    has verified."""
    values = [_task_values(t) + _sampling_values(t.sampling) for t in tasks]
    return TaskColumns(*map(list, zip(*values, strict=True)))


class SplitMix(Enum):
    """SplitMix64's constants (Steele, Lea and Flood 2014) as signed 64-bit integers, the form
    torch's int64 arithmetic (which wraps like uint64's) takes; `value & (2**64 - 1)` is the
    unsigned form app/inference/sampling.py mix64 uses. An Enum: TorchScript reads no plain global."""

    GAMMA = 0x9E3779B97F4A7C15 - (1 << 64)  # the increment: 2^64 / the golden ratio
    MUL1 = 0xBF58476D1CE4E5B9 - (1 << 64)
    MUL2 = 0x94D049BB133111EB - (1 << 64)
    # a row's key steps by this per position: one row's positions lie far apart in the key space
    POSITION = 0x2545F4914F6CDD1D


def _shift_right(z: Tensor, k: int) -> Tensor:
    """Logical right shift of int64 values (torch's >> is arithmetic)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def mix(x: Tensor) -> Tensor:
    """SplitMix64's output function: int64 -> well-mixed int64."""
    z = x + SplitMix.GAMMA.value
    z = (z ^ _shift_right(z, 30)) * SplitMix.MUL1.value
    z = (z ^ _shift_right(z, 27)) * SplitMix.MUL2.value
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


class RowSettings(NamedTuple):
    """Every per-row setting of the rows a batch computes, a tensor each with a row per entry:
    each task's TaskColumns entry repeated over its rows, and what follows from them. Built by
    name (BatchLoop.expand), narrowed by name (select_rows): a field cannot be read in the place of
    another, and one left out of either does not compile."""

    forced: Tensor  # (B, steps) the tokens each row must read first, then 0
    forced_len: Tensor  # (B,) how many
    sample_from: Tensor  # (B,) the step a row starts sampling at (`steps`: never)
    done_at: Tensor  # (B,) the step after which a reading row is finished (`steps`: never)
    is_score: Tensor  # (B,) bool: adds up the log-probability of its forced tokens
    capture: Tensor  # (B,) bool: reports the distribution after its forced tokens
    temperature: Tensor  # (B,) float
    top_k: Tensor  # (B,) the vocabulary size: no top-k cut
    top_p: Tensor  # (B,) float, 1.0: no nucleus cut
    min_length: Tensor  # (B,)
    max_length: Tensor  # (B,)
    uniforms: Tensor  # (B, steps) float: the uniform each row uses at each step
    slot: Tensor  # (B,) its request's deadline slot (0: none)


def select_rows(rows: RowSettings, kept: Tensor) -> RowSettings:
    """RowSettings of the rows `kept` (indices), every field by name."""
    return RowSettings(
        forced=rows.forced.index_select(0, kept),
        forced_len=rows.forced_len.index_select(0, kept),
        sample_from=rows.sample_from.index_select(0, kept),
        done_at=rows.done_at.index_select(0, kept),
        is_score=rows.is_score.index_select(0, kept),
        capture=rows.capture.index_select(0, kept),
        temperature=rows.temperature.index_select(0, kept),
        top_k=rows.top_k.index_select(0, kept),
        top_p=rows.top_p.index_select(0, kept),
        min_length=rows.min_length.index_select(0, kept),
        max_length=rows.max_length.index_select(0, kept),
        uniforms=rows.uniforms.index_select(0, kept),
        slot=rows.slot.index_select(0, kept),
    )


# what BatchLoop.forward returns, as Python lists (see there)
LoopOutputs = tuple[
    list[list[int]], list[bool], list[float], list[list[int]], list[list[float]], list[bool], list[float]
]


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
        self, tasks: TaskColumns, forced: list[list[int]], forced_len: list[int], steps: int
    ) -> torch.jit.Future[LoopOutputs]:
        """`forward` started on torch's inter-op thread pool: returns at once with a future. The
        batch then runs with no Python and no GIL at all, and the caller's thread (the event loop)
        carries on serving HTTP meanwhile."""
        return torch.jit.fork(self.forward, tasks, forced, forced_len, steps)

    def forward(
        self,
        tasks: TaskColumns,  # (T,) per field
        forced: list[list[int]],  # (B, F) tokens each row must read first, padded with 0
        forced_len: list[int],  # (B,)
        steps: int,  # upper bound on the number of steps
    ) -> LoopOutputs:
        """Returns, as Python lists: the tokens of each row (B, the steps run); whether each
        sampling row ended in time (B,); each row's summed log-probability (B,), for scoring rows;
        for the next-char rows, in row order, every token likeliest first (ties in label order)
        with its probability after temperature and top-k, in float64 summing to 1; whether each
        row was cut short by its request's deadline (B,); and when a task begins from a pair of
        conditions, each row's gap (B,): the first condition's log-probability of what the row read
        and chose, its end counted, less the second's (0 for other rows; an empty list when no task
        does).

        Lists in and out, not tensors: every tensor the caller frees in Python hands the GIL over
        (torch releases it to free the memory), and while the event loop is busy each hand-over
        waits up to a switch interval. With lists there are none."""
        rows, begin, task_of_row = self.expand(tasks, forced, forced_len, steps)
        # without a pair of conditions in the batch (nearly always) nothing below costs an op
        any_pair = max(tasks.twin_start) >= 0
        run_rows, run_begin = rows, begin
        copy_of = first = torch.zeros(0, dtype=torch.long)
        if any_pair:  # each row of a pair of conditions runs twice: one copy per condition
            twin_begin = torch.tensor(tasks.twin_start).index_select(0, task_of_row)  # (B,) -1: none
            copy_of = torch.repeat_interleave(torch.arange(task_of_row.size(0)), (twin_begin >= 0).long() + 1)
            second = torch.zeros(copy_of.size(0), dtype=torch.bool)
            second[1:] = copy_of[1:] == copy_of[:-1]
            run_rows = select_rows(rows, copy_of)
            run_begin = torch.where(
                second, twin_begin.index_select(0, copy_of), begin.index_select(0, copy_of)
            )
            first = (~second).nonzero().squeeze(1)
        samples, ended, score_lp, captured, cut, gap, last = self.run_steps(
            run_rows, run_begin, steps, copy_of, any_pair
        )
        gap_list: list[float] = []
        if any_pair:  # what each row's first copy read, chose and saw: the row's own
            samples, ended = samples.index_select(0, first), ended.index_select(0, first)
            score_lp, cut = score_lp.index_select(0, first), cut.index_select(0, first)
            captured = captured.index_select(0, first)
            picked: list[float] = gap.index_select(0, first).tolist()
            gap_list = picked
        order, next_probs = self.distributions(rows, captured)
        tokens: list[list[int]] = samples[:, : last + 1].tolist()  # the steps run, not all `steps`
        ended_list: list[bool] = ended.tolist()
        score_list: list[float] = score_lp.tolist()
        cut_list: list[bool] = cut.tolist()
        return tokens, ended_list, score_list, order, next_probs, cut_list, gap_list

    def expand(
        self, tasks: TaskColumns, forced: list[list[int]], forced_len: list[int], steps: int
    ) -> tuple[RowSettings, Tensor, Tensor]:
        """Every row's settings from its task's (here, not in Python: the event loop then does a
        handful of list operations per batch, not a handful per task), each row's begin-table
        row, and each row's task (B,)."""
        rows_per_task = torch.tensor(tasks.rows)
        task_of_row = torch.repeat_interleave(torch.arange(rows_per_task.size(0)), rows_per_task)  # (B,)
        forced_t = torch.tensor(forced)  # (B, F), padded with 0 to (B, steps)
        forced_t = F.pad(forced_t, [0, steps - forced_t.size(1)])
        forced_len_t = torch.tensor(forced_len)
        B, V = forced_t.size(0), self.begin_logits.size(1)
        kind = torch.tensor(tasks.kind).index_select(0, task_of_row)
        is_sampling = kind == Kind.SAMPLE.value
        capture = kind == Kind.NEXT_CHAR.value
        prefix_len = torch.tensor(tasks.prefix_length).index_select(0, task_of_row)
        top_k = torch.tensor(tasks.top_k).index_select(0, task_of_row)
        # the row number within its request's round: a task's offset, plus the row's place in the task
        starts = torch.cumsum(rows_per_task, 0) - rows_per_task
        offset = torch.tensor(tasks.offset).index_select(0, task_of_row)
        row_in_round = torch.arange(B) - starts.index_select(0, task_of_row) + offset
        # (B,) a stream per row: the row number added to its task's key (already a hash of the
        # stream, seed and round) and mixed again, so that rows and seeds never trade places
        row_key = mix(torch.tensor(tasks.key).index_select(0, task_of_row) + row_in_round)
        # the uniform each row uses at each step, all made at once: a hash of the row's stream
        # and its position (characters sampled so far)
        position = torch.arange(steps).unsqueeze(0) - prefix_len.unsqueeze(1)  # (B, steps)
        rows = RowSettings(
            forced=forced_t,
            forced_len=forced_len_t,
            # a sampling row starts after its forced tokens, and stops by itself; a row that only
            # reads is finished after its last forced token or, for next-char, once it has seen
            # the logits after them
            sample_from=forced_len_t.masked_fill(~is_sampling, steps),
            done_at=torch.where(capture, forced_len_t, forced_len_t - 1).masked_fill_(is_sampling, steps),
            is_score=kind == Kind.SCORE.value,
            capture=capture,
            temperature=torch.tensor(tasks.temperature, dtype=torch.float).index_select(0, task_of_row),
            # 0 (no cut), or more than the vocabulary, becomes its size: every token is kept
            top_k=top_k.masked_fill(top_k == 0, V).clamp(max=V),
            top_p=torch.tensor(tasks.top_p, dtype=torch.float).index_select(0, task_of_row),
            min_length=torch.tensor(tasks.min_length).index_select(0, task_of_row),
            max_length=torch.tensor(tasks.max_length).index_select(0, task_of_row),
            uniforms=uniform(row_key.unsqueeze(1) + position * SplitMix.POSITION.value).float(),
            slot=torch.tensor(tasks.slot).index_select(0, task_of_row),
        )
        return rows, torch.tensor(tasks.start).index_select(0, task_of_row), task_of_row

    def run_steps(
        self, rows: RowSettings, begin: Tensor, steps: int, pair: Tensor, any_pair: bool
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, int]:
        """Step every row until each is finished: (every token each row read or produced (B,
        steps), whether each sampling row ended in time (B,), each scoring row's summed
        log-probability (B,), the logits each next-char row captured (B, V), whether each row was
        cut by its deadline (B,), each pair's gap (B,, at its first copy; empty without pairs), the
        last step run). With `any_pair`, `pair` (B,) is the row of the batch each row is a copy of,
        and neighbouring rows of the same `pair` are the two copies of one row: they see the mean
        of their log-probabilities and choose the same token."""
        B, V = rows.forced.size(0), self.begin_logits.size(1)
        is_sampling = rows.sample_from < steps  # only sampling rows start sampling
        any_top_k = bool(((rows.top_k < V) & is_sampling).any())
        any_top_p = bool(((rows.top_p < 1.0) & is_sampling).any())
        any_temperature = bool((rows.temperature != 1.0).any())
        any_score = bool(rows.is_score.any())
        any_capture = bool(rows.capture.any())
        any_deadline = bool((rows.slot > 0).any())
        max_min_len = int(rows.min_length.max())  # from this step on no row has the end masked
        logits = self.begin_logits.index_select(0, begin)
        state = [s.index_select(0, begin) for s in self.begin_state]
        ended = torch.zeros(B, dtype=torch.bool)  # sampling rows that produced the end in time
        samples = torch.zeros(B, steps, dtype=torch.long)
        score_lp = torch.zeros(B, dtype=torch.float64)
        captured = torch.zeros(B, V)
        cut = torch.zeros(B, dtype=torch.bool)  # rows stopped by their request's deadline
        # only unfinished rows are computed: `active` lists them (ascending), and `live` their
        # settings; logits and state hold exactly those rows. Finished rows are dropped, keeping at
        # least min_rows, and the settings gathered again only then, not every step
        active = torch.arange(B)
        live = rows
        fin = torch.zeros(B, dtype=torch.bool)  # finished, for the active rows
        ended_a = torch.zeros(B, dtype=torch.bool)
        cut_a = torch.zeros(B, dtype=torch.bool)
        step = 0
        gap = twins = pair  # with pairs: each pair's gap, at its first copy; the first copies computed
        one_minus_other = logits  # with pairs: their log-probability differences, this step
        open_before = fin  # with pairs: the rows open when the step began
        live_pair = pair  # with pairs: `pair` of the active rows
        if any_pair:
            gap = torch.zeros(B, dtype=torch.float64)
        while True:
            if any_pair:
                # the two copies of a row see the normalised geometric mean of their distributions;
                # rows of no pair keep their logits as they are, bit for bit
                twins = (live_pair[1:] == live_pair[:-1]).nonzero().squeeze(1)
                one = F.log_softmax(logits.index_select(0, twins), dim=1)
                other = F.log_softmax(logits.index_select(0, twins + 1), dim=1)
                one_minus_other = one - other
                mean = 0.5 * (one + other)
                logits = logits.index_copy(0, twins, mean).index_copy(0, twins + 1, mean)
                open_before = ~fin
            # the forced token: 0 once past a row's forced ones (sampling rows overwrite it)
            token = live.forced.select(1, step)
            if any_score:
                lp = F.log_softmax(logits.double(), dim=1).gather(1, token.unsqueeze(1)).squeeze(1)
                reading = (step < live.forced_len) & live.is_score
                score_lp.index_add_(0, active, lp.masked_fill(~reading, 0.0))
            if any_capture:
                cap = live.capture & (live.forced_len == step)
                if bool(cap.any()):
                    captured.index_copy_(0, active[cap], logits[cap])
            choose = (step >= live.sample_from) & ~fin
            if bool(choose.any()):
                no_end = step < max_min_len
                p_next = filter_rows(
                    logits, live.temperature, live.top_k, live.top_p, any_top_k, any_top_p,
                    step < live.min_length if no_end else fin,  # the name may not end yet
                    any_temperature, no_end,
                )  # fmt: skip
                # inverse CDF: the first token whose cumulative probability passes u * total
                cdf = torch.cumsum(p_next, dim=1)
                u = live.uniforms.select(1, step).unsqueeze(1)
                sampled = (cdf < u * cdf[:, -1:]).sum(dim=1).clamp(max=V - 1)
                token = torch.where(choose, sampled, token)
                if any_pair:  # the second copy takes the first's token, whatever rounding did
                    token = token.index_copy(0, twins + 1, token.index_select(0, twins))
                end = token == 0
                stop = choose & (end | (step >= live.max_length))
                ended_a = ended_a | (stop & end)
                fin = fin | stop
            fin = fin | (step >= live.done_at)
            if any_pair:  # each open pair's gap grows by its token's two log-probabilities' difference
                took = one_minus_other.gather(1, token.index_select(0, twins).unsqueeze(1)).squeeze(1)
                took = took.masked_fill(~open_before.index_select(0, twins), 0.0)
                gap.index_add_(0, active.index_select(0, twins), took.double())
            samples.select(1, step).index_copy_(0, active, token)
            if any_deadline and step % self.deadline_every == 0:
                late = self.expired.index_select(0, live.slot) & ~fin
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
                kept = keep.nonzero().squeeze(1)  # one index for every tensor: cheaper than a mask each
                active, token = active.index_select(0, kept), token.index_select(0, kept)
                fin, ended_a = fin.index_select(0, kept), ended_a.index_select(0, kept)
                cut_a = cut_a.index_select(0, kept)
                logits = logits.index_select(0, kept)
                state = [s.index_select(0, kept) for s in state]
                live = select_rows(rows, active)
                if any_pair:
                    live_pair = pair.index_select(0, active)
            logits, state = self.stepper.step(token, state)  # type: ignore[operator]
            step += 1
        ended.index_copy_(0, active, ended_a)
        cut.index_copy_(0, active, cut_a)
        return samples, ended, score_lp, captured, cut, gap, step

    def distributions(self, rows: RowSettings, captured: Tensor) -> tuple[list[list[int]], list[list[float]]]:
        """For the next-char rows, in row order: every token likeliest first (ties in label order),
        and its probability after the row's temperature and top-k, in float64 summing to 1."""
        if not bool(rows.capture.any()):
            return [], []
        V = captured.size(1)
        which = rows.capture.nonzero().squeeze(1)
        k = rows.top_k.index_select(0, which)
        p = filter_rows(
            captured.index_select(0, which),
            rows.temperature.index_select(0, which),
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
        order: list[list[int]] = by_label[pos].tolist()
        probs: list[list[float]] = sorted_p.tolist()
        return order, probs
