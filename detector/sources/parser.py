"""Framing, format detection, stage merging and accounting: bytes in, Events out.

A ``Parser`` takes payloads (a file's bytes, a Kafka message) and returns Events. For each
payload it:

1. sniffs gzip by its magic bytes and refuses empty and binary input with a dead letter;
2. frames it: one JSON document (``{"Records": [...]}``, an array, one object), JSON lines,
   or, when neither parses, a scan of consecutive pretty-printed values so one bad record
   never drops its neighbours;
3. unwraps envelopes (S3 ``Records``, CloudWatch Logs ``DATA_MESSAGE``, EventBridge
   ``detail``, SQS ``Body`` strings, Kubernetes ``EventList``, Azure ``records``, AKS
   ``properties.log``) and recognises non-events (digests, CWL control messages);
4. chooses the format per record by its shape (one file may mix dialects) and calls the
   source module, merging Kubernetes stages by ``auditID`` across payloads (``stages``);
5. counts every record: ``records_read[source]`` and exactly one of ``events``,
   ``dead_letters[(source, reason)]`` or ``skipped[(source, reason)]``; a CloudTrail
   event seen recently (same ``eventID``, time, action, identity) is a ``duplicate_event``.

``finish()`` flushes Kubernetes requests seen only at ``RequestReceived`` as ``partial``.
"""

from __future__ import annotations

import gc
import json
import logging
import zlib
from operator import attrgetter
from typing import Any, BinaryIO

import orjson

from detector.event import Event
from detector.identity import IdentityRules, Resolver
from detector.sources import azure, cloudtrail, gcp, k8s
from detector.sources.common import RecentMap, RecordError, SkipRecord, as_dict
from detector.sources.deadletter import REASONS, DeadLetterSink
from detector.sources.stages import StageMerger
from detector.stats import RunStats

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
MAX_SEEN_EVENT_IDS = 200_000
_MAX_DEPTH = 4
_KIND, _RESOLUTION, _TS = (attrgetter(name) for name in ("identity_kind", "identity_resolution",
                                                        "ts"))
_GZIP_MAGIC = b"\x1f\x8b"
_SOURCE_ALIASES = {
    "aws": "aws.cloudtrail", "cloudtrail": "aws.cloudtrail", "aws.cloudtrail": "aws.cloudtrail",
    "gcp": "gcp.audit", "gcp.audit": "gcp.audit",
    "k8s": "k8s.audit", "kubernetes": "k8s.audit", "k8s.audit": "k8s.audit",
    "azure": "azure", "azure.activity": "azure.activity", "azure.signin": "azure.signin",
}


def canonical_source(name: str | None) -> str | None:
    """Map a ``--source`` value (``aws``, ``gcp``, ``k8s``, ``azure`` or a full name)."""
    if name is None:
        return None
    try:
        return _SOURCE_ALIASES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; known: {sorted(_SOURCE_ALIASES)}") from None


class Parser:
    """Stateful parser: one per run (replay) or per worker; not thread-safe."""

    def __init__(self, *, stats: RunStats, dead_letters: DeadLetterSink,
                 source: str | None = None, rules: IdentityRules | None = None,
                 resolver: Resolver | None = None,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> None:
        self.stats = stats
        self.dead_letters = dead_letters
        self.source = canonical_source(source)
        self.resolver = resolver or Resolver(rules)
        self.max_record_bytes = max_record_bytes
        self._out: list[Event] = []
        self._stages = StageMerger(self._emit_k8s, self._skip_stage)
        # Recent CloudTrail events by (eventID, time, action, identity): the same event
        # delivered twice (S3 and CloudWatch Logs or EventBridge both enabled, a redelivered
        # object) counts once (edge case B13). The extra fields keep hand-made test data that
        # reuses placeholder ids from collapsing.
        self._seen_ids = RecentMap(MAX_SEEN_EVENT_IDS)

    # ------------------------------------------------------------------ public

    def feed(self, data: bytes, origin: str) -> list[Event]:
        """Parse one payload (a whole file or message) and return its events."""
        self._out = []
        self.stats.bytes_read += len(data)
        # A large payload allocates millions of dicts that hold no reference cycles; the
        # cyclic GC would rescan them all repeatedly (measured: orjson.loads of a 1.6 KB/event
        # S3 file runs 2.6x faster without it). It is switched back on before returning.
        collect = gc.isenabled()
        gc.disable()
        try:
            self._frame(data, origin)
        finally:
            if collect:
                gc.enable()
        out, self._out = self._out, []
        return out

    def finish(self) -> list[Event]:
        """Emit Kubernetes requests still waiting for their final stage, as partial."""
        self._out = []
        self._stages.flush_all()
        out, self._out = self._out, []
        return out

    def feed_stream(self, handle: BinaryIO, origin: str, chunk_lines: int = 5000
                    ) -> Any:
        """Yield event lists from a binary stream; JSON lines are parsed as they arrive."""
        head = handle.peek(2)[:2] if hasattr(handle, "peek") else b""
        if head == _GZIP_MAGIC or not _first_line_is_record(handle):
            yield self.feed(handle.read(), origin)
            return
        lines: list[tuple[int, bytes]] = []
        for number, line in enumerate(handle, 1):
            lines.append((number, line))
            if len(lines) >= chunk_lines:
                yield self._feed_lines(lines, origin)
                lines = []
        yield self._feed_lines(lines, origin)

    # ------------------------------------------------------------------ framing

    def _frame(self, data: bytes, origin: str) -> None:
        if data[:2] == _GZIP_MAGIC:
            data = self._gunzip(data, origin)
            if data is None:
                return
        if data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
        head = data[:4096].lstrip()
        if not head:
            self.dead_input("empty_file", REASONS["empty_file"], origin, None)
            return
        if b"\x00" in data[:8192]:
            self.dead_input("binary", REASONS["binary"], origin, data[:256])
            return
        if head[:1] not in (b"{", b"["):
            self.dead_input("unknown_format", "input is text but not JSON", origin,
                               data[:1024])
            return
        if self._whole_document(data, head, origin):
            return
        if self._json_lines(data, origin):
            return
        self._scan(data, origin)

    def _gunzip(self, data: bytes, origin: str) -> bytes | None:
        decomp = zlib.decompressobj(wbits=47)
        try:
            out = decomp.decompress(data)
            while decomp.unused_data[:2] == _GZIP_MAGIC:  # concatenated members
                rest = decomp.unused_data
                decomp = zlib.decompressobj(wbits=47)
                out += decomp.decompress(rest)
        except zlib.error as err:
            self.dead_input("bad_gzip", f"{REASONS['bad_gzip']}: {err}", origin, data[:256])
            return None
        if not decomp.eof:
            message = f"{REASONS['truncated_gzip']} ({len(out)} bytes recovered, not parsed)"
            self.dead_input("truncated_gzip", message, origin, data[:256])
            return None
        self.stats.bytes_read += len(out) - len(data)
        return out

    def _whole_document(self, data: bytes, head: bytes, origin: str) -> bool:
        container = head[:1] == b"[" or b'"Records"' in head[:256] or b'"records"' in head[:256]
        if len(data) > self.max_record_bytes and not container:
            return False
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        self._dispatch(document, origin, {}, 0)
        return True

    def _json_lines(self, data: bytes, origin: str) -> bool:
        lines = data.split(b"\n")
        if not self._looks_like_json_lines(lines):
            return False
        self._feed_lines(list(enumerate(lines, 1)), origin, collect=False)
        return True

    def _looks_like_json_lines(self, lines: list[bytes]) -> bool:
        """One of the first few non-empty lines is a whole JSON object (or is oversized:
        still line framing, it becomes a dead letter); a bad first line does not decide."""
        probed = 0
        for line in lines:
            if not line.strip():
                continue
            if len(line) > self.max_record_bytes or _parses_as_object(line):
                return True
            probed += 1
            if probed >= 5:
                return False
        return False

    def _feed_lines(self, lines: list[tuple[int, bytes]], origin: str,
                    collect: bool = True) -> list[Event]:
        if collect:
            self._out = []
        for number, line in lines:
            stripped = line.strip()
            if not stripped:
                continue
            where = f"{origin}:{number}"
            self.stats.bytes_read += len(line) if collect else 0
            if len(stripped) > self.max_record_bytes:
                message = (f"{REASONS['oversized_record']} ({len(stripped)} bytes > "
                           f"{self.max_record_bytes})")
                self.dead_input("oversized_record", message, where, stripped[:1024])
                continue
            try:
                value = orjson.loads(stripped)
            except orjson.JSONDecodeError as err:
                self._dead_json(err, where, stripped)
                continue
            self._dispatch(value, where, {}, 0)
        if not collect:
            return []
        out, self._out = self._out, []
        return out

    def _scan(self, data: bytes, origin: str) -> None:
        """Pretty-printed values with errors between them (missing commas, garbage)."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as err:
            self.dead_input("invalid_utf8", f"{REASONS['invalid_utf8']} at byte {err.start}",
                               origin, data)
            return
        for index, (value, fragment) in enumerate(_scan_values(text)):
            where = f"{origin}#value[{index}]"
            if fragment is not None:
                reason = "truncated" if not fragment.rstrip().endswith(("}", "]")) else \
                    "invalid_json"
                self.dead_input(reason, REASONS[reason], where, fragment)
            else:
                self._dispatch(value, where, {}, 0)

    # ------------------------------------------------------------------ envelopes

    def _dispatch(self, value: Any, origin: str, hints: dict[str, Any], depth: int) -> None:
        if isinstance(value, list) and depth < _MAX_DEPTH:
            for index, item in enumerate(value):
                self._dispatch(item, f"{origin}[{index}]", hints, depth + 1)
            return
        if not isinstance(value, dict):
            self.dead_input("unknown_format", "record is not a JSON object", origin,
                               _raw(value))
            return
        records = value.get("Records")
        if isinstance(records, list):
            self._records(records, origin, hints)
        elif depth < _MAX_DEPTH and not self._envelope(value, origin, hints, depth):
            self._route(value, origin, hints)

    def _records(self, records: list[Any], origin: str, hints: dict[str, Any]) -> None:
        """The S3 delivery file: the hot loop, kept free of per-record detection work."""
        if self.source not in (None, cloudtrail.SOURCE):
            for index, record in enumerate(records):
                self._dispatch(record, f"{origin}#Records[{index}]", hints, _MAX_DEPTH - 1)
            return
        stats, resolver, append = self.stats, self.resolver, self._out.append
        new: list[Event] = []  # fast-path events only: others were counted when dispatched
        append_new = new.append
        normalise, source = cloudtrail.normalise, cloudtrail.SOURCE
        add_seen = self._seen_ids.add
        read = 0
        for index, record in enumerate(records):
            if type(record) is not dict or "eventName" not in record:
                self._dispatch(record, f"{origin}#Records[{index}]", hints, _MAX_DEPTH - 1)
                continue
            read += 1
            try:
                event = normalise(record, resolver, hints)
            except Exception as err:  # noqa: BLE001 - counted per reason, never raised
                self._record_failed(err, source, record, f"{origin}#Records[{index}]")
                continue
            if not add_seen((event.event_id, event.ts, event.action, event.identity)):
                stats.skipped[(source, "duplicate_event")] += 1
                continue
            append(event)
            append_new(event)
        stats.records_read[source] += read
        if new:  # tallied in C over the batch, not per event in Python
            stats.events[source] += len(new)
            stats.events_by_kind.update(map(_KIND, new))
            stats.identity_resolution.update(map(_RESOLUTION, new))
            stats.last_event_ts = max(stats.last_event_ts, max(map(_TS, new)))

    def _record_failed(self, err: Exception, source: str, record: Any, where: str) -> None:
        """Count a record a source module refused: dead letter, skip, or parser bug."""
        if isinstance(err, SkipRecord):
            self.stats.skipped[(source, err.reason)] += 1
        elif isinstance(err, RecordError):
            self._count_dead(source, err.reason, err.message, where, record)
        else:
            logger.debug("parser bug on %s", where, exc_info=err)
            self._count_dead(source, "internal_error",
                             f"{REASONS['internal_error']}: {type(err).__name__}", where, record)

    def _envelope(self, value: dict[str, Any], origin: str, hints: dict[str, Any],
                  depth: int) -> bool:
        """Unwrap a known envelope; True when the value was one (and is now handled)."""
        if "digestPublicKeyFingerprint" in value or ("logFiles" in value
                                                     and "digestStartTime" in value):
            self._skip(cloudtrail.SOURCE, "digest", origin)
            return True
        if "messageType" in value and "logEvents" in value:
            self._cloudwatch(value, origin, hints)
            return True
        detail = value.get("detail")
        if isinstance(detail, dict) and "detail-type" in value:
            self._dispatch(detail, f"{origin}#detail", dict(hints, path="eventbridge"),
                           depth + 1)
            return True
        for key in ("Body", "body", "Message"):
            body = value.get(key)
            if isinstance(body, str) and body.lstrip().startswith(("{", "[")):
                self._nested_json(body, f"{origin}#{key}", hints, depth)
                return True
        items = value.get("items") if value.get("kind") == "EventList" else None
        if items is None:
            items = value.get("records")
        if isinstance(items, list):
            for index, item in enumerate(items):
                self._dispatch(item, f"{origin}[{index}]", hints, depth + 1)
            return True
        return False

    def _nested_json(self, text: str, origin: str, hints: dict[str, Any], depth: int) -> None:
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as err:
            self._dead_json(err, origin, text)
            return
        self._dispatch(value, origin, hints, depth + 1)

    def _cloudwatch(self, value: dict[str, Any], origin: str, hints: dict[str, Any]) -> None:
        group = value.get("logGroup") if isinstance(value.get("logGroup"), str) else ""
        if value.get("messageType") == "CONTROL_MESSAGE":
            self._skip(self.source or UNKNOWN, "control_message", origin)
            return
        hints = dict(hints, path="cwl")
        source = cloudtrail.SOURCE
        if group.startswith("/aws/eks/"):
            hints["cluster"] = group.split("/")[3] or None
            source = k8s.SOURCE
        events = value.get("logEvents")
        if not isinstance(events, list):
            self.dead_input("invalid_record", "logEvents is not a list", origin, None)
            return
        for index, item in enumerate(events):
            where = f"{origin}#logEvents[{index}]"
            message = as_dict(item).get("message")
            if not isinstance(message, str):
                self._dead(source, "invalid_record", "logEvents message is not a string", where,
                           _raw(item))
                continue
            try:
                record = orjson.loads(message)
            except orjson.JSONDecodeError as err:
                reason = "truncated" if message.lstrip().startswith("{") and \
                    not message.rstrip().endswith("}") else _json_reason(err)
                self._dead(source, reason, REASONS[reason], where, message)
                continue
            self._dispatch(record, where, hints, _MAX_DEPTH - 1)

    # ------------------------------------------------------------------ routing

    def _route(self, record: dict[str, Any], origin: str, hints: dict[str, Any]) -> None:
        forced = self.source
        if forced is not None:
            self._route_forced(forced, record, origin, hints)
        elif cloudtrail.looks_like(record):
            self._normalise(cloudtrail.SOURCE, cloudtrail.normalise, record, origin, None, hints)
        elif (payload := gcp.payload_of(record)) is not None:
            if gcp.is_gke(record, payload):
                self._normalise(k8s.SOURCE, k8s.normalise_gke, record, origin, None, hints)
            else:
                self._normalise(gcp.SOURCE, gcp.normalise, record, origin, None, hints)
        elif k8s.looks_like(record):
            self._k8s(record, origin, hints)
        else:
            self._route_other(record, origin, hints)

    def _route_other(self, record: dict[str, Any], origin: str, hints: dict[str, Any]) -> None:
        low = azure.lower_keys(record)
        category = azure.category_of(low)
        if category in azure.AKS_CATEGORIES:
            self._aks(record, low, origin, hints)
        elif azure.is_signin(low):
            self._normalise(azure.SOURCE_SIGNIN, azure.normalise_signin, record, origin, None,
                            hints)
        elif cloudtrail.looks_like_lowercased(low):
            self._normalise(cloudtrail.SOURCE, cloudtrail.normalise, cloudtrail.restore_case(low),
                            origin, None, hints)
        elif azure.looks_like(low):
            self._normalise(azure.SOURCE_ACTIVITY, azure.normalise_activity, record, origin,
                            None, hints)
        elif _unsupported_vendor(low):
            self._skip(UNKNOWN, "unsupported_format", origin)
        else:
            self._dead(UNKNOWN, "unknown_format", REASONS["unknown_format"], origin,
                       _raw(record))

    def _route_forced(self, forced: str, record: dict[str, Any], origin: str,
                      hints: dict[str, Any]) -> None:
        if forced == cloudtrail.SOURCE:
            self._normalise(forced, cloudtrail.normalise, record, origin, None, hints)
        elif forced == gcp.SOURCE:
            self._normalise(forced, gcp.normalise, record, origin, None, hints)
        elif forced == k8s.SOURCE:
            if gcp.payload_of(record) is not None:
                self._normalise(forced, k8s.normalise_gke, record, origin, None, hints)
            else:
                self._k8s(record, origin, hints)
        elif forced == "azure":
            self._route_other(record, origin, hints)
        elif forced == azure.SOURCE_SIGNIN:
            self._normalise(forced, azure.normalise_signin, record, origin, None, hints)
        else:
            self._normalise(forced, azure.normalise_activity, record, origin, None, hints)

    def _aks(self, record: dict[str, Any], low: dict[str, Any], origin: str,
             hints: dict[str, Any]) -> None:
        raw_log = azure.lower_keys(low.get("properties")).get("log")
        log = raw_log if isinstance(raw_log, dict) else _loads_dict(raw_log)  # object or JSON
        if not log:
            self._dead(k8s.SOURCE, "invalid_record", "AKS record has no properties.log event",
                       origin, _raw(record))
            return
        if "requestReceivedTimestamp" not in log and low.get("time"):
            log = dict(log, requestReceivedTimestamp=low["time"])
        cluster = azure.aks_cluster(low)
        self._k8s(log, origin, dict(hints, cluster=cluster) if cluster else hints)

    # ------------------------------------------------------------------ kubernetes stages

    def _k8s(self, record: dict[str, Any], origin: str, hints: dict[str, Any]) -> None:
        audit_id, stage = record.get("auditID"), record.get("stage")
        if not isinstance(audit_id, str) or not isinstance(stage, str):
            self._normalise(k8s.SOURCE, k8s.normalise, record, origin, None, hints)
            return
        self.stats.records_read[k8s.SOURCE] += 1
        self._stages.feed(record, audit_id, origin, hints)

    def _skip_stage(self, reason: str) -> None:
        self.stats.skipped[(k8s.SOURCE, reason)] += 1

    def _emit_k8s(self, record: dict[str, Any], origin: str, hints: dict[str, Any],
                  partial: bool) -> None:
        try:
            event = k8s.normalise(record, self.resolver, hints, partial)
        except Exception as err:  # noqa: BLE001 - one record must never stop the run
            self._record_failed(err, k8s.SOURCE, record, origin)
            return
        self._count_event(event)

    # ------------------------------------------------------------------ accounting

    def _normalise(self, source: str, func: Any, record: dict[str, Any], origin: str,
                   index: int | None, hints: dict[str, Any]) -> None:
        self.stats.records_read[source] += 1
        try:
            event = func(record, self.resolver, hints)
        except Exception as err:  # noqa: BLE001 - one record must never stop the run
            where = origin if index is None else f"{origin}#Records[{index}]"
            self._record_failed(err, source, record, where)
            return
        self._count_event(event)

    def _count_event(self, event: Event) -> None:
        stats = self.stats
        if event.source == cloudtrail.SOURCE:
            if not self._seen_ids.add((event.event_id, event.ts, event.action, event.identity)):
                stats.skipped[(event.source, "duplicate_event")] += 1
                return
        stats.events[event.source] += 1
        stats.events_by_kind[event.identity_kind] += 1
        stats.identity_resolution[event.identity_resolution] += 1
        if event.ts > stats.last_event_ts:
            stats.last_event_ts = event.ts
        self._out.append(event)

    def _count_dead(self, source: str, reason: str, message: str, origin: str,
                    record: Any) -> None:
        self.stats.dead_letters[(source, reason)] += 1
        self.dead_letters.write(reason, message, origin, _raw(record), source)

    def _dead(self, source: str, reason: str, message: str, origin: str,
              raw: bytes | str | None) -> None:
        """A record that is read and dead-lettered before any source module saw it."""
        self.stats.records_read[source] += 1
        self.stats.dead_letters[(source, reason)] += 1
        self.dead_letters.write(reason, message, origin, raw, source)

    def dead_input(self, reason: str, message: str, origin: str,
                   raw: bytes | str | None) -> None:
        """Dead-letter input that is bad before any record is found (file, framing)."""
        self._dead(self.source if self.source in _COUNTED else UNKNOWN, reason, message,
                   origin, raw)

    def _dead_json(self, err: Exception, origin: str, raw: bytes | str) -> None:
        reason = _json_reason(err)
        if reason == "invalid_json" and isinstance(raw, (bytes, str)):
            text = raw.rstrip()
            closing = b"}]" if isinstance(text, bytes) else "}]"
            if text[:1] in (b"{", "{") and text[-1:] not in (closing[:1], closing[1:]):
                reason = "truncated"
        self.dead_input(reason, f"{REASONS[reason]}: {err}"[:300], origin, raw)

    def _skip(self, source: str, reason: str, origin: str) -> None:
        logger.debug("skipped %s record at %s", reason, origin)
        self.stats.records_read[source] += 1
        self.stats.skipped[(source, reason)] += 1


_COUNTED = frozenset({"aws.cloudtrail", "gcp.audit", "k8s.audit", "azure.activity",
                      "azure.signin"})


def _json_reason(err: Exception) -> str:
    text = str(err)
    return "invalid_utf8" if "UTF-8" in text or "utf-8" in text else "invalid_json"


def _parses_as_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _first_line_is_record(handle: Any) -> bool:
    if not hasattr(handle, "peek"):
        return False
    head = handle.peek(65536)
    line, newline, _ = head.partition(b"\n")
    return bool(newline) and _parses_as_object(line)


def _loads_dict(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _raw(value: Any) -> bytes | str | None:
    if value is None or isinstance(value, (bytes, str)):
        return value
    try:
        return orjson.dumps(value, default=str)
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)[:4096]


def _unsupported_vendor(low: dict[str, Any]) -> bool:
    """Okta, GitHub, OpenAI and Anthropic audit records: recognised, not supported."""
    if "actor" in low and ("eventtype" in low or "displaymessage" in low):
        return True  # Okta System Log
    if "action" in low and ("actor" in low or "programmatic_access_type" in low):
        return True  # GitHub audit log
    if "effective_at" in low or low.get("object") == "organization.audit_log":
        return True  # OpenAI audit log
    return "organization_id" in low and "actor" in low  # Anthropic activity


def _scan_values(text: str) -> Any:
    """Yield ``(value, None)`` per decodable value and ``(None, fragment)`` per bad stretch."""
    decoder = json.JSONDecoder()
    position, length = 0, len(text)
    if text.lstrip().startswith("["):
        position = text.index("[") + 1
    while position < length:
        while position < length and text[position] in " \t\r\n,]":
            position += 1
        if position >= length:
            return
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            end = _next_value_start(text, position + 1)
            yield None, text[position:end]
            position = end
            continue
        yield value, None
        position = end


def _next_value_start(text: str, start: int) -> int:
    """Where the next top-level object probably starts: a line beginning with ``{``."""
    cursor = start
    while True:
        newline = text.find("\n", cursor)
        if newline < 0:
            return len(text)
        rest = text[newline + 1:newline + 2]
        if rest == "{":
            return newline + 1
        cursor = newline + 1
