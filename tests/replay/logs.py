"""Builders of small, realistic audit logs for the replay tests.

CloudTrail is written in the S3 delivery layout (``AWSLogs/<account>/CloudTrail/<region>/
YYYY/MM/DD/<account>_CloudTrail_<region>_<stamp>_<id>.json.gz``, one ``{"Records": [...]}``
per five minutes, records unordered within a file); Kubernetes audit as JSON lines. Everything is
derived from a seed, so two builds with the same arguments give identical files.
"""

from __future__ import annotations

import gzip
import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ACCOUNT = "111122223333"
REGION = "eu-west-1"
T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z
HOUR = 3600.0
DAY = 86400.0
ROLES = ("app-reader", "nightly-export", "poller", "ci-deploy")
SERVICE_ACCOUNTS = ("ingest", "controller")
VICTIM = "app-reader"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def role_arn(role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{role}"


def sa_name(name: str) -> str:
    return f"system:serviceaccount:prod:{name}"


def ct_record(rng: random.Random, ts: float, role: str, action: str, *, ip: str,
              agent: str = "Boto3/1.34.0 Python/3.11.6 Linux/5.10") -> dict[str, Any]:
    service, _, name = action.partition(":")
    session = f"{role}-{int(ts // HOUR)}"
    return {
        "eventVersion": "1.08",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROAEXAMPLE{role.upper().replace('-', '')}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
            "accountId": ACCOUNT,
            "accessKeyId": "ASIA" + "".join(rng.choice("ABCDEFGHIJKLMNOP") for _ in range(16)),
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": f"AROAEXAMPLE{role.upper()}",
                                  "arn": role_arn(role), "accountId": ACCOUNT,
                                  "userName": role},
                "attributes": {"creationDate": iso(ts - 60), "mfaAuthenticated": "false"},
            },
        },
        "eventTime": iso(ts),
        "eventSource": f"{service}.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": {"bucketName": f"{role}-data"} if service == "s3" else {},
        "responseElements": None,
        "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
        "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
        "readOnly": name.startswith(("Get", "List", "Describe")),
        "eventType": "AwsApiCall",
        "managementEvent": service != "s3",
        "recipientAccountId": ACCOUNT,
    }


def k8s_record(rng: random.Random, ts: float, sa: str, verb: str, resource: str,
               ip: str = "10.20.0.7") -> dict[str, Any]:
    return {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": str(uuid.UUID(int=rng.getrandbits(128))),
        "stage": "ResponseComplete",
        "requestURI": f"/api/v1/namespaces/prod/{resource}",
        "verb": verb,
        "user": {"username": sa_name(sa), "uid": f"uid-{sa}",
                 "groups": ["system:serviceaccounts", "system:serviceaccounts:prod"]},
        "sourceIPs": [ip],
        "userAgent": f"{sa}/v1.2.0 (linux/amd64) kubernetes/abc123",
        "objectRef": {"resource": resource, "namespace": "prod", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 200},
        "requestReceivedTimestamp": iso(ts),
        "stageTimestamp": iso(ts),
    }


def baseline(rng: random.Random, first_day: int, days: int) -> tuple[list, list]:
    """Routine hourly activity of every role and service account for ``days`` days."""
    trail, k8s = [], []
    for hour in range(first_day * 24, (first_day + days) * 24):
        for i, role in enumerate(ROLES):
            for _ in range(2):
                ts = T0 + hour * HOUR + rng.uniform(0, HOUR - 1)
                action = "s3:GetObject" if i % 2 == 0 else "s3:ListBucket"
                trail.append(ct_record(rng, ts, role, action, ip=f"10.0.{i}.{rng.randint(2, 9)}"))
        for sa in SERVICE_ACCOUNTS:
            ts = T0 + hour * HOUR + rng.uniform(0, HOUR - 1)
            k8s.append(k8s_record(rng, ts, sa, "list", "pods"))
    return trail, k8s


ATTACK_ACTIONS = ("iam:ListUsers", "iam:ListRoles", "iam:CreateUser", "iam:CreateAccessKey",
                  "iam:AttachUserPolicy", "secretsmanager:ListSecrets",
                  "secretsmanager:GetSecretValue", "cloudtrail:StopLogging")


def attack(rng: random.Random, start: float) -> list[dict[str, Any]]:
    """The victim role's credentials used from outside: enumeration, persistence, tampering."""
    records = []
    for i in range(40):
        action = ATTACK_ACTIONS[i % len(ATTACK_ACTIONS)]
        records.append(ct_record(rng, start + i * 20, VICTIM, action, ip="203.0.113.50",
                                 agent="python-requests/2.31.0"))
    return records


FILE_SECONDS = 300.0  # CloudTrail delivers a file about every five minutes


def write_trail(root: Path, records: list[dict[str, Any]], rng: random.Random) -> int:
    """S3 layout, one gzip file per five minutes, records shuffled inside each file."""
    by_slot: dict[int, list] = defaultdict(list)
    for record in records:
        stamp = datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00")).timestamp()
        by_slot[int(stamp // FILE_SECONDS)].append(record)
    for slot, items in sorted(by_slot.items()):
        rng.shuffle(items)
        when = datetime.fromtimestamp((slot + 1) * FILE_SECONDS, UTC)
        folder = root / "AWSLogs" / ACCOUNT / "CloudTrail" / REGION / when.strftime("%Y/%m/%d")
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{ACCOUNT}_CloudTrail_{REGION}_{when.strftime('%Y%m%dT%H%MZ')}_{slot:08x}.json.gz"
        (folder / name).write_bytes(gzip.compress(orjson.dumps({"Records": items}), mtime=0))
    return len(by_slot)


def write_k8s(path: Path, records: list[dict[str, Any]]) -> None:
    """JSON lines in time order, as an API server's audit log backend writes them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    records = sorted(records, key=lambda r: r["stageTimestamp"])
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def build_logs(root: Path, *, first_day: int = 0, days: int = 10, attack_at: float | None = None,
               seed: int = 5) -> dict[str, int]:
    """Write a log directory; return the number of records per source."""
    rng = random.Random(seed * 1000 + first_day)
    trail, k8s = baseline(rng, first_day, days)
    if attack_at is not None:
        trail += attack(rng, attack_at)
    write_trail(root / "cloudtrail", trail, rng)
    write_k8s(root / "k8s" / "audit.log", k8s)
    return {"aws.cloudtrail": len(trail), "k8s.audit": len(k8s)}


def labels_for(attack_at: float) -> dict[str, Any]:
    return {
        "version": 1,
        "scenarios": [{
            "id": "outside-use", "title": "instance credentials used from outside",
            "description": "enumeration, a new user and key, logging stopped",
            "identities": [role_arn(VICTIM)],
            "start": iso(attack_at), "end": iso(attack_at + 40 * 20),
            "techniques": ["T1078.004", "T1098.001", "T1562.008"],
        }],
    }


def run_replay(paths: list[Path], out: Path, *extra: str) -> tuple[int, dict]:
    """Run ``nhi-detector replay`` in-process: (exit code, summary JSON or {})."""
    from detector.cli import main

    summary = out / "summary.json"
    code = main(["replay", *map(str, paths), "--alerts", str(out / "alerts.jsonl"),
                 "--summary-json", str(summary), "--no-progress", *extra])
    return code, (orjson.loads(summary.read_bytes()) if summary.exists() else {})
