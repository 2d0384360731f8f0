"""Helpers for the real-broker tests: topics, producing, reading, and worker subprocesses."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.streams import scenario

REPO = Path(__file__).resolve().parents[2]
STARTED: list[WorkerProcess] = []  # every worker a test started; conftest kills survivors


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_topic(bootstrap: str, name: str, partitions: int = 1,
                 configs: dict[str, str] | None = None) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    finally:
        admin.close()


def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> list[int]:
    """Send payloads in order to partition 0; returns their offsets."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                             max_request_size=4 << 20)
    try:
        futures = [producer.send(topic, value=p, partition=0) for p in payloads]
        producer.flush(timeout=60)
        return [f.get(timeout=60).offset for f in futures]
    finally:
        producer.close(timeout=30)


def frame_lines(records: list[dict[str, Any]]) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in records) + b"\n"


def framed_batches(records: list[dict[str, Any]], size: int | None = None) -> list[bytes]:
    """``records`` as raw messages of ``size`` (default ``BATCH``) JSON lines each."""
    size = size or BATCH
    return [frame_lines(records[i:i + size]) for i in range(0, len(records), size)]


def read_topic(bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool] | None = None,
               timeout: float = 60.0) -> list[Any]:
    """Every message of ``topic`` from the beginning, until ``until(messages)`` holds or the
    end of the topic is reached after ``timeout`` seconds."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             group_id=None)
    messages: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        parts: set[int] = set()
        while not parts and time.monotonic() < deadline:
            parts = consumer.partitions_for_topic(topic) or set()
            if not parts:
                time.sleep(0.5)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                messages.extend(batch)
            if until is not None and until(messages):
                break
    finally:
        consumer.close()
    return messages


def json_values(messages: list[Any]) -> list[Any]:
    return [orjson.loads(m.value) for m in messages if m.value]


@dataclass
class WorkerProcess:
    """A worker started as ``python -m detector.cli worker`` with its own log file."""

    process: subprocess.Popen
    port: int
    log_path: Path

    def get(self, path: str) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = response.read()
                code = response.status
        except urllib.error.HTTPError as err:
            body, code = err.read(), err.code
        if path == "/metrics":
            return code, body.decode()
        return code, json.loads(body)

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}:\n"
                                     f"{self.log_tail()}")
            try:
                code, _ = self.get("/readyz")
                if code == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def exit_code(self, timeout: float = 90.0) -> int | None:
        """Wait for the worker to exit by itself; kill it (and return None) if it does not."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGKILL)
            return None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def worker_args(bootstrap: str, app_id: str, state_dir: Path, port: int,
                *extra: str) -> list[str]:
    return [
        "worker", "--bootstrap-servers", bootstrap, "--app-id", app_id,
        "--raw-topics", f"{app_id}.raw", "--alerts-topic", f"{app_id}.alerts",
        "--shadow-topic", f"{app_id}.shadow", "--inventory-topic", f"{app_id}.inventory",
        "--dead-letter-topic", f"{app_id}.dlq", "--accounting-topic", f"{app_id}.accounting",
        "--partitions", "2", "--state-dir", str(state_dir), "--worker-id", "w1",
        "--web-port", str(port), "--commit-interval", "1.0", "--startup-timeout", "60",
        "--session-timeout", "10",
        *extra,
    ]


def start_worker(args: list[str], log_path: Path, *, verbose: bool = True,
                 stdout_path: Path | None = None) -> WorkerProcess:
    """Start a worker logging to ``log_path``, at INFO unless not ``verbose``; its stdout
    goes there too unless ``stdout_path`` is given."""
    port = int(args[args.index("--web-port") + 1]) if "--web-port" in args else 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    handle = open(log_path, "ab")  # noqa: SIM115 - the child owns it
    out = open(stdout_path, "ab") if stdout_path else None  # noqa: SIM115 - the child's
    process = subprocess.Popen([sys.executable, "-m", "detector.cli",
                                *(["-v"] if verbose else []), *args],
                               stdout=out or handle, stderr=handle if out else subprocess.STDOUT,
                               cwd=REPO, stdin=subprocess.DEVNULL, env=env)
    handle.close()
    if out is not None:
        out.close()
    worker = WorkerProcess(process, port, log_path)
    STARTED.append(worker)
    return worker


# -- reading what the worker accounted for (shared by the worker test modules) ----------

BATCH = 25  # records per raw message


def accounted_ids(bootstrap: str, app_id: str, expected: set[str], timeout: float) -> set[str]:
    def covered(messages: list) -> bool:
        return expected <= ids_of(messages)

    return ids_of(read_topic(bootstrap, f"{app_id}.accounting", until=covered, timeout=timeout))


def ids_of(messages: list) -> set[str]:
    return {i for value in json_values(messages) for i in value["event_ids"]}


def latest_inventory(bootstrap: str, app_id: str, story: scenario.Scenario) -> dict[str, dict]:
    """The last inventory record per identity, read until every role's event count has
    reached its number of input records (the worker flushes inventory on a timer)."""
    want = {scenario.role_arn(role): len(story.records_of(role)) for role in scenario.ROLES}
    return inventory_until(bootstrap, app_id, want, timeout=30)


def inventory_until(bootstrap: str, app_id: str, want: Mapping[str, int],
                    timeout: float) -> dict[str, dict]:
    """The last inventory record per identity, read until each identity of ``want`` has
    counted at least its number of events there, or ``timeout`` seconds."""
    def latest(messages: list) -> dict[str, dict]:
        return {m.key.decode(): orjson.loads(m.value) for m in messages}

    def complete(messages: list) -> bool:
        got = latest(messages)
        return all(got.get(k, {}).get("events", 0) >= n for k, n in want.items())

    return latest(read_topic(bootstrap, f"{app_id}.inventory", until=complete,
                             timeout=timeout))


def counter(worker: WorkerProcess, name: str, labels: str = "") -> float | None:
    """The value of metric ``name`` (with ``labels`` as written, ``{a="b"}``) that
    ``worker`` exports now, or None when it exports none."""
    text = worker.get("/metrics")[1]
    found = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


def consumer_lag(metrics: str, topic: str) -> int | None:
    """The consumer lag a worker's ``/metrics`` text gives for a partition of ``topic``
    (the first listed), or None when none of its partitions is assigned to it."""
    pattern = (r'nhi_kafka_consumer_lag_messages\{[^}]*topic="' + re.escape(topic)
               + r'"[^}]*\} ([0-9.e+-]+)')
    found = re.search(pattern, metrics)
    return None if found is None else int(float(found.group(1)))


def warm_snapshot(story: scenario.Scenario, cut: float,
                  tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Replay the scenario's records before ``cut`` (epoch seconds) with ``--save-state``:
    (the snapshot, the records left for the worker)."""
    history = [r for r in story.records if r["eventTime"] < scenario.iso(cut)]
    (tmp_path / "history.jsonl").write_bytes(frame_lines(history))
    snapshot = tmp_path / "baselines.snap"
    replay = subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", str(tmp_path / "history.jsonl"),
         "--save-state", str(snapshot), "--alerts", str(tmp_path / "replay-alerts.jsonl"),
         "--no-progress"], capture_output=True, text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    return snapshot, story.records[len(history):]
