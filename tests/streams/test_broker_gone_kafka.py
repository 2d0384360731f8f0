"""A stop signal while the broker is gone (real worker, a broker of the test's own).

The graceful stop commits offsets and flushes the producer, which needs the broker: with it
gone, the worker took a minute to stop, logged hundreds of ERROR lines (one per connection
attempt, every 100 ms) and ended with a CancelledError traceback. It now logs one line
saying no broker answers and exits at once; a restart reads again what was not committed.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from streams.logs import BROKER_MESSAGES
from tests.streams import scenario
from tests.streams.conftest import started_or_skip
from tests.streams.kafka_helpers import (
    accounted_ids,
    counter,
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
        produced = produce(bootstrap, f"{app_id}.raw", framed_batches(records))[-1] + 1
        accounted_ids(bootstrap, app_id, {r["eventID"] for r in records}, timeout=120)
        # the broker answers the worker's metadata requests (every 5 s)
        assert counter(worker, "nhi_worker_broker_silence_seconds") < 15
    finally:
        broker.stop()
    time.sleep(5)  # the worker notices: its connections fail, ten attempts a second
    # nothing waits and no commit is late, so this gauge is what tells the outage
    silence = counter(worker, "nhi_worker_broker_silence_seconds")
    assert silence is not None and silence >= 5, worker.log_tail()
    assert worker.get("/readyz")[0] == 200  # (readiness is about recovery, not the broker)
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
    # The worker's own lines: started, ready, stopping, stopped, and nothing else.
    own = [line.split(":", 1)[0] + ": " + line.split(": ", 1)[1].split(" ", 1)[0]
           for line in lines if line.split(" ", 2)[1].startswith("streams.")]
    assert own == ["INFO streams.worker: nhi-detector", "INFO streams.worker: ready",
                   "INFO streams.worker: stopping", "INFO streams.worker: stopped"], own
    # Nothing lost: every record reached the outputs before the broker went, and no
    # offset was committed past the messages produced (a restart reads the rest again).
    committed = re.findall(r"gone\.raw\[0\]=(\d+)", lines[-1])
    assert all(int(offset) <= produced for offset in committed), lines[-1]
    # The connection errors of the outage (each client retries every 100 ms): one line,
    # the first, then one a minute (streams.logs); without that filter, dozens came.
    warnings = [line for line in lines if line.startswith("WARNING")]
    templates = [f"WARNING {logger}: {message.split('%s')[0]}"
                 for logger, messages in BROKER_MESSAGES.items() for message in messages]
    attempts = [w for w in warnings if w.startswith(tuple(templates))]
    assert len(attempts) == 1 and "the broker cannot be reached" in attempts[0], warnings
    # aiokafka's other lines are not counted: which ones come, and how often, depends on
    # which requests the broker's stop caught. SIGTERM is Kafka's controlled shutdown: it
    # gives up leadership and the group coordinator before it closes its sockets, so a
    # heartbeat or commit then can mark the coordinator dead (and again after the consumer
    # found it once more while the broker still answered), a produce can be told "not
    # leader", a metadata request open when a socket closes logs its failure. A loaded
    # machine stretches that shutdown and catches more of them (2 to 4 lines seen).
