"""The Detector engine end to end on hand-built events with the real models."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from detector.engine import Detector
from detector.errors import StateError
from detector.event import Event
from detector.stats import RunStats
from tests.detector.alert_schema import assert_valid_alert

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ACCOUNT = "111122223333"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
DEPLOYER = f"arn:aws:iam::{ACCOUNT}:role/terraform-runner"
ATTACK = T0 + timedelta(days=7, hours=3)
KEY_POLICY = {"scoring": {"policy_rules": [
    {"name": "no-key-creation", "action": "iam:CreateAccessKey", "always": True,
     "severity": "high", "reason": "workloads never create access keys"}]}}


def ev(n: int, when: datetime, action: str, **fields) -> Event:
    values = {
        "event_id": f"e{n}",
        "time": when,
        "ts": when.timestamp(),
        "source": "aws.cloudtrail",
        "identity": ROLE,
        "identity_kind": "workload",
        "kind_reason": "assumed role used programmatically",
        "tenant": ACCOUNT,
        "action": action,
        "resource": "arn:aws:s3:::data/key",
        "source_ip": "10.0.0.5",
        "network": "private",
        "network_prefix": "10.0.0.0/24",
        "agent_family": "boto3",
        "region": "us-east-1",
        "credential_id": "ASIAEXAMPLE1",
        "credential_type": "temporary",
    }
    values.update(fields)
    return Event(**values)


def baseline(identity: str = ROLE, days: int = 7, **fields) -> Iterator[Event]:
    """Two routine calls an hour for ``days`` days: a steady, learned workload."""
    n = 0
    for day in range(days):
        for hour in range(24):
            for action in ("s3:GetObject", "sqs:ReceiveMessage"):
                n += 1
                when = T0 + timedelta(days=day, hours=hour)
                yield ev(n, when, action, identity=identity, event_id=f"{identity}-b{n}",
                         **fields)


def attack_event(n: int = 0, action: str = "iam:CreateAccessKey", **fields) -> Event:
    values = {"source_ip": "203.0.113.7", "network": "public",
              "network_prefix": "203.0.113.0/24", "event_id": f"atk{n}"}
    values.update(fields)
    return ev(n, ATTACK + timedelta(seconds=n), action, **values)


def run(detector: Detector, events) -> list:
    """Process events; every alert produced must match the native schema."""
    alerts = []
    for event in events:
        alerts.extend(detector.process(event))
    for alert in alerts:
        assert_valid_alert(alert.to_native())
    return alerts


def learned(config: dict | None = None, **kwargs) -> tuple[Detector, RunStats]:
    stats = RunStats()
    detector = Detector(config or {}, stats=stats, **kwargs)
    assert run(detector, baseline()) == []
    return detector, stats


class TestDetection:
    def test_steady_identity_raises_nothing(self):
        detector, stats = learned()
        assert sum(stats.alerts.values()) == 0
        assert detector.identities_summary()["in_learning"] == 0

    def test_sensitive_new_action_alerts_with_identity_techniques_evidence(self):
        detector, stats = learned()
        alerts = detector.process(attack_event())
        assert len(alerts) == 1
        alert = alerts[0]
        native = alert.to_native()
        assert_valid_alert(native)
        assert native["identity"]["key"] == ROLE
        assert native["identity"]["owner"] == "no owner on record"
        assert native["severity"] == "high"
        assert "T1098.001" in [t["id"] for t in native["techniques"]]
        assert native["evidence"]["event_ids"] == ["atk0"]
        assert native["context"]["sensitive_categories"] == ["credential_creation"]
        assert native["signals"][0]["detector"] == "novelty.action"
        assert native["signals"][0]["value"] == "iam:CreateAccessKey"
        assert stats.alerts[("high", "novelty.action")] == 1

    def test_owner_and_actor_from_the_event_are_carried(self):
        detector, _ = learned()
        event = attack_event(owner="team-payments", actor="alice@example.com")
        (alert,) = run(detector, [event])
        assert alert.owner == "team-payments"
        assert alert.context["actors"] == ["alice@example.com"]

    def test_same_input_twice_gives_identical_alerts(self):
        def once() -> list[dict]:
            detector, _ = learned()
            out = run(detector, (attack_event(n) for n in range(30)))
            out += detector.finish()
            return [a.to_native() for a in out]

        first, second = once(), once()
        assert first and first == second

    def test_burst_of_behavioural_deviations_is_one_alert(self):
        detector, stats = learned()
        events = (attack_event(n, event_id=f"burst{n}") for n in range(2_000))
        alerts = run(detector, events) + detector.finish()
        assert len({a.alert_id for a in alerts}) == 1
        assert len(alerts) <= 5
        assert [a.revision for a in alerts] == list(range(1, len(alerts) + 1))
        assert sum(stats.alerts.values()) == 1
        assert stats.alert_updates == len(alerts) - 1

    def test_burst_of_10000_similar_deviations_is_one_updated_alert(self):
        # A policy rule makes every one of the 10,000 events a deviation, whatever the
        # models decide to learn meanwhile.
        detector, stats = learned(KEY_POLICY)
        events = (attack_event(n, event_id=f"burst{n}") for n in range(10_000))
        alerts = run(detector, events) + detector.finish()
        assert len({a.alert_id for a in alerts}) == 1
        assert [a.revision for a in alerts] == [1, 2]
        final = alerts[-1]
        assert final.evidence["event_count"] == 10_000
        assert len(final.evidence["event_ids"]) == 20
        assert final.evidence["event_ids_truncated"] is True
        assert sum(stats.alerts.values()) == 1
        assert stats.alert_updates == 1
        for alert in alerts:
            assert_valid_alert(alert.to_native())


class TestLearningPeriod:
    def test_new_identity_is_observed_not_alerted(self):
        stats = RunStats()
        detector = Detector({}, stats=stats)
        events = [ev(n, T0 + timedelta(minutes=n), "s3:GetObject") for n in range(10)]
        events.append(attack_event(99))
        assert run(detector, events) == []
        assert detector.inventory()[0]["in_learning"] is True

    def test_logging_tampering_alerts_even_while_learning(self):
        detector = Detector({}, stats=RunStats())
        run(detector, [ev(n, T0 + timedelta(minutes=n), "s3:GetObject") for n in range(3)])
        alerts = detector.process(ev(9, T0 + timedelta(minutes=9), "cloudtrail:StopLogging"))
        assert len(alerts) == 1
        native = alerts[0].to_native()
        assert_valid_alert(native)
        assert native["severity"] == "critical"
        assert native["detectors"] == ["policy.logging_tampering"]
        assert [t["id"] for t in native["techniques"]][0] == "T1562.008"
        assert native["context"]["in_learning"] is True

    def test_the_event_that_ends_learning_is_judged_as_the_models_scored_it(self):
        """The models score an event against the history before it (49 events: still
        learning) and count it afterwards; the engine must judge it at the same stage.
        Judged as learned, logging tampering on the 50th event fell between the two: no
        policy alert (learned) and no model signal (learning)."""
        detector = Detector({}, stats=RunStats())
        calls = [ev(n, T0 + timedelta(hours=2 * n), "s3:GetObject") for n in range(49)]
        assert run(detector, calls) == []  # 49 events over four days: short of 50
        alerts = detector.process(ev(99, T0 + timedelta(days=5), "cloudtrail:StopLogging"))
        assert [a.detectors for a in alerts] == [("policy.logging_tampering",)]
        assert alerts[0].to_native()["context"]["in_learning"] is True
        assert detector.inventory()[0]["in_learning"] is False  # 50 events now

    def test_configured_policy_rule(self):
        config = {"scoring": {"policy_rules": [
            {"name": "no-iam-users", "action": "iam:CreateUser", "severity": "medium",
             "reason": "workloads never create users"}]}}
        detector = Detector(config, stats=RunStats())
        alerts = detector.process(ev(1, T0, "iam:CreateUser"))
        assert [a.severity for a in alerts] == ["medium"]
        assert alerts[0].detectors == ("policy.no-iam-users",)


def sparse(days: int = 20) -> Iterator[Event]:
    """A CI role's thin history: two calls at 10:00 each day (40 events over 20 days)."""
    for day in range(days):
        for k, action in enumerate(("s3:PutObject", "cloudformation:DescribeStacks")):
            when = T0 + timedelta(days=day, hours=10, seconds=k)
            yield ev(2 * day + k, when, action, event_id=f"s{day}-{k}")


def replayed(day: int, action: str = "iam:ListRoles", **fields) -> Event:
    """One call of the CI role on ``day`` at 10:05, from the laptop's network by default."""
    values = {"source_ip": "198.51.100.7", "network": "public",
              "network_prefix": "198.51.100.0/24", "event_id": f"r{day}-{action}"}
    values.update(fields)
    return ev(0, T0 + timedelta(days=day, hours=10, minutes=5), action, **values)


class TestThinHistory:
    """An identity short of ``learning_min_events`` after ``thin_history_min_days`` is
    alerted on only when a new origin and new conduct agree."""

    def detector(self, config: dict | None = None) -> tuple[Detector, RunStats]:
        stats = RunStats()
        detector = Detector(config or {}, stats=stats)
        assert run(detector, sparse()) == []
        return detector, stats

    def test_new_action_from_a_new_network_alerts_and_says_why(self):
        detector, stats = self.detector()
        alerts = run(detector, [replayed(20)])
        assert len(alerts) == 1
        native = alerts[0].to_native()
        assert "novelty.action" in native["detectors"]
        assert {"novelty.network", "credential.new_network"} & set(native["detectors"])
        notes = " ".join(native["context"]["notes"])
        assert "thin history (41 events over 20 days)" in notes  # this one included
        assert stats.suppressed["thin_history"] == 0

    def test_one_new_thing_alone_is_counted_not_alerted(self):
        detector, stats = self.detector()
        # a new action (and so a new service) from the usual network: one line of evidence
        assert run(detector, [replayed(20, network="private", source_ip="10.0.0.5",
                                       network_prefix="10.0.0.0/24")]) == []
        assert stats.suppressed["thin_history"] == 1
        assert detector.inventory()[0]["in_learning"] is False

    def test_a_policy_action_alerts_as_in_learning(self):
        """Logging tampering from the usual network (one line of evidence) still alerts
        at the category's level, as it did while the identity was learning."""
        detector, stats = self.detector()
        alerts = run(detector, [replayed(20, "cloudtrail:StopLogging", network="private",
                                         source_ip="10.0.0.5", network_prefix="10.0.0.0/24")])
        assert [a.severity for a in alerts] == ["critical"]
        native = alerts[0].to_native()
        assert native["detectors"] == ["policy.logging_tampering"]
        assert "thin history" in native["signals"][0]["sentence"]
        assert native["signals"][0]["baseline"].startswith(
            "no baseline yet (learned on a thin history: 41 events")
        assert stats.suppressed["thin_history"] == 0

    def test_too_short_a_history_stays_in_learning(self):
        stats = RunStats()
        detector = Detector({}, stats=stats)
        assert run(detector, sparse(days=10)) == []
        assert run(detector, [replayed(10)]) == []
        assert detector.inventory()[0]["in_learning"] is True
        assert stats.suppressed["thin_history"] == 0

    def test_zero_days_turns_it_off(self):
        detector, stats = self.detector({"models": {"thin_history_min_days": 0}})
        assert run(detector, [replayed(20)]) == []
        assert detector.inventory()[0]["in_learning"] is True
        assert stats.suppressed["thin_history"] == 0


class TestKeyBackFromSilence:
    """A long-term key used a few times, silent for the dormancy period, then back: its
    return is judged as a thin history although the key is still learning."""

    KEY = {"identity": "arn:aws:iam::111122223333:user/svc-report", "credential_id":
           "AKIAOLDREPORTKEY", "credential_type": "long_term",
           "kind_reason": "IAM user (SDK key only)"}

    def run_key(self, stats: RunStats, back: dict, **key) -> list:
        detector = Detector({}, stats=stats)
        fields = {**self.KEY, **key}
        early = [ev(n, T0 + timedelta(days=n // 3, hours=6, minutes=n), "s3:GetObject",
                    event_id=f"k{n}", **fields) for n in range(8)]
        assert run(detector, early) == []
        when = T0 + timedelta(days=34, hours=3)
        return run(detector, [ev(99, when, "sts:GetCallerIdentity", event_id="back",
                                 **{**fields, **back})])

    def test_back_from_a_new_network_alerts(self):
        stats = RunStats()
        alerts = self.run_key(stats, {"source_ip": "185.220.101.41", "network": "public",
                                      "network_prefix": "185.220.101.0/24"})
        assert len(alerts) == 1
        found = set(alerts[0].detectors)
        assert "dormancy.identity" in found and found & {"novelty.network",
                                                         "credential.new_network"}
        assert "thin history (9 events" in " ".join(alerts[0].to_native()["context"]["notes"])

    def test_back_from_its_usual_network_is_counted(self):
        stats = RunStats()
        assert self.run_key(stats, {}) == []
        assert stats.suppressed["thin_history"] == 1

    def test_a_role_session_back_is_still_learning(self):
        stats = RunStats()
        back = {"source_ip": "185.220.101.41", "network": "public",
                "network_prefix": "185.220.101.0/24"}
        assert self.run_key(stats, back, credential_id="ASIATEMP", credential_type="temporary",
                            identity=ROLE) == []
        assert stats.suppressed["thin_history"] == 0


class TestNoiseControl:
    def test_cooldown_holds_back_the_same_deviation(self):
        config = {"scoring": {**KEY_POLICY["scoring"], "group_window": 600, "cooldown": 86400}}
        detector, stats = learned(config)
        first = detector.process(attack_event(0))
        later = attack_event(3600, event_id="later")
        assert len(first) == 1
        assert detector.process(later) == []
        assert stats.suppressed["cooldown"] == 1
        after_cooldown = attack_event(2 * 86400, event_id="much-later")
        assert len(detector.process(after_cooldown)) == 1

    def test_cooldown_survives_finish_and_a_snapshot(self):
        config = {"scoring": {**KEY_POLICY["scoring"], "cooldown": 86400}}
        detector, stats = learned(config)
        assert len(detector.process(attack_event(0))) == 1
        detector.finish()
        resumed = Detector(config, stats=stats)
        resumed.load_state(detector.export_state())
        assert resumed.process(attack_event(7200, event_id="after-restart")) == []
        assert stats.suppressed["cooldown"] == 1

    def test_suppression_rule_and_its_expiry(self):
        rule = {"identity": "*role/app", "detector": "novelty.*", "reason": "known change",
                "expires": "2026-06-30"}
        before = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
        after = datetime(2026, 7, 2, tzinfo=UTC).timestamp()
        active, stats = learned({"suppressions": [rule]}, clock=lambda: before)
        assert active.process(attack_event(0)) == []
        assert stats.suppressed["suppression_rule"] >= 1
        expired, stats = learned({"suppressions": [rule]}, clock=lambda: after)
        assert len(expired.process(attack_event(0))) == 1
        assert stats.suppressed["expired_rule"] >= 1

    def test_feedback_teaches_the_baseline(self):
        # A low hold-out score keeps the deviation out of the baseline until feedback (and
        # no lookback: the control's repeat is not held back as one already told)
        config = {"models": {"holdout_score": 0.3},
                  "scoring": {"group_window": 60, "cooldown": 0, "recurrence_lookback_days": 0}}
        again = attack_event(3600, event_id="again")
        control, _ = learned(config)
        assert control.process(attack_event(0)) and control.finish() == []
        assert len(control.process(again)) == 1
        detector, stats = learned(config)
        alert = detector.process(attack_event(0))[0]
        detector.finish()
        for pair in alert.evidence["signal_values"]:
            assert detector.mark_expected(ROLE, pair["detector"], pair["value"])
        assert detector.process(again) == []
        assert detector.mark_expected("arn:aws:iam::1:role/unknown", "novelty.action", "x") is False

    def test_feedback_on_an_action_covers_its_pairs_only(self):
        from detector.engine import _is_expected

        detector, _ = learned()
        assert detector.mark_expected(ROLE, "novelty.action", "iam:CreateAccessKey")
        expected = detector.store[ROLE].alerts.expected
        assert _is_expected(expected, "novelty.action", "iam:CreateAccessKey")
        assert _is_expected(expected, "novelty.action_network", "iam:CreateAccessKey|1.2.3.0/24")
        assert not _is_expected(expected, "novelty.action_network", "iam:CreateUser|1.2.3.0/24")
        assert not _is_expected(expected, "novelty.network", "iam:CreateAccessKey|x")

    def test_change_context_lowers_severity_of_new_plain_behaviour(self):
        detector, _ = learned()
        plain = attack_event(0, action="ec2:RunInstances", source_ip="10.0.0.5",
                             network="private", network_prefix="10.0.0.0/24")
        baseline_alert = learned()[0].process(plain)[0]
        change = ev(1, ATTACK - timedelta(minutes=10), "iam:PutRolePolicy",
                    identity=DEPLOYER, agent_family="terraform", resource="app",
                    event_id="deploy1")
        detector.process(change)
        changed = detector.process(plain)[0]
        assert "terraform-runner" in changed.context["change_context"]
        order = ["info", "low", "medium", "high", "critical"]
        assert order.index(changed.severity) == max(order.index(baseline_alert.severity) - 1, 1)

    def test_platform_identity_routine_novelty_is_quiet(self):
        stats = RunStats()
        detector = Detector({}, stats=stats)
        slr = f"arn:aws:iam::{ACCOUNT}:role/AWSServiceRoleForConfig"
        run(detector, baseline(slr, identity_kind="cloud_service",
                               kind_reason="service-linked role"))
        routine = attack_event(0, action="s3:GetObject", identity=slr,
                               identity_kind="cloud_service", resource="arn:aws:s3:::other",
                               region="eu-west-3")
        assert detector.process(routine) == []
        assert stats.suppressed["platform_routine"] == 1
        outside = attack_event(1, action="iam:AttachRolePolicy", identity=slr,
                               identity_kind="cloud_service")
        alerts = detector.process(outside)
        assert [a.severity for a in alerts] == ["high"]

    def test_shadow_detectors_are_flagged_and_counted_apart(self):
        config = {"scoring": {"shadow_detectors": ["novelty.*"]}}
        detector, stats = learned(config)
        alerts = detector.process(attack_event(0))
        assert len(alerts) == 1 and alerts[0].shadow is True
        assert sum(stats.alerts.values()) == 0
        assert sum(stats.shadow_alerts.values()) == 1
        assert_valid_alert(alerts[0].to_native())


class TestChangeContext:
    def test_lambda_code_update_explains_its_role_new_behaviour(self):
        lambda_role = f"arn:aws:iam::{ACCOUNT}:role/resize-role"
        stats = RunStats()
        detector = Detector({}, stats=stats)
        run(detector, baseline(lambda_role, session="resize"))
        deploy = ev(1, ATTACK - timedelta(minutes=5), "lambda:UpdateFunctionCode20150331v2",
                    identity=DEPLOYER, agent_family="terraform", event_id="deploy",
                    resource=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:resize")
        run(detector, [deploy])
        new_call = attack_event(0, action="sns:Publish", identity=lambda_role,
                                session="resize", source_ip="10.0.0.5", network="private",
                                network_prefix="10.0.0.0/24")
        (alert,) = run(detector, [new_call])
        assert "lambda:UpdateFunctionCode20150331v2" in alert.context["change_context"]
        assert alert.severity == "low"

    def test_change_by_a_non_deployer_gives_no_context(self):
        detector, _ = learned()
        change = ev(1, ATTACK - timedelta(minutes=10), "iam:PutRolePolicy",
                    identity=f"arn:aws:iam::{ACCOUNT}:role/random", resource="app",
                    event_id="not-a-deploy")
        run(detector, [change])
        plain = attack_event(0, action="ec2:RunInstances", source_ip="10.0.0.5",
                             network="private", network_prefix="10.0.0.0/24")
        (alert,) = run(detector, [plain])
        assert "change_context" not in alert.context

    def test_old_change_is_outside_the_window(self):
        detector, _ = learned({"scoring": {"change_window": 600}})
        change = ev(1, ATTACK - timedelta(hours=1), "iam:PutRolePolicy", identity=DEPLOYER,
                    agent_family="terraform", resource="app", event_id="old-deploy")
        run(detector, [change])
        plain = attack_event(0, action="ec2:RunInstances", source_ip="10.0.0.5",
                             network="private", network_prefix="10.0.0.0/24")
        (alert,) = run(detector, [plain])
        assert "change_context" not in alert.context


class TestRecurrence:
    CONFIG = {"models": {"holdout_score": 0.3}}  # keep the daily deviation out of the baseline

    def daily(self, detector: Detector, action: str, days: int = 5,
              moving: bool = True) -> list:
        """The same call at 05:00 each day, from a network new each day (``moving``) or
        from the same one."""
        alerts = []
        for day in range(days):
            when = T0 + timedelta(days=7 + day, hours=5)
            net = f"203.0.{113 + day * moving}"
            event = ev(day, when, action, event_id=f"daily{day}", source_ip=f"{net}.7",
                       network="public", network_prefix=f"{net}.0/24")
            alerts += run(detector, [event])
        return alerts

    def test_a_deviation_recurring_at_the_same_hour_is_lowered(self):
        detector, _ = learned(self.CONFIG)
        alerts = self.daily(detector, "ec2:RunInstances")
        assert [a.severity for a in alerts] == ["medium", "medium", "medium", "low", "low"]
        assert "recurred around 05:00 UTC on 3 of the last 7 days" in alerts[3].context["notes"][0]

    def test_a_repeat_of_values_already_alerted_on_is_counted_not_alerted(self):
        """The held action from the same network each day: the first alert named both
        values; each later day's is the same news at the same severity."""
        detector, stats = learned(self.CONFIG)
        alerts = self.daily(detector, "ec2:RunInstances", moving=False)
        assert [a.severity for a in alerts] == ["medium"]
        assert stats.suppressed["repeat"] == 4
        told = detector.store[ROLE].alerts.told
        assert {key.split("\x1f")[0] for key in told} >= {"novelty.action",
                                                            "novelty.network"}
        # a week later it is news again
        later = ev(9, T0 + timedelta(days=20, hours=5), "ec2:RunInstances", event_id="later",
                   source_ip="203.0.113.7", network="public", network_prefix="203.0.113.0/24")
        assert [a.severity for a in run(detector, [later])] == ["medium"]

    def test_a_recurring_sensitive_action_is_never_lowered(self):
        detector, _ = learned(self.CONFIG)
        alerts = self.daily(detector, "iam:CreateAccessKey")
        assert [a.severity for a in alerts] == ["high"] * 5

    def test_recurrence_can_be_switched_off(self):
        config = {**self.CONFIG, "scoring": {"recurrence_days": 0}}
        detector, _ = learned(config)
        alerts = self.daily(detector, "ec2:RunInstances")
        assert [a.severity for a in alerts] == ["medium"] * 5


class TestDegradations:
    def test_profile_degradations_reach_run_stats(self):
        stats = RunStats()
        detector = Detector({"models": {"novelty_cap_resource": 4}}, stats=stats)
        events = [ev(n, T0 + timedelta(minutes=n), "s3:GetObject", resource=f"arn:aws:s3:::b/{n}")
                  for n in range(200)]
        run(detector, events)
        assert sum(stats.degradations.values()) > 0
        assert not detector.store[ROLE].profile.degradations


class TestPendingGroups:
    def test_below_min_severity_nothing_is_emitted_nor_cooled(self):
        detector, stats = learned({"scoring": {"min_severity": "critical"}})
        assert detector.process(attack_event(0)) == []
        assert detector.finish() == []
        assert sum(stats.alerts.values()) == 0
        assert detector.store[ROLE].alerts.cooldowns == {}

    def test_pending_evidence_is_emitted_once_it_earns_min_severity(self):
        rules = [
            {"name": "a", "action": "iam:ListUsers", "severity": "medium", "always": True},
            {"name": "b", "action": "iam:CreateUser", "severity": "high", "always": True},
        ]
        config = {"scoring": {"min_severity": "high", "policy_rules": rules}}
        detector, stats = learned(config)
        assert detector.process(attack_event(0, action="iam:ListUsers")) == []
        alerts = detector.process(attack_event(1, action="iam:CreateUser"))
        assert len(alerts) == 1
        alert = alerts[0]
        assert (alert.revision, alert.severity) == (1, "high")
        assert alert.evidence["event_ids"] == ["atk0", "atk1"]
        assert sum(stats.alerts.values()) == 1
        assert [severity for severity, _ in stats.alerts] == ["high"]

    def test_track_severity_above_min_is_refused(self):
        from detector.errors import ConfigError

        with pytest.raises(ConfigError, match="track_severity .* must not be above"):
            Detector({"scoring": {"track_severity": "high", "min_severity": "low"}},
                     stats=RunStats())


class TestState:
    def test_snapshot_round_trip_continues_identically(self):
        tail = [attack_event(n) for n in range(5)]
        straight, _ = learned()
        expected = [a.to_native() for a in run(straight, tail) + straight.finish()]
        first, _ = learned()
        resumed = Detector({}, stats=RunStats())
        resumed.load_state(first.export_state())
        got = [a.to_native() for a in run(resumed, tail) + resumed.finish()]
        assert got == expected and got

    def test_identity_state_blob_carries_alert_state(self):
        detector, _ = learned(KEY_POLICY)
        opened = detector.process(attack_event(0))
        blob = detector.identity_state(ROLE)
        worker = Detector(KEY_POLICY, stats=RunStats())
        worker.set_identity_state(ROLE, blob)
        # The open group travelled with the blob: the next event updates, not re-opens.
        update = worker.process(attack_event(1)) + worker.finish()
        assert update and {a.alert_id for a in update} == {opened[0].alert_id}
        assert all(a.revision > 1 for a in update)
        assert worker.identity_state("absent") is None

    def test_restored_identity_is_not_in_learning_before_any_new_event(self):
        """A restarted worker restores a learned identity and publishes its inventory
        before applying anything (all its events were redelivered): the entry must not
        claim the identity is back in its learning period."""
        detector, _ = learned()
        before = detector.inventory_entry(ROLE)
        restarted = Detector({}, stats=RunStats())
        restarted.set_identity_state(ROLE, detector.identity_state(ROLE))
        after = restarted.inventory_entry(ROLE)
        assert before["in_learning"] is False
        assert after["in_learning"] is False
        assert after["dormant"] is before["dormant"] is False
        assert after["events"] == before["events"] > 0

    def test_table_backed_worker_matches_the_in_memory_detector(self):
        """The worker keeps each identity in a table and may evict it between messages:
        reloading the blob before every event must give exactly the same alerts."""
        events = list(baseline(days=4)) + [attack_event(n) for n in range(0, 4000, 40)]
        events.append(attack_event(9000, action="s3:GetObject", event_id="closer"))
        straight = Detector(KEY_POLICY, stats=RunStats())
        expected = [a.to_native() for a in run(straight, events)]
        table: dict[str, bytes] = {}
        worker = Detector(KEY_POLICY, stats=RunStats())
        got = []
        for event in events:
            if event.identity in table:
                worker.set_identity_state(event.identity, table[event.identity])
            got += [a.to_native() for a in worker.process(event)]
            table[event.identity] = worker.identity_state(event.identity)
            worker.store.pop(event.identity)
        assert got == expected
        assert [a["revision"] for a in got] == [1, 2]  # opened, then closed with more evidence

    def test_a_very_long_identity_key_survives_a_snapshot(self):
        detector = Detector({}, stats=RunStats())
        key = "arn:aws:iam::1:role/" + "x" * 70_000
        detector.process(ev(1, T0, "s3:GetObject", identity=key))
        again = Detector({}, stats=RunStats())
        again.load_state(detector.export_state())
        assert [e["identity"] for e in again.inventory()] == [key]

    def test_wrong_snapshot_version_is_refused(self):
        detector, _ = learned()
        data = bytearray(detector.export_state())
        data[8:10] = (99).to_bytes(2, "big")
        with pytest.raises(StateError, match="snapshot format version 99 is not supported"):
            Detector({}, stats=RunStats()).load_state(bytes(data))

    def test_garbage_is_refused(self):
        with pytest.raises(StateError, match="not an nhi-detector state snapshot"):
            Detector({}, stats=RunStats()).load_state(b"hello, this is not a snapshot")
        with pytest.raises(StateError, match="truncated"):
            Detector({}, stats=RunStats()).load_state(b"NHISNAP\x00\x00")

    def test_state_size_is_reported(self):
        detector, _ = learned()
        size = detector.state_size_bytes()
        assert size >= len(detector.identity_state(ROLE)) // 2
        assert size < 64 * 1024


class TestInventory:
    def test_inventory_entry(self):
        detector, _ = learned()
        detector.process(ev(999, ATTACK, "s3:GetObject", credential_id="AKIAOLDKEY",
                            credential_type="long_term"))
        (entry,) = detector.inventory()
        assert entry["identity"] == ROLE
        assert entry["kind"] == "workload"
        assert entry["owner"] == "no owner on record"
        assert entry["events"] == 7 * 24 * 2 + 1
        assert entry["first_seen"] == "2024-03-01T00:00:00.000Z"
        assert entry["last_seen"] == "2024-03-08T03:00:00.000Z"
        assert entry["dormant"] is False and entry["in_learning"] is False
        creds = {c["id"]: c for c in entry["credentials"]}
        assert creds["AKIAOLDKEY"]["type"] == "long_term"
        assert creds["AKIAOLDKEY"]["events"] == 1
        assert creds["ASIAEXAMPLE1"]["events"] == 7 * 24 * 2

    def test_summary_counts_kinds_learning_and_dormancy(self):
        stats = RunStats()
        detector = Detector({}, stats=stats)
        run(detector, baseline())
        human = f"arn:aws:iam::{ACCOUNT}:role/sso-admin"
        detector.process(ev(1, T0, "s3:ListBuckets", identity=human, identity_kind="human"))
        late = T0 + timedelta(days=40)
        detector.process(ev(2, late, "s3:GetObject"))
        assert detector.identities_summary() == {
            "tracked": 2, "in_learning": 1, "thin_history": 0, "dormant": 1,
            "persistent_anomaly": 0,
            "by_kind": {"human": 1, "workload": 1},
        }

    def test_summary_counts_identities_with_held_out_behaviour(self):
        detector = Detector({}, stats=RunStats())
        run(detector, baseline())
        assert detector.identities_summary()["persistent_anomaly"] == 0
        run(detector, (attack_event(n, resource=f"arn:aws:iam::{ACCOUNT}:user/x{n}")
                       for n in range(60)))
        assert detector.identities_summary()["persistent_anomaly"] == 1


class TestOwnersAfterAWarmStart:
    """Owners come from the config; a snapshot's records must not keep an old one."""

    def test_idle_identity_takes_the_new_configs_owner(self):
        old = {"identities": {"owners": [{"match": "*:role/app", "owner": "team-old"},
                                         {"match": "*:role/terraform-*", "owner": "platform"}]}}
        first = Detector(old, stats=RunStats())
        # events as the parser makes them under ``old``: the resolver set their owner
        for event in baseline(ROLE, days=1, owner="team-old"):
            first.process(event)
        for event in baseline(DEPLOYER, days=1, owner="platform"):
            first.process(event)
        assert first.inventory_entry(ROLE)["owner"] == "team-old"
        snapshot = first.export_state()
        new = {"identities": {"owners": [{"match": "*:role/app", "owner": "team-new"}]}}
        resumed = Detector(new, stats=RunStats())
        resumed.load_state(snapshot)
        # no new event for either: the owner is this config's, and a rule that is gone
        # leaves no owner behind
        assert resumed.inventory_entry(ROLE)["owner"] == "team-new"
        assert resumed.inventory_entry(DEPLOYER)["owner"] == "no owner on record"
        unconfigured = Detector({}, stats=RunStats())
        unconfigured.load_state(snapshot)
        assert unconfigured.inventory_entry(ROLE)["owner"] == "no owner on record"

    def test_table_value_of_an_earlier_run_takes_this_configs_owner(self):
        # a worker restarted with a new config installs each identity from its table
        old = {"identities": {"owners": [{"match": "*:role/app", "owner": "team-old"}]}}
        first = Detector(old, stats=RunStats())
        for event in baseline(ROLE, days=1, owner="team-old"):
            first.process(event)
        blob = first.identity_state(ROLE)
        new = {"identities": {"owners": [{"match": "*:role/app", "owner": "team-new"}]}}
        restarted = Detector(new, stats=RunStats())
        restarted.set_identity_state(ROLE, blob)
        assert restarted.inventory_entry(ROLE)["owner"] == "team-new"
        assert restarted.inventory_entry(ROLE)["events"] == 48  # the rest as it was


class TestRoutineRefusal:
    """A refused call is never learned as known, so a job denied one permission every half
    hour raised a "first call" alert every day; from the fourth day it is routine."""

    @staticmethod
    def denied(n: int, when: datetime, action: str = "sqs:SendMessage") -> Event:
        return ev(n, when, action, event_id=f"denied-{n}", outcome="failure",
                  error_code="AccessDenied")

    def days_of_alerts(self, detector: Detector, days: int, action: str) -> list[int]:
        start = T0 + timedelta(days=7)  # after the learned week
        raised: list[int] = []
        for day in range(days):
            events = [self.denied(day * 100 + k, start + timedelta(days=day, minutes=30 * k),
                                  action) for k in range(48)]
            # new alerts only: a revision of the day before's may still come
            raised.append(sum(1 for a in run(detector, events) if a.revision == 1))
        return raised

    def test_same_refusal_every_day__alerts_once_then_repeat_then_routine(self):
        """Days 2 and 3 repeat what day 1's alert said; from day 4 it is routine."""
        detector, stats = learned()
        raised = self.days_of_alerts(detector, 6, "sqs:SendMessage")
        assert raised == [1, 0, 0, 0, 0, 0]
        assert stats.suppressed["repeat"] > 0
        assert stats.suppressed["recurring"] > 0

    def test_without_the_repeat_rule_it_alerts_three_days_then_routine(self):
        detector, stats = learned()
        detector.store[ROLE].alerts.told.clear()
        raised = []
        for day in range(6):
            raised += self.days_of_alerts_from(detector, day)
            detector.store[ROLE].alerts.told.clear()  # as if no alert had named it
        assert raised == [1, 1, 1, 0, 0, 0]
        assert stats.suppressed["recurring"] > 0

    def days_of_alerts_from(self, detector: Detector, day: int) -> list[int]:
        start = T0 + timedelta(days=7 + day)
        events = [self.denied(day * 100 + k, start + timedelta(minutes=30 * k),
                              "sqs:SendMessage") for k in range(48)]
        return [sum(1 for a in run(detector, events) if a.revision == 1)]

    def test_a_new_refused_action_on_a_routine_day__still_alerts(self):
        detector, _ = learned()
        self.days_of_alerts(detector, 4, "sqs:SendMessage")
        probe = self.denied(9999, T0 + timedelta(days=11, hours=5), "sqs:DeleteQueue")
        assert len(detector.process(probe)) == 1

    def test_routine_refusal_from_a_new_network__still_alerts(self):
        # a break-it trial: the same refused call, from an anonymising network with another
        # client in a new region, was silenced as routine
        detector, _ = learned()
        self.days_of_alerts(detector, 4, "sqs:SendMessage")
        odd = ev(8888, T0 + timedelta(days=11, hours=2), "sqs:SendMessage",
                 event_id="denied-odd", outcome="failure", error_code="AccessDenied",
                 source_ip="185.220.101.7", network="public",
                 network_prefix="185.220.101.0/24", agent_family="aws-cli",
                 region="ap-east-1")
        assert len(detector.process(odd)) == 1
