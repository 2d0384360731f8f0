"""What metrics cost: the hot-path increment, and one scrape as identities grow.

Usage::

    .venv/bin/python benchmarks/bench_metrics.py [--identities 1000,10000,50000]

Prints two tables (figures, not a test):

1. the per-event cost of counting an event the way the stages do (``RunStats`` counters)
   next to incrementing a labelled prometheus-client ``Counter`` directly, which is what
   reading ``RunStats`` at scrape time saves on every event;
2. the wall time of one scrape (``generate_latest``) with a real ``Detector`` attached that
   tracks N identities: a full one (the state size recomputed, at most once a minute) and
   one within the refresh period, and the size of the exposition, to size scrape intervals
   and timeouts. Label cardinality does not grow with identities; only the engine's walks do.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, Counter, generate_latest  # noqa: E402

from detector.event import Event  # noqa: E402
from detector.metrics import create_metrics  # noqa: E402
from detector.stats import RunStats  # noqa: E402

SOURCES = ("aws.cloudtrail", "gcp.audit", "azure.activity", "azure.signin", "k8s.audit")
T0 = 1_704_067_200.0


def hot_path(n: int) -> tuple[float, float]:
    """Nanoseconds per increment: RunStats counter vs a labelled prometheus Counter."""
    stats = RunStats()
    started = time.perf_counter()
    for i in range(n):
        stats.events[SOURCES[i % 5]] += 1
    plain = (time.perf_counter() - started) / n * 1e9
    counter = Counter("bench_events", "bench", ["source"], registry=CollectorRegistry())
    started = time.perf_counter()
    for i in range(n):
        counter.labels(SOURCES[i % 5]).inc()
    direct = (time.perf_counter() - started) / n * 1e9
    return plain, direct


def event(i: int, identity: str) -> Event:
    ts = T0 + i
    return Event(event_id=f"e{i}", time=datetime.fromtimestamp(ts, UTC), ts=ts,
                 source="aws.cloudtrail", identity=identity, identity_kind="workload",
                 action="s3:GetObject", region="eu-west-1", network="private",
                 agent_family="boto3", read_only=True)


def scrape_with(identities: int) -> tuple[float, float, int, float]:
    """Scrape figures with N identities.

    Returns (ms of a scrape that recomputes the state size, ms of a scrape within the
    refresh period, exposition bytes, seconds to build the state).
    """
    from detector.engine import Detector

    stats = RunStats()
    detector = Detector({}, stats=stats)
    started = time.perf_counter()
    for i in range(identities):
        detector.process(event(i, f"arn:aws:iam::111122223333:role/bench-{i}"))
    built = time.perf_counter() - started
    registry = CollectorRegistry()
    create_metrics(registry, stats, detector=detector, process_metrics=True)
    started = time.perf_counter()
    body = generate_latest(registry)
    full = (time.perf_counter() - started) * 1000
    runs = 5
    started = time.perf_counter()
    for _ in range(runs):
        generate_latest(registry)
    return full, (time.perf_counter() - started) / runs * 1000, len(body), built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", default="1000,10000,50000",
                        help="comma-separated identity counts to scrape with")
    parser.add_argument("--increments", type=int, default=1_000_000)
    args = parser.parse_args()
    plain, direct = hot_path(args.increments)
    print(f"hot path, per increment: RunStats {plain:.0f} ns, "
          f"prometheus Counter.labels().inc() {direct:.0f} ns ({direct / plain:.1f}x)")
    print(f"{'identities':>10} {'full scrape ms':>15} {'cached size ms':>15} {'bytes':>8} "
          f"{'build s':>8}")
    for n in (int(x) for x in args.identities.split(",")):
        full, cached, size, built = scrape_with(n)
        print(f"{n:>10} {full:>15.1f} {cached:>15.1f} {size:>8} {built:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
