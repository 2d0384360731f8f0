"""Sweeps: one source trying many identities' credentials within minutes.

Every other detector judges one identity against its own history, so an attack spread
thin over many identities is invisible to them: a dump of leaked access keys validated
from one address (one ``sts:GetCallerIdentity`` per key), a password or client-secret
spray against many Entra service principals, one address refused as identity after
identity, a stolen set of Kubernetes tokens tried by one client. Each identity shows one
or two odd calls; the source shows dozens of identities. This module keeps, per source,
which identities it acted as within a sliding window and raises one alert per source.

Source: the caller address, or for the log sources listed in ``user_agent_sources`` (by
default Kubernetes, where one node address carries every pod and controller on it) the
address and the user agent. Records without an address (calls made by a cloud service on
an identity's behalf: ``sourceIPAddress`` ``ec2.amazonaws.com``) have no source.

An *attempt* is what a sweep is made of:

- ``refused``: a request refused for lack of permission (``AccessDenied``, Kubernetes
  403, GCP ``PERMISSION_DENIED``, Azure ``AuthorizationFailed``);
- ``bad_credential``: a request refused because its credential is invalid, revoked or
  expired (``InvalidClientTokenId``, ``SignatureDoesNotMatch``, Kubernetes 401, GCP
  ``UNAUTHENTICATED``) and every failed sign-in (Entra, console), except the interrupts
  that only ask a signed-in user for one more step;
- ``key_check``: a long-term key used from a public address for a call that only says
  whose key it is (``sts:GetCallerIdentity``, ``iam:GetUser``, ...). Other successes are
  never attempts: many identities succeeding from one egress address (NAT gateways, CI
  runners, a Terraform runner assuming many roles) is how shared infrastructure looks.

A source is tracked from its first attempt (at most ``max_sources``, least recently
active dropped first); from then on each of its calls is counted for its identity, so the
share of attempts among its calls is known. An identity stays in the source's window
while it was active within ``window_seconds``. The source is alerted when, within the
window, at least ``min_identities`` distinct identities made attempts *and* attempts are
at least ``min_share`` of the source's calls counted since it was tracked: a shared
egress whose many identities mostly succeed, with a refusal now and then, does not fire.
Not counted at all: identities of kind ``cloud_service`` (Kubernetes controllers and
nodes, AWS service roles), addresses in ``known_sources`` (a scanner of your own, a
corporate egress), private and internal addresses for ``key_check``, and Kubernetes
``watch`` requests (an informer retries a refused watch for ever).

The alert is keyed by the source, not by an identity: one spray is one incident for an
analyst, deduplicated by ``alert_id`` like every other alert, and it names the identities
(``context.sweep.identities``: the first ``LISTED`` by attempts, with calls, attempts,
error codes, first and last time) so that each one's credential can be rotated. Its
``identity.key`` is ``source:<address>`` (``source:<address> ua:<agent>`` when keyed by
user agent), kind ``external``. It is re-sent (same id, ``revision + 1``) when the count
of identities doubles since the last revision, when the severity rises, or when an
identity of the sweep succeeds from the source after failing (a guessed secret: high).

State is in memory only and not saved with ``--save-state``: a sweep is minutes long, so
a restart forgets at most one window, and the next window's attempts are their own
evidence again. In the streaming worker each worker sees only the identities of its
partitions, so a sweep is counted per partition (docs/alerts.md, Sweeps).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from detector.alerts import NO_OWNER, Alert, iso, make_alert_id
from detector.errors import ConfigError
from detector.event import Event
from detector.scoring import SEVERITY_RANK, ScoringSettings, alert_score, check_number
from detector.suppression import EXPIRED_RULE
from detector.techniques import refused

logger = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 900.0  # key validation and sprays run in minutes; slow sprays span
# hours and are left to the per-identity failure models
DEFAULT_MIN_IDENTITIES = 5  # a developer with a few profiles on one laptop stays below
DEFAULT_MIN_SHARE = 0.5  # attempts among the source's calls: a sweep is mostly attempts
DEFAULT_MAX_SOURCES = 5_000  # tracked sources; each holds at most MAX_IDENTITIES entries
DEFAULT_USER_AGENT_SOURCES = ("k8s.audit",)
MAX_IDENTITIES = 64  # identities tracked per source; more are counted, not named
MAX_UNTRACKED = 1_024  # identities counted (not named) per source beyond MAX_IDENTITIES
LISTED = 20  # identities named on an alert
MAX_EVENT_IDS = 20
MAX_ERRORS = 3  # error codes kept per identity
AGENT_CHARS = 128  # of the user agent in a source key
PRUNE_SECONDS = 60.0  # event time between passes that drop quiet sources
DETECTOR = "sweep"

# Attempt kinds, the detector each leads to, and its ATT&CK ids.
REFUSED, BAD_CREDENTIAL, KEY_CHECK = "refused", "bad_credential", "key_check"
DETECTORS = {
    REFUSED: "sweep.refused",
    BAD_CREDENTIAL: "sweep.bad_credential",
    KEY_CHECK: "sweep.key_check",
}
ATTACK = {
    REFUSED: ("T1078.004", "T1552"),
    BAD_CREDENTIAL: ("T1110.003", "T1552"),
    KEY_CHECK: ("T1552", "T1078.004"),
}
SEVERITY = {REFUSED: "medium", BAD_CREDENTIAL: "medium", KEY_CHECK: "high"}
NOUNS = {REFUSED: "refused", BAD_CREDENTIAL: "with a bad credential",
         KEY_CHECK: "key checks"}
# Calls that only tell a key's holder whose key it is: what key validators run.
KEY_CHECK_ACTIONS = frozenset({
    "sts:GetCallerIdentity", "iam:GetUser", "iam:ListAccessKeys", "iam:GetAccountSummary",
    "iam:ListAttachedUserPolicies", "iam:ListUserPolicies", "s3:ListBuckets",
    "sts:GetAccessKeyInfo", "sts:GetSessionToken",
})
# Refusals of the credential itself (lower-cased), beyond failed sign-ins.
_BAD_CREDENTIAL_CODES = frozenset({
    "invalidclienttokenid", "signaturedoesnotmatch", "authfailure", "incompletesignature",
    "unrecognizedclientexception", "invalidaccesskeyid", "expiredtoken",
    "expiredtokenexception", "failed authentication", "401", "unauthorized", "16",
    "unauthenticated",
})
# Entra sign-in errors that interrupt a user who already gave the right password or
# secret (stay signed in, register a device, reset prompts): no guess was refused.
_SIGN_IN_INTERRUPTS = frozenset({"50140", "50097", "50125", "50129", "81010", "81016",
                                 "50199", "16000", "16001"})
_SIGN_IN_ACTIONS = frozenset({"entra:SignIn", "signin:ConsoleLogin"})
_INSIDE = frozenset({"private", "internal", "cloud_service"})


@dataclass(frozen=True, slots=True)
class SweepSettings:
    """The ``sweeps`` section of the configuration (docs/alerts.md, Sweeps)."""

    enabled: bool = True
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    min_identities: int = DEFAULT_MIN_IDENTITIES
    min_share: float = DEFAULT_MIN_SHARE
    max_sources: int = DEFAULT_MAX_SOURCES
    known_sources: tuple[Any, ...] = ()  # ip_network objects
    user_agent_sources: tuple[str, ...] = DEFAULT_USER_AGENT_SOURCES

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> SweepSettings:
        """Settings from the ``sweeps`` section; a bad key or value is a ``ConfigError``
        naming it."""
        data = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(str(key) for key in set(data) - known)
        if unknown:
            raise ConfigError(f"sweeps: unknown key(s) {unknown}; known: "
                              f"{', '.join(sorted(known))}")
        enabled = data.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"sweeps.enabled must be true or false, got {enabled!r}")
        window = _number(data, "window_seconds", DEFAULT_WINDOW_SECONDS, 1.0, 86400.0)
        share = _number(data, "min_share", DEFAULT_MIN_SHARE, 0.0, 1.0)
        least = int(_number(data, "min_identities", DEFAULT_MIN_IDENTITIES, 2, 10_000, True))
        cap = int(_number(data, "max_sources", DEFAULT_MAX_SOURCES, 1, 10_000_000, True))
        return cls(enabled, window, least, share, cap,
                   _networks(data.get("known_sources") or ()),
                   _names(data.get("user_agent_sources", DEFAULT_USER_AGENT_SOURCES)))


def _number(data: Mapping[str, Any], name: str, default: float, low: float, high: float,
            whole: bool = False) -> float:
    """The scoring section's check (finite, in range, then whole): ``.inf`` made whole
    raised ``OverflowError`` instead of naming the key."""
    value = data.get(name, default)
    return float(check_number(f"sweeps.{name}", value, "int" if whole else "float",
                                low, high))


def _networks(values: Any) -> tuple[Any, ...]:
    if isinstance(values, str) or not isinstance(values, list | tuple):
        raise ConfigError(f"sweeps.known_sources must be a list of addresses or networks, "
                          f"got {values!r:.60}")
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError as err:
            raise ConfigError(f"sweeps.known_sources: {value!r} is not an address or "
                              f"network ({err})") from err
    return tuple(out)


def _names(values: Any) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, list | tuple) or not all(
            isinstance(v, str) for v in values):
        raise ConfigError(f"sweeps.user_agent_sources must be a list of log sources "
                          f"(aws.cloudtrail, k8s.audit, ...), got {values!r:.60}")
    return tuple(values)


def attempt_kind(event: Event) -> str | None:
    """What makes ``event`` part of a sweep (module docstring), or None."""
    if event.identity_kind == "cloud_service" or event.partial:
        return None
    if event.failed:
        if event.action in _SIGN_IN_ACTIONS:
            return None if event.error_code in _SIGN_IN_INTERRUPTS else BAD_CREDENTIAL
        if event.source == "k8s.audit" and event.action.endswith(".watch"):
            return None
        error = event.error_code
        if not error:
            return None
        if error.lower() in _BAD_CREDENTIAL_CODES:
            return BAD_CREDENTIAL
        return REFUSED if refused(error) else None
    if (event.credential_type == "long_term" and event.network == "public"
            and event.action in KEY_CHECK_ACTIONS):
        return KEY_CHECK
    return None


class _Source:
    """One source's identities within the window, and its open alert."""

    __slots__ = ("key", "address", "agent", "identities", "untracked", "first", "last",
                 "alert_id", "revision", "sent", "severity", "opened", "event_ids",
                 "event_count", "kinds", "actions", "successes", "next_expire", "shadow")

    def __init__(self, key: str, address: str, agent: str | None, ts: float) -> None:
        self.key = key
        self.address = address
        self.agent = agent
        # identity -> [first, last, calls, attempts, last attempt, kind, tenant, errors]
        self.identities: dict[str, list[Any]] = {}
        # identity -> last attempt, for those beyond MAX_IDENTITIES: counted, not named;
        # a mapping (one entry per identity, not per attempt) that expires with the window
        self.untracked: dict[str, float] = {}
        self.first = self.last = ts
        self.alert_id = ""
        self.revision = 0
        self.sent = 0  # attempting identities shown by the last revision
        self.severity = ""
        self.opened = ts
        self.event_ids: list[str] = []
        self.event_count = 0
        self.kinds: dict[str, int] = {}  # attempt kind -> attempts
        self.actions: list[str] = []
        self.successes: list[str] = []  # identities that succeeded after failing
        self.next_expire = ts  # event time of the next pass over ``identities``
        self.shadow = False  # its lead detector at opening is on trial (shadow_detectors)

    def expire(self, now: float, window: float) -> None:
        """Forget identities not active within ``window`` of ``now``; a pass at most every
        ``PRUNE_SECONDS`` of event time, so a busy source costs a few operations a call."""
        if now < self.next_expire:
            return
        self.next_expire = now + PRUNE_SECONDS
        since = now - window
        gone = [name for name, entry in self.identities.items() if entry[1] < since]
        for name in gone:
            del self.identities[name]
        if self.untracked:
            self.untracked = {name: ts for name, ts in self.untracked.items() if ts >= since}

    def attempting(self, since: float) -> int:
        """Identities with an attempt since ``since``, named or not."""
        named = sum(1 for e in self.identities.values() if e[3] and e[4] >= since)
        if not self.untracked:
            return named
        return named + sum(1 for ts in self.untracked.values() if ts >= since)

    def share(self) -> float:
        calls = sum(e[2] for e in self.identities.values())
        return sum(e[3] for e in self.identities.values()) / calls if calls else 0.0


class Sweeps:
    """Per-source counts of distinct identities; see the module docstring.

    ``observe(event, out)`` is called by the engine for every event that failed, used a
    long-term credential, or came from an address already tracked (``addresses``);
    alerts it raises are appended to ``out`` and counted as the engine counts its own
    (``RunStats.count_alert``: ``shadow`` is the engine's shadow-worker flag).
    """

    def __init__(self, settings: SweepSettings, *, stats: Any,
                 describe: Callable[[Iterable[str]], list[dict[str, Any]]],
                 shadow: bool = False,
                 scoring: ScoringSettings | None = None, suppressions: Any = None) -> None:
        self.settings = settings
        self.stats = stats
        self.shadow = shadow
        self.describe = describe
        self.scoring = scoring or ScoringSettings()
        self.suppressions = suppressions
        self.sources: OrderedDict[str, _Source] = OrderedDict()
        self.addresses: dict[str, int] = {}  # address -> tracked sources on it
        self._next_prune = 0.0
        self._known: dict[str, bool] = {}  # address -> in known_sources (cached)

    @classmethod
    def for_detector(cls, config: Mapping[str, Any], detector: Any) -> Sweeps | None:
        """The sweeps of ``detector`` (an ``engine.Detector``: its run statistics, ATT&CK
        map, score bands and suppression rules), or None when ``sweeps.enabled`` is false."""
        settings = SweepSettings.from_config(config.get("sweeps"))
        if not settings.enabled:
            return None
        return cls(settings, stats=detector.stats, describe=detector.attack.describe,
                   shadow=detector.shadow, scoring=detector.settings,
                   suppressions=detector.suppressions)

    # ------------------------------------------------------------------ the hot path

    def observe(self, event: Event, out: list[Alert]) -> None:
        """Count one event toward its source; append an alert or a revision to ``out``."""
        address = event.source_ip
        if address is None:
            return
        ts = event.ts
        if ts >= self._next_prune:
            self._prune(ts)
        key, agent = self._key(event, address)
        source = self.sources.get(key)
        kind = attempt_kind(event)
        if source is None:
            if kind is None or self._excluded(event, address, kind):
                return
            source = self._track(key, address, agent, ts)
        elif kind is not None and self._excluded(event, address, kind):
            kind = None
        self.sources.move_to_end(key)
        self._count(source, event, kind)
        if kind is not None or source.alert_id or source.successes:
            self._judge(source, event, kind, out)

    def _key(self, event: Event, address: str) -> tuple[str, str | None]:
        if event.source in self.settings.user_agent_sources:
            agent = (event.user_agent or "")[:AGENT_CHARS]
            return f"source:{address} ua:{agent}", agent
        return f"source:{address}", None

    def _excluded(self, event: Event, address: str, kind: str) -> bool:
        """Not an attempt from here: a known source, or a key check from inside."""
        if kind == KEY_CHECK and event.network in _INSIDE:
            return True
        if not self.settings.known_sources:
            return False
        known = self._known.get(address)
        if known is None:
            try:
                ip = ipaddress.ip_address(address)
                known = any(ip in net for net in self.settings.known_sources)
            except ValueError:
                known = False
            if len(self._known) < 4096:
                self._known[address] = known
        return known

    def _track(self, key: str, address: str, agent: str | None, ts: float) -> _Source:
        source = self.sources[key] = _Source(key, address, agent, ts)
        self.addresses[address] = self.addresses.get(address, 0) + 1
        while len(self.sources) > self.settings.max_sources:
            self._drop(next(iter(self.sources)))
        return source

    def _drop(self, key: str) -> None:
        source = self.sources.pop(key)
        left = self.addresses.get(source.address, 1) - 1
        if left > 0:
            self.addresses[source.address] = left
        else:
            self.addresses.pop(source.address, None)

    def _prune(self, now: float) -> None:
        """Drop sources quiet for a whole window (least recently active first)."""
        self._next_prune = now + PRUNE_SECONDS
        since = now - self.settings.window_seconds
        while self.sources:
            key, source = next(iter(self.sources.items()))
            if source.last >= since:
                break
            self._drop(key)

    def _count(self, source: _Source, event: Event, kind: str | None) -> None:
        ts = event.ts
        source.last = max(source.last, ts)
        source.expire(ts, self.settings.window_seconds)
        entry = source.identities.get(event.identity)
        if entry is None:
            if len(source.identities) >= MAX_IDENTITIES:
                untracked = source.untracked
                if kind is not None and (event.identity in untracked
                                         or len(untracked) < MAX_UNTRACKED):
                    untracked[event.identity] = ts
                return
            source.untracked.pop(event.identity, None)  # named from now on, counted once
            entry = source.identities[event.identity] = [
                ts, ts, 0, 0, 0.0, "", event.tenant or "", []]
        entry[1] = max(entry[1], ts)
        entry[2] += 1
        if kind is None:
            # a credential refused as bad, then working from the same source: a guess hit
            if (not event.failed and entry[5] == BAD_CREDENTIAL
                    and event.identity not in source.successes and len(source.successes) < LISTED):
                source.successes.append(event.identity)
                self._keep_id(source, event)
            return
        self._keep_id(source, event)
        entry[3] += 1
        entry[4] = ts
        entry[5] = kind
        errors = entry[7]
        if event.error_code and event.error_code not in errors and len(errors) < MAX_ERRORS:
            errors.append(event.error_code)
        source.kinds[kind] = source.kinds.get(kind, 0) + 1
        if event.action and event.action not in source.actions and len(source.actions) < 5:
            source.actions.append(event.action)

    @staticmethod
    def _keep_id(source: _Source, event: Event) -> None:
        source.event_count += 1
        if len(source.event_ids) < MAX_EVENT_IDS and event.event_id not in source.event_ids:
            source.event_ids.append(str(event.event_id))

    # ------------------------------------------------------------------ alerting

    def _judge(self, source: _Source, event: Event, kind: str | None,
               out: list[Alert]) -> None:
        settings = self.settings
        since = event.ts - settings.window_seconds
        count = source.attempting(since)
        if not source.alert_id and (count < settings.min_identities
                                    or source.share() < settings.min_share):
            return
        lead = self._lead(source)
        if not source.alert_id:
            if self._suppressed(source, lead):
                return
            source.opened = min(e[0] for e in source.identities.values())
            bucket = int(source.opened // settings.window_seconds)
            source.alert_id = make_alert_id(source.key, DETECTOR, bucket,
                                            f"{DETECTORS[lead]}\x1f{event.event_id}")
            source.shadow = self.scoring.is_shadow(DETECTORS[lead])
        severity = self._severity(source, lead)
        if SEVERITY_RANK[severity] < SEVERITY_RANK[self.scoring.min_severity]:
            return  # pending, like an identity's alert group: said once it earns min_severity
        if source.revision and count < 2 * source.sent and (
                SEVERITY_RANK[severity] <= SEVERITY_RANK[source.severity]):
            return
        source.sent = count
        source.severity = severity
        source.revision += 1
        alert = self._alert(source, event, count, lead)
        self.stats.count_alert(alert, new=source.revision == 1, shadow=self.shadow)
        out.append(alert)

    @staticmethod
    def _lead(source: _Source) -> str:
        """The attempt kind with the most attempts (ties: the most severe, then name)."""
        return max(source.kinds, key=lambda k: (source.kinds[k], SEVERITY_RANK[SEVERITY[k]],
                                                k))

    @staticmethod
    def _severity(source: _Source, lead: str) -> str:
        """The lead kind's severity; high once an identity got in after failing."""
        severity = SEVERITY[lead]
        if source.successes and SEVERITY_RANK[severity] < SEVERITY_RANK["high"]:
            severity = "high"
        return severity

    def _suppressed(self, source: _Source, lead: str) -> bool:
        rules = self.suppressions
        if rules is None or not rules.rules:
            return False
        verdict, _ = rules.check(source.key, DETECTORS[lead], source.key)
        if verdict == "suppressed":
            self.stats.suppressed["suppression_rule"] += 1
            return True
        if verdict == EXPIRED_RULE:
            self.stats.suppressed[EXPIRED_RULE] += 1
        return False

    def _alert(self, source: _Source, event: Event, count: int, lead: str) -> Alert:
        window = self.settings.window_seconds
        by_attempts = sorted(source.kinds, key=lambda k: (-source.kinds[k], k))
        detectors = tuple(DETECTORS[k] for k in by_attempts)
        ranked = sorted(source.identities.items(),
                        key=lambda item: (-item[1][3], item[1][0], item[0]))
        listed = [{"identity": name, "calls": e[2], "attempts": e[3], "kind": e[5] or None,
                   "error_codes": list(e[7]), "first": iso(e[0]), "last": iso(e[1])}
                  for name, e in ranked if e[3]][:LISTED]
        tenants = sorted({e[6] for e in source.identities.values() if e[6]})
        calls = sum(e[2] for e in source.identities.values())
        attempts = sum(e[3] for e in source.identities.values())
        minutes = f"{window / 60:g} minutes"
        where = source.address + (f" ({source.agent or 'no user agent'})"
                                  if source.agent is not None else "")
        parts = ", ".join(f"{source.kinds[k]} {NOUNS[k]}" for k in by_attempts)
        sentence = (f"one source, {where}, acted as {count} distinct identities within "
                    f"{minutes} ({parts}; {attempts} of its {calls} calls were attempts)")
        if source.successes:
            sentence += f"; then succeeded as {', '.join(source.successes[:3])}"
        signal = {
            "detector": DETECTORS[lead], "score": 1.0, "weighted_score": 1.0,
            "observed": f"{count} identities from one source",
            "baseline": "a caller acts as one identity or a few; a sweep acts as many",
            "sentence": sentence, "value": source.key,
        }
        ids = []
        for kind in [lead, *source.kinds]:
            ids += [t for t in ATTACK[kind] if t not in ids]
        if source.successes and "T1078.004" not in ids:
            ids.append("T1078.004")
        notes = [f"one alert per source: the identities are in context.sweep.identities "
                 f"(the first {LISTED} by attempts); rotate or check each one's credential"]
        samples = {"source_ip": [source.address], "action": list(source.actions)}
        if source.agent:
            samples["agent_family"] = [event.agent_family or "other"]
        context = {
            "sensitive_categories": [],
            "notes": notes,
            "sweep": {
                "source_ip": source.address, "user_agent": source.agent,
                "window_seconds": window, "distinct_identities": count,
                "calls": calls, "attempts": attempts,
                "attempts_by_kind": dict(sorted(source.kinds.items())),
                "tenants": tenants[:5], "succeeded_after_failing": list(source.successes),
                "identities": listed, "identities_truncated": count > len(listed),
            },
        }
        last = max(source.last, event.ts)
        evidence = {
            "event_ids": list(source.event_ids) or [str(event.event_id)],
            "event_count": max(source.event_count, 1),
            "event_ids_truncated": source.event_count > len(source.event_ids),
            "first_time": iso(source.opened), "last_time": iso(last),
            "counts_by_detector": {DETECTORS[k]: n for k, n in sorted(source.kinds.items())},
            "samples": samples,
            "signal_values": [{"detector": DETECTORS[lead], "value": source.key}],
            "signal_values_truncated": False,
            "sensitive_actions": [],
        }
        title = (f"sweep from {where}: {count} identities within {minutes} "
                 f"({parts})")[:200]
        return Alert(
            alert_id=source.alert_id, revision=source.revision, title=title,
            identity=source.key, identity_kind="external",
            kind_reason="a caller address, not an identity: one source acting as many",
            owner=NO_OWNER, tenant=tenants[0] if len(tenants) == 1 else None,
            first_time=source.opened, last_time=last,
            score=alert_score(source.severity, float(count), self.scoring),
            severity=source.severity, detectors=detectors, signals=(signal,),
            evidence=evidence, techniques=tuple(self.describe(ids)), context=context,
            group=DETECTOR, shadow=source.shadow,
        )
