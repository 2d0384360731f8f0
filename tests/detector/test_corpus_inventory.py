"""The inventory stays right for identities that mix kinds of use (seen in real logs).

An IAM user of the Invictus set (``bert-jan``) signs in to the console many times and also
runs Terraform with one long-term key: every console session brings a new temporary key,
and without care those sessions fill the credential list before the long-term key (the one
whose dormancy matters) is listed, and an SDK-only event after a restart turns the person
back into a workload.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detector.engine import Detector
from detector.event import Event
from detector.identity import CONSOLE_SIGN_IN, NOT_CONCLUSIVE, SDK_KEY_ONLY
from detector.inventory import MAX_CREDENTIALS, InventoryRecord
from detector.sources import ListDeadLetters, read_paths
from detector.stats import RunStats

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def ev(minutes: float, **fields) -> Event:
    when = T0 + timedelta(minutes=minutes)
    values = {
        "event_id": f"e{minutes}", "time": when, "ts": when.timestamp(),
        "source": "aws.cloudtrail", "identity": "arn:aws:iam::1:user/dev",
        "identity_kind": "workload", "kind_reason": SDK_KEY_ONLY, "principal_type": "IAMUser",
        "action": "s3:ListBuckets", "credential_id": "AKIAKEY", "credential_type": "long_term",
    }
    values.update(fields)
    return Event(**values)


class TestCredentialList:
    def test_long_term_key_is_listed_after_many_console_sessions(self):
        record = InventoryRecord()
        for n in range(MAX_CREDENTIALS + 10):
            record.update(ev(n, credential_id=f"ASIA{n:03d}", credential_type="temporary"))
        record.update(ev(100))
        assert record.credentials["AKIAKEY"] == ["long_term", ev(100).ts, ev(100).ts, 1]
        assert len(record.credentials) == MAX_CREDENTIALS
        assert record.credentials_dropped == 11
        # the sessions used longest ago made room; the most recent ones stay listed
        assert "ASIA000" not in record.credentials
        assert f"ASIA{MAX_CREDENTIALS + 9:03d}" in record.credentials

    def test_long_term_keys_are_never_evicted(self):
        record = InventoryRecord()
        for n in range(MAX_CREDENTIALS):
            record.update(ev(n, credential_id=f"AKIA{n:03d}"))
        record.update(ev(50, credential_id="ASIANEW", credential_type="temporary"))
        record.update(ev(51, credential_id="AKIANEW"))
        assert sorted(record.credentials) == [f"AKIA{n:03d}" for n in range(MAX_CREDENTIALS)]
        assert record.credentials_dropped == 2


class TestKindKeepsConsoleEvidence:
    def test_sdk_only_event_after_console_keeps_human(self):
        record = InventoryRecord()
        record.update(ev(0, identity_kind="human", kind_reason=CONSOLE_SIGN_IN))
        record.update(ev(1))
        record.update(ev(2, identity_kind="unknown", kind_reason=NOT_CONCLUSIVE))
        assert (record.kind, record.kind_reason) == ("human", CONSOLE_SIGN_IN)

    def test_other_evidence_still_replaces_the_kind(self):
        record = InventoryRecord()
        record.update(ev(0, identity_kind="human", kind_reason=CONSOLE_SIGN_IN))
        record.update(ev(1, identity_kind="ai_agent", kind_reason="config ai_agents identity"))
        assert (record.kind, record.kind_reason) == ("ai_agent", "config ai_agents identity")

    def test_workload_becomes_human_on_console_use(self):
        record = InventoryRecord()
        record.update(ev(0))
        record.update(ev(1, identity_kind="human", kind_reason=CONSOLE_SIGN_IN))
        assert record.kind == "human"


@pytest.mark.shared
def test_invictus_inventory(real_logs: Path) -> None:
    """The Invictus users: people with keys, their long-term keys listed with their use."""
    stats = RunStats()
    events = list(read_paths([str(real_logs / "invictus-aws-dataset")], stats=stats,
                             dead_letters=ListDeadLetters()))
    detector = Detector({}, stats=stats)
    for event in sorted(events, key=lambda e: e.ts):
        detector.process(event)
    entries = {e["identity"].rsplit("/", 1)[-1]: e for e in detector.inventory()}
    bert = entries["bert-jan"]
    assert (bert["kind"], bert["kind_reason"]) == ("human", CONSOLE_SIGN_IN)
    long_term = [c for c in bert["credentials"] if c["type"] == "long_term"]
    assert [c["id"] for c in long_term] == ["AKIATFQR7NSC8Q4X20BJ"]
    assert long_term[0]["events"] > 2000
    assert entries["benjamin"]["kind"] == "human"
    steal = entries["stratus-red-team-ec2-steal-credentials-role"]
    assert (steal["kind"], steal["kind_reason"]) == ("workload", "EC2 instance-profile role")
    assert {c["type"] for c in steal["credentials"]} == {"temporary"}
    rds = entries["AWSServiceRoleForRDS"]
    assert (rds["kind"], rds["last_actor"]) == ("cloud_service", "rds.amazonaws.com")
