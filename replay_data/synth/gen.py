"""The generation context: calendar, shared network pools, identity registry, call sink,
and the AWS session machinery (rotating credentials and the STS records that mint them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from . import world
from .core import DAY, HOUR, Call, Identity, Rng, Session, aws_human_date, identity_rng, \
    weekday

DELAYS = ((0.80, 60.0, 300.0), (0.18, 300.0, 600.0), (0.02, 600.0, 870.0))


class Gen:
    """Everything the archetype simulations share while the estate is being generated."""

    def __init__(self, seed: int, start: float, days: int, scale: float) -> None:
        self.seed, self.start, self.days, self.scale = seed, start, days, scale
        self.end = start + days * DAY
        self.calls: list[Call] = []
        self.identities: dict[str, Identity] = {}
        rng = Rng(f"{seed}|world")
        self.nat = {"prod": [rng.host(world.aws_public24(rng)) for _ in range(3)],
                    "prod-eu": [rng.host(world.aws_public24(rng, "eu-west-1")) for _ in
                                range(2)],
                    "staging": [rng.host(world.aws_public24(rng)) for _ in range(2)],
                    "shared": [rng.host(world.aws_public24(rng)) for _ in range(2)]}
        self.vpce = {env: {svc: f"vpce-0{rng.hex(16)}" for svc in
                           ("s3", "kms", "ssm", "secretsmanager", "logs", "sts", "ecr")}
                     for env in ("prod", "staging", "shared")}
        self.gh_pool = world.github_runner_pool(rng, 40)
        self.office = world.OFFICE + world.VPN
        self.oidc_eks = {env: f"oidc.eks.us-east-1.amazonaws.com/id/{rng.hex(32).upper()}"
                         for env in ("prod", "staging")}

    # --- identities and calls ---------------------------------------------------------

    def count(self, base: int) -> int:
        return max(1, round(base * self.scale))

    def pick(self, items: list[Any]) -> list[Any]:
        """``items`` scaled: a prefix when scale < 1, repeated copies when scale > 1 (the
        copies' names get a ``-2``, ``-3`` … suffix through ``suffixed``)."""
        n = self.count(len(items))
        return [suffixed(items[i % len(items)], i // len(items)) for i in range(n)]

    def register(self, ident: Identity) -> Rng:
        if ident.key in self.identities:
            raise ValueError(f"duplicate identity {ident.key}")
        self.identities[ident.key] = ident
        return identity_rng(self.seed, ident.key)

    def identity(self, key: str) -> Identity:
        return self.identities[key]

    def emit(self, ident: Identity, rng: Rng, t: float, action: str, **kw: Any) -> Call | None:
        """Append one call; calls outside the simulated period are dropped."""
        if not self.start <= t < self.end:
            return None
        if "extra" in kw:
            kw["extra"] = dict(kw["extra"])
        call = Call(t=t, eid=kw.pop("eid", None) or rng.uuid(), ident=ident, action=action,
                    **kw)
        self.calls.append(call)
        return call

    def day_range(self, ident: Identity) -> range:
        return range(max(0, ident.first_day), min(self.days, ident.last_day + 1))

    def day_t(self, day: int) -> float:
        return self.start + day * DAY

    def is_weekend(self, t: float) -> bool:
        return weekday(self.start, t) >= 5


def suffixed(item: Any, copy: int) -> Any:
    """The ``copy``-th clone of a name (or of a tuple whose name is a string element)."""
    if copy == 0:
        return item
    if isinstance(item, str):
        return f"{item}-{copy + 1}"
    if isinstance(item, tuple):
        out = list(item)
        for i, value in enumerate(out):
            if isinstance(value, str) and "-" in value and ":" not in value:
                out[i] = f"{value}-{copy + 1}"
                break
        return tuple(out)
    return item


def aws_role(g: Gen, env: str, name: str, archetype: str, kind: str = "machine",
             path: str = "/", **res: Any) -> tuple[Identity, Rng]:
    acct = world.ACCOUNTS[env]
    ident = Identity(key=f"arn:aws:iam::{acct}:role{path}{name}", source="aws",
                     archetype=archetype, kind=kind, tenant=acct, name=name,
                     region=res.pop("region", world.HOME_REGION))
    ident.first_day = res.pop("first_day", 0)
    ident.last_day = res.pop("last_day", 10**6)
    ident.res.update(res, ptype="AssumedRole", env=env)
    rng = g.register(ident)
    ident.principal_id = "AROA" + rng.b32(17)
    return ident, rng


def aws_user(g: Gen, env: str, name: str, archetype: str, **res: Any) -> tuple[Identity, Rng]:
    acct = world.ACCOUNTS[env]
    ident = Identity(key=f"arn:aws:iam::{acct}:user/{name}", source="aws",
                     archetype=archetype, kind="machine", tenant=acct, name=name,
                     region=res.pop("region", world.HOME_REGION))
    ident.first_day = res.pop("first_day", 0)
    ident.last_day = res.pop("last_day", 10**6)
    ident.res.update(res, ptype="IAMUser", env=env)
    rng = g.register(ident)
    ident.principal_id = "AIDA" + rng.b32(17)
    return ident, rng


# --- sessions -----------------------------------------------------------------------------

NameFn = Callable[[int, Rng, float], str]
MintFn = Callable[[Session, Rng], None]


@dataclass
class Sessions:
    """Credentials of one role over time: a new session every ``period`` seconds.

    Each session is derived from its own seeded stream, so it does not depend on the order
    in which calls ask for it. ``mint`` is called once per session to emit the STS record
    that created it (``AssumeRole`` by a service, by a caller, or with a web identity).
    """

    g: Gen
    ident: Identity
    period: float
    name_fn: NameFn
    mint: MintFn | None = None
    ec2_delivery: str | None = None
    web_provider: str | None = None
    mfa: bool = False
    phase: float = 0.0
    tag: str = ""
    cache: dict[int, Session] = field(default_factory=dict)

    def at(self, t: float) -> Session:
        idx = int((t - self.g.start - self.phase) // self.period)
        found = self.cache.get(idx)
        if found is not None:
            return found
        rng = Rng(f"{self.g.seed}|{self.ident.key}|session{self.tag}{idx}")
        created = self.g.start + self.phase + idx * self.period + rng.uniform(0, 30)
        created = min(created, t - 1)
        session = Session(name=self.name_fn(idx, rng, created), key_id="ASIA" + rng.b32(16),
                          created=created, mfa=self.mfa, ec2_delivery=self.ec2_delivery,
                          web_provider=self.web_provider)
        self.cache[idx] = session
        if self.mint is not None:
            self.mint(session, rng)
        return session


def fixed_key(rng: Rng, created: float) -> Session:
    """A long-term access key of an IAM user."""
    return Session(name=None, key_id="AKIA" + rng.b32(16), created=created)


def credentials(s: Session, hours: float = 1.0) -> dict[str, Any]:
    return {"accessKeyId": s.key_id, "expiration": aws_human_date(s.created + hours * HOUR)}


def service_assume_role(g: Gen, ident: Identity, service: str) -> MintFn:
    """Mint function: ``AssumeRole`` called by an AWS service (Lambda, EC2, ECS tasks)."""
    def mint(s: Session, rng: Rng) -> None:
        params: dict[str, Any] = {"roleArn": ident.key, "roleSessionName": s.name,
                                  "durationSeconds": 3600 if service != "ec2.amazonaws.com"
                                  else 21600}
        call = g.emit(ident, rng, s.created, "sts:AssumeRole", ip=service, ua=service,
                      region=ident.region, params=params,
                      response={"credentials": credentials(s, params["durationSeconds"] / 3600),
                                "assumedRoleUser": {
                                    "assumedRoleId": f"{ident.principal_id}:{s.name}",
                                    "arn": f"arn:aws:sts::{ident.tenant}:assumed-role/"
                                           f"{ident.name}/{s.name}"}})
        if call is not None:
            call.extra["ui"] = {"type": "AWSService", "invokedBy": service}
            call.extra["resources"] = [{"accountId": ident.tenant, "type": "AWS::IAM::Role",
                                        "ARN": ident.key}]
            call.extra["shared_event_id"] = rng.uuid()
    return mint


def web_identity_assume(g: Gen, ident: Identity, provider: str, subject: str, ip_fn:
                        Callable[[Rng, Session], str], ua: str,
                        audience: str = "sts.amazonaws.com") -> MintFn:
    """Mint function: ``AssumeRoleWithWebIdentity`` (GitHub Actions OIDC, EKS IRSA)."""
    provider_arn = f"arn:aws:iam::{ident.tenant}:oidc-provider/{provider}"

    def mint(s: Session, rng: Rng) -> None:
        s.web_provider = provider_arn
        call = g.emit(ident, rng, s.created, "sts:AssumeRoleWithWebIdentity", session=s,
                      ip=ip_fn(rng, s), ua=ua, region=ident.region,
                      params={"roleArn": ident.key, "roleSessionName": s.name,
                              "durationSeconds": 3600},
                      response={"credentials": credentials(s),
                                "subjectFromWebIdentityToken": subject,
                                "assumedRoleUser": {
                                    "assumedRoleId": f"{ident.principal_id}:{s.name}",
                                    "arn": f"arn:aws:sts::{ident.tenant}:assumed-role/"
                                           f"{ident.name}/{s.name}"},
                                "provider": provider_arn, "audience": audience})
        if call is not None:
            call.extra["ui"] = {"type": "WebIdentityUser",
                                "principalId": f"{provider_arn}:{audience}:{subject}",
                                "userName": subject, "identityProvider": provider_arn}
            call.extra["resources"] = [{"accountId": ident.tenant, "type": "AWS::IAM::Role",
                                        "ARN": ident.key}]
    return mint


def cross_account_assume(g: Gen, caller: Identity, caller_sessions: Sessions,
                         target: Identity, ua: str, ip_fn: Callable[[Rng, Session], str]
                         ) -> MintFn:
    """Mint function: ``AssumeRole`` by a role of another account, logged in both accounts
    (the target account sees the caller as type ``AWSAccount``)."""
    def mint(s: Session, rng: Rng) -> None:
        caller_s = caller_sessions.at(s.created)
        shared = rng.uuid()
        params = {"roleArn": target.key, "roleSessionName": s.name, "durationSeconds": 3600,
                  "externalId": "atlantis"}
        response = {"credentials": credentials(s), "assumedRoleUser": {
            "assumedRoleId": f"{target.principal_id}:{s.name}",
            "arn": f"arn:aws:sts::{target.tenant}:assumed-role/{target.name}/{s.name}"}}
        ip = ip_fn(rng, caller_s)
        mine = g.emit(caller, rng, s.created, "sts:AssumeRole", session=caller_s, ip=ip, ua=ua,
                      region=world.HOME_REGION, params=params, response=response)
        theirs = g.emit(target, rng, s.created, "sts:AssumeRole", session=caller_s, ip=ip,
                        ua=ua, region=world.HOME_REGION, params=params, response=response)
        for call in (mine, theirs):
            if call is not None:
                call.extra["shared_event_id"] = shared
                call.extra["resources"] = [{"accountId": target.tenant,
                                            "type": "AWS::IAM::Role", "ARN": target.key}]
        if theirs is not None:
            theirs.extra["ui"] = {"type": "AWSAccount",
                                  "principalId": f"{caller.principal_id}:{caller_s.name}",
                                  "accountId": caller.tenant}
            theirs.extra["recipient"] = target.tenant
    return mint


# --- timing -------------------------------------------------------------------------------

def business_weight(g: Gen, t: float, tz_offset: int = -5) -> float:
    """Relative activity of a team working 09-18 local time, Monday to Friday."""
    local = (t / HOUR + tz_offset) % 24
    if g.is_weekend(t + tz_offset * HOUR):
        return 0.03
    if 9 <= local < 18:
        return 1.0
    if 7 <= local < 9 or 18 <= local < 21:
        return 0.25
    return 0.02


def traffic_weight(g: Gen, t: float) -> float:
    """Customer traffic shape (US-centred): a trough at night, a plateau in the day."""
    local = (t / HOUR - 5) % 24
    base = 0.35 + 0.65 * max(0.0, min(1.0, (local - 6) / 4)) * max(0.0, min(1.0, (24 - local)
                                                                           / 3))
    return base * (0.75 if g.is_weekend(t) else 1.0)


def poisson_times(g: Gen, rng: Rng, day: int, per_hour: float,
                  weight: Callable[[Gen, float], float] | None = None) -> list[float]:
    """Event times over one day, hour by hour, with an optional diurnal weight."""
    out: list[float] = []
    t0 = g.day_t(day)
    for hour in range(24):
        h0 = t0 + hour * HOUR
        lam = per_hour * (weight(g, h0 + 1800) if weight else 1.0)
        out.extend(h0 + rng.uniform(0, HOUR) for _ in range(rng.poisson(lam)))
    out.sort()
    return out


def periodic_times(g: Gen, rng: Rng, day: int, period: float, phase: float,
                   jitter: float) -> list[float]:
    t0 = g.day_t(day)
    n = int(DAY // period)
    return [t0 + phase + k * period + rng.uniform(0, jitter) for k in range(n)]


def expand(rng: Rng, template: list[tuple[str, Any]]) -> list[str]:
    """``[("ec2:DescribeVolumes", 1), ("ec2:CreateSnapshot", (2, 6))]`` -> action list."""
    out: list[str] = []
    for action, count in template:
        n = rng.randint(*count) if isinstance(count, tuple) else count
        out.extend([action] * n)
    return out


ErrorFn = Callable[[str, Rng], "tuple[str, str] | None"]


def run_calls(g: Gen, ident: Identity, rng: Rng, t: float, actions: list[str],
              gap: tuple[float, float] = (0.5, 8.0), errors: ErrorFn | None = None,
              **kw: Any) -> float:
    """Emit ``actions`` one after another from ``t``; returns the time after the last."""
    for action in actions:
        error = errors(action, rng) if errors else None
        g.emit(ident, rng, t, action, error=error, **dict(kw))
        t += rng.uniform(*gap)
    return t


def rare_errors(p_throttle: float = 0.004, p_denied: float = 0.0,
                denied_actions: tuple[str, ...] = ()) -> ErrorFn:
    """Background failures: throttling now and then, and denials on a few known actions."""
    def pick(action: str, rng: Rng) -> tuple[str, str] | None:
        if denied_actions and action in denied_actions and rng.random() < p_denied:
            return ("AccessDenied", "")
        return throttle(rng, p_throttle)
    return pick


def throttle(rng: Rng, p: float) -> tuple[str, str] | None:
    if rng.random() < p:
        return ("ThrottlingException", "Rate exceeded")
    return None

