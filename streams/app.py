"""The Faust application: topics, the state table, the two steps and their timers.

::

    raw topic(s) --ingest--> <app_id>-events-by-identity --detect--> alerts (or shadow)
      | parse, group by        one message per partition,     | table-backed identity
      | identity partition     many identities inside         | state, Detector
      v                                                       v
    dead letters                                 inventory, dead letters, accounting

The ingest step is a task fed by the consumer itself (``streams.intake``: the raw messages
skip Faust's per-message streams), the detect step an agent. Each wraps every message in
try/except: a poison message becomes a dead letter and the step keeps consuming (B15).
Every send has a timeout (B19); a send that still fails after retries ends the worker at
once with a non-zero exit so the platform restarts it and the uncommitted messages are
processed again (at least once). No detection logic lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import concurrent.futures
import logging
import os
import ssl
import sys
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import faust
from faust import streams as faust_streams

from detector.errors import SinkError
from streams import peerstore
from streams.admin import COMPACTION_LAG_MS
from streams.datadir import STORE_EXIT_CODE, store_failure
from streams.fencing import (
    ChangelogAudit,
    LateWrites,
    foreign_keys,
    log_skipped,
    newest_states,
)
from streams.health import METADATA_REFRESH_S
from streams.intake import RawIntake, Window
from streams.membership import Membership
from streams.pipeline import Output, Pipeline, Record
from streams.settings import WorkerSettings
from streams.topics import incarnation_tag

log = logging.getLogger(__name__)

SEND_ATTEMPTS = 3
FATAL_EXIT_CODE = 70
HEALTH_INTERVAL_S = 2.0
# How often the changelog audit runs when no offset commit starts it (streams.fencing)
AUDIT_INTERVAL_S = 10.0
# The identity gauges count the table (table_census) at most this often, and at once after
# an assignment changes: a scan reads every stored identity of the worker's partitions.
TABLE_CENSUS_S = 30.0
# Stored identities the census reads between two turns of the event loop: a few
# milliseconds of work, so that a million identities do not hold the agents, the
# consumer and its heartbeats for seconds.
TABLE_CENSUS_CHUNK = 5_000
# At most this long (and never longer than --io-timeout) a fatal exit waits for the broker to
# take the worker's LeaveGroup request; then it exits anyway, and the group notices the
# member is gone only after the session timeout, as before.
LEAVE_GROUP_TIMEOUT_S = 5.0
# At most this long a raw topic created again under an assigned partition waits for the
# fetch in progress before it is read from its start (restart_recreated); then tried again
# at the next health refresh.
SETTLE_TIMEOUT_S = 10.0
# How long the broker may hold a fetch that finds no new data (Faust's driver fixes 1500 ms:
# ``short_fetch_wait``). The consumer keeps one fetch in flight to a broker, and sends one
# for its other partitions when a partition's fetched records wait unread for 100 ms
# (aiokafka's prefetch backoff): a fetch that then finds nothing there held the busy
# partition's next fetch back for the whole wait. An idle worker fetches this often.
FETCH_MAX_WAIT_MS = 100


@dataclass
class Runtime:
    """What the agents share: the pipeline, the health state, the metrics bundle."""

    settings: WorkerSettings
    pipeline: Pipeline
    health: Any
    metrics: Any
    roles: dict[str, Any] = field(default_factory=dict)
    # raw (topic, partition) -> offset of its earliest message holding a Kubernetes stage
    # (``Pipeline.held_offset``): offsets are committed up to it, never past it
    holds: dict[tuple[str, int], int] = field(default_factory=dict)
    # leaves the consumer group within the given seconds; says how it went (create_app)
    leave_group: Callable[[float], str] | None = None
    # told the number of assigned partitions the first time the worker is ready, then unset
    on_ready: Callable[[Collection[Any]], None] | None = None
    # awaited by the consumer before each offset commit: the detect agent's state writes,
    # which move the holds forward so that the commit covers them (_declare_agents)
    before_commit: Callable[[], Awaitable[None]] | None = None
    # the raw topics as the broker describes them (streams.topics.TopicWatch), if watched
    topics: Any = None
    # raw topic -> the last topic id seen for it: a new id means it was created again
    topic_ids: dict[str, str] = field(default_factory=dict)
    # raw topics seen with a new topic id while this worker ran (deleted, created again)
    recreated: set[str] = field(default_factory=set)
    # raw (topic, partition) -> the topic id it was last read from its start for
    restarted: dict[tuple[str, int], str] = field(default_factory=dict)
    # the raw topics' messages as the consumer fetched them (streams.intake), if used
    intake: RawIntake | None = None
    # whether the group surely still counts this worker, from its heartbeats (create_app)
    membership: Membership | None = None
    # its records acknowledged when membership was not current (streams.fencing)
    late_writes: LateWrites | None = None
    # records in its changelog partitions it did not write (streams.fencing); the event
    # is set after each offset commit and by a timer for the audit task
    audit: ChangelogAudit | None = None
    audit_due: asyncio.Event = field(default_factory=asyncio.Event)

    def fatal(self, reason: str, code: int = FATAL_EXIT_CODE) -> NoReturn:
        """End the worker now with exit code 70 (or ``code``), without Faust's graceful stop.

        A graceful stop would wait on the very deliveries that failed: it drains the streams
        (the current message waits on the failed send), and every commit and the final
        flush first wait for the producer's pending requests, bounded only by the broker
        request timeout. Nothing is lost by skipping it: Faust commits an offset only after
        flushing the producer, and the message whose send failed is never acknowledged,
        so the restart reprocesses it and everything after the last commit.

        It first leaves the consumer group (bounded by ``LEAVE_GROUP_TIMEOUT_S``), so the
        other workers take its partitions at once instead of after a session timeout.
        """
        log.critical("stopping the worker (exit %d, nothing more is committed): %s",
                     code, reason)
        if self.leave_group is not None:
            timeout = min(LEAVE_GROUP_TIMEOUT_S, self.settings.io_timeout)
            log.critical("leaving the consumer group: %s", self.leave_group(timeout))
        exit_now(code)


def exit_now(code: int) -> NoReturn:
    """End the process with ``code`` at once, after flushing the log handlers and standard
    streams: ``os._exit`` skips the interpreter's exit, which would flush them."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def broker_credentials(settings: WorkerSettings) -> Any:
    """Faust credentials for SASL and/or TLS, or None for PLAINTEXT."""
    protocol = settings.security_protocol
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=settings.ssl_cafile or None)
        if settings.ssl_certfile:
            context.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile or None)
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password,
                                     mechanism=settings.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: WorkerSettings, runtime: Runtime) -> faust.App:
    """Build the Faust app for ``settings``; agents call ``runtime.pipeline``."""
    heartbeat = min(3.0, settings.session_timeout / 3)
    membership = runtime.membership = Membership(settings.session_timeout, heartbeat)
    late = runtime.late_writes = LateWrites(membership)
    audit = runtime.audit = ChangelogAudit()
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{server}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=broker_credentials(settings),
        # one per worker, so that the broker's request logs and quotas tell workers apart
        broker_client_id=f"nhi-detector-{settings.data_dir.name}",
        store=settings.resolved_store(),
        datadir=str(settings.store_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_max_poll_records=settings.max_poll_records,
        consumer_max_fetch_size=settings.max_fetch_bytes,
        broker_commit_interval=settings.commit_interval,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=heartbeat,
        broker_request_timeout=max(settings.io_timeout + 10.0, 90.0),  # > session timeout
        consumer_metadata_max_age_ms=METADATA_REFRESH_S * 1000,  # a recreated raw topic
        # what streams.pipeline.MAX_MESSAGE_BYTES keeps every message under, with room for
        # key and headers (Faust's default, set here so the two cannot drift apart)
        producer_max_request_size=1_000_000,
        consumer_auto_offset_reset="earliest",  # B16: out-of-range reads restart at earliest
        stream_wait_empty=True,  # SIGTERM: finish buffered messages, commit, then close
        table_standby_replicas=0,
        web_enabled=False,  # streams.health serves probes and metrics on its own port
        Monitor=worker_monitor(runtime),
        Table=state_table(lambda action, err: store_failed(runtime, action, err), late,
                          audit),
    )
    intake = runtime.intake = RawIntake(settings.topic_sources(), settings.ingest_max_messages)
    app.transport.Consumer = short_fetch_wait(holding_consumer(
        app.transport.Consumer, runtime.holds, lambda: runtime.before_commit,
        lambda: lambda consumer: check_raw_offsets(consumer, runtime), intake=intake,
        streamed=(settings.repartition_topic,), seek_timeout=settings.io_timeout,
        fail=lambda reason: runtime.fatal(reason)), watch=membership.watch)
    runtime.leave_group = lambda timeout: leave_group(app, timeout)
    topics = _declare_topics(app, settings)
    runtime.roles = topics
    table = app.Table(settings.table_name, partitions=settings.partitions, key_type=bytes,
                      value_type=bytes, help="per-identity detector state (changelog-backed)",
                      # Faust makes the changelog compacted; see streams.admin.COMPACTED
                      extra_topic_configs={"min.compaction.lag.ms": str(COMPACTION_LAG_MS)})
    _declare_agents(app, runtime, topics, table)
    _declare_health(app, runtime, table)
    return app


def store_failed(runtime: Runtime, action: str, err: BaseException) -> NoReturn:
    """A failing store (a full, read-only, immutable or damaged disk) is not a bad record:
    the worker stops at once with one line (``streams.datadir.store_failure``) and exit
    code 74, rather than dead-lettering the message that met it or crashing Faust with a
    traceback per task."""
    runtime.fatal(store_failure(runtime.settings.store_dir, action, err), STORE_EXIT_CODE)


def state_table(failed: Callable[[str, BaseException], NoReturn],
                late: LateWrites | None = None, audit: ChangelogAudit | None = None) -> type:
    """Faust's table class with its store's calls at an assignment and during recovery
    handed to ``failed`` (``store_failed``) when they raise; with ``late``, fenced
    against the writes of a worker the group dropped (``streams.fencing``): recovery
    skips stale states, and a changelog record acknowledged late does not move the
    store's recovered position; with ``audit``, its own acknowledged records and where
    each active partition's recovery ended are noted for ``ChangelogAudit``.

    Without it a store that cannot be opened (damaged, or its directory unwritable)
    crashed Faust with a traceback and exit 1, again at every restart; and one that failed
    while the changelog was replayed into it was only a WARNING (``Error in recovery``)
    from Faust's recovery loop, which went on without the batch: the table then lacked
    those identities' states, and they learned their baselines again. Faust's own
    rebalance signals pass through unchanged.
    """
    from aiokafka.errors import IllegalStateError
    from faust.tables.recovery import RebalanceAgain, ServiceStopped

    passing = (RebalanceAgain, ServiceStopped, IllegalStateError)

    @contextlib.contextmanager
    def guarded(action: str, passes: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
        try:
            yield
        except passes:
            raise
        except Exception as err:  # noqa: BLE001 - the store failed: the worker stops
            failed(action, err)

    class StateTable(faust.Table):  # type: ignore[misc, valid-type]
        async def on_rebalance(self, *args: Any, **kwargs: Any) -> None:
            with guarded("opened", passing):  # the store could not be opened
                await super().on_rebalance(*args, **kwargs)

        def persisted_offset(self, tp: Any) -> int | None:
            with guarded("read"):
                return super().persisted_offset(tp)

        def apply_changelog_batch(self, batch: Any) -> None:
            with guarded("written (table recovery)"):
                if late is not None:
                    before = late.stale_skipped
                    batch = list(newest_states(batch, self._stored, late.skipped))
                    log_skipped(late, before)
                super().apply_changelog_batch(batch)

        def _stored(self, event: Any) -> bytes | None:
            """The store's value for a changelog event's key, read from its partition (the
            store picks it from the current event, which recovery does not set)."""
            token = faust_streams._current_event.set(weakref.ref(event))
            try:
                return self.data.get(event.message.key)
            finally:
                faust_streams._current_event.reset(token)

        def _on_changelog_sent(self, fut: Any) -> None:
            if late is None or late.acknowledged(fut.message.key, "state"):
                super()._on_changelog_sent(fut)
                if audit is not None:
                    sent = fut.result()
                    audit.acknowledged(sent.topic_partition, sent.offset)

        async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
            with guarded("written", passing):
                await super().on_recovery_completed(active_tps, standby_tps)
            if audit is not None:
                # Faust's recovery read each partition up to its highwater (last offset)
                recovered = self.app.tables.recovery.active_highwaters
                for tp in active_tps:
                    if tp.topic == self.changelog_topic_name and tp in recovered:
                        audit.begin(tp, recovered[tp] + 1)

    return StateTable


def short_fetch_wait(base: type, wait_ms: int = FETCH_MAX_WAIT_MS,
                     watch: Callable[[Any], None] | None = None) -> type:
    """``base`` (Faust's aiokafka consumer class) whose aiokafka consumer lets the broker
    hold an empty fetch ``wait_ms`` instead of the 1500 ms that Faust's driver passes.

    With one broker every partition is fetched in one request, one at a time. While a raw
    partition's fetched records are being read (more than aiokafka's 100 ms prefetch
    backoff), the consumer fetches its other partitions alone: the repartition topic, the
    changelog, Faust's assignor topic. When those have nothing new, the broker keeps that
    fetch for the whole wait, and the raw partition, read meanwhile, is fetched again only
    after it: a worker working through a backlog sat idle up to 1.5 s per fetched megabyte
    (a no-op Faust agent too, at 900 messages/s instead of 12,000). The driver passes the
    value to aiokafka's consumer, which hands it to its fetcher when it starts; it is set
    on the consumer the driver creates, before that start. ``watch``, when given, is
    called with that consumer then too (``Membership.watch``)."""

    class ShortFetchWaitConsumer(base):  # type: ignore[misc, valid-type]
        def _new_consumer_thread(self) -> Any:
            thread = super()._new_consumer_thread()
            create = thread._create_worker_consumer

            def create_worker_consumer(transport: Any) -> Any:
                consumer = create(transport)
                consumer._fetch_max_wait_ms = wait_ms
                if watch is not None:
                    watch(consumer)
                return consumer

            thread._create_worker_consumer = create_worker_consumer
            return thread

    return ShortFetchWaitConsumer


class ActiveSelection:
    """The consumer's set of active partitions as aiokafka's fetch sees it
    (``HoldingConsumer._getmany``): every membership test reads the set as it is then,
    and it is never empty.

    Faust passes its live set of active partitions to aiokafka's ``fetched_records``,
    which tests it again each time its wait for records wakes, and takes an empty set for
    "every assigned partition". The set empties during an assignment: the raw and
    repartition partitions stay paused until their seek (``HoldingConsumer``), and the
    changelog partitions are paused once recovered. A fetch waiting then took every
    record fetched meanwhile, of every partition, and Faust dropped those of inactive
    partitions: their positions had moved past them, after the assignment's seek too, so
    a worker that took over a dead member's partitions skipped what had arrived since its
    last commit."""

    __slots__ = ("tps",)

    def __init__(self, tps: Collection[Any]) -> None:
        self.tps = tps

    def __bool__(self) -> bool:
        return True

    def __contains__(self, tp: object) -> bool:
        return tp in self.tps


def holding_consumer(base: type, holds: Mapping[tuple[str, int], int],
                     before_commit: Callable[[], Any] = lambda: None,
                     after_seek: Callable[[], Any] = lambda: None, *,
                     intake: RawIntake, streamed: Collection[str] = (),
                     seek_timeout: float = 30.0,
                     fail: Callable[[str], Any] | None = None) -> type:
    """``base`` (Faust's consumer class) that never commits a partition at or past its
    entry in ``holds``, and before each commit awaits the coroutine function that
    ``before_commit()`` names (none when it gives None; it is looked up at each commit,
    since the agents that set it are declared after the consumer class). After each seek
    to the committed offsets (``perform_seek``, at every assignment, before any record is
    read) it awaits ``after_seek()(consumer)`` the same way (``check_raw_offsets``).

    Faust commits the end of the first run of consecutive acknowledged offsets
    (``_new_offset``, which also removes that run from its list). Offsets at or past the
    hold are kept out of that list while it runs and put back after, so they are committed
    once the hold moves past them; the ingest step acknowledges its messages as usual.
    Every commit goes through ``commit`` (the commit timer, ``broker_commit_every``, a
    failed task, the stop), so what ``before_commit`` writes and releases is in the same
    commit. A failure there is logged and the commit goes on: the holds it did not move
    keep the unwritten messages uncommitted.

    The messages of the ``intake``'s topics (``streams.intake``) go into it instead
    of through Faust's conductor and streams: ``getmany`` keeps Faust's checks of each
    fetched message (flow, generation, active partitions) and its read offsets and gaps,
    tracks the message as unacknowledged and puts it in the intake, waiting for room when
    the intake is full; the ingest task acknowledges it (``RawIntake.acknowledge``).

    A raw message is taken in only from the position the assignment's seek set: after an
    assignment Faust resumes the flow and the partitions before that seek (and
    ``check_raw_offsets`` after it may move a raw partition again), so the raw partitions
    stay paused until both are done for the consumer's generation (``resume_partitions``,
    ``perform_seek``). A record consumed earlier would be read again from the committed
    offset, or, dropped from the intake at the resume, never. The seek covers every raw
    partition: one without a committed offset is sought to its log start, since Faust
    drops the records of a fetch that ends in a rebalance and aiokafka leaves such a
    partition past them.

    The ``streamed`` topics (the repartition topic, read by the detect agent) get the
    same pause and the same seek: Faust's own streams lose records the same way. A
    rebalance before the first commit (no committed offset) dropped the messages a fetch
    had taken since the assignment, and the identities they had changed were dropped from
    memory at the revocation, unwritten, so their events were never applied. They are
    resumed only with the flow after the seek (``resume_flow``): Faust clears its stream
    queues there, and records fetched before it would be dropped past their read offset.

    Its fetch hands aiokafka an ``ActiveSelection`` of the active partitions, never
    Faust's live set itself, which aiokafka takes for every partition whenever it is
    empty (it is, during an assignment, while these partitions wait paused).

    When the log start of a partition without a committed offset cannot be found within
    ``seek_timeout`` seconds, ``fail`` ends the worker (``Runtime.fatal``; an exception
    when not given): left where it is, the partition would skip records, and left paused,
    it would never be read; a new process reads it from the committed offsets.
    """

    sought_topics = intake.topics | frozenset(streamed)

    class HoldingConsumer(base):  # type: ignore[misc, valid-type]
        # the consumer generation whose seek to the committed offsets is done
        _raw_sought: int | None = None
        # getmany calls begun so far (settle_raw)
        _fetches = 0
        # the streamed partitions sought, resumed with the flow (resume_flow)
        _after_flow: frozenset[Any] = frozenset()

        async def getmany(self, timeout: float) -> Any:
            self._fetches += 1
            intake.consumer = self
            raw = intake.topics
            read_offset = self._read_offset
            app = self.app
            async for tp, message in super().getmany(timeout):
                if tp.topic not in raw:
                    yield tp, message
                    continue
                # After each wait (Faust's fetch waits inside for the flow to resume after
                # a rebalance, so a generation taken before it may be older than the
                # messages), Faust's own check per message: a message fetched before the
                # last assignment is dropped with the rest of the batch, and the seek
                # reads it again.
                if intake.full():
                    await intake.wait_room()
                    if not self.flow_active or message.generation_id != app.consumer_generation_id:
                        return
                offset = message.offset
                read = read_offset[tp]
                if read is not None and offset < read:
                    continue  # before the read offset: read already (Faust's check)
                if read and offset - read > 1:
                    # offsets missing in the log (compaction, transaction markers): the
                    # commit may pass them, as Faust's own loop records
                    await self._add_gap(tp, read + 1, offset)
                    if not self.flow_active or message.generation_id != app.consumer_generation_id:
                        return
                self.track_message(message)
                intake.put(message)
                read_offset[tp] = offset

        async def _getmany(self, active_partitions: Any, timeout: float) -> Any:
            if active_partitions is not None:
                active_partitions = ActiveSelection(active_partitions)
            return await super()._getmany(active_partitions, timeout)

        async def commit(self, *args: Any, **kwargs: Any) -> bool:
            prepare = before_commit()
            if prepare is not None:
                try:
                    await prepare()
                except Exception as err:  # noqa: BLE001 - the holds keep what was not written
                    log.error("cannot write identity states before the commit: %r", err)
            return await super().commit(*args, **kwargs)

        async def on_partitions_assigned(self, assigned: set[Any],
                                         generation_id: int = 0) -> None:
            # paused before Faust makes the assigned partitions active (the flow may run
            # when the previous assignment was empty); resumed by perform_seek
            self._paused_partitions.update(tp for tp in assigned if tp.topic in sought_topics)
            await super().on_partitions_assigned(assigned, generation_id)

        def resume_partitions(self, tps: Any) -> None:
            if self._raw_sought != self.app.consumer_generation_id:
                tps = [tp for tp in tps if tp.topic not in sought_topics]
            elif self._after_flow:
                tps = [tp for tp in tps if tp not in self._after_flow]
            super().resume_partitions(tps)

        def resume_flow(self) -> None:
            super().resume_flow()
            waiting, self._after_flow = self._after_flow, frozenset()
            if waiting and self._raw_sought == self.app.consumer_generation_id:
                super().resume_partitions(waiting)

        async def perform_seek(self) -> None:
            # With the flow running this is the assignment's seek (the table recovery's);
            # without, the fetch's own during a rebalance, which the assignment's follows.
            generation = self.app.consumer_generation_id
            assigning = self.flow_active
            await super().perform_seek()
            sought = {tp for tp in self.assignment() if tp.topic in sought_topics}
            raw = {tp for tp in sought if tp.topic in intake.topics}
            # aiokafka seeks only the partitions with a committed offset past 0; the
            # others stay where the fetch left them, past any record Faust consumed and
            # dropped (a fetch that ended in a rebalance): they start at the log start,
            # as the consumer's offset reset (earliest) would start them
            unsought = sorted((tp for tp in sought if (self._committed_offset.get(tp) or 0) <= 0),
                              key=lambda tp: (tp.topic, tp.partition))
            if unsought:
                try:
                    starts = await asyncio.wait_for(self.earliest_offsets(*unsought),
                                                    seek_timeout)
                    for tp in unsought:
                        await self.seek(tp, starts.get(tp) or 0)
                except Exception as err:  # noqa: BLE001 - any failure: read them anew
                    names = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in unsought)
                    reason = (f"cannot seek {names} (no committed offset) to the log start: "
                              f"{err!r}; a new worker process reads them from the "
                              "committed offsets")
                    if fail is None:
                        raise RuntimeError(reason) from err
                    fail(reason)
            if assigning:
                intake.forget({(tp.topic, tp.partition) for tp in raw})
            check = after_seek()
            if check is not None:
                try:
                    await check(self)
                except Exception as err:  # noqa: BLE001 - the committed offsets stand
                    log.error("cannot check the raw partitions' committed offsets: %r", err)
            if assigning and generation == self.app.consumer_generation_id:
                self._raw_sought = generation
                self._after_flow = frozenset(sought - raw)
                super().resume_partitions(raw)

        async def settle_raw(self, tps: Collection[Any], timeout: float) -> bool:
            """Pause the raw partitions ``tps`` and wait until no fetch can still put one
            of their records into the intake (the next ``getmany`` has begun): then a
            seek decides alone where they are read from. False when that took longer
            than ``timeout`` seconds or a rebalance came (its seek decides then)."""
            generation = self.app.consumer_generation_id
            self.pause_partitions(tps)
            begun = self._fetches
            deadline = time.monotonic() + timeout
            while self._fetches == begun:
                if (time.monotonic() > deadline or self.app.rebalancing
                        or generation != self.app.consumer_generation_id):
                    return False
                await asyncio.sleep(0.01)
            return not self.app.rebalancing and generation == self.app.consumer_generation_id

        def _new_offset(self, tp: Any) -> int | None:
            hold = holds.get((tp.topic, tp.partition))
            acked = self._acked[tp]
            if hold is None or not acked:
                return super()._new_offset(tp)
            later = [offset for offset in acked if offset >= hold]
            if not later:
                return super()._new_offset(tp)
            acked[:] = [offset for offset in acked if offset < hold]
            try:
                return super()._new_offset(tp) if acked else None
            finally:
                acked.extend(later)

    return HoldingConsumer


def leave_group(app: faust.App, timeout: float) -> str:
    """Send the consumer's LeaveGroup request and wait for it at most ``timeout`` seconds.

    Only the request is sent: no offset is committed and no revocation handler runs, which
    is what a fatal exit needs (nothing more may be committed). The aiokafka consumer lives
    on Faust's consumer thread with its own event loop, so the request runs there; this
    thread blocks on it, which is fine for a process about to exit. Neither Faust nor
    aiokafka has a public call for it, hence the private attributes; anything missing
    means there is no group to leave yet.
    """
    thread = getattr(app._consumer, "_thread", None)
    loop = getattr(thread, "thread_loop", None)
    coordinator = getattr(getattr(thread, "_consumer", None), "_coordinator", None)
    leave = getattr(coordinator, "_maybe_leave_group", None)
    if leave is None or loop is None or not loop.is_running():
        return "not in a group yet"
    future = asyncio.run_coroutine_threadsafe(leave(), loop)
    try:
        future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        return f"no answer within {timeout:g}s; the group drops it after its session timeout"
    except Exception as err:  # noqa: BLE001 - the exit goes on whatever happens here
        return f"failed ({err!r}); the group drops it after its session timeout"
    return "left"


async def check_raw_offsets(consumer: Any, runtime: Runtime) -> None:
    """After the consumer sought its partitions to the group's committed offsets (each
    assignment, before any record is read), read from its start every raw or repartition
    partition whose committed offset cannot be its own; the others are left alone.

    1. The raw topics are described again (``streams.topics``), so a topic deleted and
       created again since this worker last saw it is known before its first record.
    2. A committed offset of such a topic may be the old topic's, committed again after
       the broker created the name anew (``recreated``), as is one past the partition's
       log end (``beyond_end``); one before its log start means records deleted by
       retention before they were read (``before_start``: lost, and said so). Faust skips
       every record below its read offset, which it sets to the committed offset, and
       commits nothing below it: such an offset lost the new topic's records up to it
       and then stopped the partition's commits, whatever the fetch position became.
    """
    if runtime.topics is not None:
        await asyncio.to_thread(runtime.topics.refresh)
        note_topic_ids(runtime)
    # the repartition topic's offsets can be stale the same way (deleted and created
    # again under the group); its positions need no tag: events carry their raw ones
    read = set(runtime.settings.topic_sources()) | {runtime.settings.repartition_topic}
    tps = sorted((tp for tp in consumer.assignment() if tp.topic in read),
                 key=lambda tp: (tp.topic, tp.partition))
    # what perform_seek has just set; Faust has no public accessor for it
    committed = {tp: consumer._committed_offset.get(tp) for tp in tps}
    for tp in tps:
        if tp.topic in runtime.recreated and (committed[tp] is None or committed[tp] < 0):
            # nothing committed: the consumer has just sought the log start (perform_seek)
            runtime.restarted[(tp.topic, tp.partition)] = runtime.topic_ids.get(tp.topic, "")
    tps = [tp for tp in tps if committed[tp] is not None and committed[tp] >= 0]
    if not tps:
        return
    starts = await consumer.earliest_offsets(*tps)
    ends = await consumer.highwaters(*tps)
    stale: dict[tuple[str, str], list[tuple[Any, int | None, int]]] = defaultdict(list)
    for tp in tps:
        start = starts.get(tp) or 0
        reason = stale_reason(runtime, tp, committed[tp], start, ends.get(tp))
        if reason is not None:
            stale[(tp.topic, reason)].append((tp, committed[tp], start))
    for (topic, reason), parts in stale.items():
        await read_from_start(consumer, runtime, topic, reason, parts)


def stale_reason(runtime: Runtime, tp: Any, committed: int, start: int,
                 end: int | None) -> str | None:
    """Why raw partition ``tp`` with this committed offset must be read from its start
    (``recreated``, ``beyond_end``, ``before_start``), or None."""
    done = runtime.restarted.get((tp.topic, tp.partition))
    if tp.topic in runtime.recreated and done != runtime.topic_ids.get(tp.topic, ""):
        return "recreated"  # not read from its start since its new id was seen
    if end is not None and committed > end:
        return "beyond_end"
    if committed < start:
        return "before_start"
    return None


def note_topic_ids(runtime: Runtime) -> list[str]:
    """Take the topic ids the watch last saw; returns the raw topics whose id changed
    (deleted and created again since), each logged once. The pipeline tags raw positions
    with the new id from now on (``Pipeline.incarnations``)."""
    changed = []
    for topic, topic_id in sorted((runtime.topics.ids if runtime.topics else {}).items()):
        before = runtime.topic_ids.get(topic)
        if not topic_id or topic_id == before:
            continue
        runtime.topic_ids[topic] = topic_id
        # the id taken above, not the watch's latest answer: the watch thread may have
        # replaced it since (a topic missing at that moment would tag positions "")
        runtime.pipeline.incarnations[topic] = incarnation_tag(topic_id)
        if before:
            runtime.recreated.add(topic)
            changed.append(topic)
            log.warning("raw topic %s was deleted and created again (topic id %s, before "
                        "%s): offsets committed for the old topic do not apply to it, so "
                        "its partitions are read from their start", topic, topic_id, before)
    return changed


async def read_from_start(consumer: Any, runtime: Runtime, topic: str, reason: str,
                          parts: list[tuple[Any, int | None, int]]) -> None:
    """Seek the partitions ``parts`` (``(tp, committed offset, log start)``) of
    ``topic`` to their start, and commit that start at once, so that no later assignment
    (here or in another worker) finds the stale offset again. Whatever the parser held
    for them (Kubernetes stages, their hold) came from the old records and is dropped.
    Said in one WARNING per topic and reason, counted per partition
    (``nhi_worker_raw_offset_resets_total``)."""
    for tp, _, start in parts:
        await consumer.seek(tp, start)  # Faust's read offset too: nothing below is skipped
        # Faust's own bookkeeping of the old offsets, which has no public reset
        consumer._committed_offset[tp] = None
        consumer._acked.pop(tp, None)
        consumer._acked_index.pop(tp, None)
        consumer._gap.pop(tp, None)
        key = (tp.topic, tp.partition)
        runtime.holds.pop(key, None)
        runtime.pipeline.forget_raw_partitions({key})
        if runtime.intake is not None:
            runtime.intake.forget({key})  # fetched from the old position: read again
        runtime.restarted[key] = runtime.topic_ids.get(topic, "")
        runtime.health.note_offset_reset(topic, reason)
    try:
        await consumer._commit({tp: start for tp, _, start in parts})
    except Exception as err:  # noqa: BLE001 - the seek stands; a later commit replaces it
        log.error("cannot commit the start of %s: %r", topic, err)
    offsets = ", ".join(f"[{tp.partition}] {committed} -> {start}"
                        for tp, committed, start in parts)
    why = {
        "recreated": "the topic was deleted and created again since the group committed",
        "beyond_end": "the group's committed offset is past the partition's end, so it "
                      "belongs to an older topic of this name (deleted and created again)",
        "before_start": "the records before the partition's start were deleted (retention) "
                        "before the worker read them: they are lost",
    }[reason]
    # a new topic id was said once already (note_topic_ids): the offsets are detail
    level = logging.INFO if reason == "recreated" else logging.WARNING
    log.log(level, "raw topic %s: %s; reading from the start (committed offset -> start: %s)",
            topic, why, offsets)


async def restart_recreated(consumer: Any, runtime: Runtime,
                            settle_timeout: float = SETTLE_TIMEOUT_S) -> None:
    """A raw topic the watch now sees with a new id while its partitions stay assigned
    here (deleted and created again too fast for a rebalance): read them from their start,
    as ``check_raw_offsets`` does at an assignment.

    The partitions are first paused until no fetch begun before can put one of their
    records into the intake (``settle_raw``): such a record, of the old position, would
    move the read offset past the new topic's first records. When that does not come
    within ``settle_timeout`` seconds they are resumed and tried again at the next call;
    a rebalance meanwhile leaves them to the assignment's check."""
    note_topic_ids(runtime)
    for topic in sorted(runtime.recreated):
        topic_id = runtime.topic_ids.get(topic, "")
        tps = sorted((tp for tp in consumer.assignment() if tp.topic == topic
                      and runtime.restarted.get((tp.topic, tp.partition)) != topic_id),
                     key=lambda tp: tp.partition)
        if not tps:
            continue
        generation = consumer.app.consumer_generation_id
        if not await consumer.settle_raw(tps, settle_timeout):
            if not consumer.app.rebalancing and generation == consumer.app.consumer_generation_id:
                # the fetch in flight may have dropped their records (paused partitions
                # are filtered out of it) with the position past them: read on from the
                # last record read, not from where that fetch left them
                for tp in tps:
                    read = consumer._read_offset.get(tp)
                    if read is not None:
                        await consumer.seek(tp, read + 1)
            consumer.resume_partitions(tps)  # kept paused by a rebalance meanwhile
            continue
        try:
            starts = await consumer.earliest_offsets(*tps)
            await read_from_start(consumer, runtime, topic, "recreated",
                                  [(tp, consumer._committed_offset.get(tp), starts.get(tp) or 0)
                                   for tp in tps])
        finally:
            consumer.resume_partitions(tps)


def _declare_topics(app: faust.App, settings: WorkerSettings) -> dict[str, Any]:
    def raw_topic(*names: str, **extra: Any) -> Any:
        return app.topic(*names, key_type=bytes, value_type=bytes, value_serializer="raw",
                         key_serializer="raw", **extra)

    topics = {
        "raw": raw_topic(*settings.topic_sources()),
        "repartition": raw_topic(settings.repartition_topic, partitions=settings.partitions,
                                 internal=True),
        "alerts": raw_topic(settings.alerts_topic),
        "shadow": raw_topic(settings.shadow_topic),
        "inventory": raw_topic(settings.inventory_topic),
        "dead_letters": raw_topic(settings.dead_letter_topic),
    }
    if settings.accounting_topic:
        topics["accounting"] = raw_topic(settings.accounting_topic)
    return topics


async def send_all(runtime: Runtime, records: list[Record], *, acked: bool = False) -> None:
    """Produce ``records``; each send is bounded by ``io_timeout`` (B19). With ``acked``,
    also wait until the broker has acknowledged every one of them."""
    timeout = runtime.settings.io_timeout
    records = runtime.pipeline.fit(records)
    pending = [await _send_one(runtime, record, timeout) for record in records]
    waiting = [p for p in pending if p is not None]
    if not acked or not waiting:
        return
    # asyncio.wait, unlike wait_for, leaves the sends pending at the timeout: a cancelled
    # send's future would make Faust's Topic._on_published callback log a traceback.
    done, late = await asyncio.wait(waiting, timeout=timeout)
    if late:
        runtime.fatal(f"{len(late)} of {len(waiting)} alerts were not acknowledged "
                      f"within {timeout:g}s")
    for future in done:
        if future.cancelled() or future.exception() is not None:
            err = "cancelled" if future.cancelled() else repr(future.exception())
            runtime.fatal(f"an alert was not delivered: {err}")


async def _send_one(runtime: Runtime, record: Record, timeout: float) -> Any:
    topic = runtime.roles.get(record.role)
    if topic is None:
        return None
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            return await asyncio.wait_for(
                topic.send(key=record.key, value=record.value, partition=record.partition),
                timeout)
        except Exception as err:  # noqa: BLE001 - retried, then fatal
            if attempt == SEND_ATTEMPTS:
                runtime.fatal(f"cannot produce to the {record.role} topic after "
                              f"{SEND_ATTEMPTS} attempts: {err!r}")
            log.warning("send to %s failed (%r); retry %d", record.role, err, attempt)
            await asyncio.sleep(min(2.0**attempt, timeout))
    return None


async def deliver(runtime: Runtime, out: Output, set_state: Any) -> None:
    """Alerts first (acknowledged), then the table writes, then everything else: state is
    never recorded ahead of an alert it produced."""
    alerts = [r for r in out.records if r.role in ("alerts", "shadow")]
    rest = [r for r in out.records if r.role not in ("alerts", "shadow")]
    if alerts:
        await send_all(runtime, alerts, acked=True)
    for identity, value in out.writes:
        set_state(identity, value)
    await send_all(runtime, rest)


def changelog_keys(settings: WorkerSettings, tp: Any, start: int, end: int,
                   own: set[int]) -> set[str]:
    """The keys of changelog partition ``tp``'s records from ``start`` to ``end`` that are
    not at an ``own`` offset (blocking: run in a thread). Raises ``TimeoutError`` when the
    records up to ``end`` could not all be read within ``io_timeout``: the caller then
    audits the range again, where keys read so far would have left the rest unnamed."""
    from kafka import KafkaConsumer, TopicPartition

    from streams.admin import client_options

    part = TopicPartition(tp.topic, tp.partition)
    consumer = KafkaConsumer(**client_options(settings), enable_auto_commit=False,
                             group_id=None)
    try:
        consumer.assign([part])
        consumer.seek(part, start)
        records: list[Any] = []
        deadline = time.monotonic() + settings.io_timeout
        while consumer.position(part) < end and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [r for r in batch if r.offset < end]
        if consumer.position(part) < end:
            raise TimeoutError(f"{tp.topic}[{tp.partition}] read up to offset "
                               f"{consumer.position(part)} of {end} in {settings.io_timeout} s")
        return foreign_keys(records, own)
    finally:
        consumer.close()


def make_current(event: Any) -> None:
    """Make ``event`` Faust's current event in this task.

    A table reads and writes the store and changelog partition of the current event, which
    Faust sets only in the task that iterates the stream: the state writes made before a
    commit run in the committing task, which sees none (or a stale one). Faust keeps it
    in a context variable with no public setter, hence the module attribute; the stream's
    ``current_event`` attribute is left alone, since the stream itself sets it."""
    faust_streams._current_event.set(weakref.ref(event))


def raised_by_store(err: BaseException) -> bool:
    """Whether ``err`` came out of one of Faust's table stores (RocksDB or memory): the
    innermost frame of its traceback is in ``faust/stores/``."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return "/faust/stores/" in tb.tb_frame.f_code.co_filename.replace("\\", "/")


def _declare_agents(app: faust.App, runtime: Runtime, topics: Mapping[str, Any],
                    table: Any) -> None:
    pipeline = runtime.pipeline

    def get_state(identity: str) -> bytes | None:
        try:
            return table.get(identity.encode("utf-8"))
        except Exception as err:  # noqa: BLE001 - the store, not the record, failed
            store_failed(runtime, "read", err)

    def set_state(identity: str, value: bytes) -> None:
        try:
            table[identity.encode("utf-8")] = value
        except Exception as err:  # noqa: BLE001 - the store, not the record, failed
            store_failed(runtime, "written", err)

    @app.task
    async def stop_on_store_failure() -> None:
        """Faust itself writes to the store too, from event-loop callbacks: each changelog
        record acknowledged by the broker stores its offset (``set_persisted_offset``). A
        failure there reaches no code of ours, only the loop's exception handler, which
        would log a traceback per record and carry on: it stops the worker the same way."""
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()

        def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            err = context.get("exception")
            if err is not None and raised_by_store(err):
                store_failed(runtime, "written", err)
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handler)

    consumed = set(runtime.settings.topic_sources()) | {runtime.settings.repartition_topic}

    def first_messages() -> None:
        """Messages arrive: say ``ready`` now if not said yet. The health timer alone said
        it late, after tens of thousands of events, or never when the worker died first:
        the agents keep the event loop busy and the timer waits for its turn."""
        if runtime.on_ready is None:
            return
        try:
            update_health(app, runtime, consumed)
        except Exception as err:  # noqa: BLE001 - the timer tries again
            log.debug("health refresh failed: %r", err)

    # The raw topics have no agent: the consumer puts their messages into runtime.intake
    # (streams.intake) and this task takes them a window at a time. The topic is still
    # registered, so the consumer subscribes to it and acknowledges its offsets; Faust's
    # flow control clears the intake at a revocation and a stop, as it clears its streams.
    intake = runtime.intake
    app.topics.add(topics["raw"])
    intake.flow_control = app.flow_control
    app.flow_control.manage_queue(intake)

    @app.task
    async def ingest() -> None:
        inbound = app.monitor.stream_inbound_time
        while not app.should_stop:
            messages = await intake.take()
            try:
                await ingest_window(messages, inbound)
            except Exception as err:  # noqa: BLE001 - unacknowledged, the stop would hang
                runtime.fatal(f"the ingest step failed: {err!r}")

    async def ingest_window(messages: Window, inbound: dict[Any, float]) -> None:
        # Raw messages of one window are split together, so single-record messages still
        # cross the repartition step in groups: one message per target partition per
        # window instead of one per record. They are acknowledged only at the end.
        first_messages()
        raw = [(m.value, m.topic, m.partition, m.offset) for m in messages]
        try:
            records = pipeline.split_many(raw).records
        except Exception as err:  # noqa: BLE001 - never let the step die (B15)
            records = [r for data, topic, partition, offset in raw
                       for r in pipeline.split_failed(data, err, topic=topic,
                                                      partition=partition,
                                                      offset=offset).records]
        await send_all(runtime, records)
        # Only now, with the requests it released handed to the producer, may a hold
        # move forward; the window's messages are acknowledged after this, so a stage
        # held in one of them is covered before its offset could be committed.
        # A partition sought elsewhere meanwhile (read_from_start) is read again from
        # there: its messages here are not acknowledged, and what the parser kept of
        # them and their hold belong to the old position, so they are dropped again.
        stale = intake.stale(messages)
        if stale:
            pipeline.forget_raw_partitions(stale)
        try:
            for key in intake.partitions(messages) - stale:
                held = pipeline.held_offset(*key)
                if held is None:
                    runtime.holds.pop(key, None)
                else:
                    runtime.holds[key] = held
        except Exception as err:  # noqa: BLE001 - acking now could lose held stages
            runtime.fatal(f"cannot tell which raw offsets hold Kubernetes stages: {err!r}")
        intake.acknowledge(messages)
        now = time.monotonic()
        for message in messages:
            # what Faust's slow-processing check reads: this partition's stream is alive
            inbound[message.tp] = now

    # The events of each repartition message are applied to the identities in memory at
    # once (their alerts sent and acknowledged), but their table writes wait: just before
    # each offset commit (every --commit-interval) the identities that changed are
    # serialised and written once, however many messages changed them, and the commit
    # then covers those messages. Until then the partition's offsets are held from the
    # first message not yet in the table (runtime.holds, as for Kubernetes stages), so a
    # crash or a rebalance reads those messages again and nothing is lost. The lock keeps
    # a write from running while a message's alerts wait for the broker.
    repartition_topic = runtime.settings.repartition_topic
    last_event: dict[int, Any] = {}
    writing = asyncio.Lock()

    def update_hold(partition: int) -> None:
        held = pipeline.held_from.get(partition)
        if held is None:
            runtime.holds.pop((repartition_topic, partition), None)
        else:
            runtime.holds[(repartition_topic, partition)] = held

    @app.agent(topics["repartition"], name="detect")
    async def detect(stream: Any) -> None:
        # Each message as soon as it arrives: it holds many events, so Faust's cost per
        # message is small, while take_events waited its whole timeout (50 ms) for more
        # unless 20 were there, leaving the worker idle. The stream acknowledges a message
        # only after this body ran for it, when its hold is set.
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            first_messages()
            async with writing:
                make_current(event)
                msg = event.message
                where = {"topic": msg.topic, "partition": msg.partition, "offset": msg.offset}
                started = loop.time()
                try:
                    out = pipeline.apply(event.value, get_state=get_state, write=False,
                                         **where)
                except Exception as err:  # noqa: BLE001 - poison message (B15)
                    out = pipeline.apply_failed(event.value, err, **where)
                    pipeline.hold_pending(msg.partition, msg.offset)
                runtime.metrics.observe_batch(loop.time() - started, out.events)
                last_event[msg.partition] = event
                update_hold(msg.partition)
                await deliver(runtime, out, set_state)

    async def write_states() -> None:
        if app.rebalancing or app.should_stop:
            # a revocation drops what is pending, and at a stop the table may be closing:
            # the next owner reads those messages again
            return
        membership = runtime.membership
        if membership is not None and not membership.current():
            # frozen past the session timeout, the group may have given these partitions
            # to another worker, whose writes these would overwrite (streams.membership);
            # they stay pending until a heartbeat is answered or the revocation drops them
            return
        async with writing:
            for partition in list(pipeline.held_from):
                event = last_event.get(partition)
                if event is None:
                    continue
                make_current(event)  # the table writes to the current event's partition
                try:
                    writes = pipeline.pending_writes(partition)
                except Exception as err:  # noqa: BLE001 - the hold stays: read again later
                    log.error("cannot serialise the state of partition %d: %r", partition, err)
                    continue
                for identity, value in writes:
                    set_state(identity, value)
                update_hold(partition)

    runtime.before_commit = write_states

    @app.timer(1.0)
    async def reassert_late_writes() -> None:
        """Names the identities whose records were acknowledged late to their partitions'
        owners, who write them again (``streams.fencing``)."""
        late = runtime.late_writes
        if late is not None and late.identities:
            await send_all(runtime, pipeline.reassert_records(late.take()))

    @app.timer(AUDIT_INTERVAL_S)
    async def audit_soon() -> None:
        runtime.audit_due.set()  # also when no commit comes: the input may have ended

    @app.task
    async def audit_changelog() -> None:
        """After each offset commit (and every ``AUDIT_INTERVAL_S``), with every state
        written acknowledged: the records of its changelog partitions this worker did not
        write (``streams.fencing``) are named for writing again."""
        audit, late = runtime.audit, runtime.late_writes
        if audit is None or late is None:
            return
        while not app.should_stop:
            await runtime.audit_due.wait()
            runtime.audit_due.clear()
            membership = runtime.membership
            if (not audit.start or app.rebalancing
                    or (membership is not None and not membership.current())):
                continue
            try:
                async with writing:  # no state write starts meanwhile
                    await app.producer.flush()
                    await asyncio.sleep(0)  # the acknowledgements' callbacks run
                    ends = await app.consumer.highwaters(*audit.start)
                for tp, (start, end, own) in audit.suspects(ends).items():
                    try:
                        keys = await asyncio.to_thread(
                            changelog_keys, runtime.settings, tp, start, end, own)
                    except Exception:
                        audit.again(tp, start, own)
                        raise
                    if keys:
                        log.warning("changelog %s[%d]: %d records since offset %d were not "
                                    "written by this worker (a dropped worker's late "
                                    "writes): writing their %d identities again",
                                    tp.topic, tp.partition, end - start - len(own), start,
                                    len(keys))
                        late.identities |= keys
            except Exception as err:  # noqa: BLE001 - the next audit tries again
                log.warning("changelog audit failed: %r (the check for a dropped worker's "
                            "late writes to the state changelog, which a broker that cannot "
                            "be reached fails; it runs again within %.0f s)", err,
                            AUDIT_INTERVAL_S)

    @app.on_before_shutdown.connect
    async def last_inventory(sender: Any, **_: Any) -> None:
        await send_all(runtime, pipeline.flush_inventory().records)
        await save_peer_index(runtime)

    @app.timer(peerstore.SAVE_INTERVAL_S)
    async def save_peers_now() -> None:
        await save_peer_index(runtime)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set[Any], **_: Any) -> None:
        name = runtime.settings.repartition_topic
        partitions = {tp.partition for tp in revoked if tp.topic == name}
        dropped = pipeline.forget_partitions(partitions)
        if runtime.audit is not None:
            runtime.audit.forget()
        # The stages held for revoked raw partitions are dropped with their parsers, but
        # not the holds: Faust may still record acknowledgements of messages that were in
        # flight, and the hold keeps them from being committed past a dropped stage until
        # the partition's next window here (if it comes back) computes the hold afresh.
        pipeline.forget_raw_partitions({(tp.topic, tp.partition) for tp in revoked
                                        if tp.topic != name})
        for tp in revoked:
            runtime.metrics.forget_partition(tp.topic, tp.partition)
        runtime.health.set_phase("rebalancing", ready=False, reason="partitions revoked")
        if dropped:
            log.info("revoked partitions %s: dropped %d identities from memory",
                     sorted(partitions), dropped)


def _declare_health(app: faust.App, runtime: Runtime, table: Any) -> None:
    consumed = set(runtime.settings.topic_sources()) | {runtime.settings.repartition_topic}
    census: dict[str, Any] = {"at": float("-inf"), "assigned": None}

    @app.timer(HEALTH_INTERVAL_S)
    async def refresh_health() -> None:
        try:
            update_health(app, runtime, consumed)
        except Exception as err:  # noqa: BLE001 - health must never kill the worker
            log.debug("health refresh failed: %r", err)
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return  # the next assignment's check_raw_offsets sees a new topic id
        assigned = frozenset(app.consumer.assignment())
        now = time.monotonic()
        if assigned != census["assigned"] or now - census["at"] >= TABLE_CENSUS_S:
            census.update(at=now, assigned=assigned)
            try:
                counted = await table_census(table, runtime.pipeline.detector.store,
                                             lambda: app.rebalancing)
            except Exception as err:  # noqa: BLE001 - the gauges keep their last values
                log.debug("table census failed: %r", err)
            else:
                if counted is not None:
                    runtime.metrics.set_stored_identities(*counted)
        try:
            await restart_recreated(app.consumer, runtime)
        except Exception as err:  # noqa: BLE001 - tried again at the next refresh
            log.error("cannot read a recreated raw topic from its start: %r", err)


async def table_census(table: Any, in_memory: Collection[str],
                       stopped: Callable[[], bool] = lambda: False,
                       chunk: int = TABLE_CENSUS_CHUNK) -> tuple[int, int] | None:
    """(identities with state in the table or in memory, stored bytes of those not in
    memory) for the identity gauges; None when ``stopped()`` turned true meanwhile (a
    rebalance: the partitions counted are changing).

    The detector holds only the identities whose events came since the worker started:
    after a restart or a warm start every identity is in the table and the detector alone
    counted none. Table values are the state blobs, so their length is the state's size.
    The scan gives the event loop a turn every ``chunk`` identities; writes meanwhile may
    make the figures off by the identities they touch, as a census seconds old is anyway.
    RocksDB's iterators read a fixed view of the store; the memory store is a dict, which
    must not change while iterated, so its items are copied first (one C-level copy)."""
    data = getattr(getattr(table, "data", None), "data", None)
    items = iter(list(data.items()) if isinstance(data, dict) else table.items())
    stored = in_both = unloaded = 0
    while True:
        counted = 0
        for key, value in items:
            stored += 1
            if key.decode("utf-8", "replace") in in_memory:
                in_both += 1
            else:
                unloaded += len(value or b"")
            counted += 1
            if counted == chunk:
                break
        if counted < chunk:
            return stored + len(in_memory) - in_both, unloaded
        await asyncio.sleep(0)
        if stopped():
            return None


async def save_peer_index(runtime: Runtime) -> None:
    """Write the detector's peer index to the store directory (``streams.peerstore``): the
    bytes taken in the event loop, the file written in a thread. A failed write is one
    WARNING; the next one tries again."""
    data = runtime.pipeline.detector.peers.to_bytes()
    try:
        await asyncio.to_thread(peerstore.save_peers, runtime.settings.store_dir, data)
    except SinkError as err:  # write_atomic's: a full or read-only disk
        log.warning("peer index not saved: %s (tried again within %.0f s)", err,
                    peerstore.SAVE_INTERVAL_S)


def update_health(app: faust.App, runtime: Runtime, consumed: set[str]) -> None:
    """Push lag, commit times and recovery progress into metrics; decide readiness."""
    consumer = app.consumer
    # Faust keeps the committed offset per partition only in this attribute; it has no
    # public accessor. Lag is measured against it: end offset minus committed offset.
    committed = getattr(consumer, "_committed_offset", {})
    metrics = runtime.metrics
    assignment = [tp for tp in consumer.assignment() if tp.topic in consumed]
    runtime.health.note_raw_topics(runtime.topics.missing() if runtime.topics else {})
    repartition = runtime.settings.repartition_topic
    for tp in assignment:
        end = consumer.highwater(tp) or 0
        done = committed.get(tp) or 0
        lag = end - done
        metrics.set_consumer_lag(tp.topic, tp.partition, lag)
        # Only a raw partition's hold may wait that long: a Kubernetes stage waits minutes
        # for its request's last stage. An identity partition's hold moves at every commit
        # (the states are written just before it), so one that stays is a detect step
        # stuck on a send: B19's stuck consumer, which its exemption hid whenever the raw
        # partition had been committed before the hang.
        hold = None if tp.topic == repartition else runtime.holds.get((tp.topic, tp.partition))
        if lag <= 0 or (hold is not None and done >= hold):
            # caught up, or committed as far as a held Kubernetes stage allows: nothing
            # committable is waiting, so the commit age restarts from now (an idle
            # partition that receives data later is not "stuck" from the first message on)
            metrics.set_committed(tp.topic, tp.partition)
    recovery = app.tables.recovery
    remaining = recovery.active_remaining_total() if recovery.in_recovery else 0
    metrics.set_recovering(bool(recovery.in_recovery))
    metrics.set_recovery(runtime.settings.table_name, remaining)
    if recovery.in_recovery or not recovery.completed.is_set():
        reason = f"table recovery in progress ({remaining} changelog messages left)"
        runtime.health.set_phase("recovering", ready=False, reason=reason)
    elif app.rebalancing:
        runtime.health.set_phase("rebalancing", ready=False, reason="group rebalance")
    elif not assignment:
        runtime.health.set_phase("waiting", ready=False, reason="no partitions assigned yet")
    else:
        runtime.health.set_phase("running", ready=True, reason="consuming")
        if runtime.on_ready is not None:
            announce, runtime.on_ready = runtime.on_ready, None
            announce(assignment)


def worker_monitor(runtime: Runtime) -> type:
    """Faust's ``Monitor`` sensor (``app.monitor``, the ``Monitor`` setting) as the worker
    needs it: per-message statistics off, the offset commits hooked.

    - Faust calls the monitor four times per message and event (in, stream in, stream
      out, out) and it kept counters, timings and per-stream names there, about 2 us per
      message that nothing read: Faust's web views are off and ``streams.health`` keeps
      the worker's own metrics. Only the time a partition's stream last took an event is
      kept, which Faust's slow-processing check reads.
    - Before every commit the inventory records of identities that changed are queued
      (so they are flushed with everything else the commit covers; a crash can never
      commit events whose inventory update was lost); after it, the commit time of each
      committed partition is noted, so that liveness sees commits while the partition
      still has lag (B15). Faust tells only the monitor of committed partitions
      (``on_tp_commit``); a separate sensor was never told, and a backlog longer than
      ``--liveness-commit-age`` then failed liveness while commits went on.
    """
    from faust.sensors import Monitor

    pipeline = runtime.pipeline

    def inventory_sent(fut: Any) -> None:
        if runtime.late_writes is not None and not fut.cancelled() and fut.exception() is None:
            runtime.late_writes.acknowledged(fut.message.key, "inventory")

    class WorkerMonitor(Monitor):  # type: ignore[misc, valid-type]
        def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_stream_event_in(self, tp: Any, offset: int, stream: Any,
                               event: Any) -> None:
            self.stream_inbound_time[tp] = time.monotonic()
            return None

        def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                                state: Any = None) -> None:
            return None

        def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
            return None

        def on_table_get(self, table: Any, key: Any) -> None:
            return None

        def on_table_set(self, table: Any, key: Any, value: Any) -> None:
            return None

        def on_commit_initiated(self, consumer: Any) -> Any:
            membership = runtime.membership
            if membership is None or membership.current():
                # like the state writes, the inventory waits while membership is in doubt
                inventory = runtime.roles["inventory"]
                dead_letters = runtime.roles["dead_letters"]
                for record in pipeline.fit(pipeline.flush_inventory().records):
                    if record.role == "inventory":
                        inventory.send_soon(key=record.key, value=record.value,
                                            callback=inventory_sent)
                    else:
                        dead_letters.send_soon(key=record.key, value=record.value)
            return super().on_commit_initiated(consumer)

        def on_tp_commit(self, tp_offsets: Mapping[Any, int]) -> None:
            super().on_tp_commit(tp_offsets)
            runtime.audit_due.set()  # the producer was flushed before the commit
            for tp in tp_offsets:
                runtime.metrics.set_committed(tp.topic, tp.partition)

    return WorkerMonitor
