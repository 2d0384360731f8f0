"""OCSF 1.6.0 Detection Finding: required attributes, enums and the mapping of our fields.

The required attributes below were read from the OCSF schema repository at tag 1.6.0
(events/base_event.json, events/findings/finding.json, events/findings/detection_finding.json
and the objects they use); ``check_detection_finding`` is reusable by other tests.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.ocsf import OCSF_VERSION, to_ocsf
from tests.detector.test_alerts import build_alert

EVENT_REQUIRED = (
    "activity_id", "category_uid", "class_uid", "metadata", "severity_id", "time", "type_uid",
    "finding_info",
)
ENUMS = {
    "activity_id": {1, 2, 3, 99},
    "severity_id": {0, 1, 2, 3, 4, 5, 6, 99},
    "status_id": {0, 1, 2, 3, 4, 5, 6, 99},
    "confidence_id": {0, 1, 2, 3, 99},
}
EVIDENCE_ONE_OF = (
    "actor", "api", "connection_info", "data", "database", "databucket", "device",
    "dst_endpoint", "email", "file", "process", "query", "resources", "src_endpoint", "url",
    "user", "job", "script",
)
USER_TYPE_IDS = {0, 1, 2, 3, 4, 99}


def _entity(obj: dict[str, Any], where: str) -> None:
    assert obj.get("name") or obj.get("uid"), f"{where}: needs name or uid"


def check_detection_finding(doc: dict[str, Any]) -> None:
    """Assert every attribute OCSF 1.6.0 requires of a Detection Finding is present."""
    for key in EVENT_REQUIRED:
        assert key in doc, f"missing required attribute {key}"
    for key, allowed in ENUMS.items():
        if key in doc:
            assert doc[key] in allowed, f"{key}={doc[key]} outside its enum"
    assert doc["class_uid"] == 2004 and doc["category_uid"] == 2
    assert doc["type_uid"] == doc["class_uid"] * 100 + doc["activity_id"]
    assert isinstance(doc["time"], int)
    meta = doc["metadata"]
    assert meta["version"] == OCSF_VERSION
    _entity(meta["product"], "metadata.product")
    info = doc["finding_info"]
    assert info["uid"]
    analytic = info.get("analytic")
    if analytic is not None:
        assert "type_id" in analytic
        _entity(analytic, "finding_info.analytic")
    for attack in info.get("attacks", []):
        assert {"tactic", "technique", "sub_technique"} & set(attack)
        for part in ("tactic", "technique", "sub_technique"):
            if part in attack:
                _entity(attack[part], f"attack.{part}")
    for evidence in doc.get("evidences", []):
        assert set(EVIDENCE_ONE_OF) & set(evidence), "evidence needs one of its objects"
        if "api" in evidence:
            assert evidence["api"]["operation"]
    user = doc.get("actor", {}).get("user")
    if user is not None:
        assert {"account", "name", "uid"} & set(user)
        assert user.get("type_id", 0) in USER_TYPE_IDS
    for analysis in doc.get("anomaly_analyses", []):
        assert analysis["analysis_targets"] and analysis["anomalies"]
        assert all(t["name"] for t in analysis["analysis_targets"])
        for anomaly in analysis["anomalies"]:
            assert anomaly["observation_parameter"]
            assert all("value" in o for o in anomaly["observations"])
    for resource in doc.get("resources", []):
        _entity(resource, "resources[]")


class TestDetectionFinding:
    def test_required_attributes_present(self):
        doc = to_ocsf(build_alert())
        check_detection_finding(doc)
        assert json.loads(json.dumps(doc)) == doc

    def test_create_then_update(self):
        first = to_ocsf(build_alert(revision=1))
        second = to_ocsf(build_alert(revision=2))
        assert (first["activity_id"], first["type_uid"]) == (1, 200401)
        assert (second["activity_id"], second["type_uid"]) == (2, 200402)
        assert first["finding_info"]["uid"] == second["finding_info"]["uid"]
        assert first["metadata"]["uid"] != second["metadata"]["uid"]

    def test_severity_and_identity_mapping(self):
        alert = build_alert()
        doc = to_ocsf(alert)
        assert alert.severity == "high"
        assert (doc["severity_id"], doc["severity"]) == (4, "High")
        assert doc["actor"]["user"]["uid"] == alert.identity
        assert doc["actor"]["user"]["type_id"] == 4  # workload -> Service
        assert doc["actor"]["user"]["account"] == {"uid": "111122223333"}
        assert doc["unmapped"]["nhi_owner"] == "no owner on record"
        assert "owner" not in doc["resources"][0]

    def test_attacks_split_technique_and_sub_technique(self):
        doc = to_ocsf(build_alert())
        first = doc["finding_info"]["attacks"][0]
        assert first["technique"] == {"uid": "T1098", "name": "Account Manipulation"}
        assert first["sub_technique"] == {
            "uid": "T1098.001", "name": "Additional Cloud Credentials"
        }
        tactics = {a["tactic"]["uid"] for a in doc["finding_info"]["attacks"]
                   if a["technique"]["uid"] == "T1098"}
        assert tactics == {"TA0003", "TA0004"}

    def test_observed_vs_baseline_in_anomaly_analyses(self):
        doc = to_ocsf(build_alert())
        analysis = doc["anomaly_analyses"][0]
        params = [a["observation_parameter"] for a in analysis["anomalies"]]
        assert params == ["novelty.action", "novelty.region"]
        assert analysis["baselines"][0]["observations"] == [{"value": "24 actions in 41 days"}]

    def test_description_keeps_the_sentences_apart(self):
        alert = build_alert()
        sentences = [s["sentence"] for s in alert.signals]
        assert len(sentences) == 2
        assert to_ocsf(alert)["finding_info"]["desc"] == f"{sentences[0]}; {sentences[1]}"

    def test_shadow_alert_is_not_an_alertable_signal(self):
        assert to_ocsf(build_alert())["is_alert"] is True
        doc = to_ocsf(build_alert(shadow=True))
        assert doc["is_alert"] is False
        assert doc["metadata"]["labels"] == ["shadow"]

    def test_checker_catches_a_missing_required_attribute(self):
        doc = to_ocsf(build_alert())
        del doc["finding_info"]
        with pytest.raises(AssertionError, match="finding_info"):
            check_detection_finding(doc)


@settings(max_examples=40, deadline=None)
@given(
    revision=st.integers(min_value=1, max_value=50),
    shadow=st.booleans(),
)
def test_every_revision_is_a_complete_detection_finding(revision, shadow):
    doc = to_ocsf(build_alert(revision=revision, shadow=shadow))
    check_detection_finding(doc)
    assert doc["activity_id"] == (1 if revision == 1 else 2)
    assert doc["is_alert"] is (not shadow)


def _native_ms(text: str) -> int:
    """Epoch ms of a native ``…T19:23:33.560Z`` time."""
    when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return (when - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


class TestTimes:
    """OCSF times are the native alert's, to the millisecond: both cut the microseconds."""

    def test_microsecond_input__is_cut_like_the_native_window(self):
        # the trial's alert: 19:23:33.560613 was 33.560 in the native window, 33.561 in OCSF
        last = datetime(2026, 11, 20, 19, 23, 33, 560613, tzinfo=UTC).timestamp()
        first = datetime(2026, 11, 20, 19, 13, 2, 999999, tzinfo=UTC).timestamp()
        alert = dataclasses.replace(build_alert(), first_time=first, last_time=last)
        window = alert.to_native()["window"]
        doc = to_ocsf(alert)
        assert window == {"first": "2026-11-20T19:13:02.999Z", "last": "2026-11-20T19:23:33.560Z"}
        info = doc["finding_info"]
        assert (doc["time"], doc["end_time"], info["last_seen_time"]) == (1795202613560,) * 3
        assert (doc["start_time"], info["first_seen_time"]) == (1795201982999,) * 2

    @settings(max_examples=200, deadline=None)
    @given(ts=st.floats(min_value=0, max_value=4e9, allow_nan=False))
    def test_any_time__equals_the_native_one(self, ts):
        alert = dataclasses.replace(build_alert(), first_time=ts, last_time=ts)
        doc = to_ocsf(alert)
        assert doc["start_time"] == doc["end_time"] == _native_ms(
            alert.to_native()["window"]["last"])
