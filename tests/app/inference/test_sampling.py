"""The sampler on its own: filters, determinism, batch sampling, bounded rounds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from app.inference.registry import LoadedModel, load_checkpoint
from app.inference.sampling import (
    NextCharTask,
    Piece,
    SampleSpec,
    SampleTask,
    ScoreTask,
    Task,
    cut,
    finish_batch,
    next_char_distribution,
    plan_batch,
    run_batch,
    run_to_completion,
    sample_names,
    score_names,
)
from tests.app.conftest import REPO_MODELS


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return load_checkpoint(REPO_MODELS / "names.pt")


def test_same_generator_seed_same_names(model: LoadedModel) -> None:
    spec = SampleSpec(n=100)
    a = sample_names(model, spec, 5)
    b = sample_names(model, spec, 5)
    assert a.names == b.names and len(a.names) == 100 and a.rounds == 1


def test_rounds_are_bounded(model: LoadedModel) -> None:
    spec = SampleSpec(n=50, prefix="emma", max_length=4, novel=True, max_rounds=3)
    result = sample_names(model, spec, 0)
    assert result.names == [] and result.rounds == 3 and not result.complete
    assert result.rejected["in_corpus"] > 0 and result.rejected["missing"] == 50


def test_quality_of_samples(model: LoadedModel) -> None:
    """Samples from the names model look like names: most are real names or close to them."""
    result = sample_names(model, SampleSpec(n=500, unique=False), 1)
    real = sum(name in model.items for name in result.names)
    assert real / 500 > 0.2  # the corpus has 29,910 names; noise would almost never hit one
    lengths = [len(s) for s in result.names]
    assert 4 < sum(lengths) / len(lengths) < 9


def test_results_do_not_depend_on_the_batch(model: LoadedModel) -> None:
    """Tasks run together in one batch give what each gives alone: micro-batching concurrent
    requests cannot change a seeded answer."""
    specs = [
        SampleSpec(n=1),
        SampleSpec(n=3, prefix="ma", temperature=0.8),
        SampleSpec(n=20, top_k=5, novel=True),
        SampleSpec(n=7, top_p=0.9, min_length=5, max_length=6),
        SampleSpec(n=2, prefix="emma", max_length=4, novel=True, max_rounds=3),  # never completes
    ]
    alone = [sample_names(model, s, i) for i, s in enumerate(specs)]
    tasks: list[Task] = [SampleTask(model, s, i) for i, s in enumerate(specs)]
    nxt, score = NextCharTask(model, "jo", 1.0, None), ScoreTask(model, ["olivia", "zzyzx"])
    run_to_completion(model, [*tasks, nxt, score])
    together = [t.result() for t in tasks if isinstance(t, SampleTask)]
    assert [r.names for r in together] == [r.names for r in alone]
    assert [r.rounds for r in together] == [r.rounds for r in alone]
    assert nxt.distribution() == next_char_distribution(model, "jo")
    assert score.scores() == score_names(model, ["olivia", "zzyzx"])


def test_a_batch_hands_no_tensor_to_the_batch_thread(model: LoadedModel) -> None:
    """The batch loop runs on torch's thread pool. Every tensor with a Python object that it is
    given makes that thread take the GIL when it lets go of it, so the loop's arguments are plain
    Python values and the start state lives inside the scripted loop."""
    tasks: list[Task] = [SampleTask(model, SampleSpec(n=3), 1), NextCharTask(model, "jo", 1.0, None)]
    plan = plan_batch(model, [Piece.whole(t) for t in [*tasks, ScoreTask(model, ["olivia"])]])

    def tensors(value: object) -> int:
        if isinstance(value, Tensor):
            return 1
        if isinstance(value, list | tuple):
            return sum(tensors(v) for v in value)
        return 0

    assert tensors(plan.args) == 0


def run_pieces(model: LoadedModel, pieces: list[Piece]) -> None:
    """Run pieces as one batch and hand them their results (ending no round)."""
    plan = plan_batch(model, pieces)
    with torch.inference_mode():
        finish_batch(model, plan, model.loop(*plan.args))


def test_a_round_cut_into_pieces_gives_the_same_names(model: LoadedModel) -> None:
    """The batcher may run a request's round as pieces, in different batches and beside other
    work: every row keeps its number in the round, so the names are the ones of one batch."""
    specs = [SampleSpec(n=37, prefix="ka"), SampleSpec(n=50, novel=True, max_length=6, max_rounds=4)]
    for seed, spec in enumerate(specs):
        whole = sample_names(model, spec, seed)
        task = SampleTask(model, spec, seed)
        while not task.done():
            pieces = cut(task, 7)
            assert max(p.rows for p in pieces) <= 7 and sum(p.rows for p in pieces) == task.rows
            other = SampleTask(model, SampleSpec(n=5), 99)  # beside other work, in reverse order
            for p in reversed(pieces):
                run_pieces(model, [Piece.whole(other), p])
            task.end_round()
        assert task.result() == whole


def test_scores_cut_into_pieces_are_the_same(model: LoadedModel) -> None:
    names = ["olivia", "liam", "zzyzx", "emma", "noah"]
    task = ScoreTask(model, names)
    for p in cut(task, 2):
        run_pieces(model, [p])
    for a, b in zip(task.scores(), score_names(model, names), strict=True):
        assert a.name == b.name and math.isclose(a.logprob, b.logprob, rel_tol=1e-6)  # float32 kernels


def test_sequences_are_bounded_and_the_result_says_why(model: LoadedModel) -> None:
    """A request that rejects nearly everything stops at its sequence budget, not before."""
    spec = SampleSpec(n=200, prefix="emma", max_length=5, novel=True, max_rounds=50, max_sequences=3000)
    result = sample_names(model, spec, 2)
    assert result.stopped == "sequences" and result.sampled == 3000 and not result.complete
    assert sample_names(model, SampleSpec(n=20), 2).stopped is None
    capped_rounds = sample_names(
        model, SampleSpec(n=5, prefix="emma", max_length=4, novel=True, max_rounds=2), 1
    )
    assert capped_rounds.stopped == "rounds" and capped_rounds.rounds == 2


def test_a_round_never_exceeds_its_row_cap(model: LoadedModel) -> None:
    task = SampleTask(model, SampleSpec(n=300, prefix="emma", max_length=5, novel=True, max_batch=500), 3)
    rows = []
    while not task.done():
        rows.append(task.rows)
        run_batch(model, [task])
    assert max(rows) == 500 and rows[0] == 300
