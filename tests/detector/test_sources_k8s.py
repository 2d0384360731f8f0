"""Kubernetes stage merging by auditID, outcome codes and memory bounds."""

from __future__ import annotations

import gc
import weakref

import orjson
import pytest

from detector.sources import ListDeadLetters, Parser, parse_payload
from detector.sources import stages
from detector.stats import RunStats


def stage(audit_id: str, name: str, verb: str = "get", code: int | None = None,
          received: str = "2024-03-04T10:00:00Z", **extra: object) -> dict:
    record = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": audit_id,
              "stage": name, "verb": verb, "requestURI": f"/api/v1/x/{audit_id}",
              "user": {"username": "system:serviceaccount:ns:app"},
              "objectRef": {"resource": "secrets", "namespace": "ns", "name": "s"},
              "requestReceivedTimestamp": received}
    if code is not None:
        record["responseStatus"] = {"code": code}
    record.update(extra)
    return record


def parse(records: list[dict]) -> tuple[list, RunStats]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(records), origin="k", stats=stats, dead_letters=dead)
    assert stats.balanced() and len(dead) == 0
    return events, stats


def test_panic_is_canonical() -> None:
    events, stats = parse([stage("a", "RequestReceived"), stage("a", "Panic", code=500)])
    assert [(e.outcome, e.error_code, e.partial) for e in events] == [("failure", "500", False)]
    assert stats.skipped == {("k8s.audit", "merged_stage"): 1}


def test_failure_uses_status_reason() -> None:
    [event] = parse([stage("a", "ResponseComplete", code=403,
                           responseStatus={"code": 403, "reason": "Forbidden"})])[0]
    assert (event.outcome, event.error_code) == ("failure", "Forbidden")


def test_response_started_of_a_plain_request_waits_for_completion() -> None:
    events, stats = parse([stage("a", "RequestReceived"), stage("a", "ResponseStarted"),
                           stage("a", "ResponseComplete", code=200)])
    assert len(events) == 1 and events[0].partial is False
    assert stats.skipped == {("k8s.audit", "merged_stage"): 2}


def test_colliding_audit_ids_of_different_requests_are_both_kept() -> None:
    events, stats = parse([
        stage("same", "ResponseComplete", code=200, received="2024-03-04T10:00:00Z"),
        stage("same", "ResponseComplete", code=200, received="2024-03-04T11:00:00Z")])
    assert len(events) == 2 and not stats.skipped


def test_late_request_received_after_completion_is_a_duplicate() -> None:
    events, stats = parse([stage("a", "ResponseComplete", code=200),
                           stage("a", "RequestReceived")])
    assert len(events) == 1
    assert stats.skipped == {("k8s.audit", "duplicate_stage"): 1}


def test_pending_requests_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "MAX_PENDING_STAGES", 3)
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    flushed = []
    for index in range(5):
        flushed += parser.feed(orjson.dumps(stage(f"r{index}", "RequestReceived")), "m")
    assert [e.event_id for e in flushed] == ["r0", "r1"]
    assert all(e.partial for e in flushed)
    rest = parser.finish()
    assert [e.event_id for e in rest] == ["r2", "r3", "r4"]
    assert stats.balanced() and stats.events["k8s.audit"] == 5


def test_pending_origins_name_the_waiting_stages_until_they_complete() -> None:
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    parser.feed(orjson.dumps(stage("a", "RequestReceived")), "raw[0]@7")
    parser.feed(orjson.dumps(stage("b", "RequestReceived")), "raw[0]@9")
    assert parser.pending_origins() == ["raw[0]@7", "raw[0]@9"]
    done = parser.feed(orjson.dumps(stage("a", "ResponseComplete", code=200)), "raw[0]@12")
    assert [e.event_id for e in done] == ["a"]
    assert parser.pending_origins() == ["raw[0]@9"]


def test_a_finished_parser_is_freed_without_the_cyclic_collector() -> None:
    """The stage merger holds no reference back to its parser: a parser that read stages
    (one per replay file stream) goes with its last reference, keys and caches with it."""
    stats = RunStats()
    parser = Parser(stats=stats, dead_letters=ListDeadLetters())
    parser.feed(orjson.dumps(stage("a", "RequestReceived")), "m")
    parser.feed(orjson.dumps(stage("a", "ResponseComplete", code=200)), "m")
    parser.feed(orjson.dumps(stage("b", "RequestReceived")), "m")
    assert [e.event_id for e in parser.finish()] == ["b"]
    gone = weakref.ref(parser)
    collecting = gc.isenabled()
    gc.disable()
    try:
        del parser
        assert gone() is None
    finally:
        if collecting:
            gc.enable()
    assert stats.events["k8s.audit"] == 2


def test_cluster_scopes_audit_ids() -> None:
    envelope = {"messageType": "DATA_MESSAGE", "logGroup": "/aws/eks/prod/cluster",
                "logEvents": [{"message": orjson.dumps(stage("a", "ResponseComplete",
                                                             code=200)).decode()}]}
    events, _ = parse([stage("a", "ResponseComplete", code=200), envelope])
    assert [e.event_id for e in events] == ["a", "prod/a"]
    assert [e.identity for e in events] == ["system:serviceaccount:ns:app",
                                            "prod/system:serviceaccount:ns:app"]


def test_non_resource_request() -> None:
    record = stage("a", "ResponseComplete", code=200, requestURI="/healthz")
    del record["objectRef"]
    [event] = parse([record])[0]
    assert (event.action, event.resource) == ("k8s:nonresource.get", "/healthz")


def test_missing_username_is_a_dead_letter() -> None:
    stats, dead = RunStats(), ListDeadLetters()
    parse_payload(orjson.dumps(stage("a", "ResponseComplete", user={})), origin="k",
                  stats=stats, dead_letters=dead)
    assert dead.reasons() == ["missing_identity"] and stats.balanced()


def test_requests_without_final_stage_expire_by_event_time() -> None:
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    early = parser.feed(orjson.dumps(stage("old", "RequestReceived",
                                           received="2024-03-04T10:00:00Z")), "m1")
    later = parser.feed(orjson.dumps(stage("new", "ResponseComplete", code=200,
                                           received="2024-03-04T10:11:00Z")), "m2")
    assert early == []
    assert [(e.event_id, e.partial) for e in later] == [("new", False), ("old", True)]
    assert parser.finish() == []
    assert stats.balanced()


def test_final_stage_after_expiry_does_not_count_twice() -> None:
    events, stats = parse([stage("old", "RequestReceived", received="2024-03-04T10:00:00Z"),
                           stage("other", "ResponseComplete", code=200,
                                 received="2024-03-04T11:00:00Z"),
                           stage("old", "ResponseComplete", code=200,
                                 received="2024-03-04T10:00:00Z")])
    assert [(e.event_id, e.partial) for e in events] == [("other", False), ("old", True)]
    assert stats.skipped == {("k8s.audit", "duplicate_stage"): 1}
