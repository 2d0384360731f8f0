"""The worker's consumer lets the broker hold an empty fetch briefly, and its fetch never
takes the records of inactive partitions (no broker needed)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from types import SimpleNamespace

import faust
from aiokafka.consumer.fetcher import Fetcher, FetchResult
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition

from streams.app import (
    FETCH_MAX_WAIT_MS,
    ActiveSelection,
    create_app,
    holding_consumer,
    short_fetch_wait,
)
from streams.settings import load_settings


def created_consumer(wrap: bool) -> object:
    """The aiokafka consumer that Faust's driver creates for a worker (not started)."""

    async def create() -> object:
        app = faust.App("fetch-wait", broker="kafka://127.0.0.1:9", web_enabled=False,
                        store="memory://")
        if wrap:
            app.transport.Consumer = short_fetch_wait(app.transport.Consumer)
        thread = app.consumer._thread
        return thread._create_worker_consumer(app.transport)

    return asyncio.run(create())


def test_the_worker_consumer_fetches_with_the_short_wait() -> None:
    # Faust's driver passes 1500 ms; the wrapped class hands aiokafka the worker's wait,
    # which its fetcher takes from the consumer when it starts
    assert created_consumer(wrap=False)._fetch_max_wait_ms == 1500
    assert created_consumer(wrap=True)._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100


def test_the_worker_app_uses_the_short_wait(tmp_path: Path) -> None:
    settings = load_settings(argparse.Namespace(state_dir=str(tmp_path), worker_id="w0",
                                                store="memory"), {}, {})
    runtime = SimpleNamespace(pipeline=None, metrics=None, roles={}, holds={},
                              leave_group=None, settings=settings)

    async def create() -> object:
        app = create_app(settings, runtime)
        return app.consumer._thread._create_worker_consumer(app.transport)

    assert asyncio.run(create())._fetch_max_wait_ms == FETCH_MAX_WAIT_MS


# -- what a waiting fetch takes when the consumer's active partitions empty ---------------

RAW = TopicPartition("t.raw", 0)
CHANGELOG = TopicPartition("t-changelog", 0)


class Buffered:
    """Records a background fetch left for a partition (aiokafka's partition records):
    offsets ``start`` to ``end - 1``, ``next_fetch_offset`` past the last one taken."""

    def __init__(self, start: int, end: int) -> None:
        self.next_fetch_offset, self.end = start, end

    def __iter__(self) -> Buffered:
        return self

    def __next__(self) -> int:
        if self.next_fetch_offset >= self.end:
            raise StopIteration
        self.next_fetch_offset += 1
        return self.next_fetch_offset - 1


def drained_by_a_fetch(active: object) -> tuple[dict, int]:
    """What aiokafka's own ``Fetcher.fetched_records`` returns when called with ``active``
    while the raw partition (at offset 88, records 88-171 buffered) is not active, and
    the raw partition's position after it."""

    async def fetch() -> tuple[dict, int]:
        subscriptions = SubscriptionState()
        subscriptions.assign_from_user({RAW, CHANGELOG})
        subscriptions.seek(RAW, 88)
        fetcher = Fetcher.__new__(Fetcher)
        fetcher._subscriptions = subscriptions
        fetcher._records = {RAW: FetchResult(RAW, assignment=subscriptions.subscription
                                             .assignment, partition_records=Buffered(88, 172),
                                             backoff=0)}
        fetcher._wait_consume_future = None
        drained = await fetcher.fetched_records(active, timeout=0)
        return drained, subscriptions.subscription.assignment.state_value(RAW).position

    return asyncio.run(fetch())


def test_aiokafka_takes_an_empty_set_of_partitions_for_every_partition() -> None:
    # the loss ActiveSelection prevents: Faust's live set of active partitions empties
    # while a fetch waits (stream partitions paused until their seek, changelog paused
    # once recovered), and the records of a paused partition are taken past its seek
    drained, position = drained_by_a_fetch(set())
    assert list(drained) == [RAW] and len(drained[RAW]) == 84
    assert position == 172


def test_an_empty_active_selection_takes_nothing_and_leaves_the_position() -> None:
    live: set = set()
    drained, position = drained_by_a_fetch(ActiveSelection(live))
    assert drained == {} and position == 88
    # membership is read from the live set at the time of the test
    live.add(RAW)
    drained, position = drained_by_a_fetch(ActiveSelection(live))
    assert drained[RAW] == list(range(88, 172)) and position == 172


def test_the_worker_consumer_hands_aiokafka_an_active_selection() -> None:
    seen = []

    class Driver:
        async def _getmany(self, active_partitions: object, timeout: float) -> dict:
            seen.append(active_partitions)
            return {}

    intake = SimpleNamespace(topics=frozenset({"t.raw"}))
    consumer = holding_consumer(Driver, {}, intake=intake)()
    live = {CHANGELOG}
    asyncio.run(consumer._getmany(live, 1.0))
    asyncio.run(consumer._getmany(None, 1.0))  # a client-only app: every partition
    assert isinstance(seen[0], ActiveSelection) and seen[0].tps is live
    assert seen[1] is None
