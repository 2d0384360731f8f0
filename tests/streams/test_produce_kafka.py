"""``produce`` then the worker on a real broker: files that do not split cleanly (binary,
UTF-16, a cut gzip, an empty file) give the events and dead letters replay gives."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from detector.sources import ListDeadLetters, Parser
from detector.stats import RunStats
from tests.streams import scenario
from tests.streams.kafka_helpers import (
    accounted_ids,
    create_topic,
    free_port,
    json_values,
    read_topic,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka


def _lines(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


@pytest.mark.parametrize("flags", [[], ["--compression", "gzip", "--framing", "array"]],
                         ids=["plain", "gzip-array"])
def test_odd_files_reach_the_worker_as_replay_reads_them(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path, flags: list) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    cut = gzip.compress(_lines(story.records[:13]))
    (logs / "a-cut.jsonl.gz").write_bytes(cut[:len(cut) - 40])
    (logs / "b-empty.json").write_bytes(b"")
    (logs / "c-random.json").write_bytes(bytes((i * 7919 + 13) % 256 for i in range(2000)))
    (logs / "d-utf16.jsonl").write_bytes(_lines(story.records[20:22]).decode().encode("utf-16"))
    (logs / "e-good.jsonl").write_bytes(_lines(story.records[30:40]))
    app_id = "odd-" + ("plain" if not flags else "gzip")
    create_topic(kafka_bootstrap, f"{app_id}.raw")
    done = subprocess.run(
        [sys.executable, "-m", "detector.cli", "produce", str(logs), "--topic",
         f"{app_id}.raw", "--bootstrap-servers", kafka_bootstrap, "--no-progress", *flags],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    dead = ListDeadLetters()
    want: list[str] = []
    for path in sorted(logs.iterdir()):
        parser = Parser(stats=RunStats(), dead_letters=dead)
        want += [e.event_id for e in parser.feed(path.read_bytes(), str(path))]
    # 12 of the cut gzip's 13 records, the UTF-16 file's 2 (decoded by its byte-order mark)
    # and the 10 good ones
    assert len(want) == 24
    worker = start_worker(worker_args(kafka_bootstrap, app_id, tmp_path / "state",
                                      free_port()), tmp_path / "worker.log")
    try:
        worker.wait_ready()
        assert accounted_ids(kafka_bootstrap, app_id, set(want), timeout=120) == set(want)
        letters = json_values(read_topic(kafka_bootstrap, f"{app_id}.dlq", timeout=20,
                                         until=lambda m: len(m) >= len(dead)))
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert sorted(d["reason"] for d in letters) == sorted(dead.reasons())
    assert {"truncated_gzip", "empty_file", "binary"} <= set(dead.reasons())
