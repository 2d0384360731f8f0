"""The worker's HTTP endpoint: ``/livez``, ``/readyz``, ``/startupz``, ``/metrics`` on one port.

It starts before the worker connects to Kafka and runs in a daemon thread, so a probe gets
an answer during startup retries instead of a refused connection (which Kubernetes would
turn into a restart loop).

- **Liveness** (B15) fails only when a partition has lag above 0 and its last commit is
  older than ``liveness_commit_age`` seconds: the consumer is stuck. Faust's own livelock
  warning is not used; it can be missing and it can be false.
- **Readiness** (B16) is false until the worker has its assignment and table recovery has
  completed, and false again during a rebalance.
- **Startup** (``/startupz``) fails until the first table recovery has completed (the
  worker is ready, or has joined the group and was given no partition), then answers 200
  for good: a startup probe on it covers the broker checks and a long changelog recovery,
  where ``/livez`` answers 200 from the first second.

The JSON body of both says why. ``/metrics`` serves the nhi-detector metrics
(``detector.metrics``) plus the worker's own counters.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from detector.metrics import create_metrics
from detector.stats import RunStats

log = logging.getLogger(__name__)


# How often the worker's consumer refreshes topic metadata on its own (its
# metadata.max.age.ms; Kafka's default of 300 s let a recreated raw topic wait 5 minutes
# unread): a deleted topic is noticed at once (fetches fail), a created or recreated one
# only at the next refresh. One small metadata request per refresh.
METADATA_REFRESH_S = 30

# The phases the worker reaches only after its table recovery is complete (streams.app):
# "waiting" is a worker with no partition (more workers than partitions), done starting.
STARTED_PHASES = ("running", "waiting")


@dataclass
class HealthState:
    """What the probes read; written by the worker's event loop."""

    liveness_commit_age: float
    phase: str = "starting"  # starting, connecting, recovering, running, stopping
    ready: bool = False
    reason: str = "worker is starting"
    started: float = field(default_factory=time.time)
    stale: Callable[[float], list[tuple[str, int]]] = lambda _age: []
    # set once the first recovery is done (phase running or waiting), never unset
    recovered: bool = False
    # raw topic -> missing on the broker (streams.topics: the broker does not describe it)
    raw_topics: dict[str, bool] = field(default_factory=dict)
    # (raw topic, reason) -> partitions read from their start because their committed
    # offset could not be theirs (streams.app.check_raw_offsets)
    offset_resets: dict[tuple[str, str], int] = field(default_factory=dict)

    def note_offset_reset(self, topic: str, reason: str) -> None:
        key = (topic, reason)
        self.offset_resets = {**self.offset_resets, key: self.offset_resets.get(key, 0) + 1}

    def set_phase(self, phase: str, *, ready: bool, reason: str) -> None:
        if (phase, ready) != (self.phase, self.ready):
            log.info("worker phase %s (ready=%s): %s", phase, ready, reason)
        self.phase, self.ready, self.reason = phase, ready, reason
        if phase in STARTED_PHASES:
            self.recovered = True

    def note_raw_topics(self, missing: Mapping[str, bool]) -> None:
        """Record which raw topics the broker no longer describes, and say when one
        disappears or comes back: Faust only drops it from the assignment (one aiokafka
        ERROR line), probes stay green and its lag series vanish."""
        for topic, gone in sorted(missing.items()):
            if gone == self.raw_topics.get(topic, False):
                continue
            if gone:
                log.warning("raw topic %s no longer exists on the broker: nothing is read "
                            "from it until it is created again (nhi_worker_raw_topic_missing "
                            "is 1; the worker notices a new one within the %d s metadata "
                            "refresh)", topic, METADATA_REFRESH_S)
            else:
                log.warning("raw topic %s exists again: it is read after the next "
                            "rebalance", topic)
        self.raw_topics = dict(missing)

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        missing = sorted(t for t, gone in self.raw_topics.items() if gone)
        body = {"phase": self.phase, "ready": self.ready, "reason": self.reason}
        if missing:
            body["missing_raw_topics"] = missing
        return self.ready, body

    def startup(self) -> tuple[bool, dict[str, Any]]:
        return self.recovered, {"phase": self.phase, "started": self.recovered,
                                "reason": "first table recovery done" if self.recovered
                                else self.reason}

    def liveness(self) -> tuple[bool, dict[str, Any]]:
        stuck = self.stale(self.liveness_commit_age)
        body = {"phase": self.phase, "stuck_partitions": [f"{t}[{p}]" for t, p in stuck],
                "max_commit_age_s": self.liveness_commit_age}
        return not stuck, body


class WorkerCollector(Collector):
    """Counters only the worker has: failed records by reason, redeliveries skipped, late
    writes and stale states (streams.fencing)."""

    def __init__(self, prefix: str, read: Callable[[], Mapping[str, Any]]) -> None:
        self.prefix = prefix
        self.read = read

    def collect(self) -> Iterator[Any]:
        values = self.read()
        failed = CounterMetricFamily(
            self.prefix + "worker_records_failed",
            "Records or messages the worker sent to dead letters, by reason (B15).",
            labels=["reason"])
        for reason, count in sorted(dict(values.get("failed", {})).items()):
            failed.add_metric([reason], count)
        yield failed
        yield CounterMetricFamily(
            self.prefix + "worker_redelivered_events",
            "Events skipped because their identity's state had already applied them.",
            value=values.get("redelivered", 0))
        yield CounterMetricFamily(
            self.prefix + "worker_late_writes",
            "State and inventory records acknowledged after the group may have dropped "
            "this worker (streams.fencing); their owner is asked to write them again.",
            value=values.get("late_writes", 0))
        yield CounterMetricFamily(
            self.prefix + "worker_stale_states_skipped",
            "Changelog states that table recovery skipped because a newer state of the "
            "same identity was already recovered (written by a worker the group dropped).",
            value=values.get("stale_states_skipped", 0))
        yield GaugeMetricFamily(
            self.prefix + "worker_ready", "1 when the worker is ready (recovery done).",
            value=1.0 if values.get("ready") else 0.0)
        missing = GaugeMetricFamily(
            self.prefix + "worker_raw_topic_missing",
            "1 while a raw topic the worker subscribes to does not exist on the broker.",
            labels=["topic"])
        for topic, gone in sorted(dict(values.get("raw_topics", {})).items()):
            missing.add_metric([topic], 1.0 if gone else 0.0)
        yield missing
        silence = GaugeMetricFamily(
            self.prefix + "worker_broker_silence_seconds",
            "Seconds since the broker last answered the worker's metadata request "
            "(every 5 s): grows while the broker is down or unreachable.")
        if values.get("broker_silence") is not None:  # no sample before the first connection
            silence.add_metric([], float(values["broker_silence"]))
        yield silence
        resets = CounterMetricFamily(
            self.prefix + "worker_raw_offset_resets",
            "Raw or repartition partitions read from their start because the group's "
            "committed offset could not be theirs: recreated (the topic has a new id), "
            "beyond_end (past the log end), before_start (records deleted before they were "
            "read).",
            labels=["topic", "reason"])
        for (topic, reason), count in sorted(dict(values.get("offset_resets", {})).items()):
            resets.add_metric([topic, reason], count)
        yield resets


def _handler(state: HealthState, registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?", 1)[0]
            if path in ("/livez", "/healthz"):
                self._json(*state.liveness())
            elif path == "/readyz":
                self._json(*state.readiness())
            elif path == "/startupz":
                self._json(*state.startup())
            elif path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            else:
                self._send(404, b"not found\n", "text/plain")

        def _json(self, ok: bool, body: dict[str, Any]) -> None:
            data = json.dumps({"ok": ok, **body}).encode()
            self._send(200 if ok else 503, data, "application/json")

        def _send(self, code: int, data: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("health %s", fmt % args)

    return Handler


class HealthServer:
    """The running endpoint. ``metrics`` is the ``detector.metrics.Metrics`` bundle."""

    def __init__(self, state: HealthState, stats: RunStats, *, host: str, port: int,
                 worker_values: Callable[[], Mapping[str, Any]]) -> None:
        self.state = state
        self.registry = CollectorRegistry()
        self.metrics = create_metrics(self.registry, stats, process_metrics=True)
        self.registry.register(WorkerCollector(self.metrics.prefix, worker_values))
        state.stale = self.metrics.stale_commits
        self.httpd = ThreadingHTTPServer((host, port), _handler(state, self.registry))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="health",
                                       daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> HealthServer:
        self.thread.start()
        log.info("health endpoint on http://%s:%d (/livez /readyz /startupz /metrics)",
                 self.httpd.server_address[0], self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
