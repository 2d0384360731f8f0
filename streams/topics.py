"""The raw topics as the broker describes them: which exist, and which incarnation of each.

A topic deleted and created again keeps its name, but Kafka gives it a new topic id
(KIP-516, brokers 2.8 and later). The worker asks the broker with the admin client's
public ``describe_topics`` in a thread of its own, every ``WATCH_INTERVAL_S`` seconds and
at every partition assignment, and keeps the answer:

- a topic the broker no longer has is *missing* (``nhi_worker_raw_topic_missing``);
- a topic whose id changed was deleted and created again: its offsets, the committed
  offset of the group included, belong to the old topic (``streams.app`` reads the new
  one from its start), and ``incarnation`` tags the raw positions of its events, so that
  an identity's positions from the old topic do not make the new topic's events look like
  redeliveries (``streams.pipeline``).

Where the broker or kafka-python gives no topic id, ``incarnation`` is empty and only the
missing topics are told. The thread never stops the worker: a describe that fails keeps
the last answer, at DEBUG (the consumer's own connection errors already say the broker
is gone), and the admin client's own connection errors are lowered to DEBUG too.

The same request tells whether the broker answers at all: ``broker_silence`` is the time
since the last answer (``nhi_worker_broker_silence_seconds``). While the broker is gone
and nothing is waiting, no commit is late and readiness holds, so this is what shows an
outage; an answer sets it back to 0, so a short blip leaves nothing behind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any

log = logging.getLogger(__name__)

# Often enough to see a deletion within seconds (the consumer also drops the topic's
# partitions at once, when its fetches fail), rarely enough to cost nothing: one small
# metadata request.
WATCH_INTERVAL_S = 5.0
# The watch's thread, and the admin client's id: kafka-python 3 runs the client's network
# loop in a thread of its own named after it (kafka-io-<client id>), which keeps retrying
# and logging while the broker is gone.
THREAD_NAME = "nhi-topic-watch"
# the part of a topic id that tags raw positions: 32 bits tell two incarnations of one
# topic apart, and each identity's state keeps this tag per raw partition it saw
INCARNATION_CHARS = 8
# what a broker sends for "no id" (all zero bits), in kafka-python's text form
NO_TOPIC_ID = "00000000-0000-0000-0000-000000000000"


def incarnation_tag(topic_id: str | None) -> str:
    """A short tag of a topic id (what raw positions carry), "" when unknown."""
    return (topic_id or "")[:INCARNATION_CHARS]


def described_ids(described: Iterable[dict[str, Any]], topics: Collection[str]
                  ) -> dict[str, str | None]:
    """topic -> its id ("" when the broker or client gives none), None when missing; from
    kafka-python's ``describe_topics`` answer (``name``, or ``topic`` in 2.x)."""
    ids: dict[str, str | None] = dict.fromkeys(topics)
    for entry in described:
        name = entry.get("name", entry.get("topic"))
        if name not in ids or entry.get("error_code", 0) != 0 or not entry.get("partitions"):
            continue
        topic_id = str(entry.get("topic_id") or "")
        ids[name] = "" if topic_id == NO_TOPIC_ID else topic_id
    return ids


class TopicWatch:
    """The last answer of the broker about ``topics``; ``refresh`` asks again."""

    def __init__(self, topics: Collection[str], connect: Callable[[], Any], *,
                 interval: float = WATCH_INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.topics = sorted(topics)
        self.interval = interval
        self._connect = connect
        self._admin: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # replaced whole at each answer, so other threads read it without the lock
        self.ids: dict[str, str | None] = {}
        self._clock = clock
        self._answered = clock()  # the last answer, or when the watch was made

    def missing(self) -> dict[str, bool]:
        """topic -> missing on the broker; empty before the first answer."""
        ids = self.ids
        return {topic: ids[topic] is None for topic in self.topics if topic in ids}

    def incarnation(self, topic: str) -> str:
        """A short tag of the topic's current id, "" when unknown."""
        return incarnation_tag(self.ids.get(topic))

    def refresh(self) -> dict[str, str | None]:
        """Ask the broker now; on failure the last answer stays."""
        with self._lock:
            try:
                if self._admin is None:
                    self._admin = self._connect()
                described = self._admin.describe_topics(self.topics)
            except Exception as err:  # noqa: BLE001 - asked again at the next interval
                log.debug("cannot describe the raw topics: %r", err)
                self._close()
                return self.ids
            self.ids = described_ids(described, self.topics)
            self._answered = self._clock()
            return self.ids

    def broker_silence(self) -> float:
        """Seconds since the broker last answered (since the watch began, before the
        first answer)."""
        return max(0.0, self._clock() - self._answered)

    def start(self) -> TopicWatch:
        quiet_client_thread(THREAD_NAME)
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            self._close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.interval)

    def _close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception as err:  # noqa: BLE001 - a new client is made next time
                log.debug("closing the topic watch's admin client: %r", err)


class ClientThreadNoise(logging.Filter):
    """Lowers to DEBUG what kafka-python logs in threads whose name contains one of
    ``threads``: the watch's client retries a broker that is gone (ERROR lines and
    tracebacks), and the consumer says that already, once a minute."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        thread = record.threadName or ""
        if not any(name in thread for name in self.threads) or not (
                record.name == "kafka" or record.name.startswith("kafka.")):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_client_thread(name: str) -> ClientThreadNoise:
    """Attach one ``ClientThreadNoise`` to the root logger's handlers (a filter on a logger
    would miss kafka-python's many child loggers) and add ``name`` to its thread names."""
    root = logging.getLogger()
    found = [f for h in root.handlers for f in h.filters if isinstance(f, ClientThreadNoise)]
    noise = found[0] if found else ClientThreadNoise()
    for handler in root.handlers:
        if noise not in handler.filters:
            handler.addFilter(noise)
    noise.threads.add(name)
    return noise


def watch_raw_topics(settings: Any) -> TopicWatch:
    """A started ``TopicWatch`` of the worker's raw topics, with an admin client made with
    the worker's connection and security settings (``streams.admin.client_options``)."""
    from kafka.admin import KafkaAdminClient

    from streams.admin import client_options

    options = {**client_options(settings), "client_id": THREAD_NAME,
               "bootstrap_timeout_ms": int(settings.io_timeout * 1000)}
    return TopicWatch(settings.topic_sources(), lambda: KafkaAdminClient(**options)).start()
