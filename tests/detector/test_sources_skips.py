"""Records that are not audit logs of a supported source: counted skips that name what they
are (another vendor's audit log, nhi-detector's own outputs), never dead letters; and a
broken record of a supported source stays a dead letter even when it names its log type."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from tests.detector.sources_helpers import read, record

OWN_OUTPUTS = [
    ({"schema": "nhi-detector/alert/v1", "alert_id": "a1", "revision": 1}, "alerts"),
    ({"class_uid": 2004, "metadata": {"product": {"name": "nhi-detector"}}}, "OCSF alerts"),
    ({"reason": "invalid_json", "message": "m", "origin": "f:1", "source": "unknown",
      "raw": "{"}, "dead letters"),
    ({"identity": "arn:aws:iam::1:role/r", "kind": "workload", "kind_reason": "role",
      "first_seen": "2026-01-01T00:00:00Z", "last_seen": "2026-01-02T00:00:00Z",
      "credentials": []}, "inventory records"),
    ({"version": 1, "scenarios": [{"id": "s1"}]}, "labels"),
]


def parse_lines(*records: dict) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    data = b"\n".join(orjson.dumps(r) for r in records) + b"\n"
    events = parse_payload(data, origin="f", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return events, stats, dead


@pytest.mark.parametrize(("row", "named"), [
    ({"eventType": "user.session.start", "p_log_type": "Okta.SystemLog"}, "Okta.SystemLog"),
    ({"action": "org.update", "p_log_type": "GitHub.Audit"}, "GitHub.Audit"),
    ({"ticket_id": 7, "p_log_type": "Zendesk.Audit"}, "Zendesk.Audit"),
    ({"actor": {"id": "u"}, "eventType": "user.session.start"}, "Okta System Log"),
])
def test_other_vendors_are_skipped_and_named_once(row: dict, named: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="detector.sources.parser"):
        events, stats, dead = parse_lines(row, row)
    assert events == [] and dead.items == []
    assert stats.skipped == {("unknown", "unsupported_format"): 2}
    lines = [r.getMessage() for r in caplog.records if "skipping records" in r.getMessage()]
    assert len(lines) == 1 and named in lines[0] and "not a supported source" in lines[0]


def test_a_broken_row_of_a_supported_log_type_stays_a_dead_letter() -> None:
    """A Panther row typed AWS.CloudTrail that no parser could read is a broken record of a
    source we read: the user must see it, so it is not skipped as another vendor's."""
    events, stats, dead = parse_lines({"p_log_type": "AWS.CloudTrail", "foo": 1})
    assert events == [] and stats.skipped == {}
    assert [d["reason"] for d in dead.items] == ["unknown_format"]


@pytest.mark.parametrize(("row", "kind"), OWN_OUTPUTS)
def test_own_outputs_are_skipped_not_dead_letters(row: dict, kind: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="detector.sources.parser"):
        events, stats, dead = parse_lines(row)
    assert events == [] and dead.items == []
    assert stats.skipped == {("unknown", "nhi_detector_output"): 1}
    assert any(f"nhi-detector's own {kind} are not audit logs" in r.getMessage()
               for r in caplog.records)


def test_the_parse_commands_own_output_is_named_as_such(
        caplog: pytest.LogCaptureFixture) -> None:
    """``nhi-detector parse`` writes normalised events; fed back in, they were reported as
    GitHub audit log records (their ``action`` and ``actor`` fields look like GitHub's)."""
    parsed, _, _ = parse_lines(record(0))
    row = orjson.loads(orjson.dumps(parsed[0].to_dict()))
    with caplog.at_level(logging.WARNING, logger="detector.sources.parser"):
        events, stats, dead = parse_lines(row, row)
    assert events == [] and dead.items == []
    assert stats.skipped == {("unknown", "nhi_detector_output"): 2}
    lines = [r.getMessage() for r in caplog.records if "skipping records" in r.getMessage()]
    assert len(lines) == 1 and "nhi-detector's own parsed events" in lines[0]


def test_a_log_folder_holding_labels_and_last_runs_outputs(tmp_path: Path) -> None:
    """The bundled replay_data holds its labels file; users keep alerts next to logs."""
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "trail.json").write_bytes(orjson.dumps({"Records": [record(0), record(1)]}))
    labels = OWN_OUTPUTS[-1][0]
    (folder / "labels.json").write_bytes(orjson.dumps(labels, option=orjson.OPT_INDENT_2))
    outputs = b"\n".join(orjson.dumps(row) for row, _ in OWN_OUTPUTS[:4])
    (folder / "alerts.jsonl").write_bytes(outputs)
    events, stats, dead = read([folder])
    assert [e.event_id for e in events] == ["id-0", "id-1"]
    assert dead.items == []
    assert stats.skipped == {("unknown", "nhi_detector_output"): 5}


def test_an_aks_lake_row_takes_its_time_from_p_event_time() -> None:
    """A Panther data-lake row of an AKS audit record keeps only ``p_event_time`` once the
    audit event's own stamps are gone; it is an event at that time, not missing_time."""
    audit = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a-1",
             "stage": "ResponseComplete", "verb": "get", "requestURI": "/api/v1/pods",
             "user": {"username": "system:serviceaccount:ci:deployer"},
             "objectRef": {"resource": "pods", "namespace": "ci"},
             "responseStatus": {"code": 200}}
    row = {"category": "kube-audit", "p_log_type": "Azure.MonitorActivity",
           "p_event_time": "2024-03-04 10:00:00.000",
           "resourceId": "/SUBSCRIPTIONS/S/RESOURCEGROUPS/G/PROVIDERS/"
                         "MICROSOFT.CONTAINERSERVICE/MANAGEDCLUSTERS/PROD",
           "properties": {"log": orjson.dumps(audit).decode()}}
    events, _, dead = parse_lines(row)
    assert dead.items == []
    assert [(e.action, e.time.isoformat()) for e in events] == [
        ("k8s:pods.get", "2024-03-04T10:00:00+00:00")]
