"""A small labelled CloudTrail scenario for the streaming tests, made from a seed; and
``k8s_stage``, one Kubernetes audit stage record.

Three workload roles call the same few read APIs every hour from their own private
address with boto3 for ``days`` days (well past the learning period of 50 events and 3
days). Then the ``VICTIM`` role's credentials are used from a public address with the AWS
CLI to enumerate IAM, create a user and an access key and stop CloudTrail logging: the
labelled attack. Records are in event-time order, one dict per CloudTrail record.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "444455556666"
REGION = "us-east-1"
T0 = 1_717_200_000.0  # 2024-06-01T00:00:00Z
HOUR = 3600.0
ROLES = {"billing-export": "10.20.1.11", "app-reader": "10.20.1.12", "queue-poller": "10.20.1.13"}
ROUTINE = ("s3:GetObject", "sts:GetCallerIdentity", "sqs:ReceiveMessage", "s3:ListBucket")
VICTIM = "app-reader"
ATTACK_IP = "198.51.100.77"
ATTACK = ("iam:ListUsers", "iam:ListRoles", "iam:CreateUser", "iam:CreateAccessKey",
          "iam:AttachUserPolicy", "cloudtrail:StopLogging", "s3:ListAllMyBuckets")


@dataclass
class Scenario:
    records: list[dict[str, Any]]
    attack_ids: list[str]
    attack_start: float
    attack_end: float

    @property
    def event_ids(self) -> list[str]:
        return [r["eventID"] for r in self.records]

    def records_of(self, role: str) -> list[dict[str, Any]]:
        arn = role_arn(role)
        return [r for r in self.records
                if r["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == arn]


def role_arn(role: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{role}"


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(rng: random.Random, ts: float, role: str, action: str, ip: str, agent: str,
           n: int) -> dict[str, Any]:
    service, _, name = action.partition(":")
    session = f"{role}-{int(ts // HOUR) % 1000}"
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "principalId": f"AROA{role.upper().replace('-', '')}:{session}",
            "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
            "accountId": ACCOUNT,
            "accessKeyId": f"ASIA{n:016d}",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": f"AROA{role.upper()}",
                                  "arn": role_arn(role), "accountId": ACCOUNT,
                                  "userName": role},
                "attributes": {"creationDate": iso(ts - 300), "mfaAuthenticated": "false"},
            },
        },
        "eventTime": iso(ts),
        "eventSource": f"{service}.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": ip,
        "userAgent": agent,
        "requestParameters": None,
        "responseElements": None,
        "requestID": f"req-{n:08d}",
        "eventID": f"evt-{n:06d}-{rng.randrange(16**6):06x}",
        "readOnly": not name.startswith(("Create", "Attach", "Stop")),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }


def build(days: int = 5, per_hour: int = 2, seed: int = 7) -> Scenario:
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    boto = "Boto3/1.34.100 md/Botocore#1.34.100 Python/3.11.9 Linux/6.1"
    for hour in range(days * 24):
        for role, ip in ROLES.items():
            for _ in range(per_hour):
                ts = T0 + hour * HOUR + rng.uniform(0, HOUR - 1)
                action = rng.choice(ROUTINE)
                records.append(record(rng, ts, role, action, ip, boto, len(records)))
    attack_start = T0 + days * 24 * HOUR + 2 * HOUR
    attack_ids = []
    cli = "aws-cli/2.15.0 Python/3.11.6 Darwin/23.1.0 exe/x86_64 command/iam"
    for i, action in enumerate(ATTACK):
        item = record(rng, attack_start + 20 * i, VICTIM, action, ATTACK_IP, cli, len(records))
        records.append(item)
        attack_ids.append(item["eventID"])
    records.sort(key=lambda r: r["eventTime"])
    return Scenario(records, attack_ids, attack_start, attack_start + 20 * len(ATTACK))


def k8s_stage(audit_id: str, stage: str, received: str = "2024-03-04T10:00:00Z",
              user: str = "system:serviceaccount:ci:deployer") -> dict[str, Any]:
    """One stage of one Kubernetes API request (``ResponseComplete`` answers 201)."""
    record: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": audit_id, "stage": stage, "verb": "create",
        "requestURI": "/api/v1/namespaces/ci/secrets", "user": {"username": user},
        "sourceIPs": ["10.20.3.4"], "userAgent": "kubectl/v1.29.0 (linux/amd64)",
        "objectRef": {"resource": "secrets", "namespace": "ci", "name": audit_id},
        "requestReceivedTimestamp": received, "stageTimestamp": received,
    }
    if stage == "ResponseComplete":
        record["responseStatus"] = {"code": 201}
    return record
