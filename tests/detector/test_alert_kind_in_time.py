"""An alert revision describes the identity with the kind it has at that revision's time.

Found on the Invictus AWS data set: an IAM user first used with an SDK key opened an alert
as "workload"; after its console sign-in the inventory said human, yet all 16 revisions of
the alert still said workload.
"""

from __future__ import annotations

from datetime import timedelta

from detector.engine import Detector
from detector.identity import CONSOLE_SEEN, CONSOLE_SIGN_IN, SDK_KEY_ONLY
from detector.stats import RunStats
from tests.detector.test_engine import ACCOUNT, T0, ev

USER = f"arn:aws:iam::{ACCOUNT}:user/bert"
RULES = {"scoring": {"policy_rules": [
    {"name": "no-key-creation", "action": "iam:CreateAccessKey", "always": True,
     "severity": "high", "reason": "keys are made by the platform team"},
    {"name": "no-policy-attach", "action": "iam:AttachUserPolicy", "always": True,
     "severity": "high", "reason": "policies are attached by the platform team"}]}}


def user_event(n: int, minutes: int, action: str, kind: str, reason: str):
    return ev(n, T0 + timedelta(minutes=minutes), action, identity=USER, identity_kind=kind,
              kind_reason=reason, credential_type="long_term", credential_id="AKIAEXAMPLE1",
              event_id=f"u{n}")


def test_revision_after_console_sign_in__says_human():
    detector = Detector(RULES, stats=RunStats())
    first = detector.process(user_event(1, 0, "iam:CreateAccessKey", "workload", SDK_KEY_ONLY))
    assert [(a.revision, a.identity_kind) for a in first] == [(1, "workload")]
    assert detector.process(user_event(2, 1, "iam:ListUsers", "human", CONSOLE_SIGN_IN)) == []
    later = detector.process(user_event(3, 2, "iam:AttachUserPolicy", "human", CONSOLE_SEEN))
    assert [(a.alert_id, a.revision) for a in later] == [(first[0].alert_id, 2)]
    native = later[0].to_native()
    assert native["identity"]["kind"] == "human"
    assert native["identity"]["kind_reason"] == CONSOLE_SEEN
    assert native["title"].startswith("human user/bert: ")


def test_sdk_event_after_console_use__kind_kept_for_scoring_and_alert():
    """The resolver that saw the sign-in may be gone (another file stream, a restarted
    worker): the event says "SDK key only", the inventory remembers the console use, and
    the event is scored and described with the identity's kind, human."""
    detector = Detector(RULES, stats=RunStats())
    detector.process(user_event(1, 0, "iam:ListUsers", "human", CONSOLE_SIGN_IN))
    event = user_event(2, 1, "iam:CreateAccessKey", "workload", SDK_KEY_ONLY)
    alerts = detector.process(event)
    assert (event.identity_kind, event.kind_reason) == ("human", CONSOLE_SIGN_IN)
    assert [a.identity_kind for a in alerts] == ["human"]
    assert detector.inventory()[0]["kind"] == "human"


def test_sdk_user_never_on_the_console__stays_workload():
    detector = Detector(RULES, stats=RunStats())
    detector.process(user_event(1, 0, "iam:CreateAccessKey", "workload", SDK_KEY_ONLY))
    event = user_event(2, 1, "iam:AttachUserPolicy", "workload", SDK_KEY_ONLY)
    alerts = detector.process(event)
    assert [(a.revision, a.identity_kind, a.kind_reason) for a in alerts] == [
        (2, "workload", SDK_KEY_ONLY)]
    assert event.identity_kind == "workload"
