"""The engine's side of technique findings: a finding alerts in learning or not, at its
own severity, with its ATT&CK ids; suppression and feedback silence it; it never changes
what the models learn."""

from __future__ import annotations

from datetime import timedelta

from detector.engine import TECHNIQUE_NOTE, Detector
from detector.ocsf import to_ocsf
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Finding, Tally
from tests.detector.test_engine import ATTACK, ROLE, T0, attack_event, ev, learned, run

SHARED = Finding("aws.ebs_snapshot_shared", "high", ("T1537",),
                 "EBS snapshot snap-1 shared with account 210987654321, outside this account",
                 "210987654321")
SELECTORS = Finding("aws.trail_selectors_reduced", "critical", ("T1562.008",),
                    "trail t stops recording management events", "t")


def with_finding(event, *found: Finding):
    event.attributes[ATTRIBUTE] = list(found)
    return event


def fresh_event(n: int = 0, action: str = "ec2:ModifySnapshotAttribute", *found: Finding,
                **fields):
    return with_finding(ev(n, T0 + timedelta(minutes=n), action, **fields), *(found or (SHARED,)))


def test_finding_alerts_while_the_identity_is_learning() -> None:
    stats = RunStats()
    detector = Detector({}, stats=stats)
    alerts = run(detector, [fresh_event()])
    assert len(alerts) == 1
    native = alerts[0].to_native()
    assert native["severity"] == "high"
    assert native["detectors"] == ["technique.aws.ebs_snapshot_shared"]
    assert native["context"]["in_learning"] is True
    assert TECHNIQUE_NOTE in native["context"]["notes"]
    signal = native["signals"][0]
    assert signal["baseline"].startswith("no baseline needed: the request itself")
    assert signal["value"] == "210987654321"
    assert [t["id"] for t in native["techniques"]] == ["T1537"]
    assert [a["technique"]["uid"] for a in to_ocsf(alerts[0])["finding_info"]["attacks"]] == [
        "T1537"]
    assert stats.findings["aws.ebs_snapshot_shared"] == 1


def test_finding_alerts_on_a_learned_identity_with_its_behaviour() -> None:
    detector, _ = learned()
    alerts = detector.process(with_finding(attack_event(0, "ec2:ModifySnapshotAttribute"),
                                           SHARED))
    assert len(alerts) == 1
    assert alerts[0].severity == "high"
    assert "technique.aws.ebs_snapshot_shared" in alerts[0].detectors
    # the identity's baseline also found the new action odd: both lines of evidence
    assert any(d.startswith("novelty.") for d in alerts[0].detectors)


def test_same_event_without_finding_on_a_fresh_identity_is_quiet() -> None:
    detector = Detector({}, stats=RunStats())
    assert run(detector, [ev(0, T0, "ec2:ModifySnapshotAttribute")]) == []


def test_policy_action_with_a_finding_is_one_alert() -> None:
    detector = Detector({}, stats=RunStats())
    alerts = run(detector, [fresh_event(0, "cloudtrail:PutEventSelectors", SELECTORS)])
    assert len(alerts) == 1
    native = alerts[0].to_native()
    assert native["severity"] == "critical"
    assert native["detectors"][:2] == ["policy.logging_tampering",
                                       "technique.aws.trail_selectors_reduced"]
    assert "T1562.008" in [t["id"] for t in native["techniques"]]


def test_repeated_findings_group_into_one_alert() -> None:
    detector = Detector({"scoring": {"group_window": 3600}}, stats=RunStats())
    alerts = run(detector, [fresh_event(n, "ec2:ModifySnapshotAttribute", SHARED,
                                        event_id=f"e{n}") for n in range(5)])
    assert len(alerts) == 1  # the same evidence again is no material change
    assert detector.store[ROLE].alerts.groups["technique"].count == 5


def test_suppression_rule_silences_one_value_only() -> None:
    rule = {"identity": "*role/app", "detector": "technique.aws.ebs_snapshot_shared",
            "value": "210987654321", "reason": "backup account"}
    stats = RunStats()
    detector = Detector({"suppressions": [rule]}, stats=stats)
    assert run(detector, [fresh_event(0)]) == []
    assert stats.suppressed["suppression_rule"] == 1
    other = Finding("aws.ebs_snapshot_shared", "high", ("T1537",), "shared with 999", "999")
    assert len(run(detector, [fresh_event(1, "ec2:ModifySnapshotAttribute", other)])) == 1


def test_feedback_marks_a_finding_expected() -> None:
    config = {"scoring": {"group_window": 60, "cooldown": 0}}
    detector = Detector(config, stats=RunStats())
    first = run(detector, [fresh_event(0)])
    assert len(first) == 1
    detector.finish()
    pair = first[0].evidence["signal_values"][0]
    assert detector.mark_expected(ROLE, pair["detector"], pair["value"])
    assert run(detector, [fresh_event(30, event_id="again")]) == []


def test_partial_event_with_a_finding_alerts_and_says_so() -> None:
    detector = Detector({}, stats=RunStats())
    alerts = run(detector, [fresh_event(0, partial=True)])
    assert len(alerts) == 1
    notes = alerts[0].to_native()["context"]["notes"]
    assert any("partial" in note for note in notes)


def test_findings_never_change_what_the_models_learn() -> None:
    def state(with_findings: bool) -> bytes:
        detector = Detector({}, stats=RunStats())
        for n in range(40):
            event = ev(n, T0 + timedelta(minutes=n), "ec2:ModifySnapshotAttribute")
            run(detector, [with_finding(event, SHARED) if with_findings else event])
        return detector.store[ROLE].profile.to_bytes()

    assert state(True) == state(False)


def test_malformed_findings_are_ignored() -> None:
    detector = Detector({}, stats=RunStats())
    event = ev(0, T0, "ec2:ModifySnapshotAttribute")
    event.attributes[ATTRIBUTE] = [{"rule": "x", "severity": "nope", "sentence": "s"}, 5]
    assert run(detector, [event]) == []


def secret_reads(detector: Detector, count: int, *, distinct: bool = True, start: int = 0,
                 step: float = 10.0) -> list:
    alerts = []
    for n in range(start, start + count):
        event = ev(n, T0 + timedelta(seconds=step * n), "secretsmanager:GetSecretValue",
                   event_id=f"r{n}")
        name = f"secret-{n}" if distinct else "secret-0"
        event.attributes[ATTRIBUTE] = [Tally("aws.secrets_burst", "medium", ("T1555.006",),
                                             "secrets", (name,))]
        alerts += run(detector, [event])
    return alerts


def test_burst_of_distinct_secrets_alerts_once_reached() -> None:
    detector = Detector({}, stats=RunStats())
    assert secret_reads(detector, 19) == []
    alerts = secret_reads(detector, 1, start=19)
    assert len(alerts) == 1
    native = alerts[0].to_native()
    assert native["severity"] == "medium"
    assert native["detectors"] == ["technique.aws.secrets_burst"]
    assert native["signals"][0]["sentence"] == "20 distinct secrets within 10 minutes"
    assert [t["id"] for t in native["techniques"]] == ["T1555.006"]


def test_rereading_one_secret_is_no_burst() -> None:
    assert secret_reads(Detector({}, stats=RunStats()), 200, distinct=False) == []


def test_reads_spread_beyond_the_window_are_no_burst() -> None:
    # one distinct secret a minute: never 20 within 10 minutes
    assert secret_reads(Detector({}, stats=RunStats()), 60, step=60.0) == []


def test_burst_thresholds_come_from_the_scoring_section() -> None:
    config = {"scoring": {"technique_burst_distinct": 5, "technique_burst_window": 60}}
    detector = Detector(config, stats=RunStats())
    assert len(secret_reads(detector, 5)) == 1


def test_findings_cross_the_repartition_topic() -> None:
    """The worker sends events between stages as orjson rows: findings and tallies arrive
    as dicts and still alert the same way."""
    from streams.codecs import EventReader, decode_repartition, encode_events

    tally = Tally("aws.user_data_burst", "high", ("T1552.001",), "reads", ("i-1",), True)
    event = fresh_event(0, "ec2:ModifySnapshotAttribute", SHARED, tally)
    _, body = decode_repartition(encode_events(["raw[0]"], {ROLE: [(0, 1, event)]}))
    reader = EventReader(body["fields"])
    decoded = reader.event(ROLE, body["batches"][ROLE][0][2])
    assert all(isinstance(item, dict) for item in decoded.attributes[ATTRIBUTE])
    direct = run(Detector({}, stats=RunStats()), [fresh_event(0, "ec2:ModifySnapshotAttribute",
                                                              SHARED, tally)])
    wired = run(Detector({}, stats=RunStats()), [decoded])
    assert [a.to_native() for a in wired] == [a.to_native() for a in direct]
    assert wired[0].detectors == ("technique.aws.ebs_snapshot_shared",)


NIGHTLY = Finding("azure.recovery_deleted", "low", ("T1490",),
                  "disk snapshot nightly-0 deleted", "nightly-0")


def test_low_finding_every_night_at_one_hour__routine_after_three_nights() -> None:
    # a runbook deleting last week's snapshots at 02:00 raised a low alert every night
    stats = RunStats()
    detector = Detector({}, stats=stats)
    raised = []
    for night in range(7):
        event = with_finding(ev(night, T0 + timedelta(days=night, hours=2, minutes=night),
                                "azure:microsoft.compute/snapshots/delete"), NIGHTLY)
        raised.append(len(run(detector, [event])))
    assert raised == [1, 1, 1, 0, 0, 0, 0]
    assert stats.suppressed["recurring"] == 4


def test_low_finding_at_another_hour_or_a_high_one__still_alerts() -> None:
    detector = Detector({}, stats=RunStats())
    for night in range(4):
        event = with_finding(ev(night, T0 + timedelta(days=night, hours=2),
                                "azure:microsoft.compute/snapshots/delete"), NIGHTLY)
        run(detector, [event])
    noon = with_finding(ev(10, T0 + timedelta(days=4, hours=12),
                           "azure:microsoft.compute/snapshots/delete"), NIGHTLY)
    assert len(run(detector, [noon])) == 1  # not its hour: not the routine
    high = Detector({}, stats=RunStats())
    alerts = [len(run(high, [fresh_event(night * 1440, "ec2:ModifySnapshotAttribute")]))
              for night in range(5)]
    assert alerts == [1, 1, 1, 1, 1]  # a high finding is never routine


def test_routine_finding_on_another_target__still_alerts() -> None:
    # a break-it trial: a nightly deletion-protection change on scratch-db silenced the
    # same rule on prod-customers-db; dated names stay one target (digits aside)
    detector = Detector({}, stats=RunStats())
    for night in range(4):
        dated = Finding("azure.recovery_deleted", "low", ("T1490",),
                        f"snapshot nightly-2024030{night} deleted", f"nightly-2024030{night}")
        run(detector, [with_finding(ev(night, T0 + timedelta(days=night, hours=2),
                                       "azure:microsoft.compute/snapshots/delete"), dated)])
    other = Finding("azure.recovery_deleted", "low", ("T1490",), "snapshot prod-db deleted",
                    "prod-db")
    later = with_finding(ev(9, T0 + timedelta(days=4, hours=2, minutes=20),
                            "azure:microsoft.compute/snapshots/delete"), other)
    assert len(run(detector, [later])) == 1
    assert detector.stats.suppressed["recurring"] == 1  # the fourth dated night only


EXPORT = Finding("azure.disk_exported", "medium", ("T1537",),
                 "disk snapshot dr-0 exported by a SAS", "dr-0")


def nightly(detector: Detector, finding: Finding, nights: int, **fields) -> list[int]:
    """The finding each night at 03:00 on a call the learned identity makes all the time;
    alerts raised per night."""
    raised = []
    for night in range(nights):
        event = with_finding(ev(night, ATTACK + timedelta(days=night, minutes=night),
                                "s3:GetObject", event_id=f"n{night}", **fields), finding)
        raised.append(len(run(detector, [event])))
    return raised


def test_a_quiet_medium_finding_every_night__routine_after_three_nights() -> None:
    # a disaster-recovery job exporting its snapshots every night raised 30 medium alerts
    detector, stats = learned()
    assert nightly(detector, EXPORT, 6) == [1, 1, 1, 0, 0, 0]
    assert stats.suppressed["recurring"] == 3


def test_a_medium_finding_from_a_new_origin_each_night__never_routine() -> None:
    """An identity kept small enough to stay in learning (the models read nothing yet)
    repeating its finding each night from another Tor exit and client: the origin is part
    of a medium routine's key, so it never becomes one. From one origin it does."""
    stats = RunStats()
    detector = Detector({}, stats=stats)
    raised = []
    for night in range(6):
        event = with_finding(ev(night, T0 + timedelta(days=night, hours=2), "s3:GetObject",
                                event_id=f"t{night}", network="public",
                                source_ip=f"185.220.{night}.7",
                                network_prefix=f"185.220.{night}.0/24",
                                agent_family=("curl", "boto3", "aws-cli")[night % 3]),
                             EXPORT)
        raised.append(len(run(detector, [event])))
    assert raised == [1, 1, 1, 1, 1, 1] and stats.suppressed["recurring"] == 0
    same = RunStats()
    assert nightly(Detector({}, stats=same), EXPORT, 5) == [1, 1, 1, 0, 0]


def test_routine_is_per_target_dates_aside() -> None:
    """A dated target is one target night after night; vm01 and vm07 are two disks."""
    detector, stats = learned()
    for night in range(4):
        dated = Finding("azure.disk_exported", "medium", ("T1537",), "disk exported",
                        f"snap-vm01-2024030{night + 1}")
        run(detector, [with_finding(ev(night, ATTACK + timedelta(days=night, minutes=night),
                                       "s3:GetObject", event_id=f"d{night}"), dated)])
    assert stats.suppressed["recurring"] == 1  # the fourth dated night
    other = Finding("azure.disk_exported", "medium", ("T1537",), "disk exported",
                    "snap-vm07-20240305")
    later = with_finding(ev(9, ATTACK + timedelta(days=4, minutes=9), "s3:GetObject",
                            event_id="d9"), other)
    assert len(run(detector, [later])) == 1


def test_a_medium_finding_with_other_news__not_routine() -> None:
    """The same export every night, but the identity's behaviour is not its usual one
    (a learned identity calling from a network it never used): the fourth night, which
    would be routine if nothing else were new, still alerts."""
    detector, _ = learned()
    elsewhere = {"source_ip": "203.0.113.9", "network": "public",
                 "network_prefix": "203.0.113.0/24"}
    raised = []
    for night in range(5):
        event = with_finding(ev(night, ATTACK + timedelta(days=night),
                                "azure:microsoft.compute/snapshots/beginGetAccess/action",
                                **elsewhere), EXPORT)
        raised.append(len(run(detector, [event])))
    assert raised[:4] == [1, 1, 1, 1]


def test_a_weekly_finding__routine_from_its_third_week() -> None:
    # a Sunday patch runbook's run command, one medium alert a week
    weekly = Finding("azure.vm_run_command", "medium", ("T1651",), "run command on vm-1",
                     "vm-1")
    detector, stats = learned()
    raised = [len(run(detector, [with_finding(
        ev(week, ATTACK + timedelta(days=7 * week, minutes=week), "s3:GetObject",
           event_id=f"w{week}"), weekly)]))
        for week in range(5)]
    assert raised == [1, 1, 0, 0, 0]
    assert stats.suppressed["recurring"] == 3
