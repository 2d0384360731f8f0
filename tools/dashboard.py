"""Generate the Grafana dashboard ``helm/nhi-detector/dashboards/nhi-detector.json``.

The JSON is committed (the chart ships it, and it imports into Grafana on its own); this
script is how it is edited: change a panel here, run ``python3 tools/dashboard.py``, commit
both. ``--check`` exits 1 when the committed file differs from what this script builds
(tests/test_dashboard.py runs the same comparison).

Every panel queries only metrics listed in docs/metrics.md; the data source is the
``datasource`` template variable, so the file needs no edits after import.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().parents[1] / "helm/nhi-detector/dashboards/nhi-detector.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
RATE = "$__rate_interval"
GRID_WIDTH = 24
BARS = {"custom": {"drawStyle": "bars", "fillOpacity": 80,
                   "stacking": {"mode": "normal", "group": "A"}}}


def sel(metric: str) -> str:
    """A selector of ``metric`` restricted to the chosen workers."""
    return f"{metric}{{{SEL}}}"


def rate(metric: str) -> str:
    return f"rate({sel(metric)}[{RATE}])"


@dataclass
class Layout:
    """Panels placed left to right in rows; ids and grid positions assigned as they come."""

    panels: list[dict[str, Any]] = field(default_factory=list)
    y: int = 0

    def _id(self) -> int:
        return len(self.panels) + 1

    def row(self, title: str) -> None:
        self.panels.append({"type": "row", "title": title, "id": self._id(), "collapsed": False,
                            "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": self.y},
                            "panels": []})
        self.y += 1

    def add(self, kind: str, title: str, targets: list[tuple[str, str]], x: int, w: int,
            h: int = 8, *, unit: str = "short", desc: str = "", stack: bool = False,
            extra: dict[str, Any] | None = None) -> None:
        panel = {
            "type": kind, "title": title, "id": self._id(), "description": desc,
            "datasource": DS, "gridPos": {"h": h, "w": w, "x": x, "y": self.y},
            "targets": [
                {"refId": chr(65 + i), "datasource": DS, "expr": expr, "legendFormat": legend,
                 "range": True, "instant": False}
                for i, (expr, legend) in enumerate(targets)
            ],
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "options": _options(kind),
        }
        if kind == "timeseries":
            panel["fieldConfig"]["defaults"]["custom"] = _series_style(stack)
        if extra:
            panel["fieldConfig"]["defaults"].update(extra)
        self.panels.append(panel)

    def next_row(self, h: int = 8) -> None:
        self.y += h


def _options(kind: str) -> dict[str, Any]:
    if kind == "timeseries":
        return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"}}
    if kind == "stat":
        return {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "colorMode": "value", "graphMode": "area", "textMode": "auto",
                "orientation": "auto", "justifyMode": "auto"}
    return {}


def _series_style(stack: bool) -> dict[str, Any]:
    return {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 40 if stack else 10,
            "stacking": {"mode": "normal" if stack else "none", "group": "A"},
            "showPoints": "never", "spanNulls": False}


def overview(lay: Layout) -> None:
    lay.row("Overview")
    lay.add("stat", "Events / s", [(f"sum({rate('nhi_events_total')})", "events/s")], 0, 4, 4,
            unit="ops", desc="Normalised events produced per second, all sources.")
    lay.add("stat", "Alerts (24h)", [(f"sum(increase({sel('nhi_alerts_total')}[24h]))",
                                      "alerts")], 4, 4, 4,
            desc="New alerts raised in the last 24 hours.")
    lay.add("stat", "Dead-letter ratio",
            [(f"sum({rate('nhi_dead_letters_total')}) / "
              f"clamp_min(sum({rate('nhi_records_read_total')}), 1e-9)", "dead letters")],
            8, 4, 4, unit="percentunit",
            desc="Share of records read that went to dead letters.")
    lay.add("stat", "Event-time lag", [(f"max({sel('nhi_event_time_lag_seconds')})", "lag")],
            12, 4, 4, unit="s", desc="Now minus the event time of the last processed event.")
    lay.add("stat", "Identities tracked",
            [(f"sum({sel('nhi_identities_tracked')})", "identities")], 16, 4, 4,
            desc="Identities with state.")
    lay.add("stat", "State size", [(f"sum({sel('nhi_state_size_bytes')})", "state")],
            20, 4, 4, unit="bytes", desc="Serialised size of all identity state.")
    lay.next_row(4)


def throughput(lay: Layout) -> None:
    lay.row("Throughput")
    lay.add("timeseries", "Events / s by source",
            [(f"sum by (source) ({rate('nhi_events_total')})", "{{source}}")], 0, 12,
            unit="ops", desc="Normalised events produced per second, per log source.",
            stack=True)
    lay.add("timeseries", "Records read vs events / s",
            [(f"sum({rate('nhi_records_read_total')})", "records read"),
             (f"sum({rate('nhi_events_total')})", "events"),
             (f"sum({rate('nhi_skipped_records_total')})", "skipped"),
             (f"sum({rate('nhi_dead_letters_total')})", "dead letters")], 12, 12, unit="ops",
            desc="Every record read ends as an event, a dead letter or a skipped record.")
    lay.next_row()


def latency_and_lag(lay: Layout) -> None:
    lay.row("Latency and lag")
    buckets = rate("nhi_batch_processing_seconds_bucket")
    quantiles = [(f"histogram_quantile({q}, sum by (le) ({buckets}))", f"p{int(q * 100)}")
                 for q in (0.5, 0.9, 0.99)]
    mean = (f"sum({rate('nhi_batch_processing_seconds_sum')}) / "
            f"clamp_min(sum({rate('nhi_batch_size_events_sum')}), 1e-9)", "mean per event")
    lay.add("timeseries", "Batch processing latency", quantiles + [mean], 0, 8, unit="s",
            desc="Wall time per processed batch (quantiles) and the mean cost per event.")
    lay.add("timeseries", "Event-time lag",
            [(sel("nhi_event_time_lag_seconds"), "{{instance}}")], 8, 8, unit="s",
            desc="Now minus the event time of the last processed event; grows when the "
                 "pipeline stalls.")
    lay.add("timeseries", "Kafka consumer lag",
            [(f"sum by (topic, partition) ({sel('nhi_kafka_consumer_lag_messages')})",
              "{{topic}}[{{partition}}]")], 16, 8,
            desc="End offset minus committed offset per assigned partition.")
    lay.next_row()
    lay.add("timeseries", "Last commit age",
            [(f"max by (topic, partition) ({sel('nhi_kafka_last_commit_age_seconds')})",
              "{{topic}}[{{partition}}]")], 0, 8, unit="s",
            desc="Seconds since each partition's last offset commit; high with lag above 0 "
                 "means stuck.")
    lay.add("timeseries", "Broker silence",
            [(f"max by (instance) ({sel('nhi_worker_broker_silence_seconds')})",
              "{{instance}}")], 8, 4, unit="s",
            desc="Seconds since the broker last answered each worker (asked every 5 s); "
                 "grows through an outage, even with nothing waiting.")
    lay.add("timeseries", "Table recovery and readiness",
            [(f"sum by (table) ({sel('nhi_recovery_remaining_messages')})",
              "{{table}} remaining"),
             (f"sum({sel('nhi_recovery_in_progress')})", "workers recovering"),
             (f"sum({sel('nhi_worker_ready')})", "workers ready")], 12, 6,
            desc="Changelog messages left to recover per table, workers recovering and "
                 "workers ready.")
    lay.add("timeseries", "Worker failures, redeliveries and late writes",
            [(f"sum by (reason) ({rate('nhi_worker_records_failed_total')})", "{{reason}}"),
             (f"sum({rate('nhi_worker_redelivered_events_total')})", "redelivered"),
             (f"sum({rate('nhi_worker_late_writes_total')})", "late writes"),
             (f"sum({rate('nhi_worker_stale_states_skipped_total')})",
              "stale states skipped")],
            18, 6, unit="ops",
            desc="Messages the worker dead-lettered by reason (a bad message never stops "
                 "consumption), redelivered events skipped, records acknowledged after the "
                 "group may have dropped the worker (late writes) and the stale states "
                 "table recovery skipped.")
    lay.next_row()


def alerts(lay: Layout) -> None:
    lay.row("Alerts")
    # nhi_alerts_total counts an alert once, at its first revision's severity; an alert
    # that escalates later (low, then critical) shows as its escalation too, so a critical
    # never hides behind the severity it was first raised at.
    lay.add("timeseries", "Alerts by severity",
            [(f"sum by (severity) (increase({sel('nhi_alerts_total')}[$__interval]))",
              "{{severity}}"),
             (f"sum by (to_severity) "
              f"(increase({sel('nhi_alert_escalations_total')}[$__interval]))",
              "{{to_severity}} (escalated)")], 0, 12,
            desc="New alerts per interval by severity, and alerts re-sent at a higher "
                 "severity by the severity they rose to.", stack=True, extra=BARS)
    lay.add("timeseries", "Alerts by detector",
            [(f"sum by (detector) (increase({sel('nhi_alerts_total')}[$__interval]))",
              "{{detector}}")], 12, 12,
            desc="New alerts per interval, by the detector that drove them.", stack=True,
            extra=BARS)
    lay.next_row()
    lay.add("timeseries", "Suppressed alerts by reason",
            [(f"sum by (reason) ({rate('nhi_alerts_suppressed_total')})", "{{reason}}")],
            0, 8, unit="ops", desc="Alerts dropped by suppression rules, feedback or cooldown.")
    lay.add("timeseries", "Shadow alerts by detector",
            [(f"sum by (detector) ({rate('nhi_shadow_alerts_total')})", "{{detector}}")],
            8, 8, unit="ops", desc="Alerts from shadow rules: computed, not sent to the SOC.")
    lay.add("timeseries", "Alert updates and late events",
            [(f"sum({rate('nhi_alert_updates_total')})", "alert updates"),
             (f"sum({rate('nhi_late_events_total')})", "late events")], 16, 8, unit="ops",
            desc="New revisions of grouped alerts, and events later than the reorder window.")
    lay.next_row()


def dead_letters(lay: Layout) -> None:
    lay.row("Dead letters")
    lay.add("timeseries", "Dead letters by reason",
            [(f"sum by (source, reason) ({rate('nhi_dead_letters_total')})",
              "{{source}} {{reason}}")], 0, 12, unit="ops",
            desc="Records that failed, by source and reason (poison messages, bad JSON, "
                 "missing fields).")
    lay.add("timeseries", "Skipped records by reason",
            [(f"sum by (source, reason) ({rate('nhi_skipped_records_total')})",
              "{{source}} {{reason}}")], 12, 12, unit="ops",
            desc="Records deliberately not turned into events (digests, duplicates, control "
                 "messages).")
    lay.next_row()


def identities(lay: Layout) -> None:
    lay.row("Identities and state")
    lay.add("timeseries", "Identities by kind",
            [(f"sum by (kind) ({sel('nhi_identities_by_kind')})", "{{kind}}")], 0, 8,
            desc="Identities with state, by kind.", stack=True)
    lay.add("timeseries", "Identities by learning state",
            [(f"sum({sel('nhi_identities_tracked')})", "tracked"),
             (f"sum({sel('nhi_identities_learning')})", "learning"),
             (f"sum({sel('nhi_identities_thin_history')})", "thin history"),
             (f"sum({sel('nhi_identities_dormant')})", "dormant"),
             (f"sum({sel('nhi_identities_persistent_anomaly')})", "persistent anomaly")],
            8, 8, desc="Tracked, still learning, learned on a thin history, dormant, and "
                       "stuck in a persistent anomaly state.")
    lay.add("timeseries", "Identity resolution paths",
            [(f"sum by (path) ({rate('nhi_identity_resolutions_total')})", "{{path}}")],
            16, 8, unit="ops",
            desc="Events by how their identity key was resolved; watch 'unknown'.")
    lay.next_row()
    lay.add("timeseries", "State size",
            [(f"sum by (instance) ({sel('nhi_state_size_bytes')})", "{{instance}}")], 0, 8,
            unit="bytes", desc="Serialised size of all identity state per worker.")
    lay.add("timeseries", "Model degradations",
            [(f"sum by (model, what) ({rate('nhi_model_degradations_total')})",
              "{{model}} {{what}}")], 8, 8, unit="ops",
            desc="Caps hit, evictions and other ways a bounded model degraded instead of "
                 "growing.")
    lay.add("timeseries", "Worker memory",
            [(sel("process_resident_memory_bytes"), "{{instance}} RSS")], 16, 8,
            unit="bytes", desc="Resident memory of each worker process.")
    lay.next_row()


def templating() -> dict[str, Any]:
    # a series without labels, exported from a worker's (or replay's) first scrape: the
    # per-source counters have none until the first record is read, so an idle worker
    # was missing from the list
    query = "label_values(nhi_read_bytes_total, instance)"
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource",
         "query": "prometheus", "current": {}, "hide": 0, "refresh": 1, "regex": "",
         "options": [], "includeAll": False, "multi": False},
        {"name": "instance", "label": "Worker", "type": "query", "datasource": DS,
         "definition": query, "query": query, "current": {}, "hide": 0, "refresh": 2,
         "regex": "", "sort": 1, "includeAll": True, "allValue": ".*", "multi": True,
         "options": []},
    ]}


def build() -> dict[str, Any]:
    """The whole dashboard as a dict."""
    lay = Layout()
    for section in (overview, throughput, latency_and_lag, alerts, dead_letters, identities):
        section(lay)
    return {
        "id": None,
        "uid": "nhi-detector",
        "title": "nhi-detector",
        "description": "Throughput, lag, alerts, dead letters, identities and state of "
                       "nhi-detector.",
        "tags": ["nhi-detector", "security"],
        "timezone": "utc",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": [{
            "builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
            "name": "Annotations & Alerts", "type": "dashboard"}]},
        "links": [],
        "templating": templating(),
        "panels": lay.panels,
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the committed JSON differs from what this builds")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        same = OUTPUT.read_text(encoding="utf-8") == text
        print(f"{OUTPUT}: {'up to date' if same else 'differs; run tools/dashboard.py'}")
        return 0 if same else 1
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
