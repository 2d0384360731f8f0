"""Worker output modes on a real broker: shadow mode, OCSF alerts, the inventory topic.

Three workers run side by side over the same scenario (``tests/streams/scenario.py``),
each with its own app id: a normal one (the reference alert ids and the inventory), one
with ``--shadow`` and one with ``--alert-format ocsf``.
"""

from __future__ import annotations

import signal

import orjson
import pytest

from tests.streams import scenario
from tests.streams.kafka_helpers import (
    accounted_ids,
    create_topic,
    framed_batches,
    free_port,
    json_values,
    latest_inventory,
    produce,
    read_topic,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka

MODES = {"normal": (), "shadow": ("--shadow",), "ocsf": ("--alert-format", "ocsf")}
OCSF_REQUIRED = ("activity_id", "category_uid", "class_uid", "type_uid", "severity_id",
                 "time", "metadata", "finding_info")


@pytest.fixture(scope="module")
def runs(kafka_bootstrap: str, story: scenario.Scenario, tmp_path_factory) -> dict:
    """Each mode's worker over the whole scenario; outputs read once every event is applied."""
    payloads = framed_batches(story.records)
    workers = {}
    try:
        for mode, extra in MODES.items():
            app_id = f"modes-{mode}"
            tmp = tmp_path_factory.mktemp(mode)
            create_topic(kafka_bootstrap, f"{app_id}.raw")
            produce(kafka_bootstrap, f"{app_id}.raw", payloads)
            workers[mode] = (app_id, start_worker(
                worker_args(kafka_bootstrap, app_id, tmp / "state", free_port(), *extra),
                tmp / "worker.log"))
        result = {}
        for mode, (app_id, worker) in workers.items():
            worker.wait_ready()
            accounted = accounted_ids(kafka_bootstrap, app_id, set(story.event_ids), timeout=180)
            assert set(story.event_ids) <= accounted, worker.log_tail()
            result[mode] = {
                "app_id": app_id, "worker": worker,
                "alerts": json_values(read_topic(kafka_bootstrap, f"{app_id}.alerts",
                                                 timeout=5)),
                "shadow": json_values(read_topic(kafka_bootstrap, f"{app_id}.shadow",
                                                 timeout=5)),
                "metrics": worker.get("/metrics")[1],
            }
        normal = result["normal"]
        normal["inventory_messages"] = read_topic(kafka_bootstrap,
                                                  f"{normal['app_id']}.inventory", timeout=5)
        normal["inventory"] = latest_inventory(kafka_bootstrap, normal["app_id"], story)
        yield result
    finally:
        codes = {mode: w.stop(signal.SIGTERM, timeout=90) for mode, (_, w) in workers.items()}
        assert set(codes.values()) <= {0}, codes


def reference_ids(runs: dict) -> set[str]:
    ids = {a["alert_id"] for a in runs["normal"]["alerts"]}
    assert ids, f"the normal run raised no alert:\n{runs['normal']['worker'].log_tail()}"
    assert runs["normal"]["shadow"] == []
    return ids


def alert_counts(metrics: str) -> dict[str, float]:
    """The metric families counting alerts, each summed over its label sets."""
    from prometheus_client.parser import text_string_to_metric_families

    totals = dict.fromkeys(("nhi_alerts", "nhi_shadow_alerts", "nhi_alert_escalations"), 0.0)
    for family in text_string_to_metric_families(metrics):
        if family.name in totals:
            totals[family.name] = sum(s.value for s in family.samples
                                      if s.name.endswith("_total"))
    return totals


class TestShadowMode:
    def test_metrics__count_shadow_alerts_apart(self, runs: dict) -> None:
        """docs/metrics.md: a shadow-mode worker's alerts are nhi_shadow_alerts_total, never
        nhi_alerts_total, which the dashboard and paging read as alerts the SOC got."""
        new_ids = len(reference_ids(runs))
        assert alert_counts(runs["normal"]["metrics"])["nhi_alerts"] == new_ids
        shadow = alert_counts(runs["shadow"]["metrics"])
        assert shadow == {"nhi_alerts": 0, "nhi_shadow_alerts": new_ids,
                          "nhi_alert_escalations": 0}

    def test_shadow_topic_gets_the_same_alert_ids_as_a_normal_run(self, runs: dict) -> None:
        shadow = {a["alert_id"] for a in runs["shadow"]["shadow"]}
        assert shadow == reference_ids(runs), runs["shadow"]["worker"].log_tail()

    def test_nothing_reaches_the_alerts_topic(self, runs: dict) -> None:
        assert runs["shadow"]["alerts"] == []

    def test_shadow_alerts_cover_the_attack(self, runs: dict, story: scenario.Scenario) -> None:
        victim = scenario.role_arn(scenario.VICTIM)
        alerts = runs["shadow"]["shadow"]
        assert {a["identity"]["key"] for a in alerts} == {victim}
        evidence = {i for a in alerts for i in a["evidence"].get("event_ids", [])}
        assert evidence & set(story.attack_ids)


class TestOcsfFormat:
    def test_findings_carry_the_native_alert_ids(self, runs: dict) -> None:
        findings = runs["ocsf"]["alerts"]
        assert {f["finding_info"]["uid"] for f in findings} == reference_ids(runs)
        assert runs["ocsf"]["shadow"] == []

    def test_findings_are_detection_findings_with_required_attributes(self, runs: dict) -> None:
        findings = runs["ocsf"]["alerts"]
        assert findings, runs["ocsf"]["worker"].log_tail()
        for finding in findings:
            missing = [k for k in OCSF_REQUIRED if finding.get(k) in (None, "")]
            assert missing == [], finding
            assert finding["class_uid"] == 2004
            assert finding["category_uid"] == 2
            assert finding["type_uid"] == 2004 * 100 + finding["activity_id"]
            assert finding["activity_id"] in (1, 2)
            assert finding["metadata"]["version"] and finding["metadata"]["product"]["name"]
            assert finding["finding_info"]["title"]
            assert finding["is_alert"] is True
            assert "schema" not in finding and "alert_id" not in finding  # not native JSON

    def test_first_revision_is_a_create(self, runs: dict) -> None:
        by_uid: dict[str, list[dict]] = {}
        for finding in runs["ocsf"]["alerts"]:
            by_uid.setdefault(finding["finding_info"]["uid"], []).append(finding)
        for uid, items in by_uid.items():
            assert items[0]["activity_id"] == 1, (uid, [f["metadata"]["uid"] for f in items])


class TestInventoryTopic:
    @pytest.mark.parametrize("suffix", [".inventory", "-identity-state-changelog"])
    def test_topic_is_compacted_with_a_lag(self, runs: dict, kafka_broker, suffix) -> None:
        """The inventory (made by the worker) and the state changelog (made by Faust) keep
        records for ``COMPACTION_LAG_MS`` before compaction (``streams.admin``)."""
        if kafka_broker.kind == "tansu":
            pytest.skip("Tansu does not report topic configs (describe_configs)")
        from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

        from streams.admin import COMPACTION_LAG_MS

        topic = f"{runs['normal']['app_id']}{suffix}"
        admin = KafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap,
                                 request_timeout_ms=30000)
        try:
            response = admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic)])
        finally:
            admin.close()
        # kafka-python 3.x answers {"topic": {name: {config: {"value": ...}}}}
        entries = (response.get("topic") or {}).get(topic) or {}
        assert entries, response
        assert str(entries["cleanup.policy"]["value"]) == "compact", entries["cleanup.policy"]
        lag = entries["min.compaction.lag.ms"]
        assert str(lag["value"]) == str(COMPACTION_LAG_MS), lag

    def test_records_are_keyed_by_identity(self, runs: dict) -> None:
        messages = runs["normal"]["inventory_messages"]
        assert messages
        expected = {scenario.role_arn(role) for role in scenario.ROLES}
        for message in messages:
            assert message.key is not None
            value = orjson.loads(message.value)
            key = message.key.decode()
            assert key in expected, key
            assert value["identity"] == key

    def test_last_record_per_key_counts_every_event(self, runs: dict,
                                                    story: scenario.Scenario) -> None:
        inventory = runs["normal"]["inventory"]
        assert set(inventory) == {scenario.role_arn(role) for role in scenario.ROLES}
        for role in scenario.ROLES:
            assert inventory[scenario.role_arn(role)]["events"] == len(story.records_of(role))

