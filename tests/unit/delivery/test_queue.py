"""The hot path's queue: bounded by records and bytes, oldest dropped and counted."""

from __future__ import annotations

from otel_jobtags.delivery.queue import RecordQueue


def test_past_the_byte_bound_the_oldest_records_are_dropped_and_counted() -> None:
    queue = RecordQueue(max_records=100, max_bytes=1000, batch_size=10)
    for i in range(10):
        queue.put(f"record {i}", 300)
    assert [item for item, _ in queue.take()] == ["record 7", "record 8", "record 9"]
    assert queue.counts() == (10, 7, 0)


def test_records_being_sent_count_against_the_bound_but_are_never_dropped_here() -> None:
    queue = RecordQueue(max_records=5, max_bytes=10**9, batch_size=100)
    queue.reserve((3, 30), (3, 30))  # a batch of 3 in flight
    for i in range(4):
        queue.put(i, 10)
    assert [item for item, _ in queue.take()] == [2, 3]
    assert queue.counts() == (4, 2, 0)


def test_a_batch_worth_of_records_wakes_the_consumer() -> None:
    queue = RecordQueue(max_records=100, max_bytes=10**9, batch_size=3)
    queue.put(0, 1)
    queue.put(1, 1)
    assert not queue.wake.is_set()
    queue.put(2, 1)
    assert queue.wake.is_set()


def test_after_close_records_go_to_the_successor_or_are_counted_dropped() -> None:
    old, new = RecordQueue(100, 10**9, 10), RecordQueue(100, 10**9, 10)
    old.put("before", 1)
    old.close()
    old.put("dropped", 1)
    old.close(successor=new)
    old.put("handed over", 1)
    assert [item for item, _ in old.take()] == ["before"]
    assert old.counts() == (2, 1, 0)
    assert [item for item, _ in new.take()] == ["handed over"]
    assert new.counts() == (1, 0, 0)
