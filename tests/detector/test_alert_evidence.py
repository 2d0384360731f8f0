"""What an alert shows of its evidence: the sensitive actions it holds (kept before plain
ones), the bound on signal values, and a title that names the leading signal's window."""

from __future__ import annotations

from detector.alerts import MAX_SENSITIVE, MAX_VALUES, make_title
from detector.ocsf import to_ocsf
from detector.scoring import SensitivityCatalogue
from tests.detector.alert_schema import assert_valid_alert
from tests.detector.test_alerts import ROLE, make_event, make_verdict, open_group

CATALOGUE = SensitivityCatalogue.load()


def discovery_then_persistence():
    """S02's shape: 30 discovery calls (a volume signal makes their category apply), then
    iam:CreateUser, CreateAccessKey and AttachUserPolicy on a new user."""
    discovery = CATALOGUE.lookup("iam:ListRoles")
    group = None
    for n in range(30):
        event = make_event(n, action=f"iam:List{n:02d}", resource="")
        verdict = make_verdict("volume.rate", 0.6, "medium", discovery, f"w{n}")
        if group is None:
            group = open_group(event, verdict)
        else:
            group.fold(event, verdict, 20, 5)
    for n, action in enumerate(("iam:CreateUser", "iam:CreateAccessKey",
                                "iam:AttachUserPolicy"), start=100):
        sens = CATALOGUE.lookup(action)
        group.fold(make_event(n, action=action, resource="backdoor"),
                   make_verdict("novelty.action", 0.7, "high", sens, action), 20, 5)
    group.revision = 1
    return group


def test_sensitive_actions__name_the_created_user_after_a_long_discovery():
    group = discovery_then_persistence()
    native = group.to_alert(ROLE, []).to_native()
    assert_valid_alert(native)
    kept = native["evidence"]["sensitive_actions"]
    assert len(kept) == MAX_SENSITIVE == 10
    assert [(k["action"], k["resource"], k["category"]) for k in kept[-3:]] == [
        ("iam:CreateUser", "backdoor", "privilege_change"),
        ("iam:CreateAccessKey", "backdoor", "credential_creation"),
        ("iam:AttachUserPolicy", "backdoor", "privilege_change"),
    ]
    assert kept[-3]["event_id"] == "evt-00100"
    assert kept[-3]["time"] == "2024-03-04T10:01:40.000Z"
    assert kept[-3]["level"] == "high"
    assert [k["category"] for k in kept[:7]] == ["discovery"] * 7


def test_sensitive_events__replace_plain_ones_in_ids_and_samples():
    group = discovery_then_persistence()
    evidence = group.to_alert(ROLE, []).to_native()["evidence"]
    assert evidence["event_count"] == 33
    assert len(evidence["event_ids"]) == 20
    assert evidence["event_ids"][-3:] == ["evt-00100", "evt-00101", "evt-00102"]
    assert evidence["event_ids"][0] == "evt-00000"
    assert evidence["samples"]["action"][-3:] == [
        "iam:CreateUser", "iam:CreateAccessKey", "iam:AttachUserPolicy"]
    assert evidence["samples"]["resource"] == ["backdoor"]


def test_sensitive_actions__never_replaced_by_a_less_severe_one():
    group = discovery_then_persistence()
    discovery = CATALOGUE.lookup("iam:ListRoles")
    group.fold(make_event(200, action="iam:ListMore", resource=""),
               make_verdict("volume.rate", 0.6, "medium", discovery, "w200"), 20, 5)
    actions = [k["action"] for k in group.to_alert(ROLE, []).evidence["sensitive_actions"]]
    assert "iam:ListMore" not in actions
    assert actions[-1] == "iam:AttachUserPolicy"


def test_plain_events__add_no_sensitive_action():
    group = open_group(make_event(), make_verdict())
    assert group.to_alert(ROLE, []).evidence["sensitive_actions"] == []


def test_ocsf__one_evidence_per_sensitive_action():
    group = discovery_then_persistence()
    doc = to_ocsf(group.to_alert(ROLE, []))
    assert len(doc["evidences"]) == 1 + 10
    last = doc["evidences"][-1]
    assert last["api"] == {"operation": "AttachUserPolicy", "service": {"name": "iam"}}
    assert last["resources"] == [{"name": "backdoor"}]
    assert last["data"] == {"event_id": "evt-00102", "time": "2024-03-04T10:01:42.000Z",
                            "category": "privilege_change", "level": "high"}
    assert "resources" not in doc["evidences"][1]  # a discovery call names no resource


def test_signal_values__say_when_they_are_cut():
    group = open_group(make_event(), make_verdict(value="v0"))
    assert group.to_alert(ROLE, []).evidence["signal_values_truncated"] is False
    for n in range(1, MAX_VALUES + 3):
        group.fold(make_event(n), make_verdict(value=f"v{n}"), 20, 5)
    evidence = group.to_alert(ROLE, []).to_native()["evidence"]
    assert len(evidence["signal_values"]) == MAX_VALUES == 32
    assert evidence["signal_values_truncated"] is True


def test_group_state__round_trips_the_new_fields():
    group = discovery_then_persistence()
    group.values_cut = True
    again = type(group).from_dict(group.to_dict())
    assert again.sensitive == group.sensitive
    assert again.values_cut is True


def test_title__says_when_the_leading_windows_count_was_taken():
    group = open_group(make_event(), make_verdict(
        "volume.distinct_actions", 0.9, "high", None, "2024-03-04T03:40Z"))
    group.signals[0]["sentence"] = ("13 distinct actions in the 10-minute window from 03:40 "
                                    "UTC so far, against a usual 0.0")
    assert make_title(ROLE, group) == (
        "workload role/app-worker: 13 distinct actions in the 10-minute window from 03:40 UTC "
        "at the first alert, against a usual 0.0")
