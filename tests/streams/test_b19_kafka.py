"""B19: a send that hangs while the group is healthy (real worker, real Apache Kafka).

The edge case (/work/shared/edge_cases B19): an outbound call in a handler hangs for
minutes; the consumer is declared dead during the long step, the group rebalances around
it and the workers livelock. In the worker the only outbound calls of a handler are its
sends. An alert waits for the broker's acknowledgement, bounded by ``--io-timeout``; other
outputs are handed to the producer and their delivery is awaited by Faust's offset commit,
so a hang there stops the commits, which liveness reports. Faust polls and heartbeats from
its own consumer thread, so a stuck handler must not cost the member its place in the
group.

The hang is made for real, on the network: the module's broker tells clients to connect
through a loopback proxy (``tests.streams.proxy.StallingProxy``) that, when asked, holds
back the worker's Produce request that writes to the alerts topic, as a broker stuck on it
would; the worker's later produce requests queue behind it on that connection, while its
fetches, heartbeats and commits, and the test's own producer, pass. The worker's alert
then waits for its acknowledgement like a send to an unreachable partition leader would.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from tests.streams import scenario
from tests.streams.kafka_helpers import (
    accounted_ids,
    create_topic,
    framed_batches,
    free_port,
    json_values,
    produce,
    read_topic,
    start_worker,
    worker_args,
)
from tests.streams.proxy import proxied_broker as start_proxied_broker

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT_S = 10  # worker_args' --session-timeout


@pytest.fixture(scope="module")
def proxied_broker(tmp_path_factory: pytest.TempPathFactory):
    yield from start_proxied_broker(tmp_path_factory, "kafka-b19")


@pytest.fixture(scope="module")
def story() -> tuple[scenario.Scenario, list[dict]]:
    """The scenario, plus routine records of the two other roles after the attack: the
    "later events" that must still be processed once the hang is over."""
    story = scenario.build(days=5, per_hour=2)
    rng = random.Random(19)
    boto = "Boto3/1.34.100 md/Botocore#1.34.100 Python/3.11.9 Linux/6.1"
    later = []
    for i in range(40):
        role = ("billing-export", "queue-poller")[i % 2]
        later.append(scenario.record(rng, story.attack_end + 60 + 30 * i, role,
                                     rng.choice(scenario.ROUTINE), scenario.ROLES[role], boto,
                                     len(story.records) + i))
    return story, later


def split(story: scenario.Scenario) -> tuple[list[dict], list[dict]]:
    attack = set(story.attack_ids)
    first = next(i for i, r in enumerate(story.records) if r["eventID"] in attack)
    return story.records[:first], story.records[first:]




def group_members(bootstrap: str, group: str) -> list[str]:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    return sorted(m["member_id"] for m in described["members"])


def alerts_on(bootstrap: str, app_id: str, timeout: float) -> list[dict]:
    return json_values(read_topic(bootstrap, f"{app_id}.alerts", timeout=timeout))


def test_a_send_hanging_longer_than_the_session_timeout_keeps_the_member_and_loses_nothing(
        proxied_broker, story, tmp_path: Path) -> None:
    proxy, bootstrap = proxied_broker
    story, later = story
    before, attack = split(story)
    app_id = "b19-short"
    create_topic(bootstrap, f"{app_id}.raw")
    produce(bootstrap, f"{app_id}.raw", framed_batches(before))
    worker = start_worker(worker_args(bootstrap, app_id, tmp_path / "state", free_port(),
                                      "--io-timeout", "60", "--liveness-commit-age", "6"),
                          tmp_path / "worker.log")
    try:
        worker.wait_ready()
        accounted_ids(bootstrap, app_id, {r["eventID"] for r in before}, timeout=180)
        members = group_members(bootstrap, app_id)
        log_mark = len(worker.log_path.read_bytes())

        proxy.stall(f"{app_id}.alerts")
        produce(bootstrap, f"{app_id}.raw", framed_batches(attack + later))
        hang_s = 2.5 * SESSION_TIMEOUT_S
        samples = []
        deadline = time.monotonic() + hang_s
        while time.monotonic() < deadline:
            samples.append((worker.get("/readyz")[0], worker.get("/livez")))
            time.sleep(1.0)
        held = proxy.held
        alerts_during = alerts_on(bootstrap, app_id, timeout=3)
        members_during = group_members(bootstrap, app_id)
        proxy.release()

        wanted = {r["eventID"] for r in story.records + later}
        accounted = accounted_ids(bootstrap, app_id, wanted, timeout=120)
        alerts = alerts_on(bootstrap, app_id, timeout=5)
        live_after = wait_for_live(worker)
        members_after = group_members(bootstrap, app_id)
    finally:
        code = worker.stop(signal.SIGTERM, timeout=90)
    after_mark = worker.log_path.read_bytes()[log_mark:].decode("utf-8", "replace")
    assert code == 0, worker.log_tail()
    # the hang was real: the worker's sends were held and no alert got out meanwhile
    assert held >= 1 and alerts_during == []
    # ... and it lasted 2.5 session timeouts, yet the member never left the group
    assert members == members_during == members_after and len(members) == 1
    assert "partitions revoked" not in after_mark, after_mark[-3000:]
    assert all(ready == 200 for ready, _ in samples), samples
    # the commit stopped advancing, so liveness said which partition is stuck (B19's
    # "alert if the commit offset stops advancing"), and recovered after the hang
    stuck = [body for (code_, body) in (live for _, live in samples) if code_ == 503]
    assert stuck and all(body["stuck_partitions"] for body in stuck), samples
    assert live_after
    # the later events were processed and nothing was lost
    assert wanted <= accounted
    victim = scenario.role_arn(scenario.VICTIM)
    assert alerts and {a["identity"]["key"] for a in alerts} == {victim}


def restart_loses_nothing(args: list[str], tmp_path: Path, bootstrap: str, app_id: str,
                          records: list[dict]) -> None:
    """A fresh worker on the same state accounts for every record, stops cleanly, and the
    only alerted identity is the scenario's victim."""
    again = start_worker(args, tmp_path / "worker-again.log")
    try:
        again.wait_ready()
        wanted = {r["eventID"] for r in records}
        accounted = accounted_ids(bootstrap, app_id, wanted, timeout=180)
        alerts = alerts_on(bootstrap, app_id, timeout=5)
    finally:
        code_again = again.stop(signal.SIGTERM, timeout=90)
    assert code_again == 0, again.log_tail()
    assert wanted <= accounted
    victim = scenario.role_arn(scenario.VICTIM)
    assert alerts and {a["identity"]["key"] for a in alerts} == {victim}


def wait_for_live(worker, timeout: float = 60.0) -> bool:
    return wait_for(lambda: worker.get("/livez")[0], lambda code: code == 200, timeout) == 200


def test_a_send_hanging_past_the_io_timeout_stops_the_worker_and_a_restart_loses_nothing(
        proxied_broker, story, tmp_path: Path) -> None:
    proxy, bootstrap = proxied_broker
    story, later = story
    before, attack = split(story)
    app_id = "b19-long"
    io_timeout = 5
    create_topic(bootstrap, f"{app_id}.raw")
    produce(bootstrap, f"{app_id}.raw", framed_batches(before))
    args = worker_args(bootstrap, app_id, tmp_path / "state", free_port(),
                       "--io-timeout", str(io_timeout))
    worker = start_worker(args, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        accounted_ids(bootstrap, app_id, {r["eventID"] for r in before}, timeout=180)
        proxy.stall(f"{app_id}.alerts")
        produce(bootstrap, f"{app_id}.raw", framed_batches(attack + later))
        started = time.monotonic()
        code = worker.exit_code(timeout=90)
        stopped_after = time.monotonic() - started
    finally:
        proxy.release()
        worker.stop(signal.SIGKILL)
    log_text = worker.log_path.read_text(encoding="utf-8", errors="replace")
    # bounded: the hung send is given up after io_timeout and the worker exits 70 (so the
    # platform restarts it) instead of waiting on it for Faust's 20-minute request timeout.
    # It ends at once: no graceful stop, which would wait on the stuck stream and on the
    # producer (the old code hung there until a hard exit 30 s later).
    assert code == 70, worker.log_tail()
    assert f"alerts were not acknowledged within {io_timeout}s" in log_text
    assert "Wait for streams" not in log_text, worker.log_tail()
    assert stopped_after < io_timeout + 15, stopped_after
    # the late sends were left pending, not cancelled: no traceback from Faust's callback
    assert "_on_published" not in log_text and "Traceback" not in log_text, log_text[-5000:]

    restart_loses_nothing(args, tmp_path, bootstrap, app_id, story.records + later)


def test_a_hung_repartition_send_stops_commits_and_liveness_says_so(
        proxied_broker, story, tmp_path: Path) -> None:
    """Outputs other than alerts are handed to the producer within io_timeout, but their
    delivery is awaited by Faust's offset commit, not by the handler: when it hangs, the
    commits stop, /livez fails naming the stuck partitions after --liveness-commit-age, and
    the platform's restart (SIGTERM, then SIGKILL) loses nothing because nothing past the
    hang was committed."""
    proxy, bootstrap = proxied_broker
    story, later = story
    before, attack = split(story)
    app_id = "b19-commit"
    create_topic(bootstrap, f"{app_id}.raw")
    produce(bootstrap, f"{app_id}.raw", framed_batches(before))
    args = worker_args(bootstrap, app_id, tmp_path / "state", free_port(),
                       "--liveness-commit-age", "6")
    worker = start_worker(args, tmp_path / "worker.log")
    try:
        worker.wait_ready()
        accounted_ids(bootstrap, app_id, {r["eventID"] for r in before}, timeout=180)
        proxy.stall(f"{app_id}-events-by-identity")
        produce(bootstrap, f"{app_id}.raw", framed_batches(attack + later))
        live = wait_for(lambda: worker.get("/livez"), lambda got: got[0] == 503, 60)
        held = proxy.held
    finally:
        worker.stop(signal.SIGTERM, timeout=10)  # kubelet: SIGTERM, SIGKILL after a grace
        proxy.release()
    assert held >= 1
    assert live is not None and live[1]["stuck_partitions"], worker.log_tail()

    restart_loses_nothing(args, tmp_path, bootstrap, app_id, story.records + later)


def wait_for(probe, done, timeout: float):
    """``probe()`` every second until ``done(result)``; the result, or None on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if done(result):
            return result
        time.sleep(1.0)
    return None


def test_a_fatal_exit_leaves_the_group_so_the_other_worker_takes_over_at_once(
        proxied_broker, story, tmp_path: Path) -> None:
    """Two workers; the one that owns the victim's partition cannot get its alert
    acknowledged and exits 70. Its LeaveGroup request makes the group rebalance at once:
    long before the (60 s) session timeout, the survivor is the only member and has
    processed every event, the alert included."""
    proxy, bootstrap = proxied_broker
    story, later = story
    before, attack = split(story)
    app_id = "b19-leave"
    session_timeout = 60
    create_topic(bootstrap, f"{app_id}.raw")
    produce(bootstrap, f"{app_id}.raw", framed_batches(before))
    workers = []
    for worker_id in ("w1", "w2"):
        args = worker_args(bootstrap, app_id, tmp_path / "state", free_port(),
                           "--io-timeout", "5", "--session-timeout", str(session_timeout),
                           "--worker-id", worker_id)
        workers.append(start_worker(args, tmp_path / f"{worker_id}.log"))
    try:
        for worker in workers:
            worker.wait_ready(timeout=180)
        wait_for(lambda: group_members(bootstrap, app_id), lambda m: len(m) == 2, 60)
        accounted_ids(bootstrap, app_id, {r["eventID"] for r in before}, timeout=180)
        proxy.stall(f"{app_id}.alerts")
        produce(bootstrap, f"{app_id}.raw", framed_batches(attack + later))
        dead = wait_for(lambda: [w for w in workers if w.process.poll() is not None],
                        lambda exited: exited, 90)
        exited_at = time.monotonic()
        proxy.release()
        assert dead and len(dead) == 1, [w.log_tail() for w in workers]
        survivor = next(w for w in workers if w is not dead[0])
        members = wait_for(lambda: group_members(bootstrap, app_id),
                           lambda m: len(m) == 1, session_timeout / 3)
        wanted = {r["eventID"] for r in story.records + later}
        accounted = accounted_ids(bootstrap, app_id, wanted, timeout=session_timeout / 3)
        alerts = alerts_on(bootstrap, app_id, timeout=5)
        settled_after = time.monotonic() - exited_at
    finally:
        proxy.release()
        codes = [w.stop(signal.SIGTERM, timeout=90) for w in workers]
    dead_log = dead[0].log_path.read_text(encoding="utf-8", errors="replace")
    assert dead[0].process.returncode == 70, dead_log[-3000:]
    # without the LeaveGroup the dead member stays listed for the whole session timeout
    assert members is not None and len(members) == 1, survivor.log_tail()
    assert "leaving the consumer group: left" in dead_log, dead_log[-3000:]
    assert codes.count(0) == 1, survivor.log_tail()
    assert wanted <= accounted and settled_after < session_timeout
    victim = scenario.role_arn(scenario.VICTIM)
    assert alerts and {a["identity"]["key"] for a in alerts} == {victim}
