"""Event factories shared by the model tests (synthetic, deterministic)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import models
from detector.event import Event
from models.profile import IdentityProfile
from models.settings import ModelSettings

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC, a Thursday
ROLE = "arn:aws:iam::123456789012:role/app-worker-role"


def make_event(ts: float, action: str = "s3:GetObject", **fields) -> Event:
    """One plausible CloudTrail-like event; any field can be overridden."""
    values = {
        "event_id": f"e-{ts:.3f}-{action}",
        "time": datetime.fromtimestamp(ts, UTC),
        "ts": ts,
        "source": "aws.cloudtrail",
        "identity": ROLE,
        "identity_kind": "workload",
        "tenant": "123456789012",
        "action": action,
        "resource": "arn:aws:s3:::data/object",
        "region": "us-east-1",
        "network": "private",
        "network_prefix": "10.0.1.0/24",
        "agent_family": "boto3",
        "credential_id": "ASIAEXAMPLE",
        "credential_type": "temporary",
    }
    values.update(fields)
    return Event(**values)


def stable_stream(start: float, days: float, every: float = 300.0, **fields) -> list[Event]:
    """A steady poller: two actions alternating every ``every`` seconds, all day long."""
    out = []
    n = int(days * 86400 / every)
    for i in range(n):
        action = "s3:GetObject" if i % 2 else "s3:PutObject"
        out.append(make_event(start + i * every, action, **fields))
    return out


def learned_profile(settings: ModelSettings | None = None, days: float = 4.0,
                    every: float = 300.0, peers=None) -> tuple[IdentityProfile, float]:
    """A profile past its learning period on the stable stream; returns it and the next ts."""
    settings = settings or ModelSettings()
    profile = IdentityProfile(ROLE, "workload", settings)
    events = stable_stream(T0, days, every)
    for event in events:
        profile.observe(event, peers)
    return profile, events[-1].ts + every


def detectors(signals) -> list[str]:
    return sorted(s.detector for s in signals)


patches_model_classes = pytest.mark.skipif(
    models.COMPILED,
    reason="patches a method of a model class, which the compiled build makes immutable; "
    "the pure Python run (NHI_PURE_PYTHON=1) runs it",
)
"""For the few tests that swap a model method for a counting or disabled one."""
