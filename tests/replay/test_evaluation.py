"""Labels evaluation: matching, time to detect, outside-scenario rate, threshold sweep."""

from __future__ import annotations

import orjson
import pytest

from detector.errors import ConfigError
from detector.evaluation import (
    active_days,
    Activity,
    AlertLog,
    AlertRecord,
    evaluate,
    identity_days,
    load_labels,
    parse_labels,
    threshold_sweep,
)

DAY = 86400.0
T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z
ROLE_A = "arn:aws:iam::111122223333:role/a"
ROLE_B = "arn:aws:iam::111122223333:role/b"
SA_C = "k8s:prod:system:serviceaccount:ns:c"


def labels_doc() -> dict:
    return {
        "version": 1,
        "scenarios": [
            {
                "id": "s1",
                "title": "key leak",
                "identities": [ROLE_A],
                "start": "2024-01-10T10:00:00Z",  # T0 + 9 days + 10 h
                "end": "2024-01-10T12:00:00Z",
            },
            {
                "id": "s2",
                "title": "sa token abuse",
                "identities": [SA_C],
                "start": "2024-01-12T00:00:00Z",  # T0 + 11 days
                "end": "2024-01-12T01:00:00Z",
                "event_ids": ["ev-77"],
                "techniques": ["T1528"],
            },
            {
                "id": "s3",
                "title": "never alerted",
                "identities": [ROLE_B],
                "start": "2024-01-20T00:00:00Z",
                "end": "2024-01-20T01:00:00Z",
            },
        ],
    }


def native(alert_id, identity, start, end, *, score=0.8, severity="high", revision=1,
           event_ids=(), detector="novelty.action"):
    return {
        "alert_id": alert_id,
        "revision": revision,
        "identity": {"key": identity, "kind": "workload"},
        "severity": severity,
        "score": score,
        "window": {"first": start, "last": end},
        "detectors": [detector],
        "signals": [{"detector": detector, "score": score}],
        "evidence": {"event_ids": list(event_ids)},
    }


S1_START = T0 + 9 * DAY + 10 * 3600
S2_START = T0 + 11 * DAY


def build_log() -> AlertLog:
    log = AlertLog()
    # a1 matches s1: raised 6 minutes into the scenario, then updated with a wider window.
    log.add(native("a1", ROLE_A, "2024-01-10T10:05:00Z", "2024-01-10T10:06:00Z"),
            raised_ts=S1_START + 360)
    log.add(native("a1", ROLE_A, "2024-01-10T10:05:00Z", "2024-01-10T10:40:00Z",
                   score=0.95, severity="critical", revision=2), raised_ts=S1_START + 2400)
    # a2 matches s2 through its evidence only: the identity differs and the window is late.
    log.add(native("a2", ROLE_B, "2024-01-12T05:00:00Z", "2024-01-12T05:10:00Z",
                   score=0.5, event_ids=["ev-77"]), raised_ts=S2_START + 5 * 3600 + 600)
    # a3 on ROLE_A but a day before s1: outside every scenario.
    log.add(native("a3", ROLE_A, "2024-01-09T10:00:00Z", "2024-01-09T10:01:00Z",
                   score=0.3, severity="low"), raised_ts=T0 + 8 * DAY + 10 * 3600 + 60)
    # a4 on SA_C touching the first second of s2 via its window end: inside s2.
    log.add(native("a4", SA_C, "2024-01-11T23:50:00Z", "2024-01-12T00:00:00Z",
                   score=0.6), raised_ts=S2_START)
    return log


class TestLabels:
    def test_parse_labels__times_and_optional_fields(self):
        s1, s2, _ = parse_labels(labels_doc())
        assert s1.start == S1_START and s1.end == S1_START + 7200
        assert s1.event_ids == frozenset() and s1.techniques == ()
        assert s2.event_ids == frozenset({"ev-77"}) and s2.techniques == ("T1528",)

    def test_load_labels__reads_file(self, tmp_path):
        path = tmp_path / "labels.json"
        path.write_bytes(orjson.dumps(labels_doc()))
        assert [s.id for s in load_labels(path)] == ["s1", "s2", "s3"]

    def test_parse_labels__wrong_version(self):
        doc = labels_doc() | {"version": 2}
        with pytest.raises(ConfigError, match="labels format version 2 is not supported"):
            parse_labels(doc)

    def test_parse_labels__missing_key_named(self):
        doc = labels_doc()
        del doc["scenarios"][1]["start"]
        with pytest.raises(ConfigError, match=r"scenarios\[1\]: missing key\(s\) \['start'\]"):
            parse_labels(doc)

    def test_parse_labels__naive_time_refused(self):
        doc = labels_doc()
        doc["scenarios"][0]["end"] = "2024-01-10T12:00:00"
        with pytest.raises(ConfigError, match="has no UTC offset"):
            parse_labels(doc)

    def test_load_labels__not_json(self, tmp_path):
        path = tmp_path / "labels.json"
        path.write_text("{nope")
        with pytest.raises(ConfigError, match="is not valid JSON"):
            load_labels(path)


class TestAlertLog:
    def test_revisions_merge_into_one_record(self):
        log = build_log()
        assert len(log) == 4 and log.lines == 5
        a1 = log.by_id["a1"]
        assert a1.revision == 2 and a1.revisions == 2
        assert a1.score == 0.95 and a1.severity == "critical"
        assert a1.raised_ts == S1_START + 360
        assert a1.end == S1_START + 2400
        assert a1.identity == ROLE_A and a1.detector == "novelty.action"

    def test_from_native__without_raised_ts_uses_window_end(self):
        rec = AlertRecord.from_native(
            native("x", ROLE_A, "2024-01-01T00:00:00Z", "2024-01-01T01:00:00Z")
        )
        assert rec.raised_ts == T0 + 3600 and rec.start == T0


class TestEvaluate:
    def test_figures(self):
        scenarios = parse_labels(labels_doc())
        ev = evaluate(build_log().records(), scenarios, identity_days=500.0)
        by_id = {r.scenario.id: r for r in ev.scenarios}
        assert by_id["s1"].detected and by_id["s1"].time_to_detect == 360.0
        assert by_id["s1"].first_alert_id == "a1" and by_id["s1"].alerts == 1
        # s2: a4 raised at the scenario start (ttd 0) beats a2 (5 h 10 min).
        assert by_id["s2"].detected and by_id["s2"].time_to_detect == 0.0
        assert by_id["s2"].alerts == 2 and by_id["s2"].first_alert_id == "a4"
        assert not by_id["s3"].detected and by_id["s3"].time_to_detect is None
        assert ev.alerts_total == 4 and ev.alerts_outside == 1
        assert ev.outside_per_1000 == 2.0  # 1 alert over 500 identity-days
        assert ev.median_ttd == 180.0  # median of 360 and 0
        assert ev.bar() == {
            "all_detected": False, "outside_rate_ok": True, "median_ttd_ok": True, "met": False,
        }

    def test_bar_met_when_every_scenario_detected(self):
        scenarios = parse_labels(labels_doc())[:2]
        ev = evaluate(build_log().records(), scenarios, identity_days=400.0)
        assert ev.outside_per_1000 == 2.5
        assert ev.bar()["all_detected"] and not ev.bar()["outside_rate_ok"]
        ev = evaluate(build_log().records(), scenarios, identity_days=1000.0)
        assert ev.bar()["met"] is True
        assert ev.to_dict()["quality_bar"]["met"] is True
        assert ev.to_dict()["outside_per_1000_identity_days"] == 1.0

    def test_grouped_alert_opened_before_the_scenario_detects_from_the_covering_revision(self):
        log = AlertLog()
        # opened 2 h before s1 on the same identity, then updated 25 minutes into s1
        log.add(native("g", ROLE_A, "2024-01-10T08:00:00Z", "2024-01-10T08:05:00Z"),
                raised_ts=S1_START - 2 * 3600 + 300)
        log.add(native("g", ROLE_A, "2024-01-10T08:00:00Z", "2024-01-10T10:25:00Z",
                       revision=2), raised_ts=S1_START + 1500)
        ev = evaluate(log.records(), parse_labels(labels_doc())[:1], identity_days=10.0)
        (result,) = ev.scenarios
        assert result.detected and result.time_to_detect == 1500.0
        assert log.by_id["g"].raised_ts == S1_START - 2 * 3600 + 300  # first raise kept

    def test_threshold_sweep(self):
        scenarios = parse_labels(labels_doc())
        rows = threshold_sweep(build_log().records(), scenarios, span_days=2.0,
                               thresholds=(0.0, 0.55, 0.7, 0.99))
        assert [r["alerts"] for r in rows] == [4, 2, 1, 0]
        assert [r["alerts_per_day"] for r in rows] == [2.0, 1.0, 0.5, 0.0]
        assert [r["recall"] for r in rows] == [2 / 3, 2 / 3, 1 / 3, 0.0]
        assert [r["precision"] for r in rows] == [0.75, 1.0, 1.0, None]

    def test_threshold_sweep__without_labels_has_no_recall(self):
        rows = threshold_sweep(build_log().records(), None, span_days=4.0, thresholds=(0.5,))
        assert rows == [{"threshold": 0.5, "alerts": 3, "alerts_per_day": 0.75}]


class TestActivity:
    def test_identity_days__at_least_one_each(self):
        assert identity_days([(0.0, 3600.0), (0.0, 3 * DAY), (10.0, 10.0)]) == 5.0
        assert identity_days([(0.0, 1.5 * DAY)]) == 1.5

    def test_observe__spans_and_hourly(self):
        act = Activity()
        for ts in (T0 + 7200, T0, T0 + 7300, T0 + 2 * DAY):
            act.observe(ROLE_A, ts)
        act.observe(ROLE_B, T0 + 60)
        assert act.spans[ROLE_A] == [T0, T0 + 2 * DAY]
        hour0 = int(T0 // 3600)
        assert act.hourly[ROLE_A] == {hour0: 1, hour0 + 2: 2, hour0 + 48: 1}
        assert act.identity_days() == 3.0
        assert act.time_range() == (T0, T0 + 2 * DAY)
        assert act.time_range().silence is None

    def test_identity_days__one_far_record_adds_an_hour_not_years(self):
        act = Activity()
        for day in range(30):
            act.observe(ROLE_A, T0 + day * DAY)
        act.observe(ROLE_B, T0)
        before = act.identity_days()
        far = T0 + 73 * 365 * DAY  # a record dated some 73 years on
        act.observe(ROLE_A, far)
        assert before == 29.0 + 1.0
        # the silence leaves out its whole hours: the 2 partial hours at its ends remain
        assert act.identity_days() == pytest.approx(before + 1 / 24)
        silence = act.time_range().silence
        assert (silence.events_before, silence.events_after) == (31, 1)
        assert silence.start == T0 + 29 * DAY + 3600 and silence.end == far

    def test_active_days__only_silences_over_30_days_are_left_out(self):
        hours = [0, 24 * 30, 24 * 61 + 5]  # 30 days of silence, then 31 days and 5 hours
        first, last = 0.0, (24 * 61 + 5) * 3600.0 + 10
        assert active_days(first, last, hours) == pytest.approx(
            (last - (24 * 31 + 4) * 3600.0) / DAY)
        assert active_days(0.0, 10.0, [0]) == 1.0


def test_from_native__no_window_uses_raised_time_or_refuses():
    bare = {"alert_id": "b", "identity": {"key": ROLE_A}, "score": 0.5, "severity": "low"}
    rec = AlertRecord.from_native(bare, raised_ts=T0 + 10)
    assert (rec.start, rec.end, rec.raised_ts) == (T0 + 10, T0 + 10, T0 + 10)
    with pytest.raises(ValueError, match="alert 'b' has no time window"):
        AlertRecord.from_native(bare)


def test_an_alerts_detector_is_its_leading_signal_at_the_latest_revision():
    """The most frequent detector (``detectors[0]``) is not what the alert is about: the
    record, and so the summary's and report's per-detector counts, take the strongest
    signal (what the title leads with), as of the latest revision."""
    log = AlertLog()
    first = native("a1", ROLE_A, "2024-01-10T10:05:00Z", "2024-01-10T10:06:00Z")
    later = native("a1", ROLE_A, "2024-01-10T10:05:00Z", "2024-01-10T10:09:00Z",
                   revision=2, severity="critical")
    later["detectors"] = ["novelty.action", "technique.aws.detection_disabled"]
    later["signals"] = [{"detector": "technique.aws.detection_disabled", "score": 1.0},
                        {"detector": "novelty.action", "score": 0.47}]
    log.add(first, raised_ts=S1_START + 360)
    log.add(later, raised_ts=S1_START + 540)
    assert [r.detector for r in log.records()] == ["technique.aws.detection_disabled"]
    no_signals = dict(first, signals=[], detectors=["volume.rate"])
    assert AlertRecord.from_native(no_signals).detector == "volume.rate"
    assert AlertRecord.from_native(dict(first, signals=[], detectors=[])).detector == "unknown"
