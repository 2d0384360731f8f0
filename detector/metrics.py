"""Prometheus metrics: one factory, one typed bundle, counters read at scrape time.

The hot path never touches prometheus-client. Every stage increments plain counters on
``detector.stats.RunStats``; a custom collector turns them into metric families only when
Prometheus scrapes, together with the engine's ``identities_summary()`` and
``state_size_bytes()`` when a ``Detector`` is attached. The harnesses add what only they
know through a small API on ``Metrics``:

- ``observe_batch(seconds, n_events)``: wall time and size of one processed batch;
- ``set_event_time(ts)``: event time of the last processed event (event-time lag);
- ``set_consumer_lag(topic, partition, lag)`` / ``set_committed(topic, partition)`` /
  ``forget_partition(topic, partition)``: Kafka consumer lag and last-commit age (B15);
- ``set_recovery(table, remaining)`` / ``set_recovering(flag)``: table recovery (B16).

Label values are bounded (sources, reasons, severities, detectors, kinds, models, topics,
partitions); an identity key or an address is never a label. Every name is documented in
``docs/metrics.md``. ``start_metrics_server(port, stats, detector)`` serves ``/metrics``
for ``replay --metrics-port``; the worker's own endpoint (``streams/health.py``) calls
``create_metrics`` on its registry and serves it next to its health probes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from detector.stats import RunStats
from detector.summary import EXPIRED_RULE

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "nhi_"

# Wall time of one batch, in seconds. A batch is one Kafka message's worth of events in
# the worker (one to a few hundred events) or one progress tick in replay (a few thousand
# events). The core costs tens of microseconds per event and Faust about 370 us per message
# (docs/design.md), so batches land between ~100 us (one event) and a few seconds (a large
# batch on a loaded 2-core machine): buckets start at 100 us and reach 10 s, roughly
# x2.5 apart, so the p50/p99 of both harnesses fall inside the range with useful resolution.
BATCH_SECONDS_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)
# Events per batch: single-record messages give 1, the producer's default grouping 500,
# a replay tick thousands.
BATCH_EVENTS_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# ``Detector.state_size_bytes()`` walks every profile (about 50 us per identity measured by
# benchmarks/bench_metrics.py: half a second at 10,000 identities), and it holds the GIL
# while it runs, stalling the hot path. State size moves slowly, so a scrape reuses the last
# figure for this long; the identity counts are cheap and stay fresh on every scrape.
STATE_SIZE_REFRESH_S = 60.0


class Summarised(Protocol):
    """What the collector reads from a ``detector.engine.Detector`` at scrape time."""

    def identities_summary(self) -> Mapping[str, Any]: ...

    def state_size_bytes(self) -> int: ...


def _snapshot(counter: Mapping[Any, int]) -> dict[Any, int]:
    """Copy a counter that another thread may be growing.

    ``dict.copy`` of a ``Counter`` with str/tuple keys runs in C under the GIL, so it sees a
    consistent table; the retry covers interpreters where that does not hold.
    """
    for _ in range(5):
        try:
            return dict.copy(counter)  # type: ignore[arg-type]
        except RuntimeError:
            continue
    return {}


@dataclass
class _HarnessState:
    """Values pushed by the harnesses; read by the collector at scrape time."""

    last_event_ts: float = 0.0
    consumer_lag: dict[tuple[str, int], int] = field(default_factory=dict)
    last_commit: dict[tuple[str, int], float] = field(default_factory=dict)
    recovery_remaining: dict[str, int] = field(default_factory=dict)
    recovering: bool = False
    collect_errors: int = 0
    # (identities, bytes of those not in the detector's memory) of a harness whose state
    # lives in a table that the detector loads from lazily (the worker): None elsewhere
    stored: tuple[int, int] | None = None


class RunStatsCollector(Collector):
    """Builds metric families from ``RunStats`` (and a ``Detector``) on every scrape."""

    def __init__(
        self,
        stats: RunStats,
        prefix: str,
        state: _HarnessState,
        *,
        detector: Summarised | None = None,
        clock: Callable[[], float] = time.time,
        state_size_refresh: float = STATE_SIZE_REFRESH_S,
    ) -> None:
        self.stats = stats
        self.prefix = prefix
        self.state = state
        self.detector = detector
        self.clock = clock
        self.state_size_refresh = state_size_refresh
        self._last_summary: Mapping[str, Any] = {}
        self._last_state_size: int | None = None
        self._state_size_at = float("-inf")

    def attach(self, detector: Summarised | None) -> None:
        """Read this detector from the next scrape on (state size recomputed at once)."""
        self.detector = detector
        self._state_size_at = float("-inf")

    def describe(self) -> list[Metric]:
        return list(self._families(empty=True))

    def collect(self) -> Iterator[Metric]:
        yield from self._families(empty=False)

    def _families(self, *, empty: bool) -> Iterator[Metric]:
        yield from self._input_families(empty)
        yield from self._alert_families(empty)
        yield from self._identity_families(empty)
        yield from self._time_families(empty)
        yield from self._kafka_families(empty)

    # -- builders ---------------------------------------------------------------------------

    def _counter(
        self, name: str, doc: str, labels: tuple[str, ...], values: Mapping[Any, int] | int,
        empty: bool,
    ) -> CounterMetricFamily:
        family = CounterMetricFamily(self.prefix + name, doc, labels=list(labels) or None)
        if empty:
            return family
        if not labels:
            family.add_metric([], float(values))  # type: ignore[arg-type]
            return family
        for key, value in sorted(_snapshot(values).items()):  # type: ignore[arg-type]
            key = key if isinstance(key, tuple) else (key,)
            family.add_metric([str(part) for part in key], float(value))
        return family

    def _gauge(
        self, name: str, doc: str, labels: tuple[str, ...], values: Mapping[Any, float] | float,
        empty: bool,
    ) -> GaugeMetricFamily:
        family = GaugeMetricFamily(self.prefix + name, doc, labels=list(labels) or None)
        if empty or values is None:
            return family
        if not labels:
            family.add_metric([], float(values))  # type: ignore[arg-type]
            return family
        for key, value in sorted(dict(values).items()):  # type: ignore[call-overload]
            key = key if isinstance(key, tuple) else (key,)
            family.add_metric([str(part) for part in key], float(value))
        return family

    # -- families ---------------------------------------------------------------------------

    def _input_families(self, empty: bool) -> Iterator[Metric]:
        s = self.stats
        src, src_reason = ("source",), ("source", "reason")
        yield self._counter("records_read", "Raw audit records read.", src, s.records_read, empty)
        yield self._counter("events", "Normalised events produced.", src, s.events, empty)
        yield self._counter(
            "events_by_path",
            "Events by the path they came by (s3, cwl, eventbridge, bare); the cwl path never "
            "carries CloudTrail events above 256 KB.",
            ("source", "source_path"), s.events_by_path, empty,
        )
        yield self._counter(
            "events_by_kind", "Events by identity kind.", ("kind",), s.events_by_kind, empty
        )
        yield self._counter(
            "dead_letters", "Records that failed, by reason.", src_reason, s.dead_letters, empty
        )
        yield self._counter(
            "skipped_records", "Records read but deliberately not turned into events.",
            src_reason, s.skipped, empty,
        )
        yield self._counter(
            "salvage", "Truncated records read for a partial event, by outcome (emitted, "
            "no_identity, no_verb, missing_time, bad_time).", ("source", "outcome"),
            s.salvage, empty,
        )
        yield self._counter(
            "insights", "CloudTrail Insights records read (kept out of baselines), by type "
            "and state.", ("type", "state"), s.insights, empty,
        )
        yield self._counter(
            "insight_context", "CloudTrail insights per attributed identity in the engine: "
            "stored, attached to an alert, or no_state (identity unknown).", ("outcome",),
            s.insight_context, empty,
        )
        yield self._counter("files_read", "Input files opened.", (), s.files_read, empty)
        yield self._counter("read_bytes", "Input bytes read.", (), s.bytes_read, empty)
        yield self._counter(
            "late_events", "Events later than the reorder window.", (), s.late_events, empty
        )
        yield self._counter(
            "identity_resolutions", "Events by identity resolution path.", ("path",),
            s.identity_resolution, empty,
        )

    def _alert_families(self, empty: bool) -> Iterator[Metric]:
        s = self.stats
        yield self._counter(
            "alerts", "New alerts raised.", ("severity", "detector"), s.alerts, empty
        )
        yield self._counter(
            "alert_updates", "Updates (new revisions) of grouped alerts.", (), s.alert_updates,
            empty,
        )
        yield self._counter(
            "alert_escalations", "Alerts re-sent at a higher severity, by the severity before "
            "and after.", ("from_severity", "to_severity"), s.escalations, empty,
        )
        # a signal that only an expired rule matched went through: not a suppression
        suppressed = {k: v for k, v in _snapshot(s.suppressed).items() if k != EXPIRED_RULE}
        yield self._counter(
            "alerts_suppressed", "Alerts dropped by suppression rules or feedback.",
            ("reason",), suppressed, empty,
        )
        yield self._counter(
            "expired_rule_matches", "Signals that only an expired suppression rule matched "
            "(not suppressed, judged as usual).", (), s.suppressed.get(EXPIRED_RULE, 0), empty,
        )
        yield self._counter(
            "technique_findings", "Technique findings (attack patterns shown by the request "
            "itself) seen by the engine, before suppression.", ("rule",), s.findings, empty,
        )
        yield self._counter(
            "shadow_alerts", "Alerts raised by shadow rules (not sent to the SOC).",
            ("detector",), s.shadow_alerts, empty,
        )
        yield self._counter(
            "model_degradations", "Bounded-model degradations: caps hit, evictions.",
            ("model", "what"), s.degradations, empty,
        )

    def _identity_families(self, empty: bool) -> Iterator[Metric]:
        summary, size = ({}, None) if empty else self._read_detector()
        attached = self.detector is not None and not empty

        def scalar(key: str) -> float | None:
            value = summary.get(key)
            return float(value) if attached and isinstance(value, (int, float)) else None

        stored = self.state.stored if attached else None  # streams.app.table_census
        yield self._gauge(
            "identities_tracked", "Identities with state.", (),
            # the census may be seconds old: identities new since then are in memory
            scalar("tracked") if stored is None
            else max(float(stored[0]), scalar("tracked") or 0.0), empty,
        )
        yield self._gauge(
            "identities_learning", "Identities still in their learning period.", (),
            scalar("in_learning") if "in_learning" in summary else scalar("learning"), empty,
        )
        yield self._gauge(
            "identities_thin_history",
            "Identities out of learning on a thin history (few events; alerts need two lines "
            "of evidence).", (), scalar("thin_history"), empty,
        )
        yield self._gauge(
            "identities_dormant", "Identities dormant past the dormancy horizon.", (),
            scalar("dormant"), empty,
        )
        yield self._gauge(
            "identities_persistent_anomaly",
            "Identities stuck in a persistent anomaly state (drift lock-out, B21).", (),
            scalar("persistent_anomaly"), empty,
        )
        by_kind = summary.get("by_kind") if attached else None
        yield self._gauge(
            "identities_by_kind", "Identities by kind.", ("kind",),
            by_kind if isinstance(by_kind, Mapping) else {}, empty,
        )
        if size is not None and stored is not None:
            size += stored[1]
        yield self._gauge(
            "state_size_bytes", "Approximate size of all identity state.", (),
            None if size is None else float(size), empty,
        )
        yield self._counter(
            "metrics_collect_errors", "Scrapes where the detector summary could not be read.",
            (), self.state.collect_errors, empty,
        )

    def _read_detector(self) -> tuple[Mapping[str, Any], int | None]:
        """Read the engine's summaries, keeping the last good values if a read fails."""
        if self.detector is None:
            return {}, None
        try:
            self._last_summary = dict(self.detector.identities_summary())
            now = self.clock()
            if now - self._state_size_at >= self.state_size_refresh:
                self._last_state_size = int(self.detector.state_size_bytes())
                self._state_size_at = now
        except Exception:  # a scrape must never take the process down
            self.state.collect_errors += 1
            log.debug("detector summary unavailable during scrape", exc_info=True)
        return self._last_summary, self._last_state_size

    def _time_families(self, empty: bool) -> Iterator[Metric]:
        last = max(self.stats.last_event_ts, self.state.last_event_ts)
        have = last > 0 and not empty
        yield self._gauge(
            "last_event_timestamp_seconds", "Event time of the last processed event.", (),
            last if have else None, empty,
        )
        yield self._gauge(
            "event_time_lag_seconds", "Now minus the event time of the last processed event.",
            (), self.clock() - last if have else None, empty,
        )

    def _kafka_families(self, empty: bool) -> Iterator[Metric]:
        st, tp = self.state, ("topic", "partition")
        now = self.clock()
        yield self._gauge(
            "kafka_consumer_lag_messages", "End offset minus committed offset.", tp,
            dict(st.consumer_lag), empty,
        )
        ages = {key: now - ts for key, ts in dict(st.last_commit).items()}
        yield self._gauge(
            "kafka_last_commit_age_seconds", "Seconds since the last offset commit.", tp,
            ages, empty,
        )
        yield self._gauge(
            "recovery_in_progress", "1 while table recovery runs (not ready), else 0.", (),
            1.0 if st.recovering else 0.0, empty,
        )
        yield self._gauge(
            "recovery_remaining_messages", "Changelog messages left to recover.", ("table",),
            dict(st.recovery_remaining), empty,
        )


@dataclass
class Metrics:
    """The typed bundle returned by ``create_metrics``; the harnesses' only metrics API.

    Setters may be called from any thread: each is one dict or attribute assignment, atomic
    under the GIL, and the collector copies the dicts before reading them.
    """

    registry: CollectorRegistry
    prefix: str
    collector: RunStatsCollector
    batch_seconds: Histogram
    batch_events: Histogram
    _state: _HarnessState

    def observe_batch(self, seconds: float, n_events: int) -> None:
        """Record the wall time and size of one processed batch."""
        self.batch_seconds.observe(seconds)
        self.batch_events.observe(n_events)

    def set_event_time(self, ts: float) -> None:
        """Event time (epoch seconds) of the last processed event, for event-time lag."""
        self._state.last_event_ts = ts

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        """Lag of one assigned partition: end offset minus committed offset."""
        key = (topic, int(partition))
        self._state.consumer_lag[key] = max(0, int(lag))
        # A partition never committed yet counts from when it was first seen, so a fresh
        # assignment is not reported as a stale commit.
        self._state.last_commit.setdefault(key, self.collector.clock())

    def set_committed(self, topic: str, partition: int, when: float | None = None) -> None:
        """Note that an offset of this partition was committed (now, or at ``when``)."""
        ts = self.collector.clock() if when is None else when
        self._state.last_commit[(topic, int(partition))] = ts

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop a revoked partition so its series stop being exported."""
        key = (topic, int(partition))
        self._state.consumer_lag.pop(key, None)
        self._state.last_commit.pop(key, None)

    def set_recovering(self, recovering: bool) -> None:
        """Whether table recovery is running (the worker is not ready meanwhile)."""
        self._state.recovering = bool(recovering)

    def set_recovery(self, table: str, remaining: int) -> None:
        """Changelog messages still to read for one table during recovery."""
        self._state.recovery_remaining[table] = max(0, int(remaining))

    def attach(self, detector: Summarised | None) -> None:
        """Read identity gauges and state size from this detector from now on."""
        self.collector.attach(detector)

    def set_stored_identities(self, identities: int, unloaded_bytes: int) -> None:
        """The identities of a state table the detector loads from only when an identity's
        events come (the worker): ``identities`` with state in the table or in memory, and
        the stored bytes of those not in memory. After a restart or a warm start every
        identity is in the table and none in memory; the detector alone counted 0."""
        self._state.stored = (max(0, int(identities)), max(0, int(unloaded_bytes)))

    def stale_commits(self, max_age: float) -> list[tuple[str, int]]:
        """Partitions with lag above 0 whose last commit is older than ``max_age`` (B15)."""
        now, st = self.collector.clock(), self._state
        return sorted(
            key for key, lag in dict(st.consumer_lag).items()
            if lag > 0 and now - st.last_commit.get(key, 0.0) > max_age
        )


def create_metrics(
    registry: CollectorRegistry,
    stats: RunStats,
    *,
    prefix: str = DEFAULT_PREFIX,
    detector: Summarised | None = None,
    process_metrics: bool = False,
    clock: Callable[[], float] = time.time,
    state_size_refresh: float = STATE_SIZE_REFRESH_S,
) -> Metrics:
    """Register every nhi-detector metric on ``registry`` and return the bundle.

    ``process_metrics`` adds prometheus-client's ``process_*`` collector (CPU, memory, file
    descriptors) for the long-running servers. ``state_size_refresh`` is how old (seconds)
    the state-size gauge may get before a scrape recomputes it (0: every scrape).
    """
    state = _HarnessState()
    collector = RunStatsCollector(stats, prefix, state, detector=detector, clock=clock,
                                  state_size_refresh=state_size_refresh)
    registry.register(collector)
    batch_seconds = Histogram(
        prefix + "batch_processing_seconds", "Wall time to process one batch of events.",
        registry=registry, buckets=BATCH_SECONDS_BUCKETS,
    )
    batch_events = Histogram(
        prefix + "batch_size_events", "Events per processed batch.",
        registry=registry, buckets=BATCH_EVENTS_BUCKETS,
    )
    if process_metrics:
        ProcessCollector(registry=registry)
    return Metrics(registry, prefix, collector, batch_seconds, batch_events, state)


class MetricsServer:
    """A running ``/metrics`` endpoint; ``port`` is the bound port (useful with port 0)."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread

    @property
    def port(self) -> int:
        return int(self.httpd.server_port)

    @property
    def address(self) -> str:
        return str(self.httpd.server_address[0])

    def shutdown(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(
    port: int,
    stats: RunStats,
    detector: Summarised | None = None,
    *,
    addr: str = "127.0.0.1",
    prefix: str = DEFAULT_PREFIX,
) -> tuple[MetricsServer, Metrics]:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread, on a registry of its own.

    Loopback by default; the worker passes ``addr="0.0.0.0"`` inside a pod. Port 0 binds a
    free port (read it back from ``server.port``).
    """
    registry = CollectorRegistry()
    metrics = create_metrics(registry, stats, prefix=prefix, detector=detector,
                             process_metrics=True)
    httpd, thread = start_http_server(port, addr=addr, registry=registry)
    server = MetricsServer(httpd, thread)
    log.info("metrics endpoint listening on http://%s:%d/metrics", server.address, server.port)
    return server, metrics


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a scrape of ``registry`` can contain (``_total``, ``_bucket`` …)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in registry.collect():
        kind = family.type
        names.update(family.name + suffix for suffix in suffixes.get(kind, ("",)))
        if kind in ("histogram", "summary"):
            names.add(family.name)
    return names
