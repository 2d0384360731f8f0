"""Export shapes that wrap whole audit records: told apart here, read by ``parser``.

Logs often reach a user not as the service delivered them but through an export, and each
export wraps the record in its own way. Where the whole record is inside (a CloudWatch Logs
event's ``message`` holds the full audit JSON), the parser takes it out and reads it as
it reads any record; where the export keeps only some fields, nothing here guesses the
rest, and the dead letter names the shape and the way to export the whole record.

- CloudWatch Logs export to S3: lines ``<ISO timestamp> <message>``;
- ``aws logs filter-log-events`` and ``get-log-events`` output: ``{"events": [...]}``,
  each event's ``message`` the record;
- Logs Insights results: rows with an ``@message`` field (the console's JSON download),
  or ``aws logs get-query-results`` output (``{"results": [[{"field", "value"}]]}``);
- CloudTrail Lake results holding the whole record (``SELECT eventJson``): rows
  ``{"eventJson": "<record>"}`` (a JSON array or JSON lines) and ``aws cloudtrail
  get-query-results`` output (``{"QueryResultRows": [[{"eventJson": ...}]]}``);
- CSV with a header row: a column holding the whole record as JSON (``eventjson``,
  ``@message``, alone or among others) is read row by row; an Azure Log Analytics export
  (a ``TimeGenerated`` column) is read row by row as the JSON export of the same rows is;
  CloudTrail columns flattened by Athena or CloudTrail Lake (``useridentity`` as
  ``{type=AssumedRole, ...}``, not JSON) are refused with a hint.

Exports that keep a record in another shape than the service's are named in their dead
letter (``unsupported_export``): GCP audit logs routed to BigQuery (``protopayload_auditlog``
columns) say how to get the LogEntry JSON instead.
"""

from __future__ import annotations

import re
from typing import Any

# ``2026-12-02T00:00:00.100Z {...}``: the timestamp CloudWatch Logs writes before each
# message of an export to S3 (the message is whatever was logged: here an audit record).
_EXPORT_LINE = re.compile(rb"[ \t]*\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:?\d\d)? +(?=[{\[])")
_PROBED_LINES = 5
# Header columns that hold a whole record as JSON, lower-cased: read row by row.
JSON_COLUMNS = ("eventjson", "@message")
# A Log Analytics (Azure Monitor) query result always has this column: such a CSV is the
# rows of the JSON export, whose columns the azure module reads, with every cell as text.
LOG_ANALYTICS_COLUMN = "timegenerated"
# Columns of CloudTrail fields flattened into CSV (Athena's table, CloudTrail Lake's
# results): two of them in a header say which export it is.
_CLOUDTRAIL_COLUMNS = frozenset({"eventversion", "useridentity", "eventtime", "eventsource",
                                 "eventname", "eventid", "useridentity.arn", "awsregion",
                                 "sourceipaddress", "recipientaccountid"})
CSV_HINT = ("CloudTrail fields flattened into CSV (Athena or CloudTrail Lake query results) "
            "are not the records: their nested fields lose their JSON, so identities cannot "
            "be read. Read the trail's S3 delivery files instead, or export the whole record "
            "as one JSON column named eventjson (a CSV with that column is read row by row)")
TEXT_HINT = ("input is text but not JSON, and not a known export of JSON records "
             "(JSON lines, CloudWatch Logs exports, CSV with an eventjson or @message column, "
             "Azure Log Analytics CSV)")
BIGQUERY_HINT = ("GCP audit logs exported to BigQuery (protopayload_auditlog columns) are "
                 "not LogEntry JSON: their payload fields are renamed and flattened. Read "
                 "the LogEntry JSON instead: a Cloud Storage log sink's files, `gcloud "
                 "logging read --format=json`, or a Pub/Sub sink")
LAKE_ROW, LAKE_RESULTS = "CloudTrail Lake row", "CloudTrail Lake query results"
LAKE_SHAPES = (LAKE_ROW, LAKE_RESULTS)
# Key spellings of the Lake column that holds the whole record (as the query names it).
_LAKE_KEYS = ("eventJson", "eventjson", "EventJson")


def export_message(line: bytes) -> int:
    """Where the message starts in a CloudWatch Logs export line, or 0 when ``line`` is
    not ``<ISO timestamp> <JSON>``."""
    found = _EXPORT_LINE.match(line)
    return found.end() if found is not None else 0


def looks_like_export_lines(lines: list[bytes]) -> bool:
    """One of the first few non-empty lines is a CloudWatch Logs export line."""
    probed = 0
    for line in lines:
        if not line.strip():
            continue
        if export_message(line):
            return True
        probed += 1
        if probed >= _PROBED_LINES:
            return False
    return False


def starts_like_export(head: bytes) -> bool:
    """The first bytes of a file are CloudWatch Logs export lines or a CSV header this
    module knows: a directory walk reads such a file whatever its name (an export to S3
    writes ``000000`` objects, a query result is ``results.csv``)."""
    lines = head.split(b"\n")
    first = next((line for line in lines if line.strip()), b"")
    return looks_like_export_lines(lines) or csv_header(first) is not None


def csv_header(line: bytes) -> list[str] | None:
    """The lower-cased column names when ``line`` is a CSV header naming a JSON-record
    column, a Log Analytics export or CloudTrail fields, else ``None``. A header of one
    column has no comma: ``SELECT eventJson`` exported from CloudTrail Lake is one."""
    if line.lstrip()[:1] in (b"{", b"["):
        return None
    names = [name.strip().strip('"').strip().lower()
             for name in line.decode("utf-8", "replace").split(",")]
    if len(names) == 1:
        return names if names[0] in JSON_COLUMNS else None
    if any(name in JSON_COLUMNS for name in names) or LOG_ANALYTICS_COLUMN in names or \
            len(_CLOUDTRAIL_COLUMNS.intersection(names)) >= 2:
        return names
    return None


def json_column(names: list[str]) -> int | None:
    """The index of the column that holds the whole record, ``-1`` when each row is a
    record of its own (a Log Analytics export), or ``None``: flattened fields."""
    for wanted in JSON_COLUMNS:
        if wanted in names:
            return names.index(wanted)
    return -1 if LOG_ANALYTICS_COLUMN in names else None


LogsMessages = tuple[str, list[tuple[str, Any, Any]]]


def logs_messages(record: dict[str, Any]) -> LogsMessages | None:
    """The messages of a CloudWatch Logs export object, as ``(shape, [(where, message,
    log group)])``, or ``None`` when ``record`` is not one. ``where`` is the suffix that
    names the message's place in the object."""
    events = record.get("events")
    if isinstance(events, list) and ("nextToken" in record or "searchedLogStreams" in record
                                     or "nextForwardToken" in record
                                     or events and all(isinstance(item, dict)
                                                       and "message" in item
                                                       for item in events)):
        return "CloudWatch Logs events", [
            (f"#events[{index}]", item.get("message") if isinstance(item, dict) else None,
             None) for index, item in enumerate(events)]
    if "@message" in record:
        return "Logs Insights row", [("#@message", record["@message"], record.get("@log"))]
    results = record.get("results")
    if isinstance(results, list) and "status" in record:
        found = []
        for index, row in enumerate(results):
            fields = {cell.get("field"): cell.get("value") for cell in row
                      if isinstance(cell, dict)} if isinstance(row, list) else {}
            found.append((f"#results[{index}]", fields.get("@message"), fields.get("@log")))
        return "Logs Insights results", found
    return lake_messages(record)


def lake_messages(record: dict[str, Any]) -> LogsMessages | None:
    """The records of CloudTrail Lake results that selected ``eventJson``: one row
    (``{"eventJson": "<record>"}``) or ``get-query-results`` output, whose rows are lists
    of one-key objects, one per column."""
    for key in _LAKE_KEYS:
        if key in record:
            return LAKE_ROW, [(f"#{key}", record[key], None)]
    rows = record.get("QueryResultRows")
    if not isinstance(rows, list):
        return None
    found = []
    for index, row in enumerate(rows):
        cells: dict[str, Any] = {}
        for cell in row if isinstance(row, list) else ():
            if isinstance(cell, dict):
                cells.update(cell)
        value = next((cells[key] for key in _LAKE_KEYS if key in cells), None)
        found.append((f"#QueryResultRows[{index}]", value, None))
    return LAKE_RESULTS, found


def unsupported_export(low: dict[str, Any]) -> str | None:
    """A hint naming an export that keeps records in a shape no source reads, or ``None``
    (``low``: the record with lower-cased keys)."""
    if isinstance(low.get("protopayload_auditlog"), dict):
        return BIGQUERY_HINT
    return None


def cluster_of(log: Any) -> str | None:
    """The EKS cluster a Logs Insights ``@log`` names (``<account>:/aws/eks/<cluster>/...``)."""
    if not isinstance(log, str):
        return None
    group = log.partition(":")[2] or log
    if group.startswith("/aws/eks/"):
        return group.split("/")[3] or None
    return None
