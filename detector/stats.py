"""Run counters shared by every stage: the single source of truth for metrics and summaries.

Every stage increments plain counters on one ``RunStats`` object (cheap on the hot path);
``detector.metrics`` exposes them to Prometheus at scrape time and the replay summary prints
them. Label values are bounded: sources, reasons, severities, detector names, kinds; never an
identity key or an address.

Accounting invariant for inputs: for every source,
``records_read == events + dead_letters + skipped`` (``skipped`` covers digest files,
control messages, insight events kept apart, duplicate Kubernetes stages).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunStats:
    """Mutable counters for one run (replay) or one worker process."""

    records_read: Counter[str] = field(default_factory=Counter)  # source
    events: Counter[str] = field(default_factory=Counter)  # source
    events_by_kind: Counter[str] = field(default_factory=Counter)  # identity kind
    dead_letters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, reason)
    skipped: Counter[tuple[str, str]] = field(default_factory=Counter)  # (source, reason)
    files_read: int = 0
    bytes_read: int = 0
    late_events: int = 0
    identity_resolution: Counter[str] = field(default_factory=Counter)  # path
    # (source, source path): how each event arrived, s3 / cwl / eventbridge / bare (B13)
    events_by_path: Counter[tuple[str, str]] = field(default_factory=Counter)
    # (source, outcome): partial events salvaged from truncated records (B10); extra events
    # beside the record's dead letter, so they are not in ``events`` (see ``balanced``)
    salvage: Counter[tuple[str, str]] = field(default_factory=Counter)
    insights: Counter[tuple[str, str]] = field(default_factory=Counter)  # (type, state) B03
    insight_context: Counter[str] = field(default_factory=Counter)  # engine outcome
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (severity, detector)
    alert_updates: int = 0
    # (from, to) severity: an emitted alert re-sent at a higher severity (``alerts`` counts
    # only the first revision, so without this an alert that turns critical never shows)
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)  # reason
    findings: Counter[str] = field(default_factory=Counter)  # technique rule (engine)
    shadow_alerts: Counter[str] = field(default_factory=Counter)  # detector
    degradations: Counter[tuple[str, str]] = field(default_factory=Counter)  # (model, what)
    last_event_ts: float = 0.0

    def count_alert(self, alert: Any, *, new: bool, shadow: bool = False) -> None:
        """Count one alert sent (``new``) or revised: the one count of the engine and the
        sweeps. An alert on trial (``alert.shadow``: its detector is in
        ``shadow_detectors``; or ``shadow``: every alert of a shadow worker) counts among
        the shadow alerts, never among the alerts. Here rather than on the detector, so
        that the sweeps need no reference back to it (a cycle that kept a dropped
        detector alive until the cyclic collector ran)."""
        if alert.shadow or shadow:
            if new:
                self.shadow_alerts[alert.top_detector] += 1
        elif new:
            self.alerts[(alert.severity, alert.top_detector)] += 1
        if not new:
            self.alert_updates += 1

    def account(self, source: str) -> dict[str, int]:
        """The accounting line for one source: read, events, dead letters, skipped."""
        dead = sum(n for (src, _), n in self.dead_letters.items() if src == source)
        skipped = sum(n for (src, _), n in self.skipped.items() if src == source)
        return {
            "records_read": self.records_read[source],
            "events": self.events[source],
            "dead_letters": dead,
            "skipped": skipped,
        }

    def balanced(self) -> bool:
        """True when every record read is an event, a dead letter or skipped."""
        sources = set(self.records_read) | set(self.events)
        sources |= {src for src, _ in self.dead_letters} | {src for src, _ in self.skipped}
        for source in sources:
            line = self.account(source)
            if line["records_read"] != line["events"] + line["dead_letters"] + line["skipped"]:
                return False
        return True
