"""CloudTrail Insights (edge case B03): kept out of every baseline, attached as context to
the alerts of the identities they name, in native JSON and OCSF."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import orjson

from detector.engine import INSIGHT_KEEP_SECONDS, INSIGHT_OPEN_SECONDS, MAX_INSIGHTS, Detector
from detector.ocsf import to_ocsf
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from tests.detector.test_engine import ATTACK, ROLE, attack_event, baseline, run

SESSION = "arn:aws:sts::111122223333:assumed-role/app/i-0123456789abcdef0"


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def insight(state: str, when: datetime, shared: str = "s-1", arns: tuple = (SESSION,),
            kind: str = "ApiCallRateInsight") -> dict:
    """An Insights record as CloudTrail writes it (see edge case B03)."""
    return {
        "eventVersion": "1.09", "eventTime": iso(when), "awsRegion": "us-east-1",
        "eventID": f"{shared}-{state}", "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": "111122223333", "sharedEventID": shared,
        "eventCategory": "Insight",
        "insightDetails": {
            "state": state, "eventSource": "iam.amazonaws.com",
            "eventName": "CreateAccessKey", "insightType": kind,
            "insightContext": {
                "statistics": {"baseline": {"average": 0.25}, "insight": {"average": 12.0},
                               "insightDuration": 30, "baselineDuration": 10080},
                "attributions": [
                    {"attribute": "userAgent", "insight": [{"value": "aws-cli/2.0"}]},
                    {"attribute": "userIdentityArn",
                     "insight": [{"value": arn, "average": 12.0} for arn in arns],
                     "baseline": [{"value": "arn:aws:iam::111122223333:user/old",
                                   "average": 0.25}]},
                    {"attribute": "errorCode", "insight": [{"value": "null"}]},
                ]}}}


def parsed(*records: dict) -> tuple[list, RunStats]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps({"Records": list(records)}), origin="insights",
                           stats=stats, dead_letters=dead)
    assert stats.balanced() and len(dead) == 0
    return events, stats


def learned() -> tuple[Detector, RunStats]:
    stats = RunStats()
    detector = Detector({}, stats=stats)
    assert run(detector, baseline()) == []
    return detector, stats


START, END = ATTACK - timedelta(minutes=10), ATTACK + timedelta(minutes=20)
EXPECTED = {"shared_event_id": "s-1", "type": "ApiCallRateInsight",
            "event_source": "iam.amazonaws.com", "event_name": "CreateAccessKey",
            "baseline_average": 0.25, "insight_average": 12.0,
            "start": "2024-03-08T02:50:00.000Z", "end": None}


class TestParsing:
    def test_records_are_skips_with_one_context_event_per_identity(self) -> None:
        other = "arn:aws:iam::111122223333:user/ci-bot"
        events, stats = parsed(insight("Start", START, arns=(SESSION, other, SESSION)),
                               insight("End", END))
        assert stats.skipped == {("aws.cloudtrail", "insight"): 2}
        assert stats.events == {} and stats.events_by_path == {}
        assert stats.insights == {("ApiCallRateInsight", "start"): 1,
                                  ("ApiCallRateInsight", "end"): 1}
        assert [(e.identity, e.attributes["insight"]["state"]) for e in events] == [
            (ROLE, "start"), (other, "start"), (ROLE, "end")]
        first = events[0]
        assert (first.event_id, first.partial, first.action, first.ts) == \
            ("", True, "iam:CreateAccessKey", START.timestamp())
        assert first.identity_resolution == "insight_attribution"
        assert first.attributes["insight"] == {
            "shared_event_id": "s-1", "state": "start", "type": "ApiCallRateInsight",
            "event_source": "iam.amazonaws.com", "event_name": "CreateAccessKey",
            "baseline_average": 0.25, "insight_average": 12.0, "duration_minutes": 30.0,
            "attributed_arn": SESSION}

    def test_unknown_type_and_state__are_bounded_labels(self) -> None:
        record = insight("Paused", START, kind="SomethingNew")
        events, stats = parsed(record)
        assert events == []
        assert stats.insights == {("other", "other"): 1}


class TestEngine:
    def test_alert_inside_the_window__carries_the_insight(self) -> None:
        detector, stats = learned()
        events, _ = parsed(insight("Start", START))
        assert run(detector, events) == []
        (alert,) = run(detector, [attack_event()])
        assert alert.context["insights"] == [EXPECTED]
        assert stats.insight_context == {"stored": 1, "attached": 1}
        native = alert.to_native()
        assert native["context"]["insights"] == [EXPECTED]
        finding = to_ocsf(alert)
        assert finding["enrichments"] == [{
            "name": "actor.user.uid", "value": ROLE, "type": "cloudtrail_insight",
            "provider": "AWS CloudTrail Insights", "data": EXPECTED}]
        assert finding["unmapped"]["nhi_context"]["insights"] == [EXPECTED]

    def test_end_closes_the_window(self) -> None:
        detector, _ = learned()
        events, _ = parsed(insight("Start", START), insight("End", END))
        run(detector, events)
        (inside,) = run(detector, [attack_event()])
        assert inside.context["insights"] == [dict(EXPECTED, end="2024-03-08T03:20:00.000Z")]
        late = END + timedelta(minutes=5)
        other = attack_event(1, "iam:CreateUser", event_id="after", time=late,
                             ts=late.timestamp())
        alerts = run(detector, [other])
        assert alerts and all(a.context["insights"] == inside.context["insights"]
                              for a in alerts)  # folded into the open group: kept
        fresh, _ = learned()
        run(fresh, events)
        (outside,) = run(fresh, [other])
        assert "insights" not in outside.context

    def test_start_without_end__expires(self) -> None:
        detector, _ = learned()
        events, _ = parsed(insight("Start", START - timedelta(seconds=INSIGHT_OPEN_SECONDS)))
        run(detector, events)
        (alert,) = run(detector, [attack_event()])
        assert "insights" not in alert.context
        assert list(detector.store[ROLE].alerts.insights) == ["s-1"]  # kept for late events
        gone = START - timedelta(seconds=INSIGHT_OPEN_SECONDS + INSIGHT_KEEP_SECONDS)
        detector, _ = learned()
        events, _ = parsed(insight("Start", gone))
        run(detector, events)
        (alert,) = run(detector, [attack_event()])
        assert "insights" not in alert.context
        assert detector.store[ROLE].alerts.insights == {}  # forgotten, not only unused

    def test_end_alone__opens_its_window_from_the_duration(self) -> None:
        detector, _ = learned()
        events, _ = parsed(insight("End", ATTACK + timedelta(minutes=5)))
        run(detector, events)
        (alert,) = run(detector, [attack_event()])
        assert alert.context["insights"] == [dict(EXPECTED, start="2024-03-08T02:35:00.000Z",
                                                  end="2024-03-08T03:05:00.000Z")]

    def test_insight_arriving_during_an_open_alert__is_shown_at_its_next_revision(self):
        detector, _ = learned()
        (first,) = run(detector, [attack_event()])
        assert "insights" not in first.context
        events, _ = parsed(insight("Start", START))
        run(detector, events)
        again = run(detector, [attack_event(1, "iam:CreateUser", event_id="x")])
        assert again[-1].alert_id == first.alert_id
        assert again[-1].context["insights"] == [EXPECTED]

    def test_insights_teach_nothing_and_raise_nothing(self) -> None:
        detector, stats = learned()
        state = detector.store[ROLE]
        profile, inventory = state.profile.to_bytes(), state.inventory.to_dict()
        now, sweep = detector._now, detector._next_sweep
        events, _ = parsed(*[insight("Start", START + timedelta(minutes=n), shared=f"s-{n}")
                             for n in range(20)])
        assert run(detector, events) == []
        assert state.profile.to_bytes() == profile
        assert state.inventory.to_dict() == inventory
        assert (detector._now, detector._next_sweep) == (now, sweep)
        assert sum(stats.alerts.values()) == 0
        assert sorted(state.alerts.insights) == [f"s-{n}" for n in range(20 - MAX_INSIGHTS, 20)]

    def test_unknown_identity__is_counted_and_dropped(self) -> None:
        detector, stats = learned()
        stranger = "arn:aws:sts::111122223333:assumed-role/stranger/x"
        events, _ = parsed(insight("Start", START, arns=(stranger,)))
        run(detector, events)
        assert stats.insight_context == {"no_state": 1}
        assert "arn:aws:iam::111122223333:role/stranger" not in detector.store

    def test_insights_travel_with_the_identity_state(self) -> None:
        detector, _ = learned()
        blob_without = detector.identity_state(ROLE)
        assert b"insights" not in blob_without  # no insight: the state keeps its bytes
        events, _ = parsed(insight("Start", START))
        run(detector, events)
        restored = Detector({}, stats=RunStats())
        restored.load_state(detector.export_state())
        (alert,) = run(restored, [attack_event()])
        assert alert.context["insights"] == [EXPECTED]


def test_b03_file__attaches_to_the_session_role(edge_cases: Path) -> None:
    records = json.loads((edge_cases / "B03.json").read_text())["Records"]
    records[0]["eventTime"], records[1]["eventTime"] = iso(START), iso(END)
    role = "arn:aws:iam::123456789012:role/app-worker-role"
    events, stats = parsed(*records)
    assert stats.insights == {("ApiCallRateInsight", "start"): 1,
                              ("ApiCallRateInsight", "end"): 1}
    assert [e.identity for e in events] == [role, role]
    detector = Detector({}, stats=RunStats())
    run(detector, baseline(identity=role))
    run(detector, events)
    (alert,) = run(detector, [attack_event(identity=role)])
    assert alert.context["insights"] == [{
        "shared_event_id": "00000000-0000-4000-8000-000000000030",
        "type": "ApiCallRateInsight", "event_source": "ec2.amazonaws.com",
        "event_name": "DescribeRegions", "baseline_average": 0.5, "insight_average": 40.0,
        "start": "2024-03-08T02:50:00.000Z", "end": "2024-03-08T03:20:00.000Z"}]


def test_context_event__survives_the_worker_repartition_codec() -> None:
    """The worker sends events to the owner of their identity as rows; a context event
    must come out still routed to the insight path, with its insight intact."""
    from streams import codecs

    events, _ = parsed(insight("Start", START))
    _, body = codecs.decode_repartition(
        codecs.encode_events(["raw[0]"], {ROLE: [(0, 1, events[0])]}))
    reader = codecs.EventReader(body.get("fields"))
    (item,) = body["batches"][ROLE]
    decoded = reader.event(ROLE, item[2])
    assert decoded == events[0]
    detector, stats = learned()
    assert run(detector, [decoded]) == []
    (alert,) = run(detector, [attack_event()])
    assert alert.context["insights"] == [EXPECTED]
    assert stats.insight_context == {"stored": 1, "attached": 1}
