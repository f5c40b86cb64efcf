"""Delivery under injected network faults: Toxiproxy between the application and the real collector,
and between the collector and its back end.

The topology is the production one, with a proxy on each leg::

    install() --[app proxy]--> collector (repo config) --[back-end proxy]--> Loki's OTLP path

Loki itself is not run (AGPL, not built here): a real OTLP/HTTP receiver on
``/otlp/v1/logs`` stands in for it. Each scenario puts one Toxiproxy toxic on
one leg, logs numbered records for three jobs, lifts the fault if it is one
that stops delivery, and then checks what reached the back end:

- **0 lost**: every record arrived;
- **duplicates only where at-least-once applies**: a record is sent twice only
  when an attempt failed after the far side had taken it (its answer was
  lost). The count is reported and bounded: on the application's leg each
  record at most once more per failed export (``install()``'s exporters make
  one request per export); on the collector's leg at most once more per try
  of the collector while the fault lasted;
- **order per job kept**: as Loki shows it (by timestamp), each job's records
  are in the order they were logged. (Their order of arrival is not checked:
  the collector's four queue consumers may send its batches in any order.)

Toxiproxy comes from ``scripts/build-toxiproxy.sh`` (cached) or
``$OTEL_JOBTAGS_TOXIPROXY``; the collector from ``scripts/build-collector.sh``.
Without them the tests skip on a developer's machine and fail in CI.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.collector import COLLECTOR_CONFIG, Collector, find_collector_binary, poll_until
from support.otlp import HttpReceiver, ReceivedLog
from support.prerequisites import PrerequisiteError, unavailable
from support.toxiproxy import Proxy, Toxiproxy, find_toxiproxy_binary

import otel_jobtags
from otel_jobtags import TagRegistry, job_context

pytestmark = [pytest.mark.collector, pytest.mark.timeout(600)]

LOKI_OTLP_PATH = "/otlp/v1/logs"
JOBS = ("AUTO_REBAL", "PRICE_CACHE", "DAILY_SUMMARY")
PER_JOB = 30
"""Records per job and scenario: enough for several batches of the collector, few enough to be quick."""
COLLECTOR_MIN_BACKOFF_S = 0.5
"""The collector's shortest wait between two tries of a batch (``retry_on_failure``:
``initial_interval`` 1 s less its 50 % randomization)."""
DELIVERY_TIMEOUT_S = 90.0
"""Generous: a slow, shared machine and the collector's retry backoff (up to 10 s)."""

log = logging.getLogger("app.jobs")


@pytest.fixture(scope="module")
def collector_binary() -> Path:
    """The collector binary; skips without it, fails without it in CI."""
    try:
        return find_collector_binary()
    except PrerequisiteError as exc:
        unavailable(f"no collector binary: {exc}")


@pytest.fixture(scope="module")
def toxiproxy_binary() -> Path:
    """The Toxiproxy server; skips without it, fails without it in CI."""
    try:
        return find_toxiproxy_binary()
    except PrerequisiteError as exc:
        unavailable(f"no toxiproxy binary: {exc}")


@dataclass
class Stack:
    """The running pieces of one scenario."""

    toxiproxy: Toxiproxy
    app_proxy: Proxy
    """install() -> collector (OTLP/gRPC)."""
    app_http_proxy: Proxy
    """install() -> collector (OTLP/HTTP)."""
    backend_proxy: Proxy
    """collector -> Loki stand-in."""
    collector: Collector
    loki: HttpReceiver
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])


def start_stack(
    tmp_path: Path, collector_binary: Path, toxiproxy_binary: Path, config: Path = COLLECTOR_CONFIG
) -> Iterator[Stack]:
    """Start receiver, proxies and collector; stop them all at the end."""
    loki = HttpReceiver(path=LOKI_OTLP_PATH)
    loki.start()
    toxiproxy = Toxiproxy(toxiproxy_binary, tmp_path / "toxiproxy")
    try:
        toxiproxy.start()
        backend = toxiproxy.proxy("backend", upstream=f"127.0.0.1:{loki.port}")
        collector = Collector(
            collector_binary, tmp_path / "collector", loki_endpoint=f"{backend.url}/otlp", config=config
        )
        app = toxiproxy.proxy("app", upstream=collector.otlp_grpc_endpoint)
        app_http = toxiproxy.proxy("app_http", upstream=f"127.0.0.1:{collector.ports.otlp_http}")
        collector.start()
        stack = Stack(toxiproxy, app, app_http, backend, collector, loki)
        try:
            yield stack
        finally:
            stack.collector.stop()
    finally:
        toxiproxy.stop()
        loki.stop()


@pytest.fixture
def stack(tmp_path: Path, collector_binary: Path, toxiproxy_binary: Path) -> Iterator[Stack]:
    """The stack with the repository's collector config."""
    yield from start_stack(tmp_path, collector_binary, toxiproxy_binary)


def install(
    stack: Stack, registry: TagRegistry, protocol: str = "grpc", export_timeout: float | None = None
) -> otel_jobtags.configure.Installation:
    """install() sending through the application's proxy."""
    endpoint = stack.app_proxy.url if protocol == "grpc" else stack.app_http_proxy.url
    return otel_jobtags.install(
        registry,
        endpoint=endpoint,
        protocol=protocol,
        service_name="faults",
        resource_attributes={"test.run": stack.run},
        level=logging.INFO,
        shutdown_timeout=10,
        export_timeout=export_timeout,
    )


def log_records(registry: TagRegistry, run: str, per_job: int = PER_JOB, padding: int = 0) -> None:
    """``per_job`` numbered records for each job, interleaved as concurrent jobs would log.

    ``padding`` adds that many bytes to each message (a payload, a long URL).
    """
    pad = " " + "x" * padding if padding else ""
    for seq in range(per_job):
        for tag in JOBS:
            with job_context(registry.resolve(tag)):
                log.info("step %d of run %s%s", seq, run, pad, extra={"test.seq": seq})


@dataclass(frozen=True)
class Outcome:
    """What reached the back end, per job."""

    unique: dict[str, list[int]]
    """Per job, each sequence number once, in the order first received (the collector may reorder)."""
    by_time: dict[str, list[int]]
    """Per job, each sequence number once, in timestamp order (Loki's order)."""
    duplicates: int
    """Records received more than once (extra copies)."""
    max_copies: int
    """The most copies of any one record."""


def outcome(records: list[ReceivedLog], run: str) -> Outcome:
    """Sort out the records of ``run`` by job."""
    mine = [r for r in records if r.resource.get("test.run") == run]
    copies = Counter((r.attributes["job.tag"], r.attributes["test.seq"]) for r in mine)
    unique: dict[str, list[int]] = {tag: [] for tag in JOBS}
    seen: set[tuple[str, int]] = set()
    first: dict[tuple[str, int], int] = {}
    for r in mine:
        key = (r.attributes["job.tag"], r.attributes["test.seq"])
        if key not in seen:
            seen.add(key)
            unique[key[0]].append(key[1])
            first[key] = r.time_unix_nano
    by_time = {tag: sorted(seqs, key=lambda s, t=tag: first[(t, s)]) for tag, seqs in unique.items()}
    return Outcome(
        unique=unique,
        by_time=by_time,
        duplicates=sum(copies.values()) - len(copies),
        max_copies=max(copies.values(), default=0),
    )


def wait_for_all(stack: Stack, per_job: int = PER_JOB) -> Outcome:
    """Wait until every record of the run reached the back end (or time is up); what arrived.

    Counts distinct records: duplicates must not stand in for a record still missing.
    """
    expected = per_job * len(JOBS)

    def arrived() -> Outcome | None:
        result = outcome(stack.loki.records, stack.run)
        return result if sum(map(len, result.unique.values())) >= expected else None

    with contextlib.suppress(TimeoutError):  # what is missing is then reported as lost
        poll_until(arrived, timeout=DELIVERY_TIMEOUT_S, what="every record at the back end")
    # Leave the collector a moment to deliver any duplicate still in flight.
    with contextlib.suppress(TimeoutError):
        poll_until(
            lambda: stack.collector.metric("otelcol_exporter_queue_size") == 0,
            timeout=DELIVERY_TIMEOUT_S,
            what="the collector's queue to drain",
        )
    return outcome(stack.loki.records, stack.run)


def assert_all_in_order(result: Outcome, *, per_job: int = PER_JOB) -> None:
    """0 lost; order per job kept (by timestamp, as Loki shows it)."""
    everything = {tag: list(range(per_job)) for tag in JOBS}
    assert {tag: sorted(seqs) for tag, seqs in result.unique.items()} == everything, "records were lost"
    assert result.by_time == everything


def wait_for_failures(
    installation: otel_jobtags.configure.Installation, count: int, timeout: float = 60.0
) -> None:
    """Wait until the application's exports failed ``count`` times: the fault has acted."""
    poll_until(
        lambda: installation.stats.failed_exports >= count,
        timeout=timeout,
        what=f"{count} failed exports (stats: {installation.stats})",
    )


# -- the application's leg: install() -> collector ----------------------------------


@dataclass(frozen=True)
class AppFault:
    """A toxic on the application's leg."""

    kind: str
    attributes: dict[str, Any]
    stream: str
    lifted: bool
    """Lifted once exports have failed (it stops delivery), else left on to the end."""
    protocol: str = "grpc"
    padding: int = 0
    """Bytes added to each record."""
    export_timeout: float | None = None
    """install()'s export timeout, if not the default."""

    def __str__(self) -> str:
        return f"{self.kind}-{self.stream}-{self.protocol}" + (f"-{self.padding}B" if self.padding else "")


APP_FAULTS = [
    # Every answer 500 ms late: slower, nothing else.
    AppFault("latency", {"latency": 500}, "downstream", lifted=False),
    # A 10 KB/s link: a batch must fit the export timeout to get through.
    AppFault("bandwidth", {"rate": 10}, "upstream", lifted=False),
    # 90 records of ~400 bytes (one batch of ~40 KB) on a 10 KB/s link with a
    # 1 s export timeout: the batch cannot cross in time, its halves and
    # quarters can. Timeouts split it; nothing is rejected.
    AppFault("bandwidth", {"rate": 10}, "upstream", lifted=False, padding=400, export_timeout=1.0),
    # Requests cut into small TCP segments: framing must survive.
    AppFault("slicer", {"average_size": 64, "size_variation": 32, "delay": 100}, "upstream", lifted=False),
    # The connection is reset when a request arrives: nothing reaches the collector.
    AppFault("reset_peer", {"timeout": 0}, "upstream", lifted=True),
    # The collector's answer is reset: it may have taken the batch (at-least-once).
    AppFault("reset_peer", {"timeout": 0}, "downstream", lifted=True),
    AppFault("reset_peer", {"timeout": 0}, "downstream", lifted=True, protocol="http/protobuf"),
    # A black hole: nothing comes back, the connection stays open.
    AppFault("timeout", {"timeout": 0}, "upstream", lifted=True),
    # The connection is closed after 1,000 bytes of requests.
    AppFault("limit_data", {"bytes": 1000}, "upstream", lifted=True),
    AppFault("limit_data", {"bytes": 1000}, "upstream", lifted=True, protocol="http/protobuf"),
]


@pytest.mark.parametrize("fault", APP_FAULTS, ids=str)
def test_application_leg_fault_loses_nothing_and_keeps_order(
    stack: Stack, registry: TagRegistry, fault: AppFault
) -> None:
    proxy = stack.app_proxy if fault.protocol == "grpc" else stack.app_http_proxy
    installation = install(stack, registry, fault.protocol, fault.export_timeout)
    toxic = proxy.add_toxic(fault.kind, stream=fault.stream, **fault.attributes)
    log_records(registry, stack.run, padding=fault.padding)
    if fault.lifted:
        # The fault has acted (a first batch taken before it was complete
        # may have got through: the worker wakes on a timer too).
        wait_for_failures(installation, 2)
        proxy.remove_toxic(toxic)
    assert installation.force_flush(int(DELIVERY_TIMEOUT_S * 1000)), installation.stats
    result = wait_for_all(stack)

    stats = installation.stats
    print(f"{fault}: {stats.failed_exports} failed exports, {result.duplicates} duplicates")  # with -s
    assert (stats.dropped, stats.rejected) == (0, 0)
    assert_all_in_order(result)
    # A record is sent again only after an export that failed: one request
    # per export, so at most one more copy per failure.
    assert result.max_copies <= 1 + stats.failed_exports, (result, stats)
    if stats.failed_exports == 0 or (fault.lifted and fault.stream == "upstream"):
        # Nothing failed, or what failed never reached the collector whole:
        # no duplicates.
        assert result.duplicates == 0, (result, stats)


# -- the collector's leg: collector -> Loki ------------------------------------------


@dataclass(frozen=True)
class BackendFault:
    """A toxic on the collector's leg."""

    kind: str
    attributes: dict[str, Any]
    stream: str
    lifted: bool

    def __str__(self) -> str:
        return f"{self.kind}-{self.stream}"


BACKEND_FAULTS = [
    BackendFault("latency", {"latency": 500}, "downstream", lifted=False),
    BackendFault("bandwidth", {"rate": 10}, "upstream", lifted=False),
    BackendFault(
        "slicer", {"average_size": 64, "size_variation": 32, "delay": 100}, "upstream", lifted=False
    ),
    BackendFault("reset_peer", {"timeout": 0}, "upstream", lifted=True),
    BackendFault("reset_peer", {"timeout": 0}, "downstream", lifted=True),
    BackendFault("timeout", {"timeout": 0}, "upstream", lifted=True),
    BackendFault("limit_data", {"bytes": 1000}, "upstream", lifted=True),
]

FAULT_HELD_S = 3.0
"""How long a lifted fault on the collector's leg is held once the collector has every record."""


@pytest.mark.parametrize("fault", BACKEND_FAULTS, ids=str)
def test_backend_leg_fault_loses_nothing_and_keeps_order(
    stack: Stack, registry: TagRegistry, fault: BackendFault
) -> None:
    installation = install(stack, registry)
    started = time.monotonic()
    toxic = stack.backend_proxy.add_toxic(fault.kind, stream=fault.stream, **fault.attributes)
    log_records(registry, stack.run)
    # The collector has taken every record (it answers once they are in its queue).
    assert installation.force_flush(int(DELIVERY_TIMEOUT_S * 1000)), installation.stats
    expected = PER_JOB * len(JOBS)
    if fault.lifted:
        time.sleep(FAULT_HELD_S)  # the collector keeps trying meanwhile
        held = outcome(stack.loki.records, stack.run)
        # Either nothing got through, or the answers were lost and batches sent again.
        assert sum(map(len, held.unique.values())) < expected or held.duplicates > 0, "the fault did not act"
        stack.backend_proxy.remove_toxic(toxic)
    fault_s = time.monotonic() - started
    result = wait_for_all(stack)

    print(f"backend {fault}: {fault_s:.1f} s of fault, {result.duplicates} duplicates")  # with -s
    assert installation.stats.failed_exports == 0
    assert_all_in_order(result)
    if fault.stream == "upstream" or not fault.lifted:
        assert result.duplicates == 0, result
    else:
        # The collector sends a batch again when it did not get the answer
        # (at-least-once): one more copy per try while the fault lasted.
        assert result.max_copies <= 2 + fault_s / COLLECTOR_MIN_BACKOFF_S, (result, fault_s)


# -- a collector under memory pressure ------------------------------------------------


@pytest.fixture
def refusing_stack(tmp_path: Path, collector_binary: Path, toxiproxy_binary: Path) -> Iterator[Stack]:
    """The stack with a collector whose memory limiter refuses all data (a 2 MiB limit)."""
    config = yaml.safe_load(COLLECTOR_CONFIG.read_text(encoding="utf-8"))
    config["processors"]["memory_limiter"] = {"check_interval": "100ms", "limit_mib": 2, "spike_limit_mib": 1}
    path = tmp_path / "refusing-collector.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    yield from start_stack(tmp_path, collector_binary, toxiproxy_binary, config=path)


REFUSALS = 12
"""Failed exports the refusal lasts at least: past what the processor needed to take a
refusal for a poison record (5 failures, splitting down to one record, 5 accepted probes)."""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_memory_limiter_refusing_data_loses_nothing(
    refusing_stack: Stack, registry: TagRegistry, collector_binary: Path, protocol: str
) -> None:
    stack = refusing_stack
    installation = install(stack, registry, protocol)
    log_records(registry, stack.run, per_job=2)
    # The memory limiter refuses every request with data (gRPC UNAVAILABLE,
    # HTTP 503: retryable), while an empty request is still accepted.
    poll_until(
        lambda: installation.stats.failed_exports >= REFUSALS or installation.stats.rejected,
        timeout=120,
        what=f"{REFUSALS} refused exports",
    )
    assert installation.stats.rejected == 0, installation.stats
    # Memory is back: the same collector, with the repository's limits.
    ports = stack.collector.ports
    stack.collector.stop()
    stack.collector = Collector(
        collector_binary,
        stack.collector.workdir,
        loki_endpoint=f"{stack.backend_proxy.url}/otlp",
        ports=ports,
    )
    stack.collector.start()
    assert installation.force_flush(int(DELIVERY_TIMEOUT_S * 1000)), installation.stats
    result = wait_for_all(stack, per_job=2)

    stats = installation.stats
    print(
        f"memory_limiter {protocol}: {stats.failed_exports} refused exports, {result.duplicates} duplicates"
    )
    assert (stats.delivered, stats.dropped, stats.rejected) == (6, 0, 0)
    assert_all_in_order(result, per_job=2)
    # A refused request was not taken: nothing is sent twice.
    assert result.duplicates == 0, result
