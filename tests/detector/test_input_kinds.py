"""Kinds of input found by ``tools/fuzz_parser.py`` (round 8): each test is built from the
minimal input of its kind, no fuzzer needed to run it."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from detector.sources import ListDeadLetters, Parser, parse_payload
from detector.stats import RunStats
from tests.detector.sources_helpers import record

def payload(data: bytes) -> tuple[list[dict[str, Any]], ListDeadLetters, RunStats]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(data, origin="m", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return [event.to_dict() for event in events], dead, stats


def streamed(data: bytes) -> tuple[list[dict[str, Any]], ListDeadLetters]:
    """``data`` read as stdin or a large file is (``Parser.feed_stream``)."""
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    events = [event for batch in parser.feed_stream(io.BytesIO(data), "m") for event in batch]
    events += parser.finish()
    assert stats.balanced()
    return [event.to_dict() for event in events], dead


class TestStreamLikePayload:
    """Kind: a JSON document with a NUL byte in one record, read from stdin or a file over
    the streaming threshold, was one ``binary`` dead letter: every good record was lost."""

    @pytest.mark.parametrize("data", [
        b"[" + orjson.dumps(record(1)) + b',{"eventName":"X\x00"}]',
        b'{"Records":[' + orjson.dumps(record(1)) + b',{"eventName":"\x00"}]}',
        b'{"Records":[' + orjson.dumps(record(1)) + b',\n{"eventName":"\x00"}]}\n',
    ])
    def test_nul_in_a_document__one_record_lost(self, data: bytes) -> None:
        events, dead, _ = payload(data)
        assert [event["event_id"] for event in events] == ["id-1"]
        assert dead.reasons() == ["invalid_json"]
        stream_events, stream_dead = streamed(data)
        assert stream_events == events and stream_dead.items == dead.items

    def test_binary_text_with_nul__still_binary(self) -> None:
        data = b"\x00ELF" + bytes(range(1, 32)) * 50
        events, dead = streamed(data)
        assert events == [] and dead.reasons() == ["binary"]


def _stage(**extra: Any) -> dict[str, Any]:
    base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a-1",
            "stage": "ResponseStarted", "verb": "create",
            "user": {"username": "system:serviceaccount:ci:runner"},
            "objectRef": {"resource": "pods", "namespace": "ci", "name": "p",
                          "subresource": "exec"},
            "sourceIPs": ["10.0.0.9"], "requestReceivedTimestamp": "2024-03-04T10:00:00Z",
            "stageTimestamp": "2024-03-04T10:00:01Z"}
    base.update(extra)
    return base


INSIGHT = {"eventVersion": "1.09", "eventTime": "2024-03-04T10:00:00Z",
           "eventType": "AwsCloudTrailInsight", "eventID": "i-1", "sharedEventID": "s-1",
           "recipientAccountId": "123456789012",
           "insightDetails": {"state": "Start", "eventSource": "iam.amazonaws.com",
                              "eventName": "ListRoles", "insightType": "ApiCallRateInsight"}}


class TestFieldOfAnotherType:
    """Kind: a field holding an object or a list where a string is expected, looked up in
    a set or dict outside any source module's guard, raised ``TypeError`` (unhashable): the
    payload became one ``internal_error`` and its later records were lost."""

    @pytest.mark.parametrize("bad", [
        _stage(objectRef={"resource": "pods", "subresource": {}}),
        _stage(objectRef={"resource": "pods", "subresource": ["exec"]}),
        dict(INSIGHT, insightDetails=dict(INSIGHT["insightDetails"], state={})),
        dict(INSIGHT, insightDetails=dict(INSIGHT["insightDetails"], state=["Start"])),
    ])
    def test_bad_record__neighbours_read(self, bad: dict[str, Any]) -> None:
        data = b"\n".join(orjson.dumps(r) for r in (record(1), bad, record(2)))
        events, dead, _ = payload(data)
        assert [e["event_id"] for e in events if e["source"] == "aws.cloudtrail"] == \
            ["id-1", "id-2"]
        assert "internal_error" not in dead.reasons()

    def test_insight_state_object__counted_as_other(self) -> None:
        bad = dict(INSIGHT, insightDetails=dict(INSIGHT["insightDetails"], state={}))
        _, _, stats = payload(orjson.dumps(bad))
        assert stats.insights == {("ApiCallRateInsight", "other"): 1}
        assert stats.skipped == {("aws.cloudtrail", "insight"): 1}

    def test_long_running_exec__still_final_at_response_started(self) -> None:
        events, dead, _ = payload(orjson.dumps(_stage()))
        assert [(e["action"], e["partial"]) for e in events] == [("k8s:pods/exec.create",
                                                                  False)]

    def test_any_failure_routing_a_record__that_record_only(self, monkeypatch) -> None:
        """The whole kind: whatever fails while a record's shape is told costs that record
        (an ``internal_error`` dead letter), not the payload."""
        from detector.sources import parser as parser_module

        real = parser_module.azure.lower_keys

        def failing(value: Any) -> Any:
            if isinstance(value, dict) and value.get("poison"):
                raise KeyError("poison")
            return real(value)

        monkeypatch.setattr(parser_module.azure, "lower_keys", failing)
        data = b"\n".join(orjson.dumps(r) for r in (record(1), {"poison": 1}, record(2)))
        events, dead, stats = payload(data)
        assert [e["event_id"] for e in events] == ["id-1", "id-2"]
        assert dead.reasons() == ["internal_error"] and dead.items[0]["origin"] == "m:2"
        assert stats.dead_letters == {("unknown", "internal_error"): 1}
