"""Alert content and grouping: ids, folding, evidence caps, titles, the native schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.alerts import (
    NO_OWNER,
    AlertGroup,
    iso,
    make_alert_id,
    make_title,
    short_identity,
)
from detector.attack import AttackMap
from detector.event import Event
from detector.scoring import Sensitivity, SensitivityCatalogue, Verdict, Weighted
from models.base import Signal
from tests.detector.alert_schema import alert_errors, assert_valid_alert

T0 = datetime(2024, 3, 4, 10, 0, tzinfo=UTC)
ROLE = "arn:aws:iam::111122223333:role/app-worker"


def make_event(n: int = 0, action: str = "iam:CreateAccessKey", **fields) -> Event:
    when = T0 + timedelta(seconds=n)
    values = {
        "event_id": f"evt-{n:05d}",
        "time": when,
        "ts": when.timestamp(),
        "source": "aws.cloudtrail",
        "identity": ROLE,
        "identity_kind": "workload",
        "kind_reason": "assumed role used from an SDK",
        "tenant": "111122223333",
        "action": action,
        "resource": f"arn:aws:iam::111122223333:user/u{n % 7}",
        "source_ip": f"198.51.100.{n % 9}",
    }
    values.update(fields)
    return Event(**values)


def make_verdict(
    detector: str = "novelty.action",
    score: float = 0.8,
    severity: str = "high",
    sens: Sensitivity | None = None,
    value: str = "iam:CreateAccessKey",
) -> Verdict:
    signal = Signal(
        detector, score, f"observed {value}", "24 actions in 41 days",
        f"first call of {value} in 41 days of history", value=value,
    )
    return Verdict(score, severity, [Weighted(signal, score)], sens, [])


def open_group(event: Event, verdict: Verdict, owner: str = NO_OWNER) -> AlertGroup:
    group = AlertGroup(
        group="novelty",
        alert_id=make_alert_id(event.identity, "novelty", 0, event.event_id),
        opened=event.ts,
        closes=event.ts + 3600,
        last=event.ts,
        score=verdict.score,
        severity=verdict.severity,
        identity_kind=event.identity_kind,
        kind_reason=event.kind_reason,
        owner=owner,
        tenant=event.tenant,
    )
    group.fold(event, verdict, 20, 5)
    return group


def build_alert(revision: int = 1, shadow: bool = False):
    """A realistic alert: CreateAccessKey by a workload role, with its techniques."""
    catalogue = SensitivityCatalogue.load()
    attack = AttackMap(catalogue)
    sens = catalogue.lookup("iam:CreateAccessKey")
    event = make_event()
    group = open_group(event, make_verdict(sens=sens))
    group.categories = [sens.category]
    group.shadow = shadow
    group.fold(make_event(1, action="iam:ListUsers"),
               make_verdict("novelty.region", 0.5, "medium", None, "eu-north-1"), 20, 5)
    group.revision = revision
    ids = attack.ids_for(sens, group.detectors)
    return group.to_alert(event.identity, attack.describe(ids))


class TestAlertId:
    def test_same_inputs_same_id(self):
        assert make_alert_id(ROLE, "novelty", 7, "k") == make_alert_id(ROLE, "novelty", 7, "k")

    @pytest.mark.parametrize(
        "other",
        [(ROLE + "x", "novelty", 7, "k"), (ROLE, "volume", 7, "k"), (ROLE, "novelty", 8, "k"),
         (ROLE, "novelty", 7, "j")],
    )
    def test_any_part_changes_the_id(self, other):
        assert make_alert_id(ROLE, "novelty", 7, "k") != make_alert_id(*other)

    def test_id_is_32_hex(self):
        alert_id = make_alert_id(ROLE, "novelty", 7, "k")
        assert len(alert_id) == 32 and int(alert_id, 16) >= 0


class TestFold:
    def test_same_detector_same_severity_is_not_material(self):
        group = open_group(make_event(), make_verdict())
        assert group.fold(make_event(1), make_verdict(), 20, 5) is False
        assert group.count == 2

    def test_new_detector_is_material(self):
        group = open_group(make_event(), make_verdict())
        verdict = make_verdict("dormancy.identity", 0.6, "medium")
        assert group.fold(make_event(1), verdict, 20, 5) is True
        assert group.detectors == ["novelty.action", "dormancy.identity"]

    def test_higher_severity_is_material_and_kept(self):
        group = open_group(make_event(), make_verdict(severity="medium"))
        assert group.fold(make_event(1), make_verdict(severity="critical"), 20, 5) is True
        assert group.severity == "critical"
        assert group.fold(make_event(2), make_verdict(severity="low"), 20, 5) is False
        assert group.severity == "critical"

    def test_evidence_is_capped(self):
        group = open_group(make_event(), make_verdict())
        for n in range(1, 500):
            group.fold(make_event(n), make_verdict(), 20, 5)
        alert = group.to_alert(ROLE, [])
        assert alert.evidence["event_count"] == 500
        assert len(alert.evidence["event_ids"]) == 20
        assert alert.evidence["event_ids_truncated"] is True
        assert alert.evidence["event_ids"][:2] == ["evt-00000", "evt-00001"]
        assert len(alert.evidence["samples"]["resource"]) == 5
        assert alert.evidence["last_time"] == iso(make_event(499).ts)

    def test_top_signals_are_capped_and_sorted(self):
        group = open_group(make_event(), make_verdict("novelty.region", 0.3, "low", value="a"))
        scores = (0.9, 0.5, 0.7, 0.4, 0.6, 0.35)
        for n, score in enumerate(scores, start=1):
            verdict = make_verdict(f"novelty.d{n}", score, value=f"v{n}")
            group.fold(make_event(n), verdict, 20, 3)
        assert [s["weighted_score"] for s in group.signals] == [0.9, 0.7, 0.6]

    def test_at_most_two_signals_per_detector(self):
        group = open_group(make_event(), make_verdict("volume.rate", 0.5, value="w0"))
        for n, score in enumerate((0.9, 0.8, 0.7), start=1):
            group.fold(make_event(n), make_verdict("volume.rate", score, value=f"w{n}"), 20, 5)
        group.fold(make_event(9), make_verdict("novelty.action", 0.2, value="x"), 20, 5)
        kept = [(s["detector"], s["value"]) for s in group.signals]
        assert kept == [("volume.rate", "w1"), ("volume.rate", "w2"), ("novelty.action", "x")]


    def test_a_stronger_reading_of_the_same_value_replaces_the_weaker(self):
        group = open_group(make_event(), make_verdict("volume.rate", 0.4, value="window-7"))
        group.fold(make_event(1), make_verdict("volume.rate", 0.9, value="window-7"), 20, 5)
        group.fold(make_event(2), make_verdict("volume.rate", 0.6, value="window-7"), 20, 5)
        assert [(s["value"], s["score"]) for s in group.signals] == [("window-7", 0.9)]


    def test_a_late_event_widens_the_window_back(self):
        group = open_group(make_event(60), make_verdict())
        group.fold(make_event(5), make_verdict(), 20, 5)
        alert = group.to_alert(ROLE, [])
        assert alert.first_time == make_event(5).ts
        assert alert.last_time == make_event(60).ts
        assert alert.alert_id == group.alert_id


class TestAlertContent:
    def test_native_alert_is_valid_and_carries_the_facts(self):
        alert = build_alert()
        native = alert.to_native()
        assert_valid_alert(native)
        assert native["identity"] == {
            "key": ROLE,
            "kind": "workload",
            "kind_reason": "assumed role used from an SDK",
            "owner": NO_OWNER,
            "tenant": "111122223333",
        }
        assert [t["id"] for t in native["techniques"]] == ["T1098.001", "T1078.004"]
        assert native["evidence"]["event_ids"] == ["evt-00000", "evt-00001"]
        assert native["window"] == {"first": "2024-03-04T10:00:00.000Z",
                                    "last": "2024-03-04T10:00:01.000Z"}
        assert native["signals"][0]["sentence"] == (
            "first call of iam:CreateAccessKey in 41 days of history"
        )

    def test_title_is_one_readable_line(self):
        alert = build_alert()
        assert alert.title == (
            "workload role/app-worker: first call of iam:CreateAccessKey in 41 days of"
            " history [credential creation] (+1 more detector)"
        )

    def test_title_stays_on_one_line(self):
        group = open_group(make_event(), make_verdict(value="evil\nInjected: line"))
        title = make_title(ROLE, group)
        assert "\n" not in title
        assert "evil Injected: line" in title

    def test_title_is_truncated_to_200(self):
        event = make_event()
        verdict = make_verdict(value="x" * 400)
        group = open_group(event, verdict)
        title = make_title(ROLE, group)
        assert len(title) == 200 and title.endswith("…")

    def test_a_long_reason_is_cut_but_the_categories_and_count_stay(self):
        group = open_group(make_event(), make_verdict(value="x" * 400))
        group.categories, group.detectors = ["credential_creation"], ["a", "b", "c"]
        group.signals[0]["category"] = "credential_creation"
        title = make_title(ROLE, group)
        assert len(title) <= 200
        assert title.startswith("workload role/app-worker: ")
        assert title.endswith("x… [credential creation] (+2 more detectors)")

    def test_a_cut_reason_keeps_its_refusal_note(self):
        # a refused attempt's sentence ends with the refusal; cut off, it would read as done
        for note in (" (attempt refused: AccessDenied)", " (refused)"):
            group = open_group(make_event(), make_verdict(value="y" * 400))
            group.signals[0]["sentence"] = "access key created for IAM user svc by " \
                + "z" * 300 + note
            title = make_title(ROLE, group)
            assert len(title) <= 200
            assert title.endswith("z…" + note)

    def test_schema_rejects_a_broken_alert(self):
        native = build_alert().to_native()
        native["severity"] = "urgent"
        del native["identity"]["owner"]
        errors = alert_errors(native)
        assert any(e.startswith("severity") for e in errors)
        assert any("owner" in e for e in errors)

    def test_group_state_round_trips(self):
        group = open_group(make_event(), make_verdict())
        again = AlertGroup.from_dict(group.to_dict())
        assert again == group


class TestHelpers:
    def test_short_identity(self):
        assert short_identity(ROLE) == "role/app-worker"
        assert short_identity("system:serviceaccount:ns:sa") == "system:serviceaccount:ns:sa"

    def test_iso_has_milliseconds_and_z(self):
        assert iso(0.25) == "1970-01-01T00:00:00.250Z"


class TestEscalation:
    def test_accumulated_evidence_earns_the_highest_ceiling(self):
        from detector.scoring import ScoringSettings

        settings = ScoringSettings()
        # A plain burst scored 1.0 but was held to medium ...
        group = open_group(make_event(), make_verdict(score=1.0, severity="medium"))
        group.cap = "medium"
        assert group.escalate(settings.severity_for) is False
        # ... then a weak privilege change (low, ceiling high) joins the same window.
        verdict = make_verdict("novelty.action", 0.45, "low", value="iam:PutRolePolicy")
        verdict.cap = "high"
        group.fold(make_event(1, action="iam:PutRolePolicy"), verdict, 20, 5)
        assert group.escalate(settings.severity_for) is True
        assert group.severity == "high"

    def test_escalation_never_passes_the_ceiling(self):
        from detector.scoring import ScoringSettings

        group = open_group(make_event(), make_verdict(score=1.0, severity="low"))
        group.cap = "low"
        assert group.escalate(ScoringSettings().severity_for) is False
        assert group.severity == "low"


class TestArbitraryInput:
    """Whatever text the models and the logs put in, the alert stays valid and one-line."""

    @settings(max_examples=60, deadline=None)
    @given(
        value=st.text(max_size=300),
        sentence=st.text(max_size=300),
        observed=st.text(max_size=50),
        resource=st.one_of(st.none(), st.text(max_size=100)),
        score=st.floats(min_value=0.0, max_value=1.0),
    )
    def test_native_alert_is_always_valid(self, value, sentence, observed, resource, score):
        signal = Signal("novelty.resource", score, observed, "base", sentence, value=value)
        verdict = Verdict(score, "medium", [Weighted(signal, score)], None, [])
        group = open_group(make_event(resource=resource), verdict)
        group.revision = 1
        native = group.to_alert(ROLE, []).to_native()
        assert_valid_alert(native)
        assert "\n" not in native["title"] and len(native["title"]) <= 200


class TestLeadAndNotes:
    """The leading detector, the title's categories, refused calls and stale notes."""

    def test_top_detector_is_the_signal_the_title_leads_with(self):
        group = open_group(make_event(0), make_verdict(score=0.5, value="s3:ListBuckets"))
        for n in (1, 2):
            group.fold(make_event(n), make_verdict(score=0.5, value=f"s3:Get{n}"), 20, 5)
        technique = Signal("technique.aws.x", 1.0, "o", "b", "admin policy put on role r",
                           value="r")
        group.fold(make_event(3), Verdict(1.0, "high", [Weighted(technique, 1.0)], None, []),
                   20, 5)
        alert = group.to_alert(ROLE, [])
        assert alert.detectors[0] == "novelty.action"  # the most frequent
        assert alert.top_detector == "technique.aws.x"
        assert alert.title == "workload role/app-worker: admin policy put on role r " \
                              "(+1 more detector)"

    def test_a_refused_call_is_not_paired_with_another_events_category(self):
        denied = make_event(0, "cloudtrail:DeleteTrail", outcome="failure",
                            error_code="AccessDenied")
        group = open_group(denied, make_verdict(score=0.9, value="cloudtrail:DeleteTrail"))
        tampering = Sensitivity("logging_tampering", "critical", 1.0, policy=True)
        rule = Signal("technique.aws.trail_stopped", 1.0, "o", "b", "trail t stopped",
                      value="t")
        group.fold(make_event(1, "cloudtrail:StopLogging"),
                   Verdict(1.0, "critical", [Weighted(rule, 1.0)], tampering, []), 20, 5)
        group.revision = 1
        alert = group.to_alert(ROLE, [])
        # the successful tampering leads; the refused call keeps its own mark
        assert [s["detector"] for s in alert.signals] == ["technique.aws.trail_stopped",
                                                          "novelty.action"]
        assert alert.signals[1]["refused"] is True and "refused" not in alert.signals[0]
        assert alert.title == ("workload role/app-worker: trail t stopped [logging tampering] "
                               "(+1 more detector)")
        assert_valid_alert(alert.to_native())

    def test_the_sensitive_action_leads_over_a_stronger_when(self):
        # a managed identity's role assignment read "first activity at 14:00 UTC": the
        # schedule scored higher than the new action on the same event
        grant = Sensitivity("privilege_change", "high", 1.0)
        when = Signal("schedule.off_hours", 0.9, "14:00", "b",
                      "first activity at 14:00 UTC in 29 days of history", value="14")
        what = Signal("novelty.action", 0.73, "o", "b",
                      "first call of azure:microsoft.authorization/roleassignments/write",
                      value="azure:microsoft.authorization/roleassignments/write")
        group = open_group(make_event(0), Verdict(0.9, "high", [Weighted(when, 0.9),
                                                                Weighted(what, 0.73)],
                                                  grant, []))
        title = group.to_alert(ROLE, []).title
        assert title.startswith("workload role/app-worker: first call of "
                                "azure:microsoft.authorization/roleassignments/write")

    def test_the_leading_events_own_category_comes_first(self):
        creds = Sensitivity("credential_creation", "high", 1.0)
        discovery = Sensitivity("discovery", "low", 0.2)
        group = open_group(make_event(0, "iam:ListUsers"),
                           make_verdict(score=0.4, sens=discovery, value="iam:ListUsers"))
        group.fold(make_event(1), make_verdict(score=0.9, sens=creds), 20, 5)
        title = group.to_alert(ROLE, []).title
        assert title.endswith(" [credential creation; other events: discovery]")

    def test_a_window_signal_read_on_a_refused_call_is_not_refused(self):
        # a window's detectors judge many requests; the one that closed it being refused
        # does not make the window an attempt
        denied = make_event(0, outcome="failure", error_code="AccessDenied")
        for detector in ("multivariate.hst", "volume.rate"):
            group = open_group(denied, make_verdict(detector, 0.9, value="window-1"))
            assert "refused" not in group.signals[0]
            assert "(refused)" not in group.to_alert(ROLE, []).title

    def test_a_successful_repeat_clears_refused(self):
        denied = make_event(0, outcome="failure", error_code="AccessDenied")
        group = open_group(denied, make_verdict(score=0.9))
        assert group.signals[0]["refused"] is True
        group.fold(make_event(1), make_verdict(score=0.9), 20, 5)
        assert "refused" not in group.signals[0]
        assert "(refused)" not in group.to_alert(ROLE, []).title

    def test_a_severity_note_leaves_once_the_alert_passes_its_level(self):
        held = "where only the hour was unusual, severity held at low"
        low = make_verdict(score=0.3, severity="low")
        low.notes.append(held)
        group = open_group(make_event(0), low)
        group.context["notes"] = [held, "technique detection: the request itself"]
        assert group.to_alert(ROLE, []).context["notes"][0] == held
        group.fold(make_event(1), make_verdict(score=0.9, severity="high"), 20, 5)
        notes = group.to_alert(ROLE, []).context["notes"]
        assert notes == ["technique detection: the request itself"]
        assert group.context["notes"][0] == held  # the group keeps it; the alert does not

    def test_note_levels_survive_the_state_and_a_bad_level_is_refused(self):
        low = make_verdict(score=0.3, severity="low")
        low.notes.append("severity lowered one level: a recent deploy change explains it")
        group = open_group(make_event(0), low)
        again = AlertGroup.from_dict(group.to_dict())
        assert again.note_levels == {
            "severity lowered one level: a recent deploy change explains it": "low"}
        data = group.to_dict()
        data["note_levels"] = {"x": "severe"}
        with pytest.raises(TypeError, match="note level"):
            AlertGroup.from_dict(data)


def test_a_refused_deletetrail_then_stoplogging_through_the_engine():
    """The worker finding: a refused DeleteTrail led the alert, and the logging tampering
    category of a later StopLogging was shown as if it were the DeleteTrail's."""
    from tests.detector.test_engine import attack_event, learned, run

    detector, _ = learned()
    trail = "arn:aws:cloudtrail:us-east-1:111122223333:trail/org"
    alerts = run(detector, [
        attack_event(0, "cloudtrail:DeleteTrail", outcome="failure",
                     error_code="AccessDenied", resource=trail),
        attack_event(1, "cloudtrail:StopLogging", resource=trail),
    ])
    assert [a.revision for a in alerts] == [1, 2]
    first, last = alerts
    assert first.title.startswith("workload role/app: first call of cloudtrail:DeleteTrail in ")
    assert "(refused)" in first.title and "[" not in first.title
    assert last.context["sensitive_categories"] == ["logging_tampering"]
    # the tampering that was done leads the revision; the refused attempt stays marked
    assert last.title.split(" (+")[0] == ("workload role/app: first call of "
                                          "cloudtrail:StopLogging in 7 days of history "
                                          "[logging tampering]")
    assert "refused" not in last.signals[0]
    assert any(s.get("refused") and "category" not in s for s in last.signals)
