"""The fence against a dropped worker's late state writes (``streams.fencing``), without
Kafka: the newest state wins a recovery, a late acknowledgement does not move the
store's position, and the owner writes the named identities again."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from kafka.structs import TopicPartition

from detector.errors import InputError
from streams import codecs
from streams.fencing import ChangelogAudit, LateWrites, behind, foreign_keys, newest_states
from streams.membership import Membership
from tests.streams import scenario
from tests.streams.test_pipeline import Harness, payloads


def state(blob: bytes, **marks: int) -> bytes:
    return codecs.pack_state({f"raw[{k[1:]}]": v for k, v in marks.items()}, blob)


class ChangelogEvent:
    """A changelog record as Faust's recovery hands it to the table."""

    def __init__(self, key: bytes, value: bytes | None, offset: int, partition: int = 0):
        self.key, self.value = key, value
        self.message = SimpleNamespace(key=key, value=value, offset=offset,
                                       partition=partition, topic="app-state-changelog",
                                       tp=TopicPartition("app-state-changelog", partition))


def membership(member_for: float) -> Membership:
    """Its last answered heartbeat was sent ``member_for`` seconds ago (10 s session)."""
    held = Membership(10.0, 3.0, clock=lambda: 100.0)
    held.confirm(100.0 - member_for)
    return held


@pytest.mark.parametrize(("marks", "than", "older"), [
    ({"a": 3}, {"a": 5}, True),
    ({"a": 3, "b": 9}, {"a": 5, "b": 9}, True),
    ({"a": 3}, {"a": 3, "b": 1}, True),  # the newer one also applied another partition
    ({}, {"a": 0}, True),  # a warm-start seed before any event
    ({"a": 3}, {"a": 3}, False),  # the same positions: the later record wins, as before
    ({"a": 6}, {"a": 5}, False),
    ({"a": 3, "b": 2}, {"a": 5}, False),  # not comparable: applied as Faust would
])
def test_behind(marks: dict, than: dict, older: bool) -> None:
    assert behind(marks, than) is older


def test_newest_states__a_stale_record_after_a_newer_one_is_skipped() -> None:
    stored = {b"a": state(b"A9", p0=9)}
    skipped: list[int] = []
    batch = [
        ChangelogEvent(b"a", state(b"A7", p0=7), 10),  # behind the store's state
        ChangelogEvent(b"b", state(b"B4", p0=4), 11),
        ChangelogEvent(b"b", state(b"B6", p0=6), 12),
        ChangelogEvent(b"b", state(b"B5", p0=5), 13),  # the dropped worker's, landed late
        ChangelogEvent(b"c", None, 14),  # tombstones pass
        ChangelogEvent(b"c", state(b"C1", p0=1), 15),
        ChangelogEvent(b"d", b"\x00\x00", 16),  # an unreadable head passes, as before
    ]
    kept = newest_states(batch, lambda e: stored.get(e.message.key),
                         lambda e: skipped.append(e.message.offset))
    assert [e.message.offset for e in kept] == [11, 12, 14, 15, 16]
    assert skipped == [10, 13]


def test_state_table__recovery_keeps_the_newest_state_in_a_real_faust_store(caplog) -> None:
    import faust

    from streams.app import state_table

    late = LateWrites(membership(1.0))
    app = faust.App("fencing-test", store="memory://",
                    Table=state_table(lambda action, err: None, late))
    table = app.Table("state", key_type=bytes, value_type=bytes)
    table.data[b"a"] = state(b"A9", p0=9)
    with caplog.at_level("WARNING", logger="streams.fencing"):
        table.apply_changelog_batch([ChangelogEvent(b"a", state(b"A8", p0=8), 3),
                                     ChangelogEvent(b"b", state(b"B2", p0=2), 4),
                                     ChangelogEvent(b"b", state(b"B1", p0=1), 5)])
    assert table.data[b"a"] == state(b"A9", p0=9)
    assert table.data[b"b"] == state(b"B2", p0=2)
    assert late.stale_skipped == 2
    assert [r.getMessage() for r in caplog.records] == [
        ("table recovery skipped 2 stale states (written by a worker after the group had "
         "dropped it), the last of b'b' at app-state-changelog[0]@5; their owners are "
         "asked to write them again")]
    assert late.take() == {"a", "b"}  # named to their owners, like late records


def test_state_table__recovery_keeps_the_newest_state_in_rocksdb(tmp_path) -> None:
    """The worker's default store: the state already recovered is read from the changelog
    event's partition, from a previous batch too."""
    pytest.importorskip("rocksdict")
    import faust

    from streams.app import state_table

    late = LateWrites(membership(1.0))
    app = faust.App("fencing-rocksdb-test", store="rocksdb://", datadir=str(tmp_path),
                    Table=state_table(lambda action, err: None, late))
    table = app.Table("state", key_type=bytes, value_type=bytes, partitions=2)
    table.apply_changelog_batch([ChangelogEvent(b"a", state(b"A9", p0=9), 1, partition=1)])
    table.apply_changelog_batch([ChangelogEvent(b"a", state(b"A7", p0=7), 2, partition=1),
                                 ChangelogEvent(b"b", state(b"B3", p0=3), 3, partition=1)])
    db = table.data._db_for_partition(1)
    assert (db.get(b"a"), db.get(b"b")) == (state(b"A9", p0=9), state(b"B3", p0=3))
    assert late.stale_skipped == 1


class Sent:
    """A changelog send's future as Faust's table callback gets it."""

    def __init__(self, key: bytes, offset: int) -> None:
        self.message = SimpleNamespace(key=key)
        self.offset = offset

    def result(self) -> Any:
        return SimpleNamespace(topic_partition=TopicPartition("state-changelog", 0),
                               offset=self.offset)


def test_state_table__a_late_acknowledgement_does_not_move_the_recovered_position(
        monkeypatch) -> None:
    import faust

    from streams.app import state_table

    held = membership(1.0)
    late = LateWrites(held)
    app = faust.App("fencing-ack-test", store="memory://",
                    Table=state_table(lambda action, err: None, late))
    table = app.Table("state", key_type=bytes, value_type=bytes)
    stored: list[int] = []
    monkeypatch.setattr(table.data, "set_persisted_offset", lambda tp, o: stored.append(o))
    table._on_changelog_sent(Sent(b"svc-a", 41))
    held.clock = lambda: 115.0  # no heartbeat answered for 16 s: the group may drop it
    table._on_changelog_sent(Sent(b"svc-b", 42))
    assert stored == [41]
    assert (late.count, late.take(), late.take()) == (1, {"svc-b"}, set())


def test_late_writes__one_line_per_burst(caplog) -> None:
    late = LateWrites(membership(9.0))  # in doubt
    for key, role in ((b"a", "state"), (b"b", "state"), (b"a", "inventory")):
        assert late.acknowledged(key, role) is False
    with caplog.at_level("WARNING", logger="streams.fencing"):
        assert late.take() == {"a", "b"}
        assert late.take() == set()
    assert [r.getMessage() for r in caplog.records if r.name == "streams.fencing"] == [
        ("1 inventory records and 2 state records acknowledged after the group may have "
         "dropped this worker: asking the owners of 2 identities to write them again")]
    assert late.count == 3


def test_reassert__the_owner_writes_the_named_identity_and_its_inventory_again() -> None:
    story = scenario.build(days=2, per_hour=1)
    harness = Harness()
    for offset, payload in enumerate(payloads(story.records, 40)):
        harness.feed(payload, offset)
    identity = next(iter(harness.table))
    partition = harness.pipeline.partition_of(identity)
    other = next(i for i in harness.table if harness.pipeline.partition_of(i) != partition)
    harness.pipeline.flush_inventory()
    before = dict(harness.table)

    records = harness.pipeline.reassert_records([identity, other, "never-seen"])
    assert sorted(r.partition for r in records) == sorted(
        {partition, harness.pipeline.partition_of(other),
         harness.pipeline.partition_of("never-seen")})
    message = next(r for r in records if r.partition == partition)
    out = harness.pipeline.apply(message.value, topic="rep", partition=partition,
                                 offset=99, get_state=harness.table.get)
    assert dict(out.writes).get(identity) == before[identity]  # the same state, again
    assert other not in dict(out.writes) and "never-seen" not in dict(out.writes)
    inventory = harness.pipeline.flush_inventory().records
    assert identity.encode() in [r.key for r in inventory]


def test_reassert__held_until_the_commit_like_any_change() -> None:
    harness = Harness()
    harness.table["svc-x"] = codecs.pack_state({"raw[0]": 5}, b"")
    partition = harness.pipeline.partition_of("svc-x")
    message = harness.pipeline.reassert_records(["svc-x"])[0]
    harness.pipeline.detector.set_identity_state = lambda key, blob: None
    out = harness.pipeline.apply(message.value, topic="rep", partition=partition, offset=7,
                                 get_state=harness.table.get, write=False)
    assert out.writes == [] and out.events == 0
    assert harness.pipeline.held_from == {partition: 7}


def test_codecs__reassert_messages_round_trip_and_bad_ones_are_refused() -> None:
    tag, body = codecs.decode_repartition(codecs.encode_reassert({"b", "a"}))
    assert (tag, body) == (codecs.REASSERT_TAG, {"identities": ["a", "b"]})
    for bad in (b'R{"identities": "a"}', b'R{"identities": [1]}', b"R{}"):
        with pytest.raises(InputError, match="lacks its identities"):
            codecs.decode_repartition(bad)


def test_codecs__state_marks_reads_the_head_only() -> None:
    assert codecs.state_marks(codecs.pack_state({"raw[0]": 12}, b"blob")) == {"raw[0]": 12}
    assert codecs.state_marks(None) is None
    assert codecs.state_marks(b"\x00\x00\x00\x09not json!") is None
    assert codecs.state_marks(codecs.pack_state({"raw[0]": "12"}, b"")) is None


def test_changelog_audit__finds_records_this_worker_did_not_write() -> None:
    audit = ChangelogAudit()
    audit.begin("p0", 100)  # recovered up to offset 99
    audit.begin("p1", 40)
    for offset in (100, 101, 103):  # 102 is someone else's, landed between its own
        audit.acknowledged("p0", offset)
    audit.acknowledged("p1", 40)
    audit.acknowledged("p1", 39)  # before its start: not counted
    assert audit.suspects({"p0": 104, "p1": 41, "p9": 5}) == {"p0": (100, 104, {100, 101, 103})}
    # the next audit starts where this one ended
    audit.acknowledged("p0", 104)
    assert audit.suspects({"p0": 105, "p1": 41}) == {}
    assert audit.start == {"p0": 105, "p1": 41}
    audit.acknowledged("p0", 105)
    assert audit.suspects({"p0": 107}) == {"p0": (105, 107, {105})}
    audit.again("p0", 105, {105})  # reading them failed: the next audit looks again
    assert audit.suspects({"p0": 107}) == {"p0": (105, 107, {105})}
    audit.forget()  # a revocation
    audit.acknowledged("p0", 107)
    assert audit.suspects({"p0": 110}) == {}


def test_changelog_audit__an_own_record_acknowledged_after_the_end_waits_its_turn() -> None:
    audit = ChangelogAudit()
    audit.begin("p0", 10)
    audit.acknowledged("p0", 10)
    audit.acknowledged("p0", 11)  # written after the end offset was read
    assert audit.suspects({"p0": 11}) == {}
    assert audit.suspects({"p0": 12}) == {}


def test_foreign_keys() -> None:
    records = [SimpleNamespace(offset=o, key=k) for o, k in
               ((100, b"a"), (101, b"b"), (102, b"c"), (103, None), (104, b"a"))]
    assert foreign_keys(records, {100, 101}) == {"c", "a"}
