"""The ``Detector``: one event in, zero or more explained alerts out.

Both harnesses (replay and the Faust worker) drive this class; no detection logic lives
anywhere else. Per event (``Detector.process``):

1. fetch or create the identity's state (profile, inventory record, alert state);
2. update the inventory and let the profile score-then-learn (``IdentityProfile.observe``);
3. remember deploy changes made by known deploy identities (change-aware context);
4. close this identity's expired alert groups (and, every few minutes of event time, every
   identity's);
5. filter the signals (suppression rules, feedback), then either raise a policy alert
   (identity still learning, or a configured rule) or fuse the signals into a verdict
   (``detector.scoring``), with change-aware context and daily recurrence lowering it;
6. fold the verdict into the identity's open alert group, or open one unless the family
   is cooling down; let the group's severity rise with its evidence; emit the alert once
   the group reaches ``min_severity`` and again when it materially changes.

Events without signals leave at step 2 after a few dictionary operations: nothing is
serialised and no JSON is built unless an alert is raised.

Partial events (``Event.partial``: a salvaged or incomplete record) go through the same
steps but teach nothing: the profile only scores them, the inventory only moves its last
seen time (and describes an identity with no complete event yet), no deploy change or
recurrence is remembered from them, and an alert whose evidence holds one says so in
``context.notes`` and ``context.partial_events``. A CloudTrail insight's context event
(``attributes["insight"]``) leaves at once: it touches neither time nor baselines, only
the named identity's alert state (``_insight``).

State: ``IdentityState`` per identity in ``store`` (any ``MutableMapping``; by default an
``IdentityStore``), serialised with ``identity_state``/``set_identity_state`` for the
worker's tables, and as a whole with ``export_state``/``load_state`` (versioned snapshot).

Memory (B25): an identity's live objects take tens of KiB, its serialised blob a few KiB.
``IdentityStore`` keeps at most ``max_live`` identities materialised (least recently used
first out) and the others as their blobs, decoded again on that identity's next event.
``Detector(max_live=...)`` sets the limit (0: unbounded); without it the environment
variable ``NHI_MAX_LIVE_IDENTITIES`` is used if present (tests force a tiny limit with it),
else ``DEFAULT_MAX_LIVE``. Eviction is a lossless round trip: results do not change.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import struct
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from detector.alerts import (
    NO_OWNER,
    Alert,
    AlertGroup,
    check_items,
    check_type,
    make_alert_id,
)
from detector.attack import AttackMap
from detector.errors import StateError
from detector.event import Event
from detector.identity import IdentityRules, Resolver
from detector.inventory import InventoryRecord
from detector.scoring import (
    CACHE_CAP,
    SEVERITIES,
    SEVERITY_RANK,
    ScoringSettings,
    Sensitivity,
    SensitivityCatalogue,
    Verdict,
    Weighted,
    corroborated,
    score_event,
)
from detector.suppression import EXPIRED_RULE, SuppressionRules, load_rules_file
from detector.sweeps import Sweeps
from detector.techniques import ATTRIBUTE as FINDINGS_ATTRIBUTE
from detector.techniques import Finding, Tally, as_findings, as_tallies
from models.base import Signal
from models.common import LEARNING, THIN, span_words

logger = logging.getLogger(__name__)

STATE_VERSION = 1
"""Version of one identity's serialised state (profile + inventory + alert state)."""
SNAPSHOT_VERSION = 3
"""Version of the whole-detector snapshot written by ``export_state`` (2: 32-bit key
lengths, so no identity key is too long to save; 3: a SHA-256 trailer over everything
before it, so a damaged file is refused instead of misread)."""
DIGEST_BYTES = 32  # the SHA-256 trailer of a snapshot
# what a damaged blob can raise while being decoded: all become ``StateError``
DECODE_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError,
                 struct.error, RecursionError)
IDENTITY_MAGIC = b"NHID"
SNAPSHOT_MAGIC = b"NHISNAP\x00"
NOT_A_SNAPSHOT = "not an nhi-detector state snapshot (bad magic bytes)"
SNAPSHOT_LATEST = 253_402_300_799.0  # 9999-12-31T23:59:59Z, the last time a date can show
SILENCE_NOTE_SECONDS = 7 * 86400  # context.silence names a silence from a week on
SWEEP_SECONDS = 300.0  # event time between sweeps that close every identity's expired groups
MAX_CHANGES = 4096  # recent deploy changes remembered for change-aware context
INVENTORY_BYTES = 256  # rough serialised size of one inventory record
GROUP_BYTES = 1024  # rough serialised size of one open alert group
MAX_RECURRENCE_ENTRIES = 16  # (day, hour) sightings kept per alert signature
WEEKLY_SIGHTINGS = 2
"""Earlier weeks (of the last four) that saw a technique finding on the same weekday and
hour before it is a weekly routine (``Detector._routine_technique``)."""
MAX_RECURRENCE_SIGNATURES = 16  # alert signatures remembered per identity
MAX_TOLD = 32  # novelty values an alert named, remembered per identity (``_told``)
_DATED = re.compile(r"\d{4}-?\d{2}-?\d{2}(?:[T_-]?\d{2}:?\d{2}(?::?\d{2})?)?|\d{6,}")
"""A date, a time stamp or a long number in a target's name: a dated snapshot is one
target night after night (``Detector._routine_technique``); ``vm01`` and ``vm07`` stay two."""
_ACTION_NOVELTY = frozenset({"novelty.action", "novelty.service", "novelty.error_code"})
"""The novelty detectors about a call itself: a refused call with only these is routine once
it recurs (``Detector._routine_refusal``)."""
MAX_BURSTS = 50_000  # (identity, burst rule) counters kept; least recently used out first
MAX_TENANTS = 100_000  # tenants whose watch start is remembered (shared-key first use)
SHARED_KEY_RESOLUTIONS = {
    "storage_accountkey": "the account key",
    "storage_sas": "a SAS token",
    "storage_anonymous": "anonymous (public) access",
}
"""Identities that are a resource's own shared credential, not a principal: the Azure source
``normalise_storage`` names them ``azure-storage:<account>`` (``identity_resolution``)."""
MAX_BURST_ENTRIES = 256  # reads remembered per counter within the burst window
MAX_EXPECTED = 256  # (detector, value) pairs marked expected by feedback, per identity
PAIR_PREFIX = "novelty.action_"  # detectors of the novelty pairs led by an action
DEFAULT_MAX_LIVE = 50_000  # identities kept materialised; the others are kept serialised
MAX_LIVE_ENV = "NHI_MAX_LIVE_IDENTITIES"  # overrides DEFAULT_MAX_LIVE when set
# CloudTrail insights (B03), kept per identity in its alert state. A Start whose End never
# comes stops applying after INSIGHT_OPEN_SECONDS: CloudTrail closes an insight once the
# rate is back to its baseline, typically within minutes to a few hours, so an End lost in
# transport must not annotate alerts the next day. A closed insight is kept
# INSIGHT_KEEP_SECONDS more for events that arrive late (the reorder window's order).
INSIGHT_ATTRIBUTE = "insight"  # detector.sources.insight.ATTRIBUTE
INSIGHT_OPEN_SECONDS = 6 * 3600.0
INSIGHT_KEEP_SECONDS = 3600.0
MAX_INSIGHTS = 8  # per identity
MAX_ALERT_INSIGHTS = 4  # per alert
# What an insight keeps from its records and shows on an alert (with its id and window).
INSIGHT_FIELDS = ("type", "event_source", "event_name", "baseline_average", "insight_average")
# Said on an alert whose evidence includes a partial event (scored, never learned).
SALVAGED_NOTE = ("evidence includes an event salvaged from a truncated audit message: fields "
                 "after the cut are unknown (scored, never learned)")
# Said on an alert raised by a technique finding (``detector.techniques``).
TECHNIQUE_NOTE = "technique detection: the request itself is the evidence, no baseline needed"
TECHNIQUE_BASELINE = ("no baseline needed: the request itself shows the technique "
                      "(alerted in learning or not)")
PARTIAL_NOTE = ("evidence includes a request whose final stage never arrived (partial "
                "event: scored, never learned)")


def _novelty_value(detector: str) -> bool:
    """A signal about one new value (``models.novelty``: its ``novelty.*`` readings and
    the long-term key's ``credential.new_network``)."""
    return detector.startswith("novelty.") or detector == "credential.new_network"


@dataclass(slots=True)
class AlertState:
    """One identity's noise-control state: open groups, cooldowns, feedback."""

    groups: dict[str, AlertGroup] = field(default_factory=dict)
    cooldowns: dict[str, list[float]] = field(default_factory=dict)  # group -> [until, rank]
    expected: list[str] = field(default_factory=list)  # "detector\x1fvalue"
    recurrence: dict[str, list[list[int]]] = field(default_factory=dict)  # sig -> [day, hour]
    insights: dict[str, dict[str, Any]] = field(default_factory=dict)  # sharedEventID -> B03
    told: dict[str, list[int]] = field(default_factory=dict)  # detector\x1fvalue -> [day, rank]

    def to_dict(self) -> dict[str, Any]:
        data = {
            "groups": {name: group.to_dict() for name, group in self.groups.items()},
            "cooldowns": self.cooldowns,
            "expected": self.expected,
            "recurrence": self.recurrence,
        }
        if self.insights:  # only then: a state without insights keeps its earlier bytes
            data["insights"] = self.insights
        if self.told:  # likewise
            data["told"] = self.told
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertState:
        """The state saved by ``to_dict``; a wrong-typed field raises ``TypeError``, so a
        re-signed snapshot of another build is refused at load (``StateError``) instead of
        failing at the identity's next event, the replay half done."""
        if not isinstance(data, dict):
            raise TypeError(f"alert state is not a mapping: {data!r:.40}")
        sections = {name: data.get(name) or {} for name in ("groups", "cooldowns",
                                                             "recurrence", "insights", "told")}
        for name, value in sections.items():
            check_type(f"alert state {name}", value, dict)
        groups = {k: AlertGroup.from_dict(v) for k, v in sections["groups"].items()}
        for entry in sections["cooldowns"].values():
            check_items("alert cooldown", entry, (int, float))
            if len(entry) != 2:
                raise TypeError(f"alert cooldown is not [until, rank]: {entry!r:.40}")
        expected = data.get("expected") or []
        check_items("alert state expected", expected, str)
        for sightings in sections["recurrence"].values():
            check_items("alert recurrence", sightings, list)
            for pair in sightings:
                check_items("alert recurrence sighting", pair, int)
                if len(pair) != 2:
                    raise TypeError(f"alert recurrence sighting is not [day, hour]: {pair}")
        for entry in sections["insights"].values():
            check_type("alert insight", entry, dict)
            check_type("alert insight start", entry.get("start"), (int, float))
            check_type("alert insight end", entry.get("end"), (int, float, type(None)))
        for entry in sections["told"].values():
            check_items("alert told", entry, int)
            if len(entry) != 2:
                raise TypeError(f"alert told entry is not [day, rank]: {entry!r:.40}")
        return cls(
            groups,
            dict(sections["cooldowns"]),
            list(expected),
            {k: [list(p) for p in v] for k, v in sections["recurrence"].items()},
            {str(k): dict(v) for k, v in sections["insights"].items()},
            {str(k): list(v) for k, v in sections["told"].items()},
        )


@dataclass(slots=True)
class IdentityState:
    """Everything the detector keeps about one identity."""

    profile: Any
    inventory: InventoryRecord
    alerts: AlertState


class IdentityStore(MutableMapping[str, IdentityState]):
    """Identity states, at most ``max_live`` of them materialised (0: no limit).

    The least recently used state beyond the limit is replaced by its blob
    (``encode_identity``) and decoded again when it is next read with ``[]`` or ``get``.
    ``pinned`` names a state that is never evicted (the one the detector is working on),
    and the state just read is not evicted either, so a limit below 2 counts as 2.
    Iterating ``values``/``items`` or calling ``peek``/``blob`` does not count as a use:
    evicted states are decoded on the fly and stay evicted.
    """

    def __init__(self, max_live: int, decode: Callable[[bytes], IdentityState]) -> None:
        self.max_live = max(max_live, 2) if max_live else 0
        self.decode = decode
        self.live: OrderedDict[str, IdentityState] = OrderedDict()
        self.cold: dict[str, bytes] = {}
        self.pinned: str | None = None
        self.evictions = 0

    def get(self, key: str, default: Any = None) -> Any:
        state = self.live.get(key)
        if state is not None:
            self.live.move_to_end(key)
            return state
        blob = self.cold.pop(key, None)
        if blob is None:
            return default
        state = self.decode(blob)
        self.live[key] = state
        self._trim()
        return state

    def __getitem__(self, key: str) -> IdentityState:
        state = self.get(key)
        if state is None:
            raise KeyError(key)
        return state

    def __setitem__(self, key: str, state: IdentityState) -> None:
        self.cold.pop(key, None)
        self.live[key] = state
        self.live.move_to_end(key)
        self._trim()

    def __delitem__(self, key: str) -> None:
        if self.live.pop(key, None) is None and self.cold.pop(key, None) is None:
            raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self.live or key in self.cold

    def __iter__(self) -> Iterator[str]:
        yield from list(self.live)
        yield from list(self.cold)

    def __len__(self) -> int:
        return len(self.live) + len(self.cold)

    def clear(self) -> None:
        self.live.clear()
        self.cold.clear()

    def peek(self, key: str) -> IdentityState | None:
        """The state without marking it used: an evicted one is decoded, not kept."""
        state = self.live.get(key)
        if state is not None:
            return state
        blob = self.cold.get(key)
        return None if blob is None else self.decode(blob)

    def blob(self, key: str) -> bytes | None:
        """The state's serialised form (its stored blob when evicted)."""
        blob = self.cold.get(key)
        if blob is not None:
            return blob
        state = self.live.get(key)
        return None if state is None else encode_identity(state)

    def values(self) -> Iterator[IdentityState]:  # type: ignore[override]
        for key in list(self):
            state = self.peek(key)
            if state is not None:
                yield state

    def items(self) -> Iterator[tuple[str, IdentityState]]:  # type: ignore[override]
        for key in list(self):
            state = self.peek(key)
            if state is not None:
                yield key, state

    def _trim(self) -> None:
        if not self.max_live:
            return
        live = self.live
        while len(live) > self.max_live:
            key, state = live.popitem(last=False)
            if key == self.pinned:
                live[key] = state  # most recent again; evict the next oldest instead
                continue
            self.cold[key] = encode_identity(state)
            self.evictions += 1


def max_live_default() -> int:
    """``NHI_MAX_LIVE_IDENTITIES`` if set (0: no limit), else ``DEFAULT_MAX_LIVE``."""
    raw = os.environ.get(MAX_LIVE_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_MAX_LIVE
    try:
        value = int(raw)
    except ValueError as err:
        raise ValueError(f"{MAX_LIVE_ENV} must be a whole number, got {raw!r}") from err
    if value < 0:
        raise ValueError(f"{MAX_LIVE_ENV} must not be negative, got {value}")
    return value


class Detector:
    """Glue between profiles, peers, scoring and alerting. See the module docstring."""

    def __init__(
        self,
        config: Mapping[str, Any] | None,
        *,
        stats: Any,
        store: MutableMapping[str, IdentityState] | None = None,
        clock: Callable[[], float] | None = None,
        max_live: int | None = None,
        shadow: bool = False,
    ) -> None:
        from models.peers import PeerIndex
        from models.profile import IdentityProfile
        from models.settings import ModelSettings

        # Imported here rather than at an identity's first event: the models' imports take
        # about a second of CPU, which would otherwise be counted in the replay's loop.
        self._profile_class = IdentityProfile
        config = dict(config or {})
        self.stats = stats
        # a shadow-mode worker: every alert is on trial, so it is counted as a shadow alert
        # (and its escalations not at all), never as one the SOC received
        self.shadow = shadow
        self.clock = clock or time.time
        self.model_settings = ModelSettings.from_config(config.get("models"))
        self.settings = ScoringSettings.from_config(config.get("scoring"))
        self.catalogue = SensitivityCatalogue.load(self.settings.catalogue_path)
        self.attack = AttackMap(self.catalogue)
        self.suppressions = SuppressionRules.from_config(
            config.get("suppressions"), clock=self.clock
        )
        if config.get("suppressions_file"):
            self.suppressions.extend(load_rules_file(config["suppressions_file"]))
        self.suppressions.check_detectors(config)
        self._report_expired_rules()
        # owners come from the config alone (``identities.owners``): a snapshot's records
        # are given this config's owners when loaded (``load_state``)
        self._owners = Resolver(IdentityRules.from_config(config.get("identities")))
        self._sweeps = Sweeps.for_detector(config, self)  # one source, many identities
        # a function of the profile class and settings, not a bound method: a store that
        # held the detector would make the detector and every state it keeps one
        # reference cycle, left for the cyclic collector instead of freed when dropped
        self._decode_identity = identity_decoder(self._profile_class, self.model_settings)
        if store is None:
            limit = max_live_default() if max_live is None else max_live
            store = IdentityStore(limit, self._decode_identity)
        self.store: MutableMapping[str, IdentityState] = store
        self._bounded = isinstance(store, IdentityStore)
        # action -> (a deploy change action, its sensitive category): both depend only on
        # the action and the configuration, so they are worked out once per distinct action
        self._actions: dict[str, tuple[bool, Sensitivity | None]] = {}
        self.peers = PeerIndex(self.model_settings)
        self._changes: dict[str, list[Any]] = {}  # tenant|token -> [ts, deployer, action]
        # technique.<rule> -> the finding's ATT&CK ids: rules are a fixed, small set
        self._technique_ids: dict[str, tuple[str, ...]] = {}
        # identity\x1frule -> [[ts, value], ...] of burst reads within the burst window.
        # Kept in memory only, not in the identity's saved state: a restart forgets at
        # most one window (minutes) of reads, and a burst is its own evidence again.
        self._bursts: OrderedDict[str, list[list[Any]]] = OrderedDict()
        self._open: dict[str, float] = {}  # identity -> earliest close of its open groups
        self._now = 0.0
        # the last event time of the snapshot loaded by ``load_state`` (None: started cold)
        self.snapshot_time: float | None = None
        self._next_sweep = 0.0
        self._previous_seen = 0.0  # the current event's identity's last event before it
        # tenant -> the earliest first event of its identities seen here (``_watch``)
        self._watched: dict[str, float] = {}
        self._dormant_after = self.model_settings.dormancy_days * 86400.0

    def _report_expired_rules(self) -> None:
        for rule in self.suppressions.expired_rules():
            logger.warning("suppression rule has expired and will not apply: %s", rule.describe())

    # ------------------------------------------------------------------ the hot path

    def process(self, event: Event) -> list[Alert]:
        """Observe one event; return new alerts and updates of grouped alerts."""
        # RunStats.events_by_kind and last_event_ts are counted by the sources (parser).
        if event.partial and INSIGHT_ATTRIBUTE in event.attributes:
            return self._insight(event)  # context, not an action: no time, no baseline
        ts = event.ts
        if ts > self._now:
            self._now = ts
        key = event.identity
        if self._bounded:
            self.store.pinned = key  # type: ignore[attr-defined]
        state = self.store.get(key)
        tenant = event.tenant
        if tenant and tenant not in self._watched:
            self._watch(tenant, ts)  # watched from its first call by any identity
        if state is None:
            state = self._new_state(event)
            first_use = event.identity_resolution in SHARED_KEY_RESOLUTIONS
        else:
            # an account key (key1, key2) first used by a shared-key identity that so far
            # had SAS tokens or the other key is the key's own first use
            first_use = (event.identity_resolution == "storage_accountkey"
                         and event.credential_id not in state.inventory.credentials)
        if first_use and tenant:
            self._shared_key_first_use(event, self._watched[tenant])
        self._previous_seen = state.inventory.last_seen  # for the alert's context.silence
        inventory = state.inventory
        if event.partial:
            inventory.touch(event)
        else:
            inventory.update(event)
            if inventory.kind_reason != event.kind_reason:
                # the inventory kept the kind an IAM user earned by console use against
                # this event's weaker "SDK key only" (the resolver that saw the sign-in is
                # gone: another file stream, a restart): the identity is scored, and its
                # alerts described, with the kind it has now
                event.identity_kind, event.kind_reason = inventory.kind, inventory.kind_reason
        profile = state.profile
        signals = profile.observe(event, self.peers)
        if profile.degradations:
            self._drain_degradations(profile)
        action = event.action
        facts = self._actions.get(action)
        if facts is None:
            facts = self._action_facts(action)
        change, sens = facts
        if change and not event.partial and self.settings.is_deployer(event):
            self._remember_change(event)
        out: list[Alert] = []
        if state.alerts.groups:
            self._close_expired(key, state, ts, out)
            for group in state.alerts.groups.values():
                group.observe(event)  # a window alert counts what the identity does
        if ts >= self._next_sweep:
            self._sweep(ts, out)
        if sens is not None and not sens.applies(event):
            sens = None
        findings = event.attributes.get(FINDINGS_ATTRIBUTE)
        if (signals or findings or (sens is not None and sens.policy)
                or self.settings.policy_rules):
            self._evaluate(event, state, signals, sens, out, findings)
        sweeps = self._sweeps  # cross-identity: only failures, keys and tracked addresses
        # (``event.failed`` written out: a property call on every event)
        if sweeps is not None and (event.outcome == "failure"
                                   or event.credential_type == "long_term"
                                   or event.source_ip in sweeps.addresses):
            sweeps.observe(event, out)
        return out

    def _action_facts(self, action: str) -> tuple[bool, Sensitivity | None]:
        """Whether ``action`` is a deploy change, and its sensitive category (cached)."""
        facts = (
            self.settings.is_change_action(action),
            self.catalogue.lookup(action) if action else None,
        )
        if len(self._actions) < CACHE_CAP:
            self._actions[action] = facts
        return facts

    def _new_state(self, event: Event) -> IdentityState:
        profile = self._profile_class(event.identity, event.identity_kind, self.model_settings)
        state = IdentityState(profile, InventoryRecord(), AlertState())
        self.store[event.identity] = state
        return state

    def _watch(self, tenant: str, first: float) -> float:
        """Note that ``tenant`` has had calls since ``first``; returns since when the tenant
        has been watched. Known from the first call naming it (any identity's: a service
        principal's first event may be its sign-in, in the directory's tenant, and its
        storage calls name the subscription) and from the states loaded (a snapshot, a
        worker's table), so a restart keeps it."""
        since = self._watched.get(tenant)
        if since is None or first < since:
            if since is None and len(self._watched) >= MAX_TENANTS:
                del self._watched[next(iter(self._watched))]
            self._watched[tenant] = since = first
        return since

    def _shared_key_first_use(self, event: Event, since: float) -> None:
        """A finding on the first call with a storage account's own shared credential (its
        account key, a SAS token, anonymous access) after ``shared_key_watch_days`` of
        watching its subscription: such a key bypasses Entra ID and its role assignments,
        leaks in connection strings and is the same for every holder, and an account used
        with it all along shows its key identity in the first days. It is a new identity,
        so its models are still learning; this is what finds a leaked key's first use."""
        days = self.settings.shared_key_watch_days
        watched = event.ts - since
        if not days or watched < days * 86400:
            return
        how = SHARED_KEY_RESOLUTIONS[event.identity_resolution]
        if event.identity_resolution == "storage_accountkey" and event.credential_id:
            how = f"{how} {event.credential_id}"
        account = str(event.attributes.get("storage_account") or event.identity)
        origin = event.source_ip or event.network_prefix or event.network
        client = event.agent_family
        if client in (None, "other", "unknown"):  # the client's own name says more
            client = (event.user_agent or "").split(" ", 1)[0][:64] or None
        finding = Finding(
            "azure.storage_shared_key_first_use", "medium", ("T1550.001", "T1078.004"),
            f"first call to storage account {account} with {how} ({event.action} from "
            f"{origin}{', ' + client if client else ''}) after {span_words(watched)} of its "
            "subscription's logs without one: a shared key bypasses Entra ID and its role "
            "assignments", account)
        found = event.attributes.get(FINDINGS_ATTRIBUTE)
        event.attributes[FINDINGS_ATTRIBUTE] = [*(found or ()), finding]

    def _drain_degradations(self, profile: Any) -> None:
        """Move the profile's new degradation counts into ``RunStats``."""
        pending = profile.degradations
        self.stats.degradations.update(pending)
        pending.clear()

    def _evaluate(
        self,
        event: Event,
        state: IdentityState,
        signals: list[Signal],
        sens: Sensitivity | None,
        out: list[Alert],
        findings: Any = None,
    ) -> None:
        signals = self._filter(event, state, signals)
        techniques = self._technique_signals(event, state, findings) if findings else []
        profile = state.profile
        # judged at the stage the models scored the event in (the history before it)
        stage = profile.scored_stage(event.ts)
        in_learning = stage == LEARNING
        # a thin history is short of baselines too: the policy applies as in learning
        thin = stage == THIN
        policy = self._policy_signal(event, sens, in_learning or thin, profile)
        if policy is not None and f"{policy.detector}\x1f{policy.value}" in state.alerts.expected:
            self.stats.suppressed["feedback"] += 1
            policy = None
        if policy is not None:
            verdict = self._policy_verdict(event, policy, sens)
            if techniques:  # one alert: the policy's, with the technique's explanation
                _add_techniques(verdict, techniques)
        elif techniques:
            verdict = None if in_learning else self._verdict(event, signals, sens)
            if thin and verdict is not None and not self._corroborated(event, profile, verdict):
                verdict = None  # the finding alerts on its own
            # nothing else about the call is unusual: no reading of the models reaches the
            # signal floor (``_routine_technique`` also keys a medium one by its origin)
            floor = self.settings.signal_floor
            quiet = all(s.score < floor for s in signals)
            verdict = _technique_verdict(techniques, verdict, sens)
            if self._routine_technique(state, event, verdict, quiet):
                self.stats.suppressed["recurring"] += 1
                return
        elif in_learning:
            if any(s.score >= self.settings.signal_floor for s in signals):
                self.stats.suppressed["learning"] += 1
            return
        else:
            verdict = self._verdict(event, signals, sens)
            if thin and verdict is not None and not self._corroborated(event, profile, verdict):
                self.stats.suppressed["thin_history"] += 1
                return
            if verdict is not None:
                if event.outcome == "failure" and self._routine_refusal(state, event, verdict):
                    self.stats.suppressed["recurring"] += 1
                    return
                if self._told(state, event, verdict):
                    self.stats.suppressed["repeat"] += 1
                    return
                self._recurrence(state, event, verdict)
        if verdict is None:
            return
        if event.partial:
            verdict.notes.append(SALVAGED_NOTE if event.attributes.get("salvaged")
                                 else PARTIAL_NOTE)
        self._raise(event, state, verdict, out)

    @staticmethod
    def _corroborated(event: Event, profile: Any, verdict: Verdict) -> bool:
        """Whether a verdict on a thin history (``IdentityProfile.thin_history``) has the
        two lines of evidence it needs (``scoring.corroborated``); the alert says so."""
        if not corroborated(verdict):
            return False
        span = span_words(event.ts - profile.first_ts)
        verdict.notes.append(f"thin history ({profile.n_events} events over {span}): alerted "
                             "because where the call came from and what it did are both new")
        return True

    def _filter(self, event: Event, state: IdentityState, signals: list[Signal]) -> list[Signal]:
        """Drop signals matched by an active suppression rule or marked expected."""
        if not signals or (not self.suppressions.rules and not state.alerts.expected):
            return signals
        kept = []
        expected = state.alerts.expected
        for signal in signals:
            if expected and _is_expected(expected, signal.detector, str(signal.value or "")):
                self.stats.suppressed["feedback"] += 1
                continue
            if self.suppressions.rules:
                verdict, _ = self.suppressions.check(
                    event.identity, signal.detector, str(signal.value or "")
                )
                if verdict == "suppressed":
                    self.stats.suppressed["suppression_rule"] += 1
                    continue
                if verdict == EXPIRED_RULE:
                    self.stats.suppressed[EXPIRED_RULE] += 1
            kept.append(signal)
        return kept

    def _technique_signals(self, event: Event, state: IdentityState, found: Any
                           ) -> list[tuple[Signal, str]]:
        """(signal, severity) per finding not silenced by suppression or feedback; each
        rule is counted in ``RunStats.findings`` and its ATT&CK ids remembered for the
        alert (``_emit``)."""
        out = []
        findings = as_findings(found)
        for tally in as_tallies(found):
            burst = self._count(event, tally)
            if burst is not None:
                findings.append(burst)
        for finding in findings:
            self.stats.findings[finding.rule] += 1
            detector = f"technique.{finding.rule}"
            if len(self._technique_ids) < CACHE_CAP:
                self._technique_ids[detector] = finding.attack
            signal = Signal(
                detector=detector,
                score=1.0,
                observed=event.action,
                baseline=TECHNIQUE_BASELINE,
                sentence=finding.sentence,
                value=finding.value,
                details={"attack": list(finding.attack), "severity": finding.severity},
            )
            if self._filter(event, state, [signal]):
                out.append((signal, finding.severity))
        return out

    def _count(self, event: Event, tally: Tally) -> Finding | None:
        """Count one burst read; a Finding when the identity's reads of this rule within
        ``technique_burst_window`` reach ``technique_burst_distinct`` distinct values (or,
        for a ``calls`` tally, ``technique_burst_calls`` calls). The counter restarts
        after a burst, so a long harvest is one alert group, not one per read. A tally
        with a ``scope`` is counted apart per scope (one instance session), one with a
        ``limit`` reaches its burst at that many distinct values, which it names."""
        settings = self.settings
        key = f"{event.identity}\x1f{tally.rule}"
        if tally.scope:
            key = f"{key}\x1f{tally.scope}"
        entries = self._bursts.get(key)
        if entries is None:
            entries = self._bursts[key] = []
            if len(self._bursts) > MAX_BURSTS:
                self._bursts.popitem(last=False)
        else:
            self._bursts.move_to_end(key)
        ts = event.ts
        since = ts - settings.technique_burst_window
        entries[:] = [e for e in entries if e[0] > since]
        entries.extend([ts, value] for value in tally.values[:MAX_BURST_ENTRIES])
        del entries[: max(0, len(entries) - MAX_BURST_ENTRIES)]
        distinct = len({value for _, value in entries})
        minutes = f"{settings.technique_burst_window / 60:g} minutes"
        if tally.limit and distinct >= tally.limit:
            named = ", ".join(sorted({str(value) for _, value in entries})[:5])
            sentence = f"{distinct} distinct {tally.noun} within {minutes}: {named}"
        elif distinct >= settings.technique_burst_distinct and not tally.limit:
            sentence = f"{distinct} distinct {tally.noun} within {minutes}"
        elif tally.calls and len(entries) >= settings.technique_burst_calls:
            sentence = f"{len(entries)} {tally.noun} ({distinct} distinct) within {minutes}"
        else:
            return None
        entries.clear()
        failed = f" (last one refused: {event.error_code})" if event.failed else ""
        return Finding(tally.rule, tally.severity, tally.attack, sentence + failed, tally.noun)

    def _verdict(
        self, event: Event, signals: list[Signal], sens: Sensitivity | None
    ) -> Verdict | None:
        settings = self.settings
        change = self._change_for(event)
        shadow = settings.shadow_detectors
        live = [s for s in signals if not settings.is_shadow(s.detector)] if shadow else signals
        verdict = score_event(event, live, settings, sensitivity=sens, change_context=bool(change))
        if verdict is not None and self._alertable(verdict):
            self._context(event, verdict, change)
            return verdict
        if shadow and len(live) < len(signals):
            verdict = score_event(
                event, signals, settings, sensitivity=sens, change_context=bool(change)
            )
            if verdict is not None and self._alertable(verdict):
                verdict.notes.append("shadow")
                self._context(event, verdict, change)
                return verdict
        if verdict is None and event.identity_kind in settings.platform_kinds:
            floor, allowed = settings.signal_floor, settings.platform_detectors
            if any(s.score >= floor and s.detector not in allowed for s in signals):
                self.stats.suppressed["platform_routine"] += 1
        return None

    def _told(self, state: IdentityState, event: Event, verdict: Verdict) -> bool:
        """Whether an alert of this identity already named every value this verdict is
        about, at this severity or higher, within ``recurrence_lookback_days``: a new
        value in a strongly anomalous event is held out of learning until it recurs in
        ``accept_windows`` windows, and said again in each of them (a release that adds
        one API alerted on each of the next five deploys). Only verdicts made of novelty
        signals are repeats; any other reading, a higher severity or a value not yet named
        alerts as before, and so does a catalogued action (each key created, each role
        bound is its own event), as the recurrence rule never lowers one."""
        lookback = self.settings.recurrence_lookback_days
        told = state.alerts.told
        sens = verdict.sensitivity
        if not told or lookback <= 0 or (sens is not None and not sens.volume_only):
            return False
        day, rank = int(event.ts // 86400), SEVERITY_RANK[verdict.severity]
        for weighted in verdict.signals:
            signal = weighted.signal
            if not _novelty_value(signal.detector):
                return False
            entry = told.get(f"{signal.detector}\x1f{signal.value}")
            if entry is None or not 0 <= day - entry[0] <= lookback or rank > entry[1]:
                return False
        return True

    @staticmethod
    def _tell(state: IdentityState, event: Event, verdict: Verdict, severity: str) -> None:
        """Remember the novelty values an emitted alert named (``_told``)."""
        told = state.alerts.told
        day, rank = int(event.ts // 86400), SEVERITY_RANK[severity]
        for weighted in verdict.signals:
            signal = weighted.signal
            if _novelty_value(signal.detector):
                key = f"{signal.detector}\x1f{signal.value}"
                told.pop(key, None)  # the newest last: the oldest goes first
                told[key] = [day, rank]
        while len(told) > MAX_TOLD:
            del told[next(iter(told))]

    def _recurrence(self, state: IdentityState, event: Event, verdict: Verdict) -> None:
        """Lower by one level a deviation that recurs at this hour of day on at least
        ``recurrence_days`` of the last ``recurrence_lookback_days`` days (a nightly batch
        job's data burst). Only for deviations of amount (volume detectors, or no
        catalogued action, or a volume-only category): a catalogued action that is itself
        new (a key creation, a role binding) is never lowered this way."""
        settings = self.settings
        if settings.recurrence_days <= 0:
            return
        sens = verdict.sensitivity
        family = verdict.top.signal.detector.partition(".")[0]
        # Amount deviations of one job touch several categories (secrets, then data): one
        # signature per family for volume, per family and category otherwise.
        signature = family if family == "volume" else f"{family}|{sens.category if sens else ''}"
        alert_worthy = SEVERITY_RANK[verdict.severity] >= SEVERITY_RANK[settings.min_severity]
        earlier = self._sightings(state, event, signature, any_hour=False, record=alert_worthy)
        amount_only = sens is None or sens.volume_only or family == "volume"
        if earlier < settings.recurrence_days or not amount_only:
            return
        hour = int(event.ts % 86400 // 3600)
        floor = SEVERITY_RANK["low"]
        verdict.severity = SEVERITIES[max(SEVERITY_RANK[verdict.severity] - 1, floor)]
        verdict.cap = SEVERITIES[max(SEVERITY_RANK[verdict.ceiling] - 1, floor)]
        verdict.notes.append(
            f"severity lowered one level: the same deviation recurred around {hour:02d}:00 "
            f"UTC on {earlier} of the last {settings.recurrence_lookback_days} days"
        )

    def _routine_technique(self, state: IdentityState, event: Event, verdict: Verdict,
                           quiet: bool) -> bool:
        """Whether a technique verdict is this identity's routine: the same rules on the
        same targets found around this hour (±1 h) on at least ``recurrence_days`` of the
        last ``recurrence_lookback_days`` days, or on the same weekday on
        ``WEEKLY_SIGHTINGS`` of the last four weeks. A nightly runbook deleting last
        week's disk snapshots raised a low alert every night, a nightly disaster-recovery
        export a medium one, a Sunday patch run one a week. A low finding may be routine;
        a medium one only when nothing else about the call is unusual (``quiet``: no
        reading of the models up to the signal floor) and from the same origin each time
        (network prefix and client in its key: an identity still learning, or one whose
        models have got used to new networks, that repeats it from a new Tor exit each
        night never makes it routine); high and critical findings never are. The first
        nights (or weeks) still alert."""
        rank = SEVERITY_RANK[verdict.severity]
        if rank > SEVERITY_RANK["medium"] or (rank == SEVERITY_RANK["medium"] and not quiet):
            return False
        # the rule and its target, dates left out (a dated snapshot name is one target
        # night after night; another database or disk is another target)
        found = sorted({f"{w.signal.detector}:{_DATED.sub('#', str(w.signal.value or ''))}"
                        for w in verdict.signals if w.signal.detector.startswith("technique.")})
        signature = "technique|" + "|".join(found)
        if rank == SEVERITY_RANK["medium"]:
            origin = event.network_prefix or event.network
            signature = f"{signature}|from|{origin}|{event.agent_family or ''}"
        if self._recurs(state, event, signature, any_hour=False):
            return True
        return self._weekly(state, event, signature) >= WEEKLY_SIGHTINGS

    def _weekly(self, state: IdentityState, event: Event, signature: str) -> int:
        """How many of the last four weeks saw ``signature`` on this weekday around this
        hour (±1 h), from the sightings ``_sightings`` keeps."""
        if self.settings.recurrence_days <= 0 or event.partial:
            return 0
        day, hour = int(event.ts // 86400), int(event.ts % 86400 // 3600)
        return len({d for d, h in state.alerts.recurrence.get(signature, ())
                    if 0 < day - d <= 28 and (day - d) % 7 == 0
                    and min(abs(h - hour), 24 - abs(h - hour)) <= 1})

    def _routine_refusal(self, state: IdentityState, event: Event, verdict: Verdict) -> bool:
        """Whether a refused call whose only news is the call itself (a new action,
        service or error) is refused this way routinely: the same action and error on at
        least ``recurrence_days`` of the last ``recurrence_lookback_days`` days, at any
        hour. The same call from a new network, client or region is not routine. A refused
        call is never learned as known, so a job denied one permission every half hour
        raised a "first call" alert every day for ever; an identity probing many actions is
        still seen (each action is its own sighting, and the probing tallies are
        techniques)."""
        if not all(w.signal.detector in _ACTION_NOVELTY for w in verdict.signals):
            return False  # news besides the call itself (a network, a client, a region)
        signature = f"refused|{event.action}|{event.error_code or ''}"
        return self._recurs(state, event, signature, any_hour=True)

    def _recurs(self, state: IdentityState, event: Event, signature: str, *,
                any_hour: bool) -> bool:
        """Record this sighting of ``signature`` and say whether it was seen on at least
        ``recurrence_days`` earlier days of the lookback (``_sightings``); a partial event
        neither counts nor is counted."""
        days = self.settings.recurrence_days
        if days <= 0 or event.partial:
            return False
        return self._sightings(state, event, signature, any_hour=any_hour, record=True) >= days

    def _sightings(self, state: IdentityState, event: Event, signature: str, *,
                   any_hour: bool, record: bool) -> int:
        """How many earlier days of ``recurrence_lookback_days`` saw ``signature`` around
        this hour (±1 h; at any hour with ``any_hour``); with ``record`` (and a complete
        event), this sighting is kept: one entry per day and hour, or per day for
        ``any_hour``, in the identity's bounded recurrence memory."""
        day, hour = int(event.ts // 86400), int(event.ts % 86400 // 3600)
        recurrence = state.alerts.recurrence
        seen = recurrence.get(signature, ())
        lookback = self.settings.recurrence_lookback_days
        earlier = {d for d, h in seen if 0 < day - d <= lookback
                   and (any_hour or min(abs(h - hour), 24 - abs(h - hour)) <= 1)}
        # at any hour, one sighting a day: a refusal every half hour would otherwise fill
        # the bounded list with today's hours alone
        new = all(d != day for d, _ in seen) if any_hour else [day, hour] not in seen
        if record and new and not event.partial:
            entries = recurrence.setdefault(signature, [])
            entries.append([day, hour])
            del entries[: max(0, len(entries) - MAX_RECURRENCE_ENTRIES)]
            self._cap_recurrence(recurrence, signature)
        return len(earlier)

    @staticmethod
    def _cap_recurrence(recurrence: dict[str, list[list[int]]], keep: str) -> None:
        while len(recurrence) > MAX_RECURRENCE_SIGNATURES:
            oldest = next(k for k in recurrence if k != keep)
            del recurrence[oldest]

    def _alertable(self, verdict: Verdict) -> bool:
        """Worth tracking: at least ``track_severity`` (emitted only from ``min_severity``)."""
        return SEVERITY_RANK[verdict.severity] >= SEVERITY_RANK[self.settings.track_severity]

    def _context(self, event: Event, verdict: Verdict, change: list[Any] | None) -> None:
        if change is not None:
            verdict.notes.append(
                f"change context: {change[1]} ran {change[2]} at {_iso(change[0])}"
            )

    # ------------------------------------------------------------------ policy alerts

    def _policy_signal(
        self, event: Event, sens: Sensitivity | None, in_learning: bool, profile: Any
    ) -> Signal | None:
        """A synthetic signal for an explicit policy violation, or None."""
        rule = self._policy_rule(event, in_learning)
        if rule is not None:
            name = str(rule.get("name") or "rule")
            return Signal(
                detector=f"policy.{name}",
                score=1.0,
                observed=event.action,
                baseline="configured policy rule",
                sentence=f"{event.action} matches policy rule {name}: {rule.get('reason', '')}",
                value=event.action,
            )
        if sens is None or not sens.policy or not in_learning:
            return None
        progress = profile.learning_progress(event.ts, scored=True)
        return Signal(
            detector=f"policy.{sens.category}",
            score=1.0,
            observed=event.action,
            baseline=f"no baseline yet ({progress})",
            sentence=(
                f"{event.action} ({sens.label}) by an identity still in its learning period;"
                " this action is alerted without a baseline"
                if progress.startswith("learning") else
                f"{event.action} ({sens.label}) by an identity with a thin history;"
                " this action is alerted without a full baseline"
            ),
            value=event.action,
        )

    def _policy_rule(self, event: Event, in_learning: bool) -> Mapping[str, Any] | None:
        for action_rx, identity_rx, rule in self.settings.policy_matchers:
            if not (in_learning or rule.get("always")):
                continue
            if action_rx.match(event.action) and identity_rx.match(event.identity):
                return rule
        return None

    def _policy_verdict(self, event: Event, signal: Signal, sens: Sensitivity | None) -> Verdict:
        if sens is not None and signal.detector == f"policy.{sens.category}":
            severity = sens.level
        else:
            rule = self._policy_rule(event, True) or {}
            severity = str(rule.get("severity", "high"))
            if severity not in SEVERITY_RANK:
                severity = "high"
        return Verdict(1.0, severity, [Weighted(signal, 1.0)], sens, ["policy violation"])

    # ------------------------------------------------------------------ grouping

    def _raise(
        self, event: Event, state: IdentityState, verdict: Verdict, out: list[Alert]
    ) -> None:
        shadow = "shadow" in verdict.notes
        groups = state.alerts.groups
        name, group = self._find_group(groups, verdict, shadow)
        if group is None:
            if self._cooling(state, name, verdict, event.ts):
                self.stats.suppressed["cooldown"] += 1
                return
            group = self._open_group(event, state, name, verdict, shadow)
            groups[name] = group
            self._track_open(event.identity, group.closes)
            material = True
            before = None
        else:
            before = group.severity if group.revision else None
            material = group.fold(
                event, verdict, self.settings.max_evidence_ids, self.settings.max_signals
            )
            # each revision describes the identity as it is known at its time: an IAM user
            # first seen using an SDK key and then signing in to the console is human from
            # then on (the inventory says so; the alert said workload in every revision)
            inventory = state.inventory
            group.identity_kind, group.kind_reason = inventory.kind, inventory.kind_reason
            group.closes = min(
                group.opened + self.settings.group_max, group.last + self.settings.group_window
            )
            material = group.escalate(self.settings.severity_for) or material
        self._annotate(group, event, verdict, state)
        if SEVERITY_RANK[group.severity] < SEVERITY_RANK[self.settings.min_severity]:
            return  # pending: evidence accumulates silently until it earns min_severity
        if group.revision == 0 or material:
            out.append(self._emit(event.identity, group, new=group.revision == 0))
            self._tell(state, event, verdict, group.severity)
            if before is not None and before != group.severity and not (
                    group.shadow or self.shadow):
                self.stats.escalations[(before, group.severity)] += 1

    @staticmethod
    def _find_group(
        groups: dict[str, AlertGroup], verdict: Verdict, shadow: bool
    ) -> tuple[str, AlertGroup | None]:
        """The open group this verdict folds into: its top detector's family if open, else
        any open behavioural group of the identity (related signals make one alert).
        Policy violations and shadow alerts only group with their own kind."""
        prefix = "shadow." if shadow else ""
        family = verdict.top.signal.detector.partition(".")[0]
        name = prefix + family
        if name in groups or not groups or family == "policy":
            return name, groups.get(name)
        for other, group in groups.items():
            if other.startswith("policy") or other.startswith("shadow.") != shadow:
                continue
            return other, group
        return name, None

    def _cooling(self, state: IdentityState, name: str, verdict: Verdict, ts: float) -> bool:
        entry = state.alerts.cooldowns.get(name)
        if entry is None:
            return False
        until, rank = entry
        if ts >= until:
            del state.alerts.cooldowns[name]
            return False
        return SEVERITY_RANK[verdict.severity] <= rank

    def _open_group(
        self, event: Event, state: IdentityState, name: str, verdict: Verdict, shadow: bool
    ) -> AlertGroup:
        window = self.settings.group_window
        bucket = int(event.ts // window)
        top = verdict.top.signal
        evidence_key = f"{top.detector}\x1f{top.value}\x1f{event.event_id}"
        inventory = state.inventory
        group = AlertGroup(
            group=name,
            alert_id=make_alert_id(event.identity, name, bucket, evidence_key),
            opened=event.ts,
            closes=event.ts + window,
            last=event.ts,
            score=verdict.score,
            severity=verdict.severity,
            identity_kind=inventory.kind,  # as every later revision (``fold``) takes it
            kind_reason=inventory.kind_reason,
            owner=event.owner or inventory.owner or NO_OWNER,
            tenant=event.tenant or inventory.tenant,
            shadow=shadow,
        )
        group.fold(event, verdict, self.settings.max_evidence_ids, self.settings.max_signals)
        return group

    def _annotate(self, group: AlertGroup, event: Event, verdict: Verdict, state: Any) -> None:
        """Context an analyst needs: peer group, change context, learning state, actor."""
        context = group.context
        if "peer_group" not in context:
            context["peer_group"] = self._peer_group(event)
        context["learning"] = state.profile.learning_progress(event.ts, scored=True)
        context["in_learning"] = state.profile.scored_stage(event.ts) == LEARNING
        notes = context.setdefault("notes", [])
        for note in verdict.notes:
            if note != "shadow" and note not in notes and len(notes) < 8:
                notes.append(note)
        if any(n.startswith("change context") for n in verdict.notes):
            context["change_context"] = next(
                n for n in verdict.notes if n.startswith("change context")
            )
        if event.partial:
            context["partial_events"] = context.get("partial_events", 0) + 1
        if state.alerts.insights:
            self._attach_insights(group, state, event.ts)
        _note_silence(context, event.ts, self._previous_seen)
        if event.actor:
            actors = context.setdefault("actors", [])
            if event.actor not in actors and len(actors) < 5:
                actors.append(event.actor)

    # ------------------------------------------------------------------ insights (B03)

    def _insight(self, event: Event) -> list[Alert]:
        """Keep a CloudTrail insight with the identity it names; raise nothing.

        An insight alone is a rate change of one API across the account, which the volume
        models already judge per identity with the identity's own seasonality; alerting on
        it again would double-count, so it only explains alerts. It is kept in the
        identity's alert state (bounded, travels with the state), attached to the open
        groups it overlaps (shown from their next revision) and to alerts raised in its
        window: ``start`` .. ``end``, or ``INSIGHT_OPEN_SECONDS`` after a start whose end
        never came.
        """
        info = event.attributes[INSIGHT_ATTRIBUTE]
        state = self.store.get(event.identity)
        if state is None or not isinstance(info, dict) or not info.get("shared_event_id"):
            self.stats.insight_context["no_state"] += 1
            return []
        insights = state.alerts.insights
        shared = str(info["shared_event_id"])
        ts = event.ts
        entry = insights.get(shared)
        if entry is None:
            minutes = info.get("duration_minutes") if info.get("state") == "end" else None
            entry = insights[shared] = {key: info.get(key) for key in INSIGHT_FIELDS}
            entry["start"] = ts - 60.0 * minutes if isinstance(minutes, float) else ts
            entry["end"] = None
        if info.get("state") == "end":
            entry["end"] = max(ts, entry["start"])
        else:
            entry["start"] = min(ts, entry["start"])
        _prune_insights(insights, ts)
        self.stats.insight_context["stored"] += 1
        if shared not in insights:  # pruned at once: older than every insight kept
            return []
        start, end = entry["start"], _insight_end(entry)
        for group in state.alerts.groups.values():
            if group.opened <= end and group.last >= start:
                _attach_insight(group.context, shared, entry)
        return []

    def _attach_insights(self, group: AlertGroup, state: IdentityState, ts: float) -> None:
        """Attach the identity's insights whose window holds ``ts`` to the group."""
        insights = state.alerts.insights
        _prune_insights(insights, ts)
        for shared, entry in insights.items():
            if entry["start"] <= ts <= _insight_end(entry):
                if _attach_insight(group.context, shared, entry):
                    self.stats.insight_context["attached"] += 1

    def _peer_group(self, event: Event) -> str | None:
        try:
            return self.peers.group_of(event)
        except (AttributeError, KeyError, ValueError):
            return None

    def _emit(self, identity: str, group: AlertGroup, *, new: bool) -> Alert:
        group.revision += 1
        group.mark_sent()
        ids = self._finding_ids(group)
        for tid in self.attack.ids_for(self._categories(group), group.detectors):
            if tid not in ids:
                ids.append(tid)
        # ids found before (kept with the group's state) stay: a group only gains evidence
        ids.extend(tid for tid in group.techniques if tid not in ids)
        group.techniques = ids
        alert = group.to_alert(identity, self.attack.describe(ids), self.settings)
        self.stats.count_alert(alert, new=new, shadow=self.shadow)
        return alert

    def _finding_ids(self, group: AlertGroup) -> list[str]:
        """ATT&CK ids named by the technique findings among the group's detectors."""
        ids: list[str] = []
        for detector in group.detectors:
            for tid in self._technique_ids.get(detector, ()):
                if tid not in ids:
                    ids.append(tid)
        return ids

    def _categories(self, group: AlertGroup) -> list[Sensitivity]:
        """The group's sensitive categories, most severe level first (stable)."""
        found = [self.catalogue.category(name) for name in group.categories]
        ranked = [s for s in found if s is not None]
        ranked.sort(key=lambda s: -SEVERITY_RANK[s.level])
        return ranked

    def _track_open(self, identity: str, closes: float) -> None:
        current = self._open.get(identity)
        if current is None or closes < current:
            self._open[identity] = closes

    def _close_expired(self, identity: str, state: IdentityState, now: float, out: list) -> None:
        groups = state.alerts.groups
        for name in [n for n, g in groups.items() if g.closes <= now]:
            group = groups.pop(name)
            if group.revision == 0:
                continue  # never reached min_severity: nothing was said, nothing to cool
            if group.unsent:
                out.append(self._emit(identity, group, new=False))
            state.alerts.cooldowns[name] = [
                group.closes + self.settings.cooldown, float(SEVERITY_RANK[group.severity])
            ]
        if now != float("inf"):  # finish() keeps cooldowns for a saved snapshot
            for name in [n for n, (until, _) in state.alerts.cooldowns.items() if until <= now]:
                del state.alerts.cooldowns[name]
        if groups:
            self._open[identity] = min(g.closes for g in groups.values())
        else:
            self._open.pop(identity, None)

    def _sweep(self, now: float, out: list[Alert]) -> None:
        self._next_sweep = now + SWEEP_SECONDS
        for identity in [k for k, closes in self._open.items() if closes <= now]:
            state = self.store.get(identity)
            if state is None:
                self._open.pop(identity, None)
                continue
            self._close_expired(identity, state, now, out)

    def finish(self) -> list[Alert]:
        """Close every open group (end of a replay); return their final revisions."""
        out: list[Alert] = []
        for identity in list(self._open):
            state = self.store.get(identity)
            if state is not None:
                self._close_expired(identity, state, float("inf"), out)
        self._open.clear()
        return out

    # ------------------------------------------------------------------ change context

    def _remember_change(self, event: Event) -> None:
        tenant = event.target_tenant or event.tenant or ""
        record = [event.ts, event.identity, event.action]
        for token in _resource_tokens(event):
            key = f"{tenant}|{token}"
            self._changes.pop(key, None)
            self._changes[key] = record
        while len(self._changes) > MAX_CHANGES:
            del self._changes[next(iter(self._changes))]

    def _change_for(self, event: Event) -> list[Any] | None:
        if not self._changes:
            return None
        tenant = event.tenant or ""
        window = self.settings.change_window
        for token in _identity_tokens(event):
            record = self._changes.get(f"{tenant}|{token}")
            if record is None or record[1] == event.identity:
                continue
            if 0.0 <= event.ts - record[0] <= window:
                return record
        return None

    # ------------------------------------------------------------------ feedback

    def mark_expected(self, identity: str, detector: str, value: str) -> bool:
        """Teach the baseline that (detector, value) is normal for ``identity``.

        Returns False when the identity has no state. The pair is also remembered in the
        identity's alert state so it is not raised again even before the model relearns.
        """
        return self.mark_expected_outcome(identity, detector, value) is not None

    def mark_expected_outcome(self, identity: str, detector: str, value: str) -> bool | None:
        """``mark_expected`` saying what happened: None when the identity has no state,
        True when a model learned the value, False when the pair is only remembered (the
        volume model with no held-back run, dormancy, multivariate and policy signals have
        nothing to learn), so ``feedback`` never claims learning that did not happen."""
        state = self.store.get(identity)
        if state is None:
            return None
        learned = bool(state.profile.mark_expected(detector, value))
        keys = [f"{detector}\x1f{value}"]
        if detector == "novelty.action":
            # The action's pairs (with a network, with a resource) are only scored once
            # the action is known, so they would surface right after this feedback.
            keys.append(f"{PAIR_PREFIX}\x1f{value}|")
        expected = state.alerts.expected
        for key in keys:
            if key not in expected:
                expected.append(key)
        del expected[: max(0, len(expected) - MAX_EXPECTED)]
        return learned

    # ------------------------------------------------------------------ state

    def identity_state(self, key: str) -> bytes | None:
        """The identity's state blob (profile + inventory + alert state), or None."""
        if self._bounded:
            return self.store.blob(key)  # type: ignore[attr-defined]
        state = self.store.get(key)
        if state is None:
            return None
        return encode_identity(state)

    def set_identity_state(self, key: str, data: bytes) -> None:
        """Install an identity's state from ``identity_state`` output (a table value)."""
        state = self._decode_identity(data)
        # written by an earlier run (a worker's table): its owner is that run's config's
        state.inventory.owner = self._owners.owner_of(key)
        self._install(key, state)

    def _install(self, key: str, state: IdentityState) -> None:
        self.store[key] = state
        inventory = state.inventory
        if inventory.tenant and inventory.events:
            self._watch(inventory.tenant, inventory.first_seen)
        if state.alerts.groups:
            self._open[key] = min(g.closes for g in state.alerts.groups.values())
        else:
            self._open.pop(key, None)

    def export_state(self) -> bytes:
        """A versioned snapshot of every identity, the peer index and the change context.

        Layout: magic, version and header length, the JSON header, the peer index, one
        (key, blob) per identity, then the SHA-256 of everything before it.
        """
        header = orjson.dumps({
            "version": SNAPSHOT_VERSION,
            "identities": len(self.store),
            "now": self._now,
            "changes": self._changes,
            # what the baselines mean depends on some of these (``check_snapshot_settings``)
            "models": self.model_settings.snapshot_record(),
        })
        peers = self.peers.to_bytes()
        parts = [SNAPSHOT_MAGIC, struct.pack(">HI", SNAPSHOT_VERSION, len(header)), header]
        parts.append(struct.pack(">I", len(peers)))
        parts.append(peers)
        for key in list(self.store):
            blob = self.identity_state(key)
            if blob is None:
                continue
            raw_key = key.encode("utf-8")
            parts.append(struct.pack(">II", len(raw_key), len(blob)))
            parts.append(raw_key)
            parts.append(blob)
        body = b"".join(parts)
        return body + hashlib.sha256(body).digest()

    def check_snapshot(self, data: bytes) -> None:
        """``load_state``'s checks that decode nothing (magic, version, the SHA-256
        trailer, the header, the model settings it was written with); ``StateError``.
        A worker runs them before it creates any topic for a ``--load-state``."""
        self._open_snapshot(data)

    def _open_snapshot(self, data: bytes) -> tuple[dict[str, Any], _Reader, list[str]]:
        """The header, a reader at the peer index and the settings warnings of a snapshot
        whose magic, version, checksum and header hold; ``StateError`` otherwise."""
        from models.settings import check_snapshot_settings

        reader = _Reader(data, "snapshot")
        head = bytes(data[: len(SNAPSHOT_MAGIC)])
        if not data:
            raise StateError("not an nhi-detector state snapshot (the file is empty)")
        if len(head) < 4 or not SNAPSHOT_MAGIC.startswith(head):
            # another file altogether, however short: not a snapshot cut inside its magic
            raise StateError(NOT_A_SNAPSHOT)
        reader.take(len(SNAPSHOT_MAGIC))
        version, header_len = reader.unpack(">HI")
        if version != SNAPSHOT_VERSION:
            raise StateError(
                f"snapshot format version {version} is not supported by this build (it reads "
                f"version {SNAPSHOT_VERSION}); it was written by a different version: "
                "rebuild the snapshot with a matching replay"
            )
        if len(data) < reader.pos + DIGEST_BYTES:
            raise StateError("snapshot is truncated (no checksum)")
        body, digest = bytes(data[:-DIGEST_BYTES]), bytes(data[-DIGEST_BYTES:])
        if hashlib.sha256(body).digest() != digest:
            raise StateError("snapshot is damaged (checksum mismatch): it was altered or "
                             "truncated after it was written")
        reader = _Reader(body, "snapshot")
        reader.take(len(SNAPSHOT_MAGIC) + struct.calcsize(">HI"))
        header = _snapshot_header(reader.take(header_len))
        return header, reader, check_snapshot_settings(header["models"], self.model_settings)

    def load_state(self, data: bytes) -> None:
        """Replace this detector's state with a snapshot from ``export_state``.

        Everything is checked before anything is replaced: magic, version, the SHA-256
        trailer, the header's types, the exact identity count and no trailing bytes. Any
        failure raises ``StateError`` and leaves this detector as it was.
        """
        from models.peers import PeerIndex

        header, reader, warnings = self._open_snapshot(data)
        (peers_len,) = reader.unpack(">I")
        try:
            peers = PeerIndex.from_bytes(reader.take(peers_len), self.model_settings)
        except StateError:
            raise
        except DECODE_ERRORS as err:
            raise StateError(f"snapshot peer index is corrupt: {err}") from err
        loaded: list[tuple[str, IdentityState]] = []
        for key, blob in reader.identities(header["identities"]):
            try:
                loaded.append((key, self._decode_identity(blob)))
            except StateError as err:
                raise StateError(f"identity {key!r}: {err}") from err
        if reader.pos != len(reader.data):
            raise StateError(
                f"snapshot has {len(reader.data) - reader.pos} unexpected bytes after its "
                f"{header['identities']} identities"
            )
        self.peers = peers
        self.store.clear()
        self._open.clear()
        for key, state in loaded:
            # The owner a record carries is the one the snapshot's run configured. Its
            # identity's next event takes this run's owner; one with no new event kept the
            # old one (or one whose rule is gone). The config is the truth for both (and
            # for a worker's table values, ``set_identity_state``).
            state.inventory.owner = self._owners.owner_of(key)
            self._install(key, state)
        self._changes = header["changes"]
        self._now = header["now"]
        self.snapshot_time = self._now
        self._next_sweep = self._now
        for warning in warnings:
            logger.warning("%s", warning)

    def state_size_bytes(self) -> int:
        """Approximate bytes of identity state: each profile's cheap size estimate (no
        serialisation, so a metrics scrape stays fast with many identities) plus
        bookkeeping for the inventory and open alert groups."""
        total = 0
        for state in list(self.store.values()):
            total += int(state.profile.size_estimate()) + INVENTORY_BYTES
            total += GROUP_BYTES * len(state.alerts.groups)
        return total

    # ------------------------------------------------------------------ inventory

    def inventory(self) -> list[dict[str, Any]]:
        """One entry per identity, sorted by key (see ``detector.inventory``)."""
        entries = (self.inventory_entry(key) for key in sorted(self.store))
        return [entry for entry in entries if entry is not None]

    def inventory_entry(self, key: str) -> dict[str, Any] | None:
        """One identity's inventory entry (what the worker publishes per identity)."""
        state = self._peek(key)
        if state is None:
            return None
        # A worker that restored this identity from its table without applying a new event
        # (a redelivery after a crash) has a clock behind what the identity has seen; the
        # identity's own last event bounds "now" from below.
        now = max(self._now, state.inventory.last_seen)
        return state.inventory.view(
            key,
            now=now,
            dormant_after=self._dormant_after,
            in_learning=bool(state.profile.in_learning(now)),
            thin_history=bool(state.profile.thin_history(now)),
        )

    def _peek(self, key: str) -> IdentityState | None:
        """The identity's state without marking it used (an evicted one stays evicted)."""
        if self._bounded:
            return self.store.peek(key)  # type: ignore[attr-defined]
        return self.store.get(key)

    def identities_summary(self) -> dict[str, Any]:
        """Counts for metrics and the replay summary: tracked, in learning, learned on a thin
        history, dormant, by kind."""
        now = self._now
        in_learning = thin = dormant = held = 0
        by_kind: dict[str, int] = {}
        for state in list(self.store.values()):
            record = state.inventory
            by_kind[record.kind] = by_kind.get(record.kind, 0) + 1
            if state.profile.in_learning(now):
                in_learning += 1
            elif state.profile.thin_history(now):
                thin += 1
            if now - record.last_seen > self._dormant_after:
                dormant += 1
            # behaviour held out of learning and not yet accepted (B21): a count that stays
            # high means identities locked out of a legitimate new level
            if state.profile.held_count():
                held += 1
        return {
            "tracked": len(self.store),
            "in_learning": in_learning,
            "thin_history": thin,
            "dormant": dormant,
            "persistent_anomaly": held,
            "by_kind": dict(sorted(by_kind.items())),
        }


# ---------------------------------------------------------------------- helpers


def _technique_verdict(techniques: list[tuple[Signal, str]], behaviour: Verdict | None,
                       sens: Sensitivity | None) -> Verdict:
    """The verdict of an event with technique findings: at least the most severe
    finding's severity, with the behavioural verdict's signals and notes when the
    identity's baseline also found the event odd."""
    severity = max((s for _, s in techniques), key=SEVERITY_RANK.__getitem__)
    weighted = [Weighted(signal, 1.0) for signal, _ in _by_severity(techniques)]
    notes = [TECHNIQUE_NOTE]
    if behaviour is not None:
        weighted += behaviour.signals
        notes += [n for n in behaviour.notes if n not in notes]
        if SEVERITY_RANK[behaviour.severity] > SEVERITY_RANK[severity]:
            severity = behaviour.severity
        sens = behaviour.sensitivity or sens
    return Verdict(1.0, severity, weighted, sens, notes)


def _add_techniques(verdict: Verdict, techniques: list[tuple[Signal, str]]) -> None:
    """Fold technique findings into a policy verdict (one alert for one action)."""
    verdict.signals.extend(Weighted(signal, 1.0) for signal, _ in _by_severity(techniques))
    for _, severity in techniques:
        if SEVERITY_RANK[severity] > SEVERITY_RANK[verdict.severity]:
            verdict.severity = severity
    verdict.cap = ""
    verdict.notes.append(TECHNIQUE_NOTE)


def _by_severity(techniques: list[tuple[Signal, str]]) -> list[tuple[Signal, str]]:
    return sorted(techniques, key=lambda item: -SEVERITY_RANK[item[1]])


def _is_expected(expected: list[str], detector: str, value: str) -> bool:
    """Whether feedback marked (detector, value): exactly, or as a pair of a marked action
    (``novelty.action_*`` entries hold the action and ``|`` as a value prefix)."""
    if f"{detector}\x1f{value}" in expected:
        return True
    if not detector.startswith(PAIR_PREFIX):
        return False
    return any(
        entry.startswith(PAIR_PREFIX + "\x1f") and value.startswith(entry[len(PAIR_PREFIX) + 1:])
        for entry in expected
    )


def _insight_end(entry: dict[str, Any]) -> float:
    end = entry.get("end")
    return float(end) if end is not None else float(entry["start"]) + INSIGHT_OPEN_SECONDS


def _note_silence(context: dict[str, Any], ts: float, previous: float) -> None:
    """Keep in ``context`` the longest silence of the identity before one of the alert's
    events (``silence_seconds``, null for its very first event) and, from a week, a plain
    ``silence`` line: a dormant credential that comes back within the dormancy horizon
    raises no dormancy signal, yet its weeks of silence are the strongest clue."""
    gap = max(0, int(ts - previous)) if previous > 0.0 else None
    known = context.get("silence_seconds")
    if "silence_seconds" in context and (gap is None or (known is not None and known >= gap)):
        return
    context["silence_seconds"] = gap
    if gap is not None and gap >= SILENCE_NOTE_SECONDS:
        context["silence"] = f"first activity after {gap // 86400} days of silence"


def _prune_insights(insights: dict[str, dict[str, Any]], now: float) -> None:
    """Forget insights over for ``INSIGHT_KEEP_SECONDS``; keep the latest ``MAX_INSIGHTS``."""
    for shared in [k for k, e in insights.items() if _insight_end(e) + INSIGHT_KEEP_SECONDS < now]:
        del insights[shared]
    while len(insights) > MAX_INSIGHTS:
        del insights[min(insights, key=lambda k: insights[k]["start"])]


def _attach_insight(context: dict[str, Any], shared: str, entry: dict[str, Any]) -> bool:
    """Put (or refresh) one insight in an alert group's context; True when it is new."""
    item = {"shared_event_id": shared, **{key: entry.get(key) for key in INSIGHT_FIELDS},
            "start": _iso(entry["start"]),
            "end": None if entry.get("end") is None else _iso(entry["end"])}
    listed = context.setdefault("insights", [])
    for index, old in enumerate(listed):
        if old["shared_event_id"] == shared:
            listed[index] = item
            return False
    if len(listed) >= MAX_ALERT_INSIGHTS:
        return False
    listed.append(item)
    return True


def _iso(ts: float) -> str:
    from detector.alerts import iso

    return iso(ts)


def _tail(text: str) -> str:
    for sep in ("/", ":"):
        text = text.rsplit(sep, 1)[-1]
    return text


def _resource_tokens(event: Event) -> list[str]:
    """Names under which a deploy change is remembered: the resource and its tail."""
    tokens = []
    if event.resource:
        tokens.append(event.resource)
        tail = _tail(event.resource)
        if tail and tail != event.resource:
            tokens.append(tail)
    namespace = event.attributes.get("namespace") if event.attributes else None
    if namespace and event.source == "k8s.audit":
        tokens.append(f"k8s-namespace:{namespace}")
    return tokens


def _identity_tokens(event: Event) -> Iterator[str]:
    """Names under which a change to this identity may have been recorded."""
    yield event.identity
    tail = _tail(event.identity)
    if tail != event.identity:
        yield tail
    if event.session:
        yield event.session
    if event.identity.startswith("system:serviceaccount:"):
        parts = event.identity.split(":")
        if len(parts) >= 4:
            yield f"k8s-namespace:{parts[2]}"


def encode_identity(state: IdentityState) -> bytes:
    """``NHID`` + version + profile blob + JSON of the inventory and alert state."""
    profile = state.profile.to_bytes()
    rest = orjson.dumps(
        {"inventory": state.inventory.to_dict(), "alerts": state.alerts.to_dict()},
        option=orjson.OPT_NON_STR_KEYS,
    )
    head = struct.pack(">HI", STATE_VERSION, len(profile))
    return b"".join((IDENTITY_MAGIC, head, profile, rest))


def identity_decoder(profile_class: Any, settings: Any) -> Callable[[bytes], IdentityState]:
    """``decode_identity`` with profiles of ``profile_class`` loaded under ``settings``."""
    load = profile_class.from_bytes
    return lambda data: decode_identity(data, lambda blob: load(blob, settings))


def decode_identity(data: bytes, load_profile: Callable[[bytes], Any]) -> IdentityState:
    reader = _Reader(data, "identity state")
    if reader.take(len(IDENTITY_MAGIC)) != IDENTITY_MAGIC:
        raise StateError("not an nhi-detector identity state (bad magic bytes)")
    version, profile_len = reader.unpack(">HI")
    if version != STATE_VERSION:
        raise StateError(
            f"identity state version {version} is not supported (this build reads "
            f"{STATE_VERSION})"
        )
    try:
        profile = load_profile(reader.take(profile_len))
        rest = orjson.loads(reader.rest())
        if not isinstance(rest, dict):
            raise TypeError("inventory and alert state is not a mapping")
        state = IdentityState(
            profile,
            InventoryRecord.from_dict(rest.get("inventory") or {}),
            AlertState.from_dict(rest.get("alerts") or {}),
        )
        if state.alerts.groups:
            min(float(g.closes) for g in state.alerts.groups.values())
    except StateError:
        raise
    except orjson.JSONDecodeError as err:
        raise StateError(f"identity state is corrupt: {err}") from err
    except DECODE_ERRORS as err:
        raise StateError(f"identity state is corrupt ({type(err).__name__}: {err})") from err
    return state


def _snapshot_header(raw: bytes) -> dict[str, Any]:
    """The snapshot's JSON header with its types checked; anything else is ``StateError``."""
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise StateError(f"snapshot header is not valid JSON: {err}") from err
    if not isinstance(header, dict):
        raise StateError(f"snapshot header must be a mapping, got {type(header).__name__}")
    count, now = header.get("identities"), header.get("now", 0.0)
    if type(count) is not int or count < 0:
        raise StateError(f"snapshot header: identities must be a count, got {count!r}")
    if isinstance(now, bool) or not isinstance(now, int | float) or now != now:
        raise StateError(f"snapshot header: now must be a number, got {now!r}")
    if not 0 <= now <= SNAPSHOT_LATEST:  # 1e300 loaded, then the summary's date overflowed
        raise StateError(f"snapshot header: now must be an event time from 1970 to 9999, "
                         f"got {now!r}")
    changes = header.get("changes") or {}
    if not isinstance(changes, dict) or not all(
        isinstance(v, list) for v in changes.values()
    ):
        raise StateError("snapshot header: changes must be a mapping of lists")
    return {"identities": count, "now": float(now),
            "changes": {str(k): list(v) for k, v in changes.items()},
            "models": header.get("models")}


class _Reader:
    """Bounds-checked reads over a bytes buffer; truncation raises ``StateError``."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise StateError(f"{self.what} is truncated at byte {self.pos} (wanted {n} more)")
        chunk = bytes(self.data[self.pos:end])
        self.pos = end
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def rest(self) -> bytes:
        chunk = bytes(self.data[self.pos:])
        self.pos = len(self.data)
        return chunk

    def identities(self, count: int) -> Iterator[tuple[str, bytes]]:
        for index in range(count):
            key_len, blob_len = self.unpack(">II")
            try:
                key = self.take(key_len).decode("utf-8")
            except UnicodeDecodeError as err:
                raise StateError(f"{self.what}: identity {index} has a key that is not "
                                 "UTF-8") from err
            yield key, self.take(blob_len)
