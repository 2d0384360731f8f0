"""What the worker logs at the default level: a few lifecycle lines, and no alarm over
conditions that are transient and expected.

The command line logs WARNING and above by default. An operator still wants to see that
the worker started, became ready, applied or skipped its warm start, and stopped, so the
loggers of those lines (``LIFECYCLE_LOGGERS``) log at INFO when the root logs less.

Two libraries log expected conditions as if they were failures; ``TransientNoise``
lowers them to DEBUG and counts them:

* aiokafka logs ``ERROR Group Coordinator Request failed: ...CoordinatorNotAvailable...``
  while the broker elects the group coordinator, typically once at startup, and retries.
  After ``COORDINATOR_ATTEMPTS_WARN`` attempts in a row it is no longer transient: that
  attempt is logged as a WARNING naming the count, and so is every further such multiple.
* aiokafka's group coordinator, once the group session has expired (a broker gone
  longer than the session timeout), logs ``Heartbeat session expired - marking
  coordinator dead`` and ``Heartbeat failed for group G: coordinator (node N) is either
  not started or not valid`` every 100 ms until a heartbeat is answered: each is shown
  once, then once a minute with a count (``ONCE_A_MINUTE``). ``Marking the coordinator
  dead``, which follows each of them and comes once at a normal start, goes to DEBUG.
* Faust logs ``WARNING producer buffer full size N`` whenever more records wait for the
  broker than its buffer holds; it then waits for the broker, which is flow control, not
  a fault. The count is reported in the "stopped" line.
* kafka-python logs ``ERROR Topic T not found in cluster metadata`` (and a WARNING while
  the broker creates it) when a client first asks for a topic that the broker then creates
  automatically. Where a topic is really missing, the callers say so in one clear error
  (``streams.admin`` for the worker, ``streams.produce``).
* kafka-python logs ``ERROR Metadata refresh: failed Cancelled`` when a client is closed
  while its background metadata request is in flight (the warm-start clients).
* kafka-python (3.0) logs ``ERROR <KafkaTCPTransport [none] (closed)>: Error receiving
  network data closing socket`` with an ``AttributeError`` traceback when a read of a
  connection it has just closed still runs (a client closed with a response in flight:
  the warm-start clients, seen once in a CI run); the connection is gone already and the
  client is done with it. Only for a transport that says ``(closed)``: the same error on
  an open one stays an ERROR.
* kafka-python (3.x) logs ``WARNING Task ... ran for 0.112s (>0.100s threshold). It is
  blocking the event loop`` whenever one step of its own network loop takes longer than
  100 ms, which any busy or shared machine causes now and then (a GC pause, a CPU taken
  by the broker); it is about the client library's internals, retried by itself, and says
  nothing an operator can act on.

* aiokafka logs an ERROR (a WARNING for produce requests) each time a request to a broker
  fails on its connection, about a hundred a second in all while the broker is down (each
  of the worker's clients retries each request every 100 ms; ``Unable connect
  to node``, ``Unable to update metadata``, ``Failed fetch messages``, and produce,
  commit, heartbeat and coordinator requests to a node not ready, ``BROKER_MESSAGES``):
  the first is logged as a WARNING, then one a minute naming how many came meanwhile
  (``BROKER_ERRORS_EVERY_S``); the rest go to DEBUG.

When the broker answers again after such errors, one line says so, with how long it was
unreachable and how many errors came since the last report: the group coordinator logs
``Discovered coordinator`` (INFO) once a request to the broker succeeds again, so
``install`` lets that logger's INFO records reach the filter, which shows only that one
(and the others only when the root logs INFO).

At ``-v`` (INFO, not DEBUG) kafka-python's own INFO lines stay out (``CLIENT_INFO_LOGGER``
at WARNING): one per connection opened, probed or closed by the admin, warm-start and
produce clients, which buried the worker's own INFO lines; ``-vv`` shows them.

``WARNING mode.timers: Timer commit is overlapping`` is left alone: a commit waits for the
broker to acknowledge everything produced for the offsets it commits, so a commit longer
than the commit interval is a real sign of a slow broker or a starved worker (what to do:
``docs/worker.md``, Logs).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

# streams.membership: its "group membership confirmed" line ends the WARNING it gave
LIFECYCLE_LOGGERS = ("streams.worker", "streams.warmstart", "streams.membership")
CLIENT_INFO_LOGGER = "kafka"  # kafka-python: per-connection INFO lines (kafka.conn ...)
COORDINATOR_LOGGER = "aiokafka.consumer.group_coordinator"
PRODUCER_LOGGER = "faust.transport.producer"
METADATA_LOGGER = "kafka.cluster"
SELECTOR_LOGGER = "kafka.net.selector"
TRANSPORT_LOGGER = "kafka.net.transport"
CLOSED_RECEIVE_MESSAGE = "%s: Error receiving network data closing socket"
CLIENT_LOGGER = "aiokafka"
FETCHER_LOGGER = "aiokafka.consumer.fetcher"
SENDER_LOGGER = "aiokafka.producer.sender"
NOISY_LOGGERS = (COORDINATOR_LOGGER, PRODUCER_LOGGER, METADATA_LOGGER, CLIENT_LOGGER,
                 FETCHER_LOGGER, SENDER_LOGGER, SELECTOR_LOGGER, TRANSPORT_LOGGER)
BROKER_MESSAGES = {
    CLIENT_LOGGER: ("Unable connect to node with id %s: %s", "Unable to update metadata from %s"),
    FETCHER_LOGGER: ("Failed fetch messages from %s: %s",),
    SENDER_LOGGER: ("Got error produce response: %s",),
    COORDINATOR_LOGGER: ("Group Coordinator Request failed: %s",
                         "Heartbeat send request failed: %s. Will retry.",
                         "Error sending %s to node %s [%s] -- marking coordinator dead"),
}
# connection errors that mean the broker is not there (by the exception's class name)
BROKER_DOWN_ERRORS = ("KafkaConnectionError", "NodeNotReadyError", "ConnectionError")
BROKER_ERRORS_EVERY_S = 60.0
# logged by the group coordinator when the broker answered its lookup: the broker is back
BROKER_BACK_MESSAGE = "Discovered coordinator %s for group %s"
UNKNOWN_TOPIC_MESSAGES = ("Topic %s not found in cluster metadata",
                          "Topic %s is not available during auto-create initialization")
# the group coordinator's lines while the group cannot be reached: once the session has
# expired its heartbeat routine logs the first two every 100 ms until a heartbeat is
# answered (48 lines in 1.7 s as a broker came back), shown once a minute with a count
# (``streams.membership`` says what it means for the states); the third follows each of
# them, and a normal start, and says nothing more: DEBUG
SESSION_EXPIRED_MESSAGE = "Heartbeat session expired - marking coordinator dead"
COORDINATOR_INVALID_MESSAGE = ("Heartbeat failed for group %s: coordinator (node %s) is either "
                               "not started or not valid")
COORDINATOR_DEAD_MESSAGE = "Marking the coordinator dead (node %s)for group %s."
ONCE_A_MINUTE = {SESSION_EXPIRED_MESSAGE: "session_expired",
                 COORDINATOR_INVALID_MESSAGE: "coordinator_invalid"}
# aiokafka retries the lookup every retry_backoff_ms (100 ms by default): a hundred
# attempts is ten seconds or more without a coordinator
COORDINATOR_ATTEMPTS_WARN = 100


class TransientNoise(logging.Filter):
    """Lowers the expected conditions above to DEBUG and counts them (``counts``)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self.clock = clock
        self.broker_down_since: float | None = None  # the first error of this outage
        # kind -> (when, count then) of its last line shown (``_once_a_minute``)
        self.reported: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == BROKER_BACK_MESSAGE and record.name == COORDINATOR_LOGGER:
            return self._broker_back(record)
        kind = self.kind(record)
        if kind is None:
            # INFO of the coordinator reaches here because ``install`` raised it for the
            # line above: shown only when the root logs INFO, as without that
            return (record.levelno >= logging.WARNING or record.name != COORDINATOR_LOGGER
                    or logging.getLogger().isEnabledFor(record.levelno))
        self.counts[kind] += 1
        if kind in ONCE_A_MINUTE.values():
            if self._once_a_minute(record, kind, "repeats are logged once a minute",
                                   "%d times in the last %.0fs; logged once a minute"):
                return True
        elif kind == "broker_unreachable":
            if self.broker_down_since is None:
                self.broker_down_since = self.clock()
            if self._once_a_minute(record, kind, "the broker cannot be reached: retrying; "
                                   "further connection errors are logged once a minute",
                                   "%d broker connection errors in the last %.0fs; they are "
                                   "logged once a minute"):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
                return True
        elif kind == "coordinator" and self.counts[kind] % COORDINATOR_ATTEMPTS_WARN == 0:
            record.msg = f"{record.msg} (attempt %d; the group coordinator is still missing)"
            record.args = (*record.args, self.counts[kind])
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)

    def _once_a_minute(self, record: logging.LogRecord, kind: str, first: str,
                       later: str) -> bool:
        """True for the first line of ``kind``, which gets ``first`` added, then for one a
        minute, which gets ``later`` with how many came since the last one shown and how
        long ago; False for the others, which ``filter`` lowers to DEBUG."""
        now, count = self.clock(), self.counts[kind]
        last = self.reported.get(kind)
        if last is not None and now - last[0] < BROKER_ERRORS_EVERY_S:
            return False
        if last is None:
            record.msg = f"{record.msg} ({first})"
        else:
            record.msg = f"{record.msg} ({later})"
            record.args = (*record.args, count - last[1], now - last[0])
        self.reported[kind] = (now, count)
        return True

    def _broker_back(self, record: logging.LogRecord) -> bool:
        """After connection errors, the coordinator found again is logged as the broker
        reachable again (INFO), with the outage's length; otherwise it is a plain INFO."""
        since, last = self.broker_down_since, self.reported.get("broker_unreachable")
        if since is None or last is None:
            return logging.getLogger().isEnabledFor(logging.INFO)
        now, count = self.clock(), self.counts["broker_unreachable"]
        record.msg = (f"{record.msg} (the broker can be reached again after %.0fs without "
                      "it; %d connection errors since the last report)")
        record.args = (*record.args, now - since, count - last[1])
        record.levelno, record.levelname = logging.INFO, "INFO"
        self.broker_down_since = None
        self.reported.pop("broker_unreachable", None)
        return True

    @staticmethod
    def kind(record: logging.LogRecord) -> str | None:
        if record.msg in BROKER_MESSAGES.get(record.name, ()) and (
                record.msg.startswith("Unable") or (
                    record.args and any(name in type(record.args[-1]).__name__
                                        for name in BROKER_DOWN_ERRORS))):
            return "broker_unreachable"
        if record.name == COORDINATOR_LOGGER:
            if record.msg in ONCE_A_MINUTE:
                return ONCE_A_MINUTE[record.msg]
            if record.msg == COORDINATOR_DEAD_MESSAGE:
                return "coordinator_dead"
            if (record.msg == "Group Coordinator Request failed: %s" and record.args
                    and "CoordinatorNotAvailable" in type(record.args[0]).__name__):
                return "coordinator"
        elif record.name == PRODUCER_LOGGER:
            if record.getMessage().startswith("producer buffer full"):
                return "producer_buffer_full"
        elif record.name == SELECTOR_LOGGER:
            if isinstance(record.msg, str) and " threshold). It is blocking the event loop" \
                    in record.msg:
                return "slow_client_task"
        elif record.name == TRANSPORT_LOGGER:
            if (record.msg == CLOSED_RECEIVE_MESSAGE and record.args
                    and str(record.args[0]).endswith("(closed)>")):
                return "closed_connection_read"
        elif record.name == METADATA_LOGGER:
            if record.msg in UNKNOWN_TOPIC_MESSAGES:
                return "unknown_topic"
            if (record.msg == "Metadata refresh: failed %s" and record.args
                    and type(record.args[0]).__name__ == "Cancelled"):
                return "metadata_cancelled"
        return None


def install(*, lifecycle: bool = True) -> TransientNoise:
    """With ``lifecycle``, raise the lifecycle loggers to INFO (unless the root already logs
    INFO or more); attach one ``TransientNoise`` to the noisy loggers and return it."""
    if lifecycle and not logging.getLogger().isEnabledFor(logging.INFO):
        for name in LIFECYCLE_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
        coordinator = logging.getLogger(COORDINATOR_LOGGER)
        if not coordinator.isEnabledFor(logging.INFO):
            coordinator.setLevel(logging.INFO)  # for BROKER_BACK_MESSAGE (the filter)
    root = logging.getLogger()
    if root.isEnabledFor(logging.INFO) and not root.isEnabledFor(logging.DEBUG):
        logging.getLogger(CLIENT_INFO_LOGGER).setLevel(logging.WARNING)
    noise = TransientNoise()
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, TransientNoise)]:
            logger.removeFilter(old)
        logger.addFilter(noise)
    return noise
