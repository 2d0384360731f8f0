"""``nhi-detector feedback`` given a malformed alert line, a non-UTF-8 argument or an
output it cannot write: one line naming the problem (exit 2), the snapshot untouched.

Found by attacking the command: a hand-edited alert line (no revision, an identity that
is a string, a signal with no value, a numeric value) ended in a traceback or stored a
value that can never match; ``--value`` holding bytes that are not UTF-8 failed with a
traceback while writing the snapshot; a failed write left ``.<name>.<pid>.tmp`` behind.
"""

from __future__ import annotations

import orjson
import pytest

from detector.cli import main
from tests.detector.test_feedback import alerted  # noqa: F401 (fixture)


def edited(alert_native: dict, **changes: object) -> dict:
    return {**alert_native, **changes}


@pytest.mark.parametrize(("changes", "problem"), [
    ({"revision": "2"}, "revision '2' is not a whole number"),
    ({"revision": None}, "revision None is not a whole number"),
    ({"identity": "arn:aws:iam::1:role/x"}, "identity.key is not an identity key"),
    ({"identity": {"kind": "workload"}}, "identity.key is not an identity key"),
    ({"evidence": {"signal_values": 5}}, "evidence.signal_values is not a list"),
    ({"evidence": {"signal_values": [{"detector": "novelty.action"}]}},
     "signal 0 has no text 'detector' and 'value'"),
    ({"evidence": {"signal_values": [{"detector": "novelty.action", "value": 5}]}},
     "signal 0 has no text 'detector' and 'value'"),
    ({"evidence": {"signal_values": ["novelty.action"]}},
     "signal 0 has no text 'detector' and 'value'"),
])
def test_malformed_alert_line__one_line_exit_2(alerted, capsys, changes, problem):  # noqa: F811
    state, alerts_file, config, alert = alerted
    before = state.read_bytes()
    line = orjson.dumps(edited(alert.to_native(), **changes))
    alerts_file.write_bytes(alerts_file.read_bytes() + line + b"\n")
    number = alerts_file.read_bytes().count(b"\n")
    code = main(["feedback", "--state", str(state), "--alerts", str(alerts_file),
                 "--alert-id", alert.alert_id, "--config", str(config)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"nhi-detector feedback: alert {alert.alert_id} is not a native alert: {problem} "
        f"at {alerts_file}:{number} (reason=invalid_record)\n"
    )
    assert state.read_bytes() == before


def test_value_not_utf8__one_line_exit_2(alerted, capsys):  # noqa: F811
    state, _, config, alert = alerted
    before = state.read_bytes()
    value = b"iam:\xff".decode("utf-8", "surrogateescape")  # how Python keeps such argv
    code = main(["feedback", "--state", str(state), "--config", str(config), "--identity",
                 alert.identity, "--detector", "novelty.action", "--value", value])
    assert code == 2
    assert capsys.readouterr().err == (
        "nhi-detector feedback: --value 'iam:\\udcff' is not valid UTF-8\n"
    )
    assert state.read_bytes() == before


def test_unwritable_out__no_temporary_file_left(alerted, tmp_path, capsys):  # noqa: F811
    state, alerts_file, config, alert = alerted
    out = tmp_path / "taught"
    out.mkdir()
    code = main(["feedback", "--state", str(state), "--out", str(out), "--alerts",
                 str(alerts_file), "--alert-id", alert.alert_id, "--config", str(config)])
    assert code == 2
    assert capsys.readouterr().err == f"nhi-detector feedback: cannot write {out}: Is a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("option", ["--alerts", "--config"])
def test_out_naming_an_input__refused_input_intact(alerted, capsys, option):  # noqa: F811
    state, alerts_file, config, alert = alerted
    target = alerts_file if option == "--alerts" else config
    before = target.read_bytes()
    code = main(["feedback", "--state", str(state), "--out", str(target), "--alerts",
                 str(alerts_file), "--alert-id", alert.alert_id, "--config", str(config)])
    assert code == 2
    assert capsys.readouterr().err == (
        f"nhi-detector feedback: --out {target} is the same file as {option} {target}: "
        "writing it would destroy it; name another file\n"
    )
    assert target.read_bytes() == before


def test_snapshot_being_written_by_a_replay__refused_and_unchanged(alerted, capsys):  # noqa: F811
    # feedback said "recorded" while a replay saving the same snapshot ran; the replay
    # then wrote its older state over the mark
    import os

    from detector.replay import SnapshotLock

    state, alerts_file, config, alert = alerted
    before = state.read_bytes()
    replay = SnapshotLock(str(state))  # what a running replay --save-state STATE holds
    replay.acquire()
    try:
        code = main(["feedback", "--state", str(state), "--alerts", str(alerts_file),
                     "--alert-id", alert.alert_id, "--config", str(config)])
    finally:
        replay.release()
    assert code == 2
    assert capsys.readouterr().err == (
        f"nhi-detector feedback: --state {state} is being written by another run (process "
        f"{os.getpid()}): its snapshot would be overwritten by whichever ends last; wait "
        f"for it to end or name another file\n")
    assert state.read_bytes() == before
    code = main(["feedback", "--state", str(state), "--alerts", str(alerts_file),
                 "--alert-id", alert.alert_id, "--config", str(config)])
    assert code == 0 and state.read_bytes() != before
    assert not any(name.endswith(".lock") for name in os.listdir(state.parent))
