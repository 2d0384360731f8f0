"""Framing, format detection, stage merging and accounting: bytes in, Events out.

A ``Parser`` takes payloads (a file's bytes, a Kafka message) and returns Events. For each
payload it:

1. sniffs gzip by its magic bytes (inflating at most ``max_decompressed_bytes``; intact
   members of a multi-member file are kept when a later one is cut, and so are the whole
   JSON lines of the cut member, not a cut record array), decodes bzip2, xz and UTF-16/32
   text and names zstd where Python cannot read it (``compressed``), and refuses empty and
   binary input with a dead letter; input that does not start like JSON or holds a NUL
   byte is judged on its first few lines, so one bad line is one dead letter;
2. frames it: one JSON document (``{"Records": [...]}``, an array, one object), JSON lines,
   or, when neither parses, a salvage of the document's array element by element, or a
   scan of consecutive pretty-printed values, so one bad record never drops its neighbours
   (a record over ``max_record_bytes`` is refused in every framing); a compact S3 file of
   ``MIN_SLICED_BYTES`` or more is decoded in slices of records, with the same result;
3. unwraps envelopes (S3 ``Records``, CloudWatch Logs ``DATA_MESSAGE``, EventBridge
   ``detail``, SQS ``Body`` strings, Kubernetes ``EventList``, Azure ``records``, AKS
   ``properties.log``, Pub/Sub deliveries and Splunk HEC events, ``pubsub``) and
   recognises non-events (digests, CWL control messages);
4. chooses the format per record by its shape (one file may mix dialects) and calls the
   source module, merging Kubernetes stages by ``auditID`` across payloads (``stages``);
5. counts every record: ``records_read[source]`` and exactly one of ``events``,
   ``dead_letters[(source, reason)]`` or ``skipped[(source, reason)]``; a CloudTrail
   event seen recently (same ``eventID``, time, action, identity) is a ``duplicate_event``.

``finish()`` flushes Kubernetes requests seen only at ``RequestReceived`` as ``partial``.
Nothing in a payload stops the parser: a failure outside any one record (a parser bug, a
``MemoryError``) becomes one ``internal_error`` dead letter for the payload, and the events
already found in it are kept.
"""

from __future__ import annotations

import csv
import gc
import io
import json
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterable
from functools import lru_cache
from itertools import chain
from operator import attrgetter
from typing import Any, BinaryIO

import orjson

try:  # Intel ISA-L's inflate (the isal wheel): the same bytes for half of zlib's CPU
    from isal.isal_zlib import decompressobj as _fast_inflater
    from isal.isal_zlib import error as _FastInflateError
except ImportError:  # a platform with no isal wheel: zlib does it all
    _fast_inflater, _FastInflateError = zlib.decompressobj, zlib.error  # type: ignore[misc]

from detector.errors import SinkError
from detector.event import Event
from detector.identity import IdentityRules, Resolver
from detector.sources import (
    azure,
    cloudtrail,
    compressed,
    exports,
    gcp,
    insight,
    k8s,
    pubsub,
    salvage,
)
from detector.sources.common import (
    MAX_EVENT_ID,
    TIME_LEAP_SECONDS,
    RecentMap,
    RecordError,
    SkipRecord,
    as_dict,
    iso_time,
    record_digest,
)
from detector.sources.deadletter import REASONS, DeadLetterSink, Sample
from detector.sources.pieces import Pieces
from detector.sources.stages import StageMerger
from detector.stats import RunStats

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
# A gzip file inflating beyond this is refused unparsed (a 23 MB "bomb" holds 5 GB of zeros);
# decompression stops at the limit, so no more than this is ever allocated for it.
DEFAULT_MAX_DECOMPRESSED_BYTES = 1024 * 1024 * 1024
MAX_SEEN_EVENT_IDS = 200_000
# The path an event came by, counted per source in ``RunStats.events_by_path`` (B13): an
# S3 delivery file's ``Records`` array, a CloudWatch Logs subscription ``DATA_MESSAGE``, an
# EventBridge event's ``detail``, or a bare record (a JSON line, an element of a plain
# array, one object, one Kafka message). CloudTrail never forwards an event above 256 KB to
# CloudWatch Logs, so only the S3 path is complete (docs/metrics.md).
PATH_S3, PATH_CWL, PATH_EVENTBRIDGE, PATH_BARE = "s3", "cwl", "eventbridge", "bare"
PATHS = (PATH_S3, PATH_CWL, PATH_EVENTBRIDGE, PATH_BARE)
_MAX_DEPTH = 4
# Time outliers (see ``Parser._place``, and ``common.TIME_LEAP_SECONDS``): how many later
# records may stay on the stream's side of a waiting one before it is a ``time_outlier``
# dead letter. Each later record confirms or counts against each waiting one, so at most
# this many records wait at once.
OUTLIER_STRIKES = 16
_INF = float("inf")
_KIND, _RESOLUTION, _TS = (attrgetter(name) for name in ("identity_kind", "identity_resolution",
                                                        "ts"))
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_RESERVED_FLAGS = 0xE0  # bits 5 to 7 of the header's flags: zlib refuses them
_MAX_LAYERS = 3  # compression layers read in one input (gzip of gzip is two)
# A compact S3 delivery file this large is decoded in slices (``Parser._sliced_records``).
_RECORDS_HEAD = b'{"Records":['
SLICE_BYTES = 32 * 1024
MIN_SLICED_BYTES = 1024 * 1024
_JSON_SPACE = b" \t\r\n"
_NOT_SPACE = re.compile(rb"[^ \t\r\n]")  # a byte that is not JSON whitespace
_WHITESPACE = re.compile(r"[ \t\r\n]*")
# A document whose first key holds the record array: CloudTrail's S3 file, Azure's export.
_ARRAY_DOCUMENT = re.compile(r'\s*\{\s*"(Records|records)"\s*:\s*\[')
_FIRST_KEY = re.compile(r'\{\s*"((?:[^"\\]|\\.){1,64})"\s*:')
_SURROGATE = re.compile("[\udc80-\udcff]")  # an undecodable byte, kept by surrogateescape
_BOUNDARY_KEYS = 8
# A line that starts a JSON object or array: where scanning starts after a text prefix.
_VALUE_LINE = re.compile(r"(?:^|(?<=\n))[ \t]*[{\[]")
_CONTROL_BYTES = bytes(set(range(32)) - {9, 10, 12, 13}) + b"\x7f"
_BAD = object()  # a value that was dead-lettered instead of decoded
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


def _entry_hash(record: dict[str, Any]) -> int:
    """This process's hash of ``record``'s JSON bytes, for a duplicate check within a run.

    Keys sorted: two sinks (or a push and a pull export) may write one entry's keys in
    different orders. Measured on replay_data's GCP entries: 1.4 us an entry sorted,
    against 1.0 us unsorted (``record_digest``'s sha256 is 2.6 us)."""
    try:
        return hash(orjson.dumps(record, option=orjson.OPT_SORT_KEYS))
    except (TypeError, orjson.JSONEncodeError):  # e.g. integers beyond 64 bits
        return hash(record_digest(record))


class Parser:
    """Stateful parser: one per run (replay) or per worker; not thread-safe."""

    def __init__(self, *, stats: RunStats, dead_letters: DeadLetterSink,
                 source: str | None = None, rules: IdentityRules | None = None,
                 resolver: Resolver | None = None,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
                 archive: bool = False) -> None:
        self.stats = stats
        self.dead_letters = dead_letters
        self.source = canonical_source(source)
        self.resolver = resolver or Resolver(rules)
        self.max_record_bytes = max_record_bytes
        self.max_decompressed_bytes = max_decompressed_bytes
        self._out: list[Event] = []
        self._stages = StageMerger()  # given _emit_k8s and _skip_stage per call
        # Recent CloudTrail events by (eventID, time, action, identity): the same event
        # delivered twice (S3 and CloudWatch Logs or EventBridge both enabled, a redelivered
        # object) counts once (edge case B13). The extra fields keep hand-made test data that
        # reuses placeholder ids from collapsing.
        self._seen_ids = RecentMap(MAX_SEEN_EVENT_IDS)
        self._named: set[str] = set()  # unsupported vendors and own outputs already logged
        # The stream's range of event times (``_place``), and the bounds an event must fall
        # within to pass without a look: the range widened by ``TIME_LEAP_SECONDS``, or an
        # empty interval while records wait in ``_held`` (each later record judges them).
        self._earliest, self._newest = _INF, -_INF
        self._low, self._high = _INF, -_INF
        self._held: list[_Held] = []
        self._read_source: str | None = None  # the source _route's record was counted under
        self._clock = -_INF  # the machine's clock at its last reading (``_after_clock``)
        # An archive of samples (``--archive``): its records are in no time order, so none
        # is judged by the others' times (``_place``).
        self.archive = archive

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
        except SinkError:
            raise
        except Exception as err:  # noqa: BLE001 - last resort: one payload never ends a run
            logger.warning("parser failed on %s: %s: %s", origin, type(err).__name__, err,
                           exc_info=logger.isEnabledFor(logging.DEBUG))
            self.dead_input("internal_error", f"{REASONS['internal_error']}: "
                            f"{type(err).__name__} while reading the payload", origin,
                            data[:1024])
        finally:
            if collect:
                gc.enable()
        out, self._out = self._out, []
        return out

    def pending_origins(self) -> list[str]:
        """Origins of the Kubernetes stages waiting for the rest of their request and of
        the records waiting for their time to be confirmed (a long-lived worker must not
        commit past the earliest)."""
        return self._stages.pending_origins() + [held.where for held in self._held]

    def finish(self) -> list[Event]:
        """Emit Kubernetes requests still waiting for their final stage, as partial, and
        the records whose time no later record judged (nothing came after them)."""
        self._out = []
        self._stages.flush_all(self._emit_k8s)
        now = time.time()
        for held in self._held:
            if held.event.ts > now + TIME_LEAP_SECONDS:
                # the stream's first record, after the machine's clock, and no record after
                # it confirmed it: the record from the future it looked like
                self._future(held.event, held.record, held.where, now)
            else:
                self._count_placed(held.event, held.path)
        self._held = []
        self._set_bounds()
        out, self._out = self._out, []
        return out

    def feed_stream(self, handle: BinaryIO, origin: str, chunk_lines: int = 5000,
                    size: int | None = None) -> Any:
        """Yield event lists from a binary stream (a large file, stdin) in bounded memory:
        JSON lines are parsed as they arrive, and the rest is judged from its start before
        any of it is read whole (``_stream_verdict``). ``size``: the stream's size when
        known (a file's), else it is counted when a dead letter needs it."""
        pieces = Pieces(handle)
        mode = self._stream_verdict(pieces, origin, size)
        if mode in ("whole", "compressed"):
            data = pieces.rest(self.max_decompressed_bytes, size)
            if data is not None:
                yield self.feed(data, origin)
            else:
                self._too_large(pieces, origin, size, mode)
            return
        if mode is None:
            self.stats.bytes_read += pieces.read_bytes
            return
        feed = self._feed_mixed_lines if mode == "mixed" else \
            self._feed_export_lines if mode == "export" else self._feed_lines
        lines: list[tuple[int, bytes]] = []
        for number, line, length in pieces.lines(self.max_record_bytes):
            if length > len(line):  # over the record limit: only its start was kept, and
                yield feed(lines, origin)  # the lines before it go first
                lines = []
                self.stats.bytes_read += length
                self._oversized(length, f"{origin}:{number}", line)
                continue
            if line.startswith(b"\xef\xbb\xbf"):
                # a byte-order mark, dropped as ``_frame`` drops a file's: on any line, for
                # exports written with one each (PowerShell) and then concatenated
                line = line[3:]
            lines.append((number, line))
            if len(lines) >= chunk_lines:
                yield feed(lines, origin)
                lines = []
        yield feed(lines, origin)
        self.stats.bytes_read += pieces.newlines

    def _stream_verdict(self, pieces: Pieces, origin: str, size: int | None) -> str | None:
        """How to read a stream, decided from its first bytes (``Pieces.head``):

        - ``"lines"`` (JSON lines), ``"export"`` (CloudWatch Logs export lines) or
          ``"mixed"`` (binary with JSON-object lines): streamed line by line;
        - ``"compressed"`` (gzip, bzip2, xz, zstd, or UTF-16/32 text, which are decoded
          whole), or ``"whole"`` for a document or text that only whole framing reads
          (``{"Records": [...]}``, pretty-printed JSON, a CSV with a JSON column): read
          whole as ``feed`` reads any payload, up to ``max_decompressed_bytes``;
        - ``None``: one dead letter from its start alone, whose ``raw_size`` is the
          stream's real size (binary with no JSON line near its start, flattened
          CloudTrail CSV, text of no known shape).

        Before, a stream that was not JSON lines was read whole to be judged: a 2 GB sparse
        file cost 4.2 GB of memory to become one ``binary`` dead letter."""
        head = pieces.head
        if head[:2] == _GZIP_MAGIC or compressed.kind_of(head):
            return "compressed"  # read whole, then decoded as ``feed`` decodes it
        start = head[3:] if head[:3] == b"\xef\xbb\xbf" else head
        lines = start.split(b"\n")
        if not pieces.whole:
            lines.pop()  # whole lines only
        first = next((line for line in lines if line.strip()), b"")
        if first and _parses_as_object(first):
            return "lines"
        if not start.strip():  # blank so far: as ``feed`` frames it (empty_file, most often)
            return "whole"
        # as ``_frame_doubtful`` judges a payload: a NUL byte in text that starts like JSON
        # is one record's fault, not the stream's (a document read from stdin lost all of
        # its records to one ``binary`` dead letter)
        if starts_binary(start):
            if any(_parses_as_object(line) for line in lines if line.lstrip()[:1] == b"{"):
                return "mixed"
            self.dead_input("binary", REASONS["binary"], origin,
                            Sample.of(start, 256, pieces.size(size)))
            return None
        if first.lstrip()[:1] in (b"{", b"["):
            return "whole"
        if self._looks_like_json_lines(lines, False):
            return "lines"
        if pieces.whole:  # small text: framed as ``feed`` frames a file of these bytes
            return "whole"
        if exports.looks_like_export_lines(lines):
            return "export"
        names = exports.csv_header(first)
        if names is not None and exports.json_column(names) is None:
            self.dead_input("unknown_format", f"{REASONS['unknown_format']}: "
                            f"{exports.CSV_HINT}", origin, Sample.of(start, 1024,
                                                                     pieces.size(size)))
            return None
        if names is None and \
                _VALUE_LINE.search(start.decode("utf-8", "replace"), 0, 65536) is None:
            self.dead_input("unknown_format", exports.TEXT_HINT, origin,
                            Sample.of(start, 1024, pieces.size(size)))
            return None
        return "whole"

    def _too_large(self, pieces: Pieces, origin: str, size: int | None, mode: str) -> None:
        """One dead letter for a stream that only whole framing reads and that is over
        ``max_decompressed_bytes`` (the rest of it read and dropped, to count it)."""
        size = pieces.size(size)
        reason, what = "oversized_record", "JSON document or text"
        if mode == "compressed":  # named by its kind: a UTF-16 file is no "gzip file"
            head = pieces.head
            kind = "gzip" if head[:2] == _GZIP_MAGIC else compressed.kind_of(head)
            reason = "oversized_record" if kind in (compressed.UTF16, compressed.UTF32) \
                else "decompression_limit"
            what = f"{kind} file"
        self.stats.bytes_read += pieces.read_bytes
        article = "an" if what[:1] in "aeiox" else "a"  # an xz file, a UTF-16 file
        self.dead_input(reason, f"{REASONS[reason]}: {article} {what} of {size:,} bytes is "
                        f"over the {self.max_decompressed_bytes:,}-byte limit for one payload "
                        "(JSON lines are read at any size)", origin,
                        Sample.of(pieces.head, 256, size))

    # ------------------------------------------------------------------ framing

    def _frame(self, data: bytes, origin: str) -> None:
        # Compressed more than once is common enough: CloudWatch Logs subscription data
        # (gzip members) that Firehose compresses again into S3, a .gz of a .gz. Each
        # layer is bounded by ``max_decompressed_bytes`` like the first.
        for layer in range(_MAX_LAYERS + 1):
            kind = "gzip" if data[:2] == _GZIP_MAGIC else \
                compressed.kind_of(data) if data[:1] in compressed.FIRST_BYTES else None
            if kind is None:
                break
            if layer == _MAX_LAYERS:
                self.dead_input("unknown_format", f"input is still {kind} after "
                                f"{_MAX_LAYERS} layers of decompression; not read further",
                                origin, Sample.of(data, 256))
                return
            data = self._gunzip(data, origin) if kind == "gzip" else \
                self._decode_other(data, kind, origin)
            if data is None:
                return
        if data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
        head = data[:4096].lstrip()
        if not head:
            self.dead_input("empty_file", REASONS["empty_file"], origin, None)
            return
        if (b"\x00" in data[:8192] or head[:1] not in (b"{", b"[")) and \
                self._frame_doubtful(data, head, origin):
            return
        # (a REST or Graph list page names ``value`` first, or after ``@odata.context``)
        container = head[:1] == b"[" or b'"Records"' in head[:256] or \
            b'"records"' in head[:256] or b'"value"' in head[:256]
        if (container or not _starts_json_lines(data)) and \
                self._whole_document(data, container, origin):
            return
        if self._json_lines(data, container, origin):
            return
        text = data.decode("utf-8", "surrogateescape")  # bad bytes are found per record
        if not (container and self._salvage(text, origin)):
            self._scan(text, 0, origin)

    def _decode_other(self, data: bytes, kind: str, origin: str) -> bytes | None:
        """bzip2, xz, zstd or UTF-16/32 input as UTF-8 text (``compressed``); what cannot
        be read is one dead letter naming the format (and logged once per format, since a
        folder of them would otherwise end as a run of zero events)."""
        out, problem = compressed.decode(data, kind, self.max_decompressed_bytes)
        if problem is not None:
            reason, message = problem
            self.dead_input(reason, message, origin, Sample.of(data, 256))
            if kind not in self._named and len(self._named) < 64:
                self._named.add(kind)
                logger.warning("%s (first at %s; counted as dead letter %s)", message,
                               origin, reason)
        # b"" (an empty bzip2 stream, a bare byte-order mark) goes on to ``_frame``'s
        # ``empty_file`` dead letter; None (nothing kept from a problem) stops here
        return out

    def _frame_doubtful(self, data: bytes, head: bytes, origin: str) -> bool:
        """Input whose start is not JSON, or that holds a NUL byte; ``False`` leaves it to
        the usual framing. One bad line (a header, a corrupt record) must not drop the
        file, so the format is decided on more than the first line:

        - mostly control bytes: one ``binary`` dead letter (a compressed or executable
          file, not text with a stray NUL), unless some line is a JSON object: then those
          lines are records and each run of the other lines one dead letter
          (``_feed_mixed``);
        - starts like JSON: framed as usual, so a NUL byte in one record or line is that
          record's dead letter;
        - one of the first few lines is a JSON object: JSON lines, each bad line its own
          dead letter;
        - otherwise a NUL byte makes it ``binary`` (its JSON-object lines kept, as above),
          and text is scanned value by value from the first line that starts like JSON (the
          text before it one dead letter), or is one ``unknown_format`` dead letter when no
          such line is near its start."""
        sample = data[:8192]
        binary = mostly_binary(sample)
        if not binary and head[:1] in (b"{", b"["):
            return False
        lines = data.split(b"\n")
        if not binary and self._looks_like_json_lines(lines, False):
            self._feed_lines(list(enumerate(lines, 1)), origin, collect=False)
            return True
        if starts_binary(data, binary):  # binary, or a NUL in text not starting like JSON
            if any(_parses_as_object(line) for line in lines if line.lstrip()[:1] == b"{"):
                self._feed_mixed(list(enumerate(lines, 1)), origin)
            else:
                self.dead_input("binary", REASONS["binary"], origin, Sample.of(data, 256))
            return True
        if self._export_text(data, lines, origin):
            return True
        text = data.decode("utf-8", "surrogateescape")
        found = _VALUE_LINE.search(text, 0, 65536)
        if found is None:
            self.dead_input("unknown_format", exports.TEXT_HINT, origin, Sample.of(data, 1024))
            return True
        self.dead_input("invalid_json", f"{REASONS['invalid_json']}: text before the first "
                        f"JSON value ({found.start()} characters)", f"{origin}#prefix",
                        text[:found.start()])
        self._scan(text, found.start(), origin)
        return True

    def _feed_mixed(self, lines: list[tuple[int, bytes]], origin: str) -> None:
        """Binary input holding JSON-object lines: a Kafka message that batches records
        with the lines of a binary file, say. Losing the records with the binary would
        drop good input, and one dead letter per binary line would bury them: each line
        that starts like JSON is framed as usual, each run of other lines is one ``binary``
        dead letter naming its line range."""
        records: list[tuple[int, bytes]] = []
        run: list[Any] = []  # first and last line number of the current binary run, and
        # the first line's start

        def close_run() -> None:
            first, last, raw = run
            message = f"{REASONS['binary']} ({last - first + 1} lines)"
            self.dead_input("binary", message, f"{origin}:{first}-{last}", raw)
            run.clear()

        for number, line in lines:
            head = line.lstrip()[:1]
            if not head:
                continue
            if head in (b"{", b"["):
                if run:
                    close_run()
                records.append((number, line))
            elif run:
                run[1] = number
            else:
                run.extend((number, number, line[:256]))
        if run:
            close_run()
        self._feed_lines(records, origin, collect=False)

    def _feed_mixed_lines(self, lines: list[tuple[int, bytes]], origin: str) -> list[Event]:
        """``_feed_mixed`` for the lines of a stream, a batch at a time (a binary run that
        spans two batches is two dead letters)."""
        self._out = []
        self.stats.bytes_read += sum(len(line) for _, line in lines)
        self._feed_mixed(lines, origin)
        out, self._out = self._out, []
        return out

    def _export_text(self, data: bytes, lines: list[bytes], origin: str) -> bool:
        """Read text that is an export of JSON records (``exports``): CloudWatch Logs
        export lines, or a CSV whose header names a column holding the whole record; a
        CSV of flattened CloudTrail fields is one ``unknown_format`` dead letter that says
        how to export the records. False when ``data`` is none of these."""
        if exports.looks_like_export_lines(lines):
            self._feed_export_lines(list(enumerate(lines, 1)), origin, collect=False)
            return True
        first = next((line for line in lines[:64] if line.strip()), b"")
        names = exports.csv_header(first)
        if names is None:
            return False
        column = exports.json_column(names)
        if column is None:
            self.dead_input("unknown_format", f"{REASONS['unknown_format']}: "
                            f"{exports.CSV_HINT}", origin, Sample.of(data, 1024))
        else:
            self._csv_records(data, names, column, origin)
        return True

    def _feed_export_lines(self, lines: list[tuple[int, bytes]], origin: str,
                           collect: bool = True) -> list[Event]:
        """CloudWatch Logs export lines (``<ISO timestamp> <message>``): each message is
        read as the message of a CloudWatch Logs subscription event is; a line without
        the timestamp is read as a JSON line."""
        if collect:
            self._out = []
        exported = {"path": PATH_CWL}
        for number, line in lines:
            stripped = line.strip()
            if not stripped:
                continue
            where = f"{origin}:{number}"
            if collect:
                self.stats.bytes_read += len(line)
            start = exports.export_message(stripped)
            message = stripped[start:]
            if len(message) > self.max_record_bytes:
                self._oversized(len(message), where, message[:1024])
                continue
            try:
                value = orjson.loads(message)
            except orjson.JSONDecodeError as err:
                self._dead_json(err, where, message)  # the record, judged without its stamp
                continue
            if start:
                self._dispatch(value, where, exported, _MAX_DEPTH - 1)
            else:
                self._dispatch(value, where, {}, 0)
        if not collect:
            return []
        out, self._out = self._out, []
        return out

    def _csv_records(self, data: bytes, names: list[str], column: int, origin: str) -> None:
        """The rows of a CSV whose ``column`` holds a whole record as JSON (a CloudWatch
        Logs Insights ``@message``, an ``eventjson`` selected from a query): each cell is
        read as a record, a row without it or whose cell is not JSON is a dead letter.
        ``column`` -1: each row is a record, its cells named by the header (a Log
        Analytics export, read as its JSON export is)."""
        if csv.field_size_limit() <= self.max_record_bytes:  # process-wide, only raised
            csv.field_size_limit(self.max_record_bytes + 1)
        log = names.index("@log") if "@log" in names else None
        reader = csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"), newline=""))
        header, fields = True, []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                self.dead_input("invalid_record", f"{REASONS['invalid_record']}: CSV: {err}",
                                f"{origin}:{reader.line_num}", None)
                continue
            if not any(cell.strip() for cell in row):
                continue
            if header:  # the header row, already read by ``exports.csv_header``
                header, fields = False, [name.strip() for name in row]
                continue
            where = f"{origin}:{reader.line_num}"
            if column < 0:
                self._dispatch(dict(zip(fields, row)), where, {}, _MAX_DEPTH - 1)
                continue
            if len(row) <= column:
                self.dead_input("invalid_record", f"{REASONS['invalid_record']}: the CSV row "
                                f"has no {names[column]} column", where, ",".join(row))
                continue
            cell = row[column]
            if len(cell) > self.max_record_bytes:
                self._oversized(len(cell), where, cell[:1024])
                continue
            try:
                value = orjson.loads(cell)
            except orjson.JSONDecodeError as err:
                self._dead_json(err, where, cell)
                continue
            cluster = exports.cluster_of(row[log]) if log is not None and log < len(row) \
                else None
            self._dispatch(value, where, {"cluster": cluster} if cluster else {},
                           _MAX_DEPTH - 1)

    def _gunzip(self, data: bytes, origin: str) -> bytes | None:
        """Inflate every member, at most ``max_decompressed_bytes`` in all (``None`` when
        nothing is left to parse). A member that is cut or corrupt, or trailing data, is
        one dead letter; the members before it are kept.

        One whole member and nothing after it (every S3 delivery file) is inflated by one
        call, what ``compressed.inflate`` does for it in its first step; its bookkeeping
        was 2 us of a replay_data file's 20 (10,700 such files). That call is ISA-L's
        inflate where the ``isal`` package is installed (a dependency on the platforms it
        has wheels for): 0.16 s of CPU instead of zlib's 0.33 s for replay_data's 170 MB,
        the same bytes, checked by the same gzip CRC. Anything else (an error, more
        members or bytes, a cut or oversized member) is read again by ``inflate`` with
        zlib, so every dead letter's reason and message is zlib's, whichever inflated.

        Where ISA-L is laxer than zlib: reserved header flags, which zlib refuses, are
        checked here and sent to zlib; a deflate block whose Huffman code is incomplete
        (no compressor writes one, zlib refuses it) is read by ISA-L when the member's
        CRC and length match, so such a crafted file's records are read where isal is
        installed and are one ``bad_gzip`` dead letter elsewhere (docs/replay.md)."""
        decomp: Any = None
        out = None
        if len(data) > 3 and not data[3] & _GZIP_RESERVED_FLAGS:
            decomp = _fast_inflater(wbits=47)
            try:
                out = decomp.decompress(data, compressed.STEP)
            except (_FastInflateError, zlib.error):
                out = None
        if out is not None and decomp.eof and not decomp.unused_data and \
                len(out) <= self.max_decompressed_bytes:
            self.stats.bytes_read += len(out) - len(data)
            return out
        done = compressed.inflate(data, _gzip_member, self.max_decompressed_bytes,
                                  (zlib.error,), _next_member)
        parts, size, members = done.parts, done.size, done.streams
        problem: tuple[str, str] | None = None
        if done.error is not None:
            problem = ("bad_gzip", f"{REASONS['bad_gzip']}: {done.error}")
        elif done.over:
            message = (f"{REASONS['decompression_limit']} (more than "
                       f"{self.max_decompressed_bytes} bytes from {len(data)} compressed)")
            self.dead_input("decompression_limit", message, origin, Sample.of(data, 256))
            return None
        elif done.cut is not None:
            kept = self._cut_member(parts, done.cut, origin)
            if kept is None:
                recovered = sum(map(len, done.cut))
                problem = ("truncated_gzip", f"{REASONS['truncated_gzip']} ({recovered} "
                           "bytes recovered, not parsed: only whole JSON lines are "
                           "kept from a cut stream)")
            else:
                parts.append(kept)
                size += len(kept)
                if not size:  # cut inside the first line: its dead letter says it all
                    return None
        elif done.rest.strip(b"\x00"):  # zero padding is common; anything else is not
            problem = ("bad_gzip", f"{REASONS['bad_gzip']}: {len(done.rest)} bytes of "
                       "trailing data after the last member")
        if problem is not None:
            reason, message = problem
            if members:
                message += f"; the {members} member(s) before it, {size} bytes, are parsed"
            self.dead_input(reason, message, origin, Sample.of(data, 256))
            if not size:
                return None
        out = parts[0] if len(parts) == 1 else b"".join(parts)
        self.stats.bytes_read += len(out) - len(data)
        return out

    def _cut_member(self, parts: list[bytes], member: list[bytes], origin: str
                    ) -> bytes | None:
        """What is parsed of a gzip member cut short, or ``None`` (nothing). The cut is one
        ``truncated_gzip`` dead letter, whose raw bytes are the cut tail:

        - JSON lines: the whole lines before the cut;
        - a compact ``{"Records": [...]}`` document in the first member (an S3 delivery
          file): the whole records before the cut, as a document closed after the last
          of them (``_whole_records``), so a cut download keeps what it holds as a cut
          JSON-lines file does;
        - anything else (pretty-printed JSON, a record array cut in its first record or in
          a later member): nothing, the caller's dead letter says so."""
        cut = b"".join(member)
        head = (parts[0] if parts else cut)[:4096]
        if head[:3] == b"\xef\xbb\xbf":
            head = head[3:]
        if b'"Records"' in head[:256] and not parts:
            kept = _whole_records(cut)
            if kept is cut:  # only the trailer is cut off
                self._truncated_gzip(cut, ", a whole document: its records are parsed; what "
                                     "followed it, and the CRC that would check it, is cut "
                                     "off", origin, None)
            elif kept is not None:
                self._truncated_gzip(cut, "; the whole records before the cut are parsed, "
                                     "the cut one is not", origin, cut[len(kept) - 2:])
            return kept
        if head.lstrip()[:1] != b"{" or b'"Records"' in head[:256] or \
                b'"records"' in head[:256]:
            return None
        if not self._looks_like_json_lines(head.split(b"\n")[:-1], False):
            return None
        end = cut.rfind(b"\n") + 1
        kept, tail = cut[:end], cut[end:]
        line = sum(part.count(b"\n") for part in parts) + kept.count(b"\n") + 1
        if not tail.strip():  # every line came through; only the trailer is missing
            self._truncated_gzip(cut, f", ending with a whole line: its {line - 1} lines are "
                                 "parsed; what followed them, and the CRC that would check "
                                 "them, is cut off", f"{origin}:{line - 1}", None)
        else:
            self._truncated_gzip(cut, f"; the whole lines before the cut are parsed, the cut "
                                 f"line {line} of {len(tail)} bytes is not", f"{origin}:{line}",
                                 tail)
        return kept

    def _truncated_gzip(self, cut: bytes, detail: str, where: str, raw: bytes | None) -> None:
        """The one dead letter of a gzip member cut short, of which ``cut`` was recovered."""
        self.dead_input("truncated_gzip", f"{REASONS['truncated_gzip']} ({len(cut)} bytes "
                        f"recovered{detail})", where, raw)

    def _whole_document(self, data: bytes, container: bool, origin: str) -> bool:
        if len(data) > self.max_record_bytes and not container:
            return False
        if len(data) >= MIN_SLICED_BYTES and data.startswith(_RECORDS_HEAD):
            slices = _record_slices(data)
            if slices is not None and self._sliced_records(data, slices, origin):
                return True
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError:
            return False
        self._dispatch(document, origin, {}, 0)
        return True

    def _sliced_records(self, data: bytes, slices: list[tuple[int, int]], origin: str
                        ) -> bool:
        """A large S3 delivery file, decoded and normalised a slice of records at a time.

        Decoding 160 MB at once builds some 400 MB of objects in freshly mapped memory (page
        faults took half of orjson's time) that the normaliser then reads back from cold
        caches; slices of ``SLICE_BYTES`` reuse the same memory while it is warm. Nothing is
        emitted before every slice has decoded once (``False`` when one does not: the caller
        decodes the whole document). Then the whole document decodes too, to the same
        records, and ``_records`` sees them as one array: the same events, counters and
        dead letters as ``_dispatch`` of the whole document."""
        for start, end in slices:
            if _decode_slice(data, start, end) is None:
                return False
        decoded = (_decode_slice(data, start, end) for start, end in slices)
        self._records(chain.from_iterable(decoded), origin, {})  # type: ignore[arg-type]
        return True

    def _json_lines(self, data: bytes, container: bool, origin: str) -> bool:
        lines = data.split(b"\n")
        if not self._looks_like_json_lines(lines, container):
            return False
        self._feed_lines(list(enumerate(lines, 1)), origin, collect=False)
        return True

    def _looks_like_json_lines(self, lines: list[bytes], container: bool) -> bool:
        """One of the first few non-empty lines is a whole JSON object (or is oversized and
        not the start of a record array: still line framing, it becomes a dead letter); a
        bad first line does not decide."""
        probed = 0
        for line in lines:
            if not line.strip():
                continue
            if (len(line) > self.max_record_bytes and not container) or _parses_as_object(line):
                return True
            probed += 1
            if probed >= 5:
                return False
        return False

    def _feed_lines(self, lines: list[tuple[int, bytes]], origin: str,
                    collect: bool = True) -> list[Event]:
        if collect:
            self._out = []
        route, dispatch, plain = self._route, self._dispatch, _ENVELOPE_KEYS.isdisjoint
        for number, line in lines:
            stripped = line.strip()
            if not stripped:
                continue
            where = f"{origin}:{number}"
            if collect:  # a whole payload's bytes were counted by feed
                self.stats.bytes_read += len(line)
            if len(stripped) > self.max_record_bytes:
                self._oversized(len(stripped), where, stripped[:1024])
                continue
            try:
                value = orjson.loads(stripped)
            except orjson.JSONDecodeError as err:
                if not stripped.startswith(b"\xef\xbb\xbf"):
                    self._dead_json(err, where, stripped)
                    continue
                try:  # a byte-order mark on a later line: exports concatenated
                    value = orjson.loads(stripped[3:])
                except orjson.JSONDecodeError as err:
                    self._dead_json(err, where, stripped)
                    continue
            if type(value) is dict and plain(value):
                route(value, where, {})  # what _dispatch does with an object of no envelope
            else:
                dispatch(value, where, {}, 0)
        if not collect:
            return []
        out, self._out = self._out, []
        return out

    def _salvage(self, text: str, origin: str) -> bool:
        """The record array of a document that does not decode as a whole, element by
        element: a cut, invalid or non-UTF-8 element is one dead letter, not the file."""
        match = _ARRAY_DOCUMENT.match(text)
        if match is not None and match.group(1) == "Records":
            def put(value: Any, index: int) -> None:
                self._records([value], origin, {}, start=index)
            position = self._elements(text, match.end(), f"{origin}#Records", put)
        else:
            start = match.end() if match is not None else _WHITESPACE.match(text).end() + 1
            if match is None and text[start - 1:start] != "[":
                return False

            def put(value: Any, index: int) -> None:
                self._dispatch(value, f"{origin}[{index}]", {}, 1)
            position = self._elements(text, start, origin, put)
        if match is not None:  # the rest of the document: its closing brace
            position = _WHITESPACE.match(text, position).end()
            if text.startswith("}", position):
                position += 1
        if text[position:].strip():
            self._scan(text, position, origin)
        return True

    def _elements(self, text: str, position: int, where: str,
                  put: Callable[[Any, int], None]) -> int:
        """Decode the array elements from ``position`` on; returns the end of the array."""
        keys: list[str] = []  # first keys of elements: what the next element starts with

        def boundary(start: int) -> tuple[int, int]:
            found = _boundary_pattern(tuple(keys)).search(text, start)
            return (found.start(), found.end()) if found else (len(text), len(text))

        index, length = 0, len(text)
        while True:
            position = _WHITESPACE.match(text, position).end()
            if position >= length:
                return position
            char = text[position]
            if char == "]":
                return position + 1
            if char == ",":
                position += 1
                continue
            first = _FIRST_KEY.match(text, position)
            if first is not None and len(keys) < _BOUNDARY_KEYS and first[1] not in keys:
                keys.append(first[1])
            value, position = self._decode_at(text, position, f"{where}[{index}]", boundary)
            if value is not _BAD:
                put(value, index)
            index += 1

    def _scan(self, text: str, position: int, origin: str) -> None:
        """Pretty-printed values with errors between them (missing commas, garbage)."""
        length, index = len(text), 0
        while position < length:
            while position < length and text[position] in " \t\r\n,]":
                position += 1
            if position >= length:
                return
            value, position = self._decode_at(text, position, f"{origin}#value[{index}]",
                                               lambda start: _next_value_start(text, start))
            if value is not _BAD:
                self._dispatch(value, f"{origin}#value[{index}]", {}, 0)
            index += 1

    def _decode_at(self, text: str, position: int, where: str,
                   boundary: Callable[[int], tuple[int, int]]) -> tuple[Any, int]:
        """The JSON value at ``position`` and where the next one may start; a bad value is
        dead-lettered and returned as ``_BAD``.

        The json module finds where the value ends (any failure, RecursionError included,
        makes the text up to ``boundary`` one dead letter); orjson then decodes it, so every
        framing accepts and refuses the same values (NaN, 1e400, huge integers, bad UTF-8).
        """
        try:
            _, end = _END_FINDER.raw_decode(text, position)
        except Exception as err:  # noqa: BLE001 - any failure is this record's, not the run's
            stop, resume = boundary(position + 1)
            fragment = text[position:stop]
            if isinstance(err, RecursionError):
                reason, detail = "invalid_json", "nested too deeply"
            else:
                reason, detail = _broken_json_reason(fragment), str(err)
            self.dead_input(reason, f"{REASONS[reason]}: {detail}"[:300], where, fragment)
            return _BAD, resume
        if end - position > self.max_record_bytes:
            self._oversized(end - position, where, text[position:position + 1024])
            return _BAD, end
        span = text[position:end]
        try:
            return orjson.loads(span), end
        except orjson.JSONDecodeError as err:
            if _SURROGATE.search(span) is None:
                self._dead_json(err, where, span)
            else:
                self.dead_input("invalid_utf8",
                                f"{REASONS['invalid_utf8']}{_first_bad_byte(span)}", where, span)
            return _BAD, end

    def _oversized(self, size: int, where: str, raw: bytes | str) -> None:
        message = f"{REASONS['oversized_record']} ({size} bytes > {self.max_record_bytes})"
        self.dead_input("oversized_record", message, where, raw)

    # ------------------------------------------------------------------ envelopes

    def _dispatch(self, value: Any, origin: str, hints: dict[str, Any], depth: int) -> None:
        """Unwrap ``value`` and route its records; every object reached is counted once.

        Envelopes nest at most ``_MAX_DEPTH`` deep: deeper, an object is routed as it is
        and an array is not a record. An empty array inside an array is not a record either
        (a top-level ``[]`` simply holds none)."""
        if isinstance(value, dict):
            records = value.get("Records")
            if isinstance(records, list) and depth <= _MAX_DEPTH:
                self._records(records, origin, hints, depth=depth)
            # a bare record (a Kafka message) is told by one set test, not by the dozen
            # look-ups of _envelope, which finds nothing in an object with none of its keys
            elif depth >= _MAX_DEPTH or _ENVELOPE_KEYS.isdisjoint(value) or \
                    not self._envelope(value, origin, hints, depth):
                self._route(value, origin, hints)
            return
        if isinstance(value, list) and depth < _MAX_DEPTH and (value or depth == 0):
            for index, item in enumerate(value):
                self._dispatch(item, f"{origin}[{index}]", hints, depth + 1)
            return
        self.dead_input("unknown_format", "record is not a JSON object", origin, _raw(value))

    def _record_item(self, record: Any, where: str, hints: dict[str, Any],
                     depth: int) -> None:
        """One element of a ``Records`` array that the fast path does not take."""
        if isinstance(record, list):
            self.dead_input("unknown_format", "record is an array, not a JSON object", where,
                            _raw(record))
        else:
            self._dispatch(record, where, hints, depth)

    def _records(self, records: Iterable[Any], origin: str, hints: dict[str, Any],
                 start: int = 0, depth: int = 0) -> None:
        """The S3 delivery file: the hot loop, kept free of per-record detection work.

        ``start`` is the index of the first element (salvage passes them one at a time)."""
        depth = max(depth + 1, _MAX_DEPTH - 1)  # of the elements: nested Records end
        if "path" not in hints:  # a Records array is the S3 delivery file's shape
            hints = dict(hints, path=PATH_S3)
        if self.source not in (None, cloudtrail.SOURCE):
            for index, record in enumerate(records, start):
                self._record_item(record, f"{origin}#Records[{index}]", hints, depth)
            return
        stats, resolver, out = self.stats, self.resolver, self._out
        new: list[Event] = []  # fast-path events only: others were counted when dispatched
        append_new = new.append
        normalise, source = cloudtrail.normalise, cloudtrail.SOURCE
        add_seen = self._seen_ids.add
        low, high = self._low, self._high
        read = 0
        for index, record in enumerate(records, start):
            if type(record) is not dict or "eventName" not in record:
                self._record_item(record, f"{origin}#Records[{index}]", hints, depth)
                continue
            read += 1
            try:
                event = normalise(record, resolver, hints)
            except Exception as err:  # noqa: BLE001 - counted per reason, never raised
                self._record_failed(err, source, record, f"{origin}#Records[{index}]")
                continue
            ts = event.ts
            if not add_seen((event.event_id, ts, event.action, event.identity)):
                stats.skipped[(source, "duplicate_event")] += 1
                continue
            if ts > high or ts < low:  # outside the stream's time range, or records wait
                # (their events, released, are counted and put out there, before this one)
                placed = self._place(event, record, f"{origin}#Records[{index}]",
                                     hints["path"])
                low, high = self._low, self._high
                if not placed:
                    continue
            out.append(event)
            append_new(event)
        if read:
            stats.records_read[source] += read
        if new:  # tallied in C over the batch, not per event in Python
            stats.events[source] += len(new)
            stats.events_by_kind.update(map(_KIND, new))
            stats.identity_resolution.update(map(_RESOLUTION, new))
            stats.events_by_path[(source, hints["path"])] += len(new)
            stats.last_event_ts = max(stats.last_event_ts, max(map(_TS, new)))

    def _record_failed(self, err: Exception, source: str, record: Any, where: str) -> None:
        """Count a record a source module refused: dead letter, skip, or parser bug."""
        if isinstance(err, SkipRecord):
            if err.reason == "insight" and type(record) is dict:
                # before the skip is counted: a failure here is the record's dead letter
                # (``_route``), not a skip and a dead letter both
                labels = insight.labels(record)
                context = [event for event in insight.context_events(record, self.resolver)
                           if self._in_range(event.ts)]
                self.stats.insights[labels] += 1
                self._out.extend(context)
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
            self._dispatch(detail, f"{origin}#detail", dict(hints, path=PATH_EVENTBRIDGE),
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
        if items is None and _is_list_page(value):
            items = value.get("value")  # a REST or Graph list page: {"value": [...]}
        if isinstance(items, list):
            for index, item in enumerate(items):
                self._dispatch(item, f"{origin}[{index}]", hints, depth + 1)
            return True
        return self._pubsub(value, origin, hints, depth) or \
            self._hec_event(value, origin, hints, depth)

    def _pubsub(self, value: dict[str, Any], origin: str, hints: dict[str, Any],
                depth: int) -> bool:
        """A Pub/Sub delivery (``pubsub``): a pull response's ``receivedMessages``, one
        push request or received message (``message``), or a message of its own; each
        message's ``data`` is decoded and read as a payload's record is."""
        key = "receivedMessages" if "receivedMessages" in value else "received_messages"
        received = value.get(key)
        if isinstance(received, list) and value.keys() <= pubsub.PULL_KEYS:
            for index, item in enumerate(received):
                self._dispatch(item, f"{origin}#{key}[{index}]", hints, depth + 1)
            return True
        message = pubsub.message_of(value)
        if message is None:
            return False
        where = origin if message is value else f"{origin}#message"
        data = message.get("data")
        if isinstance(data, dict):  # a tool that decoded the data already (a Dataflow job)
            self._dispatch(data, f"{where}.data", hints, depth + 1)
            return True
        if not isinstance(data, str):
            self._dead(self._counted(gcp.SOURCE), "invalid_record",
                       f"{REASONS['invalid_record']}: a Pub/Sub message without a data "
                       "string", where, _raw(value))
            return True
        decoded = pubsub.decode_data(data)
        if decoded is None:
            self._dead(self._counted(gcp.SOURCE), "bad_base64", REASONS["bad_base64"],
                       where, data[:1024])
            return True
        try:
            record = orjson.loads(decoded)
        except orjson.JSONDecodeError as err:
            reason = _broken_json_reason(decoded, err)
            self._dead(self._counted(gcp.SOURCE), reason, f"{REASONS[reason]} (the data of "
                       "a Pub/Sub message)", f"{where}.data", decoded)
            return True
        self._dispatch(record, f"{where}.data", hints, depth + 1)
        return True

    def _hec_event(self, value: dict[str, Any], origin: str, hints: dict[str, Any],
                   depth: int) -> bool:
        """A Splunk HTTP Event Collector event (``pubsub.hec_event``): its ``event``, an
        object or JSON text, is the record."""
        event = pubsub.hec_event(value)
        if event is None:
            return False
        if isinstance(event, str):
            self._nested_json(event, f"{origin}#event", hints, depth)
        else:
            self._dispatch(event, f"{origin}#event", hints, depth + 1)
        return True

    def _counted(self, default: str) -> str:
        """The source a dead letter counts under when its record's is not known yet: the
        forced one, if any, else ``default``."""
        return self.source if self.source in _COUNTED else default

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
        hints = dict(hints, path=PATH_CWL)
        source = cloudtrail.SOURCE
        if group.startswith("/aws/eks/"):
            hints["cluster"] = exports.cluster_of(group)
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
                reason = _broken_json_reason(message, err)
                self._dead(source, reason, REASONS[reason], where, message)
                if reason == "truncated":
                    self._log_limited(source, reason, where)
                    if source == k8s.SOURCE:
                        self._salvage_k8s(message, item, where, hints)
                continue
            self._dispatch(record, where, hints, _MAX_DEPTH - 1)

    def _salvage_k8s(self, message: str, item: Any, where: str, hints: dict[str, Any]
                     ) -> None:
        """Emit a ``partial`` event from a cut EKS audit message's intact prefix (B10).

        The message stays a ``truncated`` dead letter; this event comes beside it, counted
        in ``stats.salvage`` (not ``events``: the record is already accounted for). It is
        only emitted when the prefix names the user and the verb; the time falls back to
        the CloudWatch Logs event's timestamp when the cut came before the request's own.
        It is never merged with other stages of the request nor joined to the next message.
        """
        record = salvage.salvage_prefix(message)
        username = as_dict(record.get("user")).get("username")
        if not isinstance(username, str) or not username:
            self.stats.salvage[(k8s.SOURCE, "no_identity")] += 1
            return
        if not isinstance(record.get("verb"), str) or not record["verb"]:
            self.stats.salvage[(k8s.SOURCE, "no_verb")] += 1
            return
        if "requestReceivedTimestamp" not in record:
            record["timestamp"] = as_dict(item).get("timestamp")
        try:
            event = k8s.normalise_general(record, self.resolver, hints, True)
        except RecordError as err:
            self.stats.salvage[(k8s.SOURCE, err.reason)] += 1
            return
        if not self._in_range(event.ts):
            self.stats.salvage[(k8s.SOURCE, "time_outlier")] += 1
            return
        event.attributes["salvaged"] = "truncated"
        self.stats.salvage[(k8s.SOURCE, "emitted")] += 1
        self._out.append(event)

    def _log_limited(self, source: str, reason: str, where: str) -> None:
        """Log the 1st, 10th, 100th ... record of a reason: a flood of cut messages (B10)
        stays a few lines, and the counter says how many there were."""
        seen = self.stats.dead_letters[(source, reason)]
        if seen >= 1 and 10 ** (len(str(seen)) - 1) == seen:
            logger.warning("%s record #%d with reason %s at %s (logged at 1, 10, 100 ...)",
                           source, seen, reason, where)

    # ------------------------------------------------------------------ routing

    def _route(self, record: dict[str, Any], origin: str, hints: dict[str, Any]) -> None:
        """Read one record by its shape. The shape checks run on the raw record before any
        source module's guard: a failure there (a parser bug) is this record's
        ``internal_error`` dead letter, and the payload's other records are still read.

        A failure after the record was counted as read under its source (``_read_source``,
        set by ``_normalise`` and ``_k8s``) is that source's dead letter without a second
        count of the read: counting it again under ``unknown`` unbalanced both sources."""
        forced = self.source
        self._read_source = None
        try:
            if forced is not None:
                self._route_forced(forced, record, origin, hints)
            elif cloudtrail.looks_like(record):
                self._normalise(cloudtrail.SOURCE, cloudtrail.normalise, record, origin, None,
                                hints)
            elif (payload := gcp.payload_of(record)) is not None:
                if gcp.is_gke(record, payload):
                    self._normalise(k8s.SOURCE, k8s.normalise_gke, record, origin, None, hints)
                else:
                    self._normalise(gcp.SOURCE, gcp.normalise, record, origin, None, hints)
            elif k8s.looks_like(record):
                self._k8s(record, origin, hints)
            else:
                self._route_other(record, origin, hints)
        except SinkError:
            raise
        except Exception as err:  # noqa: BLE001 - one record must never stop the payload
            logger.debug("parser bug routing %s", origin, exc_info=err)
            message = f"{REASONS['internal_error']}: {type(err).__name__}"
            read_as = self._read_source
            if read_as is None:
                self._dead(self._counted(UNKNOWN), "internal_error", message, origin,
                           _raw(record))
            else:
                self._count_dead(read_as, "internal_error", message, origin, record)

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
        elif (own := _own_output(low)) is not None:  # first: its fields look like others'
            self._skip_named(UNKNOWN, "nhi_detector_output", origin,
                             f"nhi-detector's own {own} are not audit logs")
        elif (vendor := _unsupported_vendor(low)) is not None:
            self._skip_named(UNKNOWN, "unsupported_format", origin,
                             f"{vendor} records are not a supported source")
        elif (found := exports.logs_messages(record)) is not None:
            self._logs_export(found, origin, hints)
        elif (hint := exports.unsupported_export(low)) is not None:
            self._dead(UNKNOWN, "unknown_format", f"{REASONS['unknown_format']}: {hint}",
                       origin, _raw(record))
        else:
            self._dead(UNKNOWN, "unknown_format", REASONS["unknown_format"], origin,
                       _raw(record))

    def _logs_export(self, found: exports.LogsMessages, origin: str, hints: dict[str, Any]
                     ) -> None:
        """The messages of a CloudWatch Logs export object (``exports.logs_messages``),
        each read as a CloudWatch Logs subscription event's message is; the object
        itself is a wrapper, not a record, and is not counted."""
        shape, messages = found
        for suffix, message, log in messages:
            where = f"{origin}{suffix}"
            if isinstance(message, dict):  # a tool that decoded the message already
                value: Any = message
            elif not isinstance(message, str):
                what = "an eventJson string (select eventJson in the query)" \
                    if shape in exports.LAKE_SHAPES else "a message string"
                self._dead(UNKNOWN, "invalid_record", f"{REASONS['invalid_record']}: a "
                           f"{shape} without {what}", where, _raw(message))
                continue
            else:
                try:
                    value = orjson.loads(message)
                except orjson.JSONDecodeError as err:
                    reason = _broken_json_reason(message, err)
                    self._dead(UNKNOWN, reason, f"{REASONS[reason]} (the message of a "
                               f"{shape})", where, message)
                    continue
            # a Lake row is the record as CloudTrail stored it, not a CloudWatch message
            inner = dict(hints) if shape in exports.LAKE_SHAPES else dict(hints, path=PATH_CWL)
            cluster = exports.cluster_of(log)
            if cluster:
                inner["cluster"] = cluster
            self._dispatch(value, where, inner, _MAX_DEPTH - 1)
            self._read_source = None  # the messages' reads are theirs, not the wrapper's

    def _skip_named(self, source: str, reason: str, origin: str, what: str) -> None:
        """A counted skip, with one log line the first time each kind is met (the summary
        counts the rest), so a user who fed the wrong files learns which they were."""
        self._skip(source, reason, origin)
        if what not in self._named and len(self._named) < 64:
            self._named.add(what)
            logger.warning("skipping records: %s (first at %s; counted as skipped %s)",
                           what, origin, reason)

    def _route_forced(self, forced: str, record: dict[str, Any], origin: str,
                      hints: dict[str, Any]) -> None:
        """A record under ``--source``: one whose shape is another supported format is a
        ``wrong_source`` dead letter (read as the forced source, it would become a wrong
        event); one of no known shape is read as the forced source, which names what is
        missing."""
        shape = _shape_of(record)
        if shape is not None and shape not in _ACCEPTS[forced]:
            self.dead_input("wrong_source", f"{REASONS['wrong_source']}: looks like {shape}, "
                            f"not {forced}", origin, _raw(record))
            return
        if forced == k8s.SOURCE and shape == _AKS:
            self._aks(record, azure.lower_keys(record), origin, hints)
        elif forced == cloudtrail.SOURCE:
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
        # the record's own time when the audit event lost its stamps; a Panther data-lake
        # row keeps only p_event_time (as for the other sources)
        when = low.get("time") or low.get("timegenerated") or low.get("p_event_time")
        if "requestReceivedTimestamp" not in log and when:
            log = dict(log, requestReceivedTimestamp=when)
        cluster = azure.aks_cluster(low)
        self._k8s(log, origin, dict(hints, cluster=cluster) if cluster else hints)

    # ------------------------------------------------------------------ kubernetes stages

    def _k8s(self, record: dict[str, Any], origin: str, hints: dict[str, Any]) -> None:
        audit_id, stage = record.get("auditID"), record.get("stage")
        if not isinstance(audit_id, str) or not isinstance(stage, str) or \
                len(audit_id) > MAX_EVENT_ID:  # a long id: its dead letter, not merger state
            self._normalise(k8s.SOURCE, k8s.normalise, record, origin, None, hints)
            return
        self.stats.records_read[k8s.SOURCE] += 1
        self._read_source = k8s.SOURCE  # for _route's guard
        try:
            self._stages.feed(record, audit_id, origin, hints, self._emit_k8s,
                              self._skip_stage)
        except SinkError:
            raise
        except Exception as err:  # noqa: BLE001 - as a source module's failure: this
            # record's dead letter, never the rest of the payload's records
            self._record_failed(err, k8s.SOURCE, record, origin)

    def _skip_stage(self, reason: str) -> None:
        self.stats.skipped[(k8s.SOURCE, reason)] += 1

    def _emit_k8s(self, record: dict[str, Any], origin: str, hints: dict[str, Any],
                  partial: bool) -> None:
        try:
            event = k8s.normalise(record, self.resolver, hints, partial)
        except Exception as err:  # noqa: BLE001 - one record must never stop the run
            self._record_failed(err, k8s.SOURCE, record, origin)
            return
        self._count_event(event, hints.get("path", PATH_BARE), record, origin)

    # ------------------------------------------------------------------ time outliers

    def _place(self, event: Event, record: Any, where: str, path: str) -> bool:
        """Judge an event whose time is outside the stream's range (or that arrives while
        records wait); True when it is to be put out now, after any it confirmed.

        One record stamped far from its stream (2099, a clock days off, 2001) used to move
        event time for everyone: the replay's merge of file streams stalled the rest of its
        stream behind it and made thousands of records late, and the detector's clock made
        every identity dormant. The parser sees every stream in arrival order (one parser
        per replay file stream, one per worker partition), so it judges here:

        1. records that wait are judged by this one: one more than ``TIME_LEAP_SECONDS``
           ahead of the stream is confirmed when this one is within that of it or beyond
           (logs resuming after a quiet spell, a newest-first export going back past a gap),
           else this one counts against it; after ``OUTLIER_STRIKES`` such records it is a
           ``time_outlier`` dead letter;
        2. an event later than this machine's clock by more than a day and outside the
           stream's range is a ``future_time`` dead letter: no log holds an event that has
           not happened yet;
        3. the first event starts the range, unless it is that far after the machine's
           clock: then it waits like an outlier, so a stream that is wholly "in the future"
           (a reading machine whose clock is wrong, data stamped ahead on purpose) is
           confirmed by its own next record and read, not lost record by record; an event
           within ``TIME_LEAP_SECONDS`` of the range widens it; one further out waits, and
           is put out at ``finish`` if nothing came after it.

        Two records off by the same amount in a row confirm each other: a stream that jumps
        is taken as the stream. The range only widens here, so a stream moving on in one
        long file makes one record wait a moment each day of event time.

        None of this holds for an archive of samples gathered over years, in no time order
        (``archive``; Panther's test files hold cases dated 2018 to 2026, and four of their
        records were ``time_outlier`` dead letters): there the records around one say
        nothing of its time, so every record is read at its own, except one more than a day
        after this machine's clock (``future_time``: no sample is of an event to come).
        Nothing in the input tells the two kinds apart for certain, so the stream's rule,
        which keeps one wrong clock from moving event time for every identity, is the
        default, and the user says when the input is an archive.
        """
        ts = event.ts
        if self.archive:
            if self._after_clock(ts):
                self._future(event, record, where, self._clock)
                return False
            self._widen(ts)
            return True
        if self._held:
            self._judge_held(ts)
        if self._newest != -_INF and self._in_range(ts):
            self._widen(ts)
            return True
        future = self._after_clock(ts)
        if future and self._newest != -_INF:
            self._future(event, record, where, self._clock)
            return False
        if self._newest == -_INF and not future:
            self._widen(ts)
            return True
        self._held.append(_Held(event, record, where, path, ts > self._newest))
        self._set_bounds()
        return False

    def _after_clock(self, ts: float) -> bool:
        """Whether ``ts`` is more than ``TIME_LEAP_SECONDS`` after this machine's clock.

        The clock is read again only for a time past the bound of its last reading
        (``_clock``): the clock moves on, so a time within that bound is within the
        current one. An archive (``--archive``) in newest-first order widens the range
        with every record, and each read the clock (0.1 us, but a system call where the
        clock source has no fast path)."""
        if ts <= self._clock + TIME_LEAP_SECONDS:
            return False
        self._clock = time.time()
        return ts > self._clock + TIME_LEAP_SECONDS

    def _future(self, event: Event, record: Any, where: str, now: float) -> None:
        self._count_dead(event.source, "future_time",
                         f"{REASONS['future_time']}: {iso_time(event.ts)} is after "
                         f"{iso_time(now)}", where, record)
        self._set_bounds()

    def _judge_held(self, ts: float) -> None:
        """Confirm or count against each waiting record with the time ``ts`` of the next
        record of the stream (``_place``, step 1)."""
        waiting = []
        for held in self._held:
            held_ts = held.event.ts
            if ts >= held_ts - TIME_LEAP_SECONDS if held.ahead else \
                    ts <= held_ts + TIME_LEAP_SECONDS:
                self._widen(held_ts)
                self._count_placed(held.event, held.path)
                continue
            held.strikes += 1
            if held.strikes < OUTLIER_STRIKES:
                waiting.append(held)
                continue
            if held.ahead and self._after_clock(held_ts):
                self._future(held.event, held.record, held.where, self._clock)
                continue
            days = (held_ts - self._newest if held.ahead else self._earliest - held_ts) / 86400
            self._count_dead(
                held.event.source, "time_outlier",
                f"{REASONS['time_outlier']}: {iso_time(held_ts)} is {days:,.1f} days "
                f"{'after' if held.ahead else 'before'} the stream's "
                f"{iso_time(self._earliest)} .. {iso_time(self._newest)}, and the "
                f"{OUTLIER_STRIKES} records after it stayed there (an archive of samples "
                "from many years is read with --archive)", held.where, held.record)
        self._held = waiting
        self._set_bounds()

    def _in_range(self, ts: float) -> bool:
        """Whether an event put out beside the accounting (an insight's context, a salvaged
        partial event) is within a day of the stream's range, or of the machine's clock
        before the stream has one: such events never wait, and are left out when not."""
        if self._newest == -_INF:
            return not self._after_clock(ts)
        return self._earliest - TIME_LEAP_SECONDS <= ts <= self._newest + TIME_LEAP_SECONDS

    def _widen(self, ts: float) -> None:
        if ts < self._earliest:
            self._earliest = ts
        if ts > self._newest:
            self._newest = ts
        self._set_bounds()

    def _set_bounds(self) -> None:
        """The interval an event passes without ``_place``: empty while records wait."""
        if self._held or self._newest == -_INF:
            self._low, self._high = _INF, -_INF
        else:
            self._low = self._earliest - TIME_LEAP_SECONDS
            self._high = self._newest + TIME_LEAP_SECONDS

    # ------------------------------------------------------------------ accounting

    def _normalise(self, source: str, func: Any, record: dict[str, Any], origin: str,
                   index: int | None, hints: dict[str, Any]) -> None:
        self.stats.records_read[source] += 1
        self._read_source = source  # for _route's guard
        where = origin if index is None else f"{origin}#Records[{index}]"
        try:
            event = func(record, self.resolver, hints)
        except Exception as err:  # noqa: BLE001 - one record must never stop the run
            self._record_failed(err, source, record, where)
            return
        self._count_event(event, hints.get("path", PATH_BARE), record, where)

    def _count_event(self, event: Event, path: str, record: Any, where: str) -> None:
        """Count one event under its source and the path it came by (``PATHS``), unless it
        is a duplicate or its time must wait for the records after it (``_place``)."""
        stats, source, ts = self.stats, event.source, event.ts
        key: tuple[Any, ...] | None = None
        if source == cloudtrail.SOURCE:
            key = (event.event_id, ts, event.action, event.identity)
        elif type(record) is dict and ("insertId" in record or "insertid" in record):
            # a Cloud Logging entry (GCP audit, GKE audit) delivered twice: a Pub/Sub
            # redelivery, a push and a pull export, two sinks. The whole entry is in the
            # key, so hand-made samples that reuse one placeholder insertId stay apart; as
            # the hash of its sorted bytes (``_entry_hash``), since one run's set needs no
            # digest stable across processes
            key = (event.event_id, ts, _entry_hash(record))
        if key is not None and not self._seen_ids.add(key):
            stats.skipped[(source, "duplicate_event")] += 1
            return
        if (ts > self._high or ts < self._low) and not self._place(event, record, where, path):
            return
        self._count_placed(event, path)

    def _count_placed(self, event: Event, path: str) -> None:
        """Count and put out an event whose time is placed in its stream."""
        stats, source, ts = self.stats, event.source, event.ts
        stats.events[source] += 1
        stats.events_by_path[(source, path)] += 1
        stats.events_by_kind[event.identity_kind] += 1
        stats.identity_resolution[event.identity_resolution] += 1
        if ts > stats.last_event_ts:
            stats.last_event_ts = ts
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
        if reason == "read_error":
            # a file or folder that could not be read at all: said where it is, since
            # without --dead-letters the summary has only a count
            logger.warning("%s: %s", origin, message)
        self._dead(self._counted(UNKNOWN), reason, message, origin, raw)

    def skip_digest(self, origin: str) -> None:
        """Count a CloudTrail digest file told by its name, not read (edge case B01)."""
        self._skip(cloudtrail.SOURCE, "digest", origin)

    def skip_input(self, reason: str, origin: str) -> None:
        """Count input that is deliberately not read (a directory walk's non-log files)."""
        self._skip(self.source if self.source in _COUNTED else UNKNOWN, reason, origin)

    def _dead_json(self, err: Exception, origin: str, raw: bytes | str) -> None:
        reason = _json_reason(err)
        if reason == "invalid_json" and isinstance(raw, (bytes, str)):
            reason = _broken_json_reason(raw, err)
        if reason == "invalid_utf8":
            detail = _first_bad_byte(raw)
            self.dead_input(reason, f"{REASONS[reason]}{detail}", origin, raw)
            return
        self.dead_input(reason, f"{REASONS[reason]}: {err}"[:300], origin, raw)

    def _skip(self, source: str, reason: str, origin: str) -> None:
        logger.debug("skipped %s record at %s", reason, origin)
        self.stats.records_read[source] += 1
        self.stats.skipped[(source, reason)] += 1


class _Held:
    """An event waiting for the records after it to confirm its time (``Parser._place``)."""

    __slots__ = ("event", "record", "where", "path", "ahead", "strikes")

    def __init__(self, event: Event, record: Any, where: str, path: str, ahead: bool) -> None:
        self.event, self.record, self.where, self.path = event, record, where, path
        self.ahead = ahead  # ahead of the stream's range, else behind it
        self.strikes = 0  # later records that stayed on the stream's side


# Every key that _dispatch or _envelope looks for: an object with none of them is a record.
def _is_list_page(value: dict[str, Any]) -> bool:
    """One page of an Azure REST or Microsoft Graph list (the Activity Log and the sign-in
    logs read through the API): its records are its ``value``, and its other keys are only
    ``nextLink`` and OData annotations (``@odata.context``, ``@odata.nextLink``, the older
    ``odata.metadata``...), so a record that has a ``value`` field of its own stays a record.
    """
    return "value" in value and all(
        key in ("value", "nextLink") or key.startswith(("@odata.", "odata."))
        for key in value)


_ENVELOPE_KEYS = frozenset({"Records", "digestPublicKeyFingerprint", "logFiles", "messageType",
                            "detail", "Body", "body", "Message", "items", "records", "value",
                            "receivedMessages", "received_messages", "message", "data",
                            "event"})
_COUNTED = frozenset({"aws.cloudtrail", "gcp.audit", "k8s.audit", "azure.activity",
                      "azure.signin"})


# Shapes that only a forced source tells apart: a GKE LogEntry (GCP carrying Kubernetes)
# and an AKS diagnostic record (Azure carrying Kubernetes).
_GKE, _AKS = "gcp.audit (GKE)", "azure (AKS)"
# The record shapes each ``--source`` reads; any other recognised shape is ``wrong_source``.
_ACCEPTS = {
    cloudtrail.SOURCE: frozenset({cloudtrail.SOURCE}),
    gcp.SOURCE: frozenset({gcp.SOURCE, _GKE}),
    k8s.SOURCE: frozenset({k8s.SOURCE, _GKE, _AKS}),
    "azure": frozenset({azure.SOURCE_ACTIVITY, azure.SOURCE_SIGNIN, _AKS}),
    azure.SOURCE_ACTIVITY: frozenset({azure.SOURCE_ACTIVITY}),
    azure.SOURCE_SIGNIN: frozenset({azure.SOURCE_SIGNIN}),
}


def _shape_of(record: dict[str, Any]) -> str | None:
    """The format a record's shape says, tested in the order ``Parser._route`` uses
    (``None``: no supported shape)."""
    if cloudtrail.looks_like(record):
        return cloudtrail.SOURCE
    payload = gcp.payload_of(record)
    if payload is not None:
        return _GKE if gcp.is_gke(record, payload) else gcp.SOURCE
    if k8s.looks_like(record):
        return k8s.SOURCE
    low = azure.lower_keys(record)
    if azure.category_of(low) in azure.AKS_CATEGORIES:
        return _AKS
    if azure.is_signin(low):
        return azure.SOURCE_SIGNIN
    if cloudtrail.looks_like_lowercased(low):
        return cloudtrail.SOURCE
    return azure.SOURCE_ACTIVITY if azure.looks_like(low) else None


def _record_slices(data: bytes) -> list[tuple[int, int]] | None:
    """Where to cut the record array of a compact ``{"Records":[...]}`` document: spans of
    about ``SLICE_BYTES`` that end where a record starting like the first one follows
    (``},{"eventVersion":``). ``None`` when the document does not end with ``]}`` or has
    no such place. A cut that falls inside a string or a nested array leaves its slice
    unbalanced, so that slice fails to decode (``_decode_slice``) and nothing is cut."""
    end = len(data)
    while end and data[end - 1] in _JSON_SPACE:
        end -= 1
    first, last = len(_RECORDS_HEAD), end - 2
    marker = _record_marker(data, first)
    if data[last:end] != b"]}" or marker is None:
        return None
    slices, start = [], first
    while last - start > SLICE_BYTES:
        cut = data.find(marker, start + SLICE_BYTES, last)
        if cut < 0:
            break
        slices.append((start, cut + 1))
        start = cut + 2
    slices.append((start, last))
    return slices if len(slices) > 1 else None


def _record_marker(data: bytes, first: int) -> bytes | None:
    """What separates two records of the array whose first record starts at ``first``:
    ``},`` and the first record's first key (``},{"eventVersion":``); ``None`` when no
    object with a key starts there."""
    key_end = data.find(b'":', first, first + 256)
    if data[first:first + 2] != b'{"' or key_end < 0:
        return None
    return b"}," + data[first:key_end + 2]


def _whole_records(cut: bytes) -> bytes | None:
    """What a ``{"Records":[...]}`` document cut short can be read as: ``cut`` itself when
    it decodes whole (only the gzip trailer was lost); else, for a compact one, its start
    closed after its last whole record (``...}]}``); else ``None`` (no record is whole, or
    the start does not decode as such a document).

    Records are told apart as ``_record_slices`` does, by where one starting like the
    first follows (``},{"eventVersion":``); such a place inside a string makes the
    closed start fail to decode, and the one before it is tried (a few at most)."""
    try:
        if type(orjson.loads(cut)) is dict:
            return cut
    except orjson.JSONDecodeError:
        pass
    start = cut.find(_RECORDS_HEAD)
    if start < 0 or cut[:start].strip(_JSON_SPACE + b"\xef\xbb\xbf"):
        return None
    first = start + len(_RECORDS_HEAD)
    marker, end = _record_marker(cut, first), len(cut)
    if marker is None:
        return None
    for _ in range(4):
        end = cut.rfind(marker, first, end)
        if end < 0:
            return None
        kept = cut[:end + 1] + b"]}"
        try:
            document = orjson.loads(kept)
        except orjson.JSONDecodeError:
            continue
        if type(document) is dict and type(document.get("Records")) is list:
            return kept
    return None


def _decode_slice(data: bytes, start: int, end: int) -> list[Any] | None:
    """The records in ``data[start:end]``, or ``None`` when that is not a list of values.

    Wrapped as ``[[...]]``, the records sit as deep as in ``{"Records":[...]}``, so
    orjson's nesting limit treats them alike; a single outer element proves the inner
    brackets hold the whole slice (``1],[2`` would decode as two)."""
    try:
        value = orjson.loads(b"".join((b"[[", memoryview(data)[start:end], b"]]")))
    except orjson.JSONDecodeError:
        return None
    return value[0] if len(value) == 1 else None


def _json_reason(err: Exception) -> str:
    text = str(err)
    return "invalid_utf8" if "UTF-8" in text or "utf-8" in text else "invalid_json"


def _broken_json_reason(raw: bytes | str, err: Exception | None = None) -> str:
    """Why a record that failed to decode is broken: ``truncated`` when it is the start of
    a JSON object or array that stops early (the decoder ran out of text, as when a
    transport cuts a message), ``invalid_json`` when it goes wrong before its end
    (``{not json``), ``invalid_utf8`` for bad bytes."""
    if err is not None and _json_reason(err) == "invalid_utf8":
        return "invalid_utf8"
    try:
        data = (raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw).strip()
        orjson.loads(data)
    except UnicodeError:
        return "invalid_utf8"
    except orjson.JSONDecodeError as decoded:
        if _json_reason(decoded) == "invalid_utf8":
            return "invalid_utf8"
        if data[:1] not in (b"{", b"["):
            return "invalid_json"
        if "depth" in decoded.msg:  # too deep to read to its end: judged by its last byte
            return "invalid_json" if data[-1:] in (b"}", b"]") else "truncated"
        return "truncated" if decoded.pos >= len(data) else "invalid_json"
    return "invalid_json"  # decodes alone: the failure came from its surroundings


def _first_bad_byte(raw: bytes | str) -> str:
    """`` (byte 12 of the record is 0xff)`` for the first byte that is not UTF-8, or ``""``:
    the decoder's own message (surrogates, char positions) means nothing to a reader."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as err:
        return f" (byte {err.start} of the record is 0x{data[err.start]:02x})"
    return ""


def mostly_binary(sample: bytes) -> bool:
    """More than a quarter of the bytes are control characters other than white space:
    a compressed or executable file, not text with a stray NUL in it."""
    control = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return control * 4 > len(sample)


def starts_binary(start: bytes, mostly: bool | None = None) -> bool:
    """Whether input is binary by its first 8 KiB (byte-order mark removed): mostly control
    bytes, or a NUL byte in text that does not start like JSON (in text that does, the NUL
    is one record's fault, for that record's dead letter). The one rule of ``Parser.feed``,
    ``Parser.feed_stream`` and ``nhi-detector produce``. ``mostly``: ``mostly_binary`` of
    those 8 KiB when the caller has it already (it reads every byte)."""
    sample = start[:8192]
    if mostly is None:
        mostly = mostly_binary(sample)
    return mostly or b"\x00" in sample and sample.lstrip()[:1] not in (b"{", b"[")


def _starts_json_lines(data: bytes) -> bool:
    """Whether ``data``'s first line is a whole JSON object with more than whitespace after
    it. Such input cannot decode as one document (JSON allows only whitespace after the
    value), and trying costs a pass over all of it (orjson checks the whole input's UTF-8
    first: 0.2 us a line of replay_data's Kubernetes files), so it goes to line framing."""
    end = data.find(b"\n")
    return end >= 0 and _NOT_SPACE.search(data, end + 1) is not None and \
        _parses_as_object(data[:end])


def _parses_as_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _loads_dict(text: Any) -> dict[str, Any]:
    if not isinstance(text, str):
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _raw(value: Any) -> bytes | str | None:
    """The record as bytes for a dead letter; never raises (a deep value has no repr)."""
    if value is None or isinstance(value, (bytes, str)):
        return value
    try:
        return orjson.dumps(value, default=str)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return repr(value)[:4096]
    except Exception:  # noqa: BLE001 - RecursionError on a deeply nested value
        return f"<{type(value).__name__} that cannot be shown>"


# Panther data-lake rows name their log type; these prefixes are sources read here, so a
# row of theirs that reached no parser is a broken record (a dead letter), not another vendor.
_SUPPORTED_LOG_TYPES = ("aws.cloudtrail", "gcp.", "azure.", "amazon.eks", "kubernetes.",
                        "gke.")


def _unsupported_vendor(low: dict[str, Any]) -> str | None:
    """The name of an audit-log vendor whose records are recognised but not supported
    (Okta, GitHub, OpenAI, Anthropic, or any Panther log type of another vendor)."""
    log_type = low.get("p_log_type")
    if isinstance(log_type, str) and log_type:
        if log_type.lower().startswith(_SUPPORTED_LOG_TYPES):
            return None
        return f"{log_type[:64]} (Panther log type)"
    if "actor" in low and ("eventtype" in low or "displaymessage" in low):
        return "Okta System Log"
    if "action" in low and ("actor" in low or "programmatic_access_type" in low):
        return "GitHub audit log"
    if "effective_at" in low or low.get("object") == "organization.audit_log":
        return "OpenAI audit log"
    if "organization_id" in low and "actor" in low:
        return "Anthropic activity log"
    return None


_DEAD_LETTER_KEYS = frozenset({"reason", "message", "origin", "source"})
_INVENTORY_KEYS = frozenset({"identity", "kind", "kind_reason", "first_seen", "last_seen",
                             "credentials"})
# The normalised Event as ``nhi-detector parse`` writes it (``Event.to_dict``)
_EVENT_KEYS = frozenset({"event_id", "ts", "source", "identity", "identity_kind",
                         "identity_resolution", "action", "outcome"})


def own_output_kind(record: dict[str, Any]) -> str | None:
    """``_own_output`` of a record as it was read (any key case)."""
    return _own_output(azure.lower_keys(record))


def _own_output(low: dict[str, Any]) -> str | None:
    """What kind of nhi-detector output or input file a record is (alerts, dead letters,
    inventory, labels), or None: a directory of logs often holds last run's outputs or the
    labels file, and reading them as logs would make a dead letter of every line."""
    schema = low.get("schema")
    if isinstance(schema, str) and schema.startswith("nhi-detector/"):
        return "alerts"
    metadata = low.get("metadata")
    product = metadata.get("product") if isinstance(metadata, dict) else None
    if isinstance(product, dict) and product.get("name") == "nhi-detector":
        return "OCSF alerts"
    if isinstance(low.get("scenarios"), list) and "version" in low:
        return "labels"
    keys = low.keys()
    if keys >= _DEAD_LETTER_KEYS:
        return "dead letters"
    if keys >= _INVENTORY_KEYS:
        return "inventory records"
    if keys >= _EVENT_KEYS:
        return "parsed events (the parse command's output)"
    return None


def _gzip_member() -> Any:
    return zlib.decompressobj(wbits=47)  # a gzip header (or zlib's), checked


def _next_member(rest: bytes) -> bytes | None:
    """What follows a gzip member: the next member, or ``None`` (the end, zero padding or
    trailing data, judged by ``_gunzip``)."""
    return rest if rest[:2] == _GZIP_MAGIC else None


def _ignore_number(_: str) -> int:
    return 0


# Only finds where a value ends: numbers and constants are not converted (orjson decodes).
_END_FINDER = json.JSONDecoder(parse_int=_ignore_number, parse_float=_ignore_number,
                               parse_constant=_ignore_number)


@lru_cache(maxsize=64)
def _boundary_pattern(keys: tuple[str, ...]) -> re.Pattern[str]:
    """Where the next array element starts: a comma, then an object whose first key is one
    the elements so far started with (any object when none is known yet)."""
    if not keys:
        return re.compile(r",\s*(?=\{)")
    names = "|".join(re.escape(key) for key in keys)
    return re.compile(rf',\s*(?=\{{\s*"(?:{names})"\s*:)')


def _next_value_start(text: str, start: int) -> tuple[int, int]:
    """Where the next top-level object probably starts: a line beginning with ``{``."""
    cursor = start
    while True:
        newline = text.find("\n", cursor)
        if newline < 0:
            return len(text), len(text)
        if text[newline + 1:newline + 2] == "{":
            return newline + 1, newline + 1
        cursor = newline + 1
