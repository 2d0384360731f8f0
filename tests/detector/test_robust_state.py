"""A snapshot whose checksum is right but whose alert state has wrong-typed fields (written
by another build, or edited and re-signed) is refused when loaded, with exit 2.

Found by attacking ``--load-state``: ``alerts.cooldowns: {"x": "y"}`` loaded, and would
have failed at that identity's next alert, part of the replay done.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detector.alerts import AlertGroup
from detector.engine import AlertState
from tests.detector.test_break_replay_outputs import log_file  # noqa: F401 (fixture)
from tests.detector.test_break_snapshot import resigned
from tests.replay.logs import run_replay

def with_alerts(snapshot: bytes, field: str, value: object) -> bytes:
    """``snapshot`` with ``field`` of every identity's alert state set to ``value``, signed
    again."""
    return resigned(snapshot, lambda rest: rest.setdefault("alerts", {}).__setitem__(field, value))


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("cooldowns", {"x": "y"}, "alert cooldown has the wrong type: 'y'"),
    ("cooldowns", {"x": [1.0]}, "alert cooldown is not [until, rank]: [1.0]"),
    ("cooldowns", [1], "alert state cooldowns has the wrong type: [1]"),
    ("expected", [1], "alert state expected item has the wrong type: 1"),
    ("recurrence", {"s": [[1, "x"]]}, "alert recurrence sighting item has the wrong type: 'x'"),
    ("insights", {"i": {"start": "x"}}, "alert insight start has the wrong type: 'x'"),
    ("groups", {"g": 5}, "alert group is not a mapping: 5"),
])
def test_wrong_typed_alert_state__refused_at_load(log_file, tmp_path: Path, capsys,  # noqa: F811
                                                  field, value, problem):
    state = tmp_path / "state.snap"
    assert run_replay([log_file], tmp_path, "--save-state", str(state))[0] == 0
    bad = tmp_path / "bad.snap"
    bad.write_bytes(with_alerts(state.read_bytes(), field, value))
    capsys.readouterr()
    assert run_replay([log_file], tmp_path, "--load-state", str(bad))[0] == 2
    assert capsys.readouterr().err == (
        f"nhi-detector replay: state snapshot {bad} refused: identity "
        f"'etl@p1.iam.gserviceaccount.com': identity state is corrupt (TypeError: {problem})\n"
    )


def group_dict(**extra: object) -> dict:
    group = AlertGroup(group="g", alert_id="a", opened=1.0, closes=2.0, last=1.5, score=0.5,
                       severity="high", identity_kind="workload", kind_reason="r", owner="o",
                       tenant=None, detectors=["d"], event_ids=["e"], count=1,
                       signals=[{"detector": "d", "value": "v", "sentence": "s",
                                 "weighted_score": 0.5}], values=[["d", "v"]])
    data = group.to_dict()
    data.update(extra)
    return data


@pytest.mark.parametrize(("extra", "problem"), [
    ({"severity": "huge"}, "alert group severity is not a severity: 'huge'"),
    ({"closes": "2"}, "alert group closes has the wrong type: '2'"),
    ({"count": True}, "alert group count has the wrong type: True"),
    ({"event_ids": [None]}, "alert group event_ids item has the wrong type: None"),
    ({"signals": [{"detector": "d"}]}, "alert signal value has the wrong type: None"),
    ({"values": [["d", 1]]}, "alert group value pair item has the wrong type: 1"),
    ({"counts": {"d": "1"}}, "alert group counts item has the wrong type: '1'"),
    ({"shadow": "no"}, "alert group shadow is not true or false: 'no'"),
])
def test_wrong_typed_alert_group__refused(extra, problem):
    with pytest.raises(TypeError) as caught:
        AlertGroup.from_dict(group_dict(**extra))
    assert str(caught.value) == problem


def test_a_well_typed_state_round_trips():
    state = AlertState.from_dict({"groups": {"g": group_dict()}, "cooldowns": {"g": [3.0, 2.0]},
                                  "expected": ["d\x1fv"], "recurrence": {"s": [[1, 2]]},
                                  "insights": {"i": {"start": 1.0, "end": None}},
                                  "told": {"novelty.action\x1fs3:X": [19700, 2]}})
    assert AlertState.from_dict(orjson.loads(orjson.dumps(state.to_dict()))) == state
    assert state.told == {"novelty.action\x1fs3:X": [19700, 2]}
    assert "told" not in AlertState().to_dict()  # an earlier state's bytes are unchanged
    for bad in ([1.5, 2], [1], "x"):
        with pytest.raises(TypeError, match="told"):
            AlertState.from_dict({"told": {"k": bad}})
    assert state.groups["g"].to_dict() == group_dict()
