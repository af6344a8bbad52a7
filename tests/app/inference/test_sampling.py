"""The sampler on its own: filters, determinism, batch sampling, bounded rounds."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import Tensor

from app.inference.batches import (
    finish_batch,
    next_char_distribution,
    plan_batch,
    run_batch,
    run_to_completion,
    sample_names,
    score_names,
)
from app.inference.checkpoint import load_checkpoint
from app.inference.engine import Sampling, Start
from app.inference.loaded import LoadedModel
from app.inference.sampling import (
    NEUTRAL_GAP,
    NextCharTask,
    Piece,
    SampleSpec,
    SampleTask,
    ScoreTask,
    Task,
    cut,
    stream_of,
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
    spec = SampleSpec(n=50, prefix="emma", novel=True, max_rounds=3, sampling=Sampling(max_length=4))
    result = sample_names(model, spec, 0)
    assert result.names == [] and result.rounds == 3 and not result.complete
    assert result.rejected["in_corpus"] > 0 and result.rejected["missing"] == 50


def test_quality_of_samples(model: LoadedModel) -> None:
    """Samples from the names model look like names: most are real names or close to them."""
    result = sample_names(model, SampleSpec(n=500, unique=False), 1)
    real = sum(name in model.items for name in result.names)
    assert real / 500 > 0.2  # the corpus has 29,225 names; noise would almost never hit one
    lengths = [len(s) for s in result.names]
    assert 4 < sum(lengths) / len(lengths) < 9


def test_results_do_not_depend_on_the_batch(model: LoadedModel) -> None:
    """Tasks run together in one batch give what each gives alone: micro-batching concurrent
    requests cannot change a seeded answer."""
    specs = [
        SampleSpec(n=1),
        SampleSpec(n=3, prefix="ma", sampling=Sampling(temperature=0.8)),
        SampleSpec(n=20, novel=True, sampling=Sampling(top_k=5)),
        SampleSpec(n=7, sampling=Sampling(top_p=0.9, min_length=5, max_length=6)),
        SampleSpec(
            n=2, prefix="emma", novel=True, max_rounds=3, sampling=Sampling(max_length=4)
        ),  # never completes
    ]
    alone = [sample_names(model, s, i) for i, s in enumerate(specs)]
    tasks: list[Task] = [SampleTask(model, s, i) for i, s in enumerate(specs)]
    nxt, score = NextCharTask(model, "jo"), ScoreTask(model, ["olivia", "zzyzx"])
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
    tasks: list[Task] = [SampleTask(model, SampleSpec(n=3), 1), NextCharTask(model, "jo")]
    plan = plan_batch([Piece.whole(t) for t in [*tasks, ScoreTask(model, ["olivia"])]])

    def tensors(value: object) -> int:
        if isinstance(value, Tensor):
            return 1
        if isinstance(value, list | tuple):
            return sum(tensors(v) for v in value)
        return 0

    assert tensors(plan.args) == 0


def run_pieces(model: LoadedModel, pieces: list[Piece]) -> None:
    """Run pieces as one batch and hand them their results (ending no round)."""
    plan = plan_batch(pieces)
    with torch.inference_mode():
        finish_batch(model, plan, model.loop(*plan.args))


def test_a_round_cut_into_pieces_gives_the_same_names(model: LoadedModel) -> None:
    """The batcher may run a request's round as pieces, in different batches and beside other
    work: every row keeps its number in the round, so the names are the ones of one batch."""
    specs = [
        SampleSpec(n=37, prefix="ka"),
        SampleSpec(n=50, novel=True, max_rounds=4, sampling=Sampling(max_length=6)),
    ]
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
    spec = SampleSpec(
        n=200, prefix="emma", novel=True, max_rounds=50, max_sequences=3000, sampling=Sampling(max_length=5)
    )
    result = sample_names(model, spec, 2)
    assert result.stopped == "sequences" and result.sampled == 3000 and not result.complete
    assert sample_names(model, SampleSpec(n=20), 2).stopped is None
    capped_rounds = sample_names(
        model, SampleSpec(n=5, prefix="emma", novel=True, max_rounds=2, sampling=Sampling(max_length=4)), 1
    )
    assert capped_rounds.stopped == "rounds" and capped_rounds.rounds == 2


def test_a_round_never_exceeds_its_row_cap(model: LoadedModel) -> None:
    task = SampleTask(
        model, SampleSpec(n=300, prefix="emma", novel=True, max_batch=500, sampling=Sampling(max_length=5)), 3
    )
    rows = []
    while not task.done():
        rows.append(task.rows)
        run_batch(model, [task])
    assert max(rows) == 500 and rows[0] == 300


def positions(model: LoadedModel, seeds: range, n: int) -> list[list[str]]:
    """The names of each seed, by position (unique off: every row is a position)."""
    return [sample_names(model, SampleSpec(n=n, unique=False), s).names for s in seeds]


def test_nearby_seeds_give_independent_names(model: LoadedModel) -> None:
    """Seeds 0..99 (fixtures often use these): a name at the same position under two seeds is no
    more likely than a name at two different positions, i.e. than independent draws give."""
    names = positions(model, range(100), 50)
    same = other = 0
    for a in range(100):
        for b in range(a + 1, 100):
            x, y = names[a], names[b]
            same += sum(x[i] == y[i] for i in range(50))
            other += sum(x[i] == y[(i + 1) % 50] for i in range(50))
    assert same <= 1.3 * other + 20, (same, other)


def test_seed_and_row_are_not_interchangeable(model: LoadedModel) -> None:
    """Row r of seed s is not row s of seed r, and seed s's row s is nothing special (seed 0 row 0
    included): with the two summed or xored, they were."""
    names = positions(model, range(40), 40)
    transposed = sum(names[s][r] == names[r][s] for s in range(40) for r in range(s + 1, 40))
    assert transposed < 0.1 * (40 * 39 / 2)
    diagonal = [names[s][s] for s in range(40)]
    assert len(set(diagonal)) > 30 and diagonal[0] != diagonal[1]
    keys = {SampleTask(model, SampleSpec(n=1), seed).key() for seed in range(1000)}
    assert len(keys) == 1000 and 0 not in keys


def test_a_stream_gives_the_same_seed_other_names(model: LoadedModel) -> None:
    """Two samplings of one request (full names' given and family parts) share the seed but not
    the random numbers."""
    spec = SampleSpec(n=20, unique=False)
    plain, other = SampleTask(model, spec, 3), SampleTask(model, spec, 3, stream=stream_of("family|x"))
    run_to_completion(model, [plain, other])
    assert plain.result().names == sample_names(model, spec, 3).names
    same = sum(a == b for a, b in zip(plain.result().names, other.result().names, strict=True))
    assert same < 5


def test_characters_are_budgeted_not_only_sequences(model: LoadedModel) -> None:
    """Long names cost more: each row is charged max_length + 1 steps when its round is planned, and
    no request plans more than max_steps, whatever its n, lengths and temperature."""
    spec = SampleSpec(
        n=1000, max_steps=100_000, sampling=Sampling(min_length=64, max_length=64, temperature=5.0)
    )
    task = SampleTask(model, spec, 1)
    while not task.done():
        run_batch(model, [task])
    result = task.result()
    assert result.stopped == "steps" and task.steps <= 100_000 and result.sampled * 65 <= 100_000
    assert SampleTask(model, SampleSpec(n=5, max_steps=10), 1).result().stopped == "steps"


def test_a_pair_of_conditions_does_not_depend_on_the_batch() -> None:
    """Rows that begin from a pair of conditions (sex neutral) run as two copies each: beside
    other tasks in one batch they give what they give alone, and the others are unchanged. The
    mean of the two distributions is symmetric, so the pair's order does not matter."""
    era = load_checkpoint(REPO_MODELS / "names-era.pt")
    f, m = (era.start_of({"sex": sex, "decade": 1990}) for sex in ("F", "M"))
    neutral, girls = SampleSpec(n=30, start=Start(f, m)), SampleSpec(n=30, start=Start(f))
    alone = [sample_names(era, spec, 7).names for spec in (neutral, girls)]
    assert alone[0] != alone[1] and len(alone[0]) == 30
    assert sample_names(era, SampleSpec(n=30, start=Start(m, f)), 7).names == alone[0]
    tasks: list[Task] = [SampleTask(era, neutral, 7), SampleTask(era, girls, 7)]
    nxt, score = NextCharTask(era, "jo", start=Start(f, m)), ScoreTask(era, ["riley", "john"], Start(f, m))
    run_to_completion(era, [*tasks, nxt, score])
    assert [t.result().names for t in tasks if isinstance(t, SampleTask)] == alone
    assert nxt.distribution() == next_char_distribution(era, "jo", start=Start(f, m))
    assert score.scores() == score_names(era, ["riley", "john"], Start(f, m))
    # between the girls' and the boys' scores (a mean of log-probabilities, renormalised: not below the lower)
    by_sex = [score_names(era, ["riley"], Start(s))[0].logprob for s in (f, m)]
    assert min(by_sex) <= score.scores()[0].logprob


def test_a_pair_reports_each_names_gap_and_keeps_only_neutral_ones() -> None:
    """A row of a pair of conditions reports its gap: its log-probability as the first condition's
    name less the second's, what scoring it under each gives. With max_gap, a real name is kept when
    the model's data calls it neutral, an invented one when its gap is under max_gap."""
    era = load_checkpoint(REPO_MODELS / "names-era.pt")
    f, m = (era.start_of({"sex": sex, "decade": 2000}) for sex in ("F", "M"))
    task = SampleTask(era, SampleSpec(n=40, unique=False, start=Start(f, m), prefix="j"), 3)
    run_batch(era, [task])
    drawn = [(s, g) for s, g in zip(task.samples, task.gaps, strict=True) if isinstance(s, str)]
    names = [s for s, _ in drawn]
    girl, boy = score_names(era, names, Start(f)), score_names(era, names, Start(m))
    for (name, gap), a, b in zip(drawn, girl, boy, strict=True):
        assert math.isclose(gap, a.logprob - b.logprob, abs_tol=2e-3), name
    assert any(abs(g) > NEUTRAL_GAP for _, g in drawn)  # the mean alone lets gendered names through

    listed = sorted(n for n in era.items if n.startswith("j"))[::7]  # stands in for the data's list
    with_list = dataclasses.replace(era, meta={**era.meta, "neutral": {"rule": "test", "names": listed}})
    spec = SampleSpec(n=25, start=Start(f, m), max_gap=NEUTRAL_GAP, prefix="j")
    result = sample_names(with_list, spec, 1)
    assert result.rejected.get("not_neutral", 0) > 0 and len(result.names) == 25
    real = [s for s in result.names if s in era.items]
    invented = [s for s in result.names if s not in era.items]
    assert set(real) <= set(listed) and real and invented
    girl, boy = score_names(era, invented, Start(f)), score_names(era, invented, Start(m))
    assert all(abs(a.logprob - b.logprob) < NEUTRAL_GAP + 2e-3 for a, b in zip(girl, boy, strict=True))
    assert sample_names(with_list, spec, 1).names == result.names
