"""How an alert send that is not acknowledged ends the worker, without Kafka.

``send_all`` must leave the producer's futures alone when it gives up on them (a cancelled
one makes Faust log a ``Topic._on_published`` traceback) and must hand the reason to
``Runtime.fatal``, which ends the process; here ``fatal`` raises instead so the test can
look at what happened.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from streams.app import Runtime, deliver, send_all
from streams.pipeline import Output, Record


class Stopped(Exception):
    """Raised by the test runtime's ``fatal`` in place of ending the process."""


class TestRuntime(Runtime):
    __test__ = False  # a helper, not a test class

    def fatal(self, reason: str) -> None:  # type: ignore[override]
        raise Stopped(reason)


class FakeTopic:
    """``send`` hands back the future the test chose, as Faust returns the producer's."""

    def __init__(self, results: list[asyncio.Future]) -> None:
        self.results = results
        self.sent: list[bytes] = []

    async def send(self, *, key: bytes | None, value: bytes, partition: int | None) -> Any:
        self.sent.append(value)
        return self.results[len(self.sent) - 1]



def runtime_with(topic: FakeTopic) -> TestRuntime:
    settings = SimpleNamespace(io_timeout=0.05)
    # these records are small: the pipeline's size check (``fit``) keeps them as they are
    pipeline = SimpleNamespace(fit=list)
    return TestRuntime(settings, pipeline=pipeline, health=None, metrics=None,  # type: ignore
                       roles={"alerts": topic, "inventory": topic})


def alerts(n: int) -> list[Record]:
    return [Record("alerts", b"k", f"alert {i}".encode()) for i in range(n)]


def test_an_unacknowledged_alert_stops_the_worker_without_cancelling_the_sends() -> None:
    async def scenario() -> tuple[str, list[asyncio.Future]]:
        loop = asyncio.get_running_loop()
        acked = loop.create_future()
        acked.set_result("metadata")
        futures = [acked, loop.create_future()]
        with pytest.raises(Stopped) as stopped:
            await send_all(runtime_with(FakeTopic(futures)), alerts(2), acked=True)
        return str(stopped.value), futures

    reason, futures = asyncio.run(scenario())
    assert reason == "1 of 2 alerts were not acknowledged within 0.05s"
    # the late send is still pending, so Faust's callback on it never sees a cancellation
    assert not futures[1].cancelled() and not futures[1].done()


def test_a_failed_alert_delivery_stops_the_worker_before_any_state_is_written() -> None:
    writes: list[tuple[str, bytes]] = []

    async def scenario() -> str:
        failed = asyncio.get_running_loop().create_future()
        failed.set_exception(ConnectionError("leader went away"))
        out = Output(records=alerts(1), writes=[("id-1", b"state")], events=1)
        with pytest.raises(Stopped) as stopped:
            await deliver(runtime_with(FakeTopic([failed])), out,
                          lambda identity, value: writes.append((identity, value)))
        return str(stopped.value)

    reason = asyncio.run(scenario())
    assert reason == "an alert was not delivered: ConnectionError('leader went away')"
    assert writes == []


def test_acknowledged_alerts_let_the_state_writes_and_other_records_through() -> None:
    writes: list[tuple[str, bytes]] = []
    topic_holder: list[FakeTopic] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in range(3)]
        for future in futures:
            future.set_result("metadata")
        topic = FakeTopic(futures)
        topic_holder.append(topic)
        out = Output(records=[*alerts(2), Record("inventory", b"k", b"inv")],
                     writes=[("id-1", b"state")], events=2)
        await deliver(runtime_with(topic), out,
                      lambda identity, value: writes.append((identity, value)))

    asyncio.run(scenario())
    assert topic_holder[0].sent == [b"alert 0", b"alert 1", b"inv"]
    assert writes == [("id-1", b"state")]
