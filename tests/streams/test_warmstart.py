"""Warm-start seed messages are bounded by bytes, not by a count of identities: 200 states
of about 6 KB each made a 1.2 MB message the producer refused (MessageSizeTooLargeError,
the worker's start-up ended in a traceback)."""

from __future__ import annotations

import os

from streams import codecs
from streams.warmstart import SEED_BYTES, seed_chunks


def states(count: int, size: int) -> dict[str, bytes]:
    return {f"arn:aws:iam::123456789012:role/app-{n:05d}": os.urandom(size)
            for n in range(count)}


def test_a_partition_of_large_states_is_sent_in_messages_under_the_limit() -> None:
    blobs = states(400, 6_000)
    chunks = seed_chunks(blobs)
    encoded = [codecs.encode_seed(chunk) for chunk in chunks]
    assert len(chunks) == 4  # 400 x ~8 KB of base64: at most ~110 a message
    assert max(len(message) for message in encoded) <= SEED_BYTES
    assert min(len(message) for message in encoded[:-1]) > SEED_BYTES - 9_000  # full
    seen: dict[str, bytes] = {}
    for message in encoded:
        tag, body = codecs.decode_repartition(message)
        assert tag == codecs.SEED_TAG
        seen.update(body)  # decoded from base64 by the codec
    assert seen == blobs


def test_the_estimate_is_exact_for_plain_keys_and_a_lone_large_state_goes_alone() -> None:
    blobs = states(5, 1_000)
    [chunk] = seed_chunks(blobs)
    assert len(codecs.encode_seed(chunk)) <= SEED_BYTES
    sizes = [len(codecs.encode_seed(c)) for c in seed_chunks(blobs, limit=3_000)]
    assert sizes and max(sizes) <= 3_000
    huge = {"big": b"x" * 5_000, "small": b"y"}
    assert [sorted(c) for c in seed_chunks(huge, limit=3_000)] == [["big"], ["small"]]
    assert seed_chunks({}) == []
