"""Bad worker and produce settings: one line naming the setting and the value, exit 2, and
nothing connects (the commands' connecting steps are replaced by a failing stand-in, so a
value that slipped through fails the test instead of reaching a broker)."""

from __future__ import annotations

import uuid

import orjson
import pytest

from detector.cli import main

WORKER = "nhi-detector worker: "
PRODUCE = "nhi-detector produce: "
SOURCES = ("['aws', 'aws.cloudtrail', 'azure', 'azure.activity', 'azure.signin', "
           "'cloudtrail', 'gcp', 'gcp.audit', 'k8s', 'k8s.audit', 'kubernetes']")
NAME_RULE = "characters of A-Z a-z 0-9 . _ - (not . or ..)"
# a non-UTF-8 byte on the command line or in the environment reaches Python as this escape
NOT_UTF8 = "a\udcff"


def connecting_fails(*args, **kwargs):
    raise AssertionError("a bad setting was accepted: the command went on to connect")


@pytest.fixture
def worker(tmp_path, monkeypatch):
    """Runs ``nhi-detector worker`` with valid base flags plus the given ones; returns
    (exit code, stderr)."""
    from streams import worker as worker_module

    for name in ("NHI_CONFIG", "NHI_WEB_PORT", "NHI_INGEST_WINDOW", "NHI_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(worker_module, "_run", connecting_fails)
    base = ["worker", "--bootstrap-servers", "127.0.0.1:9092", "--raw-topics", "raw",
            "--state-dir", str(tmp_path / "state")]

    def run(*flags: str, capsys) -> tuple[int, str]:
        code = main(base + list(flags))
        return code, capsys.readouterr().err

    return run


WORKER_FLAGS = [
    (("--replication-factor", "0"), "--replication-factor: must be in 1..32767, not 0"),
    (("--web-port", "70000"), "--web-port: must be in 0..65535, not 70000"),
    (("--web-port", "-1"), "--web-port: must be in 0..65535, not -1"),
    (("--session-timeout", "nan"), "--session-timeout: must be in 1..1800 seconds, not nan"),
    (("--commit-interval", "-5"), "--commit-interval: must be in 0.1..3600 seconds, not -5.0"),
    (("--commit-interval", "0"), "--commit-interval: must be in 0.1..3600 seconds, not 0.0"),
    (("--ingest-window", "nan"),
     "--ingest-window: must be more than 0 and at most 60 seconds, not nan"),
    (("--ingest-window", "inf"),
     "--ingest-window: must be more than 0 and at most 60 seconds, not inf"),
    (("--ingest-window", "0"),
     "--ingest-window: must be more than 0 and at most 60 seconds, not 0.0"),
    (("--io-timeout=-inf",),
     "--io-timeout: must be more than 0 and at most 3600 seconds, not -inf"),
    (("--startup-timeout", "nan"),
     "--startup-timeout: must be in 0..86400 seconds, not nan"),
    (("--partitions", "0"), "--partitions: must be in 1..10000, not 0"),
    (("--max-poll-records", "0"), "--max-poll-records: must be in 1..10000, not 0"),
    (("--raw-topics", "a:nosuchsource"),
     f"--raw-topics: 'a:nosuchsource' pins an unknown source 'nosuchsource'; known: {SOURCES}"),
    (("--raw-topics", "a b"),
     f"--raw-topics: 'a b' is not a valid Kafka topic name: 1 to 249 {NAME_RULE}"),
    (("--alerts-topic", "alerts/x"),
     f"--alerts-topic: 'alerts/x' is not a valid Kafka topic name: 1 to 249 {NAME_RULE}"),
    (("--app-id", NOT_UTF8), "--app-id: b'a\\xff' is not valid UTF-8 text"),
    (("--app-id", "a" * 225),
     f"--app-id: '{'a' * 225}' is not a valid app id (it prefixes topic names): 1 to 224 "
     f"{NAME_RULE}"),
    (("--worker-id", ".."),
     f"--worker-id: '..' is not a valid worker id (it names a directory): 1 to 255 "
     f"{NAME_RULE}"),
    (("--bootstrap-servers", "localhost"),
     "--bootstrap-servers: 'localhost' is not host:port with a port in 1..65535"),
    (("--bootstrap-servers", "a:1,b:99999"),
     "--bootstrap-servers: 'b:99999' is not host:port with a port in 1..65535"),
]


@pytest.mark.parametrize("flags, line", WORKER_FLAGS, ids=[" ".join(f)[:40] for f, _ in
                                                          WORKER_FLAGS])
def test_worker__bad_flag_is_one_line_and_exit_2(worker, capsys, flags, line) -> None:
    assert worker(*flags, capsys=capsys) == (2, WORKER + line + "\n")


def test_worker__state_dir_under_a_file_is_refused(worker, capsys, tmp_path) -> None:
    (tmp_path / "afile").write_text("not a directory")
    state = tmp_path / "afile" / "x"
    assert worker("--state-dir", str(state), capsys=capsys) == (
        2, f"{WORKER}--state-dir: '{state}' cannot be a directory: "
           f"'{tmp_path / 'afile'}' is not a directory\n")


def test_worker__missing_warm_start_file_is_refused(worker, capsys, tmp_path) -> None:
    missing = tmp_path / "nope.snap"
    assert worker("--load-state", str(missing), capsys=capsys) == (
        2, f"{WORKER}--load-state: '{missing}' is not a readable file\n")


@pytest.mark.parametrize("name, value, line", [
    ("NHI_WEB_PORT", "70000", "NHI_WEB_PORT: must be in 0..65535, not 70000"),
    ("NHI_WEB_PORT", "abc",
     "NHI_WEB_PORT: invalid value 'abc' for web_port: expected a whole number"),
    ("NHI_INGEST_WINDOW", "nan",
     "NHI_INGEST_WINDOW: must be more than 0 and at most 60 seconds, not nan"),
    ("NHI_APP_ID", NOT_UTF8, "NHI_APP_ID: b'a\\xff' is not valid UTF-8 text"),
])
def test_worker__bad_environment_value_is_one_line_and_exit_2(worker, capsys, monkeypatch,
                                                              name, value, line) -> None:
    monkeypatch.setenv(name, value)
    assert worker(capsys=capsys) == (2, WORKER + line + "\n")


@pytest.mark.parametrize("section, line", [
    ("commit_interval: -5", "worker.commit_interval: must be in 0.1..3600 seconds, not -5.0"),
    ("session_timeout: .nan", "worker.session_timeout: must be in 1..1800 seconds, not nan"),
    ("partitions: 2.5",
     "worker.partitions: invalid value 2.5 for partitions: not a whole number"),
    ("web_port: true",
     "worker.web_port: expected a whole number, got the boolean True (YAML reads an unquoted "
     "yes, no, on, off, true or false as a boolean)"),
    ("sasl_username: 0123",
     "worker.sasl_username: expected text, got the number 123 (YAML reads unquoted digits "
     "as a number, so a leading 0 is lost: 0123 is 123); write it in quotes "
     "(sasl_username: \"...\")"),
    ("sasl_password: [nhi-local-secret, 1]",
     "worker.sasl_password: expected text, got a list (value hidden)"),
    ("raw_topics: [a, 'b:nosuchsource']",
     f"worker.raw_topics: 'b:nosuchsource' pins an unknown source 'nosuchsource'; "
     f"known: {SOURCES}"),
])
def test_worker__bad_config_file_value_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys,
                                                              section, line) -> None:
    from streams import worker as worker_module

    monkeypatch.setattr(worker_module, "_run", connecting_fails)
    monkeypatch.delenv("NHI_CONFIG", raising=False)
    config = tmp_path / "config.yaml"
    config.write_text(f"worker:\n  {section}\n")
    code = main(["worker", "--config", str(config), "--state-dir", str(tmp_path / "state")])
    assert (code, capsys.readouterr().err) == (2, WORKER + line + "\n")


@pytest.fixture
def produce(tmp_path, monkeypatch):
    from streams import produce as produce_module

    monkeypatch.setattr(produce_module, "make_producer", connecting_fails)
    for name in produce_module.SECURITY_SETTINGS:
        monkeypatch.delenv("NHI_" + name.upper(), raising=False)
    path = tmp_path / "a.jsonl"
    path.write_bytes(orjson.dumps({"eventName": "GetObject"}) + b"\n")

    def run(*flags: str, capsys) -> tuple[int, str]:
        code = main(["produce", str(path), "--topic", "raw", "--no-progress",
                     "--bootstrap-servers", "127.0.0.1:9092", *flags])
        return code, capsys.readouterr().err

    return run


PRODUCE_FLAGS = [
    (("--rate", "-1"), "--rate: must be in 0..1000000000 records per second, not -1.0"),
    (("--rate", "nan"), "--rate: must be in 0..1000000000 records per second, not nan"),
    (("--rate", "inf"), "--rate: must be in 0..1000000000 records per second, not inf"),
    (("--max-message-bytes", "0"),
     "--max-message-bytes: must be in 1024..67108864 bytes, not 0"),
    (("--batch-records", "0"), "--batch-records: must be in 1..100000, not 0"),
    (("--key", "\udcff"), "--key: b'\\xff' is not valid UTF-8 text"),
    (("--topic", "a:b"),
     f"--topic: 'a:b' is not a valid Kafka topic name: 1 to 249 {NAME_RULE}"),
    (("--security-protocol", "SSL", "--ssl-cafile", "/nonexistent/ca.pem"),
     "--ssl-cafile: '/nonexistent/ca.pem' is not a readable file"),
]


@pytest.mark.parametrize("flags, line", PRODUCE_FLAGS, ids=[" ".join(f)[:40] for f, _ in
                                                            PRODUCE_FLAGS])
def test_produce__bad_flag_is_one_line_and_exit_2(produce, capsys, flags, line) -> None:
    assert produce(*flags, capsys=capsys) == (2, PRODUCE + line + "\n")


def test_produce__bad_environment_value_is_one_line_and_exit_2(produce, capsys,
                                                               monkeypatch) -> None:
    # the environment only supplies the flag's default, which argparse never checks
    monkeypatch.setenv("NHI_SECURITY_PROTOCOL", "bogus")
    assert produce(capsys=capsys) == (
        2, f"{PRODUCE}NHI_SECURITY_PROTOCOL: security_protocol='bogus' is not one of "
           f"('PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL')\n")


def test_produce__an_oversized_record_is_named_and_the_rest_is_read(tmp_path) -> None:
    from streams.produce import read_records

    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"a":1}\n\n{"x":"' + b"a" * 3000 + b'"}\n{"b":2}\n')
    errors: list[str] = []
    assert list(read_records([str(path)], errors, max_bytes=1024)) == [b'{"a":1}', b'{"b":2}']
    assert errors == [f"{path} line 3: record of 3,008 bytes is over --max-message-bytes "
                      f"1024: not sent"]


def test_produce__an_oversized_record_in_a_document_is_named_by_position(tmp_path) -> None:
    from streams.produce import read_records

    path = tmp_path / "ct.json"
    big = {"eventName": "x" * 2000}
    path.write_bytes(orjson.dumps({"Records": [{"eventName": "a"}, big]}))
    errors: list[str] = []
    assert list(read_records([str(path)], errors, max_bytes=1024)) == [
        b'{"eventName":"a"}']
    assert errors == [f"{path} record 2: record of 2,016 bytes is over --max-message-bytes "
                      f"1024: not sent"]


@pytest.mark.kafka
def test_produce__a_50_mb_record_is_skipped_and_the_run_goes_on(kafka_bootstrap, tmp_path,
                                                                capsys) -> None:
    from tests.streams.kafka_helpers import create_topic, read_topic

    topic = f"flags-oversized-{uuid.uuid4().hex[:8]}"  # new on a reused broker too
    create_topic(kafka_bootstrap, topic)
    path = tmp_path / "big.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"a":1}\n{"x":"')
        handle.write(b"a" * (50 << 20))
        handle.write(b'"}\n{"b":2}\n')
    code = main(["produce", str(path), "--topic", topic, "--no-progress",
                 "--bootstrap-servers", kafka_bootstrap])
    err = capsys.readouterr().err
    assert code == 1
    lines = err.splitlines()
    assert len(lines) == 2 and lines[0].startswith("sent 2 records in 1 messages, ")
    assert lines[1:] == [
        f"{PRODUCE}skipped {path} line 2: record of {(50 << 20) + 8:,} bytes is over "
        f"--max-message-bytes 900000: not sent"]
    values = [m.value for m in read_topic(kafka_bootstrap, topic,
                                          until=lambda m: len(m) >= 1, timeout=30)]
    assert values == [b'{"a":1}\n{"b":2}\n']



class OneBrokerAdmin:
    """Answers topic creation the way a one-broker cluster does for replication factor 3."""

    def create_topics(self, topics) -> None:
        from kafka.errors import InvalidReplicationFactorError

        raise InvalidReplicationFactorError("Unable to replicate the partition 3 time(s)")

    def describe_cluster(self) -> dict:
        return {"brokers": [{"broker_id": 1}]}


def test_worker__replication_beyond_the_brokers_is_a_config_error() -> None:
    from detector.errors import ConfigError
    from streams.admin import _create

    with pytest.raises(ConfigError) as caught:
        _create(OneBrokerAdmin(), ["raw"], 8, 3)
    assert str(caught.value) == ("replication_factor: 3 is more than the 1 broker(s) of the "
                                 "cluster: topic raw cannot be created")


@pytest.fixture
def log_levels_kept():
    """The worker's start raises its lifecycle loggers to INFO (``streams.logs.install``);
    put them back, so that later tests see the levels they set themselves."""
    import logging

    from streams import logs

    names = (*logs.LIFECYCLE_LOGGERS, logs.COORDINATOR_LOGGER, logs.CLIENT_INFO_LOGGER)
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize("content, reason", [
    (b"NHISNAP\x00\x00\x00\x00\x00\x00\x10" + b"x" * 80,
     "snapshot format version 0 is not supported by this build"),
    (b"Records: not a snapshot at all", "not an nhi-detector state snapshot (bad magic bytes)"),
])
def test_worker__refused_snapshot_leaves_the_broker_untouched(tmp_path, monkeypatch, capsys,
                                                              content, reason,
                                                              log_levels_kept) -> None:
    # a refused --load-state used to come after the worker had connected and created its
    # repartition, warm-start and output topics
    from streams import admin

    for name in ("NHI_CONFIG", "NHI_WEB_PORT", "NHI_INGEST_WINDOW", "NHI_APP_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(admin, "connect_admin", connecting_fails)
    monkeypatch.setattr(admin, "prepare_topics", connecting_fails)
    snapshot = tmp_path / "bad.snap"
    snapshot.write_bytes(content)
    code = main(["worker", "--bootstrap-servers", "127.0.0.1:9092", "--raw-topics", "raw",
                 "--state-dir", str(tmp_path / "state"), "--web-port", "0",
                 "--load-state", str(snapshot)])
    assert code == 2
    line = capsys.readouterr().err.splitlines()[-1]
    assert line.startswith(f"{WORKER}state snapshot {snapshot} refused: {reason}"), line
