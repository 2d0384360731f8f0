"""The worker's peer index kept across restarts in its data directory (streams.peerstore)."""

from __future__ import annotations

import logging

import orjson
import pytest

from detector.engine import Detector
from detector.errors import SinkError
from detector.sources import parse_payload
from detector.sources.deadletter import NullDeadLetters
from detector.stats import RunStats
from streams import peerstore
from tests.streams import scenario


def learned_detector() -> Detector:
    """A detector that has processed the scenario, so its peer index has groups."""
    detector = Detector({}, stats=RunStats())
    records = scenario.build(days=4).records
    payload = orjson.dumps({"Records": records})
    for event in parse_payload(payload, origin="test", stats=RunStats(),
                               dead_letters=NullDeadLetters()):
        detector.process(event)
    return detector


def test_saved_index_is_loaded_by_the_next_worker(tmp_path) -> None:
    before = learned_detector()
    assert before.peers.groups  # the scenario's roles joined their peer groups
    peerstore.save_peers(tmp_path, before.peers.to_bytes())
    after = Detector({}, stats=RunStats())
    assert after.peers.groups == {}
    assert peerstore.load_peers(tmp_path, after) is True
    assert after.peers.to_bytes() == before.peers.to_bytes()
    assert sorted(after.peers.groups) == sorted(before.peers.groups)


def test_no_file__nothing_loaded(tmp_path) -> None:
    detector = Detector({}, stats=RunStats())
    peers = detector.peers
    assert peerstore.load_peers(tmp_path, detector) is False
    assert detector.peers is peers


def test_damaged_file__one_warning_and_the_index_left_empty(tmp_path, caplog) -> None:
    good = learned_detector().peers.to_bytes()
    detector = Detector({}, stats=RunStats())
    peers = detector.peers
    for damaged in (good[: len(good) // 2], b"not a peer index", b""):
        peerstore.peers_path(tmp_path).write_bytes(damaged)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="streams.peerstore"):
            assert peerstore.load_peers(tmp_path, detector) is False
        assert detector.peers is peers and peers.groups == {}
        [line] = caplog.messages
        assert line.startswith(f"the peer index {peerstore.peers_path(tmp_path)} cannot be "
                               f"used (")
        assert line.endswith("starting with an empty one; it is written again within 30 s")


def test_unwritable_store__one_sink_error(tmp_path) -> None:
    # the worker's timer catches SinkError; an OSError from making the folder escaped it
    blocker = tmp_path / "afile"
    blocker.write_text("a file where the store folder would be")
    with pytest.raises(SinkError, match=f"cannot write {blocker / 'x' / 'peers.bin'}"):
        peerstore.save_peers(blocker / "x", b"data")
