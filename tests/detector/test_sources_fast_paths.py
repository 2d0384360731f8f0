"""The sources' fast paths against their general twins, and the caches behind them.

A fast path takes the common record shape in one function with cached facts; the general
function is the definition. Random mutations of realistic records must give the same Event
(every field) or the same refusal from both, and a cached fact must never leak from one
record to another that differs in any field the fact depends on.
"""

from __future__ import annotations

from typing import Any, Callable

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.identity import Resolver
from detector.sources import gcp, k8s, stages
from detector.sources.common import (
    MAX_USER_AGENT,
    NETWORK_CACHE,
    USER_AGENT_CACHE,
    RecordError,
    SkipRecord,
    classify_network,
    parse_time,
    user_agent,
)

GCP_RECORDS: list[dict[str, Any]] = [
    {"insertId": "a1", "timestamp": "2026-11-23T08:35:46.026915998Z", "severity": "NOTICE",
     "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
     "resource": {"type": "dataflow_step", "labels": {"project_id": "p1", "zone": "eu-w1"}},
     "protoPayload": {
         "status": {}, "serviceName": "dataflow.googleapis.com",
         "methodName": "dataflow.jobs.create", "resourceName": "projects/p1",
         "authenticationInfo": {"principalEmail": "etl@p1.iam.gserviceaccount.com"},
         "requestMetadata": {"callerIp": "10.128.1.228",
                             "callerSuppliedUserAgent": "gl-python/3.11 grpc/1.66"}}},
    {"insertId": "a2", "timestamp": "2026-11-23T12:09:43Z",
     "logName": "projects/p2/logs/cloudaudit.googleapis.com%2Fdata_access",
     "resource": {"type": "bigquery_dataset", "labels": {"location": "US"}},
     "protoPayload": {
         "status": {"code": 7, "message": "denied"}, "serviceName": "bigquery.googleapis.com",
         "methodName": "google.cloud.bigquery.v2.TableService.InsertTable",
         "authenticationInfo": {
             "principalEmail": "admin@example.com",
             "serviceAccountKeyName": "//iam.googleapis.com/projects/p2/keys/abc123",
             "serviceAccountDelegationInfo": [
                 {"firstPartyPrincipal": {"principalEmail": "ci@p2.iam.gserviceaccount.com"}}]},
         "metadata": {"identityDelegationChain": ["projects/-/serviceAccounts/x@y"]},
         "requestMetadata": {"callerIp": "private"}}},
    {"insertid": "a3", "timestamp": "2026-11-23T12:09:43+02:00",
     "protopayload": {"servicename": "iam.googleapis.com", "methodname": "SetIamPolicy",
                      "authenticationinfo": {"principalsubject": "principal://x/sub"},
                      "requestmetadata": {"callerip": "203.0.113.9"}}},
]

K8S_RECORDS: list[dict[str, Any]] = [
    {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a1",
     "stage": "ResponseComplete", "verb": "update",
     "requestURI": "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices/x",
     "user": {"username": "system:serviceaccount:kube-system:endpointslice-controller",
              "groups": ["system:serviceaccounts"]},
     "sourceIPs": ["10.20.1.195"], "userAgent": "kube-controller-manager/v1.30.5",
     "objectRef": {"resource": "endpointslices", "namespace": "shop", "name": "x"},
     "responseStatus": {"code": 200}, "requestReceivedTimestamp": "2026-11-22T00:02:37.58Z",
     "stageTimestamp": "2026-11-22T00:02:37.59Z",
     "annotations": {"authorization.k8s.io/decision": "allow"}},
    {"kind": "Event", "auditID": "a2", "stage": "ResponseStarted", "verb": "create",
     "requestURI": "/api/v1/namespaces/n/pods/p/exec",
     "user": {"username": "dev@example.com", "extra": {
         "authentication.kubernetes.io/pod-name": ["runner-7"],
         "authentication.kubernetes.io/credential-id": ["ASIA123"]}},
     "sourceIPs": ["203.0.113.4"], "userAgent": "kubectl/v1.30",
     "objectRef": {"resource": "pods", "subresource": "exec", "namespace": "n", "name": "p"},
     "responseStatus": {"code": 403, "reason": "Forbidden"},
     "requestReceivedTimestamp": "2026-11-22T00:02:37Z"},
    {"kind": "Event", "auditID": "a3", "stage": "RequestReceived", "verb": "get",
     "requestURI": "/healthz", "user": {"username": "system:node:ip-10-0-0-1"},
     "impersonatedUser": {"username": "system:serviceaccount:n:s",
                          "groups": ["system:masters"]},
     "objectRef": {}, "requestReceivedTimestamp": "2026-11-22T02:02:37Z"},
]

_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=12),
    st.sampled_from(["", "private", "gce-internal-ip", "203.0.113.7", "2026-11-23T08:35:46Z",
                     "2026-11-23T08:35:46", "1999-01-01T00:00:00+05:00", "9999-12-31T23:59:59Z",
                     "service-1@gcp-sa-x.iam.gserviceaccount.com", "a@b.com", "langchain/0.1",
                     "projects/p/keys/k", "compute.instances.list", "k8s.io", "system:x",
                     "system:serviceaccount:a:b", "arn:aws:sts::1:assumed-role/r/s", "get",
                     "ResponseComplete", "system:node:n1"]))
_VALUES = st.recursive(_SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=3), st.dictionaries(st.sampled_from(
        ["principalEmail", "code", "project_id", "location", "callerIp", "username",
         "namespace", "name", "resource", "extra", "x"]), children,
        max_size=3)), max_leaves=8)

SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _objects(value: Any) -> list[dict[str, Any]]:
    """Every object in ``value``, outermost first."""
    if isinstance(value, list):
        return [found for item in value for found in _objects(item)]
    if not isinstance(value, dict):
        return []
    return [value] + [found for child in value.values() for found in _objects(child)]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """A seed record with up to four fields, at any depth, removed or replaced."""
    record = orjson.loads(orjson.dumps(draw(st.sampled_from(seeds))))
    for _ in range(draw(st.integers(0, 4))):
        objects = _objects(record)
        target = objects[draw(st.integers(0, len(objects) - 1))]
        key = draw(st.sampled_from(sorted(target) + ["x"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(_VALUES)
    return record


def outcome(func: Callable[..., Any], record: dict[str, Any], *args: Any) -> tuple[Any, ...]:
    """The Event as a dict, or the refusal's class and reason, from a fresh resolver."""
    try:
        event = func(record, Resolver(), *args)
    except (RecordError, SkipRecord) as err:
        return type(err).__name__, err.args[0]
    return "event", event.to_dict()


@SETTINGS
@given(mutated(GCP_RECORDS))
def test_gcp_fast_path_matches_general(record: dict[str, Any]) -> None:
    assert outcome(gcp.normalise, record, {}) == outcome(gcp.normalise_general, record, {})


def test_gcp_seed_records_all_normalise() -> None:
    """The seeds are valid: the property above compares events, not only refusals."""
    for record in GCP_RECORDS:
        kind, event = outcome(gcp.normalise, record, {})
        assert kind == "event" and event["source"] == "gcp.audit"


def test_gcp_principal_cache_keeps_per_record_credentials() -> None:
    """Same principal, different key and chain: the cached principal facts are shared, the
    credential, actor and outcome are the record's own."""
    first = orjson.loads(orjson.dumps(GCP_RECORDS[0]))
    second = orjson.loads(orjson.dumps(GCP_RECORDS[0]))
    auth = second["protoPayload"]["authenticationInfo"]
    auth["serviceAccountKeyName"] = "projects/p1/serviceAccounts/etl/keys/k9"
    auth["serviceAccountDelegationInfo"] = [
        {"firstPartyPrincipal": {"principalEmail": "boss@example.com"}}]
    second["protoPayload"]["status"] = {"code": 7}
    resolver = Resolver()
    one, two = gcp.normalise(first, resolver, {}), gcp.normalise(second, resolver, {})
    assert (one.identity, one.identity_kind) == (two.identity, two.identity_kind)
    assert (one.credential_id, one.credential_type, one.actor) == (None, "token", None)
    assert (two.credential_id, two.credential_type, two.actor) == ("k9", "long_term",
                                                                   "boss@example.com")
    assert (one.outcome, two.outcome, two.error_code) == ("success", "failure", "7")
    assert (one.attributes, one.network) == ({}, "private")
    assert two.attributes["delegation_chain"] == ["boss@example.com"]


def test_gcp_operation_cache_keys_on_service_and_method() -> None:
    """The same method name under another service is another action."""
    other = orjson.loads(orjson.dumps(GCP_RECORDS[0]))
    other["protoPayload"]["serviceName"] = "compute.googleapis.com"
    resolver = Resolver()
    first = gcp.normalise(GCP_RECORDS[0], resolver, {})
    second = gcp.normalise(other, resolver, {})
    assert (first.action, second.action) == ("dataflow:dataflow.jobs.create",
                                             "compute:dataflow.jobs.create")
    assert first.read_only is second.read_only is False


@SETTINGS
@given(mutated(K8S_RECORDS), st.sampled_from([{}, {"cluster": "prod"},
                                               {"cluster": "prod", "region": "eu-west-1"}]),
       st.booleans())
def test_k8s_fast_path_matches_general(record: dict[str, Any], hints: dict[str, Any],
                                       partial: bool) -> None:
    assert outcome(k8s.normalise, record, hints, partial) == \
        outcome(k8s.normalise_general, record, hints, partial)


def test_k8s_seed_records_all_normalise() -> None:
    for record in K8S_RECORDS:
        kind, event = outcome(k8s.normalise, record, {"cluster": "c"})
        assert kind == "event" and event["identity"].startswith("c/")


def test_k8s_user_cache_keys_on_cluster_and_keeps_per_record_facts() -> None:
    """One username in two clusters is two identities; a cached username never lends its
    credential, session or namespace to a record that has its own."""
    plain = orjson.loads(orjson.dumps(K8S_RECORDS[0]))
    other = orjson.loads(orjson.dumps(K8S_RECORDS[0]))
    other["user"]["extra"] = {"authentication.kubernetes.io/pod-name": ["ctl-1"],
                              "authentication.kubernetes.io/credential-id": ["JTI-9"]}
    other["objectRef"]["namespace"] = "billing"
    resolver = Resolver()
    first = k8s.normalise(plain, resolver, {"cluster": "a"})
    second = k8s.normalise(other, resolver, {"cluster": "b"})
    third = k8s.normalise(plain, resolver, {})
    name = plain["user"]["username"]
    assert (first.identity, second.identity, third.identity) == (f"a/{name}", f"b/{name}",
                                                                 name)
    assert (first.credential_id, first.credential_type, first.session) == (None, "token", None)
    assert (second.credential_id, second.credential_type, second.session) == (
        "JTI-9", "token", "ctl-1")
    assert first.attributes == {"namespace": "shop", "authz_decision": "allow",
                                "sa_namespace": "kube-system",
                                "sa_name": "endpointslice-controller"}
    assert second.attributes["namespace"] == "billing"
    assert first.identity_kind == "cloud_service"


def test_cloudtrail_resource_from_parameters_in_allow_list_order() -> None:
    """The key-set test only skips parameter objects with no allow-listed key at all."""
    from detector.sources.cloudtrail import _resource_and_target

    assert _resource_and_target({"requestParameters": {"filter": "x", "maxItems": 5}},
                                "1", {}) == (None, None)
    params = {"roleName": "", "bucketName": ["not", "a", "string"], "keyId": "k-1",
              "name": "later", "roleArn": "arn:aws:iam::2:role/r"}
    assert _resource_and_target({"requestParameters": params}, "1", {}) == (
        "arn:aws:iam::2:role/r", "2")
    del params["roleArn"]
    assert _resource_and_target({"requestParameters": params}, "1", {}) == ("k-1", None)


def test_fast_path_caches_keep_no_oversized_keys() -> None:
    """A long principal is normalised like any other but never kept in a cache, so the
    caches' memory stays bounded by their entry limit times a small key; past the bound
    of real names, the record is an ``oversized_field`` dead letter and no cache sees it."""
    record = orjson.loads(orjson.dumps(GCP_RECORDS[0]))
    email = "x" * 1000 + "@p1.iam.gserviceaccount.com"
    record["protoPayload"]["authenticationInfo"]["principalEmail"] = email
    record["protoPayload"]["methodName"] = "m" * 256
    event = gcp.normalise(record, Resolver(), {})
    assert (event.identity, event.action) == (email, "dataflow:" + "m" * 256)
    assert email not in gcp._PRINCIPALS
    record["protoPayload"]["methodName"] = "m" * 5000
    with pytest.raises(RecordError, match="methodName is 5,000 characters, over the 256"):
        gcp.normalise(record, Resolver(), {})
    assert ("dataflow.googleapis.com", "m" * 5000) not in gcp._OPERATIONS
    audit = orjson.loads(orjson.dumps(K8S_RECORDS[1]))
    audit["user"]["username"] = "u" * 1000
    event = k8s.normalise(audit, Resolver(), {})
    assert event.identity == "u" * 1000 and ("u" * 1000, None) not in k8s._USERS
    audit["user"]["username"] = "u" * 5000
    with pytest.raises(RecordError, match="user.username is 5,000 characters"):
        k8s.normalise(audit, Resolver(), {})
    assert ("u" * 5000, None) not in k8s._USERS


def test_shared_caches_keep_no_oversized_keys() -> None:
    """The user-agent and network caches (keyed on raw values) keep the same bound."""
    agent = "Terraform/1.9 " + "a" * 5000
    assert user_agent(agent) == (agent[:MAX_USER_AGENT], user_agent(agent[:100])[1])
    assert agent not in USER_AGENT_CACHE and "Terraform/1.9 " + "a" * 86 in USER_AGENT_CACHE
    host = "h" * 5000
    assert classify_network(host) == (None, "unknown", None)
    assert host not in NETWORK_CACHE


STAGE_TIMES: list[Any] = [
    "2026-12-01T23:45:14.994292Z", "2026-12-01T23:45:14Z", "2026-12-01T23:45:14+00:00",
    "2026-12-01T23:45:14+02:00", "2026-12-01T23:45:14", "1999-12-31T23:59:59Z",
    "2101-01-01T00:00:00Z", "2100-12-31T23:59:59-05:00", "Nov 18, 2017 1:21:51 AM",
    "1796168714", 1796168714.5, "", "not a time", None, ["2026-12-01T23:45:14Z"],
]


@given(st.one_of(st.sampled_from(STAGE_TIMES), st.text(max_size=40),
                 st.datetimes().map(lambda when: when.isoformat() + "Z")))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_stage_epoch_matches_parse_time(value: Any) -> None:
    """The stage merger's short path to epoch seconds gives what ``parse_time`` gives."""
    when = parse_time(value)
    assert stages._epoch(value) == (None if when is None else when.timestamp())
