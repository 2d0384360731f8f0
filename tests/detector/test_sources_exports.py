"""Exports that wrap whole audit records (trial 7, item 2): CloudWatch Logs export to S3,
``aws logs filter-log-events`` and Logs Insights results are read through the same
parsers as the records themselves; CSV query results are read when a column holds the
whole record, and refused with a hint when the columns are flattened fields."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import orjson

from detector.sources import ListDeadLetters, parse_payload
from detector.sources.exports import CSV_HINT
from detector.stats import RunStats
from tests.detector.sources_helpers import read, record


def audit(index: int) -> dict:
    """One EKS audit event (a ``ResponseComplete`` stage)."""
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": f"00000000-0000-4000-8000-{index:012d}", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/default/secrets", "verb": "list",
            "user": {"username": "system:serviceaccount:default:app"},
            "sourceIPs": ["10.0.0.10"], "userAgent": "kubectl/v1.29",
            "objectRef": {"resource": "secrets", "namespace": "default", "apiVersion": "v1"},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": f"2026-12-02T00:0{index}:00.000000Z",
            "stageTimestamp": f"2026-12-02T00:0{index}:00.100000Z"}


def messages(count: int = 3, start: int = 0) -> list[str]:
    return [orjson.dumps(audit(i)).decode() for i in range(start, start + count)]


def summary(events: list) -> list[tuple[str, str, str]]:
    return [(e.event_id, e.identity, e.action) for e in events]


def direct(count: int = 3, start: int = 0) -> list[tuple[str, str, str]]:
    """What the records give read as plain JSON lines."""
    stats, dead = RunStats(), ListDeadLetters()
    data = "\n".join(messages(count, start)).encode()
    return summary(parse_payload(data, origin="d", stats=stats, dead_letters=dead))


def export_lines(count: int = 3, start: int = 0) -> bytes:
    return "".join(f"2026-12-02T00:0{i}:00.100Z {m}\n"
                   for i, m in enumerate(messages(count, start))).encode()


class TestCloudWatchLogsExports:
    def test_export_to_s3_lines_plain_and_gzip_read_as_the_records(self, tmp_path: Path
                                                                    ) -> None:
        (tmp_path / "000000").write_bytes(export_lines())
        (tmp_path / "000001.gz").write_bytes(gzip.compress(export_lines(3, 3)))
        events, stats, dead = read([tmp_path / "000000", tmp_path / "000001.gz"])
        assert len(dead) == 0
        assert summary(events) == direct(6)
        assert stats.events_by_path == {("k8s.audit", "cwl"): 6}

    def test_an_export_line_that_is_not_json_is_its_own_dead_letter(self) -> None:
        data = export_lines(2) + b'2026-12-02T00:09:00.000Z {"kind": "Ev\n' \
            + export_lines(1, 2)
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(data, origin="x", stats=stats, dead_letters=dead)
        assert [(d["reason"], d["origin"], d["raw"]) for d in dead.items] == [
            ("truncated", "x:3", '{"kind": "Ev')]
        assert summary(events) == direct()

    def test_a_directory_walk_reads_exports_whatever_their_names(self, tmp_path: Path
                                                               ) -> None:
        (tmp_path / "000000").write_bytes(export_lines())
        (tmp_path / "results.csv").write_bytes(b"eventversion,eventname,eventtime\n1,a,b\n")
        (tmp_path / "notes.txt").write_bytes(b"nothing to read\n")
        events, stats, dead = read([tmp_path])
        assert summary(events) == direct()
        assert [(d["reason"], d["origin"]) for d in dead.items] == [
            ("unknown_format", f"{tmp_path}/results.csv")]
        assert stats.skipped == {("unknown", "not_a_log_file"): 1}

    def test_filter_log_events_output_reads_each_message(self) -> None:
        body = {"events": [{"logStreamName": "kube-apiserver-audit-1", "timestamp": 1,
                            "message": m, "ingestionTime": 2, "eventId": str(i)}
                           for i, m in enumerate(messages())],
                "searchedLogStreams": []}
        body["events"].append({"logStreamName": "s", "timestamp": 3, "message": "plain text"})
        body["events"].append({"timestamp": 4, "message": audit(3)})  # decoded by a tool
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(orjson.dumps(body), origin="f", stats=stats, dead_letters=dead)
        assert summary(events) == direct(4)
        assert [(d["reason"], d["origin"]) for d in dead.items] == [
            ("invalid_json", "f#events[3]")]
        assert "CloudWatch Logs events" in dead.items[0]["message"]
        assert stats.balanced()

    def test_an_object_with_an_empty_events_list_stays_unknown(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        parse_payload(b'{"events": []}', origin="e", stats=stats, dead_letters=dead)
        assert dead.reasons() == ["unknown_format"]

    def test_logs_insights_rows_and_query_results_name_the_cluster_from_the_log(self) -> None:
        rows = [{"@timestamp": "2026-12-02 00:00:00.100", "@message": m,
                 "@log": "111122223333:/aws/eks/prod/cluster"} for m in messages()]
        results = {"status": "Complete", "results": [
            [{"field": "@timestamp", "value": "x"}, {"field": "@message", "value": m},
             {"field": "@log", "value": "111122223333:/aws/eks/stage/cluster"}]
            for m in messages()]}
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(orjson.dumps(rows), origin="i", stats=stats, dead_letters=dead)
        events += parse_payload(orjson.dumps(results), origin="r", stats=stats,
                                dead_letters=dead)
        assert len(dead) == 0
        assert [e.tenant for e in events] == ["prod"] * 3 + ["stage"] * 3
        assert [e.identity for e in events] == (
            ["prod/system:serviceaccount:default:app"] * 3
            + ["stage/system:serviceaccount:default:app"] * 3)


class TestCsv:
    def csv_file(self, header: list[str], rows: list[list[str]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue().encode()

    def test_a_column_holding_the_whole_record_is_read_row_by_row(self, tmp_path: Path
                                                                  ) -> None:
        insights = self.csv_file(["@timestamp", "@message"],
                                 [["2026-12-02 00:00:00.100", m] for m in messages()])
        lake = self.csv_file(["eventID", "eventJson"],
                             [[f"id-{i}", orjson.dumps(record(i)).decode()] for i in range(2)]
                             + [["id-9", "{not json"], ["id-10"]])
        (tmp_path / "insights.csv").write_bytes(insights)
        (tmp_path / "lake.csv").write_bytes(lake)
        events, stats, dead = read([tmp_path / "insights.csv", tmp_path / "lake.csv"])
        assert summary(events[:3]) == direct()
        assert [e.event_id for e in events[3:]] == ["id-0", "id-1"]
        assert [(d["reason"], d["origin"]) for d in dead.items] == [
            ("invalid_json", f"{tmp_path}/lake.csv:4"),
            ("invalid_record", f"{tmp_path}/lake.csv:5")]

    def test_flattened_cloudtrail_columns_are_one_dead_letter_with_the_fix(self) -> None:
        athena = self.csv_file(
            ["eventversion", "useridentity", "eventtime", "eventsource", "eventname"],
            [["1.08", "{type=AssumedRole, principalid=AROAX:s, accountid=111122223333}",
              "2026-12-02T00:00:00Z", "s3.amazonaws.com", "GetObject"]] * 3)
        stats, dead = RunStats(), ListDeadLetters()
        assert parse_payload(athena, origin="a.csv", stats=stats, dead_letters=dead) == []
        assert [(d["reason"], d["raw_size"]) for d in dead.items] == [
            ("unknown_format", len(athena))]
        assert CSV_HINT in dead.items[0]["message"]
        assert "eventjson" in dead.items[0]["message"]

    def test_other_text_names_the_shapes_that_are_read(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        text = b"192.168.0.1 - - [02/Dec/2026] GET /index.html 200\n" * 50
        parse_payload(text, origin="access.log", stats=stats, dead_letters=dead)
        assert dead.reasons() == ["unknown_format"]
        assert "CloudWatch Logs exports" in dead.items[0]["message"]
        assert dead.items[0]["raw_size"] == len(text)
