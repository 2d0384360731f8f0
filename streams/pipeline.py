"""The worker's two steps as plain functions over bytes: no Faust, no I/O, easy to test.

1. ``Pipeline.split_many`` (raw topic): the raw messages of one short window ->
   ``detector.sources.parse_payload`` -> events grouped by the repartition partition of
   their identity -> one repartition message per partition, plus dead letters.
2. ``Pipeline.apply`` (repartition topic): one message -> for each identity in it, load its
   state blob from the table into the ``Detector`` (unless already loaded), process its
   events, hand back the new blob -> alerts, table writes, inventory, accounting, dead
   letters. With ``write=False`` the changed identities stay pending, and
   ``pending_writes`` serialises each once for many messages; ``held_from`` names the
   first message of each partition whose events are not in the table yet, past which no
   offset may be committed.

Kubernetes audit stages of one request (edge case B06) may arrive in different raw
messages: each raw partition has its own long-lived ``Parser``, whose stage merger holds
early stages across messages exactly as replay's does (``detector.sources.stages``).
``held_offset`` names the earliest raw message whose stage still waits; the worker commits
no raw offset past it, so a crash re-reads every stage that was never emitted.

Delivery is at least once. Each identity's table value records the position of the last
event applied per raw partition, so a raw message redelivered after a crash (and the
repartition messages made from it again) is recognised and skipped event by event: the
state never learns an event twice, and skipped events are still reported on the
accounting topic.
All detection happens in ``detector``; this module only moves data.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detector.errors import InputError
from detector.event import Event
from detector.sources.deadletter import REASONS, dead_letter_dict
from detector.stats import RunStats
from streams import codecs

log = logging.getLogger(__name__)

StateGet = Callable[[str], "bytes | None"]
RawMessage = tuple["bytes | None", str, int, int]  # data, topic, partition, offset

# Identities whose repartition partition is remembered (murmur2 in pure Python costs about
# 15 us, more than encoding and decoding an event, and the same identities keep coming).
PARTITION_CACHE_SIZE = 100_000

# Events per repartition message: about 500 bytes each as rows, so a message stays well
# under the broker's default 1 MiB limit.
MAX_EVENTS_PER_MESSAGE = 1000

# Encoded bytes per message the worker produces. Counting events is not enough: one record
# may hold a 200 KB field, and a message over the producer's max_request_size (1,000,000
# in streams.app) or the broker's message.max.bytes (1 MiB by default) fails every send,
# so the worker would stop on it after each restart. 100 KB are left for key and headers.
MAX_MESSAGE_BYTES = 900_000

REASONS_OVERSIZED = REASONS["oversized_record"].split(" and ")[0]  # "record exceeds ..."

# The raw offset in an origin: Kafka topic names hold neither "]" nor "@".
_OFFSET = re.compile(r"\]@([0-9]+)")


def _chunks(batches: Mapping[str, list], limit: int) -> list[dict[str, list]]:
    """Split ``{identity: entries}`` into dicts of at most ``limit`` entries, keeping each
    identity's entries in order (a large identity spans consecutive chunks)."""
    chunks: list[dict[str, list]] = [{}]
    size = 0
    for identity, entries in batches.items():
        for start in range(0, len(entries), limit):
            part = entries[start:start + limit]
            if size and size + len(part) > limit:
                chunks.append({})
                size = 0
            chunks[-1].setdefault(identity, []).extend(part)
            size += len(part)
    return chunks


@dataclass
class Record:
    """One message to produce: topic role (``alerts``, ``shadow``, ``inventory``,
    ``dead_letters``, ``accounting``, ``repartition``), key, value, optional partition."""

    role: str
    key: bytes | None
    value: bytes
    partition: int | None = None


@dataclass
class Output:
    """What one message produced: records to send, table writes to make, events handled."""

    records: list[Record] = field(default_factory=list)
    writes: list[tuple[str, bytes]] = field(default_factory=list)
    events: int = 0

    @property
    def has_alerts(self) -> bool:
        return any(r.role in ("alerts", "shadow") for r in self.records)

    def add(self, role: str, key: bytes | None, value: bytes, partition: int | None = None):
        self.records.append(Record(role, key, value, partition))


class CollectingDeadLetters:
    """A ``DeadLetterSink`` that keeps the current message's dead letters for sending."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def write(self, reason: str, message: str, origin: str, raw: bytes | str | None,
              source: str) -> None:
        entry = dead_letter_dict(reason, message, origin, raw, source)
        if isinstance(raw, bytes | bytearray):
            try:
                bytes(raw).decode("utf-8")
            except UnicodeDecodeError:
                # the text form above is lossy for binary input: keep the exact bytes too
                entry["raw_base64"] = base64.b64encode(bytes(raw)[:65536]).decode("ascii")
        self.items.append(entry)

    def drain(self) -> list[dict[str, Any]]:
        items, self.items = self.items, []
        return items


def dead_letter_record(entry: dict[str, Any], topic: str, partition: int, offset: int) -> Record:
    value = {**entry, "topic": topic, "partition": partition, "offset": offset}
    return Record("dead_letters", f"{topic}[{partition}]".encode(), codecs.dumps(value))


class Pipeline:
    """Holds the detector, the counters and the bookkeeping of loaded identities."""

    def __init__(self, detector: Any, stats: RunStats, *, partitions: int,
                 topic_sources: Mapping[str, str | None], alert_format: str = "native",
                 shadow: bool = False, accounting: bool = False, rules: Any = None,
                 parse: Callable[..., list[Event]] | None = None) -> None:
        if parse is None:
            from detector.sources import parse_payload as parse
        self.detector = detector
        self.stats = stats
        self.partitions = partitions
        self.topic_sources = dict(topic_sources)
        self.alert_format = alert_format
        self.shadow = shadow
        self.accounting = accounting
        self.rules = rules
        self._parse = parse
        self.max_message_bytes = MAX_MESSAGE_BYTES
        self.dead_letters = CollectingDeadLetters()
        self.loaded: set[str] = set()
        # per loaded identity, the last raw position applied to its in-memory state per raw
        # partition: what its table value holds once its pending write is made, so the
        # table is read only when an identity is loaded, not for every message
        self.marks: dict[str, dict[str, int]] = {}
        self.inventory_due: set[str] = set()
        # repartition partition -> identities whose in-memory state is newer than their
        # table value (in the order they changed); ``pending_writes`` serialises them
        self.dirty: dict[int, dict[str, None]] = defaultdict(dict)
        # repartition partition -> offset of its earliest message whose events are applied
        # in memory but not yet in the table (``apply(write=False)``): no offset at or past
        # it may be committed until ``pending_writes`` has written them
        self.held_from: dict[int, int] = {}
        # repartition partition -> warm-start seeds (identity -> table value) not written yet
        self.seeds: dict[int, dict[str, bytes]] = defaultdict(dict)
        # Worker-only counters, kept out of RunStats so its per-source accounting stays
        # exact: parse failures are already counted there by the sources.
        self.failed: dict[str, int] = defaultdict(int)  # reason -> records dead-lettered
        self.redelivered = 0  # events skipped because their identity already applied them
        self._partition_of: dict[str, int] = {}
        # One parser per raw partition: its stage merger holds Kubernetes stages across that
        # partition's messages only, so what it holds is named by that partition's offsets.
        self._parsers: dict[tuple[str, int], Any] = {}
        # raw topic -> a short tag of its topic id (``streams.topics``), set by the worker:
        # a raw position is named ``topic[partition]~tag``, so that the positions of a topic
        # deleted and created again (its offsets start again at 0) are not compared with the
        # old topic's, which would skip the new events as redeliveries
        self.incarnations: dict[str, str] = {}

    def partition_of(self, identity: str) -> int:
        """``codecs.partition_for`` with a bounded memo (cleared whole when full)."""
        cache = self._partition_of
        target = cache.get(identity)
        if target is None:
            if len(cache) >= PARTITION_CACHE_SIZE:
                cache.clear()
            target = cache[identity] = codecs.partition_for(identity, self.partitions)
        return target

    # ------------------------------------------------------------------ step 1: split

    def split(self, data: bytes | None, *, topic: str, partition: int, offset: int) -> Output:
        """Parse one raw message and group its events by repartition partition."""
        return self.split_many([(data, topic, partition, offset)])

    def split_many(self, messages: list[RawMessage]) -> Output:
        """Parse raw messages (``(data, topic, partition, offset)``, in consumption order)
        and group all their events into one repartition message per target partition
        (more when one would exceed ``MAX_EVENTS_PER_MESSAGE``)."""
        out = Output()
        sources: dict[str, int] = {}
        groups: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
        for data, topic, partition, offset in messages:
            try:
                events = self._parse_one(data, topic, partition, offset, out)
            except Exception as err:  # noqa: BLE001 - poison message: dead-letter it (B15)
                self.dead_letters.drain()  # partial results of the failed message
                out.records += self.split_failed(data, err, topic=topic, partition=partition,
                                                 offset=offset).records
                continue
            tag = self.incarnations.get(topic)
            si = sources.setdefault(f"{topic}[{partition}]~{tag}" if tag else
                                    f"{topic}[{partition}]", len(sources))
            for index, event in enumerate(events):
                target = self.partition_of(event.identity)
                groups[target][event.identity].append((si, codecs.position(offset, index),
                                                       event))
            out.events += len(events)
        names = list(sources)
        for target, batches in sorted(groups.items()):
            for chunk in _chunks(batches, MAX_EVENTS_PER_MESSAGE):
                self._add_repartition(out, names, chunk, target)
        return out

    def _add_repartition(self, out: Output, names: list[str], chunk: dict[str, list],
                         target: int) -> None:
        """One repartition message for ``chunk``, or, when its encoding is over
        ``max_message_bytes``, its two halves in order (each identity's events keep their
        order, as for a chunk split by count). An event that does not fit alone is an
        ``oversized_record`` dead letter: sending it could only fail, again after every
        restart, and the stream would stop behind it."""
        value = codecs.encode_events(names, chunk)
        if len(value) <= self.max_message_bytes:
            out.add("repartition", None, value, target)
            return
        entries = [(identity, entry) for identity, items in chunk.items() for entry in items]
        if len(entries) == 1:
            identity, (si, pos, event) = entries[0]
            self._oversized_event(out, names[si], pos, event, len(value))
            return
        half = len(entries) // 2
        for part in (entries[:half], entries[half:]):
            grouped: dict[str, list] = {}
            for identity, entry in part:
                grouped.setdefault(identity, []).append(entry)
            self._add_repartition(out, names, grouped, target)

    def _oversized_event(self, out: Output, source: str, pos: int, event: Event,
                         size: int) -> None:
        source = source.partition("~")[0]  # the topic's tag is no part of an origin
        topic, _, rest = source.rpartition("[")
        partition, offset = int(rest.rstrip("]")), pos >> codecs.INDEX_BITS
        index = pos & ((1 << codecs.INDEX_BITS) - 1)
        message = (f"{REASONS_OVERSIZED}: the event is {size:,} bytes encoded, over the "
                   f"{self.max_message_bytes:,} bytes a repartition message may hold")
        entry = dead_letter_dict("oversized_record", message,
                                 f"{source}@{offset}#event {index}",
                                 codecs.dumps(codecs.compact_event(event)), "worker")
        entry["event_id"] = str(event.event_id) or None
        self.failed["oversized_record"] += 1
        out.records.append(dead_letter_record(entry, topic, partition, offset))

    def fit(self, records: list[Record]) -> list[Record]:
        """``records`` with each one too large to produce replaced by an
        ``oversized_record`` dead letter that keeps the start of its value (the dead letter
        says the raw text was cut, its full size and sha256): an alert or inventory entry
        over the limit could never be sent, and retrying it would stop the worker for good.
        Dead letters themselves fit: their raw text is capped at 64 KiB."""
        limit = self.max_message_bytes
        if all(len(r.value) + len(r.key or b"") <= limit for r in records):
            return records
        kept = []
        for record in records:
            size = len(record.value) + len(record.key or b"")
            if size <= limit:
                kept.append(record)
                continue
            log.warning("a %s message of %d bytes is over %d: sent as a dead letter",
                        record.role, size, limit)
            message = (f"{REASONS_OVERSIZED}: a {record.role} message of {size:,} bytes is "
                       f"over the {limit:,} bytes the worker may produce")
            entry = dead_letter_dict("oversized_record", message, f"{record.role} output",
                                     record.value, "worker")
            entry["role"] = record.role
            if record.key is not None:
                entry["key"] = record.key[:1024].decode("utf-8", "replace")
            self.failed["oversized_record"] += 1
            kept.append(Record("dead_letters", record.key, codecs.dumps(entry)))
        return kept

    def _parse_one(self, data: bytes | None, topic: str, partition: int, offset: int,
                   out: Output) -> list[Event]:
        origin = f"{topic}[{partition}]@{offset}"
        source = self.topic_sources.get(topic)
        parser = self._parsers.get((topic, partition))
        if parser is None:
            from detector.sources import Parser

            parser = self._parsers[(topic, partition)] = Parser(
                stats=self.stats, dead_letters=self.dead_letters, source=source,
                rules=self.rules)
        events = self._parse(data or b"", origin=origin, source=source, stats=self.stats,
                             dead_letters=self.dead_letters, rules=self.rules, parser=parser)
        for entry in self.dead_letters.drain():
            self.failed[entry["reason"]] += 1
            out.records.append(dead_letter_record(entry, topic, partition, offset))
        return events

    def split_failed(self, data: bytes | None, err: BaseException, *, topic: str,
                     partition: int, offset: int) -> Output:
        """A raw message whose handling raised: the whole message becomes a dead letter."""
        return self._failed_message(data, err, topic, partition, offset, source="unknown")

    # ------------------------------------------------------------------ step 2: apply

    def apply(self, data: bytes, *, topic: str, partition: int, offset: int,
              get_state: StateGet, write: bool = True) -> Output:
        """Process one repartition message against table-backed identity state.

        The table writes come back in ``out.writes`` instead of being made here: the agent
        makes them only after the alerts in ``out`` are acknowledged, so a crash can
        repeat an alert (same id) but never record state for an alert that was lost.
        With ``write=False`` the changed identities stay pending instead, so that several
        messages of one partition cost one write per identity (``pending_writes``).
        """
        tag, body = codecs.decode_repartition(data)
        out = Output()
        if tag == codecs.SEED_TAG:
            self._seed(body, partition, get_state)
            return self._finish(out, partition, offset, write)
        if tag == codecs.REASSERT_TAG:
            self._reassert(body["identities"], partition, get_state)
            return self._finish(out, partition, offset, write)
        sources = body["src"]
        reader = codecs.EventReader(body.get("fields"))
        accounted: list[str] = []
        for identity, entries in body["batches"].items():
            applied = self._marks_of(identity, get_state)
            marks = dict(applied)
            fresh = []
            for si, pos, item in entries:
                src = sources[si]
                if pos <= applied.get(src, -1):
                    # a redelivery: state has this event; account for it, do not relearn
                    self.redelivered += 1
                    accounted.append(reader.event_id(item))
                    continue
                fresh.append(item)
                marks[src] = max(marks.get(src, -1), pos)
            if not fresh:
                # outputs sent after this state was saved may have died with the last
                # worker: announce the identity's inventory again
                self.inventory_due.add(identity)
                continue
            accounted.extend(self._run(identity, fresh, reader, out, topic, partition,
                                       offset))
            self.marks[identity] = marks
            self.dirty[partition][identity] = None
        self._finish(out, partition, offset, write)
        if self.accounting and accounted:
            value = {"topic": topic, "partition": partition, "offset": offset,
                     "event_ids": accounted}
            out.add("accounting", None, codecs.dumps(value))
        out.events = len(accounted)
        return out

    def _finish(self, out: Output, partition: int, offset: int, write: bool) -> Output:
        if write:
            out.writes += self.pending_writes(partition)
        else:
            self.hold_pending(partition, offset)
        return out

    def _reassert(self, identities: list[str], partition: int, get_state: StateGet) -> None:
        """A worker the group may have dropped had records of these identities land late
        (``streams.fencing``): their state and inventory are written again from what this
        owner holds, so that they end both topics."""
        named = [i for i in identities if self.partition_of(i) == partition]
        for identity in named:
            self._marks_of(identity, get_state)
            self.dirty[partition][identity] = None  # no state: pending_writes skips it
        log.info("partition %d: %d identities written again, named by a worker whose "
                 "records of them landed late", partition, len(named))

    def reassert_records(self, identities: Iterable[str]) -> list[Record]:
        """One message per repartition partition naming ``identities`` to write again."""
        by_partition: dict[int, list[str]] = defaultdict(list)
        for identity in identities:
            by_partition[self.partition_of(identity)].append(identity)
        return [Record("repartition", None, codecs.encode_reassert(names), target)
                for target, names in sorted(by_partition.items())]

    def apply_failed(self, data: bytes | None, err: BaseException, *, topic: str,
                     partition: int, offset: int) -> Output:
        return self._failed_message(data, err, topic, partition, offset, source="worker")

    def _marks_of(self, identity: str, get_state: StateGet) -> dict[str, int]:
        """The identity's applied positions; loads its state from the table first when it
        is not in memory yet (after a start, a rebalance or a warm start)."""
        if identity in self.loaded:
            return self.marks[identity]
        applied, blob = codecs.unpack_state(self._stored(identity, get_state))
        if blob:
            self.detector.set_identity_state(identity, blob)
        else:
            self.detector.store.pop(identity, None)
        self.loaded.add(identity)
        self.marks[identity] = applied
        return applied

    def _run(self, identity: str, items: list[Any], reader: codecs.EventReader, out: Output,
             topic: str, partition: int, offset: int) -> list[str]:
        done = []
        for item in items:
            try:
                event = reader.event(identity, item)
                alerts = self.detector.process(event)
            except Exception as err:  # noqa: BLE001 - one bad event must not stop the agent
                log.warning("event failed in the detector at %s[%s]@%s identity=%r: %r",
                            topic, partition, offset, identity, err)
                log.debug("detector failure traceback", exc_info=True)
                entry = dead_letter_dict("internal_error", f"detector failed: {err!r}",
                                         f"{topic}[{partition}]@{offset}",
                                         codecs.dumps(reader.named(identity, item)),
                                         "worker")
                entry["event_id"] = reader.event_id(item) or None
                self.failed["internal_error"] += 1
                out.records.append(dead_letter_record(entry, topic, partition, offset))
                continue
            done.append(str(event.event_id))
            for alert in alerts:
                self._alert(alert, out)
        return done

    def _alert(self, alert: Any, out: Output) -> None:
        if self.shadow and not alert.shadow:
            # a shadow worker's alerts are all on trial: they say so in their own shadow
            # field (native) or label (OCSF), not only by the topic they are sent to
            alert = dataclasses.replace(alert, shadow=True)
        if self.alert_format == "ocsf":
            from detector.ocsf import to_ocsf

            value = to_ocsf(alert)
        else:
            value = alert.to_native()
        role = "shadow" if alert.shadow else "alerts"
        out.add(role, alert.identity.encode("utf-8"), codecs.dumps(value))
        if alert.identity in self.loaded:
            # a sweep may close another identity's group: its state changed too
            self.dirty[self.partition_of(alert.identity)][alert.identity] = None

    def hold_pending(self, partition: int, offset: int) -> None:
        """After the message at ``offset`` of ``partition``: when the partition has state
        not written yet, hold its offsets from the earliest such message on."""
        if self.dirty.get(partition) or self.seeds.get(partition):
            self.held_from.setdefault(partition, offset)

    def pending_writes(self, partition: int) -> list[tuple[str, bytes]]:
        """The table writes of the partition's identities whose state changed since their
        last write, each serialised once however many messages changed it, and its
        warm-start seeds not superseded by such a change."""
        self.held_from.pop(partition, None)
        dirty = self.dirty.pop(partition, {})
        writes = [(identity, value) for identity, value in self.seeds.pop(partition, {}).items()
                  if identity not in dirty]
        for identity in dirty:
            blob = self.detector.identity_state(identity)
            if blob is None:
                continue
            writes.append((identity, codecs.pack_state(self.marks.get(identity, {}), blob)))
            self.inventory_due.add(identity)
        return writes

    def flush_inventory(self) -> Output:
        """Inventory records of identities changed since the last flush. Called before each
        offset commit (and at shutdown), not per message: the topic is compacted, so only
        the latest record per identity matters, and building one costs more than the
        event itself."""
        out = Output()
        due, self.inventory_due = self.inventory_due, set()
        for identity in sorted(due):
            record = self.inventory_of(identity)
            if record is not None:
                out.add("inventory", identity.encode("utf-8"), codecs.dumps(record))
        return out

    def inventory_of(self, identity: str) -> dict[str, Any] | None:
        """The identity's inventory entry, as ``Detector.inventory()`` builds it for all.

        The detector's own ``inventory_entry``: its clock is bounded below by the
        identity's last event. The run's last event time alone is behind after a restart
        whose first messages are redeliveries (0 before any new event), and an identity
        past its learning period was then published as still learning."""
        return self.detector.inventory_entry(identity)

    def _seed(self, body: Mapping[str, bytes], partition: int, get_state: StateGet) -> None:
        """Warm start: snapshot state for the partition's identities the table does not
        know yet, written with its other pending writes (``pending_writes``), so only while
        the worker's group membership is current, as every state write."""
        for identity, blob in body.items():
            if self.partition_of(identity) != partition:
                continue  # its owner is another partition's: a table value here is lost
            if (self._stored(identity, get_state) is not None
                    or identity in self.dirty.get(partition, ())):
                continue  # the table has state, or this worker has state not written yet
            self.seeds[partition][identity] = codecs.pack_state({}, blob)
            self.loaded.discard(identity)
            self.marks.pop(identity, None)

    def _stored(self, identity: str, get_state: StateGet) -> bytes | None:
        """The identity's table value, or its warm-start seed not written yet."""
        seeds = self.seeds.get(self.partition_of(identity))
        if seeds and identity in seeds:
            return seeds[identity]
        return get_state(identity)

    # ------------------------------------------------------------------ bookkeeping

    def held_offset(self, topic: str, partition: int) -> int | None:
        """The offset of the earliest raw message of this partition holding a Kubernetes
        stage that waits for the rest of its request, or None when nothing waits.

        No offset at or past it may be committed: the held stage exists only in this
        process, and a restart must read it again to emit its request."""
        parser = self._parsers.get((topic, partition))
        if parser is None:
            return None
        return _earliest_origin(parser)

    def forget_raw_partitions(self, partitions: set[tuple[str, int]]) -> None:
        """Drop the parsers of revoked raw partitions with the stages they hold: the next
        owner reads those stages again from the committed offset, which is not past them
        (``held_offset``), so keeping them here would emit their requests twice."""
        for key in partitions:
            self._parsers.pop(key, None)

    def forget_partitions(self, partitions: set[int]) -> int:
        """Drop identities of revoked partitions from the detector; they are reloaded from
        the table if the partition comes back. Returns how many were dropped."""
        dropped = 0
        for identity in list(self.loaded):
            if self.partition_of(identity) in partitions:
                self.loaded.discard(identity)
                self.marks.pop(identity, None)
                self.inventory_due.discard(identity)
                self.detector.store.pop(identity, None)
                dropped += 1
        for partition in partitions:
            self.dirty.pop(partition, None)
            self.seeds.pop(partition, None)
            self.held_from.pop(partition, None)
        return dropped

    def _failed_message(self, data: bytes | None, err: BaseException, topic: str,
                        partition: int, offset: int, source: str) -> Output:
        reason = err.reason if isinstance(err, InputError) else "internal_error"
        log.warning("message failed at %s[%s]@%s: %r", topic, partition, offset, err)
        sink = CollectingDeadLetters()
        sink.write(reason, f"message handling failed: {err!r}",
                   f"{topic}[{partition}]@{offset}", data, source)
        self.failed[reason] += 1
        out = Output()
        out.records.append(dead_letter_record(sink.items[0], topic, partition, offset))
        return out


def _earliest_origin(parser: Any) -> int | None:
    """The smallest raw offset among the stages ``parser``'s merger holds.

    Each pending stage keeps the origin it was fed with: ``Pipeline._parse_one``'s
    ``topic[partition]@offset``, which the parser may extend with where the record sits
    (``:line``, ``#Records[i]``). A scan is cheap: at most ``stages.MAX_PENDING_STAGES``
    entries, once per ingest window."""
    origins = parser.pending_origins()
    if not origins:
        return None
    return min(int(_OFFSET.search(origin).group(1)) for origin in origins)
