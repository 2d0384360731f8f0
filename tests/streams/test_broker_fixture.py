"""The broker fixture gives a broker that really speaks Kafka: a round trip through a topic."""

from __future__ import annotations

import uuid

import pytest

pytestmark = pytest.mark.kafka


def test_broker__round_trip_through_a_new_topic(kafka_bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"fixture-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        assert topic in admin.list_topics()
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(5):
        producer.send(topic, key=b"k", value=f"v{i}".encode())
    producer.flush(timeout=30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=15000)
    values = []
    for message in consumer:
        values.append(message.value)
        if len(values) == 5:
            break
    consumer.close()
    assert values == [b"v0", b"v1", b"v2", b"v3", b"v4"]


def test_broker__listens_on_loopback_only(kafka_broker) -> None:
    host, _, port = kafka_broker.bootstrap.split(",")[0].rpartition(":")
    if kafka_broker.kind == "environment":
        pytest.skip("broker given by KAFKA_BOOTSTRAP_SERVERS: not ours to check")
    assert host == "127.0.0.1"
    assert int(port) > 0
