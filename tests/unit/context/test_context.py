"""job_context: attribution scope, nesting, isolation, threads, no leaks."""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_jobtags import JobTagsError, TagRegistry, UnknownJobError, bind, current_job, job_context
from otel_jobtags.context import use_registry
from otel_jobtags.testing import capture_logs

log = logging.getLogger("app.jobs")
library = logging.getLogger("some.library")


def tags_of(records: list) -> list[tuple[str | None, str]]:  # type: ignore[type-arg]
    return [(r.job_tag, r.message) for r in records]


def test_records_from_any_logger_inside_the_block_are_attributed(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs:
        with job_context(registry.AUTO_REBAL):
            log.info("job started")
            library.debug("GET /api -> 200")
        log.info("outside")
    assert tags_of(logs) == [
        ("AUTO_REBAL", "[AUTO_REBAL] job started"),
        ("AUTO_REBAL", "[AUTO_REBAL] GET /api -> 200"),
        (None, "outside"),
    ]
    assert logs[1].job_id == "auto_rebalance"


@pytest.mark.parametrize("job", ["auto_rebalance", "AUTO_REBAL", "[AUTO_REBAL]"])
def test_job_context_accepts_a_job_id_or_a_tag_name(registry: TagRegistry, job: str) -> None:
    use_registry(registry)
    with job_context(job) as active:
        assert active.tag is registry.AUTO_REBAL
    use_registry(None)
    with job_context(job, registry=registry) as active:
        assert current_job() == active


def test_unknown_job_fails_when_the_context_is_made(registry: TagRegistry) -> None:
    with pytest.raises(UnknownJobError, match=r"^Unknown job 'nope': known jobs are auto_rebalance, "):
        job_context("nope", registry=registry)


def test_a_string_without_any_registry_says_how_to_provide_one() -> None:
    use_registry(None)
    with (
        pytest.raises(JobTagsError, match=r"^Cannot resolve job 'auto_rebalance': no tag registry is active"),
        job_context("auto_rebalance"),
    ):
        pass


def test_contexts_nest_and_the_innermost_wins(registry: TagRegistry) -> None:
    with capture_logs(registry) as logs, job_context(registry.AUTO_REBAL):
        with job_context(registry.PRICE_CACHE):
            log.info("inner")
        log.info("outer again")
    assert tags_of(logs) == [
        ("PRICE_CACHE", "[PRICE_CACHE] inner"),
        ("AUTO_REBAL", "[AUTO_REBAL] outer again"),
    ]


def test_nothing_leaks_after_an_exception(registry: TagRegistry) -> None:
    with pytest.raises(RuntimeError), job_context(registry.AUTO_REBAL):
        raise RuntimeError("job failed")
    assert current_job() is None


def test_decorator_wraps_sync_functions_and_keeps_their_metadata(registry: TagRegistry) -> None:
    @job_context(registry.AUTO_REBAL, run_id="run-1")
    def rebalance(x: int) -> int:
        """Doc."""
        active = current_job()
        assert active is not None and active.tag is registry.AUTO_REBAL and active.run_id == "run-1"
        return x * 2

    assert rebalance(21) == 42
    assert rebalance.__name__ == "rebalance" and rebalance.__doc__ == "Doc."
    assert current_job() is None


def test_decorator_wraps_async_functions(registry: TagRegistry) -> None:
    @job_context(registry.PRICE_CACHE)
    async def refresh() -> str | None:
        await asyncio.sleep(0)
        active = current_job()
        return active.tag.name if active else None

    assert asyncio.run(refresh()) == "PRICE_CACHE"
    assert current_job() is None


def test_concurrent_asyncio_tasks_keep_their_own_job(registry: TagRegistry) -> None:
    async def run(tag_name: str, started: asyncio.Event, other: asyncio.Event) -> str:
        async with job_context(registry.by_name(tag_name)):
            started.set()
            await other.wait()  # both tasks are inside their block at once
            active = current_job()
            return active.tag.name if active else "-"

    async def main() -> list[str]:
        a, b = asyncio.Event(), asyncio.Event()
        return list(await asyncio.gather(run("AUTO_REBAL", a, b), run("PRICE_CACHE", b, a)))

    assert asyncio.run(main()) == ["AUTO_REBAL", "PRICE_CACHE"]


def test_threads_do_not_inherit_the_job_without_bind(registry: TagRegistry) -> None:
    seen: list[object] = []
    with job_context(registry.AUTO_REBAL):
        t = threading.Thread(target=lambda: seen.append(current_job()))
        t.start()
        t.join()
    assert seen == [None]


def test_bind_carries_the_job_into_an_executor_even_when_called_concurrently(registry: TagRegistry) -> None:
    barrier = threading.Barrier(4)

    def work(i: int) -> str:
        barrier.wait(5)  # four calls of the same bound function run at once
        log.info("item %d", i)
        active = current_job()
        return active.tag.name if active else "-"

    with capture_logs(registry) as logs, ThreadPoolExecutor(4) as pool:
        with job_context(registry.AUTO_REBAL):
            bound = bind(work)
        results = list(pool.map(bound, range(4)))
        # the pool threads are clean afterwards
        assert pool.submit(current_job).result() is None
    assert results == ["AUTO_REBAL"] * 4
    assert sorted(tags_of(logs)) == [("AUTO_REBAL", f"[AUTO_REBAL] item {i}") for i in range(4)]


def test_asyncio_to_thread_carries_the_job(registry: TagRegistry) -> None:
    async def main() -> str | None:
        async with job_context(registry.DAILY_SUMMARY):
            active = await asyncio.to_thread(current_job)
            return active.tag.name if active else None

    assert asyncio.run(main()) == "DAILY_SUMMARY"


def test_reentering_the_active_job_keeps_its_run_id(registry: TagRegistry) -> None:
    with job_context(registry.AUTO_REBAL, run_id="run-7"):
        with job_context("auto_rebalance", registry=registry) as same:
            assert same.run_id == "run-7"
        with job_context(registry.PRICE_CACHE) as other:
            assert other.run_id is None
        with job_context(registry.AUTO_REBAL, run_id="run-8") as explicit:
            assert explicit.run_id == "run-8"


def test_one_context_object_can_be_entered_from_several_threads_at_once(registry: TagRegistry) -> None:
    shared = job_context(registry.AUTO_REBAL)
    entered, release = threading.Barrier(2), threading.Event()
    errors: list[BaseException] = []
    after: list[object] = []

    inside: list[tuple[bool, str | None]] = []

    def worker(first: bool) -> None:
        try:
            with shared:
                entered.wait(5)
                if first:
                    release.wait(5)  # the other thread leaves first
                else:
                    release.set()
                active = current_job()
                inside.append((first, active.tag.name if active else None))
            after.append(current_job())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(first,)) for first in (True, False)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert sorted(inside) == [(False, "AUTO_REBAL"), (True, "AUTO_REBAL")]
    assert after == [None, None]


def test_one_context_object_can_be_entered_from_concurrent_tasks(registry: TagRegistry) -> None:
    shared = job_context(registry.PRICE_CACHE)

    async def run(first: bool, inside: asyncio.Event, leave: asyncio.Event) -> tuple[object, object]:
        async with shared:
            inside.set()
            if first:
                await leave.wait()
            active = current_job()
            within = active.tag.name if active else None
        return within, current_job()

    async def main() -> list[tuple[object, object]]:
        a_inside, b_inside = asyncio.Event(), asyncio.Event()
        first = asyncio.create_task(run(True, a_inside, b_inside))
        await a_inside.wait()
        second = await run(False, b_inside, a_inside)  # enters and leaves while the first is inside
        return [await first, second]

    # Each task sees the job while inside, and nothing once it has left.
    assert asyncio.run(main()) == [("PRICE_CACHE", None), ("PRICE_CACHE", None)]
