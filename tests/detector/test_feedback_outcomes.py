"""What `feedback` says it did: learned by a model, or only recorded (never a claim of
learning that did not happen); and OCSF alert files."""

from __future__ import annotations

import orjson

from detector.cli import main
from detector.feedback import outcome_line
from detector.ocsf import to_ocsf
from tests.detector.test_engine import ROLE
from tests.detector.test_feedback import alerted, replay_again  # noqa: F401 (fixture)


def feedback(state, config, *extra) -> int:
    return main(["feedback", "--state", str(state), "--config", str(config), *extra])


def test_volume_past_window__recorded_not_learned(alerted, capsys):  # noqa: F811
    state, _, config, _ = alerted
    code = feedback(state, config, "--identity", ROLE, "--detector", "volume.rate",
                    "--value", "2024-03-08T03:00Z")
    out = capsys.readouterr().out
    assert code == 0
    assert out == (
        f"recorded, not learned: {ROLE} volume.rate '2024-03-08T03:00Z' (the volume baseline "
        "has no held-back run for this window, so it learns nothing now; a signal for this "
        "same window is suppressed if it comes again; later windows are judged as before)\n")


def test_novelty__says_the_baseline_learned_it(alerted, capsys):  # noqa: F811
    state, _, config, _ = alerted
    assert feedback(state, config, "--identity", ROLE, "--detector", "novelty.action",
                    "--value", "iam:CreateUser") == 0
    assert capsys.readouterr().out == (
        f"marked expected: {ROLE} novelty.action 'iam:CreateUser' (the baseline learned the "
        "value; future signals with this value are suppressed)\n")


def test_each_family__says_what_happens():
    assert outcome_line("dormancy.identity", False) == (
        "recorded, not learned", "the dormancy model learns only from events, so it learns "
        "nothing now; future signals with this value are suppressed")
    assert outcome_line("multivariate.hst", False)[0] == "recorded, not learned"
    assert outcome_line("policy.no-key-creation", False)[1].startswith(
        "a policy rule has no baseline to learn")
    assert outcome_line("schedule.off_hours", True) == (
        "marked expected", "the schedule baseline learned this hour; future signals with "
        "this value are suppressed")
    assert outcome_line("volume.rate", True)[1].startswith(
        "the volume baseline accepted the level it was holding back")
    assert outcome_line("novelty.action", None) == ("identity not in snapshot, skipped", "")


def test_ocsf_alerts_file__is_accepted(alerted, tmp_path, capsys):  # noqa: F811
    state, _, config, alert = alerted
    ocsf = tmp_path / "alerts.ocsf.jsonl"
    ocsf.write_bytes(orjson.dumps(to_ocsf(alert)) + b"\n")
    code = feedback(state, config, "--alerts", str(ocsf), "--alert-id", alert.alert_id)
    out = capsys.readouterr().out
    assert code == 0
    assert f"marked expected: {ROLE} novelty.action 'iam:CreateAccessKey'" in out
    assert replay_again(state) == []


def test_ocsf_without_signal_values__refused_with_what_to_pass(alerted, tmp_path,  # noqa: F811
                                                               capsys):
    state, _, config, alert = alerted
    doc = to_ocsf(alert)
    del doc["unmapped"]["nhi_signal_values"]
    ocsf = tmp_path / "old.ocsf.jsonl"
    ocsf.write_bytes(orjson.dumps(doc) + b"\n")
    code = feedback(state, config, "--alerts", str(ocsf), "--alert-id", alert.alert_id)
    err = capsys.readouterr().err
    assert code == 2
    assert f"{ocsf} is an OCSF file without the signal values feedback marks" in err
    assert "pass the native alerts file (replay --alerts without --format ocsf)" in err


def test_ocsf_revision_that_is_no_number__refused_not_a_traceback(alerted, tmp_path,  # noqa: F811
                                                                  capsys):
    """``-r²`` passed ``str.isdigit`` and failed ``int``: a ValueError traceback."""
    state, _, config, alert = alerted
    for revision in ("\u00b2", "9" * 5000):
        doc = to_ocsf(alert)
        doc["metadata"]["uid"] = f"{alert.alert_id}-r{revision}"
        ocsf = tmp_path / "odd.ocsf.jsonl"
        ocsf.write_bytes(orjson.dumps(doc) + b"\n")
        code = feedback(state, config, "--alerts", str(ocsf), "--alert-id", alert.alert_id)
        assert code == 2
        assert "is an OCSF file without the signal values feedback marks" in \
            capsys.readouterr().err


def test_a_daily_value_that_is_no_date__refused(alerted, capsys):  # noqa: F811
    state, _, config, _ = alerted
    for odd in ("99999-99-99", "2024-1-5", "\uff12\uff10\uff12\uff14-01-05", "2024-02-30"):
        code = feedback(state, config, "--identity", ROLE, "--detector", "volume.daily",
                        "--value", odd)
        assert code == 2
        assert "volume.daily values are the alert's UTC day, YYYY-MM-DD" in \
            capsys.readouterr().err
    assert feedback(state, config, "--identity", ROLE, "--detector", "volume.daily",
                    "--value", "2024-03-08") == 0  # a date: recorded
