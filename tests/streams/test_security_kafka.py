"""The worker and ``produce`` on a broker that wants SASL or TLS (Apache Kafka, real process).

``start_secure_broker`` (tools/kafka/broker.py) opens SASL_PLAINTEXT, SSL, SASL_SSL and a
mutual-TLS listener next to PLAINTEXT, with a throwaway CA made at fixture time. The test
helpers create topics and read results over PLAINTEXT; the worker and ``produce`` use only
the secure listener under test. A broker given by ``KAFKA_BOOTSTRAP_SERVERS`` cannot be
given users and listeners, so these tests skip there (and only there, under
``NHI_REQUIRE_KAFKA=1``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.streams import scenario
from tests.streams.conftest import apache_kafka_only, started_or_skip
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

pytestmark = pytest.mark.kafka

USER, PASSWORD = "nhi-worker", "worker-pass-7f3a"
WRONG_PASSWORD = "not-the-pass-91c2"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory):
    apache_kafka_only("cannot be given SASL users and TLS listeners")
    workdir = tmp_path_factory.mktemp("kafka-secure")
    broker = started_or_skip("the secure broker did not start",
                             lambda helper: helper.start_secure_broker(workdir,
                                                                       users={USER: PASSWORD}))
    try:
        yield broker
    finally:
        broker.stop()


def security_flags(broker, listener: str, mechanism: str | None = None,
                   client_cert: bool = False) -> list[str]:
    """The worker/produce flags for one of the broker's secure listeners."""
    protocol = "SSL" if listener == "MTLS" else listener
    flags = ["--security-protocol", protocol]
    if mechanism is not None:
        flags += ["--sasl-mechanism", mechanism, "--sasl-username", USER]
    if protocol.endswith("SSL"):
        flags += ["--ssl-cafile", str(broker.tls.ca)]
    if client_cert:
        flags += ["--ssl-certfile", str(broker.tls.client_cert),
                  "--ssl-keyfile", str(broker.tls.client_key)]
    return flags


def worker_on(broker, listener: str, app_id: str, tmp: Path, *extra: str) -> list[str]:
    return worker_args(broker.listeners[listener], app_id, tmp / "state", free_port(), *extra)


@pytest.mark.parametrize(("listener", "mechanism", "client_cert"), [
    ("SASL_PLAINTEXT", "PLAIN", False),
    ("SASL_SSL", "SCRAM-SHA-512", False),
    ("MTLS", None, True),
], ids=["sasl-plain", "sasl-ssl-scram-512", "mutual-tls"])
def test_worker_with_the_right_credentials_detects_the_attack(
        secure_broker, story: scenario.Scenario, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, listener: str, mechanism: str | None,
        client_cert: bool) -> None:
    plain = secure_broker.bootstrap
    app_id = f"sec-{listener.lower().replace('_', '-')}"
    create_topic(plain, f"{app_id}.raw")
    payloads = framed_batches(story.records)
    produce(plain, f"{app_id}.raw", payloads)
    # the password comes from the environment, as docs/worker.md advises
    monkeypatch.setenv("NHI_SASL_PASSWORD", PASSWORD)
    flags = security_flags(secure_broker, listener, mechanism, client_cert)
    worker = start_worker(worker_on(secure_broker, listener, app_id, tmp_path, *flags),
                          tmp_path / "worker.log")
    try:
        worker.wait_ready()
        accounted = accounted_ids(plain, app_id, set(story.event_ids), timeout=180)
        alerts = json_values(read_topic(plain, f"{app_id}.alerts", timeout=5))
    finally:
        code = worker.stop(signal.SIGTERM, timeout=90)
    log_text = worker.log_path.read_text(encoding="utf-8", errors="replace")
    assert code == 0, worker.log_tail()
    assert set(story.event_ids) <= accounted, worker.log_tail()
    victim = scenario.role_arn(scenario.VICTIM)
    assert {a["identity"]["key"] for a in alerts} == {victim}
    expected = "SSL" if listener == "MTLS" else listener
    assert f"'security_protocol': '{expected}'" in log_text
    assert PASSWORD not in log_text


def test_worker_with_a_wrong_password_names_authentication_and_backs_off(
        secure_broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented behaviour (docs/worker.md, streams/admin.py): retry with backoff and
    one log line per attempt, health answering meanwhile (live, not ready), then exit 3
    after ``--startup-timeout``. A crash loop or an anonymous "cannot bootstrap" is not."""
    app_id = "sec-wrong-password"
    create_topic(secure_broker.bootstrap, f"{app_id}.raw")
    monkeypatch.setenv("NHI_SASL_PASSWORD", WRONG_PASSWORD)
    args = worker_on(secure_broker, "SASL_PLAINTEXT", app_id, tmp_path,
                     *security_flags(secure_broker, "SASL_PLAINTEXT", "SCRAM-SHA-256"),
                     "--io-timeout", "4")
    args[args.index("--startup-timeout") + 1] = "30"
    worker = start_worker(args, tmp_path / "worker.log")
    probes = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and worker.process.poll() is None:
        try:
            probes.append((worker.get("/livez"), worker.get("/readyz")))
        except OSError:
            pass  # the endpoint is not up in the first half second
        time.sleep(0.5)
    code = worker.exit_code(timeout=60)
    log_text = worker.log_path.read_text(encoding="utf-8", errors="replace")
    assert code == 3, worker.log_tail()
    # one line per attempt (4 s each), backing off 1 s, 2 s, 4 s (then what is left), naming
    # the login that failed; the broker answers some logins with "failed authentication" and
    # closes others without a word (both are rejections, streams/admin.py says which it
    # saw). On a busy machine one attempt may run out of time before any login finished,
    # hence "3 of 4".
    attempts = [line for line in log_text.splitlines()
                if " ERROR streams." in line and "cannot reach Kafka at" in line]
    delays = [int(d) for line in attempts for d in re.findall(r"; retrying in (\d+)s$", line)]
    # the last pause is cut to what is left of the 30 s (the whole budget is used), so a
    # fourth one, when the attempts left room for it, is shorter than the doubled 8 s
    assert delays[:3] == [1, 2, 4] and all(d < 8 for d in delays[3:]), worker.log_tail()
    assert len(attempts) in (4, 5) and "still failing after" in attempts[-1]
    login = "SASL user 'nhi-worker', SCRAM-SHA-256 over SASL_PLAINTEXT"
    named = [line for line in attempts if login in line and "authentication fail" in line]
    assert len(named) >= 3, "\n".join(attempts)
    assert "Traceback" not in log_text
    assert WRONG_PASSWORD not in log_text
    # while it retried, the pod was live (no restart loop) and not ready, saying why (the
    # first probes of a busy machine may still see the phase before "connecting")
    assert len(probes) >= 5
    for (live_code, _), (ready_code, ready) in probes:
        assert live_code == 200
        assert ready_code == 503 and ready["phase"] in ("starting", "connecting")
    assert probes[-1][1][1]["phase"] == "connecting"


def run_produce(path: Path, topic: str, bootstrap: str, *flags: str,
                password: str = PASSWORD) -> subprocess.CompletedProcess:
    env = {**os.environ, "NHI_SASL_PASSWORD": password}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    return subprocess.run(
        [sys.executable, "-m", "detector.cli", "produce", str(path), "--topic", topic,
         "--bootstrap-servers", bootstrap, "--batch-records", "10", "--no-progress", *flags],
        capture_output=True, text=True, timeout=180, env=env)


@pytest.mark.parametrize(("listener", "mechanism"), [
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SSL", None),
], ids=["sasl-scram-256", "tls"])
def test_produce_sends_over_a_secure_listener(secure_broker, story: scenario.Scenario,
                                              tmp_path: Path, listener: str,
                                              mechanism: str | None) -> None:
    records = story.records[:35]
    (tmp_path / "trail.json").write_bytes(orjson.dumps({"Records": records}))
    topic = f"sec-produce-{listener.lower()}"
    done = run_produce(tmp_path / "trail.json", topic, secure_broker.listeners[listener],
                       *security_flags(secure_broker, listener, mechanism))
    assert done.returncode == 0, done.stderr
    assert "sent 35 records in 4 messages" in done.stderr
    messages = read_topic(secure_broker.bootstrap, topic, until=lambda m: len(m) >= 4,
                          timeout=30)
    lines = [line for m in messages for line in m.value.splitlines() if line]
    assert sorted(orjson.loads(line)["eventID"] for line in lines) == sorted(
        r["eventID"] for r in records)


def test_produce_with_a_wrong_password_says_authentication_failed(
        secure_broker, story: scenario.Scenario, tmp_path: Path) -> None:
    (tmp_path / "trail.json").write_bytes(orjson.dumps({"Records": story.records[:5]}))
    done = run_produce(tmp_path / "trail.json", "sec-produce-refused",
                       secure_broker.listeners["SASL_PLAINTEXT"],
                       *security_flags(secure_broker, "SASL_PLAINTEXT", "PLAIN"),
                       password=WRONG_PASSWORD)
    assert done.returncode == 3
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("nhi-detector produce: cannot reach Kafka at "
                           f"{secure_broker.listeners['SASL_PLAINTEXT']}: "), last
    assert f"(SASL user '{USER}', PLAIN over SASL_PLAINTEXT)" in last
    assert "authentication fail" in last
    assert WRONG_PASSWORD not in done.stderr


def test_produce_without_a_user_for_sasl_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "empty.json").write_bytes(b"[]")
    done = run_produce(tmp_path / "empty.json", "unused", "127.0.0.1:9",
                       "--security-protocol", "SASL_PLAINTEXT")
    assert done.returncode == 2
    assert "--security-protocol SASL_PLAINTEXT needs --sasl-username" in done.stderr


def test_mutual_tls_listener_refuses_a_client_without_a_certificate(secure_broker) -> None:
    """Without this, the mutual-TLS worker test above would also pass if the worker never
    presented its certificate."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaTimeoutError

    create_topic(secure_broker.bootstrap, "sec-mtls-probe")
    options = {"bootstrap_servers": secure_broker.listeners["MTLS"], "security_protocol": "SSL",
               "ssl_cafile": str(secure_broker.tls.ca), "bootstrap_timeout_ms": 4000}
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(**options).close()
    admin = KafkaAdminClient(**options, ssl_certfile=str(secure_broker.tls.client_cert),
                             ssl_keyfile=str(secure_broker.tls.client_key))
    try:
        assert "sec-mtls-probe" in admin.list_topics()
    finally:
        admin.close()
