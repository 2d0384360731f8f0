"""Context the engine adds to alerts and counts beside them: the identity's silence before
the alerted event, and escalations of an emitted alert (scraped from /metrics)."""

from __future__ import annotations

from datetime import timedelta

from detector.metrics import start_metrics_server
from tests.detector.test_engine import ATTACK, attack_event, ev, learned, run
from tests.detector.test_metrics import scrape, value

LAST_BASELINE = ATTACK - timedelta(hours=4)  # day 6, 23:00: the last routine call


def test_silence__names_weeks_of_quiet_before_the_alerted_event():
    detector, _ = learned()
    late = ATTACK + timedelta(days=23)
    alerts = run(detector, [ev(0, late, "iam:CreateAccessKey", event_id="back",
                               source_ip="203.0.113.7", network="public",
                               network_prefix="203.0.113.0/24")])
    assert len(alerts) == 1
    context = alerts[0].context
    gap = int((late - LAST_BASELINE).total_seconds())
    assert context["silence_seconds"] == gap == 23 * 86400 + 4 * 3600
    assert context["silence"] == "first activity after 23 days of silence"


def test_silence__short_gaps_give_seconds_and_no_line():
    detector, _ = learned()
    alerts = run(detector, [attack_event(0)])
    assert alerts[0].context["silence_seconds"] == 4 * 3600
    assert "silence" not in alerts[0].context


def test_silence__keeps_the_longest_gap_of_the_alert():
    detector, _ = learned()
    late = ATTACK + timedelta(days=9)
    first = ev(0, late, "ec2:DescribeInstances", event_id="back", source_ip="203.0.113.7",
               network="public", network_prefix="203.0.113.0/24")
    second = ev(1, late + timedelta(seconds=5), "iam:CreateAccessKey", event_id="more",
                source_ip="203.0.113.7", network="public", network_prefix="203.0.113.0/24")
    alerts = run(detector, [first, second])
    assert [a.revision for a in alerts] == [1, 2]
    assert alerts[1].context["silence_seconds"] == 9 * 86400 + 4 * 3600
    assert alerts[1].context["silence"] == "first activity after 9 days of silence"


def test_escalation__counted_and_scraped_over_http():
    detector, stats = learned()
    first = detector.process(attack_event(0, action="ec2:DescribeInstances"))
    second = detector.process(attack_event(5, action="iam:CreateAccessKey"))
    assert [(a.revision, a.severity) for a in first + second] == [(1, "medium"), (2, "high")]
    assert dict(stats.alerts) == {("medium", "novelty.action"): 1}
    assert dict(stats.escalations) == {("medium", "high"): 1}
    server, _ = start_metrics_server(0, stats)
    try:
        samples = scrape(server.port)
    finally:
        server.shutdown()
    assert value(samples, "nhi_alert_escalations_total", from_severity="medium",
                 to_severity="high") == 1
    assert value(samples, "nhi_alerts_total", severity="medium", detector="novelty.action") == 1


def test_escalation__not_counted_for_an_update_at_the_same_severity():
    detector, stats = learned()
    detector.process(attack_event(0, action="iam:CreateAccessKey"))
    again = detector.process(attack_event(5, action="iam:CreateUser"))
    assert [(a.revision, a.severity) for a in again] == [(2, "high")]
    assert sum(stats.escalations.values()) == 0
