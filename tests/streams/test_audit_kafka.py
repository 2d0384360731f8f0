"""``streams.app.changelog_keys`` against a real broker: the changelog audit's read of the
records a worker did not write, and its refusal to report a range it could not read."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from streams.app import changelog_keys
from streams.settings import load_settings
from tests.streams.kafka_helpers import create_topic

pytestmark = pytest.mark.kafka


def _keyed(bootstrap: str, topic: str, keys: list[bytes]) -> list[int]:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        futures = [producer.send(topic, key=key, value=b"state", partition=0) for key in keys]
        producer.flush(timeout=60)
        return [future.get(timeout=60).offset for future in futures]
    finally:
        producer.close(timeout=30)


def test_changelog_keys__names_the_records_not_at_own_offsets(kafka_broker) -> None:
    topic = "audit-read-changelog"
    create_topic(kafka_broker.bootstrap, topic)
    offsets = _keyed(kafka_broker.bootstrap, topic, [b"svc-a", b"svc-b", b"svc-c", b"svc-d"])
    assert offsets == [0, 1, 2, 3]
    settings = load_settings(argparse.Namespace(bootstrap_servers=kafka_broker.bootstrap,
                                                io_timeout=20.0), {}, {})
    tp = SimpleNamespace(topic=topic, partition=0)
    # own records at 0 and 2; the range ends before svc-d's record
    assert changelog_keys(settings, tp, 0, 3, {0, 2}) == {"svc-b"}


def test_changelog_keys__a_range_not_read_in_time_is_an_error(kafka_broker) -> None:
    """Records up to the end that cannot be read within ``io_timeout`` (here: the range
    runs past the log's end) are an error, not a partial answer: the audit reads the range
    again, where the keys read so far would have let it move past the rest."""
    topic = "audit-read-timeout"
    create_topic(kafka_broker.bootstrap, topic)
    _keyed(kafka_broker.bootstrap, topic, [b"svc-a", b"svc-b"])
    settings = load_settings(argparse.Namespace(bootstrap_servers=kafka_broker.bootstrap,
                                                io_timeout=1.0), {}, {})
    tp = SimpleNamespace(topic=topic, partition=0)
    with pytest.raises(TimeoutError, match=r"audit-read-timeout\[0\] read up to offset 2 of 5"):
        changelog_keys(settings, tp, 0, 5, set())
