"""One hand-written test per item of ../shared/real_logs/QUIRKS.md (numbered as there).

Items 11 and 21 concern formats we do not support (GitHub, Okta, OpenAI, Anthropic): those
records are recognised and skipped with reason ``unsupported_format``.
"""

from __future__ import annotations

import gzip
import itertools
from datetime import datetime, timezone

import orjson
import pytest

from detector.sources import ListDeadLetters, parse_payload
from detector.sources.common import classify_network, parse_time, user_agent
from detector.stats import RunStats

UTC = timezone.utc
_IDS = itertools.count()


def ct(**extra: object) -> dict:
    record = {"eventVersion": "1.08", "eventTime": "2023-07-10T11:42:18Z",
              "eventSource": "ec2.amazonaws.com", "eventName": "DescribeInstances",
              "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.9",
              "userAgent": "aws-cli/2.0", "eventID": f"e-{next(_IDS)}",
              "recipientAccountId": "111111111111",
              "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111111111111:user/u",
                               "accountId": "111111111111", "accessKeyId": "AKIAEXAMPLE0001"}}
    record.update(extra)
    return record


def gcp(**payload: object) -> dict:
    proto = {"@type": "type.googleapis.com/google.cloud.audit.AuditLog",
             "authenticationInfo": {"principalEmail": "ci@proj.iam.gserviceaccount.com"},
             "methodName": "google.iam.admin.v1.CreateServiceAccountKey",
             "serviceName": "iam.googleapis.com", "resourceName": "projects/proj/x",
             "requestMetadata": {"callerIp": "198.51.100.4"}}
    proto.update(payload)
    return {"insertId": "g-1", "logName": "projects/proj/logs/cloudaudit.googleapis.com%2F"
            "activity", "protoPayload": proto, "resource": {"labels": {"project_id": "proj"}},
            "timestamp": "2024-01-01T00:00:00.123Z"}


def k8s(**extra: object) -> dict:
    record = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "k-1",
              "stage": "ResponseComplete", "verb": "get", "requestURI": "/api/v1/pods",
              "user": {"username": "system:serviceaccount:ns:app"},
              "sourceIPs": ["10.0.0.9"], "objectRef": {"resource": "pods", "namespace": "ns"},
              "requestReceivedTimestamp": "2024-01-01T00:00:00.000001Z",
              "responseStatus": {"code": 200}}
    record.update(extra)
    return record


def parse(data: object, raw: bytes | None = None) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(raw if raw is not None else orjson.dumps(data), origin="q",
                           stats=stats, dead_letters=dead)
    assert stats.balanced()
    return events, stats, dead


def one(data: object) -> object:
    events, _, dead = parse(data)
    assert len(dead) == 0, dead.items
    assert len(events) == 1
    return events[0]


def test_q01_envelopes_are_detected_by_shape() -> None:
    record = ct()
    bridge = {"version": "0", "detail-type": "AWS API Call via CloudTrail", "detail": record}
    shapes = [
        orjson.dumps({"Records": [record]}),
        orjson.dumps({"Records": [record]}, option=orjson.OPT_INDENT_2),
        orjson.dumps([record]),
        orjson.dumps(record),
        orjson.dumps(record) + b"\n",
        orjson.dumps(dict(record, **{"@version": "1", "@timestamp": "2023-07-10T11:42:18.000Z"})),
        orjson.dumps(bridge),
        orjson.dumps({"Body": orjson.dumps(bridge).decode()}),
    ]
    results = [parse(None, raw=shape)[0] for shape in shapes]
    assert all(len(events) == 1 for events in results)
    assert len({orjson.dumps(events[0].to_dict()) for events in results}) == 1
    _, _, dead = parse(None, raw=b"eventTime,eventName\n2023-07-10,DescribeInstances\n")
    assert dead.reasons() == ["unknown_format"]


def test_q02_gzip_by_magic_bytes() -> None:
    record = ct()
    events, _, _ = parse(None, raw=gzip.compress(orjson.dumps({"Records": [record]})))
    assert [e.event_id for e in events] == [record["eventID"]]


def test_q03_digest_objects_are_not_events() -> None:
    events, stats, _ = parse({"digestStartTime": "2020-09-11T19:36:49Z", "logFiles": [],
                              "awsAccountId": "111111111111"})
    assert events == [] and stats.skipped == {("aws.cloudtrail", "digest"): 1}


def test_q04_malformed_input_is_isolated() -> None:
    first = orjson.dumps(ct(eventID="a"), option=orjson.OPT_INDENT_2)
    second = orjson.dumps(ct(eventID="b"), option=orjson.OPT_INDENT_2)
    events, _, dead = parse(None, raw=first + b"\n" + second)  # missing comma
    assert [e.event_id for e in events] == ["a", "b"] and len(dead) == 0
    _, _, dead = parse({"kind": 0})
    assert dead.reasons() == ["unknown_format"]
    lines = b"\n".join(orjson.dumps(k8s(auditID=f"k-{i}")) for i in range(3))
    events, _, _ = parse(None, raw=lines)
    assert len(events) == 3


def test_q05_one_file_mixes_dialects() -> None:
    aks = {"category": "kube-audit-admin", "time": "2025-09-30T06:23:35.101355367Z",
           "resourceId": "/SUBSCRIPTIONS/1/RESOURCEGROUPS/RG/PROVIDERS/"
                         "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/PROD-AKS",
           "properties": {"log": orjson.dumps(k8s(auditID="aks-1")).decode()}}
    raw = b"\n".join(orjson.dumps(item) for item in (ct(), gcp(), k8s(), aks))
    events, _, _ = parse(None, raw=raw)
    assert [e.source for e in events] == ["aws.cloudtrail", "gcp.audit", "k8s.audit",
                                          "k8s.audit"]
    assert events[3].identity == "prod-aks/system:serviceaccount:ns:app"


def test_q06_records_keep_input_order_whatever_their_times() -> None:
    records = [ct(eventID="late", eventTime="2023-07-10T12:00:00Z"),
               ct(eventID="early", eventTime="2023-07-10T11:00:00Z")]
    events, _, _ = parse({"Records": records})
    assert [e.event_id for e in events] == ["late", "early"]
    assert events[1].ts < events[0].ts


@pytest.mark.parametrize("record, expected", [
    (ct(eventTime="2023-07-10T11:42:18Z"), datetime(2023, 7, 10, 11, 42, 18, tzinfo=UTC)),
    ({k: v for k, v in ct(**{"@timestamp": "2023-07-10T11:42:18.000Z"}).items()
      if k != "eventTime"}, datetime(2023, 7, 10, 11, 42, 18, tzinfo=UTC)),
    (ct(eventTime="2022-03-29 17:16:36.123456789"),
     datetime(2022, 3, 29, 17, 16, 36, 123456, tzinfo=UTC)),
])
def test_q07_cloudtrail_time_forms(record: dict, expected: datetime) -> None:
    assert one(record).time == expected


def test_q07_redacted_time_is_a_bad_time_dead_letter() -> None:
    _, _, dead = parse(ct(eventTime="redacted"))
    assert dead.reasons() == ["bad_time"]


def test_q08_non_iso_dates_inside_payloads() -> None:
    record = ct(responseElements={"credentials": {"expiration": "Nov 18, 2017 1:21:51 AM"}})
    assert one(record).event_id == record["eventID"]
    assert parse_time("Nov 18, 2017 1:21:51 AM") == datetime(2017, 11, 18, 1, 21, 51,
                                                            tzinfo=UTC)
    assert parse_time("Oct 8, 2024, 4:15:32 PM") == datetime(2024, 10, 8, 16, 15, 32,
                                                            tzinfo=UTC)


@pytest.mark.parametrize("stamp, micros", [("2024-01-01T00:00:00.123Z", 123000),
                                           ("2024-01-01T00:00:00.123456Z", 123456),
                                           ("2024-01-01T00:00:00.123456789Z", 123456),
                                           ("2024-01-01T00:00:00Z", 0)])
def test_q09_gcp_fraction_digits(stamp: str, micros: int) -> None:
    event = one(dict(gcp(), timestamp=stamp))
    assert event.time == datetime(2024, 1, 1, tzinfo=UTC).replace(microsecond=micros)


@pytest.mark.parametrize("stamp, expected", [
    ("2022-01-24T04:59:49.2279838Z", datetime(2022, 1, 24, 4, 59, 49, 227983, tzinfo=UTC)),
    ("2022-01-24T04:59:49.227983812Z", datetime(2022, 1, 24, 4, 59, 49, 227983, tzinfo=UTC)),
    ("2025-01-15 14:20:35.456", datetime(2025, 1, 15, 14, 20, 35, 456000, tzinfo=UTC)),
    ("2021-07-30T11:29:26.161064+00:00", datetime(2021, 7, 30, 11, 29, 26, 161064, tzinfo=UTC)),
    ("2021-07-30T13:29:26.1+02:00", datetime(2021, 7, 30, 11, 29, 26, 100000, tzinfo=UTC)),
])
def test_q10_azure_time_forms(stamp: str, expected: datetime) -> None:
    record = {"category": "ServicePrincipalSignInLogs", "time": stamp,
              "properties": {"servicePrincipalId": "AB-1", "userId": None, "ipAddress": ""}}
    assert one(record).time == expected


def test_q11_epoch_times_and_unsupported_vendors() -> None:
    assert parse_time(1700000000000) == parse_time(1700000000) == \
        datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    github = {"action": "repo.create", "actor": "octocat", "@timestamp": 1700000000000}
    openai = {"id": "x", "type": "api_key.created", "effective_at": 1700000000,
              "actor": {"type": "api_key"}}
    events, stats, _ = parse([github, openai])
    assert events == [] and stats.skipped == {("unknown", "unsupported_format"): 2}


def test_q12_v1beta1_timestamp() -> None:
    record = k8s(apiVersion="audit.k8s.io/v1beta1", timestamp="2018-10-25T13:58:49Z",
                 metadata={"creationTimestamp": "2018-10-25T13:58:49Z"})
    del record["requestReceivedTimestamp"]
    assert one(record).time == datetime(2018, 10, 25, 13, 58, 49, tzinfo=UTC)


@pytest.mark.parametrize("identity, key, kind", [
    ({"type": "AWSService", "invokedBy": "rds.amazonaws.com"},
     "aws-service:rds.amazonaws.com", "cloud_service"),
    ({"accountId": "111111111111", "invokedBy": "lambda.amazonaws.com"},
     "aws-service:lambda.amazonaws.com", "cloud_service"),
    ({"type": "AWSAccount", "principalId": "AIDA1", "accountId": "222222222222"},
     "aws-account:222222222222", "external"),
    ({"type": "Root", "arn": "arn:aws:iam::111111111111:root", "accountId": "111111111111"},
     "arn:aws:iam::111111111111:root", "human"),
    ({"type": "FederatedUser", "arn": "arn:aws:sts::111111111111:federated-user/bob",
      "accountId": "111111111111"}, "arn:aws:sts::111111111111:federated-user/bob", "unknown"),
    ({"type": "IdentityCenterUser", "accountId": "111111111111",
      "onBehalfOf": {"userId": "u-9"}}, "u-9", "human"),
    (None, "aws-service:ec2.amazonaws.com", "cloud_service"),
])
def test_q13_user_identity_shapes(identity: dict | None, key: str, kind: str) -> None:
    record = ct(userIdentity=identity)
    if identity is None:
        del record["userIdentity"]
    event = one(record)
    assert (event.identity, event.identity_kind) == (key, kind)


def test_q13_unknown_identity_is_a_dead_letter() -> None:
    record = ct(userIdentity={"type": "Unknown"})
    del record["eventSource"]
    _, _, dead = parse(record)
    assert dead.reasons() == ["missing_identity"]


def test_q14_session_naming() -> None:
    def session(name: str, role: str = "app") -> dict:
        return {"type": "AssumedRole", "accountId": "111111111111",
                "arn": f"arn:aws:sts::111111111111:assumed-role/{role}/{name}",
                "sessionContext": {"attributes": {"mfaAuthenticated": "true"}}}
    records = [ct(userIdentity=session("i-0abcdef1234567890")),
               ct(userIdentity=session("aws-go-sdk-1689000000")),
               ct(userIdentity=session("a@example.com", "AWSReservedSSO_Dev_0123456789abcdef"))]
    events, _, _ = parse({"Records": records})
    assert [e.session for e in events] == ["ec2-instance", "aws-go-sdk-*", "a@example.com"]
    assert [e.identity_kind for e in events] == ["workload", "workload", "human"]
    assert all(e.attributes["mfa"] is True for e in events)


def test_q15_ec2_role_delivery() -> None:
    identity = {"type": "AssumedRole", "accountId": "1",
                "arn": "arn:aws:sts::1:assumed-role/web/i-0abcdef1234567890",
                "sessionContext": {"ec2RoleDelivery": "1.0"}}
    v1 = one(ct(userIdentity=identity))
    v2 = one(ct(userIdentity=dict(identity, sessionContext={"ec2RoleDelivery": "2.0"})))
    assert (v1.attributes["ec2_role_delivery"], v2.attributes["ec2_role_delivery"]) == \
        ("1.0", "2.0")


@pytest.mark.parametrize("value, expected", [
    ("ec2.amazonaws.com", (None, "cloud_service", "ec2.amazonaws.com")),
    ("AWS Internal", (None, "internal", "aws-internal")),
    ("192.168.10.20", ("192.168.10.20", "private", "192.168.10.0/24")),
    ("211.9.016.253", (None, "unknown", None)),
    ("2001:db8:1:2::5", ("2001:db8:1:2::5", "public", "2001:db8:1::/48")),
    ("", (None, "unknown", None)),
])
def test_q16_source_address_forms(value: str, expected: tuple) -> None:
    assert classify_network(value) == expected
    assert one(ct(sourceIPAddress=value)).network == expected[1]


def test_q17_user_agent_forms() -> None:
    assert user_agent("[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488]") == \
        ("S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488", "console")
    assert user_agent("config.amazonaws.com") == ("config.amazonaws.com", "aws-service")
    assert user_agent("AWS Internal") == ("AWS Internal", "aws-internal")
    long_terraform = "APN/1.0 HashiCorp/1.0 Terraform/1.1.0 " + "x" * 700
    cleaned, family = user_agent(long_terraform)
    assert (len(cleaned), family) == (512, "terraform")
    record = ct()
    del record["userAgent"]
    event = one(record)
    assert (event.user_agent, event.agent_family) == (None, None)


def test_q18_gcp_principal_forms() -> None:
    subject = "principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p"
    delegated = gcp(authenticationInfo={
        "principalEmail": "sa@proj.iam.gserviceaccount.com",
        "serviceAccountDelegationInfo": [{"firstPartyPrincipal": {
            "principalEmail": "alice@example.com"}}],
        "serviceAccountKeyName": "//iam.googleapis.com/projects/proj/serviceAccounts/sa/keys/"
                                 "abc123"})
    events, _, _ = parse([gcp(authenticationInfo={"principalSubject": subject,
                                                  "serviceAccountDelegationInfo": [{}]}),
                          delegated, gcp(authenticationInfo={}),
                          gcp(authenticationInfo={"principalEmail":
                                                  "system:gke-master-healthcheck"})])
    assert [e.identity for e in events] == [subject, "sa@proj.iam.gserviceaccount.com",
                                            "gcp-system", "system:gke-master-healthcheck"]
    assert events[0].actor is None
    assert events[1].actor == "alice@example.com"
    assert (events[1].credential_id, events[1].credential_type) == ("abc123", "long_term")
    assert [e.identity_kind for e in events] == ["workload", "workload", "cloud_service",
                                                 "cloud_service"]


def test_q19_kubernetes_user_forms() -> None:
    usernames = ["system:serviceaccount:ns:app", "system:serviceaccounts:default:default",
                 "system:node:ip-10-0-0-1", "system:anonymous", "aksService",
                 "eks:node-manager"]
    records = [k8s(auditID=f"id-{i}", user={"username": name, "extra": {"x": ["y"]}})
               for i, name in enumerate(usernames)]
    records.append(k8s(auditID="imp", impersonatedUser={"username": "bob@example.com"},
                       requestObject={"data": "z" * 100_000}))
    del records[0]["sourceIPs"]
    events, _, _ = parse(records)
    assert [e.identity for e in events] == usernames + ["bob@example.com"]
    assert [e.identity_kind for e in events] == ["workload", "workload", "cloud_service",
                                                 "external", "cloud_service", "cloud_service",
                                                 "human"]
    assert events[0].source_ip is None
    assert events[6].actor == "system:serviceaccount:ns:app"
    assert len(orjson.dumps(events[6].to_dict())) < 2048


def test_q20_azure_identity_forms() -> None:
    activity = {"time": "2024-01-01T00:00:00Z", "category": "Administrative",
                "operationName": {"value": "Microsoft.Compute/virtualMachines/write"},
                "resourceId": "/SUBSCRIPTIONS/ABC/RESOURCEGROUPS/RG", "resultType": "Success",
                "callerIpAddress": "198.51.100.3", "Level": "Informational"}
    records = [
        dict(activity, identity={"claims": {"appid": "APP-1"}}),
        dict(activity, caller="Alice@Example.com",
             identity={"authorization": {"evidence": {"principalType": "User"}}}),
        dict(activity, identity={"authorization": {"evidence": {
            "principalType": "ServicePrincipal", "principalId": "SP-OBJ"}}}),
        dict(activity, category="AuditLogs", operationName="Add member to role",
             properties={"initiatedBy": {"app": {"servicePrincipalId": "SP-2"}}}),
        dict(activity, category="AuditLogs", operationName="Add user",
             InitiatedBy='{"user": {"userPrincipalName": "Admin@Example.com"}}'),
        dict(activity, identity="Some Display Name"),
    ]
    events, _, dead = parse(records)
    assert len(dead) == 0
    assert [(e.identity, e.identity_kind) for e in events] == [
        ("app-1", "workload"), ("alice@example.com", "human"), ("sp-obj", "workload"),
        ("sp-2", "workload"), ("admin@example.com", "human"),
        ("Some Display Name", "unknown")]
    assert events[0].tenant == "abc"
    assert events[0].action == "azure:microsoft.compute/virtualmachines/write"
    assert events[0].read_only is False
    signin = {"category": "ManagedIdentitySignInLogs", "time": "2024-01-01T00:00:00Z",
              "resultType": 0, "properties": {"servicePrincipalId": "MI-1", "userId": None,
                                              "ipAddress": "", "location": {}}}
    mi = one(signin)
    assert (mi.identity, mi.source_ip, mi.outcome, mi.kind_reason) == \
        ("mi-1", None, "success", "managed identity")


def test_q21_okta_records_are_unsupported() -> None:
    okta = {"actor": {"type": "User", "alternateId": "a@b.c"}, "eventType": "user.session.start",
            "published": "2024-08-13T15:58:20.353Z", "client": {"zone": "null"}}
    events, stats, _ = parse(okta)
    assert events == [] and stats.skipped == {("unknown", "unsupported_format"): 1}


def test_q22_unstable_payload_types() -> None:
    records = [ct(eventID="a", requestParameters=None, responseElements=None),
               ct(eventID="b", responseElements=""),
               ct(eventID="c", eventSource="iam.amazonaws.com", eventName="PutRolePolicy",
                  requestParameters={"roleName": "r", "policyDocument": '{"Version":"2012"}'})]
    events, _, _ = parse({"Records": records})
    assert [e.event_id for e in events] == ["a", "b", "c"]
    assert events[2].resource == "r"
    assert "policyDocument" not in orjson.dumps(events[2].to_dict()).decode()


def test_q23_failures_keep_identity() -> None:
    failed = one(ct(errorCode="Client.UnauthorizedOperation", errorMessage="no"))
    assert (failed.outcome, failed.error_code) == ("failure", "Client.UnauthorizedOperation")
    assert failed.identity == "arn:aws:iam::111111111111:user/u"
    denied = one(gcp(status={"code": 7, "details": [{"x": 1}]}))
    assert (denied.outcome, denied.error_code) == ("failure", "7")
    assert one(gcp(status={})).outcome == "success"


def test_q24_event_type_category_and_console_flags() -> None:
    identity = {"type": "AssumedRole", "accountId": "1",
                "arn": "arn:aws:sts::1:assumed-role/admin/session"}
    event = one(ct(userIdentity=identity, eventType="AwsVpceEvent",
                   eventCategory="NetworkActivity", vpcEndpointId="vpce-1",
                   sessionCredentialFromConsole="true",
                   additionalEventData={"bytesTransferredOut": 12.0}))
    assert event.attributes == {"console": True, "event_type": "AwsVpceEvent",
                                "event_category": "NetworkActivity", "vpc_endpoint": "vpce-1"}
    assert (event.identity_kind, event.kind_reason) == ("human", "console session")


def test_q25_vendor_enrichment_is_tolerated() -> None:
    panther = {"p_log_type": "AWS.CloudTrail", "p_event_time": "2021-06-04 09:59:53.650807",
               "eventName": "ListBuckets", "eventSource": "s3.amazonaws.com",
               "userIdentity": {"type": "AWSService", "invokedBy": "s3.amazonaws.com"}}
    assert one(panther).time == datetime(2021, 6, 4, 9, 59, 53, 650807, tzinfo=UTC)
    lowered = {"eventname": "GetRecords", "eventsource": "dynamodb.amazonaws.com",
               "eventtime": "2023-01-10 21:04:02", "awsregion": "eu-west-1",
               "useridentity": {"type": "AWSService", "invokedby": "dynamodb.amazonaws.com"}}
    event = one(lowered)
    assert (event.action, event.region) == ("dynamodb:GetRecords", "eu-west-1")
    assert event.identity == "aws-service:dynamodb.amazonaws.com"


def test_q26_anonymisation_artefacts() -> None:
    event = one(ct(awsRegion="us-northeast-1r", sourceIPAddress="211.9.016.253",
                   recipientAccountId="[ORG_ID]"))
    assert (event.region, event.source_ip, event.network) == ("us-northeast-1r", None,
                                                              "unknown")
    signin = {"category": "ServicePrincipalSignInLogs", "time": "2024-01-01T00:00:00Z",
              "tenantId": "1111111111-902d-4c4b-9f2b-3b1b6c8e0000",
              "properties": {"servicePrincipalId": "<id>"}}
    assert one(signin).tenant == "1111111111-902d-4c4b-9f2b-3b1b6c8e0000"


@pytest.mark.parametrize("value", [[], {}, 12, None, True])
def test_q17_q16_non_string_agent_and_address(value: object) -> None:
    event = one(ct(userAgent=value, sourceIPAddress=value))
    assert (event.user_agent, event.source_ip, event.network) == (None, None, "unknown")


@pytest.mark.parametrize("identity", [
    {"type": "AssumedRole", "arn": ["arn:aws:sts::1:assumed-role/r/s"]},
    {"type": ["AWSService"], "invokedBy": {"x": 1}},
    {"arn": "arn:aws:sts::1:assumed-role/r/s", "sessionContext": {"sessionIssuer": {"arn": []}},
     "type": "AssumedRole"},
])
def test_q13_identity_fields_of_unexpected_types(identity: dict) -> None:
    events, stats, dead = parse(ct(userIdentity=identity))
    assert len(events) + len(dead) == 1
    assert not [d for d in dead.items if d["reason"] == "internal_error"]
