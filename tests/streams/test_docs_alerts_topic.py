"""The snippet docs/worker.md gives for reading the alerts topic works as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

DOC = Path(__file__).resolve().parents[2] / "docs" / "worker.md"
DEFAULTS = 'bootstrap, topic = "127.0.0.1:9092", "nhi.alerts"'


def snippet() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text.split("### Reading the alerts topic", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_snippet__names_the_default_topic_and_a_loopback_broker() -> None:
    assert DEFAULTS in snippet()


@pytest.mark.kafka
def test_snippet__prints_each_alert_on_the_topic(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = "docs-snippet-alerts"
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for revision, severity in ((1, "low"), (2, "critical")):
        alert = {"alert_id": "a" * 32, "revision": revision, "severity": severity,
                 "title": f"workload role/app: revision {revision}"}
        producer.send(topic, key=b"role/app", value=orjson.dumps(alert))
    producer.flush()
    producer.close()
    code = snippet().replace(DEFAULTS, f"bootstrap, topic = {kafka_bootstrap!r}, {topic!r}")
    script = tmp_path / "read_alerts.py"
    script.write_text(code, encoding="utf-8")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["1 low workload role/app: revision 1",
                                          "2 critical workload role/app: revision 2"]
