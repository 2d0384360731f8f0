"""A stop signal while the broker is gone (real worker, a broker of the test's own).

The graceful stop commits offsets and flushes the producer, which needs the broker: with it
gone, the worker took a minute to stop, logged hundreds of ERROR lines (one per connection
attempt, every 100 ms) and ended with a CancelledError traceback. It now logs one line
saying no broker answers and exits at once; a restart reads again what was not committed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.streams import scenario
from tests.streams.conftest import started_or_skip
from tests.streams.kafka_helpers import (
    accounted_ids,
    create_topic,
    framed_batches,
    free_port,
    produce,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka


def test_sigterm_after_the_broker_is_gone_stops_at_once_with_one_clear_line(
        story: scenario.Scenario, tmp_path: Path) -> None:
    broker = started_or_skip("the broker of this test did not start",
                             lambda helper: helper.start_broker(tmp_path / "kafka"))
    try:
        bootstrap = broker.bootstrap
        app_id = "gone"
        create_topic(bootstrap, f"{app_id}.raw")
        worker = start_worker(worker_args(bootstrap, app_id, tmp_path / "state", free_port()),
                              tmp_path / "worker.log", verbose=False)
        worker.wait_ready()
        records = story.records[:100]
        produce(bootstrap, f"{app_id}.raw", framed_batches(records))
        accounted_ids(bootstrap, app_id, {r["eventID"] for r in records}, timeout=120)
    finally:
        broker.stop()
    time.sleep(5)  # the worker notices: its connections fail, ten attempts a second
    code = worker.stop(signal.SIGTERM, timeout=120)
    lines = [line.split(" ", 2)[2] for line in worker.log_path.read_text().splitlines()
             if line[:4].isdigit()]
    assert code == 0, worker.log_tail()
    stopping = [line for line in lines if "stopping (SIGTERM)" in line]
    assert len(stopping) == 1 and stopping[0].startswith(
        "INFO streams.worker: stopping (SIGTERM): no broker answers ("
        f"{bootstrap}: "), worker.log_tail()
    assert stopping[0].endswith("so nothing can be committed: exiting now; a restart reads "
                                "again what was not committed")
    assert lines[-1].startswith("INFO streams.worker: stopped (exit 0; ")
    assert "Traceback" not in worker.log_path.read_text()
    assert [line for line in lines if line.startswith("ERROR")] == []
    warnings = [line for line in lines if line.startswith("WARNING")]
    assert len(warnings) <= 3 and any("the broker cannot be reached" in w for w in warnings)
