"""
The tasks of sampling, next-character distributions and scoring on a loaded checkpoint. No FastAPI.

A *task* is one request's share of a batch: some rows, each with the characters it is forced to
read (a prefix, or a name to score), and, for sampling, what to do after them. A batch
(app/inference/batches.py) feeds every row of every task one token per step through the
checkpoint's incremental `step`, so the n names of a request, and the work of many concurrent
requests, cost one forward step per character together.

Reproducibility: a sampling task's random numbers are a hash of its stream, seed, round, the row
and the position (app/inference/engine.py), and a row's results do not depend on the rest of its
batch. The same model, fields and seed therefore give the same names alone or among dozens of
other requests.

Constraints are exact where they can be (a prefix is forced; the end is masked until min_length)
and by rejection where not (longer than max_length, duplicates, names in the training corpus);
rejected samples are replaced in further rounds, and the result says how many were found. A
request's cost is bounded four ways: rounds (max_rounds), sequences sampled in all rounds
(max_sequences), steps taken in all rounds (max_steps: a row's characters and its end, or
max_length + 1 for a row that does not end; a round is planned with no more rows than could take
the most steps each within what is left, so the bound holds before anything runs), and a deadline
that the batcher enforces (app/inference/batching.py); `stopped` says which ended it.

A round of a task may run as several *pieces* (row ranges), in one batch or in several: each
piece's rows keep their row numbers within the round, so their random numbers, and the names, do
not depend on how the round was cut.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass, field

from app.config import MAX_ROUND_ROWS, MAX_ROUNDS, MAX_SEQUENCES, MAX_STEPS
from app.inference.engine import NO_CONDITION, NO_SAMPLING, Kind, Sampling, SplitMix, Start, TaskSettings
from app.inference.loaded import LoadedModel
from app.inference.safety import SafetyFilter

# -- random keys -------------------------------------------------------------------------------------

MASK64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """SplitMix64's output function on unsigned 64-bit integers (engine.mix is the same over
    torch int64): every input bit affects every output bit."""
    z = (x + (SplitMix.GAMMA.value & MASK64)) & MASK64
    z = ((z ^ (z >> 30)) * (SplitMix.MUL1.value & MASK64)) & MASK64
    z = ((z ^ (z >> 27)) * (SplitMix.MUL2.value & MASK64)) & MASK64
    return z ^ (z >> 31)


def stream_of(text: str) -> int:
    """A stable 64-bit stream number for `text` (the same in every process, unlike hash())."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


# -- the tasks ---------------------------------------------------------------------------------------


DEFAULT_SAMPLING = Sampling()  # the service's defaults (app/config.py)


@dataclass(frozen=True, kw_only=True)
class SampleSpec:
    """What one sampling asks for, and what it may cost (the defaults: the service's, app/config.py)."""

    n: int
    # how each row chooses its characters (min_length and max_length count the prefix)
    sampling: Sampling = DEFAULT_SAMPLING
    prefix: str = ""  # lowercase, already checked against the model's alphabet
    unique: bool = True
    novel: bool = False
    max_rounds: int = MAX_ROUNDS  # batches sampled at most, the first of exactly n sequences
    max_batch: int = MAX_ROUND_ROWS  # sequences in one round at most (later rounds oversample)
    max_sequences: int = MAX_SEQUENCES  # sequences in all rounds at most
    # steps (characters, a row's end counted) taken in all rounds at most: what bounds a request's
    # CPU time, whatever its lengths and temperature
    max_steps: int = MAX_STEPS
    start: Start = NO_CONDITION  # the rows of the model's begin table to start from: its condition
    # with a pair of conditions (sex neutral): a name is kept when it is a real name the model's
    # data calls neutral (LoadedModel.neutral), or an invented one whose two log-probabilities, one
    # per condition, differ by less than this (NEUTRAL_GAP); None: every name
    max_gap: float | None = None


@dataclass(slots=True)  # slots: the pool keeps many (app/inference/pool.py)
class SampleResult:
    names: list[str]  # lowercase, at most n
    rounds: int
    sampled: int  # sequences sampled in all rounds
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    stopped: str | None = None  # why it ended short of n: "rounds", "sequences", "steps" or "deadline"

    @property
    def complete(self) -> bool:
        return self.rejected.get("missing", 0) == 0


NOT_RUN = "\0not run"  # a sample slot whose piece was dropped (deadline, cancellation)
# a neutral name: one the girl's and the boy's condition find about as likely, within a factor of two
NEUTRAL_GAP = math.log(2)


class Task:
    """One request's rows in a batch. Subclasses say what the rows read and what they yield."""

    rows: int  # rows of the current round
    forced: list[list[int]]  # per row: the tokens it must read before anything else
    start: Start = NO_CONDITION  # the begin-table rows its rows start from: its condition
    # its deadline slot in the model's batch loop, given by the batcher (engine.TaskSettings.slot);
    # 0: none, its rows always run to their end
    slot: int = 0
    kind = Kind.PADDING

    sampling = NO_SAMPLING  # how its rows choose characters: none unless it samples or reports them
    prefix_length = 0  # forced characters that count towards a sampled name

    def settings(self, piece: Piece) -> TaskSettings:
        """The settings of one piece of the task in a batch (app/inference/engine.py)."""
        return TaskSettings(
            rows=piece.rows,
            kind=self.kind.value,
            prefix_length=self.prefix_length,
            start=self.start.row,
            twin_start=self.start.twin,
            offset=piece.offset,
            key=self.key(),
            slot=self.slot,
            sampling=self.sampling,
        )

    def key(self) -> int:
        """The random key of the current round (sampling tasks; 0 for the others)."""
        return 0

    def done(self) -> bool:
        """Whether the task has its result (else it wants another round)."""
        return True

    def end_round(self) -> None:
        """Every piece of the current round has its results (or was dropped)."""


class SampleTask(Task):
    kind = Kind.SAMPLE

    def __init__(
        self,
        model: LoadedModel,
        spec: SampleSpec,
        seed: int,
        safety: SafetyFilter | None = None,
        stream: int = 0,
    ) -> None:
        self.model, self.spec, self.seed = model, spec, seed
        # which of a request's samplings this is (0: its names; full names' family part: a hash of
        # what the given part is drawn from), so that one seed gives each its own random numbers
        self.stream = stream
        self.safety = safety  # names it refuses are rejected as "unsafe" (None: no such check)
        self.prefix = model.encode(spec.prefix)
        self.prefix_length = len(self.prefix)
        self.sampling = spec.sampling
        self.names: list[str] = []
        self.seen: set[str] = set()
        self.rejected = {
            "too_long": 0, "mixed_script": 0, "misshapen": 0, "duplicate": 0, "in_corpus": 0,
            "not_neutral": 0, "unsafe": 0,
        }  # fmt: skip
        self.rounds = self.sampled = 0
        self.steps = 0  # steps its rows have taken so far (characters and ends), every round counted
        self.stopped: str | None = None
        self.start = spec.start
        self._plan(min(spec.n, self.affordable()))
        if self.rows == 0:  # a budget too small for even one row
            self.stopped = "steps" if spec.max_sequences > 0 else "sequences"

    def affordable(self) -> int:
        """Rows the budgets leave for the next round: each planned at the most steps it may take,
        so that no round can overrun what is left."""
        spec = self.spec
        return max(0, min(spec.max_sequences - self.sampled, (spec.max_steps - self.steps) // self.row_steps))

    @property
    def row_steps(self) -> int:
        return self.spec.sampling.max_length + 1  # the most steps a row may take, its end counted

    def _plan(self, rows: int) -> None:
        self.rows = rows
        self.forced = [self.prefix] * rows
        self.samples: list[str | None] = [NOT_RUN] * rows  # this round's, by row
        self.gaps = [0.0] * rows  # with a pair of conditions, each row's gap (engine.BatchLoop)

    def put(self, offset: int, samples: list[str | None], gaps: list[float] | None = None) -> None:
        """A piece's samples (None: longer than max_length; NOT_RUN: cut by the deadline), and
        with a pair of conditions their gaps, at its rows of the round; each charged the steps it
        took (a name and its end, or max_length + 1)."""
        self.samples[offset : offset + len(samples)] = samples
        if gaps is not None:
            self.gaps[offset : offset + len(gaps)] = gaps
        self.steps += sum(self.row_steps if s is None else len(s) + 1 for s in samples if s is not NOT_RUN)

    def end_round(self) -> None:
        self.collect(self.samples, self.gaps)

    def balanced(self, name: str, gap: float) -> bool:
        """Whether a name passes max_gap: a real name by the model's data (when it names neutral
        names), an invented one (or any, without such data) by its gap."""
        assert self.spec.max_gap is not None
        neutral = self.model.neutral
        if neutral and name in self.model.items:
            return name in neutral
        return abs(gap) < self.spec.max_gap

    def collect(self, samples: list[str | None], gaps: list[float] | None = None) -> None:
        """Keep the samples of one round that meet the constraints; plan the next round."""
        spec = self.spec
        self.rounds += 1
        gaps = gaps or [0.0] * len(samples)
        for name, gap in zip(samples, gaps, strict=True):
            if len(self.names) == spec.n:
                break
            if name == NOT_RUN:
                continue
            self.sampled += 1
            if name is None:
                self.rejected["too_long"] += 1
            elif self.model.mixes_scripts(name):
                self.rejected["mixed_script"] += 1
            elif self.model.misshapen(name):
                self.rejected["misshapen"] += 1
            elif spec.unique and name in self.seen:
                self.rejected["duplicate"] += 1
            elif spec.novel and name in self.model.items:
                self.rejected["in_corpus"] += 1
            elif spec.max_gap is not None and not self.balanced(name, gap):
                self.rejected["not_neutral"] += 1
            elif self.safety is not None and self.safety.refuses(name):
                self.rejected["unsafe"] += 1
            else:
                self.names.append(name)
                self.seen.add(name)
        missing = spec.n - len(self.names)
        if missing == 0:
            return
        if self.rounds >= spec.max_rounds:
            self.stopped = "rounds"
            return
        budget = self.affordable()
        if budget <= 0:
            self.stopped = "sequences" if spec.max_sequences - self.sampled <= 0 else "steps"
            return
        accept = max(len(self.names) / max(self.sampled, 1), 0.02)  # oversample by what got through
        self._plan(min(spec.max_batch, budget, max(16, math.ceil(1.25 * missing / accept))))

    def stop(self, reason: str) -> None:
        """End the task before it has n names (the batcher's deadline)."""
        if not self.done():
            self.stopped = reason

    def done(self) -> bool:
        return len(self.names) == self.spec.n or self.stopped is not None

    def key(self) -> int:
        """The random key of this round: the stream, the seed and the round number, each mixed
        through SplitMix64's finaliser before the next is added, as an int64. The engine mixes in
        the row the same way (app/inference/engine.py), so no two (stream, seed, round, row) share
        a stream of random numbers in practice, and none is special (a plain sum or xor of them
        would make seed 1 row 2 equal seed 2 row 1)."""
        key = mix64(mix64(mix64(self.stream) + self.seed) + self.rounds)
        return key - (1 << 64) if key >= 1 << 63 else key

    def result(self) -> SampleResult:
        rejected = {k: v for k, v in self.rejected.items() if v}
        if len(self.names) < self.spec.n:
            rejected["missing"] = self.spec.n - len(self.names)
        return SampleResult(list(self.names), self.rounds, self.sampled, rejected, self.stopped)


class NextCharTask(Task):
    """One row: read the prefix, then report the distribution of the next character."""

    kind = Kind.NEXT_CHAR

    def __init__(
        self, model: LoadedModel, prefix: str, sampling: Sampling = NO_SAMPLING, start: Start = NO_CONDITION
    ) -> None:
        """`sampling`: its temperature and top_k apply (0: every character)."""
        self.model, self.start = model, start
        self.sampling = Sampling(
            temperature=sampling.temperature, top_k=sampling.top_k, min_length=0, max_length=0
        )
        self.rows = 1
        self.forced = [model.encode(prefix)]
        self.probs: list[tuple[str, float]] | None = None  # set by finish_batch

    def distribution(self) -> list[tuple[str, float]]:
        """(char, probability) likeliest first, ties by char; the boundary is "<end>". Every
        vocabulary entry, or with top_k only the characters it keeps: the k likeliest, and any
        more that tie with the k-th. The probabilities sum to 1 in float64."""
        assert self.probs is not None
        top_k = self.sampling.top_k
        if top_k == 0:
            return self.probs
        return [cp for i, cp in enumerate(self.probs) if i < top_k or cp[1] > 0.0]


@dataclass(frozen=True)
class Score:
    name: str
    logprob: float  # natural log of the probability of the name and its end
    nats_per_char: float  # -logprob / (len(name) + 1)
    perplexity: float
    in_corpus: bool


class ScoreTask(Task):
    """A row per name: read the name and its end, adding up the log-probability of each token."""

    kind = Kind.SCORE

    def __init__(self, model: LoadedModel, names: list[str], start: Start = NO_CONDITION) -> None:
        self.model, self.names, self.start = model, names, start
        self.rows = len(names)
        self.forced = [[*model.encode(s), 0] for s in names]
        self.logprob: list[float] = [0.0] * self.rows

    def scores(self) -> list[Score]:
        out = []
        for s, lp in zip(self.names, self.logprob, strict=True):
            npc = -lp / (len(s) + 1)
            out.append(Score(s, lp, npc, math.exp(npc), s in self.model.items))
        return out


class Padding(Task):
    """Rows that fill a small batch up to MIN_ROWS (app/inference/batches.py)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.forced = [[0]] * rows  # reads the end at once: finished after the first step


@dataclass(eq=False)
class Piece:
    """Rows offset .. offset + rows - 1 of a task's current round."""

    task: Task
    offset: int
    rows: int

    @classmethod
    def whole(cls, task: Task) -> Piece:
        return cls(task, 0, task.rows)


def cut(task: Task, piece_rows: int) -> list[Piece]:
    """The task's current round as pieces of at most piece_rows rows, of near-equal sizes."""
    k = max(1, math.ceil(task.rows / piece_rows))
    bounds = [task.rows * i // k for i in range(k + 1)]
    return [Piece(task, a, b - a) for a, b in itertools.pairwise(bounds) if b > a]
