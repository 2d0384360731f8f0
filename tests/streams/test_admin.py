"""Startup checks without a broker: backoff, changelog vetting (B16), unreachable broker."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from detector.errors import ConfigError
from streams.admin import (
    COMPACTION_LAG_MS,
    StartupError,
    changelog_problems,
    check_changelog,
    retry,
    short_compaction_lag,
)
from streams.settings import load_settings


class FakeAdmin:
    def __init__(self, configs: dict[str, dict[str, str]]) -> None:
        self.configs = configs

    def list_topics(self) -> list[str]:
        return list(self.configs)

    def describe_configs(self, resources) -> dict:
        name = resources[0].name
        return {"topic": {name: {k: {"value": v} for k, v in self.configs[name].items()}}}


def settings(**extra):
    return load_settings(argparse.Namespace(**extra), {}, {})


class FakeClock:
    """Time that moves only when the retry loop sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def test_retry__backs_off_then_gives_up_with_the_reason() -> None:
    clock = FakeClock()

    def failing():
        raise OSError("connection refused")

    with pytest.raises(StartupError, match="still failing after 20s: OSError: connection ref"):
        retry("broker", failing, timeout=20, sleep=clock.sleep, clock=clock)
    # the whole budget is used: the last pause is cut to what is left, then one more try
    assert clock.waits == [1.0, 2.0, 4.0, 8.0, 5.0]


def test_retry__a_budget_below_the_first_pause_still_waits_it_out() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def failing():
        calls.append(clock.now)
        raise OSError("connection refused")

    with pytest.raises(StartupError):
        retry("broker", failing, timeout=0.5, sleep=clock.sleep, clock=clock)
    assert clock.waits == [0.5]
    assert calls == [100.0, 100.5]  # the second try comes when the budget is spent


def test_wait_for_raw_topics__one_line_per_look_each_heard_by_the_worker(caplog,
                                                                         monkeypatch) -> None:
    import time

    from streams.admin import prepare_topics

    monkeypatch.setattr(time, "sleep", lambda _: None)
    s = settings(raw_topics="audit-raw", partitions=4)
    admin = PartitionedAdmin(s.repartition_topic, 4)
    admin.configs[s.repartition_topic] = {"cleanup.policy": "compact"}
    heard: list[list[str]] = []

    def on_missing(missing: list[str]) -> None:
        heard.append(missing)

    real = admin.list_topics  # the topic is created after the worker's second look
    admin.list_topics = lambda: real() + (["audit-raw"] if len(heard) >= 2 else [])
    with caplog.at_level("INFO", logger="streams.admin"):
        prepare_topics(s, admin, on_missing)
    assert heard == [["audit-raw"], ["audit-raw"], []]
    waiting = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert waiting == [
        f"raw topics ['audit-raw']: raw topic(s) audit-raw do not exist on "
        f"{s.bootstrap_servers} (create them, or pass --create-topics); retrying in {d}"
        for d in ("1s", "2s")]


def test_retry__returns_the_first_value() -> None:
    answers = iter([None, None, "ok"])
    assert retry("topics", lambda: next(answers), timeout=0, sleep=lambda _: None) == "ok"


@pytest.mark.parametrize("configs, bad", [
    ({"cleanup.policy": "compact"}, False),
    ({}, False),
    ({"cleanup.policy": "compact,delete", "retention.ms": "3600000"}, True),
    ({"cleanup.policy": "delete"}, True),
])
def test_changelog_problems__only_compact_is_safe(configs, bad) -> None:
    assert bool(changelog_problems(configs)) is bad


@pytest.mark.parametrize("configs, short", [
    ({"cleanup.policy": "compact"}, True),  # the broker's default lag: 0
    ({"min.compaction.lag.ms": "0"}, True),
    ({"min.compaction.lag.ms": str(COMPACTION_LAG_MS - 1)}, True),
    ({"min.compaction.lag.ms": "five minutes"}, True),
    ({"min.compaction.lag.ms": str(COMPACTION_LAG_MS)}, False),
    ({"min.compaction.lag.ms": "3600000"}, False),
])
def test_short_compaction_lag(configs, short) -> None:
    assert short_compaction_lag(configs) is short


def test_check_changelog__warns_of_a_short_compaction_lag_and_starts(caplog) -> None:
    s = settings()
    admin = FakeAdmin({s.changelog_topic: {"cleanup.policy": "compact",
                                           "min.compaction.lag.ms": "1000"}})
    check_changelog(s, admin)
    assert f"topic {s.changelog_topic} has min.compaction.lag.ms=1000" in caplog.text
    assert (f"--entity-name {s.changelog_topic} --add-config "
            f"min.compaction.lag.ms={COMPACTION_LAG_MS}") in caplog.text
    caplog.clear()
    admin.configs[s.changelog_topic]["min.compaction.lag.ms"] = str(COMPACTION_LAG_MS)
    check_changelog(s, admin)
    assert "min.compaction.lag.ms" not in caplog.text


def test_check_changelog__refuses_delete_retention() -> None:
    s = settings()
    admin = FakeAdmin({s.changelog_topic: {"cleanup.policy": "compact,delete"}})
    with pytest.raises(ConfigError, match="cleanup.policy=compact,delete .must be compact"):
        check_changelog(s, admin)


def test_check_changelog__warns_when_allowed(caplog) -> None:
    s = settings(allow_changelog_retention=True)
    admin = FakeAdmin({s.changelog_topic: {"cleanup.policy": "delete"}})
    check_changelog(s, admin)
    assert "starting anyway" in caplog.text


class PartitionedAdmin(FakeAdmin):
    """A cluster whose repartition topic has ``count`` partitions; records what it creates."""

    def __init__(self, repartition: str, count: int) -> None:
        super().__init__({repartition: {"cleanup.policy": "delete"}})
        self.count = count
        self.created: list[str] = []

    def describe_topics(self, names: list[str]) -> list[dict]:
        return [{"topic": name, "partitions": [{"partition": n} for n in range(self.count)]}
                for name in names]

    def create_topics(self, topics) -> None:
        self.created.extend(topic.name for topic in topics)
        self.configs.update({topic.name: {} for topic in topics})


def test_prepare_topics__partition_mismatch_creates_nothing() -> None:
    from streams.admin import prepare_topics

    s = settings(create_topics=True, raw_topics="audit-raw", partitions=8)
    admin = PartitionedAdmin(s.repartition_topic, 4)
    with pytest.raises(ConfigError, match="has 4 partitions but partitions=8"):
        prepare_topics(s, admin)
    assert admin.created == []


def test_prepare_topics__creates_the_raw_topic_once_the_checks_pass() -> None:
    from streams.admin import prepare_topics

    s = settings(create_topics=True, raw_topics="audit-raw", partitions=4)
    admin = PartitionedAdmin(s.repartition_topic, 4)
    admin.configs[s.repartition_topic] = {"cleanup.policy": "compact"}
    prepare_topics(s, admin)
    assert "audit-raw" in admin.created


def test_worker__unreachable_broker_exits_3_without_a_crash_loop(tmp_path) -> None:
    import socket

    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "detector.cli", "worker", "--bootstrap-servers",
           f"127.0.0.1:{port}", "--startup-timeout", "2", "--io-timeout", "2",
           "--state-dir", str(tmp_path),
           "--web-port", "0"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert f"cannot reach Kafka at 127.0.0.1:{port}" in done.stderr


def test_worker__startup_timeout_bounds_a_longer_io_timeout(tmp_path) -> None:
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "detector.cli", "worker", "--bootstrap-servers",
           f"127.0.0.1:{port}", "--startup-timeout", "3", "--io-timeout", "30",
           "--state-dir", str(tmp_path), "--web-port", "0"]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 3
    assert elapsed < 20, f"gave up after {elapsed:.0f}s, budget was 3s (+ start-up)"
    noise = [line for line in done.stderr.splitlines() if " kafka." in line]
    assert noise == [], "the client library's own connection errors leak: " + noise[0]


def test_worker__busy_health_port_is_a_clear_error(tmp_path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [sys.executable, "-m", "detector.cli", "worker", "--web-port", str(port),
               "--state-dir", str(tmp_path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"cannot serve health on 127.0.0.1:{port}" in done.stderr


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_worker__stop_signal_while_waiting_for_the_broker_is_a_clean_stop(tmp_path,
                                                                          signame) -> None:
    import signal
    import socket
    import time

    with socket.socket() as sock:  # a loopback port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "detector.cli", "worker", "--bootstrap-servers",
           f"127.0.0.1:{port}", "--state-dir", str(tmp_path), "--web-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first: list[str] = []
    deadline = time.monotonic() + 60
    for line in proc.stderr:  # the first refused attempt is said at once, not after 30 s
        if "retrying in" in line:
            first.append(line)
            break
        assert time.monotonic() < deadline
    proc.send_signal(getattr(signal, signame))
    _, rest = proc.communicate(timeout=60)
    assert f"no broker accepts a connection (127.0.0.1:{port}: Connection refused)" in first[0]
    assert proc.returncode == 0
    assert (f"stopping ({signame}) while starting (connecting to 127.0.0.1:{port}): nothing "
            f"was read or committed yet") in rest
    assert rest.rstrip().endswith("stopped (exit 0; no offsets committed)")
    assert "Traceback" not in rest
