"""A group member dies, freezes past the session timeout, or is cut off from the broker
while input flows: every event is applied once to its identity's baseline (real broker,
three worker processes).

Before ``streams.app.ActiveSelection`` the survivors of a dead member skipped what had
reached its raw and repartition partitions since its last commit (an attack run: 561 of
6,000 events, 23 of 40 identities short). Before ``streams.membership`` a member frozen
past the session timeout wrote its stale identity states over the new owner's when it
resumed (up to 65 of an identity's 150 events lost, all accounted as processed). Before
``streams.fencing`` the records it had sent just before it was cut off still landed after
the new owner's and won: the frozen-member test failed 2 of 6 runs, and the cut-off test
failed 2 of 2 with the fence switched off (8 of 24 identities short). The last test kills
a worker with a state write in flight: without the owners' changelog audit, that stale
record stayed its identity's last, which a compaction would keep.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streams import codecs
from streams.fencing import behind
from tests.streams import scenario
from tests.streams.kafka_helpers import (
    consumer_lag,
    counter,
    create_topic,
    frame_lines,
    free_port,
    ids_of,
    inventory_until,
    read_topic,
    start_worker,
    worker_args,
)
from tests.streams.proxy import proxied_broker

pytestmark = pytest.mark.kafka

ROLES = [f"svc-{i:02d}" for i in range(24)]
PER_MESSAGE = 5
RAW_PARTITIONS = 2


def records(per_role: int) -> list[tuple[int, dict[str, Any]]]:
    """(raw partition, record) in event-time order: each role on one raw partition."""
    rng = random.Random(23)
    boto = "Boto3/1.34.100 md/Botocore#1.34.100 Python/3.11.9 Linux/6.1"
    out: list[tuple[int, dict[str, Any]]] = []
    for i, role in enumerate(ROLES):
        for _ in range(per_role):
            ts = scenario.T0 + rng.uniform(0, per_role * 1800.0)
            action = rng.choice(scenario.ROUTINE)
            out.append((i % RAW_PARTITIONS,
                        scenario.record(rng, ts, role, action, f"10.40.0.{i + 1}", boto,
                                        len(out))))
    out.sort(key=lambda item: item[1]["eventTime"])
    return out


class Feeder(threading.Thread):
    """Sends the records at ``rate`` a second in messages of ``PER_MESSAGE`` per
    partition."""

    def __init__(self, bootstrap: str, topic: str, items: list[tuple[int, dict]],
                 rate: float) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.items, self.rate = bootstrap, topic, items, rate
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
                ahead = n / self.rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
            for part, rest in pending.items():
                producer.send(self.topic, frame_lines(rest), partition=part)
            producer.flush(60)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            self.error = err
        finally:
            producer.close(timeout=30)


def owns_raw(worker: Any, topic: str) -> bool:
    """Whether ``worker`` exports the consumer lag of a partition of ``topic`` (it does
    for each partition assigned to it)."""
    code, text = worker.get("/metrics")
    return code == 200 and consumer_lag(text, topic) is not None


def start_group(bootstrap: str, app_id: str, tmp_path: Path,
                feeder: Feeder) -> list[Any]:
    """Three workers in one group on a 2-partition raw topic (4 identity partitions);
    once all are ready, ``feeder`` starts sending."""
    create_topic(bootstrap, f"{app_id}.raw", RAW_PARTITIONS)
    workers = []
    for n in (1, 2, 3):
        args = worker_args(bootstrap, app_id, tmp_path / "state", free_port())
        args[args.index("--worker-id") + 1] = f"w{n}"
        args[args.index("--partitions") + 1] = "4"
        workers.append(start_worker(args, tmp_path / f"w{n}.log"))
    for worker in workers:
        worker.wait_ready(180)
    feeder.start()
    return workers


def applied_once(bootstrap: str, app_id: str, feeder: Feeder) -> tuple:
    """Once ``feeder`` sent everything: (event ids never accounted, identities whose
    baseline took another number of events than they had: {identity: (taken,
    produced)})."""
    feeder.join(120)
    assert feeder.error is None and feeder.sent == len(feeder.items), feeder.error
    items = feeder.items
    ids = {record["eventID"] for _, record in items}
    want = Counter(record["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"]
                   for _, record in items)
    accounted = ids_of(read_topic(bootstrap, f"{app_id}.accounting",
                                  until=lambda m: ids <= ids_of(m), timeout=180))
    counts = {key: entry["events"]
              for key, entry in inventory_until(bootstrap, app_id, want, 60).items()}
    return (sorted(ids - accounted),
            {key: (counts.get(key), n) for key, n in want.items() if counts.get(key) != n})


def test_survivors_apply_every_event_once_when_a_member_dies_while_input_flows(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    app_id = "takeover"
    items = records(per_role=60)
    feeder = Feeder(kafka_bootstrap, f"{app_id}.raw", items, rate=100.0)  # about 14 s
    workers = start_group(kafka_bootstrap, app_id, tmp_path, feeder)
    victim = None
    try:
        while feeder.sent < len(items) // 4 and feeder.is_alive():
            time.sleep(0.1)
        # a member holding a raw partition dies: its partitions wait for the session
        # timeout (10 s) while the input goes on, then the survivors take them over from
        # its last commit
        owners = [w for w in workers if owns_raw(w, f"{app_id}.raw")]
        assert owners, [w.log_tail(5) for w in workers]
        victim = owners[-1]
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
        missing, wrong = applied_once(kafka_bootstrap, app_id, feeder)
    finally:
        codes = [w.stop(signal.SIGTERM, timeout=90) for w in workers if w is not victim]
    assert codes == [0, 0], workers[0].log_tail()
    assert missing == []
    # exactly once into each baseline: none skipped, none applied twice
    assert wrong == {}


def test_a_member_frozen_past_the_session_timeout_writes_no_stale_state(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    app_id = "frozen"
    feeder = Feeder(kafka_bootstrap, f"{app_id}.raw", records(per_role=120), rate=80.0)
    workers = start_group(kafka_bootstrap, app_id, tmp_path, feeder)  # 36 s of input
    try:
        began = time.monotonic()

        def at(second: float, sig: signal.Signals, *which: Any) -> None:
            time.sleep(max(0.0, began + second - time.monotonic()))
            for worker in which:
                worker.process.send_signal(sig)

        # one member frozen 16 s (the group drops it after 10 s and gives its partitions
        # to the others), then, once it is back, the two others frozen 14 s together:
        # the first member gets partitions back that the others wrote meanwhile
        at(5, signal.SIGSTOP, workers[0])
        at(21, signal.SIGCONT, workers[0])
        at(24, signal.SIGSTOP, workers[1], workers[2])
        at(38, signal.SIGCONT, workers[1], workers[2])
        missing, wrong = applied_once(kafka_bootstrap, app_id, feeder)
    finally:
        for worker in workers:
            worker.process.send_signal(signal.SIGCONT)
        codes = [w.stop(signal.SIGTERM, timeout=90) for w in workers]
    assert codes == [0, 0, 0], workers[0].log_tail()
    assert missing == []
    assert wrong == {}


@pytest.fixture(scope="module")
def cut_broker(tmp_path_factory: pytest.TempPathFactory):
    """A broker whose clients connect through a ``StallingProxy`` (tests.streams.proxy)."""
    yield from proxied_broker(tmp_path_factory, "kafka-cut")


def short_input_group(bootstrap: str, app_id: str, tmp_path: Path) -> tuple[Feeder, list]:
    """``start_group`` with 18 s of input (1,440 records at 80 a second), so that a fault
    a few seconds in outlasts it."""
    feeder = Feeder(bootstrap, f"{app_id}.raw", records(per_role=60), rate=80.0)
    return feeder, start_group(bootstrap, app_id, tmp_path, feeder)


def test_a_member_cut_off_from_the_broker_past_the_session_timeout_loses_nothing(
        cut_broker: tuple[Any, str], tmp_path: Path) -> None:
    """The network between one worker and the broker stalls 15 s while input flows: the
    group drops it after 10 s, and the state and inventory records it sent in its first
    seconds cut off reach the broker after the new owners' writes. The input ends before
    the stall does, so those records would be their identities' last. Before
    ``streams.fencing`` they won (an attack run: 6 and 16 of 40 identities short)."""
    proxy, bootstrap = cut_broker
    app_id = "cutoff"
    feeder, workers = short_input_group(bootstrap, app_id, tmp_path)
    try:
        time.sleep(5)
        proxy.cut_off("nhi-detector-w1")  # its heartbeats, fetches and writes all wait
        time.sleep(16)
        proxy.release()
        missing, wrong = applied_once(bootstrap, app_id, feeder)
        late = [counter(w, "nhi_worker_late_writes_total") for w in workers]
    finally:
        proxy.release()
        codes = [w.stop(signal.SIGTERM, timeout=90) for w in workers]
    assert codes == [0, 0, 0], workers[0].log_tail()
    assert missing == []
    assert wrong == {}
    # the cut-off worker's records did land late, so the fence had work to do
    assert late[0] > 0 and late[1:] == [0.0, 0.0], late


def test_a_member_killed_with_a_state_write_in_flight_leaves_no_stale_state_last(
        cut_broker: tuple[Any, str], tmp_path: Path) -> None:
    """One worker's state write is held on its way to the broker, the worker is killed,
    and the write lands after the new owners' last writes (the proxy delivers what the
    worker had sent, as a dead worker's host would). No worker reads its
    acknowledgement, so none names its identities: the owners' changelog audit finds the
    record and writes them again (``streams.fencing``)."""
    proxy, bootstrap = cut_broker
    app_id = "cutkill"
    feeder, workers = short_input_group(bootstrap, app_id, tmp_path)
    try:
        time.sleep(4)
        before = proxy.held  # the module's other tests held requests too
        proxy.stall(f"{app_id}-identity-state-changelog", "nhi-detector-w1")
        deadline = time.monotonic() + 10
        while proxy.held == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.held == before + 1
        assert workers[0].stop(signal.SIGKILL) == -signal.SIGKILL
        # the group drops it 10 s later; the others take its partitions over, write their
        # states, and the input ends; then its write lands
        time.sleep(20)
        proxy.release()
        found = audit_found(workers[1:], timeout=40)  # every 10 s, or after a commit
        missing, wrong = applied_once(bootstrap, app_id, feeder)
        time.sleep(3)  # the owner's writes of the identities again
        stale = stale_last(bootstrap, f"{app_id}-identity-state-changelog")
    finally:
        proxy.release()
        codes = [w.stop(signal.SIGTERM, timeout=90) for w in workers[1:]]
    assert codes == [0, 0], workers[1].log_tail()
    assert missing == []
    assert wrong == {}
    # a compaction keeps each identity's last record: it must be the newest state
    assert stale == []
    assert found, "no owner found the dead worker's record"


def stale_last(bootstrap: str, topic: str) -> list[str]:
    """Identities whose last changelog record applied fewer events than an earlier one
    (``streams.fencing.behind``): what a compaction would keep instead of the newest."""
    records: dict[bytes, list[dict[str, int]]] = {}
    for message in read_topic(bootstrap, topic, timeout=10):
        records.setdefault(message.key, []).append(codecs.state_marks(message.value) or {})
    return sorted(key.decode() for key, marks in records.items()
                  if any(behind(marks[-1], earlier) for earlier in marks[:-1]))


def audit_found(workers: list[Any], timeout: float) -> bool:
    """Whether a worker's changelog audit logs a record it did not write, within
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any("were not written by this worker" in w.log_path.read_text()
               for w in workers):
            return True
        time.sleep(0.5)
    return False
