"""Replay throughput, end to end, on one core: read, parse, reorder, models, scoring, alerts.

Prints one line per stage; the differences between stages are what each part costs.

Usage::

    .venv/bin/python benchmarks/bench_replay.py [PATH ...] [--config FILE] [--repeat N]

PATH defaults to ``replay_data/``. The stages:

1. read + parse alone (the replay's file streams merged by time): the sources' ceiling;
2. read + parse + reorder buffer;
3. the same plus the replay loop's own bookkeeping (activity for the report, progress)
   around a stand-in detector that does nothing: the harness's whole overhead;
4. the full ``nhi-detector replay`` (alerts written as JSON lines to /dev/null), as wall
   time and as CPU time of this process, which is the one-core figure.

The target (issue 5) is at least 30,000 events/s end to end on one core on replay_data.
Pin to one core with ``taskset -c 0`` for a strict one-core figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
TARGET_EVENTS_PER_SECOND = 30_000


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def _events(paths: list[str], stats):
    """The replay's own input path (file streams merged by time), labels files left out."""
    from detector.replay import open_events
    from detector.sources.deadletter import NullDeadLetters

    labels = [str(Path(p) / "labels.json") for p in paths]
    return open_events(paths, None, stats, NullDeadLetters(), None, exclude=labels)


def parse_only(paths: list[str]) -> int:
    from detector.stats import RunStats

    return sum(1 for _ in _events(paths, RunStats()))


def parse_and_reorder(paths: list[str]) -> int:
    from detector.reorder import ReorderBuffer
    from detector.stats import RunStats

    stats = RunStats()
    return sum(1 for _ in ReorderBuffer(stats=stats).reorder(_events(paths, stats)))


class NoDetector:
    """Stands in for the engine to time the harness alone (it raises nothing)."""

    def process(self, event):
        return []

    def finish(self):
        return []


def harness_only(paths: list[str]) -> int:
    from detector.evaluation import Activity, AlertLog
    from detector.reorder import ReorderBuffer
    from detector.replay import AlertWriter, run_loop
    from detector.stats import RunStats
    from detector.summary import Progress

    stats = RunStats()
    events = ReorderBuffer(stats=stats).reorder(_events(paths, stats))
    with open(os.devnull, "wb") as sink:
        writer = AlertWriter(sink, "native", AlertLog())
        result = run_loop(events, NoDetector(), writer, Activity(hourly=True),
                          Progress(sys.stderr, enabled=False))
    return result.events


def full_replay(paths: list[str], config: str | None) -> dict:
    from detector.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        summary_path = os.path.join(tmp, "summary.json")
        argv = ["replay", *paths, "--alerts", os.devnull, "--no-progress",
                "--summary-json", summary_path]
        if config:
            argv += ["--config", config]
        saved = sys.stdout
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the summary table is not wanted)
        try:
            code = main(argv)
        finally:
            sys.stdout.close()
            sys.stdout = saved
        if code != 0:
            raise SystemExit(f"replay exited with {code}")
        return orjson.loads(Path(summary_path).read_bytes())


def line(label: str, events: int, wall: float, cpu: float) -> str:
    return (f"{label:<28} {events:>10,} events  wall {wall:7.2f}s = {events / wall:>9,.0f}/s"
            f"  cpu {cpu:7.2f}s = {events / max(cpu, 1e-9):>9,.0f}/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(REPO / "replay_data")])
    parser.add_argument("--config")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        raise SystemExit(f"no such path: {missing}")
    size = sum(f.stat().st_size for p in args.paths for f in
               ([Path(p)] if Path(p).is_file() else Path(p).rglob("*")) if f.is_file())
    print(f"input: {', '.join(args.paths)} ({size / 1e6:.1f} MB on disk)")
    for run in range(1, args.repeat + 1):
        n, wall, cpu = timed(lambda: parse_only(args.paths))
        print(line(f"[{run}] read + parse", n, wall, cpu))
        n, wall, cpu = timed(lambda: parse_and_reorder(args.paths))
        print(line(f"[{run}] read + parse + reorder", n, wall, cpu))
        n, wall, cpu = timed(lambda: harness_only(args.paths))
        print(line(f"[{run}] ... + harness, no engine", n, wall, cpu))
        summary, wall, cpu = timed(lambda: full_replay(args.paths, args.config))
        n = summary["events"]["total"]
        print(line(f"[{run}] full replay", n, wall, cpu))
        rate = n / max(cpu, 1e-9)
        verdict = "meets" if rate >= TARGET_EVENTS_PER_SECOND else "BELOW"
        print(f"    alerts {summary['alerts']['total']:,}; one-core rate {rate:,.0f} events/s "
              f"{verdict} the {TARGET_EVENTS_PER_SECOND:,}/s target; replay's own figures "
              f"{summary['throughput']['events_per_second']:,.0f}/s wall, "
              f"{summary['throughput']['events_per_cpu_second']:,.0f}/s per CPU second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
