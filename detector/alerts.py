"""Alerts: findings as data, and the per-identity grouping that keeps them few.

``Alert`` is what leaves the detector (JSON lines, a Kafka topic, OCSF). ``AlertGroup`` is
the open, mutable state behind one alert: related signals of one identity and one detector
group inside ``group_window`` seconds of event time fold into it, and the alert is
re-emitted with ``revision + 1`` only when something an analyst cares about changes
(severity rises, a new detector or technique joins) or when the group closes with more
evidence than was last shown. The id never changes across revisions.

Alert id: sha256 of identity, detector group, the window bucket of the first event, and
the evidence key (first signal's detector and value, first event id). The same evidence
always gives the same id, so at-least-once delivery and repeated replays create no
duplicates downstream.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detector.event import Event
from detector.scoring import (
    EVIDENCE_PER_LINE,
    SEVERITY_RANK,
    ScoringSettings,
    Verdict,
    alert_score,
    evidence_weight,
)
from detector.triage import guidance_for

logger = logging.getLogger(__name__)

NO_OWNER = "no owner on record"
SAMPLE_FIELDS = ("action", "resource", "region", "source_ip", "network_prefix", "agent_family")
SAMPLES_PER_FIELD = 5
SENSITIVE_FIELDS = ("action", "resource", "time", "event_id", "category", "level")
TITLE_MAX = 200
MAX_VALUES = 32  # (detector, value) pairs kept per alert for feedback
MAX_SENSITIVE = 10  # catalogued sensitive actions kept per alert (evidence.sensitive_actions)
PER_DETECTOR = 2  # top signals kept per detector (e.g. two windows of volume.rate)
DEFAULT_SETTINGS = ScoringSettings()  # the bands of ``to_alert`` when it is given none
# What a window alert (one with a volume or multivariate signal) says its windows held:
# every call of the identity while the alert is open, from its first event, counted per
# action and resource (WINDOW_KEYS of each, later new ones counted as untracked), the
# first WINDOW_IDS event ids; the WINDOW_TOP most frequent of each are shown.
WINDOW_KEYS = 32
WINDOW_IDS = 10
WINDOW_TOP = 5


@dataclass(frozen=True, slots=True)
class Alert:
    """One explained finding about one identity. See ``docs/alerts.md`` for each field."""

    alert_id: str
    revision: int
    title: str
    identity: str
    identity_kind: str
    kind_reason: str
    owner: str
    tenant: str | None
    first_time: float
    last_time: float
    score: float
    severity: str
    detectors: tuple[str, ...]
    signals: tuple[dict[str, Any], ...]
    evidence: dict[str, Any]
    techniques: tuple[dict[str, Any], ...]
    context: dict[str, Any]
    group: str
    shadow: bool = False
    status: str = "open"

    @property
    def top_detector(self) -> str:
        """The detector the title leads with (see ``leading_detector``)."""
        return leading_detector(self.signals, self.detectors)

    def to_native(self) -> dict[str, Any]:
        """The native JSON form (``detector/schemas/alert.schema.json``)."""
        return {
            "schema": "nhi-detector/alert/v1",
            "alert_id": self.alert_id,
            "revision": self.revision,
            "status": self.status,
            "title": self.title,
            "severity": self.severity,
            "score": self.score,
            "identity": {
                "key": self.identity,
                "kind": self.identity_kind,
                "kind_reason": self.kind_reason,
                "owner": self.owner,
                "tenant": self.tenant,
            },
            "window": {"first": iso(self.first_time), "last": iso(self.last_time)},
            "group": self.group,
            "detectors": list(self.detectors),
            "signals": [dict(s) for s in self.signals],
            "evidence": _copy(self.evidence),
            "techniques": [_copy(t) for t in self.techniques],
            "context": _copy(self.context),
            "shadow": self.shadow,
            "triage": guidance_for(self.top_detector).to_dict(),
        }


def iso(ts: float) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z`` suffix."""
    when = datetime.fromtimestamp(ts, tz=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def make_alert_id(identity: str, group: str, bucket: int, evidence_key: str) -> str:
    raw = "\x1f".join((identity, group, str(bucket), evidence_key)).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()[:32]


def leading_detector(signals: Any, detectors: Any = ()) -> str:
    """The alert's leading detector: its strongest signal's (``signals[0]``, what the
    title leads with), else the most frequent of ``detectors``.

    The most frequent detector is often a plain ``novelty.action`` that fired on every
    first call of a burst, while the title, the severity and the analyst's first look are
    about the strongest reading (a technique finding, say); the summary, the evaluation,
    the report and OCSF all name the same one as the title."""
    if signals and isinstance(signals[0], dict) and signals[0].get("detector"):
        return str(signals[0]["detector"])
    return str(detectors[0]) if detectors else ""


def is_rule(detector: str) -> bool:
    """A policy violation or technique finding: a rule matched the request itself."""
    return detector.startswith(("policy.", "technique."))


def signal_sentence(record: dict[str, Any]) -> str:
    """The signal's sentence as an alert shows it: a signal read on a refused request says
    so, since the call was an attempt that changed nothing."""
    sentence = str(record.get("sentence") or record.get("detector") or "")
    if record.get("refused") and "refused" not in sentence:
        sentence += " (refused)"
    return sentence


_WINDOWS = ("volume.", "multivariate.")  # detectors that judge a window of many requests


def _lead_order(record: dict[str, Any]) -> tuple[int, float, str, str]:
    """The order of an alert's signals, the first one leading its title: what was done
    before when or how much. Rule matches (techniques, policies) first; then readings of
    the action itself on a catalogued sensitive event (``novelty.action``); then other
    readings on such an event; then the rest, each by weighted score. By score alone a
    managed identity's role assignment read "first activity at 14:00 UTC" (the schedule
    scored higher) and a service account's ``SetIamPolicy`` read as the ``GetIamPolicy``
    before it (a tie, broken by name)."""
    detector = record["detector"]
    if is_rule(detector):
        rank = 0
    elif record.get("category"):
        rank = 1 if detector.startswith("novelty.action") else 2
    else:
        rank = 3
    return rank, -record["weighted_score"], detector, record["value"]


def signal_record(weighted: Any, event: Event | None = None,
                  category: str | None = None) -> dict[str, Any]:
    """The alert's view of one weighted signal: observed vs baseline and the sentence.

    ``refused`` marks a signal read on one refused request (a window count is about many
    requests, so it never is); ``category`` is the catalogue category of the event it was
    read on, so that a title pairs a reason only with that event's category."""
    signal = weighted.signal
    record = {
        "detector": signal.detector,
        "score": round(float(signal.score), 4),
        "weighted_score": round(min(max(float(weighted.score), 0.0), 1.0), 4),
        "observed": str(signal.observed),
        "baseline": str(signal.baseline),
        "sentence": str(signal.sentence) or signal.detector,
        "value": str(signal.value or ""),
    }
    if weighted.peer_prevalence is not None:
        record["peer_prevalence"] = round(float(weighted.peer_prevalence), 4)
    if signal.degraded:
        record["degraded"] = True
    if event is not None and event.failed and not signal.detector.startswith(_WINDOWS):
        record["refused"] = True
    if category:
        record["category"] = category
    return record


@dataclass(slots=True)
class AlertGroup:
    """Open state of one grouped alert (serialised inside the identity's state blob)."""

    group: str
    alert_id: str
    opened: float
    closes: float
    last: float
    score: float  # the highest score of one event's verdict (what ``escalate`` reads)
    severity: str
    identity_kind: str
    kind_reason: str
    owner: str
    tenant: str | None
    detectors: list[str] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    techniques: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    count: int = 0
    samples: dict[str, list[str]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    context: dict[str, Any] = field(default_factory=dict)
    values: list[list[str]] = field(default_factory=list)  # every [detector, value] seen
    values_cut: bool = False  # a pair was left out of ``values`` (MAX_VALUES reached)
    sensitive: list[dict[str, Any]] = field(default_factory=list)  # sensitive_action records
    note_levels: dict[str, str] = field(default_factory=dict)  # severity note -> its level
    cap: str = "info"  # highest severity ceiling of the folded verdicts
    # line of evidence -> "detector\x1fvalue" -> its strongest weighted score: the alert
    # score's weight of evidence (at most EVIDENCE_PER_LINE readings per line)
    lines: dict[str, dict[str, float]] = field(default_factory=dict)
    # the identity's calls while the group is open (``observe``), shown on a window alert
    window: dict[str, Any] = field(default_factory=dict)
    revision: int = 0
    emitted_count: int = 0
    shadow: bool = False

    def fold(self, event: Event, verdict: Verdict, max_ids: int, max_signals: int) -> bool:
        """Add one event's verdict; True when the change is worth a new revision."""
        material = False
        self.last = max(self.last, event.ts)
        self.opened = min(self.opened, event.ts)  # a late event widens the window back
        self.count += 1
        sensitive = self._keep_sensitive(event, verdict)
        if event.event_id not in self.event_ids:
            if len(self.event_ids) < max_ids:
                self.event_ids.append(event.event_id)
            elif sensitive:
                self._make_room(self.event_ids, event.event_id, "event_id")
        self._sample(event, sensitive)
        for weighted in verdict.signals:
            detector = weighted.signal.detector
            self.counts[detector] = self.counts.get(detector, 0) + 1
            self._reading(weighted, detector)
            pair = [detector, str(weighted.signal.value or "")]
            if pair not in self.values:
                if len(self.values) < MAX_VALUES:
                    self.values.append(pair)
                else:
                    self.values_cut = True
            if detector not in self.detectors:
                self.detectors.append(detector)
                material = True
        if not self.window:  # the group's first event: its activity is counted from here
            self.window = {"since": event.ts, "calls": 0, "failed": 0, "actions": {},
                           "resources": {}, "untracked": [0, 0], "ids": [], "sent": 0}
            self.observe(event)
        self._merge_signals(verdict, max_signals, event)
        self._note_levels(verdict)
        if verdict.sensitivity and verdict.sensitivity.category not in self.categories:
            self.categories.append(verdict.sensitivity.category)
            material = True
        if SEVERITY_RANK[verdict.severity] > SEVERITY_RANK[self.severity]:
            self.severity = verdict.severity
            material = True
        if SEVERITY_RANK[verdict.ceiling] > SEVERITY_RANK[self.cap]:
            self.cap = verdict.ceiling
        self.score = max(self.score, verdict.score)
        return material

    def escalate(self, severity_for: Any) -> bool:
        """Raise the severity to what the accumulated score earns under the group's
        highest ceiling: a burst of odd behaviour that includes a privilege change is as
        severe as the privilege change allows, even if no single event scored that high."""
        earned = severity_for(self.score)
        if SEVERITY_RANK[earned] > SEVERITY_RANK[self.cap]:
            earned = self.cap
        if SEVERITY_RANK[earned] > SEVERITY_RANK[self.severity]:
            self.severity = earned
            return True
        return False

    def observe(self, event: Event) -> None:
        """Count one call of the identity into the group's activity (the engine calls it
        for every event of the identity while the group is open, signals or not: a volume
        alert is about the calls that made the volume, most of which raise no signal of
        their own). Shown only once a window signal joins (``windowed``)."""
        window = self.window
        if not window:
            return
        window["calls"] += 1
        if event.failed:
            window["failed"] += 1
        for n, (name, value) in enumerate((("actions", event.action),
                                           ("resources", event.resource))):
            if not value:
                continue
            counts = window[name]
            if value in counts:
                counts[value] += 1
            elif len(counts) < WINDOW_KEYS:
                counts[value] = 1
            else:
                window["untracked"][n] += 1
        if len(window["ids"]) < WINDOW_IDS:
            window["ids"].append(str(event.event_id))

    @property
    def windowed(self) -> bool:
        """Whether a window detector (volume, multivariate) contributed: then the alert
        shows ``evidence.window_activity``."""
        return any(detector.startswith(_WINDOWS) for detector in self.detectors)

    @property
    def unsent(self) -> bool:
        """Whether evidence came in since the last revision was emitted (for a window
        alert, calls counted in its activity count too). A group saved by an older build
        has no window counts (``window`` empty), as ``mark_sent`` and ``to_alert`` allow."""
        if self.count > self.emitted_count:
            return True
        return bool(self.window) and self.windowed and self.window["calls"] > self.window["sent"]

    def mark_sent(self) -> None:
        """Remember what the revision just emitted showed (see ``unsent``)."""
        self.emitted_count = self.count
        if self.window:
            self.window["sent"] = self.window["calls"]

    def _reading(self, weighted: Any, detector: str) -> None:
        """Keep one weighted signal as a reading of its line of evidence: the strongest
        per (detector, value), the ``EVIDENCE_PER_LINE`` strongest per line."""
        readings = self.lines.setdefault(weighted.line or detector, {})
        key = f"{detector}\x1f{weighted.signal.value or ''}"
        strength = round(min(max(float(weighted.score), 0.0), 1.0), 4)
        known = readings.get(key)
        if known is not None:
            if strength > known:
                readings[key] = strength
            return
        if len(readings) < EVIDENCE_PER_LINE:
            readings[key] = strength
            return
        weakest = min(readings, key=lambda k: (readings[k], k))
        if strength > readings[weakest]:
            del readings[weakest]
            readings[key] = strength

    def _keep_sensitive(self, event: Event, verdict: Verdict) -> bool:
        """Keep the event among ``sensitive`` when its action is in a catalogue category
        that applies (``verdict.sensitivity``); True when it was kept.

        A burst of discovery calls followed by ``iam:CreateUser`` must still name the user
        created: the list holds at most ``MAX_SENSITIVE`` distinct (action, resource)
        pairs, and once full a more severe category replaces the newest least severe one.
        """
        sens = verdict.sensitivity
        if sens is None or not event.action:
            return False
        resource = str(event.resource or "")
        for record in self.sensitive:
            if record["action"] == event.action and record["resource"] == resource:
                return False
        record = {
            "action": str(event.action),
            "resource": resource,
            "time": iso(event.ts),
            "event_id": str(event.event_id),
            "category": sens.category,
            "level": sens.level,
        }
        if len(self.sensitive) < MAX_SENSITIVE:
            self.sensitive.append(record)
            return True
        rank = SEVERITY_RANK[sens.level]
        weakest = min(range(len(self.sensitive)),
                      key=lambda n: (SEVERITY_RANK[self.sensitive[n]["level"]], -n))
        if SEVERITY_RANK[self.sensitive[weakest]["level"]] >= rank:
            return False
        del self.sensitive[weakest]
        self.sensitive.append(record)
        return True

    def _sample(self, event: Event, sensitive: bool = False) -> None:
        """Up to ``SAMPLES_PER_FIELD`` values per field; the action and resource of a
        sensitive event replace plain ones when the field is full."""
        for name in SAMPLE_FIELDS:
            value = getattr(event, name)
            if not value:
                continue
            values = self.samples.setdefault(name, [])
            if value in values:
                continue
            if len(values) < SAMPLES_PER_FIELD:
                values.append(str(value))
            elif sensitive and name in ("action", "resource"):
                self._make_room(values, str(value), name)

    def _make_room(self, values: list[str], value: str, name: str) -> None:
        """Put ``value`` (of the sensitive event just kept) in the full list ``values`` in
        place of the last of its least sensitive items, if that is less sensitive: a plain
        item (not among ``sensitive``'s ``name`` fields) first, then one of a lower level;
        otherwise leave the list as it is."""
        ranks: dict[str, int] = {}
        for record in self.sensitive:
            ranks[record[name]] = max(ranks.get(record[name], -1), SEVERITY_RANK[record["level"]])
        weakest = min(range(len(values)), key=lambda n: (ranks.get(values[n], -1), -n))
        if ranks.get(values[weakest], -1) < ranks.get(value, -1):
            del values[weakest]
            values.append(value)

    def _note_levels(self, verdict: Verdict) -> None:
        """Remember, for each note about severity, the highest severity of a verdict that
        carried it: ``to_alert`` drops it once the alert's severity has moved past that."""
        for note in verdict.notes:
            if "severity" not in note:
                continue
            known = self.note_levels.get(note)
            if known is None or SEVERITY_RANK[verdict.severity] > SEVERITY_RANK[known]:
                self.note_levels[note] = verdict.severity

    def _notes(self) -> list[str]:
        """``context.notes`` without the severity notes that no longer describe the alert:
        "severity held at low" came from an event whose verdict was low, and once other
        events raised the alert to high it would contradict the alert it sits on."""
        level = SEVERITY_RANK[self.severity]
        return [note for note in self.context.get("notes") or []
                if note not in self.note_levels
                or SEVERITY_RANK.get(self.note_levels[note], -1) >= level]

    def _merge_signals(self, verdict: Verdict, max_signals: int,
                       event: Event | None = None) -> None:
        """Keep the strongest signals, at most ``PER_DETECTOR`` per detector."""
        index = {(s["detector"], s["value"]): n for n, s in enumerate(self.signals)}
        category = verdict.sensitivity.category if verdict.sensitivity else None
        changed = False
        for weighted in verdict.signals:
            key = (weighted.signal.detector, str(weighted.signal.value or ""))
            at = index.get(key)
            if at is None:
                index[key] = len(self.signals)
                self.signals.append(signal_record(weighted, event, category))
                changed = True
            elif weighted.score > self.signals[at]["weighted_score"]:
                # the same window or value scored higher later on: show the stronger reading
                self.signals[at] = signal_record(weighted, event, category)
                changed = True
            elif event is not None and not event.failed:
                # a successful request showed the same reading: no longer only an attempt
                self.signals[at].pop("refused", None)
        if not changed:
            return
        self.signals.sort(key=_lead_order)
        per_detector: dict[str, int] = {}
        kept = []
        for record in self.signals:
            used = per_detector.get(record["detector"], 0)
            if used < PER_DETECTOR and len(kept) < max_signals:
                per_detector[record["detector"]] = used + 1
                kept.append(record)
        self.signals[:] = kept

    def to_alert(self, identity: str, technique_records: list[dict[str, Any]],
                 settings: ScoringSettings = DEFAULT_SETTINGS) -> Alert:
        """Freeze the group into an ``Alert`` at its current revision; its score is placed
        in the band of its severity by its weight of evidence (``scoring.alert_score``)."""
        weight = evidence_weight(self.lines, settings.signal_floor)
        detectors = tuple(sorted(self.detectors, key=lambda d: (-self.counts.get(d, 0), d)))
        evidence = {
            "event_ids": list(self.event_ids),
            "event_count": self.count,
            "event_ids_truncated": self.count > len(self.event_ids),
            "first_time": iso(self.opened),
            "last_time": iso(self.last),
            "counts_by_detector": dict(sorted(self.counts.items())),
            "samples": {k: list(v) for k, v in sorted(self.samples.items())},
            "signal_values": [{"detector": d, "value": v} for d, v in self.values],
            "signal_values_truncated": self.values_cut,
            "sensitive_actions": [dict(record) for record in self.sensitive],
            "weight_of_evidence": round(weight, 2),
            "lines_of_evidence": len(self.lines),
        }
        if self.window and self.windowed:
            evidence["window_activity"] = _window_activity(self.window)
        context = dict(self.context)
        if "notes" in context:
            context["notes"] = self._notes()
        context["sensitive_categories"] = list(self.categories)
        return Alert(
            alert_id=self.alert_id,
            revision=self.revision,
            title=make_title(identity, self),
            identity=identity,
            identity_kind=self.identity_kind,
            kind_reason=self.kind_reason,
            owner=self.owner,
            tenant=self.tenant,
            first_time=self.opened,
            last_time=self.last,
            score=alert_score(self.severity, weight, settings),
            severity=self.severity,
            detectors=detectors,
            signals=tuple(self.signals),
            evidence=evidence,
            techniques=tuple(technique_records),
            context=context,
            group=self.group,
            shadow=self.shadow,
            status="open",
        )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AlertGroup:
        """The group saved by ``to_dict``; a wrong-typed field raises ``TypeError``.

        A snapshot's checksum proves it is whole, not that its writer was this build: a
        wrong type loaded here would fail later, at that identity's next alert, with the
        replay half done. Loading refuses it instead (``StateError``, exit 2)."""
        if not isinstance(data, dict):
            raise TypeError(f"alert group is not a mapping: {data!r:.40}")
        group = cls(**{k: v for k, v in data.items() if k in cls.__slots__})
        for name in ("group", "alert_id", "identity_kind", "kind_reason", "owner"):
            check_type(f"alert group {name}", getattr(group, name), str)
        check_type("alert group tenant", group.tenant, (str, type(None)))
        for name in ("severity", "cap"):
            if getattr(group, name) not in SEVERITY_RANK:
                raise TypeError(f"alert group {name} is not a severity: "
                                f"{getattr(group, name)!r:.40}")
        for name in ("opened", "closes", "last", "score"):
            check_type(f"alert group {name}", getattr(group, name), (int, float))
        for name in ("count", "revision", "emitted_count"):
            check_type(f"alert group {name}", getattr(group, name), int)
        if not isinstance(group.shadow, bool):
            raise TypeError(f"alert group shadow is not true or false: {group.shadow!r:.40}")
        for name in ("detectors", "categories", "techniques", "event_ids"):
            check_items(f"alert group {name}", getattr(group, name), str)
        check_items("alert group signals", group.signals, dict)
        for record in group.signals:
            check_type("alert signal detector", record.get("detector"), str)
            check_type("alert signal value", record.get("value"), str)
            check_type("alert signal sentence", record.get("sentence"), str)
            check_type("alert signal weighted_score", record.get("weighted_score"),
                       (int, float))
        check_type("alert group context", group.context, dict)
        check_type("alert group samples", group.samples, dict)
        for values in group.samples.values():
            check_items("alert group samples", values, str)
        check_type("alert group counts", group.counts, dict)
        check_items("alert group counts", list(group.counts.values()), int)
        check_items("alert group values", group.values, list)
        if not isinstance(group.values_cut, bool):
            raise TypeError(f"alert group values_cut is not true or false: "
                            f"{group.values_cut!r:.40}")
        check_items("alert group sensitive", group.sensitive, dict)
        for record in group.sensitive:
            for name in SENSITIVE_FIELDS:
                check_type(f"alert sensitive action {name}", record.get(name), str)
            if record["level"] not in SEVERITY_RANK:
                raise TypeError(f"alert sensitive action level is not a severity: "
                                f"{record['level']!r:.40}")
        for pair in group.values:
            check_items("alert group value pair", pair, str)
        _check_window(group.window)
        check_type("alert group lines", group.lines, dict)
        for readings in group.lines.values():
            check_type("alert group line", readings, dict)
            check_items("alert group line readings", list(readings.values()), (int, float))
        check_type("alert group note_levels", group.note_levels, dict)
        for level in group.note_levels.values():
            if level not in SEVERITY_RANK:
                raise TypeError(f"alert group note level is not a severity: {level!r:.40}")
        return group


def _window_activity(window: dict[str, Any]) -> dict[str, Any]:
    """A window alert's ``evidence.window_activity``: the identity's calls since the
    alert's first event, the most frequent actions and resources with their counts, the
    first event ids."""
    def top(counts: dict[str, int], name: str) -> list[dict[str, Any]]:
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:WINDOW_TOP]
        return [{name: value, "count": count} for value, count in ranked]

    return {
        "since": iso(window["since"]),
        "calls": window["calls"],
        "failed": window["failed"],
        "distinct_actions": len(window["actions"]),
        "distinct_resources": len(window["resources"]),
        "top_actions": top(window["actions"], "action"),
        "top_resources": top(window["resources"], "resource"),
        "calls_beyond_tracked": {"actions": window["untracked"][0],
                                 "resources": window["untracked"][1]},
        "event_ids": list(window["ids"]),
        "event_ids_truncated": window["calls"] > len(window["ids"]),
    }


def check_type(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is of ``types`` (a bool is
    never taken for a number)."""
    if (isinstance(value, bool) and bool not in (types if isinstance(types, tuple)
                                                 else (types,))) \
            or not isinstance(value, types):
        raise TypeError(f"{name} has the wrong type: {value!r:.40}")


def _check_window(window: Any) -> None:
    """A saved window activity: empty, or every field of ``AlertGroup.fold``'s with its
    type (a damaged one would fail at the identity's next event instead of at load)."""
    check_type("alert group window", window, dict)
    if not window:
        return
    check_type("alert window since", window.get("since"), (int, float))
    for name in ("calls", "failed", "sent"):
        check_type(f"alert window {name}", window.get(name), int)
    for name in ("actions", "resources"):
        check_type(f"alert window {name}", window.get(name), dict)
        check_items(f"alert window {name}", list(window[name].values()), int)
    check_items("alert window untracked", window.get("untracked"), int)
    if len(window["untracked"]) != 2:
        raise TypeError(f"alert window untracked is not [actions, resources]: "
                        f"{window['untracked']!r:.40}")
    check_items("alert window ids", window.get("ids"), str)


def check_items(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    """``value`` is a list whose every item is of ``types``."""
    check_type(name, value, list)
    for item in value:
        check_type(f"{name} item", item, types)


def short_identity(identity: str) -> str:
    """The readable tail of a key: ``role/ci-deployer`` for a role ARN."""
    if identity.startswith("arn:"):
        parts = identity.split(":", 5)
        if len(parts) == 6:
            return parts[5]
    return identity


_REFUSAL_NOTE = re.compile(r" \((?:attempt refused: [^()]*|refused)\)$")


def make_title(identity: str, group: AlertGroup) -> str:
    """One line for a SIEM list: kind, identity, the strongest reason (the leading signal's
    sentence: for a window detector, that signal's window, which may be earlier than the
    alert's last event), the sensitive categories and how many other detectors contributed
    (the ``detectors`` field).

    The reason names one event (or window) and the brackets name the category of that
    event; categories that only other events of the alert had follow "other events:", so
    a refused ``DeleteTrail`` never reads as the logging tampering a ``StopLogging`` of the
    same alert was. A reason read on a refused request says "(refused)".

    A title over ``TITLE_MAX`` is cut inside the reason, so the identity, the categories and
    the count always show, and so does a reason's closing refusal note."""
    def line(text: str) -> str:
        return " ".join(text.split())  # one line whatever the values held

    lead = group.signals[0] if group.signals else None
    top = line(signal_sentence(lead) if lead else group.group)
    # The leading signal's sentence was written while its window was open ("… in the
    # 10-minute window from 03:40 UTC so far"); a later revision still leads with it, and
    # "so far" would read as now, a bare count as the window's whole (118 calls read as
    # all, where the window went on to 1,180: ``evidence.window_activity`` has those). The
    # title says when the count was taken.
    if " window from " in top:
        top = top.replace(" so far,", " at the first alert,", 1)
    head = line(f"{group.identity_kind} {short_identity(identity)}: ")
    tail = ""
    if group.categories:
        tail += f" [{_categories(group.categories, lead)}]"
    extra = len(group.detectors) - 1
    if extra > 0:
        tail += f" (+{extra} more detector{'s' if extra > 1 else ''})"
    tail = line(tail)
    tail = f" {tail}" if tail else ""
    title = f"{head} {top}{tail}"
    if len(title) > TITLE_MAX:
        # A refusal note ends the reason; cutting it off would make a refused attempt
        # read as done, so the cut falls before it and the note is kept.
        found = _REFUSAL_NOTE.search(top)
        note = found.group(0) if found else ""
        body = top[: len(top) - len(note)]
        room = TITLE_MAX - len(head) - len(tail) - len(note) - 2  # the space, the ellipsis
        if room >= 20:
            title = f"{head} {body[:room].rstrip()}…{note}{tail}"
        else:
            title = title[: TITLE_MAX - 1] + "…"
    return title


def _categories(categories: list[str], lead: dict[str, Any] | None) -> str:
    """The title's bracket: the leading signal's own category first, then the ones only
    other events of the alert had, after "other events:"."""
    def words(names: list[str]) -> str:
        return ", ".join(c.replace("_", " ") for c in names)

    own = [c for c in categories if lead is not None and c == lead.get("category")]
    others = [c for c in categories if c not in own]
    if not others:
        return words(own)
    if not own:
        return f"other events: {words(others)}"
    return f"{words(own)}; other events: {words(others)}"
