"""Benchmark of the Detector engine's own cost (scoring, grouping, inventory, state).

Prints figures, asserts nothing. Run: ``python3 benchmarks/bench_engine.py``.

1. quiet traffic: ``Detector.process`` against the bare ``IdentityProfile.observe`` loop on
   the same events; the difference is the engine's per-event overhead;
2. a burst of 10,000 deviations of one identity: events/s and alerts emitted;
3. alert output: ``to_native`` + orjson, ``to_ocsf`` + orjson, per alert;
4. state: identity blob size and ``export_state``/``load_state`` time.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detector.engine import Detector  # noqa: E402
from detector.event import Event  # noqa: E402
from detector.ocsf import to_ocsf  # noqa: E402
from detector.stats import RunStats  # noqa: E402
from models.peers import PeerIndex  # noqa: E402
from models.profile import IdentityProfile  # noqa: E402
from models.settings import ModelSettings  # noqa: E402

T0 = datetime(2024, 3, 1, tzinfo=UTC)
IDENTITIES = 200
DAYS = 5


def quiet_events() -> list[Event]:
    events = []
    for day in range(DAYS):
        for hour in range(24):
            for i in range(IDENTITIES):
                when = T0 + timedelta(days=day, hours=hour, seconds=i)
                for action in ("s3:GetObject", "sqs:ReceiveMessage"):
                    events.append(Event(
                        event_id=f"{day}-{hour}-{i}-{action}", time=when, ts=when.timestamp(),
                        source="aws.cloudtrail", identity=f"arn:aws:iam::1:role/r{i}",
                        identity_kind="workload", tenant="1", action=action,
                        resource=f"arn:aws:s3:::b{i}/k", source_ip="10.0.0.5",
                        network="private", network_prefix="10.0.0.0/24",
                        agent_family="boto3", region="us-east-1",
                    ))
    return events


def bare_profiles(events: list[Event]) -> float:
    settings = ModelSettings()
    peers = PeerIndex(settings)
    profiles: dict[str, IdentityProfile] = {}
    started = time.perf_counter()
    for event in events:
        profile = profiles.get(event.identity)
        if profile is None:
            profile = profiles[event.identity] = IdentityProfile(
                event.identity, event.identity_kind, settings)
        profile.observe(event, peers)
    return time.perf_counter() - started


def engine(events: list[Event]) -> tuple[float, Detector]:
    detector = Detector({}, stats=RunStats())
    started = time.perf_counter()
    for event in events:
        detector.process(event)
    return time.perf_counter() - started, detector


class NullProfile:
    """A profile that learns nothing and never signals: isolates the engine's own cost."""

    degradations: dict = {}

    def observe(self, event: Event, peers: object) -> list:
        return []

    def in_learning(self, ts: float) -> bool:
        return False

    def thin_history(self, ts: float) -> bool:
        return False

    def scored_stage(self, ts: float) -> int:
        return 2  # models.common.LEARNED

    def learning_progress(self, ts: float, scored: bool = False) -> str:
        return "learned"


def engine_only(events: list[Event]) -> float:
    from detector.engine import AlertState, IdentityState
    from detector.inventory import InventoryRecord

    detector = Detector({}, stats=RunStats())
    for event in events[:IDENTITIES * 2]:
        detector.store[event.identity] = IdentityState(
            NullProfile(), InventoryRecord(), AlertState())
    started = time.perf_counter()
    for event in events:
        detector.process(event)
    return time.perf_counter() - started


def burst(detector: Detector) -> None:
    base = T0 + timedelta(days=DAYS, hours=3)
    events = [Event(
        event_id=f"burst{n}", time=base + timedelta(seconds=n / 10),
        ts=(base + timedelta(seconds=n / 10)).timestamp(), source="aws.cloudtrail",
        identity="arn:aws:iam::1:role/r0", identity_kind="workload", tenant="1",
        action="iam:CreateAccessKey", resource=f"arn:aws:iam::1:user/u{n}",
        source_ip="203.0.113.7", network="public", network_prefix="203.0.113.0/24",
        agent_family="boto3", region="us-east-1",
    ) for n in range(10_000)]
    started = time.perf_counter()
    alerts = []
    for event in events:
        alerts += detector.process(event)
    alerts += detector.finish()
    took = time.perf_counter() - started
    print(f"burst: 10,000 deviations in {took:.2f} s = {10_000 / took:,.0f} events/s; "
          f"{len(alerts)} alert lines, {len({a.alert_id for a in alerts})} alert id(s)")
    if alerts:
        output(alerts[-1])


def output(alert) -> None:
    n = 2000
    started = time.perf_counter()
    for _ in range(n):
        orjson.dumps(alert.to_native())
    native = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for _ in range(n):
        orjson.dumps(to_ocsf(alert))
    ocsf = (time.perf_counter() - started) / n
    print(f"alert output: native {native * 1e6:.0f} µs, OCSF {ocsf * 1e6:.0f} µs per alert "
          f"({len(orjson.dumps(alert.to_native()))} / {len(orjson.dumps(to_ocsf(alert)))} B)")


def state(detector: Detector) -> None:
    started = time.perf_counter()
    blob = detector.export_state()
    exported = time.perf_counter() - started
    started = time.perf_counter()
    Detector({}, stats=RunStats()).load_state(blob)
    loaded = time.perf_counter() - started
    sizes = sorted(len(detector.identity_state(k)) for k in detector.store)
    print(f"state: {len(detector.store)} identities, snapshot {len(blob) / 1024:.0f} KiB, "
          f"export {exported * 1000:.0f} ms, load {loaded * 1000:.0f} ms, median identity "
          f"blob {sizes[len(sizes) // 2]} B, largest {sizes[-1]} B")


def main() -> None:
    events = quiet_events()
    bare = bare_profiles(events)
    full, detector = engine(events)
    n = len(events)
    print(f"quiet traffic: {n:,} events, {IDENTITIES} identities, {DAYS} days")
    print(f"  profiles alone  {bare:6.2f} s = {n / bare:9,.0f} events/s")
    print(f"  Detector.process {full:6.2f} s = {n / full:9,.0f} events/s")
    alone = engine_only(events)
    print(f"  engine alone (no models) {alone / n * 1e6:.2f} µs per event "
          f"= {n / alone:,.0f} events/s")
    burst(detector)
    state(detector)


if __name__ == "__main__":
    main()
