"""Whether the consumer group still counts this worker as a member, from its heartbeats.

A worker frozen longer than the session timeout (SIGSTOP, a VM pause, a stalled event
loop) is dropped from the group and its partitions go to the others, but it does not know
until its next heartbeat is answered. When it resumed, its overdue commit timer ran
first: it wrote the identity states it held before the freeze into its table and the
changelog, after the new owner's writes, and sent their inventory. The next owner to
recover those partitions read the stale states, and the frozen worker itself, given a
partition back later, started its recovery past the new owner's writes (Faust keeps its
own last changelog offset as its store's position). An attack run lost up to 65 of an
identity's 150 events this way, all of them accounted as processed.

The broker drops a member whose last heartbeat arrived more than the session timeout ago.
A heartbeat the broker answered as a member's (no error, or a rebalance in progress) was
received after it was sent, so until the session timeout has passed since the send of
the last one answered, the member is still in the group. ``Membership.current`` says so
with a margin of one heartbeat interval; the state writes wait for it (``streams.app``).
Offsets need no such guard: a dropped member's commit is refused by the broker, and the
holds keep every commit below the states not written.

What it cannot stop is a write already sent when the worker is cut off (queued just
before a freeze, or held by a network stall past the session timeout): it can still land
after the new owner's. ``streams.fencing`` keeps such a write from winning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Membership:
    """The send time of the last heartbeat the group answered, and what it proves."""

    def __init__(self, session_timeout: float, heartbeat_interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.session_timeout = session_timeout
        self.window = session_timeout - heartbeat_interval
        self.clock = clock
        self.confirmed_at: float | None = None  # send time of the last answered heartbeat
        self.doubted = False  # said so in the log; said again once confirmed

    def confirm(self, sent_at: float) -> None:
        """A heartbeat sent at ``sent_at`` was answered without error."""
        if self.confirmed_at is None or sent_at > self.confirmed_at:
            self.confirmed_at = sent_at
        if self.doubted:
            self.doubted = False
            log.info("group membership confirmed by a heartbeat: identity states are "
                     "written again")

    def current(self) -> bool:
        """Whether the group surely still counts this worker (see the module's text)."""
        if self.confirmed_at is None:
            return False
        age = self.clock() - self.confirmed_at
        if age < self.window:
            return True
        if not self.doubted:
            self.doubted = True
            log.warning("no heartbeat answered for %.1f s (the group drops a member %.1f s "
                        "after its last one): identity states are not written until one "
                        "is; if the group dropped this worker, their next owner reads "
                        "their events again", age, self.session_timeout)
        return False

    def watch(self, consumer: Any) -> None:
        """Have aiokafka's ``consumer`` (not started) confirm each heartbeat its group
        coordinator gets answered: the coordinator is created at the start, and its
        heartbeat routine looks ``_do_heartbeat`` up at each beat."""
        start = consumer.start

        async def start_watched() -> None:
            await start()
            coordinator = getattr(consumer, "_coordinator", None)
            beat = getattr(coordinator, "_do_heartbeat", None)
            if beat is None:  # no group (never in a worker): nothing to confirm
                return

            async def do_heartbeat() -> bool:
                sent_at = self.clock()
                answered = await beat()
                if answered:
                    self.confirm(sent_at)
                return answered

            coordinator._do_heartbeat = do_heartbeat

        consumer.start = start_watched
