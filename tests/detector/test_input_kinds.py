"""Kinds of input found by ``tools/fuzz_parser.py`` (round 8) and new transport shapes:
each test is built from the minimal input of its kind, no fuzzer needed to run it."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.sources import ListDeadLetters, Parser, parse_payload
from detector.sources.deadletter import REASONS
from detector.stats import RunStats
from tests.detector.sources_helpers import record

ENTRY: dict[str, Any] = {
    "insertId": "k1x9", "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
    "timestamp": "2024-03-04T10:00:00.123456Z", "receiveTimestamp": "2024-03-04T10:00:01Z",
    "resource": {"type": "service_account", "labels": {"project_id": "p1"}},
    "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "ci@p1.iam.gserviceaccount.com"},
        "requestMetadata": {"callerIp": "198.51.100.7",
                            "callerSuppliedUserAgent": "google-cloud-sdk gcloud/460.0.0"},
        "serviceName": "iam.googleapis.com",
        "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
        "resourceName": "projects/-/serviceAccounts/admin@p1.iam.gserviceaccount.com"},
}


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


def _message(entry: Any, **extra: Any) -> dict[str, Any]:
    data = base64.b64encode(orjson.dumps(entry)).decode()
    return {"data": data, "attributes": {"logging.googleapis.com/timestamp": "x"},
            "messageId": "9001", "message_id": "9001", "publishTime": "2024-03-04T10:00:02Z",
            "publish_time": "2024-03-04T10:00:02Z", **extra}


class TestPubSub:
    """GCP audit logs routed by a Cloud Logging sink to Pub/Sub, in each delivery shape."""

    def bare(self) -> list[dict[str, Any]]:
        events, dead, _ = payload(orjson.dumps(ENTRY))
        assert len(events) == 1 and not dead.items
        return events

    @pytest.mark.parametrize("shape", ["push", "pull", "pull_snake", "gcloud", "message",
                                       "decoded", "hec", "hec_text", "urlsafe"])
    def test_delivery_shapes__same_event_as_the_entry(self, shape: str) -> None:
        message = _message(ENTRY)
        wrapped = {
            "push": {"message": message, "subscription": "projects/p1/subscriptions/audit"},
            "pull": {"receivedMessages": [{"ackId": "a1", "message": message,
                                           "deliveryAttempt": 1}]},
            # the client libraries' JSON of a pull response spells its fields in snake case
            "pull_snake": {"received_messages": [{"ack_id": "a1", "message": message}]},
            "gcloud": [{"ackId": "a1", "message": message}],
            "message": message,
            "decoded": {"data": ENTRY, "attributes": {}, "messageId": "9001"},
            "hec": {"event": ENTRY, "time": 1709546400, "host": "dataflow",
                    "sourcetype": "google:gcp:pubsub:message", "index": "gcp"},
            "hec_text": {"event": orjson.dumps(ENTRY).decode(), "sourcetype": "x"},
            "urlsafe": {"message": dict(message, data=base64.urlsafe_b64encode(
                orjson.dumps(ENTRY)).decode()), "subscription": "s"},
        }[shape]
        events, dead, stats = payload(orjson.dumps(wrapped))
        assert events == self.bare()
        assert not dead.items and stats.records_read == {"gcp.audit": 1}

    def test_pull_response__one_event_per_message(self) -> None:
        second = dict(ENTRY, insertId="k2")
        pulled = {"receivedMessages": [{"ackId": f"a{i}", "message": _message(entry)}
                                       for i, entry in enumerate([ENTRY, second])]}
        events, dead, _ = payload(orjson.dumps(pulled))
        assert [event["event_id"] for event in events] == ["k1x9", "k2"]
        assert not dead.items

    @pytest.mark.parametrize(("data", "reason", "where"), [
        ("not base64!", "bad_base64", "m#message"),
        (base64.b64encode(b'{"insertId": "k1", "protoPay').decode(), "truncated",
         "m#message.data"),
        (base64.b64encode(b"audit entry as text").decode(), "invalid_json", "m#message.data"),
        (base64.b64encode(b'{"a": "\xff"}').decode(), "invalid_utf8", "m#message.data"),
    ])
    def test_bad_data__its_own_dead_letter(self, data: str, reason: str, where: str) -> None:
        push = {"message": dict(_message(ENTRY), data=data), "subscription": "s"}
        events, dead, stats = payload(orjson.dumps(push))
        assert events == []
        assert dead.reasons() == [reason] and dead.items[0]["origin"] == where
        assert stats.dead_letters == {("gcp.audit", reason): 1}
        if reason == "bad_base64":
            assert dead.items[0]["message"] == REASONS["bad_base64"]
        else:
            assert dead.items[0]["message"].endswith("(the data of a Pub/Sub message)")

    @pytest.mark.parametrize("second", ["push", "pull", "entry", "reordered"])
    def test_entry_delivered_twice__one_event(self, second: str) -> None:
        """A redelivered message, or one entry exported both by push and by pull (or by
        two sinks, which may write its keys in another order), is one audit event:
        counted once, the second a duplicate_event."""
        push = {"message": _message(ENTRY), "subscription": "s"}
        reordered = _reversed_keys(ENTRY)
        assert orjson.dumps(reordered) != orjson.dumps(ENTRY) and reordered == ENTRY
        again = {"push": push, "entry": ENTRY, "reordered": reordered,
                 "pull": {"receivedMessages": [{"ackId": "a2", "message": _message(ENTRY),
                                                "deliveryAttempt": 2}]}}[second]
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead)
        events = parser.feed(orjson.dumps(push), "m0") + parser.feed(orjson.dumps(again), "m1")
        assert [event.event_id for event in events + parser.finish()] == ["k1x9"]
        assert stats.skipped == {("gcp.audit", "duplicate_event"): 1} and stats.balanced()

    def test_message_without_data__invalid_record(self) -> None:
        events, dead, _ = payload(orjson.dumps({"message": {"attributes": {"k": "v"}},
                                                "subscription": "s"}))
        assert events == [] and dead.reasons() == ["invalid_record"]

    @pytest.mark.parametrize("extra", [{"message": "hello"}, {"data": {"x": 1}},
                                       {"event": {"y": 2}}])
    def test_record_with_a_wrapper_field__read_as_the_record(self, extra: dict) -> None:
        """A LogEntry or CloudTrail record that has a ``message``, ``data`` or ``event``
        field of its own is not taken for a wrapper: only the wrappers' exact keys are."""
        for base in (ENTRY, record(3)):
            events, dead, _ = payload(orjson.dumps(dict(base, **extra)))
            assert len(events) == 1 and not dead.items

    def test_forced_source__wrapper_is_unwrapped(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        push = {"message": _message(ENTRY), "subscription": "s"}
        events = parse_payload(orjson.dumps(push), origin="m", source="gcp", stats=stats,
                               dead_letters=dead)
        assert [event.source for event in events] == ["gcp.audit"] and not dead.items


def _reversed_keys(value: Any) -> Any:
    """``value`` with every mapping's keys in reverse order, at every depth."""
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


def _real_entries(real_logs: Path) -> list[dict[str, Any]]:
    entries = []
    for path in [real_logs / "elastic-gcp-audit" / "test-iamcredentials-googleapis-com.log",
                 real_logs / "cloud-custodian-gcp-events" / "resourcemanager-project-create.json"]:
        text = path.read_bytes()
        try:
            entries.append(orjson.loads(text))
        except orjson.JSONDecodeError:
            entries += [orjson.loads(line) for line in text.splitlines() if line.strip()]
    return entries


@pytest.mark.shared
def test_real_gcp_entries__same_events_through_pubsub(real_logs: Path) -> None:
    entries = _real_entries(real_logs)
    assert entries
    lines = b"\n".join(orjson.dumps(entry) for entry in entries)
    pushed = b"\n".join(orjson.dumps({"message": _message(entry), "subscription": "s"})
                        for entry in entries)
    pulled = orjson.dumps({"receivedMessages": [{"ackId": str(i), "message": _message(e)}
                                                for i, e in enumerate(entries)]})
    bare, dead, _ = payload(lines)
    assert len(bare) == len(entries) and not dead.items
    assert payload(pushed)[0] == bare
    assert payload(pulled)[0] == bare


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
