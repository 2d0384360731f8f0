"""The raw intake and the consumer that fills it, without a broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.app import holding_consumer
from streams.intake import RawIntake


class TP(NamedTuple):
    topic: str
    partition: int


@dataclass(eq=False)
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes = b"{}"
    generation_id: int = 0

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


def message(offset: int, topic: str = "raw", partition: int = 0, size: int = 2) -> Message:
    return Message(topic, partition, offset, b"x" * size)


class FakeConsumer:
    """What the worker's consumer class uses of Faust's: a fetch that yields messages,
    read offsets, gaps, the unacknowledged set, flow and generation."""

    def __init__(self, fetched: list[Message]) -> None:
        self.fetched = fetched
        self._read_offset: dict[TP, int | None] = defaultdict(lambda: None)
        self._unacked_messages: set[Message] = set()
        self.gaps: list[tuple[TP, int, int]] = []
        self.flow_active = True
        self.app = type("App", (), {"consumer_generation_id": 1})()
        self.rebalance_in_fetch = False

    async def getmany(self, timeout: float) -> Any:
        if self.rebalance_in_fetch:
            # Faust's fetch waits for the flow to resume: an assignment meanwhile raises
            # the generation before any message is yielded
            self.rebalance_in_fetch = False
            self.app.consumer_generation_id += 1
        for item in self.fetched:
            item.generation_id = self.app.consumer_generation_id  # as Faust's _to_message
            yield item.tp, item

    def track_message(self, item: Message) -> None:
        self._unacked_messages.add(item)

    async def _add_gap(self, tp: TP, start: int, end: int) -> None:
        self.gaps.append((tp, start, end))


def consumer_for(fetched: list[Message], intake: RawIntake) -> Any:
    return holding_consumer(FakeConsumer, {}, intake=intake)(fetched)


async def drain(consumer: Any) -> list[int]:
    return [item.offset async for _, item in consumer.getmany(1.0)]


def test_raw_messages_go_to_the_intake_and_the_others_to_faust() -> None:
    intake = RawIntake({"raw"}, max_messages=10)
    fetched = [message(0), message(5, topic="other"), message(1)]
    consumer = consumer_for(fetched, intake)
    assert asyncio.run(drain(consumer)) == [5]
    assert [m.offset for m in asyncio.run(intake.take(10))] == [0, 1]
    # tracked as unacknowledged until the ingest step acknowledges them
    assert consumer._unacked_messages == {fetched[0], fetched[2]}
    assert consumer._read_offset[TP("raw", 0)] == 1


def test_messages_before_the_read_offset_are_skipped_and_gaps_recorded() -> None:
    intake = RawIntake({"raw"}, max_messages=10)
    consumer = consumer_for([message(3), message(4), message(9)], intake)
    consumer._read_offset[TP("raw", 0)] = 4
    asyncio.run(drain(consumer))
    assert [m.offset for m in asyncio.run(intake.take(10))] == [4, 9]
    assert consumer.gaps == [(TP("raw", 0), 5, 9)]


def test_a_window_takes_what_waits_up_to_its_limit_oldest_first() -> None:
    intake = RawIntake({"raw"}, max_messages=10)
    for offset in range(5):
        intake.put(message(offset))
    assert [m.offset for m in asyncio.run(intake.take(3))] == [0, 1, 2]
    assert [m.offset for m in asyncio.run(intake.take(3))] == [3, 4]
    assert len(intake) == 0


def test_a_window_is_at_most_the_intakes_own_bound_unless_told() -> None:
    intake = RawIntake({"raw"}, max_messages=3)
    for offset in range(5):
        intake.put(message(offset, size=4))
    assert [m.offset for m in asyncio.run(intake.take())] == [0, 1, 2]
    assert (len(intake), intake._bytes) == (2, 8)
    assert [m.offset for m in asyncio.run(intake.take())] == [3, 4]
    assert intake._bytes == 0


def test_a_full_intake_holds_the_fetch_until_a_window_is_taken() -> None:
    async def run() -> tuple[list[int], list[int], list[int]]:
        intake = RawIntake({"raw"}, max_messages=2)
        consumer = consumer_for([message(offset) for offset in range(4)], intake)
        fetch = asyncio.ensure_future(drain(consumer))
        await asyncio.sleep(0.01)
        waiting = [m.offset for m in intake._messages]  # the fetch waits for room
        first = [m.offset for m in await intake.take(5)]
        await fetch
        return waiting, first, [m.offset for m in await intake.take(5)]

    assert asyncio.run(run()) == ([0, 1], [0, 1], [2, 3])


def test_the_byte_bound_holds_the_fetch_too() -> None:
    intake = RawIntake({"raw"}, max_messages=100, max_bytes=10)
    intake.put(message(0, size=6))
    assert not intake.full()
    intake.put(message(1, size=6))
    assert intake.full()
    asyncio.run(intake.take(1))
    assert not intake.full()


def test_a_fetch_that_waited_across_a_rebalance_drops_the_rest() -> None:
    async def run() -> list[int]:
        intake = RawIntake({"raw"}, max_messages=1)
        consumer = consumer_for([message(0), message(1)], intake)
        fetch = asyncio.ensure_future(drain(consumer))
        await asyncio.sleep(0.01)
        consumer.flow_active = False  # Faust stopped the flow: a revocation
        intake.clear()
        await fetch
        return [m.offset for m in intake._messages]

    assert asyncio.run(run()) == []


def test_a_rebalance_inside_the_fetch_does_not_drop_the_batch() -> None:
    async def run() -> tuple[list[int], list[Any]]:
        intake = RawIntake({"raw"}, max_messages=1)
        consumer = consumer_for([message(10), message(11), message(12)], intake)
        consumer.rebalance_in_fetch = True
        taken: list[int] = []

        async def take_all() -> None:
            while True:
                taken.extend(m.offset for m in await intake.take(5))

        taker = asyncio.ensure_future(take_all())
        await drain(consumer)
        consumer.fetched = [message(13)]
        await drain(consumer)
        taker.cancel()
        return taken + [m.offset for m in intake._messages], consumer.gaps

    # every offset reaches the intake once, and none is recorded as missing in the log
    assert asyncio.run(run()) == ([10, 11, 12, 13], [])


def test_a_message_fetched_before_the_last_assignment_is_not_taken_in() -> None:
    async def run() -> list[int]:
        intake = RawIntake({"raw"}, max_messages=1)
        consumer = consumer_for([message(0), message(1)], intake)
        fetch = asyncio.ensure_future(drain(consumer))
        await asyncio.sleep(0.01)
        consumer.app.consumer_generation_id += 1  # assigned again while the fetch waits
        await intake.take(5)
        await fetch
        return [m.offset for m in intake._messages] + sorted(
            m.offset for m in consumer._unacked_messages)

    # 0 was taken in before; 1 is of the old generation: neither put nor tracked
    assert asyncio.run(run()) == [0]


def test_clear_and_forget_drop_messages_from_the_unacknowledged_set() -> None:
    intake = RawIntake({"raw"}, max_messages=10)
    fetched = [message(0), message(0, partition=1), message(1)]
    consumer = consumer_for(fetched, intake)
    intake.consumer = consumer
    asyncio.run(drain(consumer))
    intake.forget({("raw", 0)})
    assert [m.partition for m in intake._messages] == [1]
    assert consumer._unacked_messages == {fetched[1]}
    intake.clear()
    assert len(intake) == 0 and consumer._unacked_messages == set()
    assert not intake.full()
