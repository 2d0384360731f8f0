"""The worker's "stopped" line: committed raw offsets and the producer-buffer count."""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

from streams import worker
from streams.logs import TransientNoise
from streams.settings import load_settings

TP = namedtuple("TP", "topic partition")


def _runtime() -> SimpleNamespace:
    return SimpleNamespace(settings=load_settings(None, {"NHI_RAW_TOPICS": "b,a:aws.cloudtrail"}))


def test_committed_text__raw_topics_only_in_order() -> None:
    consumer = SimpleNamespace(_committed_offset={
        TP("b", 1): 30, TP("a", 0): 12, TP("b", 0): 7, TP("nhi-detector-repartition", 0): 99,
        TP("a", 1): None})
    app = SimpleNamespace(_consumer=consumer)
    assert worker.committed_text(app, _runtime()) == "committed offsets a[0]=12 b[0]=7 b[1]=30"


def test_committed_text__nothing_committed() -> None:
    assert worker.committed_text(SimpleNamespace(), _runtime()) == "no offsets committed"


def test_buffer_text__said_only_when_the_buffer_filled() -> None:
    noise = TransientNoise()
    assert worker._buffer_text(noise) == ""
    noise.counts["producer_buffer_full"] = 12
    assert worker._buffer_text(noise) == (
        "; the producer buffer filled 12 times and waited for the broker")
