"""Inputs of trial 9 (items 4, 9, 10, 13): CloudTrail Lake results in every shape the
service hands out, bzip2/xz/zstd and UTF-16 files, exports no source reads (BigQuery rows,
Log Analytics CSV) and a symbolic link loop named on the command line.

The CloudTrail records are the replay data's own delivery files (full records as
CloudTrail writes them); every export below is made from them, and must give the events
the delivery file gives."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import logging
import lzma
import os
from pathlib import Path

import orjson
import pytest

from detector import cli
from detector.sources import ListDeadLetters, compressed, parse_payload
from detector.sources.exports import BIGQUERY_HINT
from detector.stats import RunStats
from tests.detector.sources_helpers import read

REPLAY_AWS = Path(__file__).resolve().parents[2] / "replay_data" / "aws"


def cloudtrail_records(count: int = 10) -> list[dict]:
    """The first ``count`` records of the replay data's CloudTrail delivery files."""
    records: list[dict] = []
    for path in sorted(REPLAY_AWS.rglob("*_CloudTrail_*.json.gz")):
        records += orjson.loads(gzip.decompress(path.read_bytes()))["Records"]
        if len(records) >= count:
            return records[:count]
    raise AssertionError("replay_data holds too few CloudTrail records")


def summary(events: list) -> list[tuple[str, str, str, float]]:
    return [(e.event_id, e.identity, e.action, e.ts) for e in events]


def delivered(records: list[dict]) -> list[tuple[str, str, str, float]]:
    """What the records give read from a delivery file."""
    data = orjson.dumps({"Records": records})
    events = parse_payload(data, origin="s3", stats=RunStats(), dead_letters=ListDeadLetters())
    assert len(events) == len(records)
    return summary(events)


def parsed(data: bytes) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(data, origin="f", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return events, stats, dead


def lake_rows(records: list[dict]) -> list[dict]:
    """``SELECT eventJson FROM <event data store>`` rows: the record as a JSON string."""
    return [{"eventJson": orjson.dumps(r).decode()} for r in records]


def json_lines(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


class TestCloudTrailLake:
    def test_rows_as_a_json_array_give_the_delivered_events(self) -> None:
        records = cloudtrail_records()
        events, stats, dead = parsed(orjson.dumps(lake_rows(records)))
        assert dead.items == []
        assert summary(events) == delivered(records)
        assert stats.events_by_path == {("aws.cloudtrail", "bare"): 10}

    def test_rows_as_json_lines_give_the_delivered_events(self) -> None:
        records = cloudtrail_records()
        events, _, dead = parsed(json_lines(lake_rows(records)))
        assert dead.items == []
        assert summary(events) == delivered(records)

    def test_get_query_results_output_gives_the_delivered_events(self) -> None:
        records = cloudtrail_records()
        output = {"QueryStatus": "FINISHED",
                  "QueryStatistics": {"ResultsCount": 10, "TotalResultsCount": 10,
                                      "BytesScanned": 12345},
                  "QueryResultRows": [[row] for row in lake_rows(records)]}
        events, _, dead = parsed(orjson.dumps(output))
        assert dead.items == []
        assert summary(events) == delivered(records)

    def test_results_without_the_eventjson_column_say_to_select_it(self) -> None:
        output = {"QueryStatus": "FINISHED",
                  "QueryResultRows": [[{"eventName": "ListBuckets"}, {"eventTime": "x"}]]}
        events, _, dead = parsed(orjson.dumps(output))
        assert events == []
        assert [(d["reason"], d["origin"]) for d in dead.items] == [
            ("invalid_record", "f#QueryResultRows[0]")]
        assert "select eventJson in the query" in dead.items[0]["message"]

    def test_a_one_column_eventjson_csv_is_read_row_by_row(self, tmp_path: Path) -> None:
        records = cloudtrail_records()
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(["eventjson"])
        writer.writerows([row["eventJson"]] for row in lake_rows(records))
        (tmp_path / "results.csv").write_text(text.getvalue())
        events, _, dead = read([tmp_path])  # a directory walk finds it by its header
        assert dead.items == []
        assert summary(events) == delivered(records)


class TestCompressedInputs:
    def test_bzip2_of_two_streams_and_xz_are_read_named_or_walked(self, tmp_path: Path
                                                                 ) -> None:
        records = cloudtrail_records(20)
        (tmp_path / "a.jsonl.bz2").write_bytes(bz2.compress(json_lines(records[:8]))
                                               + bz2.compress(json_lines(records[8:12])))
        (tmp_path / "b.jsonl.xz").write_bytes(lzma.compress(json_lines(records[12:])))
        walked, _, dead = read([tmp_path])
        assert dead.items == []
        assert summary(walked) == delivered(records)
        named, _, _ = read([tmp_path / "b.jsonl.xz"])
        assert summary(named) == delivered(records[12:])

    def test_a_cut_bzip2_file_keeps_the_streams_before_the_cut(self) -> None:
        records = cloudtrail_records(20)
        second = bz2.compress(json_lines(records[12:]))
        events, _, dead = parsed(bz2.compress(json_lines(records[:12]))
                                 + second[: len(second) // 2])
        assert [(d["reason"], d["origin"], d["message"]) for d in dead.items] == [
            ("bad_compression", "f", "bzip2 stream ends early; the rest of the file is lost")]
        assert summary(events) == delivered(records[:12])

    @pytest.mark.skipif(compressed.ZSTD_READABLE, reason="this Python reads zstd")
    def test_zstd_is_a_dead_letter_naming_zstd_and_the_fix_even_in_a_walk(
            self, tmp_path: Path) -> None:
        frame = b"\x28\xb5\x2f\xfd\x24\x10\x81\x00\x00" + b"x" * 40  # a zstd frame's start
        (tmp_path / "ct.jsonl.zst").write_bytes(frame)
        events, stats, dead = read([tmp_path])
        assert events == []
        assert stats.skipped == {}
        assert [(d["reason"], d["origin"]) for d in dead.items] == [
            ("unsupported_compression", str(tmp_path / "ct.jsonl.zst"))]
        assert "zstd-compressed" in dead.items[0]["message"]
        assert "zstd -d FILE" in dead.items[0]["message"]

    def test_a_directory_whose_files_are_all_skipped_warns(self, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
        (tmp_path / "notes.txt").write_text("nothing to read\n")
        (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
        with caplog.at_level(logging.WARNING, logger="detector.sources"):
            events, stats, _ = read([tmp_path])
        assert events == []
        assert stats.skipped == {("unknown", "not_a_log_file"): 2}
        assert [r.getMessage() for r in caplog.records if "nothing read" in r.getMessage()
                ] == [f"nothing read under {tmp_path}: its 2 files were skipped or "
                      "unreadable (read: names ending .json/.jsonl/.ndjson/.log/.gz/.raw, "
                      "or content that starts like JSON, gzip, bzip2, xz, zstd or a known "
                      "export)"]


class TestTextEncodings:
    def test_utf16_with_a_byte_order_mark_is_decoded(self) -> None:
        records = cloudtrail_records(5)
        data = orjson.dumps({"Records": records}).decode().encode("utf-16")  # BOM first
        assert data[:2] == b"\xff\xfe"
        events, _, dead = parsed(data)
        assert dead.items == []
        assert summary(events) == delivered(records)

    def test_bytes_that_are_not_utf16_after_its_mark_name_the_encoding(self) -> None:
        data = b"\xff\xfe" + '{"Records": ['.encode("utf-16-le") + b"\x00\xdc"  # lone half
        events, _, dead = parsed(data)
        assert events == []
        assert [d["reason"] for d in dead.items] == ["bad_encoding"]
        assert dead.items[0]["message"].startswith(
            "input has a UTF-16 byte-order mark but is not UTF-16 text")


class TestUnsupportedExports:
    def test_bigquery_sink_rows_name_the_export_and_the_way_out(self) -> None:
        row = {"logName": "projects/p/logs/cloudaudit.googleapis.com%2Factivity",
               "timestamp": "2024-11-19T00:49:55.293368631Z", "severity": "NOTICE",
               "resource": {"type": "service_account", "labels": {"project_id": "p"}},
               "protopayload_auditlog": {
                   "serviceName": "iam.googleapis.com", "methodName": "CreateServiceAccountKey",
                   "authenticationInfo": {"principalEmail": "ci@p.iam.gserviceaccount.com"},
                   "requestMetadata": {"callerIp": "203.0.113.7"}}}
        events, _, dead = parsed(orjson.dumps(row) + b"\n")
        assert events == []
        assert [(d["reason"], d["message"]) for d in dead.items] == [
            ("unknown_format", f"record shape is not a supported audit-log format: "
                               f"{BIGQUERY_HINT}")]

    def test_a_log_analytics_csv_export_reads_as_its_json_export(self) -> None:
        columns = ["TenantId", "SourceSystem", "TimeGenerated", "OperationNameValue",
                   "CategoryValue", "ActivityStatusValue", "Caller", "CallerIpAddress",
                   "CorrelationId", "ResourceId", "SubscriptionId", "Type", "Claims",
                   "Authorization", "Properties"]
        rows = [["87654321-4321-4321-4321-111111111111", "Azure",
                 f"2024-12-17T1{n}:30:00.0000000Z", "Microsoft.Insights/actionGroups/delete",
                 "Administrative", "Success", "11111111-2222-3333-4444-55555555555" + str(n),
                 "198.51.100.4", f"a1b2c3d4-e5f6-7890-abcd-ef123456789{n}",
                 f"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/"
                 f"actionGroups/team{n}", "12345678-1234-1234-1234-123456789abc",
                 "AzureActivity", "{}", "{}", '{"eventCategory": "Administrative"}']
                for n in range(3)]
        as_json = orjson.dumps([dict(zip(columns, row)) for row in rows])
        text = io.StringIO()
        csv.writer(text, lineterminator="\r\n").writerows([columns, *rows])
        from_csv, _, dead = parsed(text.getvalue().encode())
        from_json, _, _ = parsed(as_json)
        assert dead.items == []
        assert len(from_csv) == 3
        assert summary(from_csv) == summary(from_json)
        assert [e.source for e in from_csv] == ["azure.activity"] * 3


class TestSymlinkLoop:
    def test_a_loop_named_on_the_command_line_says_it_is_a_loop(
            self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        os.symlink(tmp_path / "b", tmp_path / "a")
        os.symlink(tmp_path / "a", tmp_path / "b")
        assert cli.main(["parse", str(tmp_path / "a")]) == 2
        assert capsys.readouterr().err == (
            "nhi-detector parse: a symbolic link loop (too many levels of symbolic links): "
            f"{tmp_path / 'a'}\n")
        assert cli.main(["replay", str(tmp_path / "a"), str(tmp_path / "gone")]) == 2
        err = capsys.readouterr().err
        assert f"a symbolic link loop (too many levels of symbolic links): {tmp_path / 'a'}" \
            in err
        assert f"no such file or directory: {tmp_path / 'gone'}" in err

    def test_a_loop_given_to_read_paths_is_a_read_error_naming_the_loop(
            self, tmp_path: Path) -> None:
        os.symlink(tmp_path / "loop", tmp_path / "loop")
        events, _, dead = read([tmp_path / "loop"])
        assert events == []
        assert [(d["reason"], d["message"]) for d in dead.items] == [
            ("read_error", "input cannot be read: a symbolic link loop (too many levels of "
                           "symbolic links)")]


def test_a_byte_order_mark_on_a_later_line_is_dropped(tmp_path) -> None:
    """Exports written with a byte-order mark each (PowerShell) and then concatenated:
    the second line's record was an ``invalid_utf8`` dead letter, which it is not."""
    from detector.sources import read_paths

    def line(event_id: str) -> bytes:
        return orjson.dumps({
            "eventVersion": "1.08", "eventTime": "2024-03-01T00:00:00Z", "eventID": event_id,
            "eventSource": "s3.amazonaws.com", "eventName": "GetObject",
            "awsRegion": "us-east-1", "sourceIPAddress": "10.0.0.1",
            "userIdentity": {"type": "IAMUser", "accountId": "123456789012",
                             "arn": "arn:aws:iam::123456789012:user/u"}})

    data = b"\xef\xbb\xbf" + line("a") + b"\n\xef\xbb\xbf" + line("b") + b"\n"
    path = tmp_path / "export.jsonl"
    path.write_bytes(data)
    stats, dead = RunStats(), ListDeadLetters()
    assert len(list(read_paths([str(path)], stats=stats, dead_letters=dead))) == 2
    assert len(dead) == 0 and stats.balanced()
    stats, dead = RunStats(), ListDeadLetters()
    assert len(parse_payload(data, origin="t", stats=stats, dead_letters=dead)) == 2
    assert len(dead) == 0
