"""The raw topics' messages, taken from Faust's consumer before its per-message machinery.

Faust hands each fetched message to the streams one at a time: a ``Message``, an
``Event``, the conductor, the stream's queue, a wait on four tasks in the consumer's
drain loop (``mode.Service.wait_first``) and the agent's iteration cost about 75 us of CPU
per message, as much as detecting the record inside it when the message holds one
record. The ingest step needs none of it: it takes the raw messages of a window together
anyway. So the worker's consumer (``streams.app.holding_consumer``) puts each raw message
it fetched straight into a ``RawIntake``, and the ingest task takes what has arrived, a
window at a time, and acknowledges each message through the same consumer after its
records were handed to the producer. Everything else stays Faust's: the consumer group,
the assignment, the seeks, the committed offsets (the acknowledged offsets, as for an
agent, and the holds), the flow control of a rebalance and the drain at a stop.

- The intake is bounded (``max_messages`` and ``max_bytes``): when it is full the
  consumer's fetch loop waits for room, so a slow ingest slows the fetching, not memory.
- Each message taken in is tracked by the consumer as unacknowledged, as Faust tracks a
  message given to a stream, so a rebalance and a stop wait until the window being
  processed is acknowledged (``stream_wait_empty``).
- ``clear`` (Faust's flow control calls it at a revocation and a stop, as for its stream
  queues) drops what waits and was not started: those messages are neither processed nor
  acknowledged, and whoever owns their partitions next reads them again from the
  committed offset. Faust's flow control calls it at every resume too (mode's
  ``FlowControlEvent.resume``): during the table recovery, before the assignment's seek,
  while the raw partitions are still paused (nothing of theirs waits), and after the
  seek, when what waits was fetched from the sought positions and nothing would read it
  again; so it is kept.
- A seek makes a partition's messages taken in before it stale (``forget``: the consumer
  reads them again from the new position). A window taken before the seek is still
  processed, but its messages of that partition are not acknowledged (``acknowledge``):
  Faust would record their old offsets for the partition read anew and commit past
  records not read yet.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import Collection, Iterable
from typing import Any

# Bytes of raw messages waiting at most (besides the count): a few large batched messages
# must not hold gigabytes while the ingest task works on the previous window.
MAX_BUFFERED_BYTES = 64 << 20


class Window(list):
    """Messages taken together (``RawIntake.take``), with the seek count of each of their
    partitions when they were taken (``epochs``)."""

    epochs: dict[tuple[str, int], int]


class RawIntake:
    """A bounded first-in-first-out buffer of the raw topics' messages (Faust
    ``ConsumerMessage`` objects), filled by the consumer, emptied by the ingest task."""

    def __init__(self, topics: Collection[str], max_messages: int,
                 max_bytes: int = MAX_BUFFERED_BYTES) -> None:
        self.topics = frozenset(topics)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.consumer: Any = None  # the consumer whose unacknowledged set tracks them
        self.flow_control: Any = None  # Faust's flow control, which calls ``clear``
        self._messages: deque[Any] = deque()
        self._bytes = 0
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        # (topic, partition) -> how often it was sought elsewhere (``forget``)
        self._epochs: defaultdict[tuple[str, int], int] = defaultdict(int)

    def __len__(self) -> int:
        return len(self._messages)

    def full(self) -> bool:
        return len(self._messages) >= self.max_messages or self._bytes >= self.max_bytes

    async def wait_room(self) -> None:
        """Until the intake can take one more message."""
        while self.full():
            self._room.clear()
            await self._room.wait()

    def put(self, message: Any) -> None:
        """Take ``message`` in (the consumer tracks it as unacknowledged)."""
        self._messages.append(message)
        self._bytes += len(message.value or b"")
        self._arrived.set()

    async def take(self, limit: int | None = None) -> Window:
        """The messages waiting, oldest first, at most ``limit`` (the intake's
        ``max_messages`` unless given); waits for the first.

        It does not wait for more once one is there: under load the consumer fills the
        intake while the previous window is processed, so windows grow by themselves, and
        with little input a record is not kept waiting for others."""
        while not self._messages:
            self._arrived.clear()
            await self._arrived.wait()
        messages = self._messages
        count = min(self.max_messages if limit is None else limit, len(messages))
        window = Window(messages.popleft() for _ in range(count))
        window.epochs = {key: self._epochs[key] for key in self.partitions(window)}
        self._bytes -= sum(len(message.value or b"") for message in window)
        if not self.full():
            self._room.set()
        return window

    @staticmethod
    def partitions(messages: Iterable[Any]) -> set[tuple[str, int]]:
        """The ``(topic, partition)`` of ``messages``."""
        return {(message.topic, message.partition) for message in messages}

    def stale(self, window: Window) -> set[tuple[str, int]]:
        """The partitions of ``window`` sought elsewhere since it was taken."""
        return {key for key, epoch in window.epochs.items() if self._epochs[key] != epoch}

    def acknowledge(self, window: Window) -> set[tuple[str, int]]:
        """Acknowledge the messages of ``window`` through the consumer (``ack``), except
        those of partitions sought elsewhere since it was taken: they are only no longer
        tracked as unacknowledged. Returns those partitions."""
        stale = self.stale(window)
        consumer = self.consumer
        for message in window:
            if (message.topic, message.partition) in stale:
                message.acked = True
                self._untrack([message])
            else:
                consumer.ack(message)
        return stale

    def clear(self) -> None:
        """Drop every message waiting (a revocation or a stop: read again later); nothing
        while the flow runs (Faust's resume, after the assignment's seek)."""
        if self.flow_control is not None and self.flow_control.is_active():
            return
        self._untrack(list(self._messages))
        self._messages.clear()
        self._bytes = 0
        self._room.set()

    def forget(self, partitions: Collection[tuple[str, int]]) -> None:
        """Drop the waiting messages of these ``(topic, partition)``, sought elsewhere (the
        assignment's seek to the committed offsets, ``streams.app.read_from_start``): the
        consumer reads them again from there. The windows taken before become stale for
        these partitions (``acknowledge``)."""
        for key in partitions:
            self._epochs[key] += 1
        keep, drop = deque(), []
        for message in self._messages:
            (drop if (message.topic, message.partition) in partitions else keep).append(message)
        self._messages = keep
        self._bytes = sum(len(message.value or b"") for message in keep)
        self._untrack(drop)
        if not self.full():
            self._room.set()

    def _untrack(self, messages: list[Any]) -> None:
        unacked = getattr(self.consumer, "_unacked_messages", None)
        if unacked is not None:
            for message in messages:
                unacked.discard(message)
