"""Fixtures for the streaming tests: a real Kafka-protocol broker on loopback.

``kafka_bootstrap`` starts one broker per test session in the order design.md gives
(``KAFKA_BOOTSTRAP_SERVERS``, Apache Kafka from its jars fetched with Maven or from
``KAFKA_HOME``, testcontainers, Tansu; see ``tools/kafka/broker.py``). When none can be
started the tests skip with the reason, except under ``NHI_REQUIRE_KAFKA=1`` (CI), where
they fail loudly. Mark tests that use it ``@pytest.mark.kafka``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.streams import scenario

REPO = Path(__file__).resolve().parents[2]
BROKER_HELPER = REPO / "tools" / "kafka" / "broker.py"

log = logging.getLogger(__name__)


def load_broker_helper():
    """Import tools/kafka/broker.py (a script directory, not a package) once."""
    module = sys.modules.get("nhi_kafka_broker")
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location("nhi_kafka_broker", BROKER_HELPER)
    module = importlib.util.module_from_spec(spec)
    sys.modules["nhi_kafka_broker"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def story() -> scenario.Scenario:
    """The worker tests' labelled scenario (test_b19_kafka and test_pipeline define their
    own variants)."""
    return scenario.build(days=5, per_hour=2)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running broker (``.bootstrap``, ``.kind``, ``.log_path``), stopped after the session."""
    workdir = tmp_path_factory.mktemp("kafka")
    broker = started_or_skip("no broker could be started",
                             lambda helper: helper.start_broker(workdir))
    log.info("kafka fixture: %s broker at %s, log %s", broker.kind, broker.bootstrap,
             broker.log_path)
    try:
        yield broker
    finally:
        broker.stop()


def started_or_skip(what: str, start: Callable[[Any], Any]) -> Any:
    """``start(broker helper)``; when it raises BrokerUnavailable the test fails under
    NHI_REQUIRE_KAFKA=1 (CI) and is skipped otherwise."""
    helper = load_broker_helper()
    try:
        return start(helper)
    except helper.BrokerUnavailable as err:
        if os.environ.get("NHI_REQUIRE_KAFKA") == "1":
            pytest.fail(f"NHI_REQUIRE_KAFKA=1 but {what}: {err}",
                        pytrace=False)
        pytest.skip(str(err))


def apache_kafka_only(why: str) -> None:
    """Skip a test that configures its own Apache Kafka from the jars when the run uses
    another broker (KAFKA_BOOTSTRAP_SERVERS: it ``why``) or leaves the jars out."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip():
        pytest.skip(f"the broker of KAFKA_BOOTSTRAP_SERVERS {why}; these tests need Apache "
                    "Kafka started from its jars")
    skipped = {s.strip() for s in os.environ.get("NHI_KAFKA_SKIP", "").split(",")}
    if "jars" in skipped:
        pytest.skip("NHI_KAFKA_SKIP excludes the Apache Kafka jars these tests need")


@pytest.fixture(scope="session", autouse=True)
def no_worker_left_behind() -> Iterator[None]:
    """Kill any worker subprocess a failed test left running (by its own pid)."""
    yield
    from tests.streams.kafka_helpers import STARTED

    for worker in STARTED:
        if worker.process.poll() is None:
            worker.process.kill()
            worker.process.wait(timeout=30)


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker) -> str:
    """The bootstrap address (``host:port``) of the session's broker."""
    return kafka_broker.bootstrap
