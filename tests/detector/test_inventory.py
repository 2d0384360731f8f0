"""InventoryRecord: per-identity facts kept cheaply per event, and its JSON view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from detector.event import Event
from detector.inventory import MAX_CREDENTIALS, InventoryRecord

T0 = datetime(2024, 3, 1, tzinfo=UTC)
DAY = 86400.0


def ev(minutes: float, **fields) -> Event:
    when = T0 + timedelta(minutes=minutes)
    values = {
        "event_id": f"e{minutes}",
        "time": when,
        "ts": when.timestamp(),
        "source": "aws.cloudtrail",
        "identity": "arn:aws:iam::1:user/legacy",
        "identity_kind": "workload",
        "kind_reason": "IAM user with a long-term key used from an SDK",
        "tenant": "1",
        "principal_type": "IAMUser",
        "action": "s3:GetObject",
        "credential_id": "AKIAOLD",
        "credential_type": "long_term",
    }
    values.update(fields)
    return Event(**values)


class TestInventoryRecord:
    def test_first_last_and_counts_with_out_of_order_events(self):
        record = InventoryRecord()
        for minutes in (10, 0, 30, 20):
            record.update(ev(minutes))
        assert record.first_seen == ev(0).ts
        assert record.last_seen == ev(30).ts
        assert record.events == 4
        assert record.credentials["AKIAOLD"] == ["long_term", ev(0).ts, ev(30).ts, 4]

    def test_credentials_are_bounded_and_the_rest_counted(self):
        record = InventoryRecord()
        for n in range(MAX_CREDENTIALS + 5):
            record.update(ev(n, credential_id=f"ASIA{n}", credential_type="temporary"))
        assert len(record.credentials) == MAX_CREDENTIALS
        assert record.credentials_dropped == 5

    def test_view_says_owner_dormancy_and_learning(self):
        record = InventoryRecord()
        record.update(ev(0))
        record.update(ev(60, credential_id="AKIANEW", owner="team-data"))
        view = record.view("arn:aws:iam::1:user/legacy", now=ev(60).ts + 40 * DAY,
                           dormant_after=30 * DAY, in_learning=True)
        assert view["owner"] == "team-data"
        assert view["dormant"] is True
        assert view["in_learning"] is True
        assert view["principal_type"] == "IAMUser"
        assert [c["id"] for c in view["credentials"]] == ["AKIANEW", "AKIAOLD"]
        assert view["credentials"][1] == {
            "id": "AKIAOLD", "type": "long_term", "first_use": "2024-03-01T00:00:00.000Z",
            "last_use": "2024-03-01T00:00:00.000Z", "events": 1, "dormant": True,
        }

    def test_no_owner_is_said_explicitly(self):
        record = InventoryRecord()
        record.update(ev(0))
        view = record.view("k", now=ev(0).ts, dormant_after=DAY, in_learning=False)
        assert view["owner"] == "no owner on record"
        assert view["dormant"] is False

    def test_round_trip(self):
        record = InventoryRecord()
        record.update(ev(0, actor="alice@example.com"))
        again = InventoryRecord.from_dict(record.to_dict())
        assert again == record
        assert again.last_actor == "alice@example.com"
