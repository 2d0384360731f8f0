"""``nhi-detector produce`` without a broker: record splitting, batching, rate limiting."""

from __future__ import annotations

import gzip

import orjson
import pytest

from streams.produce import RateLimiter, batches, frame, read_records, split_records

RECORDS = [{"eventID": f"e{i}", "eventName": "GetObject"} for i in range(5)]


@pytest.mark.parametrize("data", [
    orjson.dumps({"Records": RECORDS}),
    orjson.dumps(RECORDS),
    b"\n".join(orjson.dumps(r) for r in RECORDS) + b"\n",
    gzip.compress(orjson.dumps({"Records": RECORDS})),
], ids=["cloudtrail-document", "json-array", "json-lines", "gzip"])
def test_split_records__every_framing_gives_the_records(data: bytes) -> None:
    assert [orjson.loads(r) for r in split_records(data)] == RECORDS


def test_split_records__bad_lines_pass_through_for_the_worker_to_dead_letter() -> None:
    data = orjson.dumps(RECORDS[0]) + b"\n{truncated\n" + orjson.dumps(RECORDS[1])
    assert split_records(data)[1] == b"{truncated"
    assert len(split_records(data)) == 3


def test_batches__by_count_and_by_size() -> None:
    records = [b"x" * 10] * 7
    assert [len(b) for b in batches(records, size=3, max_bytes=1000)] == [3, 3, 1]
    assert [len(b) for b in batches(records, size=100, max_bytes=25)] == [2, 2, 2, 1]


def test_binary_file__travels_whole_in_its_own_message_and_is_one_dead_letter() -> None:
    # replay makes a binary file one dead letter; split into lines and batched with good
    # records it was many (or, worse, swallowed the records of its message)
    from detector.sources import ListDeadLetters, parse_payload
    from detector.stats import RunStats

    blob = bytes(range(256)) * 8 + b"\n" + bytes(range(200, 256)) * 20
    good = [orjson.dumps(r) for r in RECORDS]
    records = good[:1] + split_records(blob) + good[1:]
    assert len(records) == len(RECORDS) + 1 and bytes(records[1]) == blob
    sent = list(batches(records, size=500, max_bytes=900_000))
    assert [len(b) for b in sent] == [1, 1, len(RECORDS) - 1]
    events, dead = [], ListDeadLetters()
    for batch in sent:
        payload = batch[0] if len(batch) == 1 and batch[0] == blob else frame(batch, "lines")
        events += parse_payload(payload, origin="t", stats=RunStats(), dead_letters=dead)
    # the records are not complete CloudTrail records: each is its own dead letter
    assert (len(events), dead.reasons().count("binary")) == (0, 1)
    assert len(dead.reasons()) == 1 + len(RECORDS)


def test_split_records__binary_with_record_lines_keeps_them() -> None:
    data = bytes(range(256)) * 8 + b"\n" + orjson.dumps(RECORDS[0]) + b"\n"
    records = split_records(data)
    assert records[-1] == orjson.dumps(RECORDS[0])
    assert len(records) > 2 and not any(type(r) is not bytes for r in records)


@pytest.mark.parametrize("framing", ["lines", "array"])
def test_frame__is_parsed_back_by_the_worker_parser(framing: str) -> None:
    from detector.sources import ListDeadLetters, parse_payload
    from detector.stats import RunStats
    from tests.streams import scenario

    story = scenario.build(days=1, per_hour=1)
    payload = frame([orjson.dumps(r) for r in story.records[:10]], framing)
    events = parse_payload(payload, origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    assert [e.event_id for e in events] == story.event_ids[:10]


def test_rate_limiter__sleeps_to_hold_the_rate() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(100.0, clock=lambda: now[0], sleep=sleep)
    limiter.wait(50)  # 50 records at 100/s: half a second ahead
    now[0] += 0.2
    limiter.wait(60)  # due at 0.6 s, clock at 0.7 s: no sleep
    assert slept == [pytest.approx(0.5)]


def test_read_records__walks_directories_and_reports_missing_paths(tmp_path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.json").write_bytes(orjson.dumps({"Records": RECORDS[:2]}))
    (tmp_path / "two.jsonl.gz").write_bytes(gzip.compress(orjson.dumps(RECORDS[2]) + b"\n"))
    errors: list[str] = []
    got = list(read_records([str(tmp_path), str(tmp_path / "missing.json")], errors))
    assert sorted(orjson.loads(r)["eventID"] for r in got) == ["e0", "e1", "e2"]
    assert len(errors) == 1 and "missing.json" in errors[0]


class MissingTopicProducer:
    """A producer whose broker never creates the topic (auto-create off)."""

    config = {"max_block_ms": 60000}

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def partitions_for(self, topic: str) -> set[int]:
        from kafka.errors import KafkaTimeoutError

        raise KafkaTimeoutError(f"Failed to update metadata after 60.0 secs for {topic}")

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> None:
        self.sent.append(value)

    def close(self, timeout: float) -> None:
        self.closed = True


def test_run__a_missing_topic_is_one_clear_error_and_exit_3(tmp_path, monkeypatch,
                                                            capsys) -> None:
    from detector.cli import main
    from streams import produce

    producer = MissingTopicProducer()
    monkeypatch.setattr(produce, "make_producer", lambda args: producer)
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(RECORDS[0]) + b"\n")
    code = main(["produce", str(tmp_path / "a.jsonl"), "--topic", "nope", "--no-progress"])
    assert code == 3
    assert capsys.readouterr().err == (
        "nhi-detector produce: topic nope does not exist (waited 60s for it; the broker "
        "does not create topics automatically: create it first)\n")
    assert producer.sent == []
    assert producer.closed
