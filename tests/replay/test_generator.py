"""The replay-data generator: reproducible, provider-shaped output with consistent labels.

A small run (``--scale 0.1 --days 10``, a few seconds) is generated once per module; the
committed data set itself is checked for its size budget and population.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "replay_data" / "generate.py"
SMALL = ["--scale", "0.1", "--days", "10", "-q"]
CT_KEY = re.compile(
    r"^aws/AWSLogs/(\d{12})/CloudTrail/([a-z]{2}-[a-z]+-\d)/(\d{4})/(\d{2})/(\d{2})/"
    r"\1_CloudTrail_\2_(\d{8})T(\d{4})Z_[A-Za-z0-9]{16}\.json\.gz$")
DIGEST_KEY = re.compile(r"^aws/AWSLogs/\d{12}/CloudTrail-Digest/[a-z]{2}-[a-z]+-\d/"
                        r"\d{4}/\d{2}/\d{2}/\d{12}_CloudTrail-Digest_.+Z\.json\.gz$")


def generate(out: Path, *extra: str) -> None:
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), *SMALL, *extra],
                   check=True, timeout=120)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def records_of(path: str, data: bytes) -> list[dict]:
    text = gzip.decompress(data).decode()
    if path.startswith("aws/"):
        return json.loads(text).get("Records", [])
    return [json.loads(line) for line in text.splitlines() if line]


def principal(path: str, rec: dict) -> tuple[str, str]:
    """(event id, canonical identity key) by the rules labels.json promises."""
    if path.startswith("aws/"):
        ui = rec["userIdentity"]
        issuer = ui.get("sessionContext", {}).get("sessionIssuer", {}).get("arn")
        return rec["eventID"], issuer or ui.get("arn", "")
    if path.startswith("k8s/"):
        return rec["auditID"], rec["user"]["username"]
    return rec["insertId"], rec["protoPayload"]["authenticationInfo"].get("principalEmail", "")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path_factory.mktemp("gen-a")
    generate(out)
    return out, files_of(out)


@pytest.fixture(scope="module")
def records(small: tuple[Path, dict[str, bytes]]) -> dict[str, list[dict]]:
    _, files = small
    return {path: records_of(path, data) for path, data in files.items()
            if path.endswith(".gz") and "CloudTrail-Digest" not in path}


class TestReproducibility:
    def test_same_seed__byte_identical(self, small, tmp_path):
        generate(tmp_path)
        assert files_of(tmp_path) == small[1]

    def test_other_seed__different_data(self, small, tmp_path):
        generate(tmp_path, "--seed", "7")
        assert files_of(tmp_path) != small[1]

    def test_gzip_headers_carry_no_time_or_name(self, small):
        for path, data in small[1].items():
            if path.endswith(".gz"):
                assert data[:4] == b"\x1f\x8b\x08\x00", path
                assert data[4:8] == b"\x00\x00\x00\x00", path


class TestCloudTrailLayout:
    def test_object_keys_follow_the_s3_delivery_layout(self, small):
        keys = [p for p in small[1] if p.startswith("aws/") and "CloudTrail-Digest" not in p]
        assert len(keys) > 100
        for key in keys:
            m = CT_KEY.match(key)
            assert m, key
            assert m.group(6) == m.group(3) + m.group(4) + m.group(5), key
            assert int(m.group(7)[2:]) % 5 == 0, key
        accounts = {CT_KEY.match(k).group(1) for k in keys}
        assert len(accounts) >= 3

    def test_records_are_unordered_and_late_but_never_early(self, records):
        unordered = late = 0
        for path, recs in records.items():
            if not path.startswith("aws/"):
                continue
            stamp = datetime.strptime(CT_KEY.match(path).group(6) + CT_KEY.match(path).group(7),
                                      "%Y%m%d%H%M").replace(tzinfo=timezone.utc)
            times = [datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00"))
                     for r in recs]
            assert max(times) <= stamp, path
            assert min(times) >= stamp - timedelta(minutes=20), path
            unordered += times != sorted(times)
            late += min(times) < stamp - timedelta(minutes=10)
        assert unordered > 50
        assert late > 0

    def test_records_are_complete(self, records):
        required = {"eventVersion", "userIdentity", "eventTime", "eventSource", "eventName",
                    "awsRegion", "sourceIPAddress", "userAgent", "requestParameters",
                    "responseElements", "eventID", "readOnly", "eventType",
                    "recipientAccountId", "eventCategory"}
        seen_types, seen = set(), set()
        for path, recs in records.items():
            if path.startswith("aws/"):
                for rec in recs:
                    assert required <= rec.keys(), rec["eventID"]
                    assert rec["eventVersion"] >= "1.08"
                    seen_types.add(rec["userIdentity"].get("type"))
                    ui = rec["userIdentity"]
                    if "ec2RoleDelivery" in ui.get("sessionContext", {}):
                        seen.add("ec2RoleDelivery")
                    if rec.get("errorCode"):
                        seen.add("error")
                    if rec["sourceIPAddress"].endswith(".amazonaws.com"):
                        seen.add("service-host")
                    if rec["sourceIPAddress"] == "AWS Internal":
                        seen.add("aws-internal")
        assert {"AssumedRole", "IAMUser", "AWSService", "WebIdentityUser"} <= seen_types
        assert seen == {"ec2RoleDelivery", "error", "service-host", "aws-internal"}

    def test_digests_are_present_and_name_real_objects(self, small):
        files = small[1]
        digests = [p for p in files if "CloudTrail-Digest" in p]
        assert digests
        for path in digests:
            assert DIGEST_KEY.match(path), path
            body = json.loads(gzip.decompress(files[path]))
            assert body["logFiles"]
            for entry in body["logFiles"]:
                data = files["aws/" + entry["s3Object"]]
                assert hashlib.sha256(data).hexdigest() == entry["hashValue"]


class TestOtherSources:
    def test_k8s_logs_both_stages_for_part_of_the_requests(self, records):
        stages: dict[str, set[str]] = {}
        for path, recs in records.items():
            if path.startswith("k8s/"):
                for rec in recs:
                    assert rec["apiVersion"] == "audit.k8s.io/v1"
                    stages.setdefault(rec["auditID"], set()).add(rec["stage"])
        pairs = sum({"RequestReceived", "ResponseComplete"} <= s for s in stages.values())
        assert 0 < pairs < len(stages)

    def test_gcp_has_impersonation_and_key_authentication(self, records):
        auth = [r["protoPayload"]["authenticationInfo"] for p, recs in records.items()
                if p.startswith("gcp/") for r in recs]
        assert any("serviceAccountDelegationInfo" in a for a in auth)
        assert any("serviceAccountKeyName" in a for a in auth)


class TestLabels:
    def test_labels_reference_identities_and_events_of_the_output(self, small, records):
        labels = json.loads(small[1]["labels.json"])
        assert labels["version"] == 1
        assert len(labels["scenarios"]) >= 8
        owner = {}
        for path, recs in records.items():
            for rec in recs:
                eid, key = principal(path, rec)
                owner.setdefault(eid, key)
        for sc in labels["scenarios"]:
            assert sc["event_ids"] and sc["identities"] and sc["techniques"], sc["id"]
            assert sc["start"] <= sc["end"]
            for eid in sc["event_ids"]:
                assert owner[eid] in sc["identities"], (sc["id"], eid)

    def test_attacks_come_after_the_baseline(self, small):
        labels = json.loads(small[1]["labels.json"])
        first_day = datetime(2026, 11, 2, tzinfo=timezone.utc)
        for sc in labels["scenarios"]:
            start = datetime.fromisoformat(sc["start"].replace("Z", "+00:00"))
            assert start >= first_day + timedelta(days=7), sc["id"]
        ids = [sc["id"] for sc in labels["scenarios"]]
        assert len(ids) == len(set(ids))


@pytest.fixture(scope="module")
def committed() -> Path:
    root = REPO / "replay_data"
    if not (root / "aws").is_dir():
        pytest.skip("replay_data has not been generated")
    return root


class TestCommittedDataSet:
    def test_size_budget(self, committed):
        total = sum(p.stat().st_size for sub in ("aws", "k8s", "gcp")
                    for p in (committed / sub).rglob("*.gz"))
        assert total <= 25_000_000

    def test_labels_cover_the_attack_window(self, committed):
        labels = json.loads((committed / "labels.json").read_text())
        first_day = datetime(2026, 11, 2, tzinfo=timezone.utc)
        assert len(labels["scenarios"]) >= 8
        for sc in labels["scenarios"]:
            start = datetime.fromisoformat(sc["start"].replace("Z", "+00:00"))
            assert first_day + timedelta(days=21) <= start < first_day + timedelta(days=30)

    def test_population(self, committed):
        machines, people = set(), set()
        for path in sorted(committed.rglob("*.gz")):
            rel = path.relative_to(committed).as_posix()
            if "CloudTrail-Digest" in rel:
                continue
            for rec in records_of(rel, path.read_bytes()):
                _, key = principal(rel, rec)
                person = _person(rel, rec, key)
                if person:
                    people.add(person)
                elif key:
                    machines.add(key)
        assert len(machines) >= 300
        assert len(people) >= 20


def _person(path: str, rec: dict, key: str) -> str | None:
    """The e-mail of a human caller (SSO session name, OIDC username, Google user)."""
    if "/aws-reserved/sso.amazonaws.com/" in key:
        return rec["userIdentity"]["arn"].rsplit("/", 1)[1]
    if key.startswith("oidc:"):
        return key[len("oidc:"):]
    if path.startswith("gcp/") and "@" in key and not key.endswith("gserviceaccount.com"):
        return key
    return None
