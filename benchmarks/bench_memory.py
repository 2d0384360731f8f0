"""Benchmark of the identity store's resident memory, with and without the live bound (B25).

Prints figures, asserts nothing. Run: ``python3 benchmarks/bench_memory.py [identities]``.

Each of N workloads gets three days of routine calls (two actions an hour, a few
resources), then the detector's traced memory (``tracemalloc``: Python allocations still
held) is divided by N, once with every identity live (``max_live=0``) and once with at
most ``LIVE`` of them materialised and the others kept as their serialised blobs.
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.engine import Detector  # noqa: E402
from detector.event import Event  # noqa: E402
from detector.stats import RunStats  # noqa: E402

T0 = datetime(2024, 3, 1, tzinfo=UTC)
IDENTITIES = 2000
LIVE = 100
DAYS = 3


def events(identities: int) -> list[Event]:
    out = []
    for day in range(DAYS):
        for hour in range(24):
            for i in range(identities):
                for j, action in enumerate(("s3:GetObject", "sqs:ReceiveMessage")):
                    when = T0 + timedelta(days=day, hours=hour, seconds=i % 3600)
                    out.append(Event(
                        event_id=f"e{day}-{hour}-{i}-{j}", time=when, ts=when.timestamp(),
                        source="aws.cloudtrail", identity=f"arn:aws:iam::1:role/r{i}",
                        identity_kind="workload", tenant="1", action=action,
                        resource=f"arn:aws:s3:::data/{i}/{hour % 4}",
                        source_ip=f"10.0.{i % 250}.5", network="private",
                        network_prefix=f"10.0.{i % 250}.0/24", agent_family="boto3",
                        region="us-east-1", credential_id=f"ASIA{i:012d}",
                        credential_type="temporary",
                    ))
    out.sort(key=lambda event: event.ts)
    return out


def measure(stream: list[Event], max_live: int) -> tuple[int, float, Detector]:
    """(traced bytes held by the detector, seconds to process the stream, detector)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    detector = Detector({}, stats=RunStats(), max_live=max_live)
    for event in stream:
        detector.process(event)
    elapsed = time.perf_counter() - started
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held, elapsed, detector


def main() -> None:
    identities = int(sys.argv[1]) if len(sys.argv) > 1 else IDENTITIES
    stream = events(identities)
    print(f"{identities:,} identities, {len(stream):,} events over {DAYS} days")
    blob = 0
    for label, limit in (("unbounded", 0), (f"max_live={LIVE}", LIVE)):
        held, elapsed, detector = measure(stream, limit)
        blob = blob or sum(len(detector.identity_state(k) or b"") for k in detector.store)
        live = len(getattr(detector.store, "live", detector.store))
        print(f"{label:>14}: {held / identities / 1024:7.1f} KiB resident per identity "
              f"({held / 2**20:7.1f} MiB, {live:,} live), {len(stream) / elapsed:9,.0f} "
              "events/s (traced)")
    print(f"{'blob':>14}: {blob / identities / 1024:7.1f} KiB serialised per identity")


if __name__ == "__main__":
    main()
