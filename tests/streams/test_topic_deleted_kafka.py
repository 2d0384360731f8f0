"""A raw topic deleted and created again, under a running worker or while the group is
stopped: said in the log, the metrics and the readiness body, and every record of the new
topic is applied, once, even when there are fewer of them than the old committed offset.

Before, a committed offset of the old topic (committed again after the broker created the
name anew) made Faust skip the new topic's records below it, and the identities' raw
positions from the old topic made the new topic's events look like redeliveries: they
were counted on the accounting topic but never reached the detector.
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
    counter,
    create_topic,
    framed_batches,
    free_port,
    latest_inventory,
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


def applied_events(bootstrap: str, app_id: str, story: scenario.Scenario) -> dict[str, int]:
    """identity -> events its detector state has applied (the inventory's count)."""
    inventory = latest_inventory(bootstrap, app_id, story)
    return {arn: entry["events"] for arn, entry in inventory.items()}


def wait_for(what: str, check: Callable[[], bool], worker: WorkerProcess,
             timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not seen within {timeout}s:\n{worker.log_tail()}")


def assert_every_event_applied_once(bootstrap: str, app_id: str,
                                    story: scenario.Scenario) -> None:
    """Each role's state counts every one of its events once (none lost, none twice)."""
    want = {scenario.role_arn(role): len(story.records_of(role)) for role in scenario.ROLES}
    applied = applied_events(bootstrap, app_id, story)
    assert {arn: applied.get(arn) for arn in want} == want


def test_deleted_raw_topic__is_said_and_its_return_is_read(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path) -> None:
    app_id = "topic-gone"
    raw = f"{app_id}.raw"
    create_topic(kafka_bootstrap, raw)
    payloads = framed_batches(story.records, 5)
    cut = len(payloads) * 2 // 3  # the new topic gets fewer messages than the old offset
    produce(kafka_bootstrap, raw, payloads[:cut])
    worker = start_worker(worker_args(kafka_bootstrap, app_id, tmp_path / "state",
                                      free_port()), tmp_path / "worker.log")
    try:
        worker.wait_ready()
        accounted_ids(kafka_bootstrap, app_id, set(story.event_ids[:cut * 5]), timeout=120)
        assert missing_gauge(worker, raw) == 0.0

        delete_topic(kafka_bootstrap, raw)
        again = f"raw topic {raw} was deleted and created again"
        # The test broker creates topics automatically, and the worker's consumer asks for
        # the topic's metadata at once (aiokafka always lets a metadata request create
        # it): the topic may be back, empty, before the next look, and then it was never
        # missing, only created again.
        wait_for("the missing-topic gauge or the topic's return",
                 lambda: missing_gauge(worker, raw) == 1.0 or again in worker.log_tail(300),
                 worker, 60)
        was_missing = missing_gauge(worker, raw) == 1.0
        if was_missing:
            assert worker.get("/readyz")[1]["missing_raw_topics"] == [raw]
            assert f"raw topic {raw} no longer exists on the broker" in worker.log_tail(200)

        recreate(kafka_bootstrap, raw)
        # sent at once: the worker reads the new topic from its start whenever it sees it
        produce(kafka_bootstrap, raw, payloads[cut:])
        rest = set(story.event_ids[cut * 5:])
        assert rest <= accounted_ids(kafka_bootstrap, app_id, rest, timeout=120), \
            worker.log_tail(120)
        wait_for("the topic's return", lambda: missing_gauge(worker, raw) == 0.0,
                 worker, METADATA_REFRESH_S + 30)
        if was_missing:
            assert f"raw topic {raw} exists again" in worker.log_tail(300)
        assert "missing_raw_topics" not in worker.get("/readyz")[1]
        assert again in worker.log_tail(300)
        # every event reached the detector once: none was taken for a redelivery
        assert counter(worker, "nhi_worker_redelivered_events_total") == 0.0
        assert_every_event_applied_once(kafka_bootstrap, app_id, story)
    finally:
        assert worker.stop(signal.SIGTERM, timeout=90) == 0, worker.log_tail()


def test_recreated_raw_topic__stale_committed_offset__new_records_all_applied(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path) -> None:
    """The group stopped, its raw topic deleted and created again, and the old topic's
    offset committed for the new one (what a consumer still holding the old partition
    does when the broker creates the name again at once): the next worker reads the new
    topic from its start, says so once and counts it."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    app_id = "topic-again"
    raw = f"{app_id}.raw"
    create_topic(kafka_bootstrap, raw)
    payloads = framed_batches(story.records, 5)
    cut = len(payloads) * 2 // 3
    produce(kafka_bootstrap, raw, payloads[:cut])
    args = worker_args(kafka_bootstrap, app_id, tmp_path / "state", free_port())
    worker = start_worker(args, tmp_path / "worker1.log")
    try:
        worker.wait_ready()
        accounted_ids(kafka_bootstrap, app_id, set(story.event_ids[:cut * 5]), timeout=120)
    finally:
        assert worker.stop(signal.SIGTERM, timeout=90) == 0, worker.log_tail()

    delete_topic(kafka_bootstrap, raw)
    time.sleep(2)  # the broker drops the group's offsets of the deleted topic
    recreate(kafka_bootstrap, raw)
    stale = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=app_id,
                          enable_auto_commit=False)
    try:
        tp = TopicPartition(raw, 0)
        stale.commit({tp: OffsetAndMetadata(cut, "", -1)})
        assert stale.committed(tp) == cut
    finally:
        stale.close()
    produce(kafka_bootstrap, raw, payloads[cut:])  # fewer records than the offset

    again = start_worker(args, tmp_path / "worker2.log")
    try:
        again.wait_ready()
        rest = set(story.event_ids[cut * 5:])
        assert rest <= accounted_ids(kafka_bootstrap, app_id, rest, timeout=120), \
            again.log_tail(120)
        assert counter(again, "nhi_worker_redelivered_events_total") == 0.0
        assert counter(again, "nhi_worker_raw_offset_resets_total",
                       f'{{reason="beyond_end",topic="{raw}"}}') == 1.0
        assert_every_event_applied_once(kafka_bootstrap, app_id, story)
    finally:
        assert again.stop(signal.SIGTERM, timeout=90) == 0, again.log_tail()
    log = (tmp_path / "worker2.log").read_text(encoding="utf-8", errors="replace")
    said = [line for line in log.splitlines() if f"raw topic {raw}: " in line]
    assert len(said) == 1, log
    assert "past the partition's end" in said[0] and f"[0] {cut} -> 0" in said[0]
