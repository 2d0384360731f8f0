"""Edge cases B01-B13, B26, B27 and B29 from ../shared/edge_cases, with exact expectations."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from detector.sources import ListDeadLetters, parse_payload, read_paths
from detector.stats import RunStats

pytestmark = pytest.mark.shared


def run(paths: list[Path]) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = list(read_paths([str(p) for p in paths], stats=stats, dead_letters=dead))
    assert stats.balanced()
    return events, stats, dead


def payload(data: object) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(data), origin="test", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return events, stats, dead


class TestB01Digest:
    def test_digest_is_skipped_quietly(self, edge_cases: Path) -> None:
        events, stats, dead = run([edge_cases / "B01.json"])
        assert events == []
        assert len(dead) == 0
        assert stats.skipped == {("aws.cloudtrail", "digest"): 1}
        assert stats.records_read == {"aws.cloudtrail": 1}

    def test_gzipped_digest_is_skipped_too(self, edge_cases: Path, tmp_path: Path) -> None:
        import gzip

        target = tmp_path / "digest.json.gz"
        target.write_bytes(gzip.compress((edge_cases / "B01.json").read_bytes()))
        events, stats, _ = run([target])
        assert events == [] and stats.skipped[("aws.cloudtrail", "digest")] == 1


    @pytest.mark.parametrize("name", [
        "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2024/03/04/x.json.gz",
        "123456789012_CloudTrail-Digest_us-east-1_trail_us-east-1_20240304T000000Z.json.gz"])
    def test_digest_told_by_its_key__skipped_even_when_damaged(self, edge_cases: Path,
                                                              tmp_path: Path, name: str) -> None:
        # the kind: a digest object is never a log, whatever its content; a cut one used to
        # be a truncated_gzip dead letter among the logs
        import gzip

        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(gzip.compress((edge_cases / "B01.json").read_bytes())[:100])
        events, stats, dead = run([tmp_path])
        assert events == [] and dead.items == []
        assert stats.skipped == {("aws.cloudtrail", "digest"): 1}
        assert stats.records_read == {"aws.cloudtrail": 1}


class TestB02ThinIdentities:
    def test_all_four_records_come_out_with_resolution_paths(self, edge_cases: Path) -> None:
        events, stats, dead = run([edge_cases / "B02.json"])
        assert len(dead) == 0
        got = [(e.identity, e.identity_resolution, e.identity_kind) for e in events]
        assert got == [
            ("aws-service:kms.amazonaws.com", "event_source", "cloud_service"),
            ("aws-service:cloudtrail.amazonaws.com", "invoked_by", "cloud_service"),
            ("arn:aws:iam::123456789012:role/example-oidc-role", "assumed_role_arn", "workload"),
            ("arn:aws:iam::123456789012:role/app-worker-role", "session_issuer", "workload"),
        ]
        assert stats.identity_resolution == {"event_source": 1, "invoked_by": 1,
                                             "assumed_role_arn": 1, "session_issuer": 1}

    def test_session_and_credential_fields(self, edge_cases: Path) -> None:
        events, _, _ = run([edge_cases / "B02.json"])
        worker = events[3]
        assert worker.session == "app-worker"
        assert worker.credential_id == "ASIAEXAMPLEKEY000001"
        assert worker.credential_type == "temporary"
        assert worker.action == "ec2:DescribeInstances"
        assert worker.source_ip == "203.0.113.11" and worker.network == "public"
        assert worker.tenant == "123456789012"
        assert worker.read_only is True
        assert events[2].session == "web-identity-session"
        assert events[1].resource == "arn:aws:iam::123456789012:role/example-delivery-role"


class TestB03Insights:
    def test_insights_are_kept_apart(self, edge_cases: Path) -> None:
        events, stats, dead = run([edge_cases / "B03.json"])
        assert len(dead) == 0
        assert stats.skipped == {("aws.cloudtrail", "insight"): 2}
        assert stats.events == {} and stats.events_by_kind == {}
        assert stats.insights == {("ApiCallRateInsight", "start"): 1,
                                  ("ApiCallRateInsight", "end"): 1}
        # context only: partial (never learned), no event id, one per attributed identity
        assert [(e.identity, e.partial, e.event_id, e.attributes["insight"]["state"])
                for e in events] == [
            ("arn:aws:iam::123456789012:role/app-worker-role", True, "", "start"),
            ("arn:aws:iam::123456789012:role/app-worker-role", True, "", "end")]
        assert events[0].attributes["insight"]["attributed_arn"] == \
            "arn:aws:sts::123456789012:assumed-role/app-worker-role/app-worker"


class TestB05Oversized:
    def test_large_blobs_never_enter_the_event(self, edge_cases: Path) -> None:
        events, stats, dead = run([edge_cases / "B05.json"])
        assert len(dead) == 0
        assert len(events) == 4
        for event in events:
            assert len(orjson.dumps(event.to_dict())) < 4096
        assert [e.action for e in events] == [
            "iam:PutRolePolicy", "logs:FilterLogEvents", "ce:GetCostAndUsage",
            "ec2:RunInstances"]

    def test_resource_comes_from_allow_listed_string_keys(self, edge_cases: Path) -> None:
        raw = json.loads((edge_cases / "B05.json").read_text())["Records"]
        events, _, _ = run([edge_cases / "B05.json"])
        put = events[0]
        assert put.resource == raw[0]["requestParameters"]["roleName"]
        assert events[1].resource == raw[1]["requestParameters"]["logGroupName"]


class TestB06Stages:
    def test_each_request_counts_once(self, edge_cases: Path) -> None:
        events, stats, _ = run([edge_cases / "B06.json"])
        by_id = {e.event_id[-2:]: e for e in events}
        assert sorted(by_id) == ["a1", "a2", "a3", "a4"]
        assert len(events) == 4
        assert stats.records_read == {"k8s.audit": 8}
        assert stats.skipped == {("k8s.audit", "merged_stage"): 2,
                                 ("k8s.audit", "duplicate_stage"): 2}

    def test_canonical_stage_time_and_partial(self, edge_cases: Path) -> None:
        events, _, _ = run([edge_cases / "B06.json"])
        by_id = {e.event_id[-2:]: e for e in events}
        assert by_id["a1"].time.isoformat() == "2024-03-04T10:30:00.100000+00:00"
        assert by_id["a1"].action == "k8s:secrets.create"
        assert by_id["a1"].attributes["authz_decision"] == "allow"
        assert by_id["a3"].action == "k8s:pods/exec.create"
        assert by_id["a3"].time.isoformat() == "2024-03-04T10:31:00+00:00"
        assert by_id["a3"].partial is False
        assert by_id["a4"].partial is True
        assert by_id["a4"].attributes["incomplete_stage"] == "RequestReceived"
        assert all(e.identity == "system:serviceaccount:ci:deployer" for e in events)
        assert by_id["a2"].read_only is True and by_id["a1"].read_only is False

    def test_stages_merge_across_payloads_with_one_parser(self, edge_cases: Path) -> None:
        from detector.sources import Parser

        items = json.loads((edge_cases / "B06.json").read_text())["items"]
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead)
        events = []
        for index, item in enumerate(items):
            events += parse_payload(orjson.dumps(item), origin=f"m{index}", stats=stats,
                                    dead_letters=dead, parser=parser)
        events += parser.finish()
        assert sorted(e.event_id[-2:] for e in events) == ["a1", "a2", "a3", "a4"]
        assert stats.balanced()


class TestB07Impersonation:
    def test_impersonated_user_is_the_identity(self, edge_cases: Path) -> None:
        events, stats, _ = run([edge_cases / "B07.json"])
        assert len(events) == 2
        first, second = events
        assert first.identity == "user-1@example.com"
        assert first.actor == "system:serviceaccount:auth-proxy:proxy"
        assert first.attributes["impersonated_by"] == "system:serviceaccount:auth-proxy:proxy"
        assert first.identity_kind == "human"
        # the peer the API server saw, the last of sourceIPs: the ones before it come
        # from the client's own X-Forwarded-For (Kubernetes audit documentation)
        assert first.source_ip == "203.0.113.21" and first.network == "public"
        assert second.identity == "system:serviceaccount:auth-proxy:proxy"
        assert second.actor is None and second.identity_kind == "workload"
        assert stats.skipped == {("k8s.audit", "merged_stage"): 1}


class TestB08GkeCallerIp:
    def test_non_ip_caller_never_fails(self, edge_cases: Path) -> None:
        events, _, dead = run([edge_cases / "B08.json"])
        assert len(dead) == 0
        assert [(e.source_ip, e.network, e.attributes.get("network_context")) for e in events] == [
            (None, "internal", "private"),
            (None, "internal", "gce-internal-ip"),
            ("203.0.113.30", "public", None),
            (None, "unknown", None),
        ]

    def test_identity_kind_and_fields(self, edge_cases: Path) -> None:
        events, _, _ = run([edge_cases / "B08.json"])
        controller = events[0]
        assert controller.source == "k8s.audit"
        assert controller.identity == \
            "example-cluster/system:serviceaccount:kube-system:example-controller"
        assert controller.identity_kind == "cloud_service"
        assert controller.tenant == "example-cluster"
        assert controller.attributes["sa_namespace"] == "kube-system"
        assert controller.attributes["sa_name"] == "example-controller"
        assert controller.action == "k8s:configmaps.update"
        assert controller.time.isoformat() == "2024-03-04T12:00:00.500000+00:00"
        assert events[1].identity_kind == "workload"
        system = events[3]
        assert (system.source, system.identity, system.identity_kind) == \
            ("gcp.audit", "gcp-system", "cloud_service")
        assert system.tenant == "example-project"
        assert system.time.isoformat() == "2024-03-04T12:00:03+00:00"


class TestB10TruncatedEks:
    def test_truncated_message_is_one_dead_letter(self, edge_cases: Path) -> None:
        body = json.loads((edge_cases / "B10.json").read_text())
        events, stats, dead = run([edge_cases / "B10.json"])
        assert dead.reasons() == ["truncated"]
        assert dead.items[0]["source"] == "k8s.audit"
        assert dead.items[0]["origin"].endswith("#logEvents[0]")
        assert dead.items[0]["raw"] == body["logEvents"][0]["message"]
        assert stats.dead_letters == {("k8s.audit", "truncated"): 1}
        assert stats.events == {"k8s.audit": 1}
        assert len(events) == 2
        event = events[1]
        assert event.identity == "example-cluster/system:serviceaccount:ci:deployer"
        assert event.tenant == "example-cluster"
        assert event.action == "k8s:pods.get"
        assert event.partial is False and "salvaged" not in event.attributes

    def test_truncated_message_is_salvaged_as_a_partial_event(self, edge_cases: Path) -> None:
        events, stats, _ = run([edge_cases / "B10.json"])
        assert stats.salvage == {("k8s.audit", "emitted"): 1}
        salvaged = events[0]
        assert salvaged.partial is True
        assert salvaged.attributes == {"namespace": "default", "salvaged": "truncated"}
        assert salvaged.event_id == "example-cluster/00000000-0000-4000-8000-0000000000a9"
        assert (salvaged.identity, salvaged.identity_resolution) == \
            ("arn:aws:iam::123456789012:role/example-eks-admin", "eks_iam_arn")
        assert salvaged.action == "k8s:deployments.update"
        assert salvaged.resource == "default/example-app"
        assert (salvaged.session, salvaged.credential_id) == \
            ("session-1", "ASIAEXAMPLEKEY000003")
        assert salvaged.time.isoformat() == "2024-03-04T10:30:00.100000+00:00"
        assert (salvaged.source_ip, salvaged.agent_family) == ("203.0.113.20", "kubectl")

    def test_eks_assumed_role_username_maps_to_role(self, edge_cases: Path) -> None:
        body = json.loads((edge_cases / "B10.json").read_text())
        message = body["logEvents"][1]["message"].replace(
            "system:serviceaccount:ci:deployer",
            "arn:aws:sts::123456789012:assumed-role/example-eks-admin/session-1")
        body["logEvents"] = [dict(body["logEvents"][1], message=message)]
        events, _, _ = payload(body)
        assert events[0].identity == "arn:aws:iam::123456789012:role/example-eks-admin"
        assert events[0].identity_resolution == "eks_iam_arn"


class TestB11EntraShapes:
    def test_both_shapes_normalise_alike(self, edge_cases: Path) -> None:
        events, _, dead = run([edge_cases / "B11.json"])
        assert len(dead) == 0
        hub, analytics = events
        for event in events:
            assert event.source == "azure.signin"
            assert event.identity == "00000000-0000-0000-0000-0000000000e2"
            assert event.identity_resolution == "service_principal_id"
            assert event.identity_kind == "workload"
            assert event.attributes["app_id"] == "00000000-0000-0000-0000-0000000000e1"
            assert event.tenant == "00000000-0000-0000-0000-00000000000b"
        assert (hub.outcome, hub.error_code) == ("success", None)
        assert (analytics.outcome, analytics.error_code) == ("failure", "7000215")
        assert hub.time.isoformat() == "2024-03-04T14:00:00.123456+00:00"
        assert analytics.time.isoformat() == "2024-03-04T14:05:00.765432+00:00"
        assert hub.source_ip == "203.0.113.40" and analytics.source_ip == "203.0.113.41"
        assert analytics.region == "US"


class TestB13Envelopes:
    def test_control_message_dropped_and_paths_identical(self, edge_cases: Path) -> None:
        events, stats, dead = run([edge_cases / "B13.json"])
        assert len(dead) == 0
        assert stats.skipped == {("unknown", "control_message"): 1}
        assert [e.action for e in events] == ["s3:ListBuckets", "s3:PutBucketPolicy"]
        assert events[1].resource == "example-bucket"

    def test_each_event_is_counted_under_its_path(self, edge_cases: Path) -> None:
        envelopes = json.loads((edge_cases / "B13.json").read_text())
        record = json.loads(envelopes[1]["logEvents"][0]["message"])
        _, stats, _ = run([edge_cases / "B13.json"])
        assert stats.events_by_path == {("aws.cloudtrail", "cwl"): 1,
                                        ("aws.cloudtrail", "eventbridge"): 1}
        _, stats, _ = payload({"Records": [record]})
        assert stats.events_by_path == {("aws.cloudtrail", "s3"): 1}
        _, stats, _ = payload(record)
        assert stats.events_by_path == {("aws.cloudtrail", "bare"): 1}

    def test_cwl_eventbridge_and_s3_give_identical_events(self, edge_cases: Path) -> None:
        envelopes = json.loads((edge_cases / "B13.json").read_text())
        record = json.loads(envelopes[1]["logEvents"][0]["message"])
        via_cwl, _, _ = payload(envelopes[1])
        via_s3, _, _ = payload({"Records": [record]})
        via_bridge, _, _ = payload(dict(envelopes[2], detail=record))
        via_line, _, _ = payload(record)
        assert via_cwl[0].to_dict() == via_s3[0].to_dict() == via_bridge[0].to_dict() \
            == via_line[0].to_dict()


class TestB26SessionKeys:
    def test_two_models_and_normalised_sessions(self, edge_cases: Path) -> None:
        scenario = json.loads((edge_cases / "B26.json").read_text())
        events, _, dead = payload({"Records": scenario["records"]})
        assert len(dead) == 0 and len(events) == 91
        keys = {e.identity for e in events}
        assert keys == {
            scenario["expected"]["baseline_key_for_ci_events"],
            "arn:aws:iam::123456789012:role/aws-reserved/sso.amazonaws.com/"
            "AWSReservedSSO_ExampleAdmin_0123456789abcdef",
        }
        ci = [e for e in events if e.identity.endswith("role/ci-deployer")]
        assert len(ci) == 90
        assert {e.session for e in ci} == {"gh-run-*"}
        assert all(e.attributes["session_name"].startswith("gh-run-") for e in ci)
        sso = events[-1]
        assert (sso.identity_kind, sso.actor, sso.kind_reason) == \
            ("human", "user-4@example.com", "SSO permission-set role")


class TestB27ServicesOnBehalf:
    def test_expected_identities(self, edge_cases: Path) -> None:
        scenario = json.loads((edge_cases / "B27.json").read_text())
        events, _, dead = payload({"Records": scenario["records"]})
        assert len(dead) == 0
        got = [(e.identity, e.identity_kind) for e in events]
        assert got == [
            ("aws-service:ec2.amazonaws.com", "cloud_service"),
            ("aws-service:config.amazonaws.com", "cloud_service"),
            ("arn:aws:iam::123456789012:role/AWSServiceRoleForConfig", "cloud_service"),
            ("arn:aws:iam::123456789012:role/app-worker-role", "workload"),
            ("arn:aws:iam::123456789012:role/example-admin", "human"),
        ]
        assert events[2].kind_reason == "service-linked role"
        kms = events[3]
        assert kms.actor == "secretsmanager.amazonaws.com"
        assert kms.attributes["invoked_by"] == "secretsmanager.amazonaws.com"
        assert (kms.source_ip, kms.network) == (None, "cloud_service")
        console = events[4]
        assert console.attributes["console"] is True
        assert console.credential_type == "temporary"
        assert (console.kind_reason, console.actor) == \
            ("role session named after a person", "user-5@example.com")
        assert events[0].resource == "arn:aws:iam::123456789012:role/example-instance-role"


class TestB29PlatformIdentities:
    def k8s_record(self, raw: dict) -> dict:
        return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "verb": raw["verb"],
                "user": {"username": raw["user.username"]}, "objectRef": raw["objectRef"],
                "responseStatus": raw["responseStatus"],
                "requestReceivedTimestamp": "2024-03-04T10:00:00Z"}

    def gcp_record(self, raw: dict) -> dict:
        return {"protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "authenticationInfo": {"principalEmail": raw["principalEmail"]},
            "methodName": raw["methodName"], "serviceName": "compute.googleapis.com",
            "requestMetadata": {"callerIp": raw["callerIp"]}},
            "timestamp": "2024-03-04T10:00:00Z"}

    def test_platform_identities_are_cloud_services(self, edge_cases: Path) -> None:
        records = json.loads((edge_cases / "B29.json").read_text())["records"]
        converted = []
        for raw in records:
            if raw["source"] == "k8s":
                converted.append(self.k8s_record(raw))
            elif raw["source"] == "gcp":
                converted.append(self.gcp_record(raw))
            else:
                converted.append(dict(raw, eventTime="2024-03-04T10:00:00Z",
                                      eventSource="iam.amazonaws.com"))
        events, _, dead = payload(converted)
        assert len(dead) == 0
        got = [(e.identity, e.identity_kind) for e in events]
        assert got == [
            ("system:kube-controller-manager", "cloud_service"),
            ("system:serviceaccount:kube-system:replicaset-controller", "cloud_service"),
            ("service-123456789012@container-engine-robot.iam.gserviceaccount.com",
             "cloud_service"),
            ("123456789012@cloudservices.gserviceaccount.com", "cloud_service"),
            ("aws-service:autoscaling.amazonaws.com", "cloud_service"),
            ("system:kube-controller-manager", "cloud_service"),
        ]
        assert events[5].action == "k8s:clusterrolebindings.create"


def test_b13_same_event_through_two_paths_counts_once(edge_cases: Path) -> None:
    envelopes = json.loads((edge_cases / "B13.json").read_text())
    record = json.loads(envelopes[1]["logEvents"][0]["message"])
    events, stats, _ = payload([envelopes[1], {"Records": [record]}, dict(envelopes[2],
                                                                           detail=record)])
    assert [e.event_id for e in events] == [record["eventID"]]
    assert stats.skipped == {("aws.cloudtrail", "duplicate_event"): 2}
    assert stats.events_by_path == {("aws.cloudtrail", "cwl"): 1}
