"""A labels file with a wrong-typed field is refused with one line (exit 2), never a
traceback, and never read differently from what it says.

Found by attacking ``nhi-detector replay --labels``: ``"event_ids": 5`` ended in a
``TypeError`` traceback, ``"event_ids": "ev-1"`` was read letter by letter (a scenario
matched by any event id "e", "v", "-" or "1"), ``"id": {...}`` became the text of a dict.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detector.errors import ConfigError
from detector.evaluation import parse_labels
from tests.replay.logs import run_replay

SCENARIO = {"id": "s1", "identities": ["arn:aws:iam::123456789012:role/bot"],
            "start": "2024-03-04T09:00:00Z", "end": "2024-03-04T11:00:00Z"}


def labels(**changes: object) -> dict:
    return {"version": 1, "scenarios": [{**SCENARIO, **changes}]}


@pytest.mark.parametrize(("changes", "message"), [
    ({"event_ids": 5}, "'event_ids' must be a list of strings, got 5"),
    ({"event_ids": "ev-1"}, "'event_ids' must be a list of strings, got 'ev-1'"),
    ({"event_ids": ["ev-1", 7]}, "'event_ids' must be a list of strings, got ['ev-1', 7]"),
    ({"techniques": {"T1078": 1}}, "'techniques' must be a list of strings, got {'T1078': 1}"),
    ({"techniques": 5}, "'techniques' must be a list of strings, got 5"),
    ({"id": {"a": 1}}, "'id' must be a string, got {'a': 1}"),
    ({"title": ["x"]}, "'title' must be a string, got ['x']"),
    # null passed, and the summary failed with a TypeError after the whole replay
    ({"id": None}, "'id' must be a non-empty string, got None"),
    ({"id": ""}, "'id' must be a non-empty string, got ''"),
])
def test_wrong_typed_field__one_line_exit_2(tmp_path: Path, capsys, changes, message):
    path = tmp_path / "labels.json"
    path.write_bytes(orjson.dumps(labels(**changes)))
    log = tmp_path / "empty.jsonl"
    log.write_bytes(b"")
    code = run_replay([log], tmp_path, "--labels", str(path))[0]
    err = capsys.readouterr().err
    assert code == 2
    assert err == f"nhi-detector replay: {path}: scenarios[0]: {message}\n"


def test_well_typed_optional_fields__kept():
    (scenario,) = parse_labels(labels(event_ids=["ev-1"], techniques=["T1078.004"],
                                      title="stolen key", description="from a VPS"))
    assert scenario.event_ids == frozenset({"ev-1"})
    assert scenario.techniques == ("T1078.004",)
    assert (scenario.id, scenario.title, scenario.description) == ("s1", "stolen key",
                                                                   "from a VPS")


def test_null_optional_fields__empty():
    (scenario,) = parse_labels(labels(event_ids=None, techniques=None, title=None))
    assert scenario.event_ids == frozenset() and scenario.techniques == ()
    assert scenario.title == "s1"


def test_lone_string_event_ids__refused_not_split():
    with pytest.raises(ConfigError, match="'event_ids' must be a list of strings"):
        parse_labels(labels(event_ids="abc"))


def test_scenario_identity_never_seen__named_in_a_warning(tmp_path: Path, caplog):
    """A misspelt key makes a scenario "missed" however well the detector did."""
    from tests.detector.test_break_replay_outputs import GCP_RECORD

    log = tmp_path / "gcp.jsonl"
    log.write_bytes(orjson.dumps(GCP_RECORD) + b"\n")
    seen = "etl@p1.iam.gserviceaccount.com"
    path = tmp_path / "labels.json"
    path.write_bytes(orjson.dumps({"version": 1, "scenarios": [
        {**SCENARIO, "id": "s1", "identities": [seen, "etl@p2.iam.gserviceaccount.com"]},
        {**SCENARIO, "id": "s2", "identities": [seen]},
    ]}))
    with caplog.at_level("WARNING", logger="detector.replay"):
        assert run_replay([log], tmp_path, "--labels", str(path))[0] == 0
    assert [r.getMessage() for r in caplog.records if r.name == "detector.replay"] == [
        "labels: 1 scenario identity key(s) had no event in this replay (misspelt?): "
        "s1: etl@p2.iam.gserviceaccount.com"
    ]


@pytest.mark.parametrize(("start", "end"), [
    (1_709_546_400_000, 1_709_550_000_000),  # epoch milliseconds
    ("0201-03-04T09:00:00Z", "2024-03-04T11:00:00Z"),
    ("2024-03-04T09:00:00Z", "3024-03-04T11:00:00Z"),
    (-1.0, 10.0),
])
def test_scenario_time_outside_event_years__refused(start, end):
    """Events outside 1970-2100 are dead letters, so such a scenario could never be
    detected; before, it was silently reported as missed."""
    with pytest.raises(ConfigError) as caught:
        parse_labels(labels(start=start, end=end))
    assert str(caught.value) == (
        "labels: scenarios[0]: start and end must be in the years 1970-2100, as event times "
        f"are (epoch times are in seconds), got {start!r} .. {end!r}"
    )


def test_scenario_times_at_the_edges__kept():
    (scenario,) = parse_labels(labels(start=0, end="2100-12-31T23:59:59Z"))
    assert (scenario.start, scenario.end) == (0.0, 4_133_980_799.0)


def test_misspelt_scenario_key__warned_with_the_likely_one(caplog):
    with caplog.at_level("WARNING", logger="detector.evaluation"):
        (scenario,) = parse_labels(labels(event_id=["ev-1"], source="tool-x"),
                                   origin="l.json")
    assert scenario.event_ids == frozenset()  # not read: said, not guessed
    assert caplog.messages == [
        "l.json: scenarios[0]: key 'event_id' is not read; did you mean 'event_ids'?",
        "l.json: scenarios[0]: key 'source' is not read"]


def test_scenario_whose_records_are_all_dead_letters__said(tmp_path: Path, caplog):
    """45 generated days replayed on a machine whose clock was in day 35: every attack was
    a ``future_time`` dead letter, and the summary only said "0/11 detected"."""
    import time

    from tests.replay import logs

    attack_at = time.time() + 10 * 86400  # later than the clock allows: dead letters
    logs.build_logs(tmp_path / "logs", days=3, attack_at=attack_at)
    path = tmp_path / "labels.json"
    path.write_bytes(orjson.dumps(logs.labels_for(attack_at)))
    with caplog.at_level("WARNING", logger="detector.replay"):
        code, summary = run_replay([tmp_path / "logs"], tmp_path, "--labels", str(path))
    assert code == 0
    [scenario] = summary["evaluation"]["scenarios"]
    assert (scenario["detected"], scenario["events_in_range"]) == (False, 0)
    future = summary["dead_letters"]["aws.cloudtrail/future_time"]
    assert future > 0
    [said] = [r.getMessage() for r in caplog.records if "never saw them" in r.getMessage()]
    assert said.startswith("labels: 1 missed scenario(s) had no event of their identities in "
                           "their time range, so the detector never saw them: outside-use; "
                           f"dead letters of this run by reason: future_time {future:,}")


def test_detected_scenario__its_events_in_range_counted(tmp_path: Path):
    from tests.replay import logs

    attack_at = logs.T0 + 2 * 86400 + 3600
    logs.build_logs(tmp_path / "logs", days=3, attack_at=attack_at)
    path = tmp_path / "labels.json"
    path.write_bytes(orjson.dumps(logs.labels_for(attack_at)))
    code, summary = run_replay([tmp_path / "logs"], tmp_path, "--labels", str(path))
    assert code == 0
    [scenario] = summary["evaluation"]["scenarios"]
    assert scenario["events_in_range"] > 0
