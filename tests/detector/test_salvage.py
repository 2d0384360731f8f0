"""Salvage of Kubernetes audit events cut off in transport (edge case B10), built here.

The cut message stays a ``truncated`` dead letter; a ``partial`` event read from its intact
prefix comes beside it, and the engine scores that event but never learns from it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import orjson

from detector.engine import SALVAGED_NOTE
from detector.sources import ListDeadLetters, parse_payload
from detector.sources.salvage import salvage_prefix
from detector.stats import RunStats
from detector.techniques import Tally
from tests.detector.test_engine import ATTACK, ROLE, attack_event, learned, run

ROLE_SESSION = "arn:aws:sts::111122223333:assumed-role/app/session-9"


def audit(**extra: object) -> dict:
    """An EKS audit event in the API server's key order, ending with a large annotation."""
    event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Request",
             "auditID": "a-1", "stage": "ResponseComplete",
             "requestURI": "/api/v1/namespaces/prod/secrets/db", "verb": "get",
             "user": {"username": ROLE_SESSION, "groups": ["system:authenticated"],
                      "extra": {"sessionName": ["session-9"],
                                "accessKeyId": ["ASIAEXAMPLEKEY000009"]}},
             "sourceIPs": ["203.0.113.7"], "userAgent": "kubectl/v1.29.0",
             "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db",
                           "apiVersion": "v1"},
             "responseStatus": {"metadata": {}, "code": 200},
             "requestReceivedTimestamp": "2024-03-08T03:00:00.500000Z",
             "stageTimestamp": "2024-03-08T03:00:00.600000Z",
             "annotations": {"example.io/pad": "x" * 5000}}
    event.update(extra)
    return event


def cut(event: dict, keep: int = 300) -> str:
    """The event's JSON text cut ``keep`` characters into its last annotation."""
    text = orjson.dumps(event).decode()
    return text[: text.index('"x') + keep]


def cwl(*messages: str) -> dict:
    return {"messageType": "DATA_MESSAGE", "owner": "111122223333",
            "logGroup": "/aws/eks/prod/cluster", "logStream": "kube-apiserver-audit-1",
            "subscriptionFilters": ["f"],
            "logEvents": [{"id": str(n), "timestamp": 1709866800000 + n, "message": m}
                          for n, m in enumerate(messages)]}


def parse(data: dict) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(data), origin="msg", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return events, stats, dead


class TestSalvagePrefix:
    def test_values_before_the_cut__are_read_at_their_place(self) -> None:
        assert salvage_prefix(cut(audit())) == {
            "auditID": "a-1", "requestURI": "/api/v1/namespaces/prod/secrets/db",
            "verb": "get",
            "user": {"username": ROLE_SESSION,
                     "extra": {"sessionName": ["session-9"],
                               "accessKeyId": ["ASIAEXAMPLEKEY000009"]}},
            "sourceIPs": ["203.0.113.7"], "userAgent": "kubectl/v1.29.0",
            "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db",
                          "apiVersion": "v1"},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": "2024-03-08T03:00:00.500000Z",
        }

    def test_a_string_cut_in_the_middle__is_not_taken(self) -> None:
        text = orjson.dumps(audit()).decode()
        at = text.index("secrets/db")
        assert salvage_prefix(text[:at]) == {"auditID": "a-1"}

    def test_a_number_running_into_the_cut__is_not_taken(self) -> None:
        text = orjson.dumps(audit()).decode()
        at = text.index('"code":200') + len('"code":20')
        assert "responseStatus" not in salvage_prefix(text[:at])

    def test_keys_inside_other_values__are_never_taken(self) -> None:
        nested = {"kind": "Event", "auditID": "a-2",
                  "requestObject": {"verb": "delete", "user": {"username": "someone-else"}},
                  "annotations": {"note": '"verb": "list", "user": {"username": "x"}'},
                  "verb": "create", "user": {"username": "system:serviceaccount:ci:bot"}}
        text = orjson.dumps(nested).decode()
        assert salvage_prefix(text) == {"auditID": "a-2", "verb": "create",
                                        "user": {"username": "system:serviceaccount:ci:bot"}}
        assert salvage_prefix(text[: text.index('"verb":"create"')]) == {"auditID": "a-2"}

    def test_the_caller_is_the_last_source_address_of_a_whole_list(self) -> None:
        """The API server appends the peer it saw to the client's X-Forwarded-For: a cut
        event took the first, so padding a request until it was cut let a spoofed pod
        address stand for a Tor exit."""
        spoofed = audit(sourceIPs=["10.0.0.5", "185.220.101.4"])
        assert salvage_prefix(cut(spoofed))["sourceIPs"] == ["185.220.101.4"]
        text = orjson.dumps(spoofed).decode()
        inside = text[: text.index('"185.220')]  # cut within the list: no address at all
        assert "sourceIPs" not in salvage_prefix(inside)
        [partial], _, _ = parse(cwl(cut(spoofed)))
        assert (partial.source_ip, partial.network) == ("185.220.101.4", "public")

    def test_not_an_object__gives_nothing(self) -> None:
        assert salvage_prefix('["a", "b"') == {}
        assert salvage_prefix("") == {}


class TestParserSalvage:
    def test_cut_message__is_a_dead_letter_and_a_partial_event(self) -> None:
        whole = audit(auditID="a-2", verb="list", user={"username": "system:serviceaccount:ci:bot"})
        message = cut(audit())
        events, stats, dead = parse(cwl(message, orjson.dumps(whole).decode()))
        assert dead.reasons() == ["truncated"]
        assert dead.items[0]["raw"] == message
        assert dead.items[0]["origin"] == "msg#logEvents[0]"
        assert stats.dead_letters == {("k8s.audit", "truncated"): 1}
        assert stats.salvage == {("k8s.audit", "emitted"): 1}
        assert stats.events == {"k8s.audit": 1}  # the salvage is not a record's event
        salvaged, intact = events
        assert (salvaged.identity, salvaged.identity_resolution) == \
            ("arn:aws:iam::111122223333:role/app", "eks_iam_arn")
        assert salvaged.event_id == "prod/a-1"
        assert salvaged.action == "k8s:secrets.get"
        assert salvaged.resource == "prod/db"
        assert salvaged.tenant == "prod"
        assert salvaged.time.isoformat() == "2024-03-08T03:00:00.500000+00:00"
        assert (salvaged.credential_id, salvaged.session) == \
            ("ASIAEXAMPLEKEY000009", "session-9")
        assert (salvaged.source_ip, salvaged.outcome) == ("203.0.113.7", "success")
        assert salvaged.partial is True
        # what survives of the record is still checked: the secret read counts toward
        # the burst of secrets one identity reads (detector.techniques.k8s)
        assert salvaged.attributes == {"namespace": "prod", "salvaged": "truncated",
                                       "findings": [Tally("k8s.secrets_burst", "medium",
                                                          ("T1552.007",), "secrets read",
                                                          ("prod/db",))]}
        # never joined with the next message: that one is whole and its own
        assert (intact.identity, intact.action, intact.partial) == \
            ("prod/system:serviceaccount:ci:bot", "k8s:secrets.list", False)
        assert "salvaged" not in intact.attributes

    def test_whole_messages__are_never_salvaged(self) -> None:
        events, stats, dead = parse(cwl(orjson.dumps(audit()).decode()))
        assert len(dead) == 0 and stats.salvage == {}
        assert [e.partial for e in events] == [False]

    def test_cut_before_the_time__takes_the_log_event_time(self) -> None:
        event = audit()
        del event["requestReceivedTimestamp"], event["stageTimestamp"]
        events, stats, _ = parse(cwl(cut(event)))
        assert stats.salvage == {("k8s.audit", "emitted"): 1}
        assert events[0].time.isoformat() == "2024-03-08T03:00:00+00:00"

    def test_no_user_or_no_verb__nothing_is_emitted(self) -> None:
        text = orjson.dumps(audit()).decode()
        before_user = text[: text.index('"user"') + 12]
        no_verb = orjson.dumps({k: v for k, v in audit().items() if k != "verb"}).decode()
        events, stats, dead = parse(cwl(before_user, no_verb[: no_verb.index('"x')]))
        assert events == []
        assert dead.reasons() == ["truncated", "truncated"]
        assert stats.salvage == {("k8s.audit", "no_identity"): 1, ("k8s.audit", "no_verb"): 1}

    def test_cut_cloudtrail_messages__are_not_salvaged(self) -> None:
        data = dict(cwl('{"eventVersion": "1.09", "eventName": "GetObject", "userI'),
                    logGroup="aws-cloudtrail-logs")
        events, stats, dead = parse(data)
        assert events == [] and stats.salvage == {}
        assert stats.dead_letters == {("aws.cloudtrail", "truncated"): 1}

    def test_truncation_is_logged_at_1_10_100(self, caplog) -> None:
        caplog.set_level(logging.WARNING, logger="detector.sources.parser")
        events, stats, _ = parse(cwl(*[cut(audit(auditID=f"a-{n}")) for n in range(120)]))
        assert len(events) == 120
        assert stats.dead_letters == {("k8s.audit", "truncated"): 120}
        lines = [r.getMessage() for r in caplog.records]
        assert [line.split(" at ")[0] for line in lines] == [
            "k8s.audit record #1 with reason truncated",
            "k8s.audit record #10 with reason truncated",
            "k8s.audit record #100 with reason truncated",
        ]


def partial(n: int = 0, action: str = "iam:CreateAccessKey", **fields: object):
    event = attack_event(n, action, credential_id="ASIANEWKEY", actor="bob@example.com",
                         **fields)
    event.partial = True
    event.attributes = {"salvaged": "truncated"}
    return event


class TestEnginePartial:
    def test_partial_event__is_scored_and_its_alert_says_salvaged(self) -> None:
        detector, stats = learned()
        (alert,) = run(detector, [partial()])
        assert alert.severity == "high"
        assert alert.top_detector == "novelty.action"
        assert alert.evidence["event_ids"] == ["atk0"]
        assert alert.context["notes"] == [SALVAGED_NOTE]
        assert alert.context["partial_events"] == 1
        assert stats.alerts == {("high", "novelty.action"): 1}

    def test_partial_event__teaches_nothing(self) -> None:
        detector, _ = learned()
        state = detector.store[ROLE]
        profile_before = state.profile.to_bytes()
        inventory_before = state.inventory.to_dict()
        run(detector, [partial(n) for n in range(50)])
        assert state.profile.to_bytes() == profile_before
        inventory = state.inventory.to_dict()
        assert inventory["last_seen"] == (ATTACK + timedelta(seconds=49)).timestamp()
        inventory["last_seen"] = inventory_before["last_seen"]
        assert inventory == inventory_before  # no new credential, actor or event count
        assert state.alerts.recurrence == {}
        # the same action from a complete event later is still new
        later = ATTACK + timedelta(days=2)
        closing, alert = run(detector, [attack_event(100, event_id="whole", time=later,
                                                     ts=later.timestamp())])
        assert (closing.revision, closing.context["partial_events"]) == (2, 50)
        assert (alert.revision, alert.top_detector) == (1, "novelty.action")
        assert alert.evidence["event_ids"] == ["whole"]
        assert "partial_events" not in alert.context
        assert SALVAGED_NOTE not in alert.context.get("notes", [])

    def test_partial_deploy_change__gives_no_change_context(self) -> None:
        detector, _ = learned()
        deployer = "arn:aws:iam::111122223333:role/terraform-runner"
        change = partial(1, "iam:PutRolePolicy", identity=deployer, agent_family="terraform",
                         resource="app", time=ATTACK - timedelta(minutes=10),
                         ts=(ATTACK - timedelta(minutes=10)).timestamp())
        run(detector, [change])
        plain = attack_event(0, action="ec2:RunInstances", source_ip="10.0.0.5",
                             network="private", network_prefix="10.0.0.0/24")
        (alert,) = run(detector, [plain])
        assert "change_context" not in alert.context

    def test_unknown_identity__partial_event_leaves_no_learning(self) -> None:
        detector, _ = learned()
        other = "arn:aws:iam::111122223333:role/other"
        assert run(detector, [partial(0, "s3:GetObject", identity=other)]) == []
        state = detector.store[other]
        assert state.profile.n_events == 0
        entry = detector.inventory_entry(other)
        assert (entry["events"], entry["credentials"], entry["last_actor"]) == (0, [], None)
        assert (entry["kind"], entry["tenant"]) == ("workload", "111122223333")
        assert entry["first_seen"] == entry["last_seen"] == "2024-03-08T03:00:00.000Z"
