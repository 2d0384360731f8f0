"""A raw topic deleted under a running worker, then created again: both are said in the
log, the metric and the readiness body, and the new topic's records are all applied.

Before, the worker logged one aiokafka ERROR, kept /livez and /readyz green, dropped the
topic's lag series and read the recreated topic only after Kafka's 5-minute metadata age.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.health import METADATA_REFRESH_S
from tests.streams import scenario
from tests.streams.kafka_helpers import (
    WorkerProcess,
    accounted_ids,
    create_topic,
    framed_batches,
    free_port,
    produce,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka


def delete_topic(bootstrap: str, name: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.delete_topics([name])
    finally:
        admin.close()


def recreate(bootstrap: str, name: str) -> None:
    """Create ``name`` again. The test broker allows automatic topic creation, so a client's
    metadata request for the subscribed name may have created it already: that is the
    same topic coming back."""
    from kafka.errors import TopicAlreadyExistsError

    try:
        create_topic(bootstrap, name)
    except TopicAlreadyExistsError:
        pass


def missing_gauge(worker: WorkerProcess, topic: str) -> float | None:
    text = worker.get("/metrics")[1]
    found = re.search(rf'^nhi_worker_raw_topic_missing\{{topic="{re.escape(topic)}"\}} (\S+)$',
                      text, re.M)
    return float(found.group(1)) if found else None


def wait_for(what: str, check: Callable[[], bool], worker: WorkerProcess,
             timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout}s:\n{worker.log_tail()}")


def test_deleted_raw_topic__is_said_and_its_return_is_read(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path) -> None:
    app_id = "topic-gone"
    raw = f"{app_id}.raw"
    create_topic(kafka_bootstrap, raw)
    payloads = framed_batches(story.records, 5)
    cut = len(payloads) // 3
    produce(kafka_bootstrap, raw, payloads[:cut])
    worker = start_worker(worker_args(kafka_bootstrap, app_id, tmp_path / "state",
                                      free_port()), tmp_path / "worker.log")
    try:
        worker.wait_ready()
        accounted_ids(kafka_bootstrap, app_id, set(story.event_ids[:cut * 5]), timeout=120)
        assert missing_gauge(worker, raw) == 0.0

        delete_topic(kafka_bootstrap, raw)
        wait_for("the missing-topic gauge", lambda: missing_gauge(worker, raw) == 1.0,
                 worker, 60)
        body = worker.get("/readyz")[1]
        assert body["missing_raw_topics"] == [raw]
        assert f"raw topic {raw} no longer exists on the broker" in worker.log_tail(200)

        recreate(kafka_bootstrap, raw)
        # noticed at the next metadata refresh, then a rebalance assigns it; records sent
        # before that may meet the old topic's committed offset (docs/worker.md)
        wait_for("the topic's return", lambda: missing_gauge(worker, raw) == 0.0,
                 worker, METADATA_REFRESH_S + 30)
        produce(kafka_bootstrap, raw, payloads[cut:])
        rest = set(story.event_ids[cut * 5:])
        assert rest <= accounted_ids(kafka_bootstrap, app_id, rest, timeout=120)
        assert f"raw topic {raw} exists again" in worker.log_tail(200)
        assert "missing_raw_topics" not in worker.get("/readyz")[1]
    finally:
        assert worker.stop(signal.SIGTERM, timeout=90) == 0, worker.log_tail()
