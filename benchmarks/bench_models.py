"""Benchmark of the per-identity models: update + score speed, state size, extrapolation.

Run: ``.venv/bin/python benchmarks/bench_models.py [--identities 40] [--events 10000]``.

Events are pre-parsed ``Event`` objects (no parsing cost measured). Each identity draws
from its own 30 actions, 300 resources, 1–3 regions, 4 networks, 2 clients and two
credentials, with 2 % failures, activity that follows the hour of day, and a pace from
dense (a call every 3 s) to sparse (every 2 min); see ``identity_events`` for the mixes
measured (a third run makes every identity busy). Events of all identities are interleaved
in event-time order, so the benchmark pays for switching between profiles as the engine
does. Prints events/s per core (CPU time, so other load on the machine does not count) for
``IdentityProfile.observe`` (all models: score then learn), the median and p90 serialised
state per identity, the enforced cap, the extrapolation to one million identities, the
time to save and load one profile, and the resident memory of a loaded profile.

The synthetic mixes are dense: most events fall in a time bucket that already holds
others. The replay is not: replay_data's 348 identities make 1.6 events per 10-minute
bucket (median gap between two events of an identity 11 minutes, a tenth of them over
3 hours), and several touch a new resource on almost every call, so nearly every event
folds a bucket, empty buckets and the multivariate model, checks the size cap and scores
an unseen resource. The last run therefore measures the models on the very events the
replay feeds them (``--replay``, default ``replay_data/``, parsed before the clock starts,
default settings as in the replay): the figure that predicts the replay's models cost.
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path

import models
from detector.event import Event
from models.peers import PeerIndex
from models.profile import IdentityProfile
from models.settings import ModelSettings

T0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC
REPO = Path(__file__).resolve().parents[1]


def _zipf_pick(rng: random.Random, items: list[str]) -> str:
    index = int(len(items) * rng.random() ** 3)
    return items[min(index, len(items) - 1)]


def identity_events(n: int, events: int, seed: int, independent: bool = False,
                    gap: float | None = None) -> list[Event]:
    """``events`` varied events of identity number ``n`` in event-time order.

    Realistic mix (default): the identity runs a set of 12–40 code paths, each a fixed
    (action, resource, network, client, credential, region), picked Zipf-like; 5 % of
    calls touch one of 300 other resources, 2 % fail. ``independent``: every attribute is
    drawn on its own (a worst case with almost no repeated combination).
    """
    rng = random.Random(seed * 7919 + n)
    ident = f"arn:aws:iam::{100000000000 + n % 5}:role/service-{n % 17}-worker-{n}"
    services = ["s3", "ec2", "sqs", "dynamodb", "kms", "sts", "logs"]
    actions = [f"{rng.choice(services)}:Op{i}" for i in range(30)]
    resources = [f"arn:aws:s3:::bucket-{n}/prefix/{i}/object.json" for i in range(300)]
    regions = ["us-east-1", "eu-west-1", "ap-south-1"][: rng.randint(1, 3)]
    networks = [(f"10.{n % 250}.{i}.0/24", "private") for i in range(3)]
    networks.append(("s3.amazonaws.com", "cloud_service"))
    agents = ["boto3", "aws-cli"]
    creds = [f"ASIA{n:08d}{i}" for i in range(2)]
    paths = [
        (rng.choice(actions), rng.choice(resources[:40]), rng.choice(networks),
         rng.choice(agents), rng.choice(creds), rng.choice(regions))
        for _ in range(rng.randint(12, 40))
    ]
    mean_gap = gap or rng.choice([3.0, 10.0, 30.0, 120.0])
    out = []
    ts = T0 + rng.random() * 3600
    for i in range(events):
        hour = int(ts // 3600) % 24
        ts += rng.expovariate(1.0 / (mean_gap * (4 if hour < 6 else 1)))
        if independent:
            action, resource = _zipf_pick(rng, actions), _zipf_pick(rng, resources)
            net, agent = rng.choice(networks), rng.choice(agents)
            cred, region = rng.choice(creds), rng.choice(regions)
        else:
            action, resource, net, agent, cred, region = paths[
                int(len(paths) * rng.random() ** 2)]
            if rng.random() < 0.05:
                resource = rng.choice(resources)
        failed = rng.random() < 0.02
        out.append(Event(
            event_id=f"{n}-{i}", time=datetime.fromtimestamp(ts, UTC), ts=ts,
            source="aws.cloudtrail", identity=ident, identity_kind="workload",
            tenant=ident.split(":")[4], action=action, resource=resource, region=region,
            network=net[1], network_prefix=net[0], agent_family=agent,
            credential_id=cred, credential_type="temporary",
            outcome="failure" if failed else "success",
            error_code="AccessDenied" if failed else None,
        ))
    return out


def interleave(streams: list[list[Event]]) -> list[Event]:
    return list(heapq.merge(*streams, key=lambda e: e.ts))


def measure(stream: list[Event], settings: ModelSettings) -> tuple[dict, PeerIndex, float, int]:
    """Observe every event; returns the profiles, the peer index, CPU seconds, signals."""
    peers = PeerIndex(settings)
    profiles: dict[str, IdentityProfile] = {}
    signals = 0
    start = time.process_time()
    for event in stream:
        profile = profiles.get(event.identity)
        if profile is None:
            profile = profiles[event.identity] = IdentityProfile(
                event.identity, event.identity_kind, settings)
        signals += len(profile.observe(event, peers))
    return profiles, peers, time.process_time() - start, signals


def resident_bytes(profiles: dict[str, IdentityProfile], settings: ModelSettings) -> float:
    """Mean traced allocation of a profile rebuilt from its blob (what a worker holds)."""
    blobs = [p.to_bytes() for p in profiles.values()]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [IdentityProfile.from_bytes(blob, settings) for blob in blobs]
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / max(1, len(kept))


def replay_events(path: str) -> list[Event]:
    """The events the replay hands the detector for ``path``, in its order (file streams
    merged by time, then the reorder window), labels files left out."""
    from detector.reorder import ReorderBuffer
    from detector.replay import open_events
    from detector.sources.deadletter import NullDeadLetters
    from detector.stats import RunStats

    stats = RunStats()
    labels = [str(Path(path) / "labels.json")]
    events = open_events([path], None, stats, NullDeadLetters(), None, exclude=labels)
    return list(ReorderBuffer(stats=stats).reorder(events))


def run_replay(path: str) -> None:
    """``measure`` over the replay's own events, with the replay's (default) settings."""
    settings = ModelSettings()
    stream = replay_events(path)
    identities = len({event.identity for event in stream})
    print(f"== replay mix: the events of {path} ({len(stream):,} events, "
          f"{identities} identities; default settings)", flush=True)
    profiles, _, cpu, signals = measure(stream, settings)
    rate = len(stream) / cpu
    sizes = sorted(p.size_bytes() for p in profiles.values())
    print(f"signals: {signals:,}")
    print(f"update+score, all models: {rate:,.0f} events/s per core "
          f"({1e6 / rate:.1f} us/event, CPU time)")
    print(f"state per identity: median {statistics.median(sizes) / 1024:.1f} KiB, "
          f"max {sizes[-1] / 1024:.1f} KiB")


def run(identities: int, events: int) -> int:
    # A short learning period, so that busy identities (10,000 events in 8 hours) spend
    # almost all of the run past it and every model scores: the worst case for speed.
    settings = ModelSettings(learning_min_days=0.1)
    print(f"models build: {models.BUILD}")
    print("learning period: 50 events and 2.4 hours of event time (so nearly every event "
          "is scored by every model)")
    scenarios = (("realistic mix", False, None), ("independent attributes", True, None),
                 ("realistic mix, busy identities (a call every 3 s)", False, 3.0))
    for label, independent, gap in scenarios:
        print(f"== {label}: {identities} identities x {events:,} events", flush=True)
        stream = interleave([identity_events(n, events, 1, independent, gap)
                             for n in range(identities)])
        profiles, peers, cpu, signals = measure(stream, settings)
        rate = len(stream) / cpu
        sizes = sorted(p.size_bytes() for p in profiles.values())
        median = statistics.median(sizes)
        p90 = sizes[int(0.9 * (len(sizes) - 1))]
        days = (stream[-1].ts - stream[0].ts) / 86400
        print(f"events: {len(stream):,} over {days:.1f} days of event time, "
              f"signals: {signals:,}")
        print(f"update+score, all models: {rate:,.0f} events/s per core "
              f"({1e6 / rate:.1f} us/event, CPU time)")
        print(f"state per identity after {events:,} varied events: median "
              f"{median / 1024:.1f} KiB, p90 {p90 / 1024:.1f} KiB, max {sizes[-1] / 1024:.1f} KiB")
        print(f"enforced cap per identity: {settings.max_state_bytes / 1024:.1f} KiB "
              f"(models.max_state_bytes)")
        print(f"peer index: {len(peers.groups)} groups, {peers.size_bytes() / 1024:.1f} KiB")
        print(f"extrapolation to 1,000,000 identities: {median * 1e6 / 2**30:.1f} GiB "
              f"serialised at the median, {settings.max_state_bytes * 1e6 / 2**30:.1f} GiB "
              "at the cap")
        start = time.process_time()
        blobs = [p.to_bytes() for p in profiles.values()]
        dump = (time.process_time() - start) / len(blobs)
        start = time.process_time()
        for blob in blobs:
            IdentityProfile.from_bytes(blob, settings)
        load = (time.process_time() - start) / len(blobs)
        print(f"serialise / load one profile: {dump * 1e6:.0f} us / {load * 1e6:.0f} us")
        resident = resident_bytes(profiles, settings)
        print(f"resident Python objects per identity (profiles reloaded from their blobs): "
              f"{resident / 1024:.1f} KiB, {resident * 1e6 / 2**30:.1f} GiB per million")
        degr = sum(sum(p.degradations.values()) for p in profiles.values())
        print(f"degradations counted: {degr:,}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=40)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--replay", default=str(REPO / "replay_data"),
                        help="replay input measured last (default: replay_data/)")
    args = parser.parse_args(argv)
    code = run(args.identities, args.events)
    run_replay(args.replay)
    return code


if __name__ == "__main__":
    sys.exit(main())
