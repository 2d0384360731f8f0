"""What a worker prints at the default log level (no -v): a few lifecycle lines on stderr,
no library noise and nothing at all on stdout, even when stdout is a file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detector import __version__
from tests.streams import scenario
from tests.streams.kafka_helpers import (
    accounted_ids,
    create_topic,
    framed_batches,
    free_port,
    produce,
    start_worker,
    warm_snapshot,
    worker_args,
)

pytestmark = pytest.mark.kafka


def _messages(log_path: Path) -> list[str]:
    """The log lines without their time stamp ("2026-12-04 22:30:00,123 ")."""
    return [line.split(" ", 2)[2] for line in log_path.read_text().splitlines()]


def test_default_level_prints_only_the_lifecycle(kafka_bootstrap: str,
                                                 story: scenario.Scenario,
                                                 tmp_path: Path) -> None:
    snapshot, live = warm_snapshot(story, scenario.T0 + 86400, tmp_path)
    app_id = "quiet"
    create_topic(kafka_bootstrap, f"{app_id}.raw")
    args = worker_args(kafka_bootstrap, app_id, tmp_path / "state", free_port(),
                       "--load-state", str(snapshot))
    payloads = framed_batches(live)
    outputs = []
    for run in ("first", "second"):
        worker = start_worker(args, tmp_path / f"{run}.log", verbose=False,
                              stdout_path=tmp_path / f"{run}.out")
        try:
            worker.wait_ready()
            if run == "first":
                produce(kafka_bootstrap, f"{app_id}.raw", payloads)
                accounted_ids(kafka_bootstrap, app_id, {r["eventID"] for r in live},
                              timeout=120)
        finally:
            assert worker.stop() == 0, worker.log_tail()
        outputs.append((_messages(worker.log_path), (tmp_path / f"{run}.out").read_bytes()))
    state_dir = tmp_path / "state" / "w1"
    started = (f"INFO streams.worker: nhi-detector worker {__version__} started: broker "
               f"{kafka_bootstrap}, topics quiet.raw, state dir {state_dir}, mode live "
               f"(native alerts to quiet.alerts)")
    ready = "INFO streams.worker: ready (partitions quiet-events-by-identity 2, quiet.raw 1)"
    stopping = ("INFO streams.worker: stopping (SIGTERM): finishing buffered messages, "
                "committing offsets")
    (first, first_out), (second, second_out) = outputs
    assert re.fullmatch(rf"INFO streams\.warmstart: warm start: seeded [1-9][0-9]* "
                        rf"identities from {re.escape(str(snapshot))}", first[1])
    assert first[:1] + first[2:] == [started, ready, stopping,
                     f"INFO streams.worker: stopped (exit 0; committed offsets "
                     f"quiet.raw[0]={len(payloads)})"]
    assert second[0] == started
    assert re.fullmatch(r"INFO streams\.warmstart: warm start: snapshot \S+ \(sha256 "
                        r"[0-9a-f]{12}\) was applied before; skipping", second[1])
    assert second[2:] == [ready, stopping,
                          f"INFO streams.worker: stopped (exit 0; committed offsets "
                          f"quiet.raw[0]={len(payloads)})"]
    # Faust's progress spinner wrote "\b\x1b[?25h" here even though stdout is a file
    assert (first_out, second_out) == (b"", b"")
