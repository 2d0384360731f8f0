"""What the replay tells a person: a progress line while it runs and a summary at the end.

``Progress`` redraws one terminal line (events, events/s, alerts) at most ``REFRESH``
times per second; the replay loop calls ``tick`` only every few thousand events, so a
replay pays nothing per event for it. ``build_summary`` gathers the run's figures into
one JSON-ready dict (what ``--summary-json`` writes); ``render_summary`` lays the same
dict out as plain-text tables for the terminal.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from detector.evaluation import SILENCE_DAYS
from detector.stats import RunStats
from detector.suppression import EXPIRED_RULE  # also imported from here (metrics)

logger = logging.getLogger(__name__)

REFRESH = 4.0  # redraws per second, at most
TICK_EVERY = 512  # the replay loop calls tick() once per this many events (a power of 2)


class Progress:
    """A single self-overwriting status line on a terminal; silent when disabled."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.started = time.perf_counter()
        self._last = 0.0
        self._width = 0

    def tick(self, events: int, alerts: int, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 1.0 / REFRESH:
            return
        self._last = now
        elapsed = max(now - self.started, 1e-9)
        line = f"  {events:,} events  {events / elapsed:,.0f} events/s  {alerts:,} alerts"
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write(f"\r{line}{pad}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _by_reason(counter: Counter[tuple[str, str]]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for (source, reason), n in counter.items():
        out[f"{source}/{reason}"] += n
    return dict(sorted(out.items()))


def _throughput(events: int, wall: float, cpu: float | None) -> dict[str, Any]:
    """Events per wall second, and per CPU second of this process (the one-core figure,
    steady when other programs share the machine)."""
    out: dict[str, Any] = {
        "wall_seconds": round(wall, 3),
        "events_per_second": round(events / wall, 1) if wall > 0 else None,
    }
    if cpu is not None:
        out["cpu_seconds"] = round(cpu, 3)
        out["events_per_cpu_second"] = round(events / cpu, 1) if cpu > 0 else None
    return out


def _alerts(stats: RunStats, alerts: Sequence[Any] | None, lines: int) -> dict[str, Any]:
    per_severity: Counter[str] = Counter()
    per_detector: Counter[str] = Counter()
    if alerts is not None:
        per_severity.update(a.severity for a in alerts)
        per_detector.update(a.detector for a in alerts)
    else:
        for (severity, detector), n in stats.alerts.items():
            per_severity[severity] += n
            per_detector[detector] += n
    return {
        "total": sum(per_severity.values()),
        "lines_written": lines,
        "updates": stats.alert_updates,
        "per_severity": dict(sorted(per_severity.items())),
        "per_detector": dict(sorted(per_detector.items())),
        # a signal matching only an expired rule went through and was judged as usual: it
        # is counted apart, since listing it as suppressed would say the opposite
        "suppressed": {reason: n for reason, n in sorted(stats.suppressed.items())
                       if reason != EXPIRED_RULE},
        "matched_expired_rules": stats.suppressed.get(EXPIRED_RULE, 0),
        "shadow": dict(sorted(stats.shadow_alerts.items())),
    }


def _identities(identities: Mapping[str, Any] | None) -> dict[str, Any]:
    """The detector's identity counts, with ``learned`` (tracked and out of learning)."""
    out = dict(identities or {})
    if isinstance(out.get("tracked"), int) and isinstance(out.get("in_learning"), int):
        out = {"tracked": out["tracked"], "learned": out["tracked"] - out["in_learning"], **out}
    return out


def _event_time(time_range: tuple[float, float] | None) -> dict[str, Any]:
    """First and last event time; with ``silence`` when the run's events are split by a
    silence longer than ``SILENCE_DAYS`` (``detector.evaluation.EventTimeRange``)."""
    out: dict[str, Any] = {
        "first": _iso(time_range[0]) if time_range else None,
        "last": _iso(time_range[1]) if time_range else None,
    }
    silence = getattr(time_range, "silence", None)
    if silence is not None:
        out["silence"] = {
            "from": _iso(silence.start),
            "to": _iso(silence.end),
            "days": round(silence.days, 1),
            "events_before": silence.events_before,
            "events_after": silence.events_after,
        }
    return out


def _silence_line(silence: Mapping[str, Any]) -> str:
    """The warning printed under the event-time line when the span is implausible."""
    few = min(silence["events_before"], silence["events_after"])
    side = "after" if silence["events_after"] <= silence["events_before"] else "before"
    return (f"  WARNING: no event for {silence['days']:,.0f} days ({silence['from']} .. "
            f"{silence['to']}); {few:,} event(s) lie {side} that silence, far from the "
            "rest: check their timestamps. Identity-days leave out such silences.")


LATE_WARN_SHARE = 0.01
"""A share of late events from which the summary and the log warn: a few late events are
clock skew or a slow delivery; this many means the input is not in event-time order, and
every late event reaches the baselines out of turn, so detections are lost (a file of whole
days newest-first: 97% late, 5 of 10 scenarios detected instead of 8)."""
LATE_WARN_MIN = 10  # and at least this many, so that one late event in 50 says nothing

SORT_ADVICE = (
    "the input must be in event-time order (files in any order, but the records of each "
    "file oldest first): sort it first, as docs/replay.md (Input order) shows"
)


def late_warning(late: int, total: int) -> str | None:
    """The warning for ``late`` of ``total`` events beyond the reorder window, or None."""
    if total <= 0 or late < LATE_WARN_MIN or late / total < LATE_WARN_SHARE:
        return None
    return (f"{late:,} of {total:,} events ({100 * late / total:.1f}%) came later than the "
            f"reorder window and were processed out of order, which loses detections; "
            + SORT_ADVICE)


def snapshot_warning(before: int, total: int, snapshot_time: float) -> str | None:
    """The warning for ``before`` of ``total`` events older than the loaded snapshot's last
    event, or None (the thresholds of ``late_warning``)."""
    if total <= 0 or before < LATE_WARN_MIN or before / total < LATE_WARN_SHARE:
        return None
    return (f"at least {before:,} of {total:,} events ({100 * before / total:.1f}%) are "
            f"older than the loaded state snapshot, whose last event is at "
            f"{_iso(snapshot_time)}: its baselines already hold that time, so they were "
            "learned twice and counted out of order, which changes detections. --load-state "
            "continues a replay with the events after the snapshot: replay only newer "
            "files with it, or the whole history without it")


def no_events_warning(stats: RunStats) -> str | None:
    """What a run that read no event at all says, and why (None when one was read)."""
    if sum(stats.events.values()):
        return None
    dead, skipped = sum(stats.dead_letters.values()), sum(stats.skipped.values())
    parts = []
    if dead:
        reasons = ", ".join(sorted({reason for _, reason in stats.dead_letters}))
        parts.append(f"{dead:,} dead letter{'s' if dead > 1 else ''} ({reasons}; each "
                     "with its message in the --dead-letters file)")
    if skipped:
        reasons = ", ".join(sorted({reason for _, reason in stats.skipped}))
        parts.append(f"{skipped:,} skipped ({reasons})")
    found = "; ".join(parts) if parts else "no input held a record"
    return f"no events were read: {found}"


def _state_timings(timings: Mapping[str, float] | None) -> dict[str, float]:
    return {key: round(value, 3) for key, value in sorted((timings or {}).items())}


def build_summary(
    stats: RunStats,
    *,
    wall_seconds: float,
    cpu_seconds: float | None = None,
    identities: Mapping[str, Any] | None = None,
    alerts: Sequence[Any] | None = None,
    alert_lines: int = 0,
    time_range: tuple[float, float] | None = None,
    evaluation: Mapping[str, Any] | None = None,
    interrupted: bool = False,
    state_timings: Mapping[str, float] | None = None,
    snapshot: tuple[float, int] | None = None,
) -> dict[str, Any]:
    """All the figures of one replay as a JSON-ready dict (what ``--summary-json`` writes).

    Keys: ``interrupted``; ``events`` (``total``, ``per_source``, ``per_kind``);
    ``records_read`` per source and ``accounting_balanced``; ``files_read``, ``bytes_read``;
    ``identities`` (``tracked``, ``learned``, ``in_learning``, ``thin_history``, ``dormant``,
    ``by_kind``);
    ``alerts`` (``total`` distinct, ``lines_written``, ``updates``, ``per_severity``,
    ``per_detector``, ``suppressed``, ``matched_expired_rules``, ``shadow``);
    ``dead_letters`` and ``skipped`` per ``source/reason``; ``late_events``;
    ``late_warning`` (text, or null: ``late_warning``); ``no_events_warning`` (text, or
    null: ``no_events_warning``); ``degradations``; ``throughput``
    (``wall_seconds``, ``events_per_second``, ``cpu_seconds``, ``events_per_cpu_second``,
    all of the event loop only); ``state_snapshot`` (``load_seconds``, ``load_cpu_seconds``,
    ``save_seconds``, ``save_cpu_seconds``, those of the snapshot loaded or written);
    ``snapshot_warning`` (text, or null: ``snapshot_warning``, from ``snapshot``: the
    ``--load-state`` snapshot's last event time and the run's events in hours before it);
    ``event_time`` (``first``, ``last``, and ``silence`` when no event came for more than
    ``SILENCE_DAYS``: ``from``, ``to``, ``days``, ``events_before``, ``events_after``);
    ``alerts.matched_expired_rules`` counts signals that only an expired suppression rule
    matched (not suppressed, so not in ``suppressed``); with labels, ``evaluation`` (see
    ``detector.evaluation.Evaluation.to_dict``, including ``quality_bar.met``).

    ``alerts`` are the run's distinct alerts (``AlertRecord``, revisions merged): the
    per-severity and per-detector counts are of those, at their last revision. Without
    them, the counts come from ``stats.alerts`` (one per alert raised).
    """
    total = sum(stats.events.values())
    summary: dict[str, Any] = {
        "interrupted": interrupted,
        "events": {
            "total": total,
            "per_source": dict(sorted(stats.events.items())),
            "per_kind": dict(sorted(stats.events_by_kind.items())),
        },
        "records_read": dict(sorted(stats.records_read.items())),
        "accounting_balanced": stats.balanced(),
        "files_read": stats.files_read,
        "bytes_read": stats.bytes_read,
        "identities": _identities(identities),
        "alerts": _alerts(stats, alerts, alert_lines),
        "dead_letters": _by_reason(stats.dead_letters),
        "skipped": _by_reason(stats.skipped),
        "no_events_warning": None if interrupted or time_range is not None
        else no_events_warning(stats),
        "late_events": stats.late_events,
        "late_warning": late_warning(stats.late_events, total),
        "degradations": {f"{m}/{w}": n for (m, w), n in sorted(stats.degradations.items())},
        "throughput": _throughput(total, wall_seconds, cpu_seconds),
        "state_snapshot": _state_timings(state_timings),
        "snapshot_warning": snapshot_warning(snapshot[1], total, snapshot[0])
        if snapshot is not None else None,
        "event_time": _event_time(time_range),
    }
    if evaluation is not None:
        summary["evaluation"] = dict(evaluation)
    return summary


# ---------------------------------------------------------------------------- rendering


def _table(title: str, rows: list[tuple[str, Any]]) -> list[str]:
    if not rows:
        return [f"{title}: none"]
    width = max(len(str(k)) for k, _ in rows)
    lines = [title]
    for key, value in rows:
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        lines.append(f"  {str(key):<{width}}  {shown}")
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}min"
    return f"{seconds / 3600:.1f}h"


def _identity_rows(identities: Mapping[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in identities.items():
        if isinstance(value, Mapping):
            rows.extend((f"{key}: {k}", v) for k, v in value.items())
        else:
            rows.append((key, value))
    return rows


def _evaluation_lines(ev: Mapping[str, Any]) -> list[str]:
    lines = ["Labelled scenarios"]
    width = max([len(s["id"]) for s in ev["scenarios"]] + [8])
    for s in ev["scenarios"]:
        verdict = "detected" if s["detected"] else "MISSED"
        ttd = _duration(s["time_to_detect_seconds"])
        note = " (no event of its identities in its time range)" if (
            not s["detected"] and s.get("events_in_range") == 0) else ""
        lines.append(f"  {s['id']:<{width}}  {verdict:<8}  ttd {ttd:>8}  {s['title']}{note}")
    bar = ev["quality_bar"]
    lines += [
        f"  detected {ev['scenarios_detected']}/{ev['scenarios_total']}"
        f", median time to detect {_duration(ev['median_time_to_detect_seconds'])}",
        f"  alerts outside scenarios: {ev['alerts_outside_scenarios']:,} over"
        f" {ev['identity_days']:,.1f} identity-days ="
        f" {ev['outside_per_1000_identity_days']:.2f} per 1,000 identity-days",
        f"  (identity-days: each identity's first to last event, less its silences over"
        f" {SILENCE_DAYS:g} days, at least 1)",
        "  quality bar (all detected, <= {:g}/1,000 identity-days, median ttd < {}): {}".format(
            bar["max_outside_per_1000_identity_days"],
            _duration(bar["max_median_time_to_detect_seconds"]),
            "MET" if bar["met"] else "NOT MET",
        ),
    ]
    return lines


def _state_lines(timings: Mapping[str, float]) -> list[str]:
    """How long the snapshot took to load and save: outside the replay's figures above."""
    parts = [f"{verb} in {timings[key + '_seconds']:.1f}s ({timings[key + '_cpu_seconds']:.1f}s "
             "CPU)" for key, verb in (("load", "loaded"), ("save", "saved"))
             if key + "_seconds" in timings]
    return [f"State snapshot {', '.join(parts)} (not in the figures above)"] if parts else []


def _warning(summary: Mapping[str, Any], key: str) -> list[str]:
    """The summary's warning ``key`` as its indented line, or no line when it is null."""
    return [f"  WARNING: {summary[key]}"] if summary.get(key) else []


def render_summary(summary: Mapping[str, Any]) -> str:
    """The end-of-replay summary as plain text tables."""
    ev, al, tp = summary["events"], summary["alerts"], summary["throughput"]
    rate = tp["events_per_second"]
    cpu = ""
    if tp.get("events_per_cpu_second"):
        cpu = f"; {tp['events_per_cpu_second']:,.0f} events per CPU second"
    sections = [
        [
            f"Replay: {ev['total']:,} events in {tp['wall_seconds']:.1f}s"
            f" = {rate or 0:,.0f} events/s{cpu}"
            + (" (INTERRUPTED: partial figures)" if summary.get("interrupted") else ""),
        ] + _state_lines(summary.get("state_snapshot") or {})
        + _warning(summary, "snapshot_warning") + [
            f"Event time {summary['event_time']['first']} .. {summary['event_time']['last']}"
            if summary["event_time"]["first"] else "Event time: none (no events)",
        ] + _warning(summary, "no_events_warning")
        + ([_silence_line(summary["event_time"]["silence"])]
           if summary["event_time"].get("silence") else []),
        _table("Events per source", list(ev["per_source"].items())),
        _table("Events per identity kind", list(ev["per_kind"].items())),
        _table("Identities", _identity_rows(summary["identities"])),
        _table(
            f"Alerts: {al['total']:,} distinct ({al['lines_written']:,} lines incl. updates),"
            " per severity at their last revision",
            list(al["per_severity"].items()),
        ),
        _table("Alerts per leading detector", list(al["per_detector"].items())),
        _table("Dead letters per reason", list(summary["dead_letters"].items())),
        _table("Skipped per reason", list(summary["skipped"].items())),
        [f"Late events (beyond the reorder window): {summary['late_events']:,}"]
        + _warning(summary, "late_warning"),
    ]
    if al["shadow"] or al["suppressed"]:
        sections.append(_table("Shadow alerts (not counted above)", list(al["shadow"].items())))
        sections.append(_table("Suppressed", list(al["suppressed"].items())))
    if al.get("matched_expired_rules"):
        sections.append([f"Signals matching only an expired suppression rule (not suppressed,"
                         f" judged as usual): {al['matched_expired_rules']:,}"])
    if summary.get("degradations"):
        sections.append(_table("Degradations", list(summary["degradations"].items())))
    if "evaluation" in summary:
        sections.append(_evaluation_lines(summary["evaluation"]))
    if summary.get("written"):
        sections.append(_table("Files written", list(summary["written"].items())))
    return "\n".join("\n".join(lines) for lines in sections) + "\n"
