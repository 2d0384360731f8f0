"""Tests for detector.metrics: scrape over HTTP and compare with what was counted."""

from __future__ import annotations

import contextlib
import inspect
import random
import re
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from detector.metrics import (
    BATCH_SECONDS_BUCKETS,
    MetricsServer,
    create_metrics,
    exported_names,
    start_metrics_server,
)
from detector.stats import RunStats

REPO = Path(__file__).resolve().parents[2]
# Every label name the code may export; identity keys and addresses must never appear.
ALLOWED_LABELS = {"source", "reason", "kind", "path", "source_path", "outcome", "type",
                  "state", "severity", "detector", "model", "what", "topic", "partition",
                  "table", "le", "from_severity", "to_severity"}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SummaryDetector:
    """A stand-in with the two methods the collector reads from ``Detector``."""

    def __init__(self, summary: dict, size: int) -> None:
        self.summary = summary
        self.size = size
        self.size_calls = 0
        self.fail = False

    def identities_summary(self) -> dict:
        if self.fail:
            raise RuntimeError("dictionary changed size during iteration")
        return self.summary

    def state_size_bytes(self) -> int:
        self.size_calls += 1
        return self.size


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and index every sample by (name, sorted labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def filled_stats() -> RunStats:
    """Counts as a run over two sources would leave them (records balance per source)."""
    stats = RunStats()
    stats.records_read.update({"aws.cloudtrail": 120, "k8s.audit": 40})
    stats.events.update({"aws.cloudtrail": 113, "k8s.audit": 31})
    stats.dead_letters.update({("aws.cloudtrail", "invalid_json"): 4,
                               ("k8s.audit", "missing_field"): 1})
    stats.skipped.update({("aws.cloudtrail", "digest_file"): 3,
                          ("k8s.audit", "duplicate_stage"): 8})
    stats.events_by_kind.update({"workload": 130, "human": 14})
    stats.alerts.update({("high", "novelty"): 2, ("medium", "rate"): 5})
    stats.suppressed.update({"rule:ci-noise": 3, "expired_rule": 4})
    stats.shadow_alerts.update({"schedule": 6})
    stats.degradations.update({("novelty", "cap_hit"): 9, ("peers", "eviction"): 2})
    stats.late_events = 7
    stats.alert_updates = 11
    stats.files_read = 3
    stats.bytes_read = 98765
    return stats


@pytest.fixture
def server() -> Iterator[tuple[MetricsServer, RunStats]]:
    stats = filled_stats()
    srv, _ = start_metrics_server(0, stats)
    yield srv, stats
    srv.shutdown()


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class TestScrape:
    def test_per_source_counts__match_run_stats(self, server) -> None:
        srv, stats = server
        samples = scrape(srv.port)
        for source in ("aws.cloudtrail", "k8s.audit"):
            assert value(samples, "nhi_events_total", source=source) == stats.events[source]
            read = value(samples, "nhi_records_read_total", source=source)
            assert read == stats.records_read[source]
            dead = sum(v for (n, lab), v in samples.items()
                       if n == "nhi_dead_letters_total" and ("source", source) in lab)
            skipped = sum(v for (n, lab), v in samples.items()
                          if n == "nhi_skipped_records_total" and ("source", source) in lab)
            assert read == value(samples, "nhi_events_total", source=source) + dead + skipped

    def test_labelled_counters__carry_each_key(self, server) -> None:
        samples = scrape(server[0].port)
        assert value(samples, "nhi_dead_letters_total", source="aws.cloudtrail",
                     reason="invalid_json") == 4
        assert value(samples, "nhi_alerts_total", severity="medium", detector="rate") == 5
        assert value(samples, "nhi_model_degradations_total", model="novelty",
                     what="cap_hit") == 9
        assert value(samples, "nhi_alerts_suppressed_total", reason="rule:ci-noise") == 3
        # a signal only an expired rule matched went through: counted apart, not suppressed
        assert value(samples, "nhi_expired_rule_matches_total") == 4
        assert ("nhi_alerts_suppressed_total", (("reason", "expired_rule"),)) not in samples
        assert value(samples, "nhi_shadow_alerts_total", detector="schedule") == 6
        assert value(samples, "nhi_late_events_total") == 7
        assert value(samples, "nhi_alert_updates_total") == 11
        assert value(samples, "nhi_read_bytes_total") == 98765

    def test_counters__are_read_live_at_each_scrape(self, server) -> None:
        srv, stats = server
        key = ("nhi_events_total", (("source", "gcp.audit"),))
        assert key not in scrape(srv.port)
        stats.records_read["gcp.audit"] += 25
        stats.events["gcp.audit"] += 25
        assert scrape(srv.port)[key] == 25

    def test_label_names__are_bounded(self, server) -> None:
        srv, stats = server
        stats.identity_resolution["session_issuer"] += 1
        for name, labels in scrape(srv.port):
            if name.startswith("nhi_"):
                assert {key for key, _ in labels} <= ALLOWED_LABELS, name

    def test_server__binds_loopback_by_default(self, server) -> None:
        assert server[0].address == "127.0.0.1"

    def test_process_metrics__are_served(self, server) -> None:
        samples = scrape(server[0].port)
        assert value(samples, "process_resident_memory_bytes") > 0


class TestConcurrency:
    def test_scrapes_while_counters_grow__never_fail(self) -> None:
        """The hot path adds new label keys while the HTTP thread reads (no lock)."""
        registry, stats = CollectorRegistry(), RunStats()
        create_metrics(registry, stats)
        done, written = threading.Event(), [0]

        def grow() -> None:
            i = 0
            while not done.is_set():
                stats.dead_letters[("aws.cloudtrail", f"reason-{i % 3000}")] += 1
                stats.records_read["aws.cloudtrail"] += 1
                i += 1
            written[0] = i

        writer = threading.Thread(target=grow)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show up
        writer.start()
        seen = []
        try:
            for _ in range(20):
                seen.append(registry.get_sample_value("nhi_records_read_total",
                                                      {"source": "aws.cloudtrail"}) or 0.0)
                generate_latest(registry)
        finally:
            done.set()
            writer.join()
            sys.setswitchinterval(interval)
        assert seen == sorted(seen) and seen[-1] > seen[0]  # live, growing reads
        dead = sum(v for (n, _), v in [
            ((s.name, tuple(s.labels.items())), s.value)
            for f in registry.collect() for s in f.samples] if n == "nhi_dead_letters_total")
        assert dead == written[0]
        assert registry.get_sample_value("nhi_records_read_total",
                                         {"source": "aws.cloudtrail"}) == written[0]


class TestDetectorGauges:
    def make(self) -> tuple[CollectorRegistry, SummaryDetector]:
        registry = CollectorRegistry()
        det = SummaryDetector({"tracked": 12, "in_learning": 5, "dormant": 2,
                               "persistent_anomaly": 1,
                               "by_kind": {"workload": 9, "ai_agent": 3}}, 40960)
        create_metrics(registry, RunStats(), detector=det)
        return registry, det

    def test_summary__becomes_gauges(self) -> None:
        registry, _ = self.make()
        get = registry.get_sample_value
        assert get("nhi_identities_tracked") == 12
        assert get("nhi_identities_learning") == 5
        assert get("nhi_identities_dormant") == 2
        assert get("nhi_identities_persistent_anomaly") == 1
        assert get("nhi_identities_by_kind", {"kind": "ai_agent"}) == 3
        assert get("nhi_state_size_bytes") == 40960

    def test_failing_summary__keeps_last_values_and_counts_error(self) -> None:
        registry, det = self.make()
        assert registry.get_sample_value("nhi_identities_tracked") == 12
        det.fail = True
        det.summary = {"tracked": 99}
        assert registry.get_sample_value("nhi_identities_tracked") == 12
        assert registry.get_sample_value("nhi_metrics_collect_errors_total") >= 1

    def test_state_size__recomputed_only_after_the_refresh_period(self) -> None:
        registry, clock = CollectorRegistry(), FakeClock(1000.0)
        det = SummaryDetector({"tracked": 1, "in_learning": 0, "dormant": 0, "by_kind": {}}, 500)
        create_metrics(registry, RunStats(), detector=det, clock=clock, state_size_refresh=60)
        assert registry.get_sample_value("nhi_state_size_bytes") == 500
        det.size, det.summary = 900, {**det.summary, "tracked": 2}
        clock.now += 59
        assert registry.get_sample_value("nhi_state_size_bytes") == 500
        assert registry.get_sample_value("nhi_identities_tracked") == 2  # counts stay fresh
        clock.now += 1
        assert registry.get_sample_value("nhi_state_size_bytes") == 900
        assert det.size_calls == 2

    def test_no_detector__no_identity_samples(self) -> None:
        registry = CollectorRegistry()
        create_metrics(registry, RunStats())
        assert registry.get_sample_value("nhi_identities_tracked") is None
        assert registry.get_sample_value("nhi_state_size_bytes") is None

    def test_attach__starts_reading_detector(self) -> None:
        registry = CollectorRegistry()
        metrics = create_metrics(registry, RunStats())
        metrics.attach(SummaryDetector({"tracked": 3, "in_learning": 3, "dormant": 0,
                                        "by_kind": {}}, 10))
        assert registry.get_sample_value("nhi_identities_tracked") == 3


class TestHarnessApi:
    def test_observe_batch__fills_histograms(self) -> None:
        registry = CollectorRegistry()
        metrics = create_metrics(registry, RunStats())
        for seconds, n in ((0.0003, 1), (0.004, 120), (0.004, 80), (2.0, 5000)):
            metrics.observe_batch(seconds, n)
        get = registry.get_sample_value
        assert get("nhi_batch_processing_seconds_count") == 4
        assert get("nhi_batch_processing_seconds_bucket", {"le": "0.005"}) == 3
        assert get("nhi_batch_processing_seconds_bucket", {"le": "1.0"}) == 3
        assert get("nhi_batch_size_events_sum") == 5201
        assert get("nhi_batch_processing_seconds_sum") == pytest.approx(2.0083)

    def test_buckets__are_increasing_and_span_100us_to_10s(self) -> None:
        assert list(BATCH_SECONDS_BUCKETS) == sorted(set(BATCH_SECONDS_BUCKETS))
        assert (BATCH_SECONDS_BUCKETS[0], BATCH_SECONDS_BUCKETS[-1]) == (0.0001, 10.0)

    def test_event_time_lag__is_now_minus_last_event(self) -> None:
        registry, clock, stats = CollectorRegistry(), FakeClock(1_700_000_600.0), RunStats()
        metrics = create_metrics(registry, stats, clock=clock)
        assert registry.get_sample_value("nhi_event_time_lag_seconds") is None
        metrics.set_event_time(1_700_000_000.0)
        assert registry.get_sample_value("nhi_event_time_lag_seconds") == 600.0
        clock.now += 30
        assert registry.get_sample_value("nhi_event_time_lag_seconds") == 630.0
        stats.last_event_ts = 1_700_000_620.0  # the engine's own record wins when newer
        assert registry.get_sample_value("nhi_event_time_lag_seconds") == 10.0

    def test_consumer_lag_and_commit_age__per_partition(self) -> None:
        registry, clock = CollectorRegistry(), FakeClock(5000.0)
        metrics = create_metrics(registry, RunStats(), clock=clock)
        metrics.set_consumer_lag("raw", 0, 42)
        metrics.set_consumer_lag("raw", 1, 0)
        metrics.set_committed("raw", 0, when=4900.0)
        clock.now = 5050.0
        get = registry.get_sample_value
        assert get("nhi_kafka_consumer_lag_messages", {"topic": "raw", "partition": "0"}) == 42
        assert get("nhi_kafka_last_commit_age_seconds",
                   {"topic": "raw", "partition": "0"}) == 150.0
        assert get("nhi_kafka_last_commit_age_seconds",
                   {"topic": "raw", "partition": "1"}) == 50.0
        assert metrics.stale_commits(120.0) == [("raw", 0)]

    def test_forget_partition__removes_series(self) -> None:
        registry = CollectorRegistry()
        metrics = create_metrics(registry, RunStats())
        metrics.set_consumer_lag("raw", 3, 7)
        metrics.forget_partition("raw", 3)
        labels = {"topic": "raw", "partition": "3"}
        assert registry.get_sample_value("nhi_kafka_consumer_lag_messages", labels) is None
        assert registry.get_sample_value("nhi_kafka_last_commit_age_seconds", labels) is None

    def test_recovery_progress(self) -> None:
        registry = CollectorRegistry()
        metrics = create_metrics(registry, RunStats())
        metrics.set_recovering(True)
        metrics.set_recovery("profiles", 1200)
        assert registry.get_sample_value("nhi_recovery_in_progress") == 1
        metrics.set_recovery("profiles", 0)
        metrics.set_recovering(False)
        assert registry.get_sample_value("nhi_recovery_in_progress") == 0
        assert registry.get_sample_value("nhi_recovery_remaining_messages",
                                         {"table": "profiles"}) == 0


class TestRegistration:
    def test_private_registries__do_not_collide(self) -> None:
        first, second = CollectorRegistry(), CollectorRegistry()
        create_metrics(first, RunStats())
        create_metrics(second, RunStats())
        assert exported_names(first) == exported_names(second)

    def test_same_registry_twice__is_refused(self) -> None:
        registry = CollectorRegistry()
        create_metrics(registry, RunStats())
        with pytest.raises(ValueError, match="Duplicated timeseries"):
            create_metrics(registry, RunStats())

    def test_prefix__applies_to_every_metric(self) -> None:
        registry = CollectorRegistry()
        create_metrics(registry, RunStats(), prefix="acme_")
        assert exported_names(registry)
        assert all(name.startswith("acme_") for name in exported_names(registry))

    def test_names__follow_conventions(self) -> None:
        registry = CollectorRegistry()
        create_metrics(registry, RunStats())
        for family in registry.collect():
            assert re.fullmatch(r"nhi_[a-z_]+", family.name), family.name
            if "seconds" in family.name or "bytes" in family.name:
                assert family.name.endswith(("_seconds", "_bytes")), family.name

    def test_every_metric__is_documented(self, repo_dir: Path) -> None:
        from streams.health import WorkerCollector  # the worker adds these to the endpoint

        registry = CollectorRegistry()
        metrics = create_metrics(registry, RunStats(), process_metrics=True)
        registry.register(WorkerCollector(metrics.prefix, dict))
        doc = (repo_dir / "docs" / "metrics.md").read_text(encoding="utf-8")
        documented = set(re.findall(r"`([a-z_]+)`", doc))
        families = {f.name + ("_total" if f.type == "counter" else "")
                    for f in registry.collect()}
        assert families - documented == set()


@contextlib.contextmanager
def replay_process(cmd: list[str], stderr_path: Path) -> Iterator[subprocess.Popen]:
    """A replay started with ``cmd`` (stdin a pipe, stderr to ``stderr_path``), killed on
    the way out if it is still running."""
    with open(stderr_path, "w", encoding="utf-8") as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=err, cwd=REPO)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


LOGGED_PORT = r"listening on http://127\.0\.0\.1:(\d+)/metrics"
"""The replay's INFO log line (``-v``) naming its metrics port."""


def wait_for_port(log_path: Path, proc, timeout: float = 60.0, pattern: str = LOGGED_PORT
                  ) -> int:
    """The port the replay's metrics server bound, read from its stderr (``pattern``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log_path.read_text(encoding="utf-8", errors="replace"),
                          re.MULTILINE)
        if found:
            return int(found.group(1))
        assert proc.poll() is None, log_path.read_text(encoding="utf-8", errors="replace")
        time.sleep(0.1)
    raise AssertionError("the replay never logged its metrics port")


def scrape_until(port: int, expected: dict[str, int], proc, log_path: Path,
                 timeout: float = 120.0, identities: int = 0) -> dict:
    """Scrape until events per source reach ``expected`` (the input is then fully read)
    and the detector tracks ``identities`` identities (it has processed them)."""
    deadline = time.monotonic() + timeout
    samples: dict = {}
    while time.monotonic() < deadline:
        try:
            samples = scrape(port)
        except OSError:
            # the endpoint went away: the replay has most likely died; show why
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            assert proc.poll() is None, log_path.read_text(encoding="utf-8", errors="replace")
            raise
        got = {src: samples.get(("nhi_events_total", (("source", src),))) for src in expected}
        tracked = samples.get(("nhi_identities_tracked", ()), 0.0)
        if got == {src: float(n) for src, n in expected.items()} and tracked >= identities:
            return samples
        time.sleep(0.2)
    raise AssertionError(f"events never reached {expected}; last scrape {samples}")


def stdin_chunk_lines() -> int:
    """How many JSON lines the sources parse from a stream before handing events on."""
    from detector.sources import Parser

    return inspect.signature(Parser.feed_stream).parameters["chunk_lines"].default


def one_chunk_of_records(n_lines: int) -> tuple[list[bytes], dict[str, int], float]:
    """``n_lines`` JSON lines in time order: CloudTrail and Kubernetes records, one broken."""
    from tests.replay import logs

    trail, k8s = logs.baseline(random.Random(7), 0, n_lines // 10 + 1)
    records = sorted(trail + k8s, key=lambda r: r.get("eventTime") or r["stageTimestamp"])
    records = records[: n_lines - 1]
    lines = [orjson.dumps(r) + b"\n" for r in records]
    lines.insert(len(lines) // 2, b'{"kind": "Event", "apiVersion": "audit.k8s.io/v1"\n')
    counts = {"aws.cloudtrail": sum("eventTime" in r for r in records),
              "k8s.audit": sum("stageTimestamp" in r for r in records)}
    last = max(r.get("eventTime") or r["stageTimestamp"] for r in records)
    last_ts = datetime.fromisoformat(last.replace("Z", "+00:00")).timestamp()
    return lines, counts, last_ts


class TestReplayEndpoint:
    """A real replay with ``--metrics-port``, scraped over HTTP while it runs.

    The replay reads ``-``: stdin is a pipe the test writes exactly one parsing chunk of
    lines to and keeps open, so the process stays up (serving /metrics) with all of them
    read and processed. The test scrapes, closes stdin and checks the replay's own summary
    agrees with the scrape.
    """

    def test_port_zero__chosen_port_said_without_verbose(self, tmp_path: Path) -> None:
        # ``--metrics-port 0`` named the port only in the INFO log, so without ``-v`` the
        # endpoint was there but nobody could find it
        stderr_path = tmp_path / "stderr.log"
        cmd = [sys.executable, "-m", "detector.cli", "replay", "-", "--metrics-port", "0",
               "--no-progress", "--alerts", str(tmp_path / "a.jsonl")]
        with replay_process(cmd, stderr_path) as proc:
            port = wait_for_port(stderr_path, proc,
                                 pattern=r"^metrics: http://127\.0\.0\.1:(\d+)/metrics$")
            samples = scrape(port)  # the very endpoint of this run
            assert samples[("nhi_identities_tracked", ())] == 0
            proc.stdin.close()
            assert proc.wait(timeout=120) == 0, stderr_path.read_text(encoding="utf-8")

    def test_scraped_counts__equal_the_input(self, tmp_path: Path) -> None:
        from tests.replay import logs

        lines, counts, last_ts = one_chunk_of_records(stdin_chunk_lines())
        stderr_path, summary_path = tmp_path / "stderr.log", tmp_path / "summary.json"
        cmd = [sys.executable, "-m", "detector.cli", "-v", "replay", "-", "--metrics-port", "0",
               "--no-progress", "--alerts", str(tmp_path / "a.jsonl"),
               "--dead-letters", str(tmp_path / "dead.jsonl"), "--summary-json", str(summary_path)]
        with replay_process(cmd, stderr_path) as proc:
            port = wait_for_port(stderr_path, proc)
            proc.stdin.write(b"".join(lines))
            proc.stdin.flush()
            identities = len(logs.ROLES) + len(logs.SERVICE_ACCOUNTS)
            samples = scrape_until(port, counts, proc, stderr_path, identities=identities)
            proc.stdin.close()
            assert proc.wait(timeout=300) == 0, stderr_path.read_text(encoding="utf-8")
        dead = {lab: v for (name, lab), v in samples.items() if name == "nhi_dead_letters_total"}
        assert sum(dead.values()) == 1
        read = {lab: v for (name, lab), v in samples.items() if name == "nhi_records_read_total"}
        skipped = [v for (name, _), v in samples.items() if name == "nhi_skipped_records_total"]
        assert sum(read.values()) == sum(counts.values()) + 1 + sum(skipped)
        for source, n in counts.items():
            assert read[(("source", source),)] == n
        assert samples[("nhi_identities_tracked", ())] == identities
        assert samples[("nhi_last_event_timestamp_seconds", ())] == last_ts
        assert 0 < time.time() - last_ts - samples[("nhi_event_time_lag_seconds", ())] < 120
        summary = orjson.loads(summary_path.read_bytes())
        assert summary["events"]["per_source"] == counts
        assert summary["identities"]["tracked"] == identities
