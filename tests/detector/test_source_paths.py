"""The path each event came by (edge case B13), counted per source and scraped over HTTP.

The inputs are built here: one CloudTrail record wrapped as an S3 delivery file, a
CloudWatch Logs subscription payload, an EventBridge event and a bare JSON line, plus a
Kubernetes audit event through an EKS log group.
"""

from __future__ import annotations

import orjson

from detector.metrics import start_metrics_server
from detector.sources import ListDeadLetters, Parser, parse_payload
from detector.stats import RunStats
from tests.detector.sources_helpers import record
from tests.detector.test_metrics import scrape, value


def cwl(*messages: dict, group: str = "aws-cloudtrail-logs-example") -> dict:
    return {"messageType": "DATA_MESSAGE", "owner": "123456789012", "logGroup": group,
            "logStream": "stream", "subscriptionFilters": ["f"],
            "logEvents": [{"id": str(n), "timestamp": 1709546400000,
                           "message": orjson.dumps(m).decode()}
                          for n, m in enumerate(messages)]}


def bridge(detail: dict) -> dict:
    return {"version": "0", "id": "e-1", "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.s3", "detail": detail}


def k8s_event() -> dict:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a-1",
            "stage": "ResponseComplete", "verb": "get",
            "user": {"username": "system:serviceaccount:ci:deployer"},
            "objectRef": {"resource": "pods", "namespace": "ci", "name": "p"},
            "requestReceivedTimestamp": "2024-03-04T10:00:00Z",
            "responseStatus": {"code": 200}}


def feed(*payloads: object) -> tuple[list, RunStats]:
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    events = []
    for index, data in enumerate(payloads):
        events += parse_payload(orjson.dumps(data), origin=f"m{index}", stats=stats,
                                dead_letters=dead, parser=parser)
    events += parser.finish()
    assert stats.balanced() and len(dead) == 0
    return events, stats


class TestEventsByPath:
    def test_each_path__is_counted_under_its_name(self) -> None:
        events, stats = feed({"Records": [record(1), record(2)]}, cwl(record(3)),
                             bridge(record(4)), record(5),
                             cwl(k8s_event(), group="/aws/eks/prod/cluster"))
        assert [e.event_id for e in events] == ["id-1", "id-2", "id-3", "id-4", "id-5",
                                                "prod/a-1"]
        assert stats.events_by_path == {
            ("aws.cloudtrail", "s3"): 2, ("aws.cloudtrail", "cwl"): 1,
            ("aws.cloudtrail", "eventbridge"): 1, ("aws.cloudtrail", "bare"): 1,
            ("k8s.audit", "cwl"): 1,
        }
        assert stats.events == {"aws.cloudtrail": 5, "k8s.audit": 1}

    def test_json_lines_and_plain_arrays__are_bare(self) -> None:
        lines = b"\n".join(orjson.dumps(r) for r in (record(1), k8s_event()))
        stats, dead = RunStats(), ListDeadLetters()
        events = parse_payload(lines, origin="lines", stats=stats, dead_letters=dead)
        events += parse_payload(orjson.dumps([record(2)]), origin="array", stats=stats,
                                dead_letters=dead)
        assert len(events) == 3
        assert stats.events_by_path == {("aws.cloudtrail", "bare"): 2, ("k8s.audit", "bare"): 1}

    def test_same_event_by_three_paths__counts_once_under_the_first(self) -> None:
        same = record(7)
        events, stats = feed(cwl(same), {"Records": [same]}, bridge(same), same)
        assert [e.event_id for e in events] == ["id-7"]
        assert stats.events_by_path == {("aws.cloudtrail", "cwl"): 1}
        assert stats.skipped == {("aws.cloudtrail", "duplicate_event"): 3}
        assert stats.records_read == {"aws.cloudtrail": 4}

    def test_same_id_with_another_action__is_not_a_duplicate(self) -> None:
        events, stats = feed({"Records": [record(8)]},
                             cwl(record(8, eventName="GetBucketPolicy")))
        assert [e.action for e in events] == ["s3:ListBuckets", "s3:GetBucketPolicy"]
        assert stats.events_by_path == {("aws.cloudtrail", "s3"): 1,
                                        ("aws.cloudtrail", "cwl"): 1}


class TestScrapedPaths:
    def test_scrape__has_one_series_per_source_and_path(self) -> None:
        _, stats = feed({"Records": [record(1), record(2), record(3)]}, cwl(record(4)),
                        bridge(record(5)), cwl(k8s_event(), group="/aws/eks/prod/cluster"))
        server, _ = start_metrics_server(0, stats)
        try:
            samples = scrape(server.port)
        finally:
            server.shutdown()
        series = {labels: v for (name, labels), v in samples.items()
                  if name == "nhi_events_by_path_total"}
        assert series == {
            (("source", "aws.cloudtrail"), ("source_path", "cwl")): 1.0,
            (("source", "aws.cloudtrail"), ("source_path", "eventbridge")): 1.0,
            (("source", "aws.cloudtrail"), ("source_path", "s3")): 3.0,
            (("source", "k8s.audit"), ("source_path", "cwl")): 1.0,
        }
        # the existing series keep their names and labels
        assert value(samples, "nhi_events_total", source="aws.cloudtrail") == 5
        assert value(samples, "nhi_events_total", source="k8s.audit") == 1
