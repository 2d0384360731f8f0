"""``nhi-detector produce`` without a broker: record splitting, batching, rate limiting."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.errors import InputError
from streams.produce import (
    RateLimiter,
    WholeFile,
    batches,
    frame,
    read_records,
    split_records,
)

RECORDS = [{"eventID": f"e{i}", "eventName": "GetObject"} for i in range(5)]


@pytest.mark.parametrize("data", [
    orjson.dumps({"Records": RECORDS}),
    orjson.dumps(RECORDS),
    b"\n".join(orjson.dumps(r) for r in RECORDS) + b"\n",
    gzip.compress(orjson.dumps({"Records": RECORDS})),
], ids=["cloudtrail-document", "json-array", "json-lines", "gzip"])
def test_split_records__every_framing_gives_the_records(data: bytes) -> None:
    assert [orjson.loads(r) for r in split_records(data)] == RECORDS


def test_split_records__a_file_with_bad_lines_travels_whole() -> None:
    # split into lines, a bad line would be parsed apart from the file that holds it;
    # whole, the worker's parser reads what replay reads
    data = orjson.dumps(RECORDS[0]) + b"\n{truncated\n" + orjson.dumps(RECORDS[1])
    assert split_records(data) == [data]
    assert type(split_records(data)[0]) is WholeFile


def test_split_records__a_text_file_too_large_for_a_message_is_split_into_lines() -> None:
    data = orjson.dumps(RECORDS[0]) + b"\n{truncated\n" + orjson.dumps(RECORDS[1])
    assert split_records(data, max_bytes=40) == [orjson.dumps(RECORDS[0]), b"{truncated",
                                                 orjson.dumps(RECORDS[1])]


def test_split_records__a_binary_file_too_large_for_a_message_is_refused() -> None:
    blob = bytes(range(256)) * 8
    with pytest.raises(InputError, match="over --max-message-bytes 1024"):
        split_records(blob, max_bytes=1024)


def test_batches__by_count_and_by_size() -> None:
    records = [b"x" * 10] * 7
    assert [len(b) for b in batches(records, size=3, max_bytes=1000)] == [3, 3, 1]
    assert [len(b) for b in batches(records, size=100, max_bytes=25)] == [2, 2, 2, 1]


def test_binary_file__travels_whole_in_its_own_message_and_is_one_dead_letter() -> None:
    # replay makes a binary file one dead letter; split into lines and batched with good
    # records it was many (or, worse, swallowed the records of its message)
    blob = bytes(range(256)) * 8 + b"\n" + bytes(range(200, 256)) * 20
    good = [orjson.dumps(r) for r in RECORDS]
    records = good[:1] + split_records(blob) + good[1:]
    assert len(records) == len(RECORDS) + 1 and bytes(records[1]) == blob
    sent = list(batches(records, size=500, max_bytes=900_000))
    assert [len(b) for b in sent] == [1, 1, len(RECORDS) - 1]
    events, reasons = worker_parse([message_of(batch, "lines") for batch in sent])
    # the records are not complete CloudTrail records: each is its own dead letter
    assert (len(events), reasons.count("binary")) == (0, 1)
    assert len(reasons) == 1 + len(RECORDS)


def message_of(batch: list[bytes], framing: str) -> bytes:
    """The value ``send_records`` sends for ``batch``."""
    if len(batch) == 1 and type(batch[0]) is WholeFile:
        return bytes(batch[0])
    return frame(batch, framing)


def worker_parse(messages: list[bytes]) -> tuple[list[Any], list[str]]:
    """Events and dead-letter reasons of raw messages read in order from one partition,
    with one long-lived parser as ``Pipeline`` has."""
    from detector.sources import ListDeadLetters, Parser
    from detector.stats import RunStats

    dead = ListDeadLetters()
    parser = Parser(stats=RunStats(), dead_letters=dead)
    events = []
    for offset, message in enumerate(messages):
        events += parser.feed(message, f"t[0]@{offset}")
    events += parser.finish()
    return events, dead.reasons()


def replay_parse(path: Path) -> tuple[list[Any], list[str]]:
    from detector.sources import ListDeadLetters, Parser
    from detector.stats import RunStats

    dead = ListDeadLetters()
    parser = Parser(stats=RunStats(), dead_letters=dead)
    events = parser.feed(path.read_bytes(), str(path)) + parser.finish()
    return events, dead.reasons()


def _ct(i: int) -> bytes:
    from tests.streams import scenario

    return orjson.dumps(scenario.build(days=1, per_hour=1).records[i])


def _cut_gzip(lines: int) -> bytes:
    whole = gzip.compress(b"".join(_ct(i) + b"\n" for i in range(lines)))
    return whole[:len(whole) - 40]


FILES = {
    "empty.json": lambda: b"",
    "blank.jsonl": lambda: b"\n  \n",
    "empty.json.gz": lambda: b"",
    "utf16.jsonl": lambda: (_ct(0) + b"\n" + _ct(1) + b"\n").decode().encode("utf-16"),
    "random.bin": lambda: bytes((i * 7919 + 13) % 256 for i in range(2000)),
    "cut.jsonl.gz": lambda: _cut_gzip(13),
    "corrupt.json.gz": lambda: b"\x1f\x8b" + bytes(range(100)),
    "mixed.jsonl": lambda: _ct(0) + b"\nnot json\n" + _ct(1) + b"\n{cut",
    "good.jsonl": lambda: b"".join(_ct(i) + b"\n" for i in range(5)),
}


@pytest.mark.parametrize("framing", ["lines", "array"])
@pytest.mark.parametrize("batch_records", [500, 1])
@pytest.mark.parametrize("name", sorted(FILES))
def test_produce_then_worker__same_events_and_dead_letters_as_replay(
        tmp_path: Path, name: str, batch_records: int, framing: str) -> None:
    path = tmp_path / name
    path.write_bytes(FILES[name]())
    errors: list[str] = []
    records = list(read_records([str(path)], errors, 900_000))
    assert errors == []
    messages = [message_of(batch, framing) if batch_records > 1 or type(batch[0]) is WholeFile
                else bytes(batch[0])
                for batch in batches(records, size=batch_records, max_bytes=900_000)]
    events, reasons = worker_parse(messages)
    want_events, want_reasons = replay_parse(path)
    assert [e.event_id for e in events] == [e.event_id for e in want_events]
    assert sorted(reasons) == sorted(want_reasons)


def test_produce_then_worker__a_cut_gzip_keeps_its_whole_lines_as_replay_does(
        tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(_cut_gzip(13))
    events, reasons = worker_parse([bytes(r) for r in read_records([str(path)], [])])
    assert (len(events), reasons) == (12, ["truncated_gzip"])


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


class RecordingProducer(MissingTopicProducer):
    """A producer whose topic exists; keeps (key, value) of every send."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[bytes | None] = []

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> None:
        assert type(value) is bytes  # kafka-python refuses subclasses such as WholeFile
        self.keys.append(key)
        self.sent.append(value)

    def flush(self, timeout: float) -> None:
        pass


@pytest.mark.parametrize("flags, key", [
    ([], b"nhi-detector-produce"),
    (["--key", "day-1"], b"day-1"),
    (["--spread"], None),
])
def test_run__one_key_for_the_whole_run_unless_spread(tmp_path, monkeypatch, flags,
                                                      key) -> None:
    # one key: the run lands on one partition and reaches the worker in the order it was
    # sent; without one, partitions read at different speeds reorder the events
    from detector.cli import main
    from streams import produce

    producer = RecordingProducer()
    monkeypatch.setattr(produce, "make_producer", lambda args: producer)
    (tmp_path / "a.jsonl").write_bytes(orjson.dumps(RECORDS[0]) + b"\n")
    (tmp_path / "b.json").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "c.json").write_bytes(b"")
    code = main(["produce", str(tmp_path), "--topic", "t", "--no-progress",
                 "--batch-records", "1", *flags])
    assert code == 0
    assert producer.sent == [orjson.dumps(RECORDS[0]), bytes(range(256)) * 4, b""]
    assert producer.keys == [key] * 3


def test_read_records__a_large_binary_file_is_refused_from_its_start(tmp_path) -> None:
    """A 300 MB sparse file (zeros) is told binary from its first 8 KiB and refused by its
    size: it is never read whole (a 2 GB one took 4 GB of memory before)."""
    import tracemalloc

    from streams.produce import read_records

    sparse = tmp_path / "zeros.bin"
    with open(sparse, "wb") as handle:
        handle.truncate(300 * 1024 * 1024)
    errors: list[str] = []
    tracemalloc.start()
    try:
        records = list(read_records([str(sparse)], errors, max_bytes=900_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert records == []
    assert errors == [f"{sparse}: binary file of 314,572,800 bytes cannot be split into "
                      f"records and is over --max-message-bytes 900000 (reason=binary)"]
    assert peak < 16 * 1024 * 1024
