"""Scoring a replay against labelled attack scenarios, and the figures used to tune it.

A labels file says which identities did what, and when::

    {"version": 1, "scenarios": [{"id": "s01", "title": "...", "description": "...",
      "identities": ["arn:aws:iam::111122223333:role/app"],
      "start": "2024-03-22T10:00:00Z", "end": "2024-03-22T11:00:00Z",
      "event_ids": ["..."], "techniques": ["T1078.004"]}]}

``event_ids`` and ``techniques`` are optional lists of strings; times are RFC 3339 or
epoch seconds in the years events can have (1970-2100). An alert *matches* a scenario when its
identity is one of the scenario's identities and its time window overlaps [start, end],
or when its evidence holds one of the scenario's event ids (judged revision by revision).

Figures (all in event time, never wall time):

- per scenario: detected or missed, and *time to detect*: from the scenario start to the
  event time at which the first matching alert was raised (never negative);
- alerts outside scenarios per 1,000 identity-days, where an identity contributes the
  days between its first and last event, less every silence of more than ``SILENCE_DAYS``
  (30) days between two of its events (measured to the hour), at least one day, fractions
  counted. Leaving long silences out keeps the figure to the time an identity was in use:
  one record with a far-off timestamp (a clock error, a typo'd year) would otherwise add
  years to its identity and make the noise rate look as low as anyone likes;
- the quality bar: every scenario detected, at most ``MAX_OUTSIDE_PER_1000`` alerts
  outside scenarios per 1,000 identity-days, median time to detect below
  ``MAX_MEDIAN_TTD_SECONDS``;
- a threshold sweep: for each score threshold, the alerts per day that would remain and,
  with labels, recall (scenarios still detected) and precision (alerts matching a
  scenario).

Alerts are grouped and updated by the detector (same ``alert_id``, higher ``revision``):
everything here counts an alert once, using its highest revision, its highest score and
the union of its windows and evidence.
"""

from __future__ import annotations

import logging
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from detector.alerts import leading_detector
from detector.config import did_you_mean, read_settings_file
from detector.errors import ConfigError

logger = logging.getLogger(__name__)

LABELS_VERSION = 1
DAY = 86400.0
SILENCE_DAYS = 30.0
"""A silence longer than this between two events of an identity is not counted in its
identity-days; it is also the models' default dormancy period (``models.dormancy_days``),
after which an identity is called dormant rather than in use."""
MAX_OUTSIDE_PER_1000 = 2.0
MAX_MEDIAN_TTD_SECONDS = 15 * 60.0
SWEEP_THRESHOLDS = tuple(round(i * 0.05, 2) for i in range(21))
# Scenario times must lie where event times can (1970-01-01 to 2101-01-01, UTC): a time in
# epoch milliseconds, or a typo'd year, would make a scenario impossible to detect.
EARLIEST, LATEST = 0.0, 4_133_980_800.0


# ---------------------------------------------------------------------------- labels


@dataclass(frozen=True, slots=True)
class Scenario:
    """One labelled attack scenario; times are epoch seconds."""

    id: str
    title: str
    identities: frozenset[str]
    start: float
    end: float
    description: str = ""
    event_ids: frozenset[str] = frozenset()
    techniques: tuple[str, ...] = ()


def parse_time(value: Any, *, where: str) -> float:
    """An RFC 3339 string (``Z`` allowed) or epoch number to epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected an RFC 3339 time, got {value!r}")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise ConfigError(f"{where}: {value!r} is not an RFC 3339 time") from err
    if when.tzinfo is None:
        raise ConfigError(f"{where}: time {value!r} has no UTC offset")
    return when.timestamp()


def _scenario(raw: Any, where: str) -> Scenario:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a scenario must be an object")
    missing = [key for key in ("id", "identities", "start", "end") if key not in raw]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    identities = raw["identities"]
    if not isinstance(identities, list) or not all(isinstance(i, str) for i in identities):
        raise ConfigError(f"{where}: 'identities' must be a list of identity keys")
    start = parse_time(raw["start"], where=f"{where}.start")
    end = parse_time(raw["end"], where=f"{where}.end")
    if end < start:
        raise ConfigError(f"{where}: end is before start")
    if not (EARLIEST <= start and end < LATEST):
        raise ConfigError(f"{where}: start and end must be in the years 1970-2100, as event "
                          f"times are (epoch times are in seconds), got {raw['start']!r} .. "
                          f"{raw['end']!r}")
    for key in ("id", "title", "description"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise ConfigError(f"{where}: '{key}' must be a string, got {raw[key]!r}")
    if not raw["id"]:  # "id": null passed, then the summary failed after the whole replay
        raise ConfigError(f"{where}: 'id' must be a non-empty string, got {raw['id']!r}")
    _warn_unknown(raw, where)
    return Scenario(
        id=raw["id"],
        title=raw.get("title") or raw["id"],
        description=raw.get("description") or "",
        identities=frozenset(identities),
        start=start,
        end=end,
        event_ids=frozenset(_strings(raw, "event_ids", where)),
        techniques=tuple(_strings(raw, "techniques", where)),
    )


SCENARIO_KEYS = ("id", "title", "description", "identities", "start", "end", "event_ids",
                 "techniques")


def _warn_unknown(raw: dict[str, Any], where: str) -> None:
    """Say which keys of a scenario are not read (``identites``, ``event_id``): warned,
    not refused, since labels made by other tools may carry fields of their own."""
    for key in raw:
        if key not in SCENARIO_KEYS:
            logger.warning("%s: key %r is not read%s", where, key,
                           did_you_mean(str(key), SCENARIO_KEYS))


def _strings(raw: dict[str, Any], key: str, where: str) -> list[str]:
    """An optional list of strings; a lone string would be read letter by letter."""
    values = raw.get(key)
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ConfigError(f"{where}: '{key}' must be a list of strings, got {values!r:.60}")
    return values


def parse_labels(data: Any, *, origin: str = "labels") -> list[Scenario]:
    """Validate a decoded labels document and return its scenarios."""
    if not isinstance(data, dict) or not isinstance(data.get("scenarios"), list):
        raise ConfigError(f"{origin}: expected an object with a 'scenarios' list")
    version = data.get("version")
    if version != LABELS_VERSION:
        raise ConfigError(
            f"{origin}: labels format version {version!r} is not supported "
            f"(this nhi-detector reads version {LABELS_VERSION})"
        )
    scenarios = [
        _scenario(raw, f"{origin}: scenarios[{i}]") for i, raw in enumerate(data["scenarios"])
    ]
    ids = [s.id for s in scenarios]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{origin}: scenario ids are not unique")
    return scenarios


def load_labels(path: str | Path) -> list[Scenario]:
    """Read and validate a labels JSON file."""
    path = Path(path)
    try:
        data = orjson.loads(read_settings_file(path, "labels file"))
    except orjson.JSONDecodeError as err:
        raise ConfigError(f"labels file {path} is not valid JSON: {err}") from err
    return parse_labels(data, origin=str(path))


# ---------------------------------------------------------------------------- alerts


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = data.get(key)
        if value is not None:
            return value
    return None


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return parse_time(value, where="alert time")


@dataclass(frozen=True, slots=True)
class Revision:
    """One emitted revision of an alert: when it was raised (event time) and what it held."""

    raised_ts: float
    start: float
    end: float
    event_ids: frozenset[str]


@dataclass(slots=True)
class AlertRecord:
    """What evaluation and the report need from one alert, merged over its revisions."""

    alert_id: str
    identity: str
    detector: str
    severity: str
    score: float
    start: float
    end: float
    raised_ts: float
    revision: int = 1
    revisions: int = 1
    event_ids: set[str] = field(default_factory=set)
    history: list[Revision] = field(default_factory=list)

    @classmethod
    def from_native(cls, alert: Mapping[str, Any], raised_ts: float | None = None) -> AlertRecord:
        """Build from ``Alert.to_native()``; ``raised_ts`` is the event time it was emitted.

        Without ``raised_ts`` the end of the alert's window stands in for it; without a
        window, ``raised_ts`` stands in for the window.
        """
        identity = alert.get("identity")
        if isinstance(identity, Mapping):
            identity = _first(identity, "key", "id", "name")
        window = alert.get("window") if isinstance(alert.get("window"), Mapping) else {}
        start = _epoch(_first(window, "first", "start"))
        end = _epoch(_first(window, "last", "end"))
        start = next((t for t in (start, end, raised_ts) if t is not None), None)
        end = next((t for t in (end, start) if t is not None), None)
        if start is None or end is None:
            raise ValueError(f"alert {alert.get('alert_id')!r} has no time window")
        evidence = alert.get("evidence") if isinstance(alert.get("evidence"), Mapping) else {}
        raised = end if raised_ts is None else raised_ts
        event_ids = {str(e) for e in evidence.get("event_ids") or ()}
        return cls(
            alert_id=str(alert.get("alert_id") or alert.get("id")),
            identity=str(identity),
            detector=str(_alert_detector(alert)),
            severity=str(alert.get("severity") or "unknown"),
            score=float(alert.get("score") or 0.0),
            start=start,
            end=end,
            raised_ts=raised,
            revision=int(alert.get("revision") or 1),
            event_ids=event_ids,
            history=[Revision(raised, start, end, frozenset(event_ids))],
        )

    def merge(self, newer: AlertRecord) -> None:
        """Fold a later revision of the same alert into this record."""
        if newer.revision >= self.revision:
            self.revision = newer.revision
            self.severity = newer.severity
            self.detector = newer.detector
        self.revisions += 1
        self.score = max(self.score, newer.score)
        self.start = min(self.start, newer.start)
        self.end = max(self.end, newer.end)
        self.raised_ts = min(self.raised_ts, newer.raised_ts)
        self.event_ids |= newer.event_ids
        self.history.extend(newer.history)


def _alert_detector(alert: Mapping[str, Any]) -> str:
    """The alert's leading detector, as its title leads with it: the strongest signal's
    (``detector.alerts.leading_detector``), else the most frequent of ``detectors``."""
    name = alert.get("detector")
    if name:
        return str(name)
    signals = alert.get("signals") or alert.get("top_signals") or ()
    if signals and not isinstance(signals[0], Mapping):
        signals = ()
    return leading_detector([dict(s) for s in signals[:1]], alert.get("detectors") or ()) \
        or "unknown"


class AlertLog:
    """Every alert of a run, one ``AlertRecord`` per ``alert_id`` (revisions merged)."""

    def __init__(self) -> None:
        self.by_id: dict[str, AlertRecord] = {}
        self.lines = 0

    def add(self, alert: Mapping[str, Any], raised_ts: float | None = None) -> AlertRecord:
        record = AlertRecord.from_native(alert, raised_ts)
        self.lines += 1
        known = self.by_id.get(record.alert_id)
        if known is None:
            self.by_id[record.alert_id] = record
            return record
        known.merge(record)
        return known

    def records(self) -> list[AlertRecord]:
        return sorted(self.by_id.values(), key=lambda r: (r.raised_ts, r.alert_id))

    def __len__(self) -> int:
        return len(self.by_id)


# ---------------------------------------------------------------------------- activity


class Activity:
    """Per-identity first/last event time and hourly event counts.

    The replay loop updates ``spans`` and ``hourly`` inline (one dict lookup each per
    event); ``observe`` is the same for callers that do not care about the cost. The hourly
    counts are always kept, report or not: identity-days leave out an identity's long
    silences, which only its active hours show, and the report draws from the same counts.
    """

    def __init__(self) -> None:
        self.spans: dict[str, list[float]] = {}
        self.hourly: dict[str, dict[int, int]] = {}

    def observe(self, identity: str, ts: float) -> None:
        span = self.spans.get(identity)
        if span is None:
            self.spans[identity] = [ts, ts]
        elif ts > span[1]:
            span[1] = ts
        elif ts < span[0]:
            span[0] = ts
        counts = self.hourly.setdefault(identity, {})
        hour = int(ts) // 3600
        counts[hour] = counts.get(hour, 0) + 1

    def identity_days(self) -> float:
        """Identity-days of the run (see the module docstring and ``active_days``)."""
        hourly = self.hourly
        return sum(active_days(first, last, hourly.get(key, ()))
                   for key, (first, last) in self.spans.items())

    def events_before(self, ts: float) -> int:
        """Events of the run in the whole hours that end at least an hour before ``ts``: a
        lower bound of the events older than ``ts`` that late delivery does not explain."""
        last = int(ts) // 3600 - 1  # hours before this one end an hour or more before ts
        return sum(count for counts in self.hourly.values()
                   for hour, count in counts.items() if hour < last)

    def time_range(self) -> EventTimeRange | None:
        """First and last event time of the run, with its longest silence (``silence``)."""
        if not self.spans:
            return None
        first = min(s[0] for s in self.spans.values())
        last = max(s[1] for s in self.spans.values())
        return EventTimeRange(first, last, longest_silence(self.hourly))


def active_days(first: float, last: float, hours: Iterable[int]) -> float:
    """One identity's days in use: from ``first`` to ``last`` (epoch seconds), less every
    silence of more than ``SILENCE_DAYS`` between two of its active ``hours`` (epoch hour
    numbers), at least one day.

    A silence between active hours ``a`` and ``b`` leaves out the ``b - a - 1`` whole hours
    with no event; an identity with no such silence counts exactly ``(last - first) / DAY``.
    """
    span = last - first
    limit = SILENCE_DAYS * 24
    previous = None
    for hour in sorted(hours):
        if previous is not None and hour - previous > limit:
            span -= (hour - previous - 1) * 3600.0
        previous = hour
    return max(1.0, span / DAY)


@dataclass(frozen=True, slots=True)
class Silence:
    """The longest stretch of event time with no event of any identity, and the events on
    each side of it."""

    start: float
    end: float
    events_before: int
    events_after: int

    @property
    def days(self) -> float:
        return (self.end - self.start) / DAY


class EventTimeRange(tuple):
    """``(first, last)`` event time, as callers index it, and ``silence``: the run's longest
    silence when it is longer than ``SILENCE_DAYS`` (events far from the rest, usually a
    record with a wrong timestamp), else None."""

    silence: Silence | None

    def __new__(cls, first: float, last: float, silence: Silence | None = None
                ) -> EventTimeRange:
        made = super().__new__(cls, (first, last))
        made.silence = silence
        return made


def longest_silence(hourly: Mapping[str, Mapping[int, int]]) -> Silence | None:
    """The longest silence of the whole run, over all identities' active hours, when it is
    longer than ``SILENCE_DAYS``; else None."""
    totals: dict[int, int] = {}
    for counts in hourly.values():
        for hour, n in counts.items():
            totals[hour] = totals.get(hour, 0) + n
    hours = sorted(totals)
    best = None
    for a, b in zip(hours, hours[1:], strict=False):
        if b - a > SILENCE_DAYS * 24 and (best is None or b - a > best[1] - best[0]):
            best = (a, b)
    if best is None:
        return None
    before = sum(n for hour, n in totals.items() if hour <= best[0])
    after = sum(n for hour, n in totals.items() if hour >= best[1])
    return Silence((best[0] + 1) * 3600.0, best[1] * 3600.0, before, after)


def unseen_identities(scenarios: Iterable[Scenario], seen: Mapping[str, Any]) -> list[str]:
    """``scenario id: identity`` for each scenario identity no event of the run had.

    A misspelt key in a labels file (a role ARN with the wrong account) makes a scenario
    "missed" however well the detector did; naming the keys the replay never saw tells
    the two apart. Identity keys are compared exactly, as matching does.
    """
    return [f"{scenario.id}: {identity}" for scenario in scenarios
            for identity in sorted(scenario.identities) if identity not in seen]


def identity_days(spans: Iterable[tuple[float, float] | list[float]]) -> float:
    """Sum over identities of the days between first and last event, at least 1 each
    (without hourly activity, so long silences are counted: ``Activity.identity_days``
    leaves them out)."""
    return sum(max(1.0, (last - first) / DAY) for first, last in spans)


# ---------------------------------------------------------------------------- figures


def detected_at(alert: AlertRecord, scenario: Scenario) -> float | None:
    """Event time of the first revision of ``alert`` that matches ``scenario``, or None.

    A revision matches when the alert's identity is one of the scenario's and the
    revision's window overlaps [start, end], or when its evidence holds one of the
    scenario's event ids. Looking at revisions one by one keeps a grouped alert opened
    before the scenario from counting as an instant detection: it detects the scenario
    only from the revision that covers it.
    """
    same_identity = alert.identity in scenario.identities
    first = None
    for rev in alert.history:
        hit = same_identity and rev.start <= scenario.end and rev.end >= scenario.start
        if not hit and scenario.event_ids:
            hit = not scenario.event_ids.isdisjoint(rev.event_ids)
        if hit and (first is None or rev.raised_ts < first):
            first = rev.raised_ts
    return first


def matches(alert: AlertRecord, scenario: Scenario) -> bool:
    """Whether any revision of an alert belongs to a scenario (see ``detected_at``)."""
    return detected_at(alert, scenario) is not None


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: Scenario
    detected: bool
    time_to_detect: float | None
    alerts: int
    first_alert_id: str | None
    # events of its identities in the hours of its time range; None when not counted
    events_in_range: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.scenario.id,
            "title": self.scenario.title,
            "detected": self.detected,
            "time_to_detect_seconds": self.time_to_detect,
            "alerts": self.alerts,
            "first_alert_id": self.first_alert_id,
            "events_in_range": self.events_in_range,
        }


def events_in_range(scenario: Scenario, hourly: Mapping[str, Mapping[int, int]]) -> int:
    """Events the run processed for the scenario's identities in the whole hours its time
    range touches (``Activity.hourly``). Zero for a missed scenario means the detector never
    saw it: its records were dead letters (a time beyond the clock, ``future_time``), not
    in the input, or labelled with the wrong identity or times."""
    first, last = int(scenario.start) // 3600, int(scenario.end) // 3600
    return sum(count for identity in scenario.identities
               for hour, count in hourly.get(identity, {}).items() if first <= hour <= last)


@dataclass(frozen=True, slots=True)
class Evaluation:
    scenarios: tuple[ScenarioResult, ...]
    alerts_total: int
    alerts_outside: int
    identity_days: float

    @property
    def outside_per_1000(self) -> float:
        if self.identity_days <= 0:
            return 0.0 if self.alerts_outside == 0 else float("inf")
        return self.alerts_outside * 1000.0 / self.identity_days

    @property
    def detected(self) -> int:
        return sum(1 for r in self.scenarios if r.detected)

    @property
    def median_ttd(self) -> float | None:
        times = [r.time_to_detect for r in self.scenarios if r.time_to_detect is not None]
        return statistics.median(times) if times else None

    def bar(self) -> dict[str, bool]:
        """Each part of the quality bar, and ``met`` for all of them."""
        median = self.median_ttd
        parts = {
            "all_detected": bool(self.scenarios) and self.detected == len(self.scenarios),
            "outside_rate_ok": self.outside_per_1000 <= MAX_OUTSIDE_PER_1000,
            "median_ttd_ok": median is not None and median < MAX_MEDIAN_TTD_SECONDS,
        }
        parts["met"] = all(parts.values())
        return parts

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenarios": [r.to_dict() for r in self.scenarios],
            "scenarios_total": len(self.scenarios),
            "scenarios_detected": self.detected,
            "alerts_total": self.alerts_total,
            "alerts_outside_scenarios": self.alerts_outside,
            "identity_days": round(self.identity_days, 3),
            "outside_per_1000_identity_days": round(self.outside_per_1000, 3),
            "median_time_to_detect_seconds": self.median_ttd,
            "quality_bar": {
                "max_outside_per_1000_identity_days": MAX_OUTSIDE_PER_1000,
                "max_median_time_to_detect_seconds": MAX_MEDIAN_TTD_SECONDS,
                **self.bar(),
            },
        }


def evaluate(
    alerts: Iterable[AlertRecord], scenarios: Iterable[Scenario], identity_days: float,
    hourly: Mapping[str, Mapping[int, int]] | None = None,
) -> Evaluation:
    """Per-scenario detection, time to detect and the rate of alerts outside scenarios;
    with ``hourly`` (``Activity.hourly``), each scenario's events in its time range."""
    alerts = list(alerts)
    scenarios = list(scenarios)
    matched: set[str] = set()
    results = []
    for scenario in scenarios:
        hits = sorted(
            (when, a.alert_id)
            for a in alerts
            if (when := detected_at(a, scenario)) is not None
        )
        matched.update(alert_id for _, alert_id in hits)
        ttd = max(0.0, hits[0][0] - scenario.start) if hits else None
        first_id = hits[0][1] if hits else None
        seen = None if hourly is None else events_in_range(scenario, hourly)
        results.append(ScenarioResult(scenario, bool(hits), ttd, len(hits), first_id, seen))
    outside = sum(1 for a in alerts if a.alert_id not in matched)
    return Evaluation(tuple(results), len(alerts), outside, identity_days)


def threshold_sweep(
    alerts: Iterable[AlertRecord],
    scenarios: Iterable[Scenario] | None,
    span_days: float,
    thresholds: Iterable[float] = SWEEP_THRESHOLDS,
) -> list[dict[str, Any]]:
    """For each threshold: alerts per day kept, and recall / precision given labels.

    Only thresholds at or above the detector's own alert threshold are meaningful: alerts
    below it were never raised, so lower thresholds show the same figures.
    """
    alerts = list(alerts)
    scenarios = list(scenarios or ())
    hits = {s.id: {a.alert_id for a in alerts if matches(a, s)} for s in scenarios}
    relevant = set().union(*hits.values()) if hits else set()
    days = max(span_days, 1e-9)
    rows = []
    for threshold in thresholds:
        kept = {a.alert_id for a in alerts if a.score >= threshold}
        row: dict[str, Any] = {
            "threshold": threshold,
            "alerts": len(kept),
            "alerts_per_day": len(kept) / days,
        }
        if scenarios:
            row["recall"] = sum(1 for ids in hits.values() if ids & kept) / len(scenarios)
            row["precision"] = len(kept & relevant) / len(kept) if kept else None
        rows.append(row)
    return rows
