"""The delivery rules (otel_jobtags.delivery.machine): targeted cases, then a
Hypothesis stateful test against a simple model of what must hold.

The model: every accepted record is, in the end, delivered exactly once, or
counted as evicted (past the bound) or rejected (refused for good); each job's
records are delivered in the order they were accepted; nothing is rejected
while the receiver's failures are retryable (even though, like the collector
under backpressure, it accepts empty exports meanwhile); exports that time out
(a black hole, a link too slow for a big batch) never lead to a rejection, and
once the link lets a record's bytes through within the timeout, every record
is delivered.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from otel_jobtags.delivery.machine import Batch, DeliveryMachine, Evict, Finish, Probe, Send, Split, Wait
from otel_jobtags.delivery.outcome import ExportResult, Outcome

SUCCESS = ExportResult(Outcome.SUCCESS)
RETRYABLE = ExportResult(Outcome.RETRYABLE)
PERMANENT = ExportResult(Outcome.PERMANENT)
UNKNOWN = ExportResult(Outcome.UNKNOWN)
TIMED_OUT = ExportResult(Outcome.RETRYABLE, detail="gRPC DEADLINE_EXCEEDED", timed_out=True)


def _machine(**overrides: Any) -> DeliveryMachine:
    options: dict[str, Any] = {
        "max_batch_size": 4,
        "max_batch_bytes": 1000,
        "max_records": 1000,
        "max_bytes": 10**9,
        "schedule_delay": 1.0,
        "retry_initial": 1.0,
        "retry_max": 8.0,
        "probe_after": 3,
        "jitter": lambda: 1.0,
    }
    options.update(overrides)
    return DeliveryMachine(**options)


def _only(actions: list[Any], kind: type) -> Any:
    (action,) = actions
    assert isinstance(action, kind), actions
    return action


def test_a_full_batch_is_sent_at_once_and_a_partial_one_after_the_delay() -> None:
    m = _machine()
    m.add([(i, 10) for i in range(6)], now=0.0)
    batch = _only(m.poll(0.0), Send).batch
    assert batch.records == [0, 1, 2, 3]
    assert m.result(SUCCESS, 0.1) == [Finish(batch, True)]
    assert _only(m.poll(0.5), Wait).until == 1.0
    assert _only(m.poll(1.0), Send).batch.records == [4, 5]


def test_batches_are_bounded_by_bytes_and_a_bigger_record_goes_alone() -> None:
    m = _machine(max_batch_size=100, max_batch_bytes=100)
    m.add([("a", 40), ("b", 40), ("c", 40), ("huge", 500), ("d", 10)], now=0.0)
    sent = []
    now = 0.0
    while not m.idle:
        action = m.poll(now)[0]
        if isinstance(action, Send):
            sent.append(action.batch.records)
            m.result(SUCCESS, now)
        now += 1.0
    assert sent == [["a", "b"], ["c"], ["huge"], ["d"]]


def test_retryable_failures_back_off_exponentially_and_flushing_does_not_shorten_the_wait() -> None:
    m = _machine()
    m.add([(i, 10) for i in range(4)], now=0.0)
    attempts = []
    now = 0.0
    while now < 20.0:
        m.add([(f"late {now}", 10)], now)  # a record and a flush at every step, as a flush loop does
        m.flush()
        actions = m.poll(now)
        if isinstance(actions[0], Send):
            attempts.append(now)
            m.result(RETRYABLE, now)
        now += 0.25
    assert attempts == [0.0, 1.0, 3.0, 7.0, 15.0]  # 1, 2, 4, 8 s apart
    # The records logged meanwhile wait in full batches, not one per flush.
    assert [b.count for b in m.pending] == [4] * 21  # 4 + 80 records
    assert m.rejected == 0


def test_retry_after_from_the_receiver_is_honoured() -> None:
    m = _machine()
    m.add([(0, 10)] * 4, now=0.0)
    _only(m.poll(0.0), Send)
    m.result(ExportResult(Outcome.RETRYABLE, retry_after=30.0), 0.0)
    assert _only(m.poll(1.0), Wait).until == 30.0


def test_under_backpressure_nothing_is_rejected_although_empty_exports_would_succeed() -> None:
    m = _machine(max_batch_size=1)
    m.add([("only", 10)], now=0.0)
    now = 0.0
    for _ in range(50):
        action = m.poll(now)[0]
        assert not isinstance(action, Probe)
        if isinstance(action, Send):
            m.result(RETRYABLE, now)
        now += 10.0
    assert (m.rejected, m.held_records) == (0, 1)


def test_a_permanent_refusal_splits_down_to_the_refused_record_which_is_rejected_after_a_probe() -> None:
    m = _machine(max_batch_size=8)
    m.add([(i, 10) for i in range(8)], now=0.0)
    delivered: list[int] = []
    finished: list[Finish] = []
    now = 0.0
    while not m.idle:
        action = m.poll(now)[0]
        if isinstance(action, Send):
            refused = 5 in action.batch.records
            actions = m.result(PERMANENT if refused else SUCCESS, now)
            if not refused:
                delivered += action.batch.records
            finished += [a for a in actions if isinstance(a, Finish)]
        elif isinstance(action, Probe):
            finished += [a for a in m.result(SUCCESS, now) if isinstance(a, Finish)]
        now += 0.1
    assert delivered == [0, 1, 2, 3, 4, 6, 7]
    assert [(f.batch.records, f.delivered, f.reason) for f in finished if not f.delivered] == [
        ([5], False, "refused")
    ]
    assert (m.delivered, m.rejected, m.failed_exports) == (7, 1, 4)  # 8 -> 4 -> 2 -> 1 refused


def test_a_permanent_refusal_of_everything_rejects_nothing() -> None:
    # A wrong token: data and empty exports are refused alike. Keep, and wait.
    m = _machine(max_batch_size=2)
    m.add([(0, 10), (1, 10)], now=0.0)
    now = 0.0
    for _ in range(40):
        action = m.poll(now)[0]
        if isinstance(action, (Send, Probe)):
            m.result(PERMANENT, now)
        now += 10.0
    assert (m.rejected, m.held_records) == (0, 2)


def test_past_the_bound_the_oldest_waiting_batches_are_evicted_never_the_one_in_flight() -> None:
    m = _machine(max_records=8)
    m.add([(i, 10) for i in range(8)], now=0.0)
    head = _only(m.poll(0.0), Send).batch
    evicted = m.add([(i, 10) for i in range(8, 12)], now=0.0)
    assert [a.batch.records for a in evicted if isinstance(a, Evict)] == [[4, 5, 6, 7]]
    assert m.pending[0] is head and m.evicted == 4
    m.result(SUCCESS, 0.0)
    assert m.delivered == 4


def test_a_split_reports_the_parts_in_the_batch_place() -> None:
    m = _machine(probe_after=1)
    m.add([(i, 10) for i in range(4)], now=0.0)
    _only(m.poll(0.0), Send)
    split = _only(m.result(UNKNOWN, 0.0), Split)
    assert [p.records for p in split.parts] == [[0, 1], [2, 3]]
    assert list(m.pending) == list(split.parts)


def test_a_batch_that_keeps_timing_out_is_split_and_its_parts_keep_their_order() -> None:
    # A link too slow for 8 records within the export timeout, fast enough for 2.
    m = _machine(max_batch_size=8, probe_after=3)
    m.add([(i, 10) for i in range(8)], now=0.0)
    delivered: list[int] = []
    attempts: list[int] = []
    now = 0.0
    while not m.idle:
        action = m.poll(now)[0]
        assert not isinstance(action, Probe)
        if isinstance(action, Send):
            attempts.append(action.batch.count)
            if action.batch.count > 2:
                m.result(TIMED_OUT, now)
            else:
                m.result(SUCCESS, now)
                delivered += action.batch.records
        now += 1.0
    assert delivered == list(range(8))
    assert attempts == [8, 8, 8, 4, 2, 2, 4, 2, 2]  # 3 timeouts in a row, then each part at its first
    assert (m.delivered, m.rejected) == (8, 0)


def test_a_single_record_that_keeps_timing_out_is_retried_never_probed_or_rejected() -> None:
    m = _machine(max_batch_size=1, probe_after=1)
    m.add([("only", 10)], now=0.0)
    now = 0.0
    for _ in range(50):
        action = m.poll(now)[0]
        assert not isinstance(action, (Probe, Split))
        if isinstance(action, Send):
            assert m.result(TIMED_OUT, now) == []
        now += 10.0
    assert (m.rejected, m.held_records, m.failed_exports) == (0, 1, 50)


def test_backpressure_the_receiver_signals_never_splits_a_batch() -> None:
    m = _machine(probe_after=1)
    m.add([(i, 10) for i in range(4)], now=0.0)
    now = 0.0
    for _ in range(20):
        action = m.poll(now)[0]
        if isinstance(action, Send):
            assert m.result(RETRYABLE, now) == []
        now += 10.0
    assert [b.records for b in m.pending] == [[0, 1, 2, 3]]


# -- the model -------------------------------------------------------------------------------

Record = tuple[str, int, bool]  # job, sequence number, refused for good by the receiver


class DeliveryModel(RuleBasedStateMachine):
    """Drives a DeliveryMachine with arbitrary events and a receiver in arbitrary moods."""

    def __init__(self) -> None:
        super().__init__()
        self.machine = _machine(
            max_batch_size=5, max_batch_bytes=1500, max_records=40, max_bytes=4000, probe_after=2
        )
        self.now = 0.0
        self.mood = "up"  # "up", "backpressure" (retryable; empty exports succeed), "unknown", "black hole"
        self.link: int | None = None
        """Bytes the link carries within the export timeout (None: no limit); a record always fits."""
        self.seq: dict[str, int] = {}
        self.accepted: list[Record] = []
        self.delivered: list[Record] = []
        self.rejected: list[Record] = []
        self.evicted: list[Record] = []
        self.ever_over_bound = False
        self.rejected_while_retryable = False

    def _apply(self, actions: list[Any]) -> None:
        for action in actions:
            if isinstance(action, Evict):
                self.evicted += action.batch.records
            elif isinstance(action, Finish) and not action.delivered:
                self.rejected += action.batch.records
                if action.batch.last is Outcome.RETRYABLE:
                    self.rejected_while_retryable = True

    def _answer(self, batch: Batch | None) -> ExportResult:
        if self.mood == "black hole":
            return TIMED_OUT
        if batch is not None and self.link is not None and batch.nbytes > self.link:
            return TIMED_OUT
        if self.mood == "backpressure":
            return RETRYABLE if batch is not None else SUCCESS
        if self.mood == "unknown":
            return UNKNOWN
        if batch is not None and any(refused for _, _, refused in batch.records):
            return PERMANENT
        return SUCCESS

    @rule(
        job=st.sampled_from(["A", "B", "C"]),
        sizes=st.lists(st.integers(1, 400), min_size=1, max_size=8),
        poison=st.booleans(),
    )
    def log(self, job: str, sizes: list[int], poison: bool) -> None:
        items = []
        for n, size in enumerate(sizes):
            seq = self.seq.get(job, 0)
            self.seq[job] = seq + 1
            record = (job, seq, poison and n == 0)
            self.accepted.append(record)
            items.append((record, size))
        before = self.machine.held_records + len(items), self.machine.held_bytes + sum(sizes)
        if before[0] > self.machine.max_records or before[1] > self.machine.max_bytes:
            self.ever_over_bound = True
        self._apply(self.machine.add(items, self.now))

    @rule(mood=st.sampled_from(["up", "backpressure", "unknown", "black hole"]))
    def receiver_mood(self, mood: str) -> None:
        self.mood = mood

    @rule(link=st.none() | st.integers(400, 1200))
    def link_speed(self, link: int | None) -> None:
        self.link = link

    @rule()
    def flush(self) -> None:
        self.machine.flush()

    @rule(seconds=st.floats(0.0, 20.0))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(actions=st.integers(1, 12))
    def work(self, actions: int) -> None:
        """The worker: act, and sleep until the machine's next deadline, ``actions`` times."""
        for _ in range(actions):
            if not self.step():
                return

    def step(self) -> bool:
        action = self.machine.poll(self.now)[0]
        if isinstance(action, Send):
            result = self._answer(action.batch)
            actions = self.machine.result(result, self.now)
            if result.outcome is Outcome.SUCCESS:
                self.delivered += action.batch.records
            self._apply(actions)
        elif isinstance(action, Probe):
            self._apply(self.machine.result(self._answer(None), self.now))
        elif action.until is not None:
            self.now = max(self.now, action.until)
        else:
            return False
        return True

    @invariant()
    def counters_add_up(self) -> None:
        m = self.machine
        assert m.delivered == len(self.delivered)
        assert m.rejected == len(self.rejected)
        assert m.evicted == len(self.evicted)
        assert len(self.accepted) == m.delivered + m.rejected + m.evicted + m.held_records

    @invariant()
    def each_record_delivered_once_and_in_order_per_job(self) -> None:
        assert len(set(self.delivered)) == len(self.delivered)
        for job in ("A", "B", "C"):
            seqs = [seq for j, seq, _ in self.delivered if j == job]
            assert seqs == sorted(seqs)

    @invariant()
    def only_refused_records_are_rejected_and_never_for_retryable_failures(self) -> None:
        assert all(refused for _, _, refused in self.rejected)
        assert not self.rejected_while_retryable

    @invariant()
    def nothing_is_evicted_unless_the_bound_was_passed(self) -> None:
        assert not self.evicted or self.ever_over_bound

    def teardown(self) -> None:
        # The receiver comes back for good: everything still held is delivered
        # (or, if the receiver refuses it, rejected), even through a link that
        # stays too slow for big batches.
        self.mood = "up"
        self.machine.flush()
        for _ in range(10_000):
            if self.machine.idle:
                break
            if not self.step():
                self.now += 60.0
        assert self.machine.idle
        outcome = sorted(self.delivered + self.rejected + self.evicted)
        assert outcome == sorted(self.accepted)


TestDeliveryModel = DeliveryModel.TestCase
TestDeliveryModel.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("outcome", [Outcome.RETRYABLE, Outcome.UNKNOWN, Outcome.PERMANENT])
def test_a_result_without_an_action_in_flight_is_an_error(outcome: Outcome) -> None:
    with pytest.raises(RuntimeError, match=r"^result\(\) without a Send or Probe in flight$"):
        _machine().result(ExportResult(outcome), 0.0)
