"""The worker's two steps without Kafka: split raw messages, apply repartition messages."""

from __future__ import annotations

import orjson
import pytest

from detector.engine import Detector
from detector.errors import InputError
from detector.stats import RunStats
from streams import codecs
from streams.pipeline import Pipeline
from tests.streams import scenario

PARTITIONS = 4


class Harness:
    """Runs messages through split and apply the way the two agents do, on dict tables."""

    def __init__(self, table: dict[str, bytes] | None = None) -> None:
        self.stats = RunStats()
        self.pipeline = Pipeline(Detector({}, stats=self.stats), self.stats,
                                 partitions=PARTITIONS, topic_sources={"raw": None},
                                 accounting=True)
        self.table = {} if table is None else table
        self.next_offset = [0] * PARTITIONS
        self.sent: list = []

    def feed(self, payload: bytes, offset: int) -> list:
        split = self.pipeline.split(payload, topic="raw", partition=0, offset=offset)
        records = [r for r in split.records if r.role != "repartition"]
        for message in (r for r in split.records if r.role == "repartition"):
            records += self.deliver(message.value, message.partition)
        self.sent += records
        return records

    def deliver(self, value: bytes, partition: int) -> list:
        offset = self.next_offset[partition]
        self.next_offset[partition] += 1
        out = self.pipeline.apply(value, topic="rep", partition=partition, offset=offset,
                                  get_state=self.table.get)
        self.table.update(out.writes)
        return out.records

    def values(self, role: str) -> list:
        if role == "inventory":
            self.sent += self.pipeline.flush_inventory().records
        return [orjson.loads(r.value) for r in self.sent if r.role == role]


def payloads(records: list, size: int) -> list[bytes]:
    return [b"\n".join(orjson.dumps(r) for r in records[i:i + size])
            for i in range(0, len(records), size)]


@pytest.fixture(scope="module")
def story() -> scenario.Scenario:
    return scenario.build(days=4, per_hour=1)


def accounted(harness: Harness) -> list[str]:
    return [i for v in harness.values("accounting") for i in v["event_ids"]]


def test_split__one_message_per_partition_each_identity_on_its_own(story) -> None:
    pipeline = Harness().pipeline
    out = pipeline.split(payloads(story.records, 60)[0], topic="raw", partition=0, offset=9)
    messages = [r for r in out.records if r.role == "repartition"]
    assert len({m.partition for m in messages}) == len(messages)
    positions = []
    for message in messages:
        _, body = codecs.decode_repartition(message.value)
        assert body["src"] == ["raw[0]"]
        assert all(codecs.partition_for(i, PARTITIONS) == message.partition
                   for i in body["batches"])
        positions += [pos for entries in body["batches"].values() for _, pos, _ in entries]
    assert sorted(positions) == [codecs.position(9, i) for i in range(60)]
    assert out.events == 60


def test_partition_of__memo_is_bounded_and_agrees_with_murmur2(monkeypatch) -> None:
    import streams.pipeline as module

    monkeypatch.setattr(module, "PARTITION_CACHE_SIZE", 3)
    pipeline = Harness().pipeline
    names = [f"arn:aws:iam::1:role/r{i}" for i in range(10)] * 2
    assert [pipeline.partition_of(n) for n in names] == [
        codecs.partition_for(n, PARTITIONS) for n in names]
    assert len(pipeline._partition_of) <= 3


def test_split_many__single_record_messages_share_repartition_messages(story) -> None:
    pipeline = Harness().pipeline
    raw = [(orjson.dumps(r), "raw", 1, 100 + i) for i, r in enumerate(story.records[:200])]
    out = pipeline.split_many(raw)
    messages = [r for r in out.records if r.role == "repartition"]
    assert len(messages) <= PARTITIONS
    assert out.events == 200


def test_split_many__large_groups_are_chunked_in_order(story, monkeypatch) -> None:
    import streams.pipeline as module

    monkeypatch.setattr(module, "MAX_EVENTS_PER_MESSAGE", 7)
    pipeline = Harness().pipeline
    out = pipeline.split(payloads(story.records, 90)[0], topic="raw", partition=0, offset=3)
    per_identity: dict[str, list[int]] = {}
    for message in (r for r in out.records if r.role == "repartition"):
        _, body = codecs.decode_repartition(message.value)
        assert sum(len(v) for v in body["batches"].values()) <= 7
        for identity, entries in body["batches"].items():
            per_identity.setdefault(identity, []).extend(pos for _, pos, _ in entries)
    assert sum(map(len, per_identity.values())) == 90
    assert all(p == sorted(p) for p in per_identity.values())


def test_split__bad_records_become_dead_letters_with_coordinates() -> None:
    out = Harness().pipeline.split(b"\x00\x01binary garbage", topic="raw", partition=2,
                                   offset=77)
    dead = [orjson.loads(r.value) for r in out.records if r.role == "dead_letters"]
    assert [(d["topic"], d["partition"], d["offset"]) for d in dead] == [("raw", 2, 77)]
    assert dead[0]["reason"] == "binary"
    assert not [r for r in out.records if r.role == "repartition"]


def test_apply__every_event_is_accounted_once(story) -> None:
    harness = Harness()
    for offset, payload in enumerate(payloads(story.records, 40)):
        harness.feed(payload, offset)
    ids = accounted(harness)
    assert sorted(ids) == sorted(story.event_ids)


def test_apply__attack_alert_on_the_victim(story) -> None:
    harness = Harness()
    for offset, payload in enumerate(payloads(story.records, 40)):
        harness.feed(payload, offset)
    victim = scenario.role_arn(scenario.VICTIM)
    alerts = harness.values("alerts")
    assert alerts and {a["identity"]["key"] for a in alerts} == {victim}


@pytest.mark.parametrize("per_message", [1, 25])
def test_apply__alert_ids_equal_a_replay_of_the_same_records(story, per_message) -> None:
    harness = Harness()
    for offset, payload in enumerate(payloads(story.records, per_message)):
        harness.feed(payload, offset)
    detector = Detector({}, stats=RunStats())
    replayed = {a.alert_id for e in _events(story.records) for a in detector.process(e)}
    assert replayed
    assert {a["alert_id"] for a in harness.values("alerts")} == replayed


def test_apply__redelivered_raw_message_is_not_learned_twice(story) -> None:
    harness = Harness()
    messages = payloads(story.records, 40)
    for offset, payload in enumerate(messages):
        harness.feed(payload, offset)
    before = {k: codecs.unpack_state(v)[0] for k, v in harness.table.items()}
    # the crash-and-replay case: a raw message comes again only to a restarted worker or
    # after a rebalance, which drops the partition's parser (and its duplicate checks)
    harness.pipeline.forget_raw_partitions({("raw", 0)})
    harness.feed(messages[-1], len(messages) - 1)
    inventory = {v["identity"]: v["events"] for v in harness.values("inventory")}
    for role in scenario.ROLES:
        assert inventory[scenario.role_arn(role)] == len(story.records_of(role))
    assert harness.pipeline.redelivered > 0
    assert {k: codecs.unpack_state(v)[0] for k, v in harness.table.items()} == before


def test_apply__state_resumes_in_a_new_process_from_the_table(story) -> None:
    messages = payloads(story.records, 40)
    first = Harness()
    half = len(messages) // 2
    for offset, payload in enumerate(messages[:half]):
        first.feed(payload, offset)
    second = Harness(table=dict(first.table))  # a restarted worker: new detector, same table
    second.next_offset = first.next_offset
    for offset, payload in enumerate(messages[half:], start=half):
        second.feed(payload, offset)
    inventory = {v["identity"]: v for v in second.values("inventory")}
    for role in scenario.ROLES:
        entry = inventory[scenario.role_arn(role)]
        assert entry["events"] == len(story.records_of(role))
        assert entry["in_learning"] is False


def test_split__k8s_stages_in_two_messages_are_one_event_and_hold_the_first() -> None:
    harness = Harness()
    # JSON lines: the held stage's origin names its line too (raw[0]@7:2)
    harness.feed(payloads([scenario.k8s_stage("done", "ResponseComplete"),
                           scenario.k8s_stage("req-1", "RequestReceived")], 2)[0], 7)
    assert harness.pipeline.held_offset("raw", 0) == 7
    assert accounted(harness) == ["done"]
    harness.feed(orjson.dumps(scenario.k8s_stage("req-1", "ResponseComplete")), 8)
    assert harness.pipeline.held_offset("raw", 0) is None
    assert accounted(harness) == ["done", "req-1"]
    assert harness.stats.events["k8s.audit"] == 2
    assert harness.stats.skipped[("k8s.audit", "merged_stage")] == 1
    assert harness.stats.balanced()


def test_split__lone_request_received_is_released_by_event_time_as_partial() -> None:
    harness = Harness()
    harness.feed(orjson.dumps(scenario.k8s_stage("lone", "RequestReceived")), 3)
    harness.feed(orjson.dumps(scenario.k8s_stage("other", "RequestReceived",
                                                 received="2024-03-04T10:05:00Z")), 4)
    assert harness.pipeline.held_offset("raw", 0) == 3
    # 11 minutes of event time later: "lone" has waited past stages.PENDING_TIMEOUT_S
    harness.feed(orjson.dumps(scenario.k8s_stage("late", "ResponseComplete",
                                                 received="2024-03-04T10:11:00Z")), 5)
    assert accounted(harness) == ["late", "lone"]
    assert harness.pipeline.held_offset("raw", 0) == 4  # "other" still waits
    assert (harness.stats.records_read["k8s.audit"], harness.stats.events["k8s.audit"]) == (3, 2)


def test_split__held_stage_read_again_after_a_rebalance_is_one_event() -> None:
    harness = Harness()
    first = orjson.dumps(scenario.k8s_stage("req-1", "RequestReceived"))
    harness.feed(first, 0)
    harness.pipeline.forget_raw_partitions({("raw", 0)})  # revoked; re-read from offset 0
    assert harness.pipeline.held_offset("raw", 0) is None
    harness.feed(first, 0)
    harness.feed(orjson.dumps(scenario.k8s_stage("req-1", "ResponseComplete")), 1)
    assert accounted(harness) == ["req-1"]


def test_apply__poison_repartition_message_is_reported_not_raised() -> None:
    pipeline = Harness().pipeline
    with pytest.raises(InputError, match="not JSON") as caught:
        pipeline.apply(b"E{broken", topic="rep", partition=1, offset=5, get_state={}.get)
    out = pipeline.apply_failed(b"E{broken", caught.value, topic="rep", partition=1, offset=5)
    dead = orjson.loads(out.records[0].value)
    assert (dead["reason"], dead["offset"]) == ("invalid_json", 5)
    assert pipeline.failed["invalid_json"] == 1


def test_apply__detector_failure_dead_letters_one_event_only(story) -> None:
    harness = Harness()
    good = codecs.compact_event(next(iter(_events(story.records[:1]))))
    bad = {**good, "event_id": "broken", "time": "not a time"}
    body = {"src": ["raw[0]"], "batches": {good["identity"]: [[0, 0, bad], [0, 1, good]]}}
    value = codecs.EVENTS_TAG + orjson.dumps(body)
    records = harness.deliver(value, codecs.partition_for(good["identity"], PARTITIONS))
    dead = [orjson.loads(r.value) for r in records if r.role == "dead_letters"]
    assert [d["event_id"] for d in dead] == ["broken"]
    counted = [orjson.loads(r.value) for r in records if r.role == "accounting"]
    assert counted[0]["event_ids"] == [good["event_id"]]


def _repartition_messages(story, size: int) -> list:
    """The repartition messages (value, partition) that raw messages of ``size`` records
    become, one split per raw message."""
    splitter = Harness().pipeline
    return [(r.value, r.partition)
            for offset, payload in enumerate(payloads(story.records, size))
            for r in splitter.split(payload, topic="raw", partition=0, offset=offset).records
            if r.role == "repartition"]


def test_apply__writes_held_back_over_messages_end_in_the_same_table(story) -> None:
    """The detect agent applies several messages of a partition with ``write=False`` and
    then writes each changed identity once: the table must end as with a write after
    every message, with fewer writes."""
    messages = _repartition_messages(story, 20)
    each = Harness()
    writes_each = 0
    for value, partition in messages:
        out = each.pipeline.apply(value, topic="rep", partition=partition,
                                  offset=each.next_offset[partition], get_state=each.table.get)
        each.next_offset[partition] += 1
        writes_each += len(out.writes)
        each.table.update(out.writes)
    held = Harness()
    writes_held = 0
    for value, partition in messages:
        out = held.pipeline.apply(value, topic="rep", partition=partition,
                                  offset=held.next_offset[partition], get_state=held.table.get,
                                  write=False)
        held.next_offset[partition] += 1
        assert out.writes == []
    for partition in range(PARTITIONS):
        writes = held.pipeline.pending_writes(partition)
        writes_held += len(writes)
        held.table.update(writes)
    assert held.table == each.table
    assert writes_held == len(held.table) < writes_each
    assert held.pipeline.pending_writes(0) == []
    assert held.pipeline.held_from == {}


def test_apply__unwritten_state_holds_the_partition_from_its_first_message(story) -> None:
    harness = Harness()
    messages = _repartition_messages(story, 10)
    part = messages[0][1]
    ours = [value for value, partition in messages if partition == part]
    assert len(ours) >= 3
    for offset, value in enumerate(ours[:2], start=7):
        harness.pipeline.apply(value, topic="rep", partition=part, offset=offset,
                               get_state=harness.table.get, write=False)
    assert harness.pipeline.held_from == {part: 7}
    assert harness.pipeline.pending_writes(part)
    assert harness.pipeline.held_from == {}
    harness.pipeline.apply(ours[0], topic="rep", partition=part, offset=9,
                           get_state=harness.table.get, write=False)
    assert harness.pipeline.held_from == {}  # a redelivery changes nothing: nothing held
    harness.pipeline.apply(ours[2], topic="rep", partition=part, offset=10,
                           get_state=harness.table.get, write=False)
    assert harness.pipeline.held_from == {part: 10}
    harness.pipeline.forget_partitions({part})
    assert harness.pipeline.held_from == {}


def test_apply__table_is_read_only_when_an_identity_is_loaded(story) -> None:
    harness = Harness()
    reads: list[str] = []

    def get_state(identity: str) -> bytes | None:
        reads.append(identity)
        return harness.table.get(identity)

    messages = _repartition_messages(story, 10)
    for offset, (value, partition) in enumerate(messages):
        out = harness.pipeline.apply(value, topic="rep", partition=partition, offset=offset,
                                     get_state=get_state)
        harness.table.update(out.writes)
    assert sorted(reads) == sorted(harness.table)
    # a revoked partition's identities are read again when their events come back
    dropped = harness.pipeline.forget_partitions({messages[0][1]})
    assert dropped > 0
    reads.clear()
    harness.pipeline.apply(messages[0][0], topic="rep", partition=messages[0][1],
                           offset=len(messages), get_state=get_state)
    assert reads and all(codecs.partition_for(i, PARTITIONS) == messages[0][1] for i in reads)
    assert harness.pipeline.redelivered > 0


def named_for(partition: int, prefix: str) -> str:
    """An identity name that hashes to ``partition``."""
    return next(f"{prefix}-{n}" for n in range(1000)
                if codecs.partition_for(f"{prefix}-{n}", PARTITIONS) == partition)


def test_seed__skips_identities_with_state_not_written_yet(story) -> None:
    harness = Harness()
    value, partition = _repartition_messages(story, 10)[0]
    harness.pipeline.apply(value, topic="rep", partition=partition, offset=0,
                           get_state=harness.table.get, write=False)
    pending = next(iter(harness.pipeline.dirty[partition]))
    new = named_for(partition, "new")
    out = harness.pipeline.apply(codecs.encode_seed({pending: b"snap", new: b"snap2"}),
                                 topic="rep", partition=partition, offset=1,
                                 get_state=harness.table.get, write=False)
    assert out.writes == [] and harness.pipeline.held_from == {partition: 0}
    writes = dict(harness.pipeline.pending_writes(partition))
    assert writes[new] == codecs.pack_state({}, b"snap2")
    assert writes[pending] != codecs.pack_state({}, b"snap")  # its own state, not the seed


def test_seed__fills_only_identities_the_table_lacks() -> None:
    known, new, other = named_for(0, "known"), named_for(0, "new"), named_for(1, "other")
    harness = Harness(table={known: codecs.pack_state({"raw[0]": 4}, b"old")})
    seed = codecs.encode_seed({known: b"snap1", new: b"snap2", other: b"snap3"})
    out = harness.pipeline.apply(seed, topic="rep", partition=0, offset=0,
                                 get_state=harness.table.get)
    # ``other`` belongs to partition 1: written into partition 0's table, its owner
    # would never read it
    assert out.writes == [(new, codecs.pack_state({}, b"snap2"))]
    assert harness.pipeline.pending_writes(1) == []


def test_seed__waits_for_the_commit_and_holds_its_message() -> None:
    """A seed is a state write like any other: made before the commit, only while the
    worker's membership is current (streams.fencing), its message held until then."""
    new = named_for(1, "new")
    harness = Harness()
    out = harness.pipeline.apply(codecs.encode_seed({new: b"snap"}), topic="rep", partition=1,
                                 offset=5, get_state=harness.table.get, write=False)
    assert out.writes == [] and harness.pipeline.held_from == {1: 5}
    harness.pipeline.forget_partitions({1})  # revoked before the commit: the next owner
    assert harness.pipeline.pending_writes(1) == []  # reads the seed message again


def test_seed__an_identity_whose_events_come_before_the_write_starts_from_it(story) -> None:
    harness = Harness()
    value, partition = _repartition_messages(story, 10)[0]
    _, body = codecs.decode_repartition(value)
    identity = next(iter(body["batches"]))
    seeded = Harness()  # the same identity's state from another run, as a snapshot would be
    out = seeded.pipeline.apply(value, topic="rep", partition=partition, offset=0,
                                get_state=seeded.table.get)
    _, blob = codecs.unpack_state(dict(out.writes)[identity])
    harness.pipeline.apply(codecs.encode_seed({identity: blob}), topic="rep",
                           partition=partition, offset=0, get_state=harness.table.get,
                           write=False)
    harness.pipeline.apply(value, topic="rep", partition=partition, offset=1,
                           get_state=harness.table.get, write=False)
    # the snapshot's events and the same events again: the seed was loaded, not skipped
    once = seeded.pipeline.inventory_of(identity)["events"]
    assert once > 0 and harness.pipeline.inventory_of(identity)["events"] == 2 * once
    writes = dict(harness.pipeline.pending_writes(partition))
    assert codecs.unpack_state(writes[identity])[1] != blob  # the state, not the seed


def _events(records: list):
    from detector.sources import ListDeadLetters, parse_payload

    return parse_payload(b"\n".join(orjson.dumps(r) for r in records), origin="t",
                         stats=RunStats(), dead_letters=ListDeadLetters())


@pytest.mark.parametrize("alert_format, shadow, role, check", [
    ("native", False, "alerts", lambda v: v["schema"] == "nhi-detector/alert/v1"),
    ("ocsf", False, "alerts", lambda v: v["class_uid"] == 2004),
    ("native", True, "shadow", lambda v: v["alert_id"]),
])
def test_alerts__format_and_shadow_topic(story, alert_format, shadow, role, check) -> None:
    harness = Harness()
    harness.pipeline.alert_format = alert_format
    harness.pipeline.shadow = shadow
    for offset, payload in enumerate(payloads(story.records, 40)):
        harness.feed(payload, offset)
    values = harness.values(role)
    assert values and all(check(v) for v in values)
    other = "alerts" if role == "shadow" else "shadow"
    assert harness.values(other) == []


@pytest.mark.parametrize("alert_format, marked", [
    ("native", lambda v: v["shadow"] is True),
    ("ocsf", lambda v: v["is_alert"] is False and "shadow" in v["metadata"]["labels"]),
])
def test_alerts__a_shadow_worker_marks_every_alert_shadow(story, alert_format,
                                                          marked) -> None:
    harness = Harness()
    harness.pipeline.alert_format = alert_format
    harness.pipeline.shadow = True
    for offset, payload in enumerate(payloads(story.records, 40)):
        harness.feed(payload, offset)
    values = harness.values("shadow")
    assert values and all(marked(v) for v in values)


def _wide(story, size: int) -> list[dict]:
    """The first records of ``story`` with ``requestParameters`` of ``size`` characters: a
    field that is legitimately large (an inline policy) and never enters the event. Events
    are bounded (long identifying fields are dead letters, free text is cut), so the tests
    below lower the message limit to event sizes instead of inflating the events."""
    params = {"policyName": "inline", "policyDocument": "x" * size}
    return [{**r, "requestParameters": params} for r in story.records[:6]]


def test_split__repartition_messages_are_split_by_bytes_not_only_by_count(story) -> None:
    # six events that did not fit one repartition message made one message no send could
    # take; here six 200 KB raw records (1.2 MB in one raw message) give events of about
    # 500 bytes each, and a 1,000-byte limit must split them
    harness = Harness()
    harness.pipeline.max_message_bytes = 1000
    out = harness.pipeline.split(payloads(_wide(story, 200_000), 6)[0], topic="raw",
                                 partition=0, offset=5)
    messages = [r for r in out.records if r.role == "repartition"]
    assert len(messages) > 2 and all(len(m.value) <= 1000 for m in messages)
    positions = []
    for message in messages:
        _, body = codecs.decode_repartition(message.value)
        positions += [pos for entries in body["batches"].values() for _, pos, _ in entries]
    assert sorted(positions) == [codecs.position(5, i) for i in range(6)]
    assert [r for r in out.records if r.role == "dead_letters"] == []


def test_split__an_event_too_large_alone_is_a_dead_letter_and_the_rest_goes_on(story) -> None:
    harness = Harness()
    harness.pipeline.max_message_bytes = 1500
    # the largest event a record can give: user agent and resource at their bounds
    first = {**_wide(story, 200_000)[0], "userAgent": "Boto3/1.34 " + "u" * 600,
             "resources": [{"ARN": "arn:aws:s3:::bucket/" + "k" * 700}]}
    records = [first] + story.records[1:4]
    out = harness.pipeline.split(payloads(records, 4)[0], topic="raw", partition=3,
                                 offset=41)
    dead = [orjson.loads(r.value) for r in out.records if r.role == "dead_letters"]
    assert [(d["reason"], d["topic"], d["partition"], d["offset"], d["origin"])
            for d in dead] == [("oversized_record", "raw", 3, 41, "raw[3]@41#event 0")]
    assert dead[0]["event_id"] == story.records[0]["eventID"]
    # the dead letter holds the event (the record's 200 KB parameters never entered it)
    assert "raw_truncated" not in dead[0] and 1500 < dead[0]["raw_size"] < 2500
    assert '"cut":{"user_agent":611,"resource":720}' in dead[0]["raw"]
    sent = []
    for message in (r for r in out.records if r.role == "repartition"):
        _, body = codecs.decode_repartition(message.value)
        reader = codecs.EventReader(body["fields"])
        sent += [reader.event_id(item) for entries in body["batches"].values()
                 for _, _, item in entries]
    assert sorted(sent) == sorted(r["eventID"] for r in story.records[1:4])
    assert harness.pipeline.failed["oversized_record"] == 1


def test_split__a_200_kb_event_name_is_a_field_dead_letter_before_the_repartition(
        story) -> None:
    # what made a 200 KB event before: the name is now refused by the parser, raw kept
    records = [{**story.records[0], "eventName": "Get" + "x" * 200_000}] + story.records[1:3]
    out = Harness().pipeline.split(payloads(records, 3)[0], topic="raw", partition=1,
                                   offset=7)
    dead = [orjson.loads(r.value) for r in out.records if r.role == "dead_letters"]
    assert [(d["reason"], d["offset"]) for d in dead] == [("oversized_field", 7)]
    assert dead[0]["message"].startswith("eventName is 200,003 characters, over the 256")
    assert dead[0]["raw_size"] > 200_000
    sent = []
    for message in (r for r in out.records if r.role == "repartition"):
        _, body = codecs.decode_repartition(message.value)
        reader = codecs.EventReader(body["fields"])
        sent += [reader.event_id(item) for entries in body["batches"].values()
                 for _, _, item in entries]
    assert sorted(sent) == sorted(r["eventID"] for r in story.records[1:3])


def test_fit__an_output_too_large_to_send_becomes_a_cut_dead_letter() -> None:
    from streams.pipeline import Record

    pipeline = Harness().pipeline
    pipeline.max_message_bytes = 1000
    small = Record("inventory", b"id-1", b"{}")
    big = Record("alerts", b"id-2", b'{"evidence": "' + b"y" * 70_000 + b'"}')
    kept = pipeline.fit([small, big])
    assert kept[0] is small
    assert (kept[1].role, kept[1].key) == ("dead_letters", b"id-2")
    dead = orjson.loads(kept[1].value)
    assert (dead["reason"], dead["role"], dead["key"]) == ("oversized_record", "alerts", "id-2")
    assert dead["raw_size"] == len(big.value) and dead["raw_truncated"] is True
    assert dead["raw"] == big.value[:64 * 1024].decode()


def test_apply__a_recreated_topic_s_events_are_not_taken_for_redeliveries(story) -> None:
    """A raw topic deleted and created again starts its offsets at 0 again: tagged with
    the new topic id, its positions are not compared with the old topic's."""
    harness = Harness()
    old, new = payloads(story.records[:60], 10), payloads(story.records[60:90], 10)
    harness.pipeline.incarnations["raw"] = "aaaa0001"
    for offset, payload in enumerate(old):
        harness.feed(payload, offset)
    harness.pipeline.incarnations["raw"] = "bbbb0002"
    for offset, payload in enumerate(new):  # offsets 0.. again, below the old ones
        harness.feed(payload, offset)
    assert harness.pipeline.redelivered == 0
    # the last inventory entry of each identity counts the events its state learned
    learned = {entry["identity"]: entry["events"] for entry in harness.values("inventory")}
    fed = scenario.Scenario(story.records[:90], [], 0.0, 0.0)
    want = {scenario.role_arn(role): len(fed.records_of(role)) for role in scenario.ROLES}
    assert {arn: learned.get(arn) for arn in want} == want


def test_apply__without_a_topic_tag_new_offsets_below_old_ones_are_redeliveries(story) -> None:
    """What the tag prevents: the same two topics untagged (a broker or client that gives
    no topic id) lose the new topic's events up to the old positions."""
    harness = Harness()
    for offset, payload in enumerate(payloads(story.records[:60], 10)):
        harness.feed(payload, offset)
    for offset, payload in enumerate(payloads(story.records[60:90], 10)):
        harness.feed(payload, offset)
    assert harness.pipeline.redelivered == 30


def test_split__an_oversized_event_s_origin_has_no_topic_tag(story) -> None:
    pipeline = Harness().pipeline
    pipeline.incarnations["raw"] = "cccc0003"
    pipeline.max_message_bytes = 200  # every event is too large alone
    out = pipeline.split(payloads(story.records[:1], 1)[0], topic="raw", partition=3,
                         offset=41)
    dead = [orjson.loads(r.value) for r in out.records if r.role == "dead_letters"]
    assert [(d["reason"], d["origin"], d["topic"], d["partition"], d["offset"])
            for d in dead] == [("oversized_record", "raw[3]@41#event 0", "raw", 3, 41)]
