"""Hostile input: nothing stops a run, nothing is dropped silently, neighbours survive.

Each test names the kind of fault it covers; every one checks the exact dead letters (reason
and position) and that ``records_read == events + dead_letters + skipped`` per source.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from detector.sources import ListDeadLetters, Parser, parse_payload
from detector.sources.common import parse_time
from detector.sources.deadletter import REASONS
from detector.stats import RunStats
from tests.detector.sources_helpers import read
from tests.detector.sources_helpers import record as shared_record

NHI = Path(sys.executable).with_name("nhi-detector")


def record(index: int = 0, **extra: object) -> dict:
    """The shared test record with a version and two resources, as a trail delivers."""
    fields: dict[str, object] = {
        "eventVersion": "1.08",
        "resources": [{"ARN": "arn:aws:s3:::a"}, {"ARN": "arn:aws:s3:::b"}]}
    fields.update(extra)
    return shared_record(index, **fields)


def ids(count: int, *missing: int) -> list[str]:
    return [f"id-{i}" for i in range(count) if i not in missing]


def parse(data: bytes, **kwargs: object) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    if kwargs:
        parser = Parser(stats=stats, dead_letters=dead, **kwargs)  # type: ignore[arg-type]
        events = parser.feed(data, "f") + parser.finish()
    else:
        events = parse_payload(data, origin="f", stats=stats, dead_letters=dead)
    assert stats.balanced()
    assert sum(stats.records_read.values()) == len(events) + len(dead) + \
        sum(stats.skipped.values())
    return events, stats, dead


def where(dead: ListDeadLetters) -> list[tuple[str, str]]:
    return [(item["reason"], item["origin"]) for item in dead.items]


def one_line(parts: list[bytes]) -> bytes:
    return b'{"Records":[' + b",".join(parts) + b"]}"


def pretty(parts: list[bytes]) -> bytes:
    return b'{\n  "Records": [\n' + b",\n".join(parts) + b"\n  ]\n}\n"


def pretty_parts(count: int) -> list[bytes]:
    return [orjson.dumps(record(i), option=orjson.OPT_INDENT_2).replace(b"\n", b"\n    ")
            for i in range(count)]


@pytest.fixture()
def alarm() -> Iterator[None]:
    """Fail instead of hanging forever (a FIFO opened with no writer blocks)."""
    def fail(*_: object) -> None:
        raise TimeoutError("the reader blocked")
    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


class TestDeepNesting:
    """1. RecursionError (or any error) decoding one value is one dead letter."""

    @pytest.mark.parametrize("depth", [1_500, 100_000])
    def test_deep_arrays_are_one_dead_letter_and_the_next_file_is_read(
            self, tmp_path: Path, depth: int) -> None:
        (tmp_path / "a_deep.json").write_bytes(b"[" * depth)
        (tmp_path / "b_good.json").write_bytes(orjson.dumps({"Records": [record(1)]}))
        events, stats, dead = read([tmp_path])
        assert [e.event_id for e in events] == ["id-1"]
        assert where(dead) == [("invalid_json", f"{tmp_path}/a_deep.json[0]")]
        assert "nested too deeply" in dead.items[0]["message"]
        assert stats.files_read == 2

    def test_deep_value_between_pretty_records(self) -> None:
        good = [orjson.dumps(record(i), option=orjson.OPT_INDENT_2) for i in range(2)]
        deep = b'{"a": ' + b"[" * 5_000 + b"]" * 5_000 + b"}"
        events, _, dead = parse(good[0] + b"\n" + deep + b"\n" + good[1] + b"\n")
        assert [e.event_id for e in events] == ["id-0", "id-1"]
        assert where(dead) == [("invalid_json", "f#value[1]")]

    def test_deep_json_line(self) -> None:
        data = orjson.dumps(record(0)) + b"\n" + b'{"a":' + b"[" * 2_000 + b"\n" + \
            orjson.dumps(record(1)) + b"\n"
        events, _, dead = parse(data)
        assert [e.event_id for e in events] == ["id-0", "id-1"]
        assert where(dead) == [("truncated", "f:2")]

    @pytest.mark.parametrize(("broken", "reason"), [
        (b'{"eventName": "x", "eventTi', "truncated"),     # cut inside a key
        (b'{"eventName": "x", "eventTime": [1, 2', "truncated"),
        (b"{not json", "invalid_json"),                        # wrong from its second byte
        (b'{"eventName": "x",, "y": 1}', "invalid_json"),      # wrong before its end
        (b'{"eventName": "x"} trailing', "invalid_json"),
    ])
    def test_cut_records_are_told_from_malformed_ones(self, broken: bytes,
                                                      reason: str) -> None:
        """``truncated`` means the record is the start of JSON that stops early, whatever
        its last byte; anything that goes wrong before the end is ``invalid_json``. The same
        judgement holds for a JSON line, a CloudWatch Logs message and a whole document."""
        lines = orjson.dumps(record(0)) + b"\n" + broken + b"\n"
        _, _, dead = parse(lines)
        assert where(dead) == [(reason, "f:2")]
        message = {"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s",
                   "logEvents": [{"id": "1", "timestamp": 0, "message": broken.decode()}]}
        _, _, dead = parse(orjson.dumps(message))
        assert [item["reason"] for item in dead.items] == [reason]
        _, _, dead = parse(broken)  # a whole document: what comes before "trailing" is read
        assert dead.items[-1]["reason"] == reason

    def test_deep_records_envelopes_are_counted_not_recursed(self) -> None:
        nested = b'{"Records":[' * 400 + orjson.dumps(record(0)) + b"]}" * 400
        events, stats, dead = parse(nested)
        assert events == [] and where(dead) == [
            ("unknown_format", "f" + "#Records[0]" * 3)]
        assert stats.records_read == {"unknown": 1}

    def test_a_payload_that_fails_outside_any_record_is_one_dead_letter(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real = Parser._frame

        def frame(self: Parser, data: bytes, origin: str) -> None:
            real(self, data, origin)
            if origin.endswith("a_boom.json"):
                raise RuntimeError("a parser bug")
        monkeypatch.setattr(Parser, "_frame", frame)
        (tmp_path / "a_boom.json").write_bytes(orjson.dumps({"Records": [record(1)]}))
        (tmp_path / "b_good.json").write_bytes(orjson.dumps({"Records": [record(2)]}))
        events, _, dead = read([tmp_path])
        assert [e.event_id for e in events] == ["id-1", "id-2"]  # found before the failure
        assert where(dead) == [("internal_error", f"{tmp_path}/a_boom.json")]
        assert "RuntimeError" in dead.items[0]["message"]

    def test_a_failure_after_a_record_was_counted_is_its_sources_dead_letter(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A parser bug after a record was counted as read (here in the duplicate and
        time checks) is one dead letter under the record's source: it was counted a
        second time under ``unknown``, and neither source balanced."""
        def count_event(self: Parser, *_: object) -> None:
            raise RuntimeError("boom")
        monkeypatch.setattr(Parser, "_count_event", count_event)
        lines = b"\n".join(orjson.dumps(record(index)) for index in (1, 2))
        events, stats, dead = parse(lines)
        assert events == []
        assert stats.records_read == {"aws.cloudtrail": 2}
        assert stats.dead_letters == {("aws.cloudtrail", "internal_error"): 2}
        assert where(dead) == [("internal_error", "f:1"), ("internal_error", "f:2")]

    def test_a_file_whose_reading_fails_midway_is_one_dead_letter(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        def feed_stream(self: Parser, handle: object, origin: str, **_: object
                        ) -> Iterator[list]:
            yield []
            raise OSError(5, "Input/output error")
        monkeypatch.setattr(Parser, "feed_stream", feed_stream)
        monkeypatch.setattr("detector.sources._STREAM_THRESHOLD", 10)
        (tmp_path / "a_big.json").write_bytes(orjson.dumps({"Records": [record(1)]}))
        events, stats, dead = read([tmp_path, tmp_path / "a_big.json"])
        assert events == [] and stats.files_read == 2
        assert where(dead) == [("read_error", f"{tmp_path}/a_big.json")] * 2


    def test_a_file_above_the_stream_threshold_is_read_as_a_stream(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """JSON lines and a gzip file past the threshold give the same events as below it."""
        monkeypatch.setattr("detector.sources._STREAM_THRESHOLD", 10)
        lines = b"\n".join(orjson.dumps(record(index)) for index in (1, 2, 3)) + b"\n"
        (tmp_path / "a_big.jsonl").write_bytes(lines)
        (tmp_path / "b_big.json.gz").write_bytes(
            gzip.compress(orjson.dumps({"Records": [record(4)]})))
        events, stats, dead = read([tmp_path])
        assert [e.event_id for e in events] == ["id-1", "id-2", "id-3", "id-4"]
        assert stats.files_read == 2 and not dead.items

    def test_whole_file_read_takes_what_is_there_beyond_its_size(self) -> None:
        """A pipe says size 0 and a growing file more than fstat said: read to the end."""
        from detector.sources import _read_all

        reader, writer = os.pipe()
        payload = bytes(range(256)) * 1024  # 256 KiB: more than one pipe read

        def write() -> None:
            with open(writer, "wb") as handle:
                handle.write(payload)

        thread = threading.Thread(target=write)
        thread.start()
        try:
            assert _read_all(reader, 0) == payload
        finally:
            thread.join()
            os.close(reader)
        reader, writer = os.pipe()
        os.write(writer, b"0123456789")
        os.close(writer)
        try:
            assert _read_all(reader, 4) == b"0123456789"
            assert _read_all(reader, 4) == b""
        finally:
            os.close(reader)

class TestDirectoryWalk:
    """2 and 6. Only regular files are opened; whatever is not read is counted."""

    def test_fifo_is_a_dead_letter_and_never_opened(self, tmp_path: Path, alarm: None,
                                                    caplog) -> None:
        os.mkfifo(tmp_path / "a_pipe.json")
        (tmp_path / "b_good.json").write_bytes(orjson.dumps({"Records": [record(1)]}))
        with caplog.at_level("WARNING", logger="detector.sources.parser"):
            events, stats, dead = read([tmp_path])
        assert [e.event_id for e in events] == ["id-1"] and stats.files_read == 1
        assert where(dead) == [("read_error", f"{tmp_path}/a_pipe.json")]
        assert dead.items[0]["message"] == f"{REASONS['read_error']}: not a regular file"
        # said in the log too: without --dead-letters the summary had only a count
        assert caplog.messages == [f"{tmp_path}/a_pipe.json: {REASONS['read_error']}: not a "
                                   f"regular file"]

    def test_unlistable_directory_is_a_dead_letter(self, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        locked = tmp_path / "locked"
        locked.mkdir()
        (tmp_path / "good.json").write_bytes(orjson.dumps({"Records": [record(1)]}))
        real = os.scandir

        def scandir(path: object) -> object:
            if str(path) == str(locked):
                raise PermissionError(13, "Permission denied", str(path))
            return real(path)  # type: ignore[arg-type]
        monkeypatch.setattr(os, "scandir", scandir)
        events, _, dead = read([tmp_path])
        assert [e.event_id for e in events] == ["id-1"]
        assert where(dead) == [("read_error", str(locked))]
        assert dead.items[0]["message"] == (f"{REASONS['read_error']}: cannot list the "
                                            "directory: Permission denied")

    def test_files_not_read_are_counted(self, tmp_path: Path) -> None:
        (tmp_path / "README.md").write_text("# notes\n")
        (tmp_path / ".DS_Store").write_bytes(b"\x00\x01")
        (tmp_path / "real").mkdir()
        (tmp_path / "real" / "x.json").write_bytes(orjson.dumps({"Records": [record(1)]}))
        (tmp_path / "link").symlink_to(tmp_path / "real")
        (tmp_path / "dangling.json").symlink_to(tmp_path / "nowhere")
        events, stats, dead = read([tmp_path])
        assert [e.event_id for e in events] == ["id-1"]
        assert stats.skipped == {("unknown", "not_a_log_file"): 1,
                                 ("unknown", "hidden_file"): 1,
                                 ("unknown", "directory_link"): 1}
        assert where(dead) == [("read_error", f"{tmp_path}/dangling.json")]
        assert stats.records_read == {"unknown": 4, "aws.cloudtrail": 1}


class TestArraySalvage:
    """3. One bad element of a record array is one dead letter; the others are events."""

    @pytest.mark.parametrize("layout", [one_line, pretty])
    def test_truncated_record_50_of_100(self, layout: object) -> None:
        parts = [orjson.dumps(record(i)) for i in range(100)] if layout is one_line \
            else pretty_parts(100)
        parts[50] = parts[50][: len(parts[50]) // 2]
        events, stats, dead = parse(layout(parts))  # type: ignore[operator]
        assert [e.event_id for e in events] == ids(100, 50)
        assert where(dead) == [("truncated", "f#Records[50]")]
        assert stats.records_read == {"aws.cloudtrail": 99, "unknown": 1}

    @pytest.mark.parametrize("layout", [one_line, pretty])
    def test_one_invalid_utf8_byte_in_record_50(self, layout: object) -> None:
        parts = [orjson.dumps(record(i)) for i in range(100)] if layout is one_line \
            else pretty_parts(100)
        parts[50] = parts[50].replace(b"aws-cli/2.0", b"aws-cli/\xff2.0")
        events, _, dead = parse(layout(parts))  # type: ignore[operator]
        assert [e.event_id for e in events] == ids(100, 50)
        assert where(dead) == [("invalid_utf8", "f#Records[50]")]
        assert b"aws-cli/\xff2.0" in dead.items[0]["raw"].encode("utf-8", "replace") or \
            "aws-cli/\ufffd2.0" in dead.items[0]["raw"]

    def test_first_element_bad_and_garbage_between_elements(self) -> None:
        parts = [orjson.dumps(record(i)) for i in range(4)]
        parts[0] = parts[0][:40]
        parts[2] = parts[2].replace(b'"eventName"', b'"eventName" oops')
        events, _, dead = parse(one_line(parts))
        assert [e.event_id for e in events] == ["id-1", "id-3"]
        assert where(dead) == [("truncated", "f#Records[0]"), ("invalid_json", "f#Records[2]")]

    def test_document_cut_at_the_end(self) -> None:
        data = one_line([orjson.dumps(record(i)) for i in range(5)])
        events, _, dead = parse(data[:-300])
        assert [e.event_id for e in events] == ids(4)
        assert where(dead) == [("truncated", "f#Records[4]")]

    def test_top_level_array_and_azure_records(self) -> None:
        parts = [orjson.dumps(record(i)) for i in range(5)]
        parts[2] = parts[2][:60]
        events, _, dead = parse(b"[" + b",".join(parts) + b"]")
        assert [e.event_id for e in events] == ids(5, 2)
        assert where(dead) == [("truncated", "f[2]")]
        events, _, dead = parse(b'{"records": [' + b", ".join(parts) + b"]}")
        assert [e.event_id for e in events] == ids(5, 2)
        assert where(dead) == [("truncated", "f[2]")]

    def test_text_after_the_array_is_not_dropped(self) -> None:
        after = orjson.dumps(record(2), option=orjson.OPT_INDENT_2) + b"\n{\n  oops\n}\n"
        events, _, dead = parse(pretty(pretty_parts(2)) + after)
        assert [e.event_id for e in events] == ["id-0", "id-1", "id-2"]
        assert where(dead) == [("invalid_json", "f#value[1]")]

    def test_gzip_members_before_a_truncated_one_are_kept(self) -> None:
        first = gzip.compress(orjson.dumps({"Records": [record(0), record(1)]}) + b"\n")
        second = gzip.compress(orjson.dumps({"Records": [record(2)]}) + b"\n")
        events, stats, dead = parse(first + second[: len(second) // 2])
        assert [e.event_id for e in events] == ["id-0", "id-1"]
        assert where(dead) == [("truncated_gzip", "f")]
        assert "the 1 member(s) before it" in dead.items[0]["message"]
        assert stats.records_read == {"aws.cloudtrail": 2, "unknown": 1}

    def test_gzip_trailing_garbage_is_a_dead_letter(self) -> None:
        data = gzip.compress(orjson.dumps({"Records": [record(0)]})) + b"garbage"
        events, _, dead = parse(data)
        assert [e.event_id for e in events] == ["id-0"]
        assert where(dead) == [("bad_gzip", "f")]
        events, _, dead = parse(gzip.compress(orjson.dumps(record(1))) + b"\x00" * 512)
        assert [e.event_id for e in events] == ["id-1"] and len(dead) == 0


class TestLimits:
    """4 and 9. Size limits hold in every framing, without inflating a bomb in memory."""

    def test_gzip_bomb_is_refused_at_the_limit(self, tmp_path: Path) -> None:
        (tmp_path / "a_bomb.json.gz").write_bytes(gzip.compress(b" " * (8 * 1024 * 1024)))
        (tmp_path / "b_good.json.gz").write_bytes(
            gzip.compress(orjson.dumps({"Records": [record(1)]})))
        parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters(),
                        max_decompressed_bytes=1024 * 1024)
        events, _, dead = read([tmp_path], parser)
        assert [e.event_id for e in events] == ["id-1"]
        assert where(dead) == [("decompression_limit", f"{tmp_path}/a_bomb.json.gz")]
        assert "more than 1048576 bytes" in dead.items[0]["message"]

    def test_pretty_printed_record_over_the_limit(self) -> None:
        big = record(1, requestParameters={"policy": "x" * 50_000})
        text = b"\n".join(orjson.dumps(r, option=orjson.OPT_INDENT_2)
                          for r in (record(0), big, record(2)))
        events, _, dead = parse(text, max_record_bytes=10_000)
        assert [e.event_id for e in events] == ["id-0", "id-2"]
        assert where(dead) == [("oversized_record", "f#value[1]")]

    def test_salvaged_element_over_the_limit(self) -> None:
        parts = [orjson.dumps(record(i)) for i in range(3)]
        parts[1] = orjson.dumps(record(1, requestParameters={"p": "y" * 50_000}))
        events, _, dead = parse(one_line(parts) + b"x", max_record_bytes=10_000)
        assert [e.event_id for e in events] == ["id-0", "id-2"]
        # the stray "x" after the document is not a cut record: it never started as one
        assert where(dead) == [("oversized_record", "f#Records[1]"),
                               ("invalid_json", "f#value[0]")]


class TestStdin:
    """5. Closed stdin is a dead letter, not a traceback."""

    def test_closed_stdin_is_a_read_error(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sys, "stdin", None)
        events, stats, dead = read(["-"])
        assert events == [] and where(dead) == [("read_error", "<stdin>")]
        assert "stdin is closed" in dead.items[0]["message"]
        assert stats.files_read == 1

    def test_a_byte_order_mark_on_stdin_is_dropped_as_in_a_file(self) -> None:
        import io

        data = b"\xef\xbb\xbf" + b"\r\n".join(orjson.dumps(record(i)) for i in range(3))
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead)
        events = [e for batch in parser.feed_stream(io.BufferedReader(io.BytesIO(data)),
                                                    "<stdin>") for e in batch]
        assert [e.event_id for e in events] == ["id-0", "id-1", "id-2"]
        assert where(dead) == []
        file_events, _, file_dead = parse(data)
        assert [e.event_id for e in file_events] == ["id-0", "id-1", "id-2"]
        assert where(file_dead) == []

    @pytest.mark.skipif(not NHI.exists(), reason="console script not installed")
    def test_cli_with_closed_stdin(self) -> None:
        done = subprocess.run(["sh", "-c", f"'{NHI}' parse - <&-"], capture_output=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        assert b"Traceback" not in done.stderr and done.stdout == b""
        assert b"read_error" in done.stderr


class TestValues:
    """7, 8 and 10. Times, number literals and array elements are judged alike everywhere."""

    @pytest.mark.parametrize("when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                      "1969-12-31T23:59:59Z", "2101-01-01T00:00:00Z",
                                      "0001-01-01T00:00:00", 1e11, "9999-12-31T23:59:59Z",
                                      "1970-01-01T00:00:00Z", 0, "1999-12-31T23:59:59Z"])
    def test_times_outside_2000_2100_are_bad_time(self, when: object) -> None:
        # 1970-01-01 is an unset time or a zero epoch, not an audit record's time
        assert parse_time(when) is None
        events, _, dead = parse(orjson.dumps({"Records": [record(0, eventTime=when),
                                                          record(1)]}))
        assert [e.event_id for e in events] == ["id-1"]
        assert where(dead) == [("bad_time", "f#Records[0]")]

    def test_other_sources_refuse_out_of_range_times(self) -> None:
        k8s = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a",
               "stage": "ResponseComplete", "verb": "get", "user": {"username": "u"},
               "requestReceivedTimestamp": "9999-12-31T23:59:59-05:00"}
        gcp = {"insertId": "g", "timestamp": "0001-01-01T00:00:00+05:00",
               "protoPayload": {"authenticationInfo": {"principalEmail": "a@b.c"},
                                "methodName": "x.get", "serviceName": "x.googleapis.com"}}
        _, _, dead = parse(orjson.dumps(k8s) + b"\n" + orjson.dumps(gcp) + b"\n")
        assert where(dead) == [("bad_time", "f:1"), ("bad_time", "f:2")]

    @pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400",
                                         b"1" * 5_000])
    def test_number_literals_alike_in_json_lines_and_pretty_files(self, literal: bytes
                                                                  ) -> None:
        bad = b'{"eventName": "X", "n": ' + literal + b"}"
        lines = orjson.dumps(record(0)) + b"\n" + bad + b"\n" + orjson.dumps(record(1))
        events, _, dead = parse(lines)
        assert [e.event_id for e in events] == ["id-0", "id-1"]
        assert where(dead) == [("invalid_json", "f:2")]
        indented = b"\n".join([orjson.dumps(record(0), option=orjson.OPT_INDENT_2),
                               bad.replace(b", ", b",\n  "),
                               orjson.dumps(record(1), option=orjson.OPT_INDENT_2)])
        events, _, dead = parse(indented)
        assert [e.event_id for e in events] == ["id-0", "id-1"]
        assert where(dead) == [("invalid_json", "f#value[1]")]

    @pytest.mark.parametrize("odd", [[], ["AwsConsoleSignIn"], {}, {"a": 1}])
    def test_a_list_or_object_in_any_top_level_field_is_never_an_internal_error(
            self, odd: object) -> None:
        # a list or object used as a set member raised TypeError (unhashable): eventType
        # was looked up in a frozenset; every field of a trail record is tried, plus the
        # optional ones the parser reads
        fields = sorted(set(record(0)) | {"eventType", "eventCategory",
                                          "sessionCredentialFromConsole", "vpcEndpointId",
                                          "errorCode", "readOnly", "managementEvent"})
        records = [record(i, **{name: odd}) for i, name in enumerate(fields)]
        events, _, dead = parse(orjson.dumps({"Records": records}))
        assert [item["reason"] for item in dead.items if item["reason"] == "internal_error"] \
            == []
        assert len(events) + len(dead) == len(fields)
        assert len(events) >= len(fields) // 2  # most odd optional fields are ignored

    def test_every_records_element_is_counted(self) -> None:
        events, stats, dead = parse(b'{"Records":[1,"x",null,[]]}')
        assert events == [] and where(dead) == [
            ("unknown_format", f"f#Records[{i}]") for i in range(4)]
        assert stats.records_read == {"unknown": 4}
        _, stats, dead = parse(b'{"Records":[[1, 2], {"a": 1}]}', source="aws")
        assert [item["reason"] for item in dead.items] == ["unknown_format", "missing_time"]
        assert stats.records_read == {"aws.cloudtrail": 2}

    def test_empty_and_deep_arrays_inside_arrays_are_counted(self) -> None:
        events, stats, dead = parse(orjson.dumps([[], [[[[record(1)]]]], record(2)]))
        assert [e.event_id for e in events] == ["id-2"]
        assert where(dead) == [("unknown_format", "f[0]"),
                               ("unknown_format", "f[1][0][0][0]")]
        assert stats.records_read == {"unknown": 2, "aws.cloudtrail": 1}
        events, stats, dead = parse(orjson.dumps([[[record(3)]]]))
        assert [e.event_id for e in events] == ["id-3"] and len(dead) == 0
