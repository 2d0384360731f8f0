"""Byte formats of the worker: partitioning, compact events, repartition messages, table values."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given
from hypothesis import strategies as st

from detector.errors import InputError
from detector.event import Event
from streams import codecs


def make_event(**fields) -> Event:
    when = datetime(2024, 6, 1, 12, 0, 5, tzinfo=UTC)
    values = {"event_id": "e1", "time": when, "ts": when.timestamp(),
              "source": "aws.cloudtrail", "identity": "arn:aws:iam::1:role/r",
              "action": "s3:GetObject"}
    return Event(**{**values, **fields})


@given(st.text(min_size=1, max_size=80), st.integers(min_value=1, max_value=64))
def test_partition_for__agrees_with_a_kafka_client_partitioner(identity: str, n: int) -> None:
    expected = (aiokafka_murmur2(identity.encode("utf-8")) & 0x7FFFFFFF) % n
    assert codecs.partition_for(identity, n) == expected


def test_compact_event__drops_defaults_and_round_trips() -> None:
    event = make_event(source_ip="198.51.100.1", network="public", attributes={"mfa": False},
                       read_only=True)
    compact = codecs.compact_event(event)
    assert "credential_type" not in compact and "partial" not in compact
    assert compact["source_ip"] == "198.51.100.1"
    import orjson

    assert codecs.expand_event(orjson.loads(orjson.dumps(compact))) == event


def test_events_message__round_trips_with_its_source_positions() -> None:
    data = codecs.encode_events(["raw[3]", "raw[0]"], {
        "a": [(0, codecs.position(41, 0), make_event())],
        "b": [(1, codecs.position(7, 2), make_event(event_id="e2"))]})
    tag, body = codecs.decode_repartition(data)
    assert tag == codecs.EVENTS_TAG
    assert body["src"] == ["raw[3]", "raw[0]"]
    [(si, pos, item)] = body["batches"]["b"]
    reader = codecs.EventReader(body["fields"])
    assert (si, pos, reader.event_id(item)) == (1, (7 << 20) + 2, "e2")
    assert reader.event("b", item) == make_event(event_id="e2", identity="b")


def test_event_rows__round_trip_every_field_of_every_source() -> None:
    import gzip
    from pathlib import Path

    from detector.sources import ListDeadLetters, parse_payload
    from detector.stats import RunStats

    root = Path(__file__).resolve().parents[2] / "replay_data"
    events = []
    for pattern in ("aws/**/CloudTrail/**/*.json.gz", "gcp/**/*.json.gz", "k8s/**/*.log.gz"):
        for path in sorted(root.glob(pattern))[:2]:
            events += parse_payload(gzip.decompress(path.read_bytes()), origin=str(path),
                                    stats=RunStats(), dead_letters=ListDeadLetters())[:300]
    assert len({e.source for e in events}) >= 3
    data = codecs.encode_events(["raw[0]"], {e.identity: [(0, i, e)] for i, e in
                                             enumerate(events)})
    _, body = codecs.decode_repartition(data)
    reader = codecs.EventReader(body["fields"])
    decoded = [reader.event(identity, item) for identity, entries in body["batches"].items()
               for _, _, item in entries]
    assert decoded == [_as_on_the_wire(e) for e in {e.identity: e for e in events}.values()]


def _as_on_the_wire(event: Event) -> Event:
    """The event as it reads after crossing a topic: technique findings and tallies become
    the dicts orjson writes for them (``detector.techniques`` reads both forms back)."""
    found = event.attributes.get("findings")
    if found is None:
        return event
    return replace(event, attributes={**event.attributes,
                                      "findings": orjson.loads(orjson.dumps(found))})


def test_event_rows__of_a_build_with_other_fields_are_read_by_name() -> None:
    event = make_event(source_ip="198.51.100.1")
    fields = ["zz_new_field", *reversed(codecs.ROW_FIELDS)]
    row = orjson.loads(orjson.dumps(["x", *reversed(codecs.event_row(event))]))
    reader = codecs.EventReader(fields)
    assert reader.event(event.identity, row) == event
    assert reader.event_id(row) == "e1"


def test_position__orders_by_offset_then_index() -> None:
    assert codecs.position(5, 0) < codecs.position(5, 1) < codecs.position(6, 0)
    assert codecs.position(5, 10**9) < codecs.position(6, 0)  # index is capped


def test_seed_message__carries_binary_blobs() -> None:
    tag, body = codecs.decode_repartition(codecs.encode_seed({"a": b"\x00\xffblob"}))
    assert tag == codecs.SEED_TAG
    assert body == {"a": b"\x00\xffblob"}


@pytest.mark.parametrize("data, reason", [
    (b"", "invalid_record"),
    (b"Xjunk", "invalid_record"),
    (b"E{not json", "invalid_json"),
    (b'E{"batches": {}}', "invalid_record"),
    (b'E{"src": [], "batches": {}, "fields": "event_id"}', "invalid_record"),
])
def test_decode_repartition__rejects_foreign_bytes(data: bytes, reason: str) -> None:
    with pytest.raises(InputError) as caught:
        codecs.decode_repartition(data)
    assert caught.value.reason == reason


def test_state_value__keeps_applied_offsets_next_to_the_blob() -> None:
    value = codecs.pack_state({"raw[0]": 17, "raw[1]": 3}, b"\x01\x02blob")
    assert codecs.unpack_state(value) == ({"raw[0]": 17, "raw[1]": 3}, b"\x01\x02blob")
    assert codecs.unpack_state(None) == ({}, None)


def test_state_value__damaged_header_is_an_input_error() -> None:
    with pytest.raises(InputError, match="table value is damaged"):
        codecs.unpack_state(b"\x00\x00\x00\x09{broken")
