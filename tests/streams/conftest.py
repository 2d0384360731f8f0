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
from collections.abc import Iterator
from pathlib import Path

import pytest

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


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A running broker (``.bootstrap``, ``.kind``, ``.log_path``), stopped after the session."""
    helper = load_broker_helper()
    workdir = tmp_path_factory.mktemp("kafka")
    try:
        broker = helper.start_broker(workdir)
    except helper.BrokerUnavailable as err:
        if os.environ.get("NHI_REQUIRE_KAFKA") == "1":
            pytest.fail(f"NHI_REQUIRE_KAFKA=1 but no broker could be started: {err}",
                        pytrace=False)
        pytest.skip(str(err))
    log.info("kafka fixture: %s broker at %s, log %s", broker.kind, broker.bootstrap,
             broker.log_path)
    try:
        yield broker
    finally:
        broker.stop()


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
