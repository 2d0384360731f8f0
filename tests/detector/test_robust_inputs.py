"""Bad input found by the breaker: one bad line, a cut gzip, an odd file name or a record of
another source is one dead letter with its reason, and every good record around it is kept.

Each test checks the exact events and dead letters (reason and position), and that the
counters balance (``records_read == events + dead_letters + skipped`` per source).
"""

from __future__ import annotations

from pathlib import Path

import orjson

from detector.sources import ListDeadLetters, Parser
from detector.stats import RunStats
from tests.detector.sources_helpers import read, record


def lines(*records: dict) -> list[bytes]:
    return [orjson.dumps(item) for item in records]


def where(dead: ListDeadLetters) -> list[tuple[str, str]]:
    return [(item["reason"], item["origin"]) for item in dead.items]


def feed(data: bytes, source: str | None = None) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead, source=source)
    events = parser.feed(data, "m") + parser.finish()
    assert stats.balanced()
    return events, stats, dead


class TestFormatOnMoreThanOneLine:
    """The format is decided on the first few lines, not on the first one or a NUL byte."""

    def test_a_first_line_that_is_not_json_is_one_dead_letter(self, tmp_path: Path) -> None:
        path = tmp_path / "f.jsonl"
        path.write_bytes(b"\n".join([b"# exported by a tool"] + lines(record(0), record(1))))
        events, _, dead = read([path])
        assert [event.event_id for event in events] == ["id-0", "id-1"]
        assert where(dead) == [("invalid_json", f"{path}:1")]

    def test_a_nul_byte_in_one_line_is_that_line_only(self) -> None:
        bad = orjson.dumps(record(1, userAgent="a\x00b")).replace(b"\\u0000", b"\x00")
        events, _, dead = feed(b"\n".join([lines(record(0))[0], bad, lines(record(2))[0]]))
        assert [event.event_id for event in events] == ["id-0", "id-2"]
        assert where(dead) == [("invalid_json", "m:2")]

    def test_a_nul_byte_in_the_first_line_of_a_batch(self) -> None:
        bad = b'{"eventName": "\x00"}'
        events, _, dead = feed(b"\n".join([bad] + lines(record(0), record(1))) + b"\n")
        assert [event.event_id for event in events] == ["id-0", "id-1"]
        assert where(dead) == [("invalid_json", "m:1")]

    def test_text_before_a_pretty_printed_document_is_one_dead_letter(self) -> None:
        body = orjson.dumps({"Records": [record(0)]}, option=orjson.OPT_INDENT_2)
        events, _, dead = feed(b"report header\n" + body)
        assert [event.event_id for event in events] == ["id-0"]
        assert where(dead) == [("invalid_json", "m#prefix")]
        assert dead.items[0]["raw"] == "report header\n"

    def test_binary_input_stays_one_dead_letter(self) -> None:
        noise = bytes((i * 7919 + 13) % 256 for i in range(4000))
        assert feed(noise + b"\n" + lines(record(0))[0])[2].reasons() == ["binary"]
        assert feed(bytes(range(32)) * 200)[2].reasons() == ["binary"]

    def test_plain_text_stays_unknown_format(self) -> None:
        events, _, dead = feed(b"hello\nworld\n")
        assert events == [] and where(dead) == [("unknown_format", "m")]
