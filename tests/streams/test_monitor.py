"""The worker's Faust monitor (``streams.app.worker_monitor``), without Kafka.

Faust tells only ``app.monitor`` which partitions a commit covered (``on_tp_commit``), so
that is where the worker notes its commit times for liveness; a commit must refresh the
commit age of a partition that still has lag, or a long backlog fails liveness while the
worker commits as it should.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from faust.types import TP
from prometheus_client import CollectorRegistry

from detector.metrics import create_metrics
from detector.stats import RunStats
from streams.app import create_app, worker_monitor
from streams.fencing import LateWrites
from streams.membership import Membership
from streams.pipeline import Output, Record
from streams.settings import load_settings


class FakeTopic:
    def __init__(self) -> None:
        self.queued: list[tuple[bytes | None, bytes]] = []
        self.callbacks: list[Any] = []

    def send_soon(self, *, key: bytes | None, value: bytes, callback: Any = None) -> None:
        self.queued.append((key, value))
        self.callbacks.append(callback)


class Acked:
    """A send's future as Faust's callback gets it, acknowledged by the broker."""

    def __init__(self, key: bytes) -> None:
        self.message = SimpleNamespace(key=key)

    def cancelled(self) -> bool:
        return False

    def exception(self) -> BaseException | None:
        return None


def runtime_with(metrics: Any, inventory: list[Record], *, member_for: float = 1.0) -> Any:
    """``member_for``: seconds since the last answered heartbeat was sent."""
    topic = FakeTopic()
    due = list(inventory)

    def flush() -> Output:
        out = Output(records=list(due))
        due.clear()
        return out

    pipeline = SimpleNamespace(fit=list, flush_inventory=flush)
    membership = Membership(10.0, 3.0, clock=lambda: 100.0)
    membership.confirm(100.0 - member_for)
    return SimpleNamespace(pipeline=pipeline, metrics=metrics, membership=membership,
                           late_writes=LateWrites(membership), due=due,
                           audit_due=asyncio.Event(),
                           roles={"inventory": topic, "dead_letters": FakeTopic()})


def test_a_commit_refreshes_the_commit_age_of_a_partition_with_lag() -> None:
    clock = [1000.0]
    metrics = create_metrics(CollectorRegistry(), RunStats())
    metrics.collector.clock = lambda: clock[0]
    metrics.set_consumer_lag("raw", 0, 5000)  # first seen now: counts as committed now
    runtime = runtime_with(metrics, [])
    monitor = worker_monitor(runtime)()
    clock[0] += 90
    assert metrics.stale_commits(60.0) == [("raw", 0)]
    monitor.on_tp_commit({TP("raw", 0): 1200})
    assert runtime.audit_due.is_set()  # the changelog audit runs after each commit
    assert metrics.stale_commits(60.0) == []
    assert monitor.tp_committed_offsets == {TP("raw", 0): 1200}  # Faust's own record too


def test_a_commit_first_queues_the_inventory_then_times_the_commit() -> None:
    records = [Record("inventory", b"svc-a", b'{"identity":"svc-a"}'),
               Record("inventory", b"svc-b", b'{"identity":"svc-b"}')]
    runtime = runtime_with(None, records)
    monitor = worker_monitor(runtime)()
    state = monitor.on_commit_initiated(consumer=None)
    assert runtime.roles["inventory"].queued == [(b"svc-a", b'{"identity":"svc-a"}'),
                                                  (b"svc-b", b'{"identity":"svc-b"}')]
    monitor.on_commit_completed(consumer=None, state=state)  # Faust's latency from it
    assert len(monitor.commit_latency) == 1 and monitor.commit_latency[0] >= 0.0


def test_while_membership_is_in_doubt_the_inventory_stays_due() -> None:
    records = [Record("inventory", b"svc-a", b'{"identity":"svc-a"}')]
    runtime = runtime_with(None, records, member_for=8.0)  # past 10 - 3 s: in doubt
    monitor = worker_monitor(runtime)()
    monitor.on_commit_initiated(consumer=None)
    assert runtime.roles["inventory"].queued == []
    assert runtime.due == records  # not flushed: sent with a later commit
    runtime.membership.confirm(99.0)
    monitor.on_commit_initiated(consumer=None)
    assert runtime.roles["inventory"].queued == [(b"svc-a", b'{"identity":"svc-a"}')]


def test_an_inventory_record_acknowledged_in_doubt_is_named_for_its_owner() -> None:
    records = [Record("inventory", b"svc-a", b"{}"), Record("inventory", b"svc-b", b"{}")]
    runtime = runtime_with(None, records)
    monitor = worker_monitor(runtime)()
    monitor.on_commit_initiated(consumer=None)
    first, second = runtime.roles["inventory"].callbacks
    first(Acked(b"svc-a"))  # acknowledged while a member
    runtime.membership.clock = lambda: 120.0  # the worker stalls past the session timeout
    second(Acked(b"svc-b"))
    assert runtime.late_writes.count == 1
    assert runtime.late_writes.take() == {"svc-b"}


def test_per_message_hooks_keep_only_the_stream_inbound_time() -> None:
    monitor = worker_monitor(runtime_with(None, []))()
    tp = TP("raw", 3)
    monitor.on_message_in(tp, 7, SimpleNamespace())
    assert monitor.on_stream_event_in(tp, 7, SimpleNamespace(), None) is None
    monitor.on_stream_event_out(tp, 7, SimpleNamespace(), None, None)
    monitor.on_message_out(tp, 7, SimpleNamespace())
    assert list(monitor.stream_inbound_time) == [tp]  # Faust's slow-processing check
    assert monitor.messages_received_total == 0 and monitor.events_total == 0


def test_the_app_uses_the_worker_monitor(tmp_path: Path) -> None:
    settings = load_settings(argparse.Namespace(state_dir=str(tmp_path), worker_id="w0",
                                                store="memory"), {}, {})
    runtime = SimpleNamespace(pipeline=None, metrics=None, roles={}, holds={},
                              leave_group=None, settings=settings)
    app = create_app(settings, runtime)
    assert type(app.monitor).__name__ == "WorkerMonitor"
    assert set(runtime.roles) >= {"inventory", "dead_letters"}
