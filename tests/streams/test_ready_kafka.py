"""The ``ready`` line comes before the first events are processed, also after a SIGKILL.

Only the health timer (every 2 s) used to log it, and the agents keep the event loop busy:
a worker could process tens of thousands of events first, and one killed meanwhile (or
restarted after a SIGKILL, with a backlog waiting) never said it was ready at all.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.streams import scenario
from tests.streams.kafka_helpers import (
    create_topic,
    framed_batches,
    free_port,
    produce,
    read_topic,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka


def test_ready_is_logged_before_the_first_events_also_after_a_sigkill(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path) -> None:
    app_id = "early"
    create_topic(kafka_bootstrap, f"{app_id}.raw")
    produce(kafka_bootstrap, f"{app_id}.raw", framed_batches(story.records))
    args = worker_args(kafka_bootstrap, app_id, tmp_path / "state", free_port(),
                       "--commit-interval", "600")
    accounting = f"{app_id}.accounting"
    for run in ("first", "after SIGKILL"):
        # what the killed worker sent before it died is there already
        before = len(read_topic(kafka_bootstrap, accounting, timeout=3)) if run != "first" \
            else 0
        log_path = tmp_path / f"{run}.log"
        worker = start_worker(args, log_path, verbose=False)
        try:
            # a new accounting message: this worker has processed events
            read_topic(kafka_bootstrap, accounting, timeout=180,
                       until=lambda messages, before=before: len(messages) > before)
        finally:
            worker.stop(signal.SIGKILL)  # before any commit (--commit-interval 600)
        ready = [line for line in log_path.read_text().splitlines()
                 if "INFO streams.worker: ready (partitions" in line]
        assert len(ready) == 1, (run, worker.log_tail())
