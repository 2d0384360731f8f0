"""GCP technique checks on data itself: BigQuery jobs that destroy or carry tables away, and
Cloud Storage objects deleted in bulk by one identity. Each on the attack entry and on the
near miss that pipelines, dbt, Terraform and Google's own agents send every day."""

from __future__ import annotations

from typing import Any

import orjson

from detector.engine import Detector
from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Tally
from tests.detector.test_techniques_gcp import entry
from tests.detector.test_techniques_gcp_exposure import TERRAFORM
from tests.detector.test_techniques_k8s import assert_no_internal_error, findings, variants

ANALYST = "dana@corp.example"
INSERT_JOB = "google.cloud.bigquery.v2.JobService.InsertJob"
TABLE = "projects/corp-prod/datasets/sales/tables/orders"
DTS_AGENT = "service-123@gcp-sa-bigquerydatatransfer.iam.gserviceaccount.com"


def job(config: dict, *, principal: str = ANALYST, after: str = "DONE",
        error: dict | None = None, **extra: Any) -> dict:
    """A BigQuery job's change entry as the Data Access log writes it (BigQueryAuditMetadata)."""
    status: dict[str, Any] = {"jobState": after}
    if error:
        status["errorResult"] = error
    metadata = {"@type": "type.googleapis.com/google.cloud.audit.BigQueryAuditMetadata",
                "jobChange": {"after": after, "job": {
                    "jobName": "projects/corp-prod/jobs/bquxjob_1", "jobConfig": config,
                    "jobStatus": status}}}
    return entry(INSERT_JOB, "bigquery.googleapis.com", principal=principal,
                 resource="projects/corp-prod/jobs/bquxjob_1", metadata=metadata, **extra)


def query(text: str, statement: str, table: str | None = TABLE, **extra: Any) -> dict:
    config: dict[str, Any] = {"query": text, "statementType": statement}
    if table:
        config["destinationTable"] = table
    return job({"type": "QUERY", "queryConfig": config}, **extra)


def tallies(*records: dict) -> list[tuple[str, tuple[str, ...]]]:
    events = parse_payload(orjson.dumps(list(records)), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    return [(t.rule, t.values) for e in events for t in e.attributes.get(ATTRIBUTE, [])
            if type(t) is Tally]


def bursts(records: list[dict], detector_name: str) -> list[str]:
    """The sentences of the burst alerts the engine raises for the records, in order."""
    detector = Detector({}, stats=RunStats())
    events = parse_payload(orjson.dumps(records), origin="t", stats=RunStats(),
                           dead_letters=ListDeadLetters())
    alerts = [alert for event in events for alert in detector.process(event)]
    return [s["sentence"] for a in alerts for s in a.signals if s["detector"] == detector_name]


def test_drop_truncate_and_delete_of_every_row_count_toward_destruction() -> None:
    drop = query("DROP TABLE sales.orders", "DROP_TABLE")
    truncate = query("TRUNCATE TABLE sales.orders", "TRUNCATE_TABLE")
    delete_all = query("DELETE FROM `corp-prod.sales.orders` WHERE true", "DELETE")
    schema = query("DROP SCHEMA sales CASCADE", "DROP_SCHEMA", table=None)
    assert tallies(drop, truncate, delete_all, schema) == [
        ("gcp.bigquery_destruction", (TABLE,))] * 3 + [
        ("gcp.bigquery_destruction", ("sales",))]


def test_pipeline_deletes_scratch_tables_failures_and_agents_do_not_count() -> None:
    """A DELETE with a real condition, dbt's scratch table, a job still running or one
    that failed, the Data Transfer Service's agent and a job run as code."""
    where = query("DELETE FROM sales.orders WHERE day < '2024-01-01'", "DELETE")
    dbt = query("drop table if exists `corp-prod`.`sales`.`orders__dbt_tmp`", "DROP_TABLE",
                table="projects/corp-prod/datasets/sales/tables/orders__dbt_tmp")
    staging = query("TRUNCATE TABLE staging.orders", "TRUNCATE_TABLE",
                    table="projects/corp-prod/datasets/staging/tables/orders")
    running = query("DROP TABLE sales.orders", "DROP_TABLE", after="RUNNING")
    failed = query("DROP TABLE sales.orders", "DROP_TABLE",
                   error={"code": 7, "message": "Access Denied"})
    agent = query("DROP TABLE sales.orders", "DROP_TABLE", principal=DTS_AGENT)
    as_code = query("DROP TABLE sales.orders", "DROP_TABLE", requestMetadata=TERRAFORM)
    assert tallies(where, dbt, staging, running, failed, agent, as_code) == []


def test_five_tables_dropped_in_minutes_by_one_identity_is_a_burst() -> None:
    """One identity dropping five tables is the burst; a nightly job emptying the same
    table again and again is not."""
    drops = [query(f"DROP TABLE sales.t{i}", "DROP_TABLE",
                   table=f"projects/corp-prod/datasets/sales/tables/t{i}") for i in range(5)]
    for index, record in enumerate(drops):
        record["timestamp"] = f"2024-03-04T10:0{index}:00Z"
    nightly = [query("TRUNCATE TABLE sales.orders", "TRUNCATE_TABLE",
                     principal="etl@corp-prod.iam.gserviceaccount.com") for _ in range(8)]
    for index, record in enumerate(nightly):
        record["timestamp"] = f"2024-03-05T10:0{index}:00Z"
    found = bursts(drops + nightly, "technique.gcp.bigquery_destruction")
    assert len(found) == 1 and found[0].startswith("5 distinct tables dropped or emptied")


def test_table_copied_to_another_project_is_exfiltration() -> None:
    out = job({"type": "COPY", "tableCopyConfig": {
        "sourceTables": [TABLE], "destinationTable":
            "projects/attacker-lab/datasets/loot/tables/orders"}})
    legacy = entry("jobservice.jobcompleted", "bigquery.googleapis.com", principal=ANALYST,
                   serviceData={"jobCompletedEvent": {"eventName": "table_copy_job_completed",
                                "job": {"jobName": {"projectId": "corp-prod", "jobId": "j"},
                                        "jobConfiguration": {"tableCopy": {
                                            "sourceTables": [{"projectId": "corp-prod",
                                                              "datasetId": "sales",
                                                              "tableId": "orders"}],
                                            "destinationTable": {"projectId": "attacker-lab",
                                                                 "datasetId": "loot",
                                                                 "tableId": "orders"}}},
                                        "jobStatus": {"state": "DONE"}}}})
    assert findings(out, legacy) == [("gcp.bigquery_exfiltration", "medium", "attacker-lab")] * 2


def test_copies_within_the_project_and_by_the_transfer_agent_are_not() -> None:
    backup = job({"type": "COPY", "tableCopyConfig": {
        "sourceTables": [TABLE],
        "destinationTable": "projects/corp-prod/datasets/backup/tables/orders"}})
    transfer = job({"type": "COPY", "tableCopyConfig": {
        "sourceTables": [TABLE],
        "destinationTable": "projects/corp-dr/datasets/sales/tables/orders"}},
        principal=DTS_AGENT)
    assert findings(backup, transfer) == []


def test_export_outside_google_cloud_but_not_to_cloud_storage() -> None:
    s3 = job({"type": "EXPORT", "extractConfig": {
        "sourceTable": TABLE, "destinationUris": ["s3://drop-zone/orders-*.csv"]}})
    export = query("EXPORT DATA OPTIONS(uri='s3://drop-zone/o/*', format='CSV') AS "
                   "SELECT * FROM sales.orders", "EXPORT_DATA", table=None)
    gcs = job({"type": "EXPORT", "extractConfig": {
        "sourceTable": TABLE, "destinationUris": ["gs://corp-exports/orders-*.csv"]}})
    gcs_query = query("EXPORT DATA OPTIONS(uri='gs://corp-exports/o/*', format='CSV') AS "
                      "SELECT * FROM sales.orders", "EXPORT_DATA", table=None)
    assert findings(s3, export, gcs, gcs_query) == [
        ("gcp.bigquery_exfiltration", "medium", "s3://drop-zone/orders-*.csv"),
        ("gcp.bigquery_exfiltration", "medium", "s3://drop-zone/o/*")]


def deleted(name: str, *, principal: str = ANALYST, second: int = 0, **extra: Any) -> dict:
    record = entry("storage.objects.delete", "storage.googleapis.com", principal=principal,
                   resource=f"projects/_/buckets/backups/objects/{name}", **extra)
    record["timestamp"] = f"2024-03-04T10:{second // 60:02d}:{second % 60:02d}Z"
    return record


def test_each_deleted_object_counts_but_scratch_agents_and_code_do_not() -> None:
    assert tallies(deleted("db/2024-03-01.dump"), deleted("tmp/part-0001"),
                   deleted("out/_temporary/0/part-1"), deleted("db/x", requestMetadata=TERRAFORM),
                   deleted("db/y", principal="service-9@gs-project-accounts.iam."
                                             "gserviceaccount.com")) == [
        ("gcp.gcs_bulk_delete", ("backups/db/2024-03-01.dump",))]


def test_fifty_objects_deleted_by_one_identity_is_a_burst_never_across_identities() -> None:
    """Two cleaners each deleting forty objects in the same minutes stay apart; one identity
    emptying a bucket of fifty objects (Stratus Red Team's ransomware bucket holds 51) is
    the burst."""
    wiper = [deleted(f"db/{i:03d}.dump", second=i) for i in range(50)]
    cleaners = [deleted(f"cache/{who}/{i:02d}", principal=f"{who}@corp-ci.iam.gserviceaccount."
                        "com", second=i) for who in ("a", "b") for i in range(40)]
    found = bursts(cleaners + wiper, "technique.gcp.gcs_bulk_delete")
    assert len(found) == 1 and found[0].startswith("50 distinct objects deleted")


def test_data_checks_never_raise_whatever_field_has_an_odd_type() -> None:
    positives = [
        query("DROP TABLE sales.orders", "DROP_TABLE"),
        job({"type": "COPY", "tableCopyConfig": {
            "sourceTables": [TABLE], "destinationTable": "projects/x/datasets/d/tables/t"}}),
        job({"type": "EXPORT", "extractConfig": {"sourceTable": TABLE,
                                                 "destinationUris": ["s3://b/k"]}}),
        entry("jobservice.jobcompleted", "bigquery.googleapis.com", serviceData={
            "jobCompletedEvent": {"job": {"jobName": {"projectId": "p"}, "jobConfiguration": {
                "tableCopy": {"sourceTables": [{"projectId": "p", "datasetId": "d",
                                                "tableId": "t"}],
                              "destinationTable": {"projectId": "q", "datasetId": "d",
                                                   "tableId": "t"}}},
                "jobStatus": {"state": "DONE"}}}}),
        entry("google.cloud.resourcemanager.v3.Projects.MoveProject",
              "cloudresourcemanager.googleapis.com",
              request={"name": "projects/p", "destinationParent": "organizations/1"})]
    count = 0
    for positive in positives:
        proto = positive["protoPayload"]
        for changed in variants({k: v for k, v in proto.items()
                                 if k in ("metadata", "serviceData", "resourceName",
                                          "request")}):
            assert_no_internal_error({**positive, "protoPayload": {**proto, **changed},
                                      "insertId": f"v{count}"})
            count += 1
    assert count > 100


def test_project_moved_under_an_organisation_but_not_between_folders_or_as_code() -> None:
    method = "google.cloud.resourcemanager.v3.Projects.MoveProject"

    def move(parent: str, **extra: Any) -> dict:
        return entry(method, "cloudresourcemanager.googleapis.com", principal=ANALYST,
                     resource="projects/corp-prod", request={
                         "name": "projects/corp-prod", "destinationParent": parent}, **extra)

    assert findings(move("organizations/1"), move("folders/1234"),
                    move("organizations/1", requestMetadata=TERRAFORM)) == [
        ("gcp.project_moved", "high", "organizations/1")]


def test_legacy_completed_query_without_a_statement_type_is_read_from_its_text() -> None:
    """Old AuditData entries (``jobservice.jobcompleted``) may carry the query alone: a
    DROP TABLE there counts, a dropped view (no data) does not."""
    def completed(text: str) -> dict:
        return entry("jobservice.jobcompleted", "bigquery.googleapis.com", principal=ANALYST,
                     serviceData={"jobCompletedEvent": {"eventName": "query_job_completed",
                                  "job": {"jobName": {"projectId": "corp-prod", "jobId": "j"},
                                          "jobConfiguration": {"query": {"query": text}},
                                          "jobStatus": {"state": "DONE"}}}})

    assert tallies(completed("DROP TABLE IF EXISTS sales.orders"),
                   completed("DROP VIEW sales.orders_view")) == [
        ("gcp.bigquery_destruction", ("sales.orders",))]
