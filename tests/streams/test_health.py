"""The health endpoint: readiness follows recovery (B16), liveness follows commits (B15)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from detector.stats import RunStats
from streams.health import HealthServer, HealthState


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@pytest.fixture
def server():
    state = HealthState(liveness_commit_age=60.0)
    values = {"failed": {"binary": 2}, "redelivered": 5, "late_writes": 3,
              "stale_states_skipped": 4}
    running = HealthServer(state, RunStats(), host="127.0.0.1", port=0,
                           worker_values=lambda: {**values, "ready": state.ready}).start()
    yield running
    running.stop()


def test_readiness__false_until_recovery_is_done(server) -> None:
    code, body = get(server.port, "/readyz")
    assert code == 503 and json.loads(body)["ready"] is False
    server.state.set_phase("recovering", ready=False, reason="table recovery in progress")
    assert json.loads(get(server.port, "/readyz")[1])["reason"].startswith("table recovery")
    server.state.set_phase("running", ready=True, reason="consuming")
    assert get(server.port, "/readyz")[0] == 200


def test_liveness__fails_only_with_lag_and_an_old_commit(server) -> None:
    clock = [1000.0]
    server.metrics.collector.clock = lambda: clock[0]
    server.metrics.set_consumer_lag("raw", 0, 0)
    server.metrics.set_consumer_lag("raw", 1, 40)
    server.metrics.set_committed("raw", 1)
    clock[0] += 30
    assert get(server.port, "/livez")[0] == 200
    clock[0] += 60  # partition 1 has lag and no commit for 90 s > 60 s
    code, body = get(server.port, "/livez")
    assert code == 503
    assert json.loads(body)["stuck_partitions"] == ["raw[1]"]


def test_metrics__include_worker_counters(server) -> None:
    code, body = get(server.port, "/metrics")
    text = body.decode()
    assert code == 200
    assert 'nhi_worker_records_failed_total{reason="binary"} 2.0' in text
    assert "nhi_worker_redelivered_events_total 5.0" in text
    assert "nhi_worker_late_writes_total 3.0" in text
    assert "nhi_worker_stale_states_skipped_total 4.0" in text


def test_startup__fails_until_the_first_recovery_is_done(server) -> None:
    # /livez answers 200 from the first second; a startup probe needs what /startupz says
    assert get(server.port, "/livez")[0] == 200
    for phase in ("starting", "connecting", "recovering"):
        server.state.set_phase(phase, ready=False, reason=f"{phase} now")
        code, body = get(server.port, "/startupz")
        assert (code, json.loads(body)["reason"]) == (503, f"{phase} now")
    server.state.set_phase("running", ready=True, reason="consuming")
    assert get(server.port, "/startupz")[0] == 200
    # a later rebalance or recovery is readiness' business; startup stays done
    server.state.set_phase("recovering", ready=False, reason="table recovery in progress")
    code, body = get(server.port, "/startupz")
    assert (code, json.loads(body)["started"]) == (200, True)


def test_startup__done_for_a_worker_given_no_partition(server) -> None:
    server.state.set_phase("waiting", ready=False, reason="no partitions assigned yet")
    assert get(server.port, "/startupz")[0] == 200
    assert get(server.port, "/readyz")[0] == 503


def test_raw_topic_missing__logged_exported_and_in_the_readiness_body(server, caplog) -> None:
    state = server.state
    state.set_phase("running", ready=True, reason="consuming")
    with caplog.at_level("WARNING", logger="streams.health"):
        state.note_raw_topics({"raw1": False, "raw2": False})
        state.note_raw_topics({"raw1": False, "raw2": True})
        state.note_raw_topics({"raw1": False, "raw2": True})  # said once, not every refresh
        code, body = get(server.port, "/readyz")
        assert (code, json.loads(body)["missing_raw_topics"]) == (200, ["raw2"])
        state.note_raw_topics({"raw1": False, "raw2": False})
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("raw topic raw2 no longer exists on the broker")
    assert lines[1] == "raw topic raw2 exists again: it is read after the next rebalance"
    assert "missing_raw_topics" not in json.loads(get(server.port, "/readyz")[1])


def test_raw_topic_missing__gauge_per_topic() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from streams.health import WorkerCollector

    registry = CollectorRegistry()
    registry.register(WorkerCollector("nhi_", lambda: {"raw_topics": {"a": True, "b": False}}))
    text = generate_latest(registry).decode()
    assert 'nhi_worker_raw_topic_missing{topic="a"} 1.0' in text
    assert 'nhi_worker_raw_topic_missing{topic="b"} 0.0' in text


def test_raw_offset_resets__counted_per_topic_and_reason() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from streams.health import HealthState, WorkerCollector

    state = HealthState(300.0)
    state.note_offset_reset("a", "beyond_end")
    state.note_offset_reset("a", "beyond_end")
    state.note_offset_reset("b", "recreated")
    registry = CollectorRegistry()
    registry.register(WorkerCollector("nhi_", lambda: {"offset_resets": state.offset_resets}))
    text = generate_latest(registry).decode()
    assert 'nhi_worker_raw_offset_resets_total{reason="beyond_end",topic="a"} 2.0' in text
    assert 'nhi_worker_raw_offset_resets_total{reason="recreated",topic="b"} 1.0' in text
