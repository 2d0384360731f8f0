"""Bad input found by the breaker: one bad line, a cut gzip, an odd file name or a record of
another source is one dead letter with its reason, and every good record around it is kept.

Each test checks the exact events and dead letters (reason and position), and that the
counters balance (``records_read == events + dead_letters + skipped`` per source).
"""

from __future__ import annotations

import gzip
import io
import os
import random
from pathlib import Path

import orjson
import pytest

from detector.sources import JsonlDeadLetters, ListDeadLetters, Parser, read_paths
from detector.sources.deadletter import dead_letter_dict
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

    def test_a_nul_byte_in_one_record_of_a_records_document(self) -> None:
        bad = orjson.dumps(record(1, userAgent="a\x00b")).replace(b"\\u0000", b"\x00")
        body = b'{"Records": [' + b", ".join([lines(record(0))[0], bad, lines(record(2))[0]])
        events, _, dead = feed(body + b"]}")
        assert [event.event_id for event in events] == ["id-0", "id-2"]
        assert where(dead) == [("invalid_json", "m#Records[1]")]

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


class TestTruncatedGzip:
    """A gzip stream cut short keeps its whole JSON lines; the cut tail is one dead letter."""

    def test_whole_lines_before_the_cut_are_events(self) -> None:
        body = b"\n".join(lines(*(record(i) for i in range(50)))) + b"\n"
        packed = gzip.compress(body)
        events, stats, dead = feed(packed[:len(packed) * 3 // 4])
        assert dead.reasons() == ["truncated_gzip"]
        line = len(events) + 1
        assert [event.event_id for event in events] == [f"id-{i}" for i in range(line - 1)]
        assert 20 < len(events) < 50
        assert dead.items[0]["origin"] == f"m:{line}"
        assert dead.items[0]["raw"] == body.split(b"\n")[line - 1][:dead.items[0]["raw_size"]]\
            .decode()
        assert stats.records_read["unknown"] == 1

    def test_a_cut_second_member_keeps_the_first_and_its_own_whole_lines(self) -> None:
        first = gzip.compress(b"\n".join(lines(record(0), record(1))) + b"\n")
        second = gzip.compress(b"\n".join(lines(*(record(i) for i in range(2, 40)))) + b"\n")
        events, _, dead = feed(first + second[:-40])
        assert [event.event_id for event in events][:3] == ["id-0", "id-1", "id-2"]
        assert dead.reasons() == ["truncated_gzip"]
        assert dead.items[0]["origin"] == f"m:{len(events) + 1}"

    def test_a_cut_inside_the_first_line_is_one_dead_letter(self) -> None:
        packed = gzip.compress(orjson.dumps(record(0, requestParameters={"k": "v" * 4000})))
        events, _, dead = feed(packed[:len(packed) // 2])
        assert events == [] and where(dead) == [("truncated_gzip", "m")]

    def test_a_record_array_cut_in_its_first_record_is_not_parsed(self) -> None:
        packed = gzip.compress(orjson.dumps({"Records": [record(i) for i in range(50)]}))
        events, _, dead = feed(packed[:len(packed) // 2])  # 271 bytes come out: no record
        assert events == [] and where(dead) == [("truncated_gzip", "m")]
        assert dead.items[0]["message"].endswith("not parsed: only whole JSON lines are kept "
                                                 "from a cut stream)")

    @pytest.mark.parametrize("kept", [0.5, 0.8, 0.97])
    def test_a_cut_delivery_file_keeps_its_whole_records(self, kept: float) -> None:
        """An S3 delivery file cut short (a download, a copy) is one dead letter and its
        whole records, as a cut JSON-lines file keeps its whole lines; it used to be only
        the dead letter. Records of varied sizes, so the cut falls inside one."""
        rng = random.Random(7)
        records = [record(i, requestParameters={"bucketName": f"b{i}",
                                                "key": "k" * rng.randint(10, 2000)})
                   for i in range(60)]
        packed = gzip.compress(orjson.dumps({"Records": records}))
        events, stats, dead = feed(packed[:int(len(packed) * kept)])
        ids = [event.event_id for event in events]
        assert 0 < len(ids) < 60 and ids == [f"id-{i}" for i in range(len(ids))]
        assert where(dead) == [("truncated_gzip", "m")]
        assert dead.items[0]["message"].endswith("the whole records before the cut are "
                                                 "parsed, the cut one is not)")
        assert dead.items[0]["raw"].startswith(',{"eventTime"')  # the cut record
        assert stats.records_read == {"aws.cloudtrail": len(ids), "unknown": 1}

    def test_a_delivery_file_cut_in_its_trailer_keeps_every_record(self) -> None:
        packed = gzip.compress(orjson.dumps({"Records": [record(i) for i in range(50)]}))
        events, _, dead = feed(packed[:-5])
        assert len(events) == 50 and where(dead) == [("truncated_gzip", "m")]
        assert "a whole document: its records are parsed" in dead.items[0]["message"]


class TestFileNameNotUtf8:
    """A file name that is not UTF-8 reaches the dead letters in backslash form."""

    def test_dead_letter_file_gets_the_escaped_name(self, tmp_path: Path) -> None:
        folder = os.fsencode(tmp_path)
        with open(folder + b"/caf\xe9.jsonl", "wb") as handle:
            handle.write(b"not json\n" + lines(record(0))[0] + b"\n")
        sink = JsonlDeadLetters(tmp_path / "dead.jsonl")
        stats = RunStats()
        events = list(read_paths([str(tmp_path)], stats=stats, dead_letters=sink))
        sink.close()
        assert [event.event_id for event in events] == ["id-0"]
        written = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes()
                   .splitlines()]
        assert [(item["reason"], item["origin"]) for item in written] == [
            ("invalid_json", f"{tmp_path}/caf\\xe9.jsonl:1")]

    def test_message_and_origin_are_escaped_and_valid_text_is_kept(self) -> None:
        entry = dead_letter_dict("read_error", "cannot open \udcff", "d/\udcffé", None, "unknown")
        assert (entry["message"], entry["origin"]) == ("cannot open \\xff", "d/\\xffé")
        assert dead_letter_dict("binary", "m", "é", None, "unknown")["origin"] == "é"


# One small record of each supported shape besides CloudTrail's.
SA = "sa@p.iam.gserviceaccount.com"
GCP = {"protoPayload": {"serviceName": "iamcredentials.googleapis.com",
                        "methodName": "GenerateAccessToken",
                        "authenticationInfo": {"principalEmail": SA}},
       "timestamp": "2024-03-04T10:00:00Z", "logName": "projects/p/logs/x"}
GKE = {"protoPayload": {"serviceName": "k8s.io", "methodName": "io.k8s.core.v1.pods.list",
                        "authenticationInfo": {"principalEmail": SA}},
       "timestamp": "2024-03-04T10:00:00Z", "resource": {"type": "k8s_cluster"}}
K8S = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": "list",
       "stage": "ResponseComplete", "auditID": "a-1",
       "user": {"username": "system:serviceaccount:ns:bot"},
       "requestReceivedTimestamp": "2024-03-04T10:00:00Z", "objectRef": {"resource": "pods"}}
AZURE = {"time": "2024-03-04T10:00:00Z", "operationName": "MICROSOFT.STORAGE/X/READ",
         "category": "Administrative", "resourceId": "/subscriptions/s/x",
         "identity": {"claims": {"appid": "11111111-1111-1111-1111-111111111111"}}}


class TestForcedSource:
    """Under ``--source``, a record of another supported format is a ``wrong_source`` dead
    letter, never an event of the forced source."""

    def test_azure_does_not_read_cloudtrail(self) -> None:
        events, stats, dead = feed(b"\n".join(lines(record(0), AZURE)), source="azure")
        assert [event.source for event in events] == ["azure.activity"]
        assert where(dead) == [("wrong_source", "m:1")]
        assert dead.items[0]["message"].endswith("looks like aws.cloudtrail, not azure")
        assert stats.dead_letters == {("unknown", "wrong_source"): 1}

    def test_k8s_does_not_read_a_gcp_log_entry_but_reads_gke(self) -> None:
        events, stats, dead = feed(b"\n".join(lines(GCP, GKE, K8S, record(0))), source="k8s")
        assert [event.source for event in events] == ["k8s.audit", "k8s.audit"]
        assert where(dead) == [("wrong_source", "m:1"), ("wrong_source", "m:4")]
        assert stats.dead_letters == {("k8s.audit", "wrong_source"): 2}
        assert stats.records_read["k8s.audit"] == 4

    def test_every_forced_source_refuses_the_other_shapes(self) -> None:
        shapes = {"aws": record(0), "gcp": GCP, "k8s": K8S, "azure.activity": AZURE}
        for forced, own in shapes.items():
            others = [value for name, value in shapes.items() if name != forced]
            events, _, dead = feed(b"\n".join(lines(own, *others)), source=forced)
            assert len(events) == 1, forced
            assert dead.reasons() == ["wrong_source"] * 3, forced

    def test_a_record_of_no_known_shape_is_still_read_as_the_forced_source(self) -> None:
        _, stats, dead = feed(b'{"a": 1}', source="aws")
        assert where(dead) == [("missing_time", "m")]
        assert stats.records_read == {"aws.cloudtrail": 1}


class TestStreams:
    """A stream (stdin, a file over the streaming threshold) with a bad first line is still
    read line by line, not swallowed whole."""

    def test_a_header_line_does_not_stop_line_streaming(self) -> None:
        data = b"\n".join([b"# header"] + lines(*(record(i) for i in range(7)))) + b"\n"
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead)
        batches = list(parser.feed_stream(io.BufferedReader(io.BytesIO(data)), "s",
                                          chunk_lines=3))
        assert [len(batch) for batch in batches] == [2, 3, 2]
        assert where(dead) == [("invalid_json", "s:1")]

    def test_a_document_is_still_read_whole(self) -> None:
        data = orjson.dumps({"Records": [record(0), record(1)]}, option=orjson.OPT_INDENT_2)
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead)
        batches = list(parser.feed_stream(io.BufferedReader(io.BytesIO(data)), "s",
                                          chunk_lines=3))
        assert [[event.event_id for event in batch] for batch in batches] == [["id-0", "id-1"]]
        assert len(dead) == 0
