"""Identity keys, kinds with reasons, and configuration overrides (config always wins)."""

from __future__ import annotations

import itertools

import orjson
import pytest

from detector.errors import ConfigError
from detector.identity import (
    IdentityRules,
    classify_gcp,
    classify_k8s,
    normalise_session,
    role_key_from_session_arn,
)
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats

ACCOUNT = "123456789012"
_IDS = itertools.count()


def ct(identity: dict | None, **extra: object) -> dict:
    record = {"eventTime": "2024-03-04T10:00:00Z", "eventSource": "s3.amazonaws.com",
              "eventName": "ListBuckets", "awsRegion": "us-east-1",
              "sourceIPAddress": "198.51.100.7", "userAgent": "Boto3/1.34.0",
              "eventID": f"id-{next(_IDS)}", "recipientAccountId": ACCOUNT}
    if identity is not None:
        record["userIdentity"] = identity
    record.update(extra)
    return record


def parse(records: list[dict], rules: IdentityRules | None = None) -> list:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps({"Records": records}), origin="t", stats=stats,
                           dead_letters=dead, rules=rules)
    assert stats.balanced()
    return events


def assumed(role: str, session: str, key: str = "ASIAEXAMPLE0000001", path: str = "",
            issuer: bool = True) -> dict:
    identity = {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
                "accountId": ACCOUNT, "accessKeyId": key}
    if issuer:
        identity["sessionContext"] = {"sessionIssuer": {
            "type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/{path}{role}",
            "userName": role}}
    return identity


class TestAwsKeys:
    def test_assumed_role_keys_to_role_with_path(self) -> None:
        [event] = parse([ct(assumed("deployer", "gh-run-42", path="ci/"))])
        assert event.identity == f"arn:aws:iam::{ACCOUNT}:role/ci/deployer"
        assert event.session == "gh-run-*"
        assert event.attributes["session_name"] == "gh-run-42"

    def test_sessions_reusing_one_name_keep_their_own_session_facts(self) -> None:
        """A fixed session name is reused by every session issued under it: the facts
        fixed at issue (MFA, source identity) are each session's own, not the first's."""
        records = []
        for issued, mfa, source in (("2024-03-04T09:00:00Z", "false", None),
                                    ("2024-03-04T09:30:00Z", "true", "alice"),
                                    ("2024-03-04T09:30:00Z", "true", "alice")):
            identity = assumed("admin", "ops")
            context = identity["sessionContext"]
            context["attributes"] = {"creationDate": issued, "mfaAuthenticated": mfa}
            if source:
                context["sourceIdentity"] = source
            records.append(ct(identity))
        events = parse(records)
        assert [e.attributes.get("mfa") for e in events] == [False, True, True]
        assert [e.attributes.get("source_identity") for e in events] == [None, "alice",
                                                                          "alice"]

    def test_path_learned_from_issuer_applies_to_thin_records(self) -> None:
        events = parse([ct(assumed("deployer", "s1", path="ci/")),
                        ct(assumed("deployer", "s2", issuer=False))])
        assert [e.identity for e in events] == [f"arn:aws:iam::{ACCOUNT}:role/ci/deployer"] * 2
        assert [e.identity_resolution for e in events] == ["session_issuer", "assumed_role_arn"]

    def test_instance_profile_session(self) -> None:
        [event] = parse([ct(assumed("web", "i-0abc1234def567890"))])
        assert event.identity == f"arn:aws:iam::{ACCOUNT}:role/web"
        assert (event.identity_kind, event.kind_reason) == ("workload",
                                                            "EC2 instance-profile role")
        assert event.session == "ec2-instance"
        assert event.attributes["instance_id"] == "i-0abc1234def567890"

    def test_sso_role_without_issuer_gets_the_sso_path(self) -> None:
        role = "AWSReservedSSO_Admin_0123456789abcdef"
        [event] = parse([ct(assumed(role, "alice@example.com", issuer=False))])
        assert event.identity == \
            f"arn:aws:iam::{ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{role}"
        assert (event.identity_kind, event.actor) == ("human", "alice@example.com")
        assert event.kind_reason == "SSO permission-set role"

    def test_service_linked_role(self) -> None:
        [event] = parse([ct(assumed("AWSServiceRoleForRDS", "rds", path="aws-service-role/"
                                    "rds.amazonaws.com/"))])
        assert event.identity == \
            f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/rds.amazonaws.com/AWSServiceRoleForRDS"
        assert (event.identity_kind, event.kind_reason) == ("cloud_service",
                                                            "service-linked role")

    def test_web_identity_role(self) -> None:
        identity = assumed("gha", "gh-run-7")
        identity["sessionContext"]["webIdFederationData"] = {
            "federatedProvider": "arn:aws:iam::123456789012:oidc-provider/token.actions."
                                 "githubusercontent.com"}
        [event] = parse([ct(identity)])
        assert (event.identity_kind, event.kind_reason) == ("workload",
                                                            "web-identity federated role (CI)")

    def test_root_and_iam_user(self) -> None:
        root = {"type": "Root", "arn": f"arn:aws:iam::{ACCOUNT}:root", "accountId": ACCOUNT}
        user = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/ops/bot",
                "accountId": ACCOUNT, "accessKeyId": "AKIAEXAMPLE00000001", "userName": "bot"}
        first, second = parse([ct(root), ct(user)])
        assert (first.identity, first.identity_kind) == (f"arn:aws:iam::{ACCOUNT}:root", "human")
        assert second.identity == f"arn:aws:iam::{ACCOUNT}:user/ops/bot"
        assert (second.identity_kind, second.kind_reason) == (
            "workload", "used only with long-term key from SDK user agents")
        assert second.credential_type == "long_term"

    def test_iam_user_on_the_console_is_human_from_then_on(self) -> None:
        user = {"type": "IAMUser", "arn": f"arn:aws:iam::{ACCOUNT}:user/alice",
                "accountId": ACCOUNT, "userName": "alice"}
        login = ct(user, eventName="ConsoleLogin", eventType="AwsConsoleSignIn",
                   userAgent="Mozilla/5.0")
        sdk = ct(dict(user, accessKeyId="AKIAEXAMPLE00000002"))
        first, second = parse([login, sdk])
        assert (first.identity_kind, first.kind_reason) == ("human",
                                                            "IAM user signed in to the console")
        assert (second.identity_kind, second.kind_reason) == ("human",
                                                              "IAM user seen using the console")

    def test_cross_account_and_identity_center(self) -> None:
        cross = {"type": "AWSAccount", "principalId": "AIDAX", "accountId": "999999999999"}
        center = {"type": "IdentityCenterUser", "accountId": ACCOUNT, "onBehalfOf": {
            "userId": "u-1", "identityStoreArn": "arn:aws:identitystore::1:identitystore/d-1"},
            "credentialId": "c-1"}
        first, second = parse([ct(cross), ct(center)])
        assert (first.identity, first.identity_kind) == ("aws-account:999999999999", "external")
        assert second.identity == "arn:aws:identitystore::1:identitystore/d-1/user/u-1"
        assert second.identity_kind == "human"

    def test_role_key_from_session_arn(self) -> None:
        assert role_key_from_session_arn("arn:aws-us-gov:sts::1:assumed-role/r/s") == \
            ("arn:aws-us-gov:iam::1:role/r", "1", "s")
        assert role_key_from_session_arn("arn:aws:iam::1:user/u") is None
        assert role_key_from_session_arn("not-an-arn") is None


class TestAiAgents:
    @pytest.mark.parametrize("agent", ["langchain-aws/0.1 Boto3/1.34", "openai-agents/1.0",
                                       "anthropic-sdk/0.3", "bedrock-agent-runtime",
                                       "claude-code/1.0", "autogen/0.4", "crewai/0.5"])
    def test_agent_user_agents(self, agent: str) -> None:
        [event] = parse([ct(assumed("worker", "s1"), userAgent=agent)])
        assert event.identity_kind == "ai_agent"
        assert event.kind_reason.startswith("AI-agent user agent (")

    def test_service_principals_are_never_agents(self) -> None:
        [event] = parse([ct({"type": "AWSService", "invokedBy": "ec2.amazonaws.com"},
                            userAgent="langchain/0.1")])
        assert event.identity_kind == "cloud_service"


class TestConfigRules:
    def test_config_wins_over_heuristics(self) -> None:
        rules = IdentityRules.from_config({
            "kinds": [{"match": "arn:aws:iam::*:role/AWSReservedSSO_*", "kind": "workload",
                       "reason": "shared automation SSO role"}],
            "owners": {"arn:aws:iam::*:role/*": "platform-team"},
        })
        role = "AWSReservedSSO_Admin_0123456789abcdef"
        [event] = parse([ct(assumed(role, "alice@example.com", issuer=False))], rules)
        # the SSO path is part of the key, so the glob with a bare role name misses it
        assert event.identity_kind == "human"
        assert event.owner == "platform-team"
        [plain] = parse([ct(assumed("AWSReservedSSO_x", "a", path=""))], rules)
        assert (plain.identity_kind, plain.kind_reason) == ("workload",
                                                            "shared automation SSO role")

    def test_config_overrides_ai_agent_detection(self) -> None:
        rules = IdentityRules.from_config({"kinds": {"*:role/worker": "workload"}})
        [event] = parse([ct(assumed("worker", "s1"), userAgent="langchain/0.1")], rules)
        assert (event.identity_kind, event.kind_reason) == ("workload",
                                                            "config rule *:role/worker")

    def test_configured_ai_patterns(self) -> None:
        rules = IdentityRules.from_config({"ai_agents": {"user_agents": ["MyAgentKit/"],
                                                         "identities": ["*:role/agent-*"]}})
        by_ua, by_key = parse([ct(assumed("worker", "s"), userAgent="myagentkit/2.0"),
                               ct(assumed("agent-7", "s"))], rules)
        assert (by_ua.identity_kind, by_ua.kind_reason) == ("ai_agent",
                                                            "config ai_agents user agent")
        assert (by_key.identity_kind, by_key.kind_reason) == ("ai_agent",
                                                              "config ai_agents identity")

    @pytest.mark.parametrize("section, message", [
        ({"kinds": [{"match": "x", "kind": "robot"}]}, "kind 'robot' is not one of"),
        ({"kinds": [{"kind": "human"}]}, "'match' must be a non-empty string"),
        ({"owners": [{"match": "x"}]}, "needs string 'match' and 'owner'"),
        ({"kinds": "nope"}, "must be a list of mappings or a mapping"),
        ({"ai_agents": {"user_agents": "x"}}, "must be a list of non-empty strings"),
        ("nope", "identities: must be a mapping"),
    ])
    def test_invalid_config_is_refused(self, section: object, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            IdentityRules.from_config(section)  # type: ignore[arg-type]

    def test_empty_config(self) -> None:
        assert IdentityRules.from_config(None) == IdentityRules()


class TestClassifiers:
    @pytest.mark.parametrize("principal, kind", [
        ("deploy@proj.iam.gserviceaccount.com", "workload"),
        ("service-1234@container-engine-robot.iam.gserviceaccount.com", "cloud_service"),
        ("1234@cloudservices.gserviceaccount.com", "cloud_service"),
        ("service-1234@gcp-sa-pubsub.iam.gserviceaccount.com", "cloud_service"),
        ("alice@example.com", "human"),
        ("principal://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/"
         "subject/s", "workload"),
        ("gcp-system", "cloud_service"),
        ("system:gke-master-healthcheck", "cloud_service"),
    ])
    def test_gcp(self, principal: str, kind: str) -> None:
        assert classify_gcp(principal)[0] == kind

    @pytest.mark.parametrize("username, kind", [
        ("system:serviceaccount:ci:deployer", "workload"),
        ("system:serviceaccounts:default:default", "workload"),
        ("system:serviceaccount:kube-system:replicaset-controller", "cloud_service"),
        ("system:kube-controller-manager", "cloud_service"),
        ("system:node:ip-10-0-0-1", "cloud_service"),
        ("eks:addon-manager", "cloud_service"),
        ("aksService", "cloud_service"),
        ("system:anonymous", "external"),
        ("alice@example.com", "human"),
        ("minikube-user", "human"),  # a Kubernetes "normal user": not a service account
    ])
    def test_k8s(self, username: str, kind: str) -> None:
        assert classify_k8s(username)[0] == kind

    @pytest.mark.parametrize("session, pattern", [
        ("gh-run-000001", "gh-run-*"), ("aws-go-sdk-1689000000", "aws-go-sdk-*"),
        ("i-0dbc91f429e48eeed", "ec2-instance"), ("alice@example.com", "alice@example.com"),
        ("botocore-session-1a2b3c4d5e", "botocore-session-*"), ("app-worker", "app-worker"),
        (None, None), ("", ""),
    ])
    def test_session_patterns(self, session: str | None, pattern: str | None) -> None:
        assert normalise_session(session) == pattern


class TestFederatedCallers:
    provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"

    def web_identity(self, **params: object) -> dict:
        identity = {"type": "WebIdentityUser", "userName": "repo:org/app:ref:refs/heads/main",
                    "principalId": f"{self.provider}:sts.amazonaws.com:repo:org/app",
                    "identityProvider": self.provider}
        return ct(identity, eventSource="sts.amazonaws.com",
                  eventName="AssumeRoleWithWebIdentity", requestParameters=params or None)

    def test_assume_role_with_web_identity_belongs_to_the_role(self) -> None:
        [event] = parse([self.web_identity(roleArn=f"arn:aws:iam::{ACCOUNT}:role/gha-deploy",
                                           roleSessionName="gh-run-991")])
        assert event.identity == f"arn:aws:iam::{ACCOUNT}:role/gha-deploy"
        assert (event.identity_kind, event.kind_reason) == ("workload",
                                                            "web-identity federated role (CI)")
        assert event.identity_resolution == "web_identity_role"
        assert event.actor == "repo:org/app:ref:refs/heads/main"
        assert event.session == "gh-run-*"
        assert event.attributes["web_identity_provider"] == self.provider

    def test_without_role_arn_the_subject_is_external(self) -> None:
        [event] = parse([self.web_identity()])
        assert event.identity == f"{self.provider}:repo:org/app:ref:refs/heads/main"
        assert event.identity_kind == "external"
