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
    # and again after each restart. Such a name is now refused by the parser (a field no
    # real log has), so events are bounded; what may be large is a record's parameters,
    # which stay out of events. Here one raw message holds 800 records of one identity,
    # each with a 2 KB policy and a user agent and resource at their bounds: over 1.1 MB
    # of events for one repartition partition, which must go as several messages.
    # A record with 1.2 MB of parameters crosses as an ordinary event; one with a 1.2 MB
    # eventName is an oversized_field dead letter with its raw bytes kept.
    app_id = "wide"
    create_topic(kafka_bootstrap, f"{app_id}.raw", configs={"max.message.bytes": "4000000"})
    template = {**story.records[0], "userAgent": "Boto3/1.34 " + "u" * 600,
                "resources": [{"ARN": "arn:aws:s3:::bucket/" + "k" * 700}],
                "requestParameters": {"policyDocument": "p" * 2000}}
    wide = [{**template, "eventID": f"wide-{i:04d}"} for i in range(800)]
    large = {**story.records[6], "requestParameters": {"policyDocument": "q" * 1_200_000}}
    huge = {**story.records[7], "eventName": "Get" + "y" * 1_200_000}
    rest = story.records[8:40]
    payloads = [frame_lines(wide), frame_lines([large]), frame_lines([huge]),
                frame_lines(rest)]
    produce(kafka_bootstrap, f"{app_id}.raw", payloads)
    worker = start_worker(worker_args(kafka_bootstrap, app_id, tmp_path / "state",
                                      free_port()), tmp_path / "worker.log")
    try:
        worker.wait_ready()
        expected = {r["eventID"] for r in wide + [large] + rest}
        assert accounted_ids(kafka_bootstrap, app_id, expected, timeout=120) == expected
        dead = json_values(read_topic(
            kafka_bootstrap, f"{app_id}.dlq", timeout=30,
            until=lambda m: any(b'"oversized_field"' in x.value for x in m)))
        sizes = [len(m.value) for m in read_topic(kafka_bootstrap,
                                                  f"{app_id}-events-by-identity", timeout=30)]
    finally:
        code = worker.stop()
    assert code == 0, worker.log_tail()
    assert max(sizes) <= 900_000 and sum(sizes) > 1_100_000
    assert [(d["reason"], d["offset"]) for d in dead] == [("oversized_field", 2)]
    assert dead[0]["message"].startswith("eventName is 1,200,003 characters, over the 256")
    assert dead[0]["raw_truncated"] is True and dead[0]["raw_size"] > 1_200_000
    assert "cannot produce" not in worker.log_path.read_text()
    assert dead[0]["origin"].startswith(f"{app_id}.raw[0]@2")
