"""Worker throughput on a local broker: prints figures, asserts nothing.

Run ``python3 benchmarks/bench_worker.py`` (it starts Apache Kafka from its jars with
``tools/kafka/broker.py``, or uses ``KAFKA_BOOTSTRAP_SERVERS``). In one run it measures:

1. a bare aiokafka consumer (orjson per message) reading single-record messages;
2. a no-op Faust agent reading the same topic (Faust's per-message cost);
3. one worker end to end (raw -> parse -> repartition -> detect -> outputs) fed
   single-record messages, then a backlog of batched messages (``--batch`` records each,
   ``--events`` in all) on a 4-partition raw topic;
4. two workers on the same backlog and topic layout (3 and 4 taken in turn ``--turns``
   times, 3 by default, then their medians: a span's rate per CPU second moves by up to a
   fifth on a shared machine);
5. the detector core alone, and the worker's pipeline (split + apply) without Kafka, whose
   difference is what the worker's own code costs per event.

``--only single,batched`` runs some parts; ``--profile DIR`` makes every worker sample its
threads (``NHI_WORKER_PROFILE``, see ``streams/profiling.py``) and write the samples to DIR
when it stops; ``python -m streams.profiling DIR/*.prof`` prints the split by part.

Every worker run works through a backlog that is in the raw topic before its clocks start:
the workers are started and settled on an empty topic, warmed up with one message per raw
partition, their assignment checked (each raw and identity partition owned by one worker),
then paused (SIGSTOP) while the backlog is produced, and the clocks run from their resume
to the last event processed (the worker's ``nhi_batch_size_events_sum`` metric). The
broker is warmed up once before the first worker run (a scratch topic written and read,
then two workers over 40,000 events). For the baselines the clocks run
from the first to the last message. Targets from issue 6: batched >= 10,000 events/s per
worker; single-record >= 80 % of the no-op agent; two workers >= 1.7x one.

Wall-clock rates on a shared machine vary by a factor of several between runs, so each
line also gives a CPU figure over the same span: events (or messages) per CPU second of
the measured process (all its threads, from /proc on Linux; the core line uses
``time.process_time``). Compare changes by those. Under each worker run it prints where
the machine's cores went over the span (each worker, the broker, this benchmark, every
other process) and, from the scheduler's counters, how much of the span each worker's
main thread was on a core, waiting for one, or idle; under the two-worker run, what that
says bounds the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "kafka"))

T0 = 1_717_200_000.0
ACCOUNT = "777788889999"
# --profile DIR: each worker writes a cProfile of its main thread and its threads' CPU there
PROFILE_DIR: Path | None = None
# The workers' session timeout: a worker paused (SIGSTOP) while the backlog is produced
# stays in its group for this long, so the span starts without a rebalance.
SESSION_TIMEOUT_S = 60
ACTIONS = ("s3:GetObject", "s3:PutObject", "sts:GetCallerIdentity", "sqs:ReceiveMessage",
           "dynamodb:GetItem", "kms:Decrypt", "ec2:DescribeInstances", "logs:PutLogEvents")


# ---------------------------------------------------------------------------- data


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_records(n: int, identities: int, seed: int = 11) -> list[bytes]:
    """``n`` CloudTrail records (about 1.6 KB each, as issue 6 sizes them) over
    ``identities`` roles, in time order, spread over 6 days so every identity leaves its
    learning period.

    Each role works in one-hour sessions, and, as in CloudTrail, a session's records carry
    its one temporary access key and the role its one private address (both derived from
    the names with CRC-32, so every run sends the same bytes)."""
    rng = random.Random(seed)
    span = 6 * 86400.0
    out = []
    for i in range(n):
        ts = T0 + span * i / n
        role = f"svc-{rng.randrange(identities):04d}"
        action = rng.choice(ACTIONS)
        service, _, name = action.partition(":")
        session = f"{role}-{int(ts // 3600)}"
        key = zlib.crc32(session.encode())
        host = zlib.crc32(role.encode())
        out.append(orjson.dumps({
            "eventVersion": "1.09",
            "userIdentity": {
                "type": "AssumedRole", "principalId": f"AROA{role.upper()}:{session}",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}",
                "accountId": ACCOUNT, "accessKeyId": f"ASIA{key:016d}",
                "sessionContext": {"sessionIssuer": {
                    "type": "Role", "principalId": f"AROA{role.upper()}",
                    "arn": f"arn:aws:iam::{ACCOUNT}:role/{role}", "accountId": ACCOUNT,
                    "userName": role}, "attributes": {
                        "creationDate": _iso(ts - ts % 3600), "mfaAuthenticated": "false"}},
            },
            "eventTime": _iso(ts),
            "eventSource": f"{service}.amazonaws.com", "eventName": name,
            "awsRegion": "eu-central-1",
            "sourceIPAddress": f"10.1.{host % 200}.{host % 250}",
            "userAgent": "Boto3/1.34.100 md/Botocore#1.34.100 Python/3.11.9 Linux/6.1",
            "requestParameters": {"bucketName": f"data-{role}", "key": f"part-{i % 97}",
                                  "Host": f"data-{role}.s3.eu-central-1.amazonaws.com"},
            "responseElements": None,
            "additionalEventData": {
                "SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
                "bytesTransferredIn": 0.0, "bytesTransferredOut": float(i % 4096),
                "AuthenticationMethod": "AuthHeader", "x-amz-id-2": f"{key:x}/{i:012x}"},
            "requestID": f"req-{i:010d}", "eventID": f"bench-{i:010d}", "readOnly": True,
            "resources": [
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::data-{role}/part-{i % 97}"},
                {"accountId": ACCOUNT, "type": "AWS::S3::Bucket",
                 "ARN": f"arn:aws:s3:::data-{role}"}],
            "eventType": "AwsApiCall", "managementEvent": True,
            "recipientAccountId": ACCOUNT, "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": f"{service}.eu-central-1.amazonaws.com"},
        }))
    return out


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()


async def produce_async(bootstrap: str, topic: str, payloads: list[bytes],
                        partitions: int) -> float:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10,
                                max_batch_size=1 << 20, max_request_size=4 << 20)
    await producer.start()
    started = time.perf_counter()
    try:
        futures = [await producer.send(topic, value=p, partition=i % partitions)
                   for i, p in enumerate(payloads)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - started


def produce(bootstrap: str, topic: str, payloads: list[bytes], partitions: int = 1) -> float:
    create_topic(bootstrap, topic, partitions)
    return asyncio.run(produce_async(bootstrap, topic, payloads, partitions))


def batched(records: list[bytes], size: int) -> list[bytes]:
    return [b"\n".join(records[i:i + size]) for i in range(0, len(records), size)]


# ---------------------------------------------------------------------------- baselines


async def bare_consumer(bootstrap: str, topic: str, count: int, decode: bool = True) -> float:
    """Messages per second of a plain aiokafka consumer decoding each message (with
    ``decode``: each message is one JSON document)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < count:
            batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for records in batch.values():
                for record in records:
                    if decode:
                        orjson.loads(record.value)
                    seen += 1
                    if started is None:
                        started = time.perf_counter()
    finally:
        await consumer.stop()
    return (count - 1) / (time.perf_counter() - started)


NOOP_AGENT = r'''
import os, sys, time, faust
bootstrap, topic, count, app_id, repo = sys.argv[1:6]
count = int(count)
sys.path.insert(0, repo)
from streams.app import short_fetch_wait
app = faust.App(app_id, broker=f"kafka://{bootstrap}", web_enabled=False, store="memory://",
                consumer_auto_offset_reset="earliest", broker_max_poll_records=500)
# the worker's fetch wait: with Faust's 1500 ms this agent sat idle 1.5 s per fetched
# megabyte (its assignor topic's empty fetch in flight), and measured that, not Faust
app.transport.Consumer = short_fetch_wait(app.transport.Consumer)
source = app.topic(topic, value_type=bytes, value_serializer="raw")
state = {"n": 0, "t0": None}
@app.agent(source)
async def noop(stream):
    async for _ in stream:
        state["n"] += 1
        if state["t0"] is None:
            state["t0"], state["c0"] = time.perf_counter(), time.process_time()
        if state["n"] == count:
            rate = (count - 1) / (time.perf_counter() - state["t0"])
            cpu = (count - 1) / max(time.process_time() - state["c0"], 1e-9)
            print(f"RATE {rate:.1f} CPU {cpu:.1f}", flush=True)
            os._exit(0)  # stopping the app from inside its own agent would wait for itself
faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()
'''


def noop_faust_agent(bootstrap: str, topic: str, count: int,
                     workdir: Path) -> tuple[float, float]:
    """(messages/s, messages per CPU second) of an agent that only counts messages."""
    script = workdir / "noop_agent.py"
    script.write_text(NOOP_AGENT, encoding="utf-8")
    done = subprocess.run([sys.executable, str(script), bootstrap, topic, str(count),
                           f"noop-{int(time.time())}", str(REPO)], capture_output=True, text=True,
                          timeout=600, cwd=workdir)
    # Faust turns print() into log lines on stderr, so look in both streams
    match = re.search(r"RATE ([0-9.]+) CPU ([0-9.]+)", done.stdout + done.stderr)
    if match is None:
        raise RuntimeError(f"no-op agent failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return float(match.group(1)), float(match.group(2))


# ---------------------------------------------------------------------------- the worker


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_worker(bootstrap: str, app_id: str, raw: str, partitions: int, workdir: Path,
                 name: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "detector.cli", "worker", "--bootstrap-servers", bootstrap,
           "--app-id", app_id, "--raw-topics", raw, "--partitions", str(max(partitions, 4)),
           "--alerts-topic", f"{app_id}.alerts", "--shadow-topic", f"{app_id}.shadow",
           "--inventory-topic", f"{app_id}.inventory", "--dead-letter-topic", f"{app_id}.dlq",
           "--state-dir", str(workdir / "state"), "--worker-id", name, "--web-port", str(port),
           # longer than the pause while the backlog is produced (measure_workers)
           "--session-timeout", str(SESSION_TIMEOUT_S)]
    env = dict(os.environ)
    if PROFILE_DIR is not None:
        # streams.profiling: the worker writes its profile when SIGTERM stops it
        env["NHI_WORKER_PROFILE"] = str(PROFILE_DIR / f"{app_id}-{name}.prof")
    log = open(workdir / f"{app_id}-{name}.log", "wb")  # noqa: SIM115 - child owns it
    process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                               stdin=subprocess.DEVNULL, env=env)
    log.close()
    return process, port


def processed(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return 0.0
    match = re.search(r"^nhi_batch_size_events_sum ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
            return resp.status == 200
    except OSError:
        return False


def wait_stable(procs: list[tuple[subprocess.Popen, int]], workdir: Path,
                timeout: float = 300.0, hold: float = 5.0) -> None:
    """Until every worker has been ready for ``hold`` seconds in a row (Faust rebalances
    once or twice at startup; a measurement must not include those pauses)."""
    deadline, since = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        for process, _ in procs:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}; see {workdir}")
        if all(ready(port) for _, port in procs):
            since = since or time.monotonic()
            if time.monotonic() - since >= hold:
                return
        else:
            since = None
        time.sleep(0.2)
    raise RuntimeError(f"workers not ready in {timeout:.0f}s; see {workdir}")


@dataclass
class WorkerSpan:
    """One worker over the measured span: the events its detect step processed, the CPU of
    all its threads, and where its main thread (the event loop, where parse and detect
    run) spent the span: on a core, runnable but waiting for one, or idle (waiting for
    input, the broker, or its own timers)."""

    name: str
    events: float
    cpu: float
    on_core: float
    waiting: float
    idle: float
    partitions: str


@dataclass
class Span:
    """A measured span of ``measure_workers``: from the workers' resume (the backlog
    already in the raw topic) to the last event processed."""

    seconds: float
    workers: list[WorkerSpan]
    broker_cpu: float | None  # None: a broker we did not start (KAFKA_BOOTSTRAP_SERVERS)
    broker_waiting: float  # seconds its threads were runnable but waiting for a core, summed
    machine_busy: float  # CPU seconds every process on the machine used over the span
    own_cpu: float  # this benchmark process (it polls the workers' metrics)
    produce_seconds: float  # producing the backlog, before the span, workers paused
    producer_cpu: float
    rebalances: int  # rebalance warnings the workers logged during the span
    broker_parts: list[tuple[str, float]]  # the broker's CPU seconds by thread kind, most first

    @property
    def events(self) -> float:
        return sum(worker.events for worker in self.workers)

    @property
    def rate(self) -> float:
        return self.events / self.seconds

    @property
    def worker_cpu(self) -> float:
        return sum(worker.cpu for worker in self.workers)

    def cores(self, cpu: float) -> float:
        return cpu / self.seconds

    def others(self) -> float:
        """Cores used over the span by every other process on the machine (other jobs)."""
        ours = self.worker_cpu + (self.broker_cpu or 0.0) + self.own_cpu
        return max(self.machine_busy - ours, 0.0) / self.seconds


def measure_workers(bootstrap: str, app_id: str, payloads: list[bytes], partitions: int,
                    workers: int, workdir: Path, broker_pid: int | None,
                    timeout: float = 900.0) -> Span:
    """Run ``workers`` processes on a ``partitions``-partition raw topic over a backlog.

    The workers are started and settled on an empty raw topic, warmed up with one message
    per raw partition (the models' lazy imports, the first table reads), and their
    assignment checked (every raw and identity partition owned by exactly one worker).
    Then they are paused (SIGSTOP) while the rest of ``payloads`` is produced, and the
    clocks start when they resume (SIGCONT) and stop at the last event processed.

    Producing inside the span, as before, measured the producer too: the workers waited
    for their input while the benchmark produced it on the same cores, for a fixed time
    that does not halve with two workers. A pause is shorter than the session timeout
    the workers get here, so the group does not rebalance (the span's rebalance warnings
    are counted and printed to show it).
    """
    raw = f"{app_id}.raw"
    create_topic(bootstrap, raw, partitions)
    procs = [start_worker(bootstrap, app_id, raw, partitions, workdir, f"w{i}")
             for i in range(workers)]
    warm, rest = payloads[:partitions], payloads[partitions:]
    total = _events(payloads)
    try:
        wait_stable(procs, workdir)
        asyncio.run(produce_async(bootstrap, raw, warm, partitions))
        _wait_processed(procs, total - _events(rest), workdir, timeout)
        owned = [assigned(port) for _, port in procs]
        _check_assignment(owned, raw, app_id, partitions, workdir)
        # read over HTTP while the workers run: a paused worker answers no request, and
        # asking it held the clock for the query's whole timeout (5 s) before the resume
        warmed = [processed(port) for _, port in procs]
        for process, _ in procs:
            process.send_signal(signal.SIGSTOP)
        produce_cpu, started = time.process_time(), time.perf_counter()
        asyncio.run(produce_async(bootstrap, raw, rest, partitions))
        produce_seconds = time.perf_counter() - started
        produce_cpu = time.process_time() - produce_cpu
        before = _snapshot(procs, broker_pid, workdir, app_id, warmed)
        for process, _ in procs:
            process.send_signal(signal.SIGCONT)
        _wait_processed(procs, total, workdir, timeout)
        after = _snapshot(procs, broker_pid, workdir, app_id)
        seconds = after.clock - before.clock
        spans = [_worker_span(f"w{i}", seconds, before, after, i, owned[i], raw, app_id)
                 for i in range(workers)]
        return Span(seconds, spans,
                    None if broker_pid is None else after.broker - before.broker,
                    _waiting(before.broker_threads, after.broker_threads),
                    after.machine - before.machine, after.own - before.own,
                    produce_seconds, produce_cpu, after.rebalances - before.rebalances,
                    thread_kinds(broker_pid, before.broker_threads, after.broker_threads)
                    if broker_pid is not None else [])
    finally:
        for process, _ in procs:
            process.send_signal(signal.SIGCONT)  # a worker paused by a failed run
            process.send_signal(signal.SIGTERM)
        for process, _ in procs:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def _events(payloads: list[bytes]) -> int:
    """Records in ``payloads`` (newline-delimited, one event each here)."""
    return sum(payload.count(b"\n") + 1 for payload in payloads)


@dataclass
class _Snapshot:
    clock: float
    pids: list[int]
    processed: list[float]
    cpu: list[float]
    threads: list[dict[int, tuple[float, float]]]
    broker: float
    broker_threads: dict[int, tuple[float, float]]
    machine: float
    own: float
    rebalances: int


def _snapshot(procs: list[tuple[subprocess.Popen, int]], broker_pid: int | None,
              workdir: Path, app_id: str, counts: list[float] | None = None) -> _Snapshot:
    """The clock and the counters of a span's start or end. ``counts``: the events the
    workers have processed, read before they were paused (a paused worker's metrics
    cannot be read: the request waits for its timeout); without it they are read now.
    Everything else comes from /proc and the log files, readable from a paused worker."""
    if counts is None:
        counts = [processed(port) for _, port in procs]
    return _Snapshot(
        time.perf_counter(), [process.pid for process, _ in procs], counts,
        [cpu_seconds(process.pid) for process, _ in procs],
        [thread_seconds(process.pid) for process, _ in procs],
        cpu_seconds(broker_pid) if broker_pid is not None else 0.0,
        thread_seconds(broker_pid) if broker_pid is not None else {}, machine_seconds(),
        time.process_time(),
        sum(_rebalance_lines(workdir / f"{app_id}-w{i}.log") for i in range(len(procs))))


def _worker_span(name: str, seconds: float, before: _Snapshot, after: _Snapshot, i: int,
                 owned: dict[str, list[int]], raw: str, app_id: str) -> WorkerSpan:
    main = after.pids[i]  # the main thread's id is the process id
    on_core, waiting = (after.threads[i][main][k] - before.threads[i][main][k]
                        for k in (0, 1))
    text = (f"raw {_partitions(owned.get(raw))}, identity "
            f"{_partitions(owned.get(f'{app_id}-events-by-identity'))}")
    return WorkerSpan(name, after.processed[i] - before.processed[i],
                      after.cpu[i] - before.cpu[i], on_core / seconds, waiting / seconds,
                      max(seconds - on_core - waiting, 0.0) / seconds, text)


def _waiting(before: dict[int, tuple[float, float]],
             after: dict[int, tuple[float, float]]) -> float:
    """Seconds the threads of ``after`` waited for a core since ``before`` (a thread
    started since counts from zero)."""
    return sum(wait - before.get(tid, (0.0, 0.0))[1] for tid, (_, wait) in after.items())


def _partitions(numbers: list[int] | None) -> str:
    return ",".join(map(str, sorted(numbers))) if numbers else "none"


def assigned(port: int) -> dict[str, list[int]]:
    """Topic -> partitions the worker owns, from its lag gauges (one per assigned
    partition of the raw and the identity topics, ``streams.app.update_health``)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    owned: dict[str, list[int]] = {}
    pattern = r'^nhi_kafka_consumer_lag_messages\{partition="(\d+)",topic="([^"]+)"\}'
    for partition, topic in re.findall(pattern, text, re.MULTILINE):
        owned.setdefault(topic, []).append(int(partition))
    return owned


def _check_assignment(owned: list[dict[str, list[int]]], raw: str, app_id: str,
                      partitions: int, workdir: Path) -> None:
    """Every raw and identity partition owned by exactly one worker, or stop: a run with
    a partition owned twice or by nobody would measure a rebalance, not the workers."""
    for topic, count in ((raw, partitions), (f"{app_id}-events-by-identity",
                                             max(partitions, 4))):
        numbers = sorted(n for worker in owned for n in worker.get(topic, []))
        if numbers != list(range(count)):
            raise RuntimeError(f"{topic}: partitions {numbers} assigned over the workers, "
                               f"expected each of 0..{count - 1} once; see {workdir}")


def _rebalance_lines(log_path: Path) -> int:
    """Lines of a worker log that tell of a group rebalance (aiokafka's heartbeat
    warning, Faust's rebalance lines)."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 0
    return sum("rebalanc" in line.lower() for line in text.splitlines())


def _wait_processed(procs: list[tuple[subprocess.Popen, int]], count: float, workdir: Path,
                    timeout: float) -> float:
    """Until the workers have processed ``count`` events; returns how many they have."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(processed(port) for _, port in procs)
        if done >= count:
            return done
        for process, _ in procs:
            if process.poll() is not None:
                raise RuntimeError(f"worker exited with {process.returncode}; see {workdir}")
        time.sleep(0.1)
    raise RuntimeError(f"workers did not process {count:.0f} events in {timeout:.0f}s; "
                       f"see {workdir}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all threads (Linux /proc)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_seconds(pid: int) -> dict[int, tuple[float, float]]:
    """Thread id -> (seconds on a core, seconds runnable but waiting for one), from the
    scheduler's per-thread counters (Linux /proc/PID/task/TID/schedstat, nanoseconds)."""
    out = {}
    for path in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            on_core, waiting, _ = path.read_text(encoding="ascii").split()
        except (OSError, ValueError):
            continue  # the thread ended meanwhile
        out[int(path.parent.name)] = (int(on_core) / 1e9, int(waiting) / 1e9)
    return out


def thread_kinds(pid: int, before: dict[int, tuple[float, float]],
                 after: dict[int, tuple[float, float]]) -> list[tuple[str, float]]:
    """CPU seconds the threads of ``pid`` used between two ``thread_seconds`` readings,
    summed by thread name with a trailing number left out (a JVM names its threads by
    kind, and the kernel keeps their first 15 characters: ``data-plane-kafk``,
    ``C2 CompilerThre``, ``GC Thread#1``), most first."""
    kinds: dict[str, float] = {}
    for tid, (on_core, _) in after.items():
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text(encoding="utf-8").strip()
        except OSError:
            name = "(ended)"
        kind = re.sub(r"[-#]?\d+$", "", name) or name
        kinds[kind] = kinds.get(kind, 0.0) + on_core - before.get(tid, (0.0, 0.0))[0]
    return sorted(kinds.items(), key=lambda item: -item[1])


def machine_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (/proc/stat: every
    column of the ``cpu`` line but idle and iowait)."""
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [int(v) for v in handle.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]  # guest time is inside user already
    return busy / os.sysconf("SC_CLK_TCK")


def warm_broker(bootstrap: str, payloads: list[bytes], broker_pid: int | None,
                workdir: Path, limit: int = 40, worked: int = 80) -> None:
    """Before the first measured run, so that no run pays alone for the broker's JVM
    warming up (class loading and JIT): produce ``limit`` of ``payloads`` to a scratch
    topic and read them back, then let two workers work through ``worked`` of them, which
    takes the broker through every path the measured runs use (group membership, keyed
    produce to the repartition topic, the changelog, offset commits). With the first step
    alone, the broker's JIT compiler threads still used up to 0.1 of a core during the
    measured spans (``broker by thread``) and the broker 0.1 to 0.4 cores from run to run."""
    topic, sample = f"bench-warm-{int(time.time())}", payloads[:limit]
    cpu = cpu_seconds(broker_pid) if broker_pid is not None else 0.0
    seconds = produce(bootstrap, topic, sample, 4)
    asyncio.run(bare_consumer(bootstrap, topic, len(sample), decode=False))
    measure_workers(bootstrap, f"bench-warm-app-{int(time.time())}", payloads[:worked], 4, 2,
                    workdir, broker_pid)
    used = (f"; broker {cpu_seconds(broker_pid) - cpu:.1f} CPU s"
            if broker_pid is not None else "")
    print(f"warm-up      broker                 : {sum(map(len, sample)) / 1e6:,.0f} MB "
          f"produced in {seconds:.1f} s and read back, then {_events(payloads[:worked]):,} "
          f"events through two workers{used}", flush=True)


def print_span(span: Span) -> None:
    """Where the machine's cores went over the span, and each worker's main thread."""
    cpus = os.cpu_count() or 1
    broker = ("broker not ours" if span.broker_cpu is None
              else f"broker {span.cores(span.broker_cpu):.2f} (its threads waited "
                   f"{span.broker_waiting:.1f} s in all for a core)")
    workers = " + ".join(f"{w.name} {span.cores(w.cpu):.2f}" for w in span.workers)
    idle = max(cpus - span.cores(span.machine_busy), 0.0)
    print(f"             span {span.seconds:.1f} s over a backlog of {span.events:,.0f} "
          f"events, produced before it in {span.produce_seconds:.1f} s with the workers "
          f"paused (producer {span.producer_cpu:.1f} CPU s); rebalance lines in the span: "
          f"{span.rebalances}")
    print(f"             cores of {cpus} over the span: workers {workers}, {broker}, "
          f"this benchmark {span.cores(span.own_cpu):.2f}, other jobs {span.others():.2f}, "
          f"idle {idle:.2f}")
    if span.broker_parts:
        parts = ", ".join(f"{kind} {span.cores(cpu):.2f}" for kind, cpu in span.broker_parts[:5]
                          if cpu > 0)
        print(f"             broker by thread: {parts}")
    for w in span.workers:
        print(f"             {w.name} ({w.partitions}): {w.events:,.0f} events "
              f"({100 * w.events / span.events:.0f} %); main thread on a core "
              f"{100 * w.on_core:.0f} %, waiting for a core {100 * w.waiting:.0f} %, idle "
              f"{100 * w.idle:.0f} % of the span", flush=True)


def print_turns(ones: list[Span], twos: list[Span]) -> None:
    """The medians of the batched runs taken in turn. A worker's events per CPU second
    moved by up to a fifth from one span to the next on the 2-core development machine
    (86 to 129 % of one worker's for two, in runs of the same build minutes apart), so one
    pair of spans could pass or fail the two-worker target by that alone; each two-worker
    run is compared with the one-worker run just before it."""
    if ones:
        rates = [one.rate for one in ones]
        print(f"median       batched, one worker    : {statistics.median(rates):10,.0f} "
              f"events/s over {len(rates)} runs ({min(rates):,.0f} to {max(rates):,.0f}; "
              f"target >= 10,000)", flush=True)
    if ones and twos:
        ratios = [two.rate / one.rate for one, two in zip(ones, twos)]
        cores = [two.worker_cpu / two.seconds for two in twos]
        print(f"median       two workers / one      : {statistics.median(ratios):10.2f}x "
              f"over {len(ratios)} pairs ({', '.join(f'{r:.2f}x' for r in ratios)}; target "
              f">= 1.7x); the two workers got {', '.join(f'{c:.2f}' for c in cores)} "
              f"cores", flush=True)


def print_bounds(two: Span, one: Span | None) -> None:
    """What bounds the two-worker ratio in this run, said from measured figures only: the
    split of the events over the workers, and the cores the machine gave them."""
    cpus = os.cpu_count() or 1
    busiest = max(w.events for w in two.workers) / two.events
    print(f"bound        split of the events    : the busier worker processed "
          f"{100 * busiest:.0f} % of them (identities hashed over the partitions), so at "
          f"one worker's speed per event two make at most {1 / busiest:.2f}x one")
    busy = two.cores(two.machine_busy)
    waited = max(w.waiting for w in two.workers)
    idle = max(w.idle for w in two.workers)
    alone = (f"; one worker alone: {one.cores(one.worker_cpu):.2f} cores, main thread "
             f"waiting for a core {100 * one.workers[0].waiting:.0f} %, idle "
             f"{100 * one.workers[0].idle:.0f} %" if one else "")
    print(f"bound        cores                  : {cpus} cores, {busy:.2f} of them busy over "
          f"the span: the two workers {two.cores(two.worker_cpu):.2f}, broker "
          f"{'?' if two.broker_cpu is None else f'{two.cores(two.broker_cpu):.2f}'}, "
          f"other jobs {two.others():.2f}; the workers' main threads waited for a core up "
          f"to {100 * waited:.0f} % and were idle up to {100 * idle:.0f} % of the "
          f"span{alone}")
    said = []
    if waited >= 0.1:
        said.append(f"the workers waited for a core up to {100 * waited:.0f} % of the span, "
                    f"so this ratio measures what the {cpus} cores left them next to the "
                    f"broker and other jobs, not what a second worker adds")
    if idle >= 0.1:
        who = "they" if said else "the workers"
        said.append(f"{who} were idle up to {100 * idle:.0f} % of it, waiting for input, "
                    f"for the broker or for their own timers")
    verdict = "; ".join(said) or "neither: the workers were on a core nearly the whole span"
    print(f"bound        verdict                : {verdict}", flush=True)


# ---------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=6000, help="single-record messages")
    parser.add_argument("--events", type=int, default=200_000,
                        help="events of the batched backlog (one and two workers): long "
                             "enough that the fixed waits at its start and end (the first "
                             "ingest window, fetches) weigh little next to the work")
    parser.add_argument("--batch", type=int, default=500, help="records per batched message")
    parser.add_argument("--identities", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--turns", type=int, default=3,
                        help="one-worker and two-worker runs, taken in turn (the medians "
                             "are printed after them)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of the pipeline part (the best of each is printed)")
    parser.add_argument("--only", default=",".join(PARTS),
                        help=f"comma-separated parts to run, of {','.join(PARTS)}")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="profile every worker into DIR (streams.profiling); profiled "
                             "rates are slower and only good for the split of the cost")
    args = parser.parse_args()
    args.only = {part.strip() for part in args.only.split(",") if part.strip()}
    unknown = args.only - set(PARTS)
    if unknown:
        parser.error(f"--only: unknown parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    if args.profile is not None:
        global PROFILE_DIR  # noqa: PLW0603 - read by start_worker, set once here
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    broker = None
    args.broker_pid = None
    if args.only <= {"core", "pipeline"}:  # no Kafka needed
        run(args, "", workdir)
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        from broker import start_broker

        broker = start_broker(workdir / "kafka")
        # its CPU is measured next to the workers' when it is a process of ours
        args.broker_pid = broker.process.pid if broker.process is not None else None
    bootstrap = broker.bootstrap if broker else os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    print(f"broker {bootstrap} ({broker.kind if broker else 'environment'}), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, work dir {workdir}",
          flush=True)
    try:
        run(args, bootstrap, workdir)
    finally:
        if broker is not None:
            broker.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


PARTS = ("baselines", "single", "batched", "two", "core", "pipeline")


def run(args: argparse.Namespace, bootstrap: str, workdir: Path) -> None:
    tag = str(int(time.time()))
    records = make_records(args.events, args.identities)
    single = records[: args.single]
    avg = sum(map(len, single)) / len(single)
    print(f"records: {len(records):,} of {avg:,.0f} bytes on average, "
          f"{args.identities} identities", flush=True)

    noop = noop_cpu = None
    if "baselines" in args.only:
        topic = f"bench-single-{tag}"
        seconds = produce(bootstrap, topic, single)
        print(f"produce      aiokafka, single-record: {len(single) / seconds:10,.0f} "
              f"messages/s")
        bare = asyncio.run(bare_consumer(bootstrap, topic, len(single)))
        print(f"baseline     bare aiokafka consumer : {bare:10,.0f} messages/s")
        noop, noop_cpu = noop_faust_agent(bootstrap, topic, len(single), workdir)
        print(f"baseline     no-op Faust agent      : {noop:10,.0f} messages/s "
              f"({noop_cpu:,.0f} per CPU second)", flush=True)

    if args.only & {"single", "batched", "two"}:
        warm_broker(bootstrap, batched(records, args.batch), args.broker_pid, workdir)
    if "single" in args.only:
        span = measure_workers(bootstrap, f"bench-ws-{tag}", single, 1, 1, workdir,
                               args.broker_pid)
        share = (f" ({100 * span.rate / noop:.0f} % of the no-op agent; target >= 80 %)"
                 if noop else "")
        per_cpu = span.events / span.worker_cpu
        share_cpu = f" ({100 * per_cpu / noop_cpu:.0f} %)" if noop_cpu else ""
        print(f"worker x1    single-record messages : {span.rate:10,.0f} events/s{share}; "
              f"{per_cpu:,.0f} per CPU second{share_cpu}", flush=True)
        print_span(span)

    batches = batched(records, args.batch)
    ones: list[Span] = []
    twos: list[Span] = []
    for turn in range(args.turns if args.only & {"batched", "two"} else 0):
        one = None
        if "batched" in args.only:
            one = measure_workers(bootstrap, f"bench-wb1-{tag}-{turn}", batches, 4, 1,
                                  workdir, args.broker_pid)
            ones.append(one)
            print(f"worker x1    batched ({args.batch}/message)  : {one.rate:10,.0f} events/s "
                  f"(target >= 10,000); {one.events / one.worker_cpu:,.0f} per CPU second",
                  flush=True)
            print_span(one)
        if "two" in args.only:
            two = measure_workers(bootstrap, f"bench-wb2-{tag}-{turn}", batches, 4, 2,
                                  workdir, args.broker_pid)
            twos.append(two)
            ratio = f" ({two.rate / one.rate:.2f}x one worker; target >= 1.7x)" if one else ""
            per_cpu = two.events / two.worker_cpu
            share = (f" ({100 * per_cpu / (one.events / one.worker_cpu):.0f} % of one "
                     f"worker's)" if one else "")
            print(f"worker x2    batched, 4 partitions  : {two.rate:10,.0f} events/s{ratio}; "
                  f"{per_cpu:,.0f} per CPU second of both{share}", flush=True)
            print_span(two)
            print_bounds(two, one)
    if len(ones) > 1 or len(twos) > 1:
        print_turns(ones, twos)
    if "core" in args.only:
        core, core_cpu = detector_core_rate(records[: min(len(records), 20000)])
        print(f"reference    detector core alone    : {core:10,.0f} events/s "
              f"(parse + Detector.process in one process, no Kafka); {core_cpu:,.0f} per "
              f"CPU second", flush=True)
    if "pipeline" in args.only:
        sample = records[: min(len(records), 20000)]
        for size, label in ((args.batch, f"batched ({args.batch}/message)"),
                            (1, "single-record        ")):
            # the core is measured on batched messages each time: one record per
            # parse_payload call would add the parser's set-up, which the worker keeps
            # best of --repeat, the three interleaved: CPU rates on a shared machine still
            # move by a tenth from one run to the next
            runs = [pipeline_rates(sample, size, core_batch=args.batch)
                    for _ in range(args.repeat)]
            core_cpu, each_cpu, held_cpu = (max(run[i] for run in runs) for i in range(3))
            print(f"reference    worker pipeline, {label}: {held_cpu:10,.0f} events per CPU "
                  f"second (split + apply on a dict table, no Kafka; writes per message "
                  f"{each_cpu:,.0f}; the core alone {core_cpu:,.0f}, so the pipeline adds "
                  f"{1e6 / held_cpu - 1e6 / core_cpu:.1f} us per event, "
                  f"{1e6 / each_cpu - 1e6 / core_cpu:.1f} with writes per message)",
                  flush=True)


def pipeline_rates(records: list[bytes], per_message: int, core_batch: int = 500,
                   window: int = 5000) -> tuple[float, float, float]:
    """Events per CPU second over the same records in one process of: the core, parse
    (``core_batch`` records per call) + ``Detector.process``; the pipeline writing each
    changed identity after every repartition message; the pipeline writing it once per
    window (the worker writes them before each offset commit). The pipeline is the
    worker's two steps without Kafka and Faust: ``Pipeline.split_many`` over ingest
    windows of ``window`` raw messages (``--ingest-max-messages``: what a window holds
    when the worker works through a backlog, as in the Kafka runs), ``Pipeline.apply`` of
    every repartition message
    against a dict standing in for the table, the inventory flushed every ten windows.
    The difference from the core is what the worker's own code costs per event."""
    from detector.engine import Detector
    from detector.sources import ListDeadLetters, parse_payload
    from detector.stats import RunStats

    stats = RunStats()
    detector = Detector({}, stats=stats)
    started = time.process_time()
    count = 0
    for payload in batched(records, core_batch):
        for event in parse_payload(payload, origin="b", stats=stats,
                                   dead_letters=ListDeadLetters()):
            detector.process(event)
            count += 1
    core = count / (time.process_time() - started)
    messages = batched(records, per_message)
    return (core, _pipeline_rate(messages, window, hold=False),
            _pipeline_rate(messages, window, hold=True))


def _pipeline_rate(messages: list[bytes], window: int, hold: bool) -> float:
    from detector.engine import Detector
    from detector.stats import RunStats
    from streams.pipeline import Pipeline

    stats = RunStats()
    pipeline = Pipeline(Detector({}, stats=stats), stats, partitions=4,
                        topic_sources={"raw": None})
    table: dict[str, bytes] = {}
    offsets = [0] * 4
    started = time.process_time()
    count = 0
    for number, first in enumerate(range(0, len(messages), window)):
        raw = [(data, "raw", 0, first + i)
               for i, data in enumerate(messages[first:first + window])]
        for record in pipeline.split_many(raw).records:
            out = pipeline.apply(record.value, topic="repartition", partition=record.partition,
                                 offset=offsets[record.partition], get_state=table.get,
                                 write=not hold)
            offsets[record.partition] += 1
            table.update(out.writes)
            count += out.events
        for partition in range(4):
            table.update(pipeline.pending_writes(partition))
        if number % 10 == 9:
            pipeline.flush_inventory()
    pipeline.flush_inventory()
    return count / (time.process_time() - started)


def detector_core_rate(records: list[bytes]) -> tuple[float, float]:
    """(events/s, events per CPU second) of parse_payload + Detector.process alone, the
    ceiling for one worker."""
    from detector.engine import Detector
    from detector.sources import ListDeadLetters, parse_payload
    from detector.stats import RunStats

    stats = RunStats()
    detector = Detector({}, stats=stats)
    detector.process(parse_payload(records[0], origin="warm", stats=stats,
                                   dead_letters=ListDeadLetters())[0])
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    for payload in batched(records[1:], 500):
        for event in parse_payload(payload, origin="b", stats=stats,
                                   dead_letters=ListDeadLetters()):
            detector.process(event)
            count += 1
    return count / (time.perf_counter() - started), count / (time.process_time() - cpu)


if __name__ == "__main__":
    raise SystemExit(main())
