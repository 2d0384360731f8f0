"""Field bounds: a value that becomes a model key has a length no real log exceeds.

Identifying fields over their bound make the record an ``oversized_field`` dead letter
(a cut name would be another name); free text is cut, and the event says so in
``attributes["cut"]``. Each case is one kind of field of one source, checked through the
parser, so the accounting is the one a replay or the worker sees."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detector.sources import ListDeadLetters, parse_payload
from detector.sources.common import (
    MAX_CREDENTIAL,
    MAX_ERROR,
    MAX_EVENT_ID,
    MAX_HOST,
    MAX_IDENTITY,
    MAX_K8S_NAME,
    MAX_OPERATION,
    MAX_REGION,
    MAX_RESOURCE,
    MAX_SERVICE,
    MAX_TENANT,
    MAX_USER_AGENT,
    MAX_VERB,
)
from detector.stats import RunStats
from tests.detector.sources_helpers import record as cloudtrail_record
from tests.detector.test_sources_fast_paths import GCP_RECORDS, K8S_RECORDS


def _parse(record: dict[str, Any]) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(record), origin="t", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return events, stats, dead


def _copy(record: dict[str, Any]) -> dict[str, Any]:
    return orjson.loads(orjson.dumps(record))


def _set(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = _copy(record)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    node[last] = value
    return out


def _arn(length: int) -> str:
    head = "arn:aws:iam::123456789012:user/"
    return head + "u" * (length - len(head))


# (source record, dotted path, field named in the message, limit, value with that field
# of the given length)
IDENTIFYING = [
    (cloudtrail_record(), "eventName", "eventName", MAX_OPERATION, lambda n: "G" * n),
    (cloudtrail_record(), "eventSource", "eventSource", MAX_SERVICE,
     lambda n: "s" * (n - 14) + ".amazonaws.com"),
    (cloudtrail_record(), "userIdentity.arn", "identity", MAX_IDENTITY, _arn),
    (cloudtrail_record(userIdentity={
        "type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s",
        "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::1:role/r"}}}),
     "userIdentity.arn", "session", MAX_IDENTITY,
     lambda n: "arn:aws:sts::1:assumed-role/r/" + "s" * n),
    (cloudtrail_record(userIdentity={
        "type": "AssumedRole", "arn": "arn:aws:sts::1:assumed-role/r/s", "invokedBy": "x",
        "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::1:role/r"}}}),
     "userIdentity.invokedBy", "actor", MAX_IDENTITY, lambda n: "i" * n),
    (cloudtrail_record(), "userIdentity.accessKeyId", "accessKeyId", MAX_CREDENTIAL,
     lambda n: "AKIA" + "0" * (n - 4)),
    (cloudtrail_record(), "eventID", "eventID", MAX_EVENT_ID, lambda n: "e" * n),
    (GCP_RECORDS[0], "insertId", "insertId", MAX_EVENT_ID, lambda n: "i" * n),
    (K8S_RECORDS[0], "auditID", "auditID", MAX_EVENT_ID, lambda n: "a" * n),
    (cloudtrail_record(userIdentity={"type": "AWSService", "invokedBy": "ec2.amazonaws.com"}),
     "recipientAccountId", "account", MAX_TENANT, lambda n: "1" * n),
    (GCP_RECORDS[0], "protoPayload.authenticationInfo.principalEmail", "principal",
     MAX_IDENTITY, lambda n: "x" * (n - 9) + "@p1.iam.x"),
    (GCP_RECORDS[0], "protoPayload.methodName", "methodName", MAX_OPERATION,
     lambda n: "m" * n),
    (GCP_RECORDS[0], "protoPayload.serviceName", "serviceName", MAX_SERVICE,
     lambda n: "s" * n),
    (GCP_RECORDS[0], "resource.labels.project_id", "project", MAX_TENANT, lambda n: "p" * n),
    (GCP_RECORDS[1], "protoPayload.authenticationInfo.serviceAccountKeyName",
     "serviceAccountKeyName", MAX_CREDENTIAL, lambda n: "//iam/keys/" + "k" * n),
    (GCP_RECORDS[2], "protopayload.authenticationinfo.principalsubject", "principal",
     MAX_IDENTITY, lambda n: "principal://" + "s" * (n - 12)),
    (K8S_RECORDS[0], "user.username", "user.username", MAX_IDENTITY, lambda n: "u" * n),
    (K8S_RECORDS[0], "verb", "verb", MAX_VERB, lambda n: "v" * n),
    (K8S_RECORDS[0], "objectRef.resource", "objectRef.resource", MAX_K8S_NAME,
     lambda n: "r" * n),
    (K8S_RECORDS[1], "objectRef.subresource", "objectRef.subresource", MAX_K8S_NAME,
     lambda n: "s" * n),
    (K8S_RECORDS[2], "impersonatedUser.username", "user.username", MAX_IDENTITY,
     lambda n: "i" * n),
]


@pytest.mark.parametrize(("base", "path", "field", "limit", "make"), IDENTIFYING,
                         ids=[f"{case[1]}-{i}" for i, case in enumerate(IDENTIFYING)])
def test_identifying_field__at_its_bound_an_event__past_it_a_named_dead_letter(
        base, path, field, limit, make) -> None:
    # ``make(n)`` gives a value whose field (named in the message) is ``n`` characters long
    events, stats, dead = _parse(_set(base, path, make(limit)))
    assert len(events) == 1 and dead.items == []
    events, stats, dead = _parse(_set(base, path, make(limit + 1)))
    assert events == []
    assert dead.reasons() == ["oversized_field"]
    assert dead.items[0]["message"].startswith(f"{field} is {limit + 1:,} characters, over "
                                               f"the {limit:,}")
    assert dead.items[0]["raw_size"] > limit
    assert sum(stats.dead_letters.values()) == 1


def test_a_200_kb_event_name__dead_letter_not_a_model_key() -> None:
    # before: the name became the action, kept in every capped table of the identity
    events, stats, dead = _parse(cloudtrail_record(eventName="Get" + "x" * 200_000))
    assert events == []
    assert [(d["reason"], d["source"]) for d in dead.items] == [
        ("oversized_field", "aws.cloudtrail")]
    assert stats.dead_letters[("aws.cloudtrail", "oversized_field")] == 1


def test_gke_entry__long_principal_and_cluster_are_dead_letters() -> None:
    gke = {"insertId": "g1", "timestamp": "2026-11-23T08:35:46Z",
           "resource": {"type": "k8s_cluster", "labels": {"cluster_name": "c1",
                                                           "project_id": "p1"}},
           "protoPayload": {"serviceName": "k8s.io", "methodName": "io.k8s.core.v1.pods.list",
                            "authenticationInfo": {"principalEmail": "a@b.com"},
                            "resourceName": "core/v1/namespaces/n/pods"}}
    assert [e.action for e in _parse(gke)[0]] == ["k8s:pods.list"]
    for path, value, field in (
            ("protoPayload.authenticationInfo.principalEmail", "a" * 3000, "user.username"),
            ("resource.labels.cluster_name", "c" * 129, "cluster"),
            ("protoPayload.methodName", "m" * 257, "methodName")):
        _, _, dead = _parse(_set(gke, path, value))
        assert dead.reasons() == ["oversized_field"]
        assert dead.items[0]["message"].startswith(f"{field} is ")


# (source record, dotted path, event field, bound, what the field adds to the value)
FREE_TEXT = [
    (cloudtrail_record(), "userAgent", "user_agent", MAX_USER_AGENT, ""),
    (cloudtrail_record(), "awsRegion", "region", MAX_REGION, ""),
    (cloudtrail_record(), "errorCode", "error_code", MAX_ERROR, ""),
    (cloudtrail_record(requestParameters={"bucketName": "b"}), "requestParameters.bucketName",
     "resource", MAX_RESOURCE, ""),
    (GCP_RECORDS[0], "protoPayload.requestMetadata.callerSuppliedUserAgent", "user_agent",
     MAX_USER_AGENT, ""),
    (GCP_RECORDS[0], "protoPayload.resourceName", "resource", MAX_RESOURCE, ""),
    (GCP_RECORDS[0], "resource.labels.zone", "region", MAX_REGION, ""),
    (GCP_RECORDS[2], "protopayload.resourcename", "resource", MAX_RESOURCE, ""),
    (K8S_RECORDS[0], "userAgent", "user_agent", MAX_USER_AGENT, ""),
    (K8S_RECORDS[0], "objectRef.name", "resource", MAX_RESOURCE, "shop/"),
]


@pytest.mark.parametrize(("base", "path", "field", "limit", "prefix"), FREE_TEXT,
                         ids=[f"{case[1]}-{i}" for i, case in enumerate(FREE_TEXT)])
def test_free_text_field__cut_to_its_bound_and_the_cut_said(base, path, field, limit,
                                                            prefix) -> None:
    long = "z" * (limit * 3)
    events, _, dead = _parse(_set(base, path, long))
    assert dead.items == []
    [event] = events
    assert getattr(event, field) == (prefix + long)[:limit]
    assert event.attributes["cut"] == {field: len(prefix + long)}
    events, _, _ = _parse(_set(base, path, "z" * (limit - len(prefix))))
    assert "cut" not in events[0].attributes


def test_user_agent_in_brackets__within_the_bound_once_stripped_is_not_said_cut() -> None:
    agent = "[" + "a" * MAX_USER_AGENT + "]"
    [event] = _parse(cloudtrail_record(userAgent=agent))[0]
    assert event.user_agent == "a" * MAX_USER_AGENT and "cut" not in event.attributes


def test_role_arn_of_another_account__an_absurd_one_names_no_target_tenant() -> None:
    good = cloudtrail_record(eventName="AssumeRole",
                             requestParameters={"roleArn": "arn:aws:iam::999:role/r"})
    assert _parse(good)[0][0].target_tenant == "999"
    long_account = "arn:aws:iam::" + "9" * 200 + ":role/r"
    bad = cloudtrail_record(eventName="AssumeRole", requestParameters={"roleArn": long_account})
    [event] = _parse(bad)[0]
    assert event.target_tenant is None


def test_a_resource_owned_by_another_account_names_it_as_target_tenant() -> None:
    """An object written to another account's bucket, or encrypted with another
    account's KMS key: the ARN does not say whose, ``resources[].accountId`` does."""
    def put(owner: str) -> dict:
        return cloudtrail_record(eventName="PutObject", resources=[
            {"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::drop/exfil.tgz"},
            {"accountId": owner, "type": "AWS::S3::Bucket", "ARN": "arn:aws:s3:::drop"}])
    [foreign] = _parse(put("444455556666"))[0]
    [own] = _parse(put(foreign.tenant))[0]
    assert (foreign.target_tenant, own.target_tenant) == ("444455556666", None)
    assert foreign.resource == "arn:aws:s3:::drop/exfil.tgz"
    for odd in ("4" * 200, f"{foreign.tenant} ", "aws", "44445555666a"):
        [absurd] = _parse(put(odd))[0]
        assert absurd.target_tenant is None, odd  # an account id is twelve digits


def test_caller_longer_than_any_host_name__unknown_network_no_prefix() -> None:
    host = "h" * (MAX_HOST - 14) + ".amazonaws.com"
    [event] = _parse(cloudtrail_record(sourceIPAddress=host))[0]
    assert (event.network, event.network_prefix) == ("cloud_service", host)
    [event] = _parse(cloudtrail_record(sourceIPAddress="h" + host))[0]
    assert (event.source_ip, event.network, event.network_prefix) == (None, "unknown", None)
