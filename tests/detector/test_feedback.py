"""The feedback subcommand: mark an alert expected in a snapshot; it is not raised again."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from detector.cli import main
from detector.engine import Detector
from detector.feedback import known_detectors, marks_from_alert
from detector.stats import RunStats
from tests.detector.test_engine import ROLE, attack_event, learned

# A low hold-out score keeps the deviation out of the baseline, so it recurs until feedback.
CONFIG = {"models": {"holdout_score": 0.3}, "scoring": {"group_window": 60, "cooldown": 0}}
CONFIG_YAML = (
    "models:\n  holdout_score: 0.3\nscoring:\n  group_window: 60\n  cooldown: 0\n"
)


@pytest.fixture
def alerted(tmp_path):
    """A snapshot after one alert, the alert file, and the config file."""
    detector, _ = learned(CONFIG)
    alerts = detector.process(attack_event(0)) + detector.finish()
    assert alerts
    state = tmp_path / "state.bin"
    state.write_bytes(detector.export_state())
    lines = b"".join(orjson.dumps(a.to_native()) + b"\n" for a in alerts)
    alerts_file = tmp_path / "alerts.jsonl"
    alerts_file.write_bytes(lines)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG_YAML)
    return state, alerts_file, config, alerts[-1]


def replay_again(state_path) -> list:
    detector = Detector(CONFIG, stats=RunStats())
    detector.load_state(state_path.read_bytes())
    again = attack_event(1, event_id="again")
    again.ts += 3600
    again.time += timedelta(hours=1)
    return detector.process(again)


def test_without_feedback_the_deviation_comes_back(alerted):
    state, *_ = alerted
    assert len(replay_again(state)) == 1


def test_feedback_by_alert_id(alerted, capsys):
    state, alerts_file, config, alert = alerted
    code = main(["feedback", "--state", str(state), "--alerts", str(alerts_file),
                 "--alert-id", alert.alert_id, "--config", str(config)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"marked expected: {ROLE} novelty.action 'iam:CreateAccessKey'" in out
    assert replay_again(state) == []


def test_feedback_to_another_file_leaves_the_input(alerted, tmp_path):
    state, alerts_file, config, alert = alerted
    before = state.read_bytes()
    out = tmp_path / "taught.bin"
    code = main(["feedback", "--state", str(state), "--out", str(out), "--alerts",
                 str(alerts_file), "--alert-id", alert.alert_id, "--config", str(config)])
    assert code == 0
    assert state.read_bytes() == before
    assert replay_again(out) == []


def test_marks_come_from_every_signal_value(alerted):
    *_, alert = alerted
    marks = marks_from_alert(alert.to_native())
    assert (ROLE, "novelty.action", "iam:CreateAccessKey") in marks
    assert len(marks) == len(alert.evidence["signal_values"])


def test_unknown_alert_id_is_an_error(alerted, capsys):
    state, alerts_file, config, _ = alerted
    code = main(["feedback", "--state", str(state), "--alerts", str(alerts_file),
                 "--alert-id", "0" * 32, "--config", str(config)])
    assert code == 2
    assert "not found in" in capsys.readouterr().err


def test_nothing_to_mark_is_an_error(alerted, capsys):
    state, *_ = alerted
    assert main(["feedback", "--state", str(state)]) == 2
    assert "nothing to mark" in capsys.readouterr().err


def test_unknown_identity_is_reported(alerted, capsys):
    state, _, config, _ = alerted
    code = main(["feedback", "--state", str(state), "--config", str(config), "--identity",
                 "arn:aws:iam::1:role/nobody", "--detector", "novelty.action", "--value", "x"])
    assert code == 1
    assert "identity not in snapshot" in capsys.readouterr().out


def test_misspelt_detector_is_refused(alerted, capsys):
    state, _, config, _ = alerted
    before = state.read_bytes()
    code = main(["feedback", "--state", str(state), "--config", str(config), "--identity",
                 "arn:aws:iam::1:role/nobody", "--detector", "novely.action", "--value", "x"])
    assert code == 2
    assert "'novely.action' is not a detector name" in capsys.readouterr().err
    assert state.read_bytes() == before


def test_misspelt_detector_of_a_known_family__refused_with_the_known_names(alerted, capsys):
    state, _, config, _ = alerted
    code = main(["feedback", "--state", str(state), "--config", str(config), "--identity",
                 "arn:aws:iam::1:role/nobody", "--detector", "novelty.actoin", "--value", "x"])
    assert code == 2
    err = capsys.readouterr().err
    assert "'novelty.actoin' is not a detector name; did you mean 'novelty.action'?" in err
    assert "novelty.action_network, " in err and "volume.rate, " in err
    assert "technique.<rule> names" in err


def test_known_detectors__every_model_technique_and_policy_name():
    known = known_detectors({"scoring": {"policy_rules": [{"action": "iam:*", "name": "iam"}]}})
    assert {"novelty.action", "credential.new_network", "volume.failures", "multivariate.hst",
            "schedule.off_hours", "dormancy.credential", "identity.new",
            "credential.instance_outside_cloud", "policy.logging_tampering",
            "policy.iam"} <= known
    assert {"technique.aws.secrets_burst", "technique.k8s.privileged_pod",
            "technique.gcp.public_iam_binding", "technique.azure.vm_run_command",
            "technique.aws.permission_probing", "technique.k8s.tampering_attempt"} <= known
    assert {"sweep.refused", "sweep.bad_credential", "sweep.key_check"} <= known
    assert "policy.rule" not in known and "novelty.actoin" not in known


def test_known_detectors__cover_every_name_the_sources_write():
    """Every detector name written as a literal in the models, the engine and the technique
    checks is accepted: a new model or check cannot be refused by feedback unnoticed."""
    root = Path(__file__).resolve().parents[2]
    written = set()
    for path in [*root.glob("models/*.py"), root / "detector/engine.py"]:
        text = path.read_text()
        written.update(re.findall(r'detector="([a-z_]+\.[a-z_]+)"', text))
        # a model's one detector name kept as a constant (models/daily.py)
        written.update(re.findall(r'^DETECTOR = "([a-z_]+\.[a-z_]+)"', text, re.MULTILINE))
    for path in root.glob("detector/techniques/*.py"):
        text = path.read_text()
        written.update("technique." + rule for rule in re.findall(
            r'(?:Finding|Tally|_sharing|_resource_policy)\(\s*"((?:aws|azure|gcp|k8s)\.\w+)"',
            text))
    known = known_detectors()
    assert len(written) > 20
    assert sorted(written - known) == []
