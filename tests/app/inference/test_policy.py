"""The micro-batching policy as plain functions: when a batch starts, how many rows it takes, which
pieces, and how its end is noticed. No model, event loop or timer: tests/app/inference/
test_batching.py runs the driver that applies these to real batches."""

from __future__ import annotations

import pytest

from app.inference.policy import BUSY_WINDOW_S, PARALLEL_ROWS, POLL_S, BatchPolicy, Queued, Start, Watch


def fresh(rows: int, served: int = 0) -> Queued:
    return Queued(rows, served, expired=False)


def test_a_lone_request_starts_at_once_unless_the_model_is_busy() -> None:
    policy = BatchPolicy()
    assert policy.on_arrival(scheduled=False, running=0, idle_s=10.0) is Start.NOW
    # a batch ended a moment ago: let the requests the event loop has just read join the next
    assert policy.on_arrival(scheduled=False, running=0, idle_s=BUSY_WINDOW_S / 2) is Start.AFTER_READS
    assert policy.on_arrival(scheduled=True, running=0, idle_s=10.0) is Start.NONE
    # batches running: try to start one beside them (limit() says whether it is worth it)
    assert policy.on_arrival(scheduled=False, running=1, idle_s=0.0) is Start.NOW


def test_a_batch_is_capped_at_max_rows_and_shared_out_over_free_cores() -> None:
    policy = BatchPolicy(max_rows=1024, parallel=2)
    assert policy.limit(queued=5000, running=[], back_to_back=False, split_rows=0) == 1024
    # one large request on two idle cores: half each, so that both compute at once
    assert policy.limit(queued=1000, running=[], back_to_back=False, split_rows=0) == 500
    # too little for two cores: one batch takes it all
    assert policy.limit(queued=100, running=[], back_to_back=False, split_rows=0) == 1024
    assert policy.limit(queued=0, running=[], back_to_back=False, split_rows=0) is None


def test_small_work_waits_for_the_running_batch_large_work_takes_another_core() -> None:
    policy = BatchPolicy(parallel=2)
    assert policy.limit(queued=5, running=[3], back_to_back=True, split_rows=0) is None
    assert policy.limit(queued=PARALLEL_ROWS, running=[3], back_to_back=True, split_rows=0) == 1024
    # a large batch running: a small request gets the other core instead of waiting behind it
    assert policy.limit(queued=5, running=[500], back_to_back=True, split_rows=0) == 1024
    # every core busy
    assert policy.limit(queued=5000, running=[500, 500], back_to_back=True, split_rows=0) is None


def test_under_load_an_uneven_split_of_small_requests_evens_out() -> None:
    policy = BatchPolicy()
    # 28 queued behind a polled batch of 4: take the mean, 16, and leave 12 for the next
    assert policy.limit(queued=28, running=[], back_to_back=True, split_rows=4) == 16
    assert policy.limit(queued=20, running=[], back_to_back=True, split_rows=12) == 16
    # fewer queued than the last batch took: they all go
    assert policy.limit(queued=12, running=[], back_to_back=True, split_rows=16) == 1024
    # not under load, or after a large batch, or large work queued: whole batches
    assert policy.limit(queued=28, running=[], back_to_back=False, split_rows=4) == 1024
    assert policy.limit(queued=28, running=[], back_to_back=True, split_rows=0) == 1024
    assert policy.limit(queued=PARALLEL_ROWS, running=[], back_to_back=True, split_rows=4) == 1024


def test_the_least_served_requests_go_first_and_every_taken_piece_fits() -> None:
    policy = BatchPolicy()
    queue = [fresh(500, served=1000), fresh(500, served=1000), fresh(3), fresh(4, served=3), fresh(600)]
    choice = policy.choose(queue, limit=1000)
    # new work first (served 0, oldest first), then by rows served; 600 + 3 + 4 leaves no room
    # for a piece of 500
    assert choice.taken == [2, 4, 3] and choice.dropped == []
    assert sum(queue[i].rows for i in choice.taken) <= 1000


def test_a_piece_larger_than_the_limit_still_goes_alone() -> None:
    assert BatchPolicy().choose([fresh(2000), fresh(1)], limit=1000).taken == [0]


def test_expired_pieces_are_dropped_not_run() -> None:
    queue = [Queued(10, 0, expired=True), fresh(5), Queued(7, 0, expired=True)]
    choice = BatchPolicy().choose(queue, limit=1000)
    assert choice.taken == [1] and sorted(choice.dropped) == [0, 2]


def test_requests_are_cut_so_that_the_largest_fills_every_core() -> None:
    assert BatchPolicy(max_rows=1024, parallel=2).piece_rows == 512
    assert BatchPolicy(max_rows=1, parallel=4).piece_rows == 1


@pytest.mark.parametrize(
    ("rows", "back_to_back", "others", "watch"),
    [
        (3, False, False, Watch.CALLBACK),  # a quiet model: the batch wakes the event loop itself
        (3, True, False, Watch.POLL),  # under load: the busy event loop checks it
        (3, False, True, Watch.POLL),
        (PARALLEL_ROWS, True, True, Watch.CALLBACK),  # large: one hand-over costs little
    ],
)
def test_how_a_batchs_end_is_noticed(rows: int, back_to_back: bool, others: bool, watch: Watch) -> None:
    assert BatchPolicy().watch(rows, back_to_back, others) is watch


def test_small_polled_batches_are_checked_every_turn_larger_ones_by_the_timer() -> None:
    policy = BatchPolicy(spin_rows=64)
    assert policy.poll_delay([16, 64]) == 0.0
    assert policy.poll_delay([16, 65]) == POLL_S
    assert BatchPolicy(spin_rows=0).poll_delay([4]) == POLL_S  # spinning off (several workers)
