"""Seeded randomness, time helpers and the small records every other module passes around.

Every identity draws from its own ``Rng`` seeded with ``"<seed>|<identity key>"`` (Python
hashes string seeds with SHA-512, independent of ``PYTHONHASHSEED``), so adding or changing
one identity never perturbs the activity of another, and a run is byte-for-byte repeatable.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

DAY = 86400.0
HOUR = 3600.0
MINUTE = 60.0
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
B36 = "abcdefghijklmnopqrstuvwxyz0123456789"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Rng(random.Random):
    """``random.Random`` with the identifier shapes audit logs use."""

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.getrandbits(128), version=4))

    def hex(self, n: int) -> str:
        return f"{self.getrandbits(4 * n):0{n}x}"

    def b32(self, n: int) -> str:
        return "".join(self.choice(B32) for _ in range(n))

    def b36(self, n: int) -> str:
        return "".join(self.choice(B36) for _ in range(n))

    def digits(self, n: int) -> str:
        return str(self.randint(1, 9)) + "".join(str(self.randint(0, 9)) for _ in range(n - 1))

    def poisson(self, lam: float) -> int:
        """Poisson draw (Knuth for small means, rounded normal for large ones)."""
        if lam <= 0:
            return 0
        if lam > 40:
            return max(0, round(self.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= self.random()
            if p <= limit:
                return k
            k += 1

    def weighted(self, items: list[tuple[Any, float]]) -> Any:
        values = [item for item, _ in items]
        weights = [weight for _, weight in items]
        return self.choices(values, weights=weights, k=1)[0]

    def host(self, prefix: str) -> str:
        """An address inside a /24 given as ``"a.b.c"`` (full addresses pass through)."""
        if prefix.count(".") == 3 or ":" in prefix or not prefix[:1].isdigit():
            return prefix
        return f"{prefix}.{self.randint(4, 250)}"


def identity_rng(seed: int, key: str) -> Rng:
    return Rng(f"{seed}|{key}")


def iso_s(ts: float) -> str:
    """CloudTrail style: whole seconds, ``Z``."""
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_us(ts: float) -> str:
    """Kubernetes style: microseconds, ``Z``."""
    return datetime.fromtimestamp(round(ts, 6), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_ns(ts: float, extra_ns: int) -> str:
    """GCP style: nanoseconds, ``Z`` (the three last digits come from ``extra_ns``)."""
    return iso_us(ts)[:-1] + f"{extra_ns % 1000:03d}Z"


def aws_human_date(ts: float) -> str:
    """The non-ISO date CloudTrail prints in credentials (``Nov 18, 2026, 1:21:51 AM``)."""
    d = datetime.fromtimestamp(int(ts), timezone.utc)
    hour = d.hour % 12 or 12
    half = "AM" if d.hour < 12 else "PM"
    return f"{MONTHS[d.month - 1]} {d.day}, {d.year}, {hour}:{d.minute:02d}:{d.second:02d} {half}"


@dataclass(slots=True)
class Session:
    """A credential in use: an assumed-role session, a long-term key, a token."""

    name: str | None
    key_id: str | None
    created: float
    mfa: bool = False
    ec2_delivery: str | None = None
    web_provider: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Identity:
    """One principal of the simulated estate and everything needed to render its records."""

    key: str
    source: str  # aws | k8s | gcp
    archetype: str
    kind: str  # machine | human
    tenant: str
    name: str
    region: str = ""
    principal_id: str = ""
    nets: list[str] = field(default_factory=list)
    uas: list[str] = field(default_factory=list)
    res: dict[str, Any] = field(default_factory=dict)
    first_day: int = 0
    last_day: int = 10**6
    scenario: str | None = None


@dataclass(slots=True)
class Call:
    """One audit record to be rendered: who, what, when, from where, and how it ended."""

    t: float
    eid: str
    ident: Identity
    action: str
    session: Session | None = None
    ip: str = ""
    ua: str = ""
    region: str = ""
    params: Any = None
    response: Any = None
    error: tuple[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    scenario: str | None = None
    delay: float = 0.0



def weekday(start: float, t: float) -> int:
    """Monday is 0."""
    return datetime.fromtimestamp(t, timezone.utc).weekday()
