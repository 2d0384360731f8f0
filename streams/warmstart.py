"""Warm start from a replay snapshot (``--load-state``), applied once per app id.

The snapshot (``Detector.export_state``) is loaded into the local detector, which gives it
the peer index and every identity's blob. The blobs are sent to the repartition topic as
seed messages (``codecs.encode_seed``), each to its identity's partition, so the worker that
owns the identity writes it into the state table (only where the table has nothing newer).
A record keyed by the snapshot's sha256 on the compacted ``<app_id>-warm-start`` topic
marks it applied; a restart with the same ``--load-state`` then skips it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from typing import Any

import orjson

from detector.errors import StateError
from streams import codecs
from streams.admin import client_options
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

SEED_BYTES = 900_000
"""Most bytes of one seed message (``streams.pipeline.MAX_MESSAGE_BYTES``): under the
producer's ``max_request_size`` and the broker's ``message.max.bytes`` (1 MiB by default).
Seeds used to be 200 identities a message whatever their size: at about 6 KB a state,
a partition with some 170 identities made a message over 1 MB, and the warm start
ended in ``MessageSizeTooLargeError``."""
READ_TIMEOUT_S = 30.0


def snapshot_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def already_applied(settings: WorkerSettings, digest: str) -> bool:
    """Whether the marker topic holds a record for ``digest`` (read from the beginning)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(**client_options(settings), enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=1000)
    try:
        parts = consumer.partitions_for_topic(settings.warm_start_topic) or set()
        tps = [TopicPartition(settings.warm_start_topic, p) for p in sorted(parts)]
        if not tps:
            return False
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                if any(r.key == digest.encode() for r in records):
                    return True
            if all(consumer.position(tp) >= ends[tp] for tp in tps):
                return False
        raise StateError(f"could not read the warm-start marker topic "
                         f"{settings.warm_start_topic} within {READ_TIMEOUT_S:.0f}s")
    finally:
        consumer.close()


def check_snapshot(detector: Any, path: str) -> bytes:
    """The snapshot's bytes once ``load_state``'s checks that decode nothing hold
    (``StateError`` otherwise): run before the worker creates any topic, so a snapshot it
    refuses leaves nothing behind on the broker."""
    from detector.replay import load_state_file

    return load_state_file(detector, path, check_only=True)


def apply_snapshot(settings: WorkerSettings, detector: Any, path: str, data: bytes) -> int:
    """Seed the table from the snapshot ``path`` (its bytes ``data``, as ``check_snapshot``
    returned them) unless done before; returns identities seeded (0 if the marker says it
    was applied). Raises ``StateError`` for a snapshot that cannot be loaded."""
    from detector.replay import load_state_file

    digest = snapshot_digest(data)
    if already_applied(settings, digest):
        log.info("warm start: snapshot %s (sha256 %s) was applied before; skipping", path,
                 digest[:12])
        return 0
    load_state_file(detector, path, data)
    entries = {key: detector.identity_state(key) for key in list(detector.store)}
    detector.store.clear()  # the table is the source of truth; peers stay loaded
    _send_seeds(settings, entries, digest, path)
    log.info("warm start: seeded %d identities from %s", len(entries), path)
    return len(entries)


def _send_seeds(settings: WorkerSettings, entries: dict[str, bytes | None], digest: str,
                path: str) -> None:
    from kafka import KafkaProducer

    by_partition: dict[int, dict[str, bytes]] = defaultdict(dict)
    for key, blob in entries.items():
        if blob:
            by_partition[codecs.partition_for(key, settings.partitions)][key] = blob
    producer = KafkaProducer(**client_options(settings), acks="all")
    try:
        for partition, blobs in sorted(by_partition.items()):
            for chunk in seed_chunks(blobs):
                producer.send(settings.repartition_topic, value=codecs.encode_seed(chunk),
                              partition=partition)
        producer.flush(timeout=settings.io_timeout)
        marker = codecs.dumps({"file": str(path), "sha256": digest, "identities": len(entries),
                               "applied_at": time.time()})
        producer.send(settings.warm_start_topic, key=digest.encode(), value=marker)
        producer.flush(timeout=settings.io_timeout)
    finally:
        producer.close(timeout=settings.io_timeout)


def seed_chunks(blobs: dict[str, bytes], limit: int = SEED_BYTES) -> list[dict[str, bytes]]:
    """The identities of one partition in seed messages of at most ``limit`` bytes each
    once encoded (``codecs.encode_seed``: base64 blobs in a JSON object), in key order.
    One state is far under the limit (profiles are capped at ``max_state_bytes``); one
    over it would go alone, for the broker to refuse with its own error."""
    chunks: list[dict[str, bytes]] = []
    chunk: dict[str, bytes] = {}
    size = len(codecs.encode_seed({}))
    for key in sorted(blobs):
        blob = blobs[key]
        # "key":"base64", with a comma; JSON escapes can only lengthen the key
        entry = len(orjson.dumps(key)) + 4 * ((len(blob) + 2) // 3) + 4
        if chunk and size + entry > limit:
            chunks.append(chunk)
            chunk, size = {}, len(codecs.encode_seed({}))
        chunk[key] = blob
        size += entry
    if chunk:
        chunks.append(chunk)
    return chunks

