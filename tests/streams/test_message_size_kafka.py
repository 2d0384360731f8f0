"""Large records on a real broker: the worker splits what it produces by bytes and
dead-letters what cannot fit, instead of failing every send and stopping for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.streams import scenario
from tests.streams.kafka_helpers import (
    accounted_ids,
    create_topic,
    frame_lines,
    free_port,
    json_values,
    produce,
    read_topic,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka


def test_large_records_cross_the_repartition_step_and_one_too_large_is_dead_lettered(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path) -> None:
    # Six records with a 200 KB eventName made one 1,051,118-byte repartition message
    # (the ingest window joins raw messages): every send failed, the worker exited 70,
    # and again after each restart. The raw topic here takes messages up to 4 MB, so one
    # record of 1.2 MB arrives too: its event fits no repartition message at all.
    app_id = "wide"
    create_topic(kafka_bootstrap, f"{app_id}.raw", configs={"max.message.bytes": "4000000"})
    wide = [{**r, "eventName": "Get" + "x" * 200_000} for r in story.records[:6]]
    huge = {**story.records[6], "eventName": "Get" + "y" * 1_200_000}
    rest = story.records[7:40]
    payloads = [frame_lines(wide[:3]), frame_lines(wide[3:]), frame_lines([huge]),
                frame_lines(rest)]
    produce(kafka_bootstrap, f"{app_id}.raw", payloads)
    worker = start_worker(worker_args(kafka_bootstrap, app_id, tmp_path / "state",
                                      free_port()), tmp_path / "worker.log")
    try:
        worker.wait_ready()
        expected = {r["eventID"] for r in wide + rest}
        assert accounted_ids(kafka_bootstrap, app_id, expected, timeout=120) == expected
        dead = json_values(read_topic(
            kafka_bootstrap, f"{app_id}.dlq", timeout=30,
            until=lambda m: any(b'"oversized_record"' in x.value for x in m)))
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert [(d["reason"], d["offset"], d["event_id"]) for d in dead] == [
        ("oversized_record", 2, huge["eventID"])]
    assert dead[0]["raw_truncated"] is True and dead[0]["raw_size"] > 1_200_000
    assert "over the 900,000 bytes a repartition message may hold" in dead[0]["message"]
    assert "cannot produce" not in worker.log_path.read_text()
    assert dead[0]["origin"] == f"{app_id}.raw[0]@2#event 0"
