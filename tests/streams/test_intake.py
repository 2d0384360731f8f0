"""The raw intake and the consumer that fills it, without a broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, NamedTuple

import pytest

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
    acked: bool = False

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
        self.app = type("App", (), {"consumer_generation_id": 1, "rebalancing": False})()
        self.rebalance_in_fetch = False
        self.assigned: set[TP] = set()
        self._active_partitions: set[TP] = set()
        self._paused_partitions: set[TP] = set()
        self.acked: list[int] = []
        self.committed: dict[TP, int | None] = {}  # what perform_seek finds
        self._committed_offset: dict[TP, int | None] = {}
        self.starts: dict[TP, int] = {}
        self.seeks: list[tuple[TP, int]] = []

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

    def ack(self, item: Message) -> None:
        item.acked = True
        self._unacked_messages.discard(item)
        self.acked.append(item.offset)

    # Faust's bookkeeping of paused and active partitions, as in its Consumer
    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        self.assigned = set(assigned)
        self._paused_partitions &= assigned
        self._active_partitions = set(assigned) - self._paused_partitions

    def assignment(self) -> set[TP]:
        return self.assigned

    def pause_partitions(self, tps: Any) -> None:
        self._active_partitions -= set(tps)
        self._paused_partitions |= set(tps)

    def resume_partitions(self, tps: Any) -> None:
        self._active_partitions |= set(tps)
        self._paused_partitions -= set(tps)

    def resume_flow(self) -> None:
        self.flow_active = True

    async def perform_seek(self) -> None:
        await asyncio.sleep(0)  # the committed offsets, from the broker
        for tp, offset in self.committed.items():
            if offset:  # as aiokafka: only the partitions committed past 0
                self.seeks.append((tp, offset))
        self._committed_offset = {tp: offset or None for tp, offset in self.committed.items()}

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return {tp: self.starts.get(tp, 0) for tp in tps}

    async def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))
        self._read_offset[tp] = offset or None


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


async def fetch_held_by_a_full_intake() -> tuple[RawIntake, Any, asyncio.Future]:
    """An intake of one message and a fetch of two: 0 is taken in, and the fetch waits
    for room for 1."""
    intake = RawIntake({"raw"}, max_messages=1)
    consumer = consumer_for([message(0), message(1)], intake)
    fetch = asyncio.ensure_future(drain(consumer))
    await asyncio.sleep(0.01)
    return intake, consumer, fetch


def test_a_fetch_that_waited_across_a_rebalance_drops_the_rest() -> None:
    async def run() -> list[int]:
        intake, consumer, fetch = await fetch_held_by_a_full_intake()
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
        intake, consumer, fetch = await fetch_held_by_a_full_intake()
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


class FlowControl:
    """mode's FlowControlEvent as Faust uses it: a resume clears the managed queues too."""

    def __init__(self) -> None:
        self.active = False
        self.queues: list[Any] = []

    def manage_queue(self, queue: Any) -> None:
        self.queues.append(queue)

    def is_active(self) -> bool:
        return self.active

    def suspend(self) -> None:
        self.active = False

    def resume(self) -> None:
        self.active = True
        self.clear()

    def clear(self) -> None:
        for queue in self.queues:
            queue.clear()


def test_the_resume_after_an_assignment_keeps_what_waits_and_a_revocation_drops_it() -> None:
    """Faust resumes the flow (clearing its queues) after the assignment's seek: what was
    fetched from the seeked position by then is read nowhere else, so it stays; a
    revocation (flow suspended, then cleared) drops it."""
    intake = RawIntake({"raw"}, max_messages=10)
    flow = FlowControl()
    intake.flow_control = flow
    flow.manage_queue(intake)
    consumer = consumer_for([message(0), message(1)], intake)
    flow.resume()  # recovery: "Resuming flow..."
    asyncio.run(drain(consumer))
    flow.resume()  # after the seek to the committed offsets
    assert [m.offset for m in intake._messages] == [0, 1]
    assert len(consumer._unacked_messages) == 2
    flow.suspend()  # a revocation
    flow.clear()
    assert len(intake) == 0 and consumer._unacked_messages == set()


def test_raw_partitions_stay_paused_from_an_assignment_until_its_seek() -> None:
    """Faust resumes every assigned partition just before the seek to the committed
    offsets: a raw record fetched then would be read again after the seek."""
    intake = RawIntake({"raw"}, max_messages=10)
    consumer = consumer_for([], intake)
    raw, other = TP("raw", 0), TP("other", 0)

    async def assign(generation: int) -> set[TP]:
        consumer.app.consumer_generation_id = generation
        consumer.flow_active = False  # stopped at the revocation
        await consumer.on_partitions_assigned({raw, other}, generation)
        active = set(consumer._active_partitions)
        consumer.pause_partitions({raw, other})  # Faust's app, then its table recovery:
        consumer.flow_active = True
        consumer.resume_partitions({raw, other})
        return active | consumer._active_partitions

    before_seek = asyncio.run(assign(2))
    asyncio.run(consumer.perform_seek())
    assert before_seek == {other} and consumer._active_partitions == {raw, other}
    # the next assignment pauses them again; a seek without the flow (the fetch's own
    # during a rebalance) does not resume them, the assignment's does
    assert asyncio.run(assign(3)) == {other}
    consumer.flow_active = False
    asyncio.run(consumer.perform_seek())
    assert consumer._active_partitions == {other}
    consumer.flow_active = True
    asyncio.run(consumer.perform_seek())
    assert consumer._active_partitions == {raw, other}


def test_the_assignments_seek_forgets_what_was_taken_in_before() -> None:
    intake = RawIntake({"raw"}, max_messages=10)
    consumer = consumer_for([message(0), message(1)], intake)
    intake.consumer = consumer
    asyncio.run(consumer.on_partitions_assigned({TP("raw", 0)}, 1))
    asyncio.run(drain(consumer))
    window = asyncio.run(intake.take(1))
    asyncio.run(consumer.perform_seek())
    assert len(intake) == 0 and intake.stale(window) == {("raw", 0)}


def test_a_window_taken_before_its_partition_was_sought_elsewhere_is_not_acknowledged(
) -> None:
    """read_from_start seeks a partition and resets Faust's acknowledged offsets: an old
    message acknowledged after that would make the next commit pass the new records."""
    intake = RawIntake({"raw"}, max_messages=10)
    fetched = [message(90), message(91), message(5, partition=1)]
    consumer = consumer_for(fetched, intake)
    intake.consumer = consumer
    asyncio.run(drain(consumer))
    window = asyncio.run(intake.take())
    intake.forget({("raw", 0)})  # read_from_start while the window is processed
    assert intake.acknowledge(window) == {("raw", 0)}
    assert consumer.acked == [5]  # partition 1 was not sought: acknowledged
    assert consumer._unacked_messages == set()  # a stop or a rebalance does not wait
    assert all(m.acked for m in fetched)
    # a window taken after the seek is acknowledged as usual
    consumer._read_offset[TP("raw", 0)] = None  # as the seek to offset 0 sets it
    consumer.fetched = [message(0)]
    asyncio.run(drain(consumer))
    assert intake.acknowledge(asyncio.run(intake.take())) == set()
    assert consumer.acked == [5, 0]


def test_settle_waits_for_the_next_fetch_with_the_partitions_paused() -> None:
    async def run() -> tuple[bool, bool, set[TP]]:
        intake = RawIntake({"raw"}, max_messages=10)
        consumer = consumer_for([], intake)
        await consumer.on_partitions_assigned({TP("raw", 0)}, 1)
        consumer.resume_partitions({TP("raw", 0)})
        settle = asyncio.ensure_future(consumer.settle_raw([TP("raw", 0)], 5.0))
        await asyncio.sleep(0.05)
        waited = not settle.done()  # a fetch begun before may still put records
        await drain(consumer)
        return waited, await settle, consumer._active_partitions

    assert asyncio.run(run()) == (True, True, set())


def test_settle_gives_up_at_a_rebalance_or_its_timeout() -> None:
    intake = RawIntake({"raw"}, max_messages=10)
    consumer = consumer_for([], intake)
    assert asyncio.run(consumer.settle_raw([TP("raw", 0)], 0.05)) is False
    consumer.app.rebalancing = True
    assert asyncio.run(consumer.settle_raw([TP("raw", 0)], 5.0)) is False


def test_the_assignments_seek_moves_every_raw_partition_to_where_it_is_read_from() -> None:
    """A raw partition without a committed offset is sought to its log start: aiokafka
    leaves it where the fetch left it, past records Faust consumed and dropped when the
    fetch ended in a rebalance (the recreated topic's records were never read)."""
    intake = RawIntake({"raw"}, max_messages=10)
    consumer = consumer_for([], intake)
    fresh, zero, done, other = TP("raw", 0), TP("raw", 1), TP("raw", 2), TP("other", 0)
    asyncio.run(consumer.on_partitions_assigned({fresh, zero, done, other}, 1))
    consumer.committed = {fresh: None, zero: 0, done: 40, other: None}
    consumer.starts = {fresh: 0, zero: 3}
    consumer._read_offset[fresh] = 49  # the dropped fetch's
    asyncio.run(consumer.perform_seek())
    assert sorted(consumer.seeks) == [(fresh, 0), (zero, 3), (done, 40)]
    assert consumer._read_offset[fresh] is None


def test_the_repartition_topic_is_paused_and_sought_as_the_raw_topics_are() -> None:
    """The detect agent's topic loses records the same way through Faust's own streams:
    a rebalance before the first commit dropped what a fetch took since the assignment,
    and with no committed offset nothing read it again (identity states were missing a
    third of their events). It is paused until the seek and sought to its start too;
    another topic is neither."""
    intake = RawIntake({"raw"}, max_messages=10)
    consumer = holding_consumer(FakeConsumer, {}, intake=intake,
                                streamed=("by-identity",))([])
    raw, part, other = TP("raw", 0), TP("by-identity", 1), TP("other", 0)
    asyncio.run(consumer.on_partitions_assigned({raw, part, other}, 1))
    consumer.resume_partitions({raw, part, other})  # Faust's, before its seek
    assert consumer._active_partitions == {other}
    consumer.committed = {raw: 7, part: None, other: None}
    consumer.starts = {part: 5}
    consumer._read_offset[part] = 30  # the dropped fetch's
    asyncio.run(consumer.perform_seek())
    assert sorted(consumer.seeks) == [(part, 5), (raw, 7)]
    assert consumer._read_offset[part] == 5
    # the repartition partition waits for the flow's resume, where Faust clears its
    # stream queues; a resume of Faust's before that does not take it either
    consumer.resume_partitions({part})
    assert consumer._active_partitions == {raw, other}
    consumer.resume_flow()
    assert consumer._active_partitions == {raw, part, other}


class FailingStarts(FakeConsumer):
    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        raise ConnectionError("broker gone")


def test_a_start_that_cannot_be_found_ends_the_worker_instead_of_skipping_records(
) -> None:
    """Left where the dropped fetch put it the partition would skip records, and left
    paused it would never be read: the worker ends, and a new process reads it from the
    committed offsets."""
    intake = RawIntake({"raw"}, max_messages=10)
    reasons: list[str] = []
    consumer = holding_consumer(FailingStarts, {}, intake=intake,
                                fail=reasons.append)([])
    fresh = TP("raw", 0)
    asyncio.run(consumer.on_partitions_assigned({fresh}, 1))
    consumer.committed = {fresh: None}
    asyncio.run(consumer.perform_seek())
    assert len(reasons) == 1 and "raw[0]" in reasons[0] and "broker gone" in reasons[0]
    bare = holding_consumer(FailingStarts, {}, intake=intake)([])
    asyncio.run(bare.on_partitions_assigned({fresh}, 1))
    bare.committed = {fresh: None}
    with pytest.raises(RuntimeError, match="cannot seek raw\\[0\\]"):
        asyncio.run(bare.perform_seek())
