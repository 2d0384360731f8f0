"""Property tests: random and mutated records never raise out of the parser, and every
record read ends as an event, a dead letter or a skip (the accounting always balances)."""

from __future__ import annotations

import gzip
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.sources import ListDeadLetters, Parser, parse_payload
from detector.stats import RunStats

SEED_RECORDS: list[dict[str, Any]] = [
    {"eventTime": "2024-03-04T10:00:00Z", "eventSource": "s3.amazonaws.com",
     "eventName": "ListBuckets", "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.1",
     "userAgent": "aws-cli/2.0", "eventID": "e1", "readOnly": True,
     "userIdentity": {"type": "AssumedRole", "accountId": "1",
                      "arn": "arn:aws:sts::1:assumed-role/r/s", "accessKeyId": "ASIA1",
                      "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::1:role/r"},
                                         "attributes": {"mfaAuthenticated": "false"}}},
     "requestParameters": {"roleArn": "arn:aws:iam::2:role/x"}, "resources": [{"ARN": "a"}]},
    {"insertId": "g", "timestamp": "2024-03-04T10:00:00.123456789Z",
     "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "c", "project_id": "p"}},
     "protoPayload": {"authenticationInfo": {"principalEmail": "a@p.iam.gserviceaccount.com",
                                             "serviceAccountDelegationInfo": [{}]},
                      "methodName": "io.k8s.core.v1.pods.get", "serviceName": "k8s.io",
                      "requestMetadata": {"callerIp": "private"}, "status": {"code": 7}}},
    {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a",
     "stage": "RequestReceived",
     "verb": "create", "user": {"username": "system:serviceaccount:n:s", "extra": {}},
     "impersonatedUser": {"username": "u@example.com", "groups": ["system:masters"]},
     "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "n", "name": "p"},
     "sourceIPs": ["10.0.0.1"], "requestReceivedTimestamp": "2024-03-04T10:00:00Z"},
    {"time": "2024-03-04T14:00:00.1234567Z", "category": "ServicePrincipalSignInLogs",
     "resultType": "7000215", "properties": {"servicePrincipalId": "S", "appId": "A",
                                             "status": {"errorCode": 1}, "location": {}}},
    {"time": "2024-03-04T14:00:00Z", "category": "Administrative", "operationName": "x/write",
     "resourceId": "/subscriptions/s/x", "identity": {"claims": {"appid": "A"}},
     "properties": {"initiatedBy": "{\"user\": {}}"}},
    {"category": "kube-audit", "properties": {"log": "{\"verb\": \"get\"}"}},
    {"messageType": "DATA_MESSAGE", "logGroup": "/aws/eks/c/cluster",
     "logEvents": [{"message": "{\"kind\": \"Event\""}]},
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["", "true", "i-0abc123456", "[]", "2024-01-01", "arn:aws:sts::x"]))
json_values = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=5)),
    max_leaves=20)


def check(data: bytes, parser: Parser | None = None) -> None:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(data, origin="prop", stats=stats, dead_letters=dead, parser=parser)
    if parser is not None:
        events += parser.finish()
        stats = parser.stats
    assert stats.balanced()
    read = sum(stats.records_read.values())
    assert read == len(events) + len(dead) + sum(stats.skipped.values()) or parser is not None
    assert not [item for item in dead.items if item["reason"] == "internal_error"], dead.items
    for event in events:
        assert event.time.tzinfo is not None and isinstance(event.identity, str)
        orjson.dumps(event.to_dict())


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    record = orjson.loads(orjson.dumps(draw(st.sampled_from(SEED_RECORDS))))
    for _ in range(draw(st.integers(1, 4))):
        target = record
        path = draw(st.lists(st.sampled_from(sorted(_keys(record)) or ["x"]), min_size=1,
                             max_size=3))
        for key in path[:-1]:
            nxt = target.get(key) if isinstance(target, dict) else None
            if not isinstance(nxt, dict):
                break
            target = nxt
        if isinstance(target, dict):
            if draw(st.booleans()):
                target.pop(path[-1], None)
            else:
                target[path[-1]] = draw(json_values)
    return record


def _keys(value: Any) -> set[str]:
    if not isinstance(value, dict):
        return set()
    keys = set(value)
    for child in value.values():
        keys |= _keys(child)
    return keys


FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(json_values)
def test_random_json_never_raises(value: Any) -> None:
    check(orjson.dumps(value))


@FAST
@given(mutated())
def test_mutated_records_never_raise(record: dict[str, Any]) -> None:
    check(orjson.dumps(record))
    check(orjson.dumps({"Records": [record, SEED_RECORDS[0]]}))


def test_integers_beyond_64_bits_in_pretty_json() -> None:
    """The fallback scanner (json module) accepts big integers that orjson refuses."""
    text = (b'{\n  "eventName": "X", "eventSource": "s3.amazonaws.com",\n'
            b'  "eventTime": "2024-03-04T10:00:00Z", "big": 123456789012345678901234567890\n}\n'
            b'{\n  "eventName": "Y", "eventTime": 99999999999999999999999\n}\n')
    check(text)


@FAST
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    check(data)
    check(gzip.compress(data))


@FAST
@given(st.lists(mutated(), max_size=5), st.integers(0, 400))
def test_cut_json_lines_never_raise(records: list[dict[str, Any]], cut: int) -> None:
    data = b"\n".join(orjson.dumps(r) for r in records)
    check(data[:cut])


@FAST
@given(st.lists(mutated(), min_size=1, max_size=6))
def test_stage_merging_across_payloads_balances(records: list[dict[str, Any]]) -> None:
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    events = []
    for record in records:
        events += parse_payload(orjson.dumps(record), origin="m", stats=stats,
                                dead_letters=dead, parser=parser)
    events += parser.finish()
    assert stats.balanced()
    assert sum(stats.records_read.values()) == len(events) + len(dead) + \
        sum(stats.skipped.values())
