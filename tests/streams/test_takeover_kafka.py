"""A group member dies while input flows: the survivors take over its partitions and
apply every event once (real broker, three worker processes).

Before the fix of ``streams.app.ActiveSelection`` the survivors skipped what had reached
the dead member's raw and repartition partitions since its last commit (an attack run:
561 of 6,000 events, 23 of 40 identities short), with nothing in any log.
"""

from __future__ import annotations

import random
import re
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.streams import scenario
from tests.streams.kafka_helpers import (
    create_topic,
    frame_lines,
    free_port,
    ids_of,
    read_topic,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka

ROLES = [f"svc-{i:02d}" for i in range(24)]
PER_ROLE = 60
PER_MESSAGE = 5
RATE = 100.0  # records per second: about 14 s of input
RAW_PARTITIONS = 2


def records() -> list[tuple[int, dict[str, Any]]]:
    """(raw partition, record) in event-time order: each role on one raw partition."""
    rng = random.Random(23)
    boto = "Boto3/1.34.100 md/Botocore#1.34.100 Python/3.11.9 Linux/6.1"
    out: list[tuple[int, dict[str, Any]]] = []
    for i, role in enumerate(ROLES):
        for _ in range(PER_ROLE):
            ts = scenario.T0 + rng.uniform(0, PER_ROLE * 1800.0)
            action = rng.choice(scenario.ROUTINE)
            out.append((i % RAW_PARTITIONS,
                        scenario.record(rng, ts, role, action, f"10.40.0.{i + 1}", boto,
                                        len(out))))
    out.sort(key=lambda item: item[1]["eventTime"])
    return out


class Feeder(threading.Thread):
    """Sends the records at ``RATE`` in messages of ``PER_MESSAGE`` per partition."""

    def __init__(self, bootstrap: str, topic: str, items: list[tuple[int, dict]]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.items = bootstrap, topic, items
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)
        try:
            pending: dict[int, list[dict]] = {}
            began = time.monotonic()
            for n, (part, record) in enumerate(self.items, 1):
                pending.setdefault(part, []).append(record)
                if len(pending[part]) == PER_MESSAGE:
                    producer.send(self.topic, frame_lines(pending.pop(part)), partition=part)
                self.sent = n
                ahead = n / RATE - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
            for part, rest in pending.items():
                producer.send(self.topic, frame_lines(rest), partition=part)
            producer.flush(60)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err
        finally:
            producer.close(timeout=30)


def event_counts(bootstrap: str, app_id: str, want: Counter, timeout: float) -> dict:
    """Each identity's event count in its last inventory record, read until every one
    reached its number of input events or ``timeout``."""
    def latest(messages: list) -> dict[str, int]:
        return {m.key.decode(): orjson.loads(m.value)["events"] for m in messages}

    def complete(messages: list) -> bool:
        got = latest(messages)
        return all(got.get(key, 0) >= n for key, n in want.items())

    return latest(read_topic(bootstrap, f"{app_id}.inventory", until=complete,
                             timeout=timeout))


def owns_raw(worker: Any, topic: str) -> bool:
    """Whether ``worker`` exports the consumer lag of a partition of ``topic`` (it does
    for each partition assigned to it)."""
    code, text = worker.get("/metrics")
    series = r'nhi_kafka_consumer_lag_messages\{[^}]*topic="' + re.escape(topic) + '"'
    return code == 200 and re.search(series, text) is not None


def test_survivors_apply_every_event_once_when_a_member_dies_while_input_flows(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    app_id = "takeover"
    create_topic(kafka_bootstrap, f"{app_id}.raw", RAW_PARTITIONS)
    items = records()
    ids = {record["eventID"] for _, record in items}
    want = Counter(record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
                   for _, record in items)
    workers = []
    for n in (1, 2, 3):
        args = worker_args(kafka_bootstrap, app_id, tmp_path / "state", free_port())
        args[args.index("--worker-id") + 1] = f"w{n}"
        args[args.index("--partitions") + 1] = "4"
        workers.append(start_worker(args, tmp_path / f"w{n}.log"))
    feeder = Feeder(kafka_bootstrap, f"{app_id}.raw", items)
    codes: list[int] = []
    victim = None
    try:
        for worker in workers:
            worker.wait_ready(180)
        feeder.start()
        while feeder.sent < len(items) // 4 and feeder.is_alive():
            time.sleep(0.1)
        # a member holding a raw partition dies: its partitions wait for the session
        # timeout (10 s) while the input goes on, then the survivors take them over from
        # its last commit
        owners = [w for w in workers if owns_raw(w, f"{app_id}.raw")]
        assert owners, [w.log_tail(5) for w in workers]
        victim = owners[-1]
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        feeder.join(120)
        assert feeder.error is None and feeder.sent == len(items), feeder.error
        accounted = ids_of(read_topic(kafka_bootstrap, f"{app_id}.accounting",
                                      until=lambda m: ids <= ids_of(m), timeout=180))
        counts = event_counts(kafka_bootstrap, app_id, want, timeout=60)
    finally:
        codes = [w.stop(signal.SIGTERM, timeout=90) for w in workers if w is not victim]
    assert codes == [0, 0], workers[0].log_tail()
    assert len(ids - accounted) == 0, sorted(ids - accounted)[:10]
    # exactly once into each baseline: none skipped, none applied twice
    wrong = {key: (counts.get(key), n) for key, n in want.items() if counts.get(key) != n}
    assert wrong == {}
