"""Framing and bad input: every bad record is one clear dead letter and the run goes on."""

from __future__ import annotations

import gzip
import io
import platform
import struct
import sys
import zlib
from pathlib import Path

import orjson
import pytest

from detector.sources import JsonlDeadLetters, ListDeadLetters, Parser, parse_payload
from detector.sources import parser as parser_module
from detector.sources.deadletter import MAX_RAW_BYTES, REASONS
from detector.stats import RunStats
from tests.detector.sources_helpers import read, record


def good_file(path: Path, count: int = 2) -> Path:
    path.write_bytes(orjson.dumps({"Records": [record(i) for i in range(count)]}))
    return path


class TestBadInput:
    def test_each_bad_file_is_one_clear_dead_letter_and_the_run_continues(
            self, tmp_path: Path) -> None:
        complete = gzip.compress(orjson.dumps({"Records": [record(i) for i in range(50)]}))
        (tmp_path / "a_truncated.json.gz").write_bytes(complete[: len(complete) // 2])
        (tmp_path / "b_binary.json").write_bytes(bytes(range(256)) * 8)
        (tmp_path / "c_empty.json").write_bytes(b"")
        (tmp_path / "d_invalid_utf8.jsonl").write_bytes(
            orjson.dumps(record(101)) + b"\n" + b'{"eventName": "\xff\xfe"}\n'
            + orjson.dumps(record(102)) + b"\n")
        good_file(tmp_path / "e_good.json")
        events, stats, dead = read([tmp_path])
        assert dead.reasons() == ["truncated_gzip", "binary", "empty_file", "invalid_utf8"]
        assert [item["message"].split(" (")[0].split(":")[0] for item in dead.items] == [
            REASONS["truncated_gzip"], REASONS["binary"], REASONS["empty_file"],
            REASONS["invalid_utf8"]]
        assert dead.items[3]["origin"] == f"{tmp_path}/d_invalid_utf8.jsonl:2"
        assert len(events) == 4
        assert stats.files_read == 5
        assert stats.records_read == {"unknown": 4, "aws.cloudtrail": 4}

    def test_50_mb_record_is_refused_without_parsing(self, tmp_path: Path) -> None:
        huge = orjson.dumps(record(9, requestParameters={"policy": "x" * (50 * 1024 * 1024)}))
        path = tmp_path / "big.jsonl"
        path.write_bytes(orjson.dumps(record(1)) + b"\n" + huge + b"\n"
                         + orjson.dumps(record(2)) + b"\n")
        events, stats, dead = read([path])
        assert dead.reasons() == ["oversized_record"]
        assert dead.items[0]["origin"] == f"{path}:2"
        assert dead.items[0]["raw_size"] <= MAX_RAW_BYTES
        assert [e.event_id for e in events] == ["id-1", "id-2"]

    def test_single_50_mb_document_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "one.json"
        path.write_bytes(orjson.dumps(record(9, requestParameters={"p": "y" * 50_000_000})))
        events, _, dead = read([path])
        assert events == [] and dead.reasons() == ["oversized_record"]

    def test_records_missing_identity_or_time(self) -> None:
        records = [record(1), record(2, userIdentity={"type": "Unknown"}, eventSource=None),
                   {k: v for k, v in record(3).items() if k != "eventTime"},
                   record(4, eventTime="redacted"), record(5)]
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(orjson.dumps({"Records": records}), origin="s3://b/k",
                               stats=stats, dead_letters=dead)
        assert dead.reasons() == ["missing_identity", "missing_time", "bad_time"]
        assert [item["origin"] for item in dead.items] == [
            "s3://b/k#Records[1]", "s3://b/k#Records[2]", "s3://b/k#Records[3]"]
        assert [e.event_id for e in events] == ["id-1", "id-5"]
        assert stats.account("aws.cloudtrail") == {"records_read": 5, "events": 2,
                                                   "dead_letters": 3, "skipped": 0}

    def test_text_that_is_not_json(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        parse_payload(b"eventTime,eventName\n2024,ListBuckets\n", origin="x.csv",
                      stats=stats, dead_letters=dead)
        assert dead.reasons() == ["unknown_format"]
        assert stats.balanced()

    def test_corrupt_gzip(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        parse_payload(b"\x1f\x8b\x08\x00garbage-garbage", origin="x.gz", stats=stats,
                      dead_letters=dead)
        assert dead.reasons() == ["bad_gzip"]

    def test_missing_path(self, tmp_path: Path) -> None:
        events, _, dead = read([tmp_path / "nope.json", good_file(tmp_path / "ok.json")])
        assert dead.reasons() == ["read_error"] and len(events) == 2

    def test_non_object_records(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        parse_payload(b'[1, "two", null, {"kind": 0}]', origin="x", stats=stats,
                      dead_letters=dead)
        assert dead.reasons() == ["unknown_format"] * 4
        assert stats.records_read == {"unknown": 4}


    @pytest.mark.parametrize("junk", [bytes(range(256)) * 8, b"\x00\x01\x02 text\n" * 40],
                             ids=["mostly-control-bytes", "nul-bytes"])
    def test_records_batched_with_binary_lines_survive(self, junk: bytes) -> None:
        # A Kafka message may batch records with the lines of a binary file: the records
        # are kept, each run of binary lines is one dead letter naming its lines.
        good = [orjson.dumps(record(i)) for i in range(3)]
        junk = junk.rstrip(b"\n")
        data = junk + b"\n" + good[0] + b"\n" + junk + b"\n" + b"\n".join(good[1:]) + b"\n"
        dead, stats = ListDeadLetters(), RunStats()
        events = parse_payload(data, origin="raw[0]@7", stats=stats, dead_letters=dead)
        assert [e.event_id for e in events] == ["id-0", "id-1", "id-2"]
        assert set(dead.reasons()) == {"binary"}
        lines = data.split(b"\n")
        first = next(i for i, line in enumerate(lines, 1) if line == good[0])
        assert dead.items[0]["origin"] == f"raw[0]@7:1-{first - 1}"
        assert dead.items[0]["message"] == f"{REASONS['binary']} ({first - 1} lines)"
        assert dead.items[1]["origin"] == f"raw[0]@7:{first + 1}-{lines.index(good[1])}"

    def test_binary_without_records_stays_one_dead_letter(self) -> None:
        dead, stats = ListDeadLetters(), RunStats()
        data = (bytes(range(256)) * 8 + b"\n") * 5
        events = parse_payload(data, origin="f", stats=stats, dead_letters=dead)
        assert (events, dead.reasons(), dead.items[0]["origin"]) == ([], ["binary"], "f")

    def test_invalid_utf8_names_the_byte_not_the_decoder(self) -> None:
        dead, stats = ListDeadLetters(), RunStats()
        parse_payload(b'{"eventName": "a\xff"}\n', origin="f", stats=stats,
                      dead_letters=dead)
        assert dead.items[0]["message"] == (f"{REASONS['invalid_utf8']} "
                                            "(byte 16 of the record is 0xff)")


class TestFraming:
    def test_gzip_is_sniffed_not_named(self, tmp_path: Path) -> None:
        path = tmp_path / "plain-name.json"
        path.write_bytes(gzip.compress(orjson.dumps({"Records": [record(1)]})))
        events, stats, _ = read([path])
        assert [e.event_id for e in events] == ["id-1"]
        assert stats.bytes_read > path.stat().st_size

    def test_pretty_printed_values_without_commas(self) -> None:
        text = (orjson.dumps(record(1), option=orjson.OPT_INDENT_2) + b"\n"
                + orjson.dumps(record(2), option=orjson.OPT_INDENT_2) + b"\n")
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(text, origin="x", stats=stats, dead_letters=dead)
        assert [e.event_id for e in events] == ["id-1", "id-2"] and len(dead) == 0

    def test_bad_value_between_good_pretty_values(self) -> None:
        good = orjson.dumps(record(1), option=orjson.OPT_INDENT_2)
        text = good + b"\n{\n  \"eventName\": oops\n}\n" + \
            orjson.dumps(record(2), option=orjson.OPT_INDENT_2)
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(text, origin="x", stats=stats, dead_letters=dead)
        assert [e.event_id for e in events] == ["id-1", "id-2"]
        assert dead.reasons() == ["invalid_json"]
        assert stats.balanced()

    def test_json_lines_with_a_broken_line(self) -> None:
        data = orjson.dumps(record(1)) + b"\n" + b'{"eventName": "x", "even' + b"\n" + \
            orjson.dumps(record(2)) + b"\n\n"
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(data, origin="f", stats=stats, dead_letters=dead)
        assert [e.event_id for e in events] == ["id-1", "id-2"]
        assert dead.reasons() == ["truncated"] and dead.items[0]["origin"] == "f:2"

    def test_sqs_body_string_with_eventbridge_inside(self) -> None:
        bridge = {"detail-type": "AWS API Call via CloudTrail", "detail": record(3)}
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(orjson.dumps({"Body": orjson.dumps(bridge).decode()}),
                               origin="sqs", stats=stats, dead_letters=dead)
        assert [e.event_id for e in events] == ["id-3"]

    def test_directory_recursion_skips_non_json(self, tmp_path: Path) -> None:
        (tmp_path / "sub").mkdir()
        good_file(tmp_path / "sub" / "x.log")
        (tmp_path / "README.md").write_text("# not a log\n")
        (tmp_path / "LICENSE").write_text("license text\n")
        (tmp_path / "noext").write_bytes(orjson.dumps(record(7)))
        events, stats, dead = read([tmp_path])
        assert sorted(e.event_id for e in events) == ["id-0", "id-1", "id-7"]
        assert stats.files_read == 2 and len(dead) == 0

    def test_stdin_streams_json_lines(self, monkeypatch: pytest.MonkeyPatch) -> None:
        data = b"".join(orjson.dumps(record(i)) + b"\n" for i in range(12))
        fake = io.TextIOWrapper(io.BufferedReader(io.BytesIO(data)))
        monkeypatch.setattr(sys, "stdin", fake)
        events, stats, _ = read(["-"])
        assert [e.event_id for e in events] == [f"id-{i}" for i in range(12)]
        assert stats.records_read == {"aws.cloudtrail": 12}

    def test_feed_stream_yields_in_chunks(self) -> None:
        data = b"".join(orjson.dumps(record(i)) + b"\n" for i in range(7))
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead)
        batches = list(parser.feed_stream(io.BufferedReader(io.BytesIO(data)), "s",
                                          chunk_lines=3))
        assert [len(batch) for batch in batches] == [3, 3, 1]

    def test_forced_source(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        gcp_like = {"protoPayload": {"authenticationInfo": {"principalEmail": "a@b.c"}},
                    "timestamp": "2024-03-04T10:00:00Z"}
        events = parse_payload(orjson.dumps([record(1), gcp_like]), origin="x",
                               source="aws", stats=stats, dead_letters=dead)
        assert [e.source for e in events] == ["aws.cloudtrail"]
        assert dead.reasons() == ["wrong_source"]  # a GCP LogEntry is not read as CloudTrail
        with pytest.raises(ValueError, match="unknown source 'nope'"):
            Parser(stats=stats, dead_letters=dead, source="nope")


class TestDeadLetterSinks:
    def test_jsonl_sink_writes_one_line_per_record(self, tmp_path: Path) -> None:
        target = tmp_path / "out" / "dead.jsonl"
        with JsonlDeadLetters(target) as sink:
            sink.write("invalid_json", "record is not valid JSON", "f:3", b"{oops", "unknown")
            sink.write("oversized_record", "too big", "f:4", b"x" * (MAX_RAW_BYTES + 10),
                       "aws.cloudtrail")
        lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
        assert lines[0] == {"reason": "invalid_json", "message": "record is not valid JSON",
                            "origin": "f:3", "source": "unknown", "raw_size": 5,
                            "raw": "{oops"}
        assert lines[1]["raw_truncated"] is True
        assert lines[1]["raw_size"] == MAX_RAW_BYTES + 10
        assert len(lines[1]["raw"]) == MAX_RAW_BYTES
        assert len(lines[1]["raw_sha256"]) == 64

    def test_reasons_have_one_message_each(self) -> None:
        assert len(set(REASONS.values())) == len(REASONS)
        assert all(reason == reason.lower() and " " not in reason for reason in REASONS)


def test_records_mixing_fast_path_and_other_shapes_are_counted_once() -> None:
    gcp_entry = {"protoPayload": {"authenticationInfo": {"principalEmail": "a@p.iam."
                                                         "gserviceaccount.com"},
                                  "methodName": "x.get", "serviceName": "x.googleapis.com"},
                 "timestamp": "2024-03-04T10:00:00Z", "insertId": "g1"}
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps({"Records": [record(1), gcp_entry, record(2)]}),
                           origin="x", stats=stats, dead_letters=dead)
    assert [e.event_id for e in events] == ["id-1", "g1", "id-2"]
    assert stats.events == {"aws.cloudtrail": 2, "gcp.audit": 1}
    assert stats.events_by_kind == {"workload": 3}
    assert stats.balanced()


def test_json_lines_whose_first_line_is_broken() -> None:
    data = b'{"eventName": "cut' + b"\n" + orjson.dumps(record(1)) + b"\n" + \
        orjson.dumps(record(2)) + b"\n"
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(data, origin="f", stats=stats, dead_letters=dead)
    assert [e.event_id for e in events] == ["id-1", "id-2"]
    assert [(d["reason"], d["origin"]) for d in dead.items] == [("truncated", "f:1")]


def _parse_everything(data: bytes, source: str | None = None) -> tuple[list, dict, list]:
    """Events, counters (in their insertion order) and dead letters of one payload."""
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(data, origin="big", source=source, stats=stats, dead_letters=dead)
    counters = {name: list(value.items()) if isinstance(value, dict) else value
                for name, value in vars(stats).items()}
    return [event.to_dict() for event in events], counters, dead.items


class TestSlicedRecords:
    """A large ``{"Records":[...]}`` file is decoded in slices; nothing may differ from
    decoding it whole (``MIN_SLICED_BYTES`` set past the file's size)."""

    @pytest.fixture(autouse=True)
    def small_slices(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(parser_module, "SLICE_BYTES", 2048)
        monkeypatch.setattr(parser_module, "MIN_SLICED_BYTES", 8192)

    def _both_ways(self, data: bytes, monkeypatch: pytest.MonkeyPatch,
                   source: str | None = None) -> tuple[tuple, tuple]:
        sliced = _parse_everything(data, source)
        monkeypatch.setattr(parser_module, "MIN_SLICED_BYTES", len(data) + 1)
        return sliced, _parse_everything(data, source)

    @staticmethod
    def _document(items: list) -> bytes:
        return b'{"Records":[' + b",".join(orjson.dumps(item) for item in items) + b"]}\n"

    def test_slices_give_what_the_whole_document_gives(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        items: list = [record(i, eventTime=f"2024-03-04T10:{i % 60:02d}:00Z")
                       for i in range(120)]
        items[30:30] = [1, [2], None, {"eventName": "NoTime", "eventSource": "s3"}]
        items.append(record(5, eventTime="2024-03-04T10:05:00Z"))  # delivered twice
        data = self._document(items)
        slices = parser_module._record_slices(data)
        assert slices is not None and len(slices) > 4
        assert all(parser_module._decode_slice(data, *span) is not None for span in slices)
        sliced, whole = self._both_ways(data, monkeypatch)
        assert sliced == whole
        events, counters, dead = sliced
        assert len(events) == 120 and [d["origin"] for d in dead][:3] == [
            "big#Records[30]", "big#Records[31]", "big#Records[32]"]
        assert dict(counters["skipped"]) == {("aws.cloudtrail", "duplicate_event"): 1}

    def test_forced_other_source_is_dead_lettered_alike(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        data = self._document([record(i) for i in range(60)])
        sliced, whole = self._both_ways(data, monkeypatch, source="gcp")
        assert sliced == whole
        assert {d["reason"] for d in sliced[2]} == {"wrong_source"} and len(sliced[2]) == 60

    @pytest.mark.parametrize("broken", [
        b'{"eventName":"cut', b'{"eventTime":"x","p":[{"eventTime":1},{"eventTime":2}]}',
        b'{"eventTime":"x","s":"},{\\"eventTime\\":"}'])
    def test_a_bad_or_misleading_record_in_the_middle(
            self, broken: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
        head = self._document([record(i) for i in range(40)])[:-3]
        tail = self._document([record(i) for i in range(40, 80)])[len(b'{"Records":'):]
        data = head + b"," + broken + b"," + tail[1:]
        sliced, whole = self._both_ways(data, monkeypatch)
        assert sliced == whole
        assert len(sliced[0]) == 80

    def test_nesting_limit_is_the_same_as_in_the_whole_document(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        for depth, decodes in ((1021, True), (1022, False)):
            deep = dict(record(999), p="@")
            nested = orjson.dumps(deep).replace(b'"@"', b"[" * depth + b"]" * depth)
            head = self._document([record(i) for i in range(60)])[:-3]
            data = head + b"," + nested + b"]}"
            sliced, whole = self._both_ways(data, monkeypatch)
            assert sliced == whole
            assert ("id-999" in [e["event_id"] for e in sliced[0]]) is decodes

    def test_decode_slice_takes_only_one_list_of_values(self) -> None:
        decode = parser_module._decode_slice
        assert decode(b'{"a":1},{"b":2}', 0, 15) == [{"a": 1}, {"b": 2}]
        assert decode(b"1],[2", 0, 5) is None
        assert decode(b'{"a":"cut', 0, 9) is None


def _gzip_shapes() -> dict[str, bytes]:
    """One input of each gzip shape the parser judges: whole, several members, cut,
    corrupt inside, a bad checksum, trailing bytes, zero padding, JSON lines cut."""
    doc = gzip.compress(orjson.dumps({"Records": [record(i) for i in range(40)]}))
    lines = gzip.compress(b"".join(orjson.dumps(record(i)) + b"\n" for i in range(40, 80)))
    more = gzip.compress(b"".join(orjson.dumps(record(i)) + b"\n" for i in range(80, 90)))
    flipped = bytearray(doc)
    flipped[len(doc) // 2] ^= 0xFF
    bad_crc = bytearray(doc)
    bad_crc[-6] ^= 0xFF
    reserved = bytearray(doc)
    reserved[3] |= 0x40  # a reserved header flag: zlib refuses the file, ISA-L did not
    return {"whole": doc, "members": lines + more, "cut": doc[: len(doc) // 2],
            "reserved_flag": bytes(reserved),
            "corrupt": bytes(flipped), "bad_crc": bytes(bad_crc), "trailing": doc + b"junk",
            "padded": doc + b"\x00" * 16, "lines_cut": lines[: len(lines) - 30]}


def _parsed(shape: bytes) -> tuple[list[tuple], list[tuple]]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(shape, origin="x.json.gz", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return ([(e.event_id, e.ts, e.action) for e in events],
            [(item["reason"], item["message"]) for item in dead.items])


class TestFastInflate:
    """The first inflate of a gzip input is ISA-L's where installed; what comes out
    (events, dead letters and their messages) is what zlib alone gives."""

    def test_isal_inflates_where_its_wheel_is_a_dependency(self) -> None:
        if platform.machine() not in ("x86_64", "AMD64", "aarch64", "arm64"):
            pytest.skip("isal is a dependency on x86-64 and ARM64 only")
        from isal import isal_zlib
        assert parser_module._fast_inflater is isal_zlib.decompressobj

    def test_a_whole_member_takes_one_fast_inflate(self,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        made: list[int] = []
        original = parser_module._fast_inflater

        def counted(wbits: int) -> object:
            made.append(wbits)
            return original(wbits=wbits)

        monkeypatch.setattr(parser_module, "_fast_inflater", counted)
        events, dead = _parsed(_gzip_shapes()["whole"])
        assert made == [47] and len(events) == 40 and dead == []

    @pytest.mark.parametrize("name", sorted(_gzip_shapes()))
    def test_every_shape_reads_as_with_zlib(self, name: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        shape = _gzip_shapes()[name]
        fast = _parsed(shape)
        monkeypatch.setattr(parser_module, "_fast_inflater", zlib.decompressobj)
        assert fast == _parsed(shape)
        events, dead = fast
        reasons = [reason for reason, _ in dead]
        if name == "lines_cut":  # the whole lines before the cut, and the cut one dead
            assert 0 < len(events) < 40 and reasons == ["truncated_gzip"]
            assert f"the cut line {len(events) + 1} of" in dead[0][1]
            return
        assert len(events) == {"whole": 40, "members": 50, "padded": 40,
                               "trailing": 40}.get(name, 0)
        assert reasons == {"cut": ["truncated_gzip"], "corrupt": ["bad_gzip"],
                           "reserved_flag": ["bad_gzip"],
                           "bad_crc": ["bad_gzip"], "trailing": ["bad_gzip"]}.get(name, [])

    def test_an_incomplete_huffman_code_is_read_where_isal_inflates(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The one documented difference: no compressor writes a deflate block whose code
        lengths leave codes unused, zlib refuses one, ISA-L reads it (the gzip CRC and
        length of what it read still match)."""
        pytest.importorskip("isal")
        content = orjson.dumps({"Records": [record(i) for i in range(5)]})
        member = _incomplete_code_member(content)
        events, dead = _parsed(member)
        assert len(events) == 5 and dead == []
        monkeypatch.setattr(parser_module, "_fast_inflater", zlib.decompressobj)
        events, dead = _parsed(member)
        assert events == [] and [reason for reason, _ in dead] == ["bad_gzip"]
        assert "invalid literal/lengths set" in dead[0][1]


def _incomplete_code_member(content: bytes) -> bytes:
    """A gzip member of one dynamic deflate block whose literal/length code gives the 256
    byte values and end-of-block 9 bits each: 257 of the 512 codes of that length, an
    incomplete code. Symbol ``s``'s code is ``s`` itself, sent most significant bit first."""
    bits: list[int] = []

    def put(value: int, count: int) -> None:  # deflate's header fields: LSB first
        bits.extend((value >> i) & 1 for i in range(count))

    put(1, 1)  # the final block
    put(2, 2)  # Huffman codes sent in the block
    put(286 - 257, 5)  # code lengths for 286 literal/length symbols,
    put(0, 5)  # one distance symbol,
    put(19 - 4, 4)  # and all 19 code length symbols
    for symbol in (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15):
        put(1 if symbol in (0, 9) else 0, 3)  # lengths 0 and 9 get one-bit codes: 0, 1
    bits.extend([1] * 257 + [0] * 30)  # symbols 0..256 of length 9, the rest (and the
    # distance symbol) unused
    for symbol in [*content, 256]:
        bits.extend((symbol >> i) & 1 for i in range(8, -1, -1))
    bits.extend([0] * (-len(bits) % 8))
    deflated = bytes(sum(bits[i + j] << j for j in range(8)) for i in range(0, len(bits), 8))
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + deflated + struct.pack("<II", zlib.crc32(content), len(content))


class TestNestedCompression:
    """Input compressed more than once is read through each layer (up to three)."""

    @staticmethod
    def _read(data: bytes) -> tuple[int, list[tuple[str, str]]]:
        events, dead = _parsed(data)
        return len(events), dead

    @pytest.mark.parametrize("inner", ["gzip", "bzip2", "utf16", "gzip_twice"])
    def test_each_layer_is_read(self, inner: str) -> None:
        import bz2

        doc = orjson.dumps({"Records": [record(i) for i in range(5)]})
        wrapped = {"gzip": gzip.compress(doc), "bzip2": bz2.compress(doc),
                   "utf16": doc.decode().encode("utf-16"),
                   "gzip_twice": gzip.compress(gzip.compress(doc))}[inner]
        assert self._read(gzip.compress(wrapped)) == (5, [])

    def test_cloudwatch_logs_data_compressed_again_by_firehose(self) -> None:
        """Subscription data (one gzip member per delivery) that Firehose gzips again."""
        def message(first: int) -> bytes:
            events = [{"id": str(i), "timestamp": 1_709_546_400_000,
                       "message": orjson.dumps(record(i)).decode()}
                      for i in range(first, first + 3)]
            return gzip.compress(orjson.dumps({
                "messageType": "DATA_MESSAGE", "owner": "123456789012",
                "logGroup": "aws-cloudtrail-logs", "logStream": "123_CloudTrail_us-east-1",
                "subscriptionFilters": ["all"], "logEvents": events}))

        assert self._read(gzip.compress(message(0) + message(3))) == (6, [])

    def test_a_fourth_layer_is_one_clear_dead_letter(self) -> None:
        data = orjson.dumps({"Records": [record(0)]})
        for _ in range(4):
            data = gzip.compress(data)
        count, dead = self._read(data)
        message = "input is still gzip after 3 layers of decompression; not read further"
        assert count == 0 and dead == [("unknown_format", message)]


def test_a_member_cut_at_a_line_end_says_every_line_was_parsed() -> None:
    """Cut in its trailer (or right after a newline): no line is cut, and the dead letter
    says so instead of naming an empty "cut line"."""
    content = b"".join(orjson.dumps(record(i)) + b"\n" for i in range(5))
    member = gzip.compress(content)
    for cut in (8, 4, 1):  # the trailer wholly or partly missing
        events, dead = _parsed(member[:-cut])
        assert len(events) == 5 and [reason for reason, _ in dead] == ["truncated_gzip"]
        assert "its 5 lines are parsed; what followed them, and the CRC" in dead[0][1]
        assert "cut line" not in dead[0][1]
