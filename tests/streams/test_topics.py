"""streams.topics (the raw topics as the broker describes them) and streams.app's check of
the raw partitions' committed offsets at each assignment, without a broker."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest

from streams.app import Runtime, check_raw_offsets, restart_recreated
from streams.health import HealthState
from streams.topics import ClientThreadNoise, TopicWatch, described_ids

OLD_ID = "81e8dd30-7f5f-4925-b905-d22bcb93787f"
NEW_ID = "be45b5b9-58f7-4afc-beba-4b8539a36be4"


def entry(name: str, topic_id: str | None = OLD_ID, error: int = 0) -> dict[str, Any]:
    return {"error_code": error, "name": name, "topic_id": topic_id,
            "partitions": [] if error else [{"partition_index": 0}]}


class FakeAdmin:
    """Answers ``describe_topics`` from ``answers`` in turn; an exception is raised."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.closed = 0

    def describe_topics(self, topics: list[str]) -> Any:
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def close(self) -> None:
        self.closed += 1


class TestDescribedIds:
    def test_described_ids__missing_unknown_and_known(self) -> None:
        described = [entry("a"), entry("b", error=3, topic_id=None),
                     entry("c", "00000000-0000-0000-0000-000000000000")]
        assert described_ids(described, ["a", "b", "c", "d"]) == {
            "a": OLD_ID, "b": None, "c": "", "d": None}

    def test_described_ids__kafka_python_2_answer_without_ids(self) -> None:
        described = [{"error_code": 0, "topic": "a", "partitions": [{"partition": 0}]}]
        assert described_ids(described, ["a"]) == {"a": ""}


class TestTopicWatch:
    def test_refresh__missing_and_incarnation(self) -> None:
        admin = FakeAdmin([entry("raw"), entry("gone", error=3, topic_id=None)])
        watch = TopicWatch(["raw", "gone"], lambda: admin)
        assert watch.missing() == {}  # nothing known before the first answer
        watch.refresh()
        assert watch.missing() == {"gone": True, "raw": False}
        assert watch.incarnation("raw") == OLD_ID[:8]
        assert watch.incarnation("gone") == ""

    def test_refresh__a_failure_keeps_the_last_answer_and_reconnects(self) -> None:
        admins = [FakeAdmin([entry("raw")], OSError("broker gone")),
                  FakeAdmin([entry("raw", NEW_ID)])]
        made: list[FakeAdmin] = []

        def connect() -> FakeAdmin:
            made.append(admins[len(made)])
            return made[-1]

        watch = TopicWatch(["raw"], connect)
        watch.refresh()
        assert watch.refresh() == {"raw": OLD_ID}
        assert made[0].closed == 1
        assert watch.refresh() == {"raw": NEW_ID}
        assert len(made) == 2

    def test_broker_silence__grows_without_answers_and_ends_at_one(self) -> None:
        now = [100.0]
        admins = iter([FakeAdmin(OSError("broker gone")), FakeAdmin([entry("raw")])])
        watch = TopicWatch(["raw"], lambda: next(admins), clock=lambda: now[0])
        assert watch.broker_silence() == 0.0  # counted from the watch's start
        now[0] += 7.5
        watch.refresh()  # fails: the broker is gone
        assert watch.broker_silence() == 7.5
        now[0] += 5.0
        watch.refresh()  # answers: a blip leaves nothing behind
        assert watch.broker_silence() == 0.0
        now[0] += 2.0
        assert watch.broker_silence() == 2.0

    def test_start_and_stop__the_thread_asks_and_ends(self) -> None:
        admin = FakeAdmin(*([[entry("raw")]] * 50))
        watch = TopicWatch(["raw"], lambda: admin, interval=0.01).start()
        watch.stop()
        assert watch.ids == {"raw": OLD_ID}
        assert admin.closed == 1


def test_client_thread_noise__lowers_kafka_lines_of_the_named_threads_only() -> None:
    noise = ClientThreadNoise()
    noise.threads.add("watch")

    def record(name: str, thread: str) -> logging.LogRecord:
        made = logging.LogRecord(name, logging.ERROR, __file__, 1, "Connection failed", (),
                                 None)
        made.threadName = thread
        return made

    lowered = record("kafka.net.manager", "watch")
    assert noise.filter(lowered) is logging.getLogger().isEnabledFor(logging.DEBUG)
    assert lowered.levelname == "DEBUG"
    other = record("kafka.net.manager", "MainThread")
    assert noise.filter(other) is True and other.levelname == "ERROR"
    ours = record("streams.app", "watch")
    assert noise.filter(ours) is True and ours.levelname == "ERROR"
    # kafka-python 3's network thread of a client whose id is the watch's
    io_thread = record("kafka.net.transport", "kafka-io-watch")
    assert noise.filter(io_thread) is logging.getLogger().isEnabledFor(logging.DEBUG)


# -- check_raw_offsets and restart_recreated against a consumer that records its calls --

class FakeConsumer:
    """The part of Faust's consumer the check uses."""

    def __init__(self, committed: dict[Any, int | None], starts: dict[Any, int],
                 ends: dict[Any, int]) -> None:
        self._committed_offset: dict[Any, int | None] = defaultdict(lambda: None, committed)
        self._acked = defaultdict(list, {tp: [5, 6] for tp in committed})
        self._acked_index = defaultdict(set)
        self._gap = defaultdict(list)
        self.starts, self.ends = starts, ends
        self.seeks: list[tuple[Any, int]] = []
        self.commits: list[dict[Any, int]] = []
        self.paused: set[Any] = set()
        self.settles = True  # whether settle_raw succeeds
        self._read_offset: dict[Any, int | None] = defaultdict(lambda: None)
        self.app = type("App", (), {"consumer_generation_id": 1, "rebalancing": False})()

    def assignment(self) -> set[Any]:
        return set(self._committed_offset)

    async def settle_raw(self, tps: list[Any], timeout: float) -> bool:
        self.paused |= set(tps)
        return self.settles

    def resume_partitions(self, tps: list[Any]) -> None:
        self.paused -= set(tps)

    async def earliest_offsets(self, *tps: Any) -> dict[Any, int]:
        return {tp: self.starts[tp] for tp in tps}

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: self.ends[tp] for tp in tps}

    async def seek(self, tp: Any, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def _commit(self, offsets: dict[Any, int]) -> bool:
        self.commits.append(dict(offsets))
        return True


class Pipe:
    def __init__(self) -> None:
        self.incarnations: dict[str, str] = {}
        self.forgotten: set[tuple[str, int]] = set()

    def forget_raw_partitions(self, keys: set[tuple[str, int]]) -> None:
        self.forgotten |= keys


def runtime_for(watch: Any = None) -> Runtime:
    settings = SimpleNamespace(topic_sources=lambda: {"raw": None},
                               repartition_topic="app-events-by-identity")
    return Runtime(settings, Pipe(), HealthState(300.0), metrics=None,
                   topics=watch)


class TPKey(tuple):
    """Hashable and compared like Faust's TP (a named tuple)."""

    def __new__(cls, topic: str, partition: int) -> TPKey:
        return super().__new__(cls, (topic, partition))

    @property
    def topic(self) -> str:
        return self[0]

    @property
    def partition(self) -> int:
        return self[1]


def tp(partition: int) -> TPKey:
    return TPKey("raw", partition)


def test_check__committed_past_the_end_is_read_from_the_start_once(caplog) -> None:
    consumer = FakeConsumer({tp(0): 120, tp(1): 7, TPKey("other", 0): 500},
                            starts={tp(0): 0, tp(1): 0}, ends={tp(0): 40, tp(1): 9})
    runtime = runtime_for()
    with caplog.at_level(logging.WARNING, logger="streams.app"):
        asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == [(tp(0), 0)]
    assert consumer.commits == [{tp(0): 0}]
    assert consumer._committed_offset[tp(0)] is None and tp(0) not in consumer._acked
    assert consumer._acked[tp(1)] == [5, 6]  # a sound partition is left alone
    assert runtime.pipeline.forgotten == {("raw", 0)}
    assert runtime.health.offset_resets == {("raw", "beyond_end"): 1}
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["raw topic raw: the group's committed offset is past the partition's "
                     "end, so it belongs to an older topic of this name (deleted and "
                     "created again); reading from the start (committed offset -> start: "
                     "[0] 120 -> 0)"]


def test_check__the_repartition_topic_s_offsets_are_checked_too() -> None:
    rep = TPKey("app-events-by-identity", 1)
    consumer = FakeConsumer({rep: 900}, starts={rep: 0}, ends={rep: 12})
    runtime = runtime_for()
    runtime.holds[("app-events-by-identity", 1)] = 880
    asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == [(rep, 0)]
    assert runtime.holds == {}
    assert runtime.health.offset_resets == {("app-events-by-identity", "beyond_end"): 1}


def test_check__committed_before_the_start_says_records_were_lost() -> None:
    consumer = FakeConsumer({tp(0): 3}, starts={tp(0): 50}, ends={tp(0): 80})
    runtime = runtime_for()
    asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == [(tp(0), 50)]
    assert runtime.health.offset_resets == {("raw", "before_start"): 1}


def test_check__nothing_committed_or_within_the_log__nothing_done() -> None:
    consumer = FakeConsumer({tp(0): None, tp(1): 40}, starts={tp(0): 0, tp(1): 0},
                            ends={tp(0): 10, tp(1): 40})
    runtime = runtime_for()
    asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == [] and consumer.commits == []
    assert runtime.health.offset_resets == {}


class Watch:
    def __init__(self, topic_id: str) -> None:
        self.ids = {"raw": topic_id}

    def refresh(self) -> dict[str, str]:
        return self.ids

    def incarnation(self, topic: str) -> str:
        return self.ids[topic][:8]


def test_check__a_new_topic_id_reads_the_topic_from_its_start_once(caplog) -> None:
    watch = Watch(OLD_ID)
    runtime = runtime_for(watch)
    consumer = FakeConsumer({tp(0): 30}, starts={tp(0): 0}, ends={tp(0): 60})
    asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == [] and runtime.pipeline.incarnations == {"raw": OLD_ID[:8]}

    watch.ids = {"raw": NEW_ID}  # deleted and created again; 30 is within its 60 records
    with caplog.at_level(logging.WARNING, logger="streams.app"):
        asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == [(tp(0), 0)]
    assert runtime.pipeline.incarnations == {"raw": NEW_ID[:8]}
    assert runtime.health.offset_resets == {("raw", "recreated"): 1}
    assert sum("was deleted and created again" in r.getMessage() for r in caplog.records) == 1

    consumer._committed_offset[tp(0)] = 12  # committed since, on the new topic: it stands
    asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == [(tp(0), 0)]


def test_restart_recreated__an_assigned_partition_is_read_again_at_once() -> None:
    watch = Watch(OLD_ID)
    runtime = runtime_for(watch)
    consumer = FakeConsumer({tp(0): 30}, starts={tp(0): 0}, ends={tp(0): 60})
    asyncio.run(restart_recreated(consumer, runtime))
    assert consumer.seeks == []  # the first id seen is no change
    watch.ids = {"raw": NEW_ID}
    asyncio.run(restart_recreated(consumer, runtime))
    assert consumer.seeks == [(tp(0), 0)] and consumer.commits == [{tp(0): 0}]
    assert consumer.paused == set()  # paused while the fetch settled, resumed after
    asyncio.run(restart_recreated(consumer, runtime))
    assert consumer.seeks == [(tp(0), 0)]


def test_restart_recreated__a_fetch_that_does_not_settle_is_tried_again_later() -> None:
    watch = Watch(OLD_ID)
    runtime = runtime_for(watch)
    consumer = FakeConsumer({tp(0): 30}, starts={tp(0): 0}, ends={tp(0): 60})
    asyncio.run(restart_recreated(consumer, runtime))
    watch.ids = {"raw": NEW_ID}
    consumer.settles = False
    asyncio.run(restart_recreated(consumer, runtime))
    assert (consumer.seeks, consumer.paused) == ([], set())
    # the fetch in flight dropped the paused partition's records past the last one read:
    # it reads on from there
    consumer._read_offset[tp(0)] = 41
    asyncio.run(restart_recreated(consumer, runtime))
    assert (consumer.seeks, consumer.paused) == ([(tp(0), 42)], set())
    # a rebalance meanwhile: its own seek decides
    consumer.app.rebalancing = True
    asyncio.run(restart_recreated(consumer, runtime))
    assert consumer.seeks == [(tp(0), 42)]
    consumer.app.rebalancing = False
    consumer.settles = True
    asyncio.run(restart_recreated(consumer, runtime))
    assert consumer.seeks == [(tp(0), 42), (tp(0), 0)]


@pytest.mark.parametrize("committed", [None, -1])
def test_check__no_committed_offset_is_never_stale(committed) -> None:
    consumer = FakeConsumer({tp(0): committed}, starts={tp(0): 5}, ends={tp(0): 9})
    runtime = runtime_for()
    asyncio.run(check_raw_offsets(consumer, runtime))
    assert consumer.seeks == []


def test_check__a_recreated_topic_read_for_its_offsets_is_not_read_again() -> None:
    """Read from its start once for the new topic id, whatever the reason found first: a
    later assignment trusts what the group committed since."""
    watch = Watch(OLD_ID)
    runtime = runtime_for(watch)
    asyncio.run(check_raw_offsets(FakeConsumer({}, {}, {}), runtime))
    watch.ids = {"raw": NEW_ID}
    asyncio.run(restart_recreated(FakeConsumer({}, {}, {}), runtime))  # not assigned here
    consumer = FakeConsumer({tp(0): 30}, starts={tp(0): 0}, ends={tp(0): 60})
    asyncio.run(check_raw_offsets(consumer, runtime))
    later = FakeConsumer({tp(0): 45}, starts={tp(0): 0}, ends={tp(0): 80})
    asyncio.run(check_raw_offsets(later, runtime))
    assert (consumer.seeks, later.seeks) == ([(tp(0), 0)], [])
    assert runtime.health.offset_resets == {("raw", "recreated"): 1}
