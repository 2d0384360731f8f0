"""A bounded event-time reorder buffer for the replay harness.

Audit logs are not delivered in event-time order: CloudTrail writes records up to about
15 minutes late and unordered inside a file, and a replay may mix sources and files. The
models expect each identity's events in (roughly) time order, so the replay holds events
in a min-heap keyed by event time and releases an event once it is older than the newest
event time seen minus the window (the *watermark*).

A record that arrives after the watermark has already passed its time (it is later than
the window) cannot be put back in order. It is not dropped: it is released at once and
counted in ``RunStats.late_events``.

One record far ahead of the stream (a year 2099 typed by hand, a clock gone wrong) would
move the watermark with it and make every later record late. A record more than
``LEAP_SECONDS`` ahead of the newest time is therefore held aside until another record
within ``LEAP_SECONDS`` of it confirms that the stream really moved on (logs resuming after
a gap); unconfirmed, it is released in order at the end of input.

Ties on event time are broken by ``event_id`` and then arrival order, so the output order
does not depend on the order of files or records within the window: a shuffled input and
a sorted input give the same sequence.

Memory is bounded by the number of events inside one window, not by the replay length.

Files are a second source of disorder: a directory holding CloudTrail, Kubernetes and GCP
logs, read in path order, would give all of CloudTrail's month before the first Kubernetes
record, and no bounded window can repair that. ``plan_streams`` therefore splits the input
files into *streams* whose files follow each other in time (the date folders of an S3 or
GCS export, files stamped with a date in one folder), and ``merge_streams`` interleaves the
streams by event time before the buffer sees them. A file with no date in its folders or
name is a stream of its own.
"""

from __future__ import annotations

import heapq
import logging
import os
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from operator import attrgetter

from detector.event import Event
from detector.stats import RunStats

logger = logging.getLogger(__name__)

NEG_INF = float("-inf")
DEFAULT_WINDOW_SECONDS = 900.0
"""CloudTrail's documented delivery delay is "about 15 minutes"; a wider window costs only
memory (the events held are those of one window of event time)."""


LEAP_SECONDS = 86400.0
"""How far ahead of the newest event time a record may be before it waits for a second one
to confirm the jump (see the module docstring)."""
MAX_HELD = 64
"""Records held aside at once; beyond that, a leap is taken as confirmed."""


class ReorderBuffer:
    """Release events in event-time order once they fall ``window`` seconds behind.

    ``push(event)`` returns the (possibly empty) list of events now safe to release, in
    order; ``drain()`` returns every held event at the end of input. ``reorder(events)``
    wraps both for a plain iterator pipeline.
    """

    def __init__(self, window: float = DEFAULT_WINDOW_SECONDS, *, stats: RunStats) -> None:
        if window < 0:
            raise ValueError(f"reorder window must be >= 0 seconds, got {window}")
        self.window = float(window)
        self.stats = stats
        self.newest = NEG_INF
        self._heap: list[tuple[float, str, int, Event]] = []
        self._seq = 0
        self._held: list[Event] = []  # far ahead of the stream, not yet confirmed

    def _keep(self, event: Event) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (event.ts, event.event_id, self._seq, event))

    def _leap(self, event: Event) -> float | None:
        """``event`` is more than ``LEAP_SECONDS`` ahead of the newest time: the newest time
        once the jump is confirmed (a held record within ``LEAP_SECONDS`` of it joins the
        buffer), or ``None`` after holding ``event`` aside."""
        ts = event.ts
        for i, held in enumerate(self._held):
            if abs(held.ts - ts) <= LEAP_SECONDS:
                self._keep(self._held.pop(i))
                return max(ts, held.ts)
        if len(self._held) >= MAX_HELD:
            return ts  # too many to hold: the jump is taken as it is
        logger.debug("holding event %s at %.0f: %.0f s ahead of the stream", event.event_id,
                     ts, ts - self.newest)
        self._held.append(event)
        return None

    def _take_held(self) -> None:
        """At the end of input, the held records join the buffer (released in order)."""
        for event in self._held:
            self._keep(event)
        self._held = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, event: Event) -> list[Event]:
        """Add one event; return the events whose time is now below the watermark."""
        ts = event.ts
        if ts > self.newest:
            newest: float | None = ts
            if ts - self.newest > LEAP_SECONDS and self.newest != NEG_INF:
                newest = self._leap(event)
                if newest is None:
                    return []
            self.newest = newest
        watermark = self.newest - self.window
        if ts < watermark:
            self.stats.late_events += 1
            released = self._release(watermark)
            released.append(event)
            return released
        self._keep(event)
        return self._release(watermark)

    def _release(self, watermark: float) -> list[Event]:
        heap = self._heap
        out: list[Event] = []
        while heap and heap[0][0] < watermark:
            out.append(heapq.heappop(heap)[3])
        return out

    def drain(self) -> list[Event]:
        """Release everything still held, in order (end of input)."""
        self._take_held()
        heap = self._heap
        out = [heapq.heappop(heap)[3] for _ in range(len(heap))]
        return out

    def reorder(self, events: Iterable[Event]) -> Iterator[Event]:
        """Yield ``events`` in event-time order within the window, then drain.

        The loop is written out here (rather than calling ``push`` per event) because it
        runs once per event of a replay and the harness overhead must stay tiny.
        """
        heap = self._heap
        heappush, heappop = heapq.heappush, heapq.heappop
        window = self.window
        stats = self.stats
        newest = self.newest
        seq = self._seq
        try:
            for event in events:
                ts = event.ts
                if ts > newest:
                    if ts - newest > LEAP_SECONDS and newest != NEG_INF:
                        self.newest, self._seq = newest, seq
                        leap = self._leap(event)
                        seq = self._seq
                        if leap is None:
                            continue  # held aside (see the module docstring)
                        newest = leap
                    else:
                        newest = ts
                watermark = newest - window
                if ts < watermark:
                    stats.late_events += 1
                    while heap and heap[0][0] < watermark:
                        yield heappop(heap)[3]
                    yield event
                    continue
                seq += 1
                heappush(heap, (ts, event.event_id, seq, event))
                while heap and heap[0][0] < watermark:
                    yield heappop(heap)[3]
        finally:
            self.newest, self._seq = newest, seq
        self._take_held()
        while heap:
            yield heappop(heap)[3]


# ---------------------------------------------------------------------------- streams

MAX_STREAMS = 256
"""Streams merged at once; each holds one open file's events, so this bounds memory."""

_DATE_DIR = re.compile(r"^(?:\d{4}|\d{1,2}|\d{4}-\d{2}(?:-\d{2})?|[a-z_]+=[\w:-]+)$")
_DIGITS = re.compile(r"([0-9]+)")
_DATE_NAME = re.compile(
    r"(?<!\d)(?:19|20)\d{2}-?[01]\d-?[0-3]\d(?:[T_ -]?[0-2]\d[:-]?[0-5]\d)?"
    r"|(?<!\d)[0-2]\d[:-][0-5]\d[:-][0-5]\d"
)


def stream_key(path: str) -> str:
    """Files with the same key follow each other in time (see the module docstring).

    Trailing date folders are dropped (``AWSLogs/<acct>/CloudTrail/<region>/2024/01/31``
    keys as ``.../<region>``; ``dt=2024-01-31``, ``hour=05`` likewise); with date folders,
    or with a date stamp in the file name, the key is the folder plus the part of the name
    before the stamp. Any other file is its own stream.
    """
    if path == "-":
        return path
    folder, name = os.path.split(path)
    base, dated = _undated_folder(folder)
    stamp = _DATE_NAME.search(name)
    if stamp:
        name = name[: stamp.start()]
    elif not dated:
        return path
    return base + os.sep + name


@lru_cache(maxsize=4096)
def _undated_folder(folder: str) -> tuple[str, bool]:
    """``folder`` without its trailing date folders, and whether it had any.

    Cached: the files of one folder share it, and matching each folder part was two thirds
    of ``stream_key``'s cost (replay_data is 11,000 files in 900 folders)."""
    parts = folder.split(os.sep)
    dated = False
    while parts and _DATE_DIR.match(parts[-1]):
        parts.pop()
        dated = True
    return os.sep.join(parts), dated


def plan_streams(files: Iterable[str]) -> list[list[str]]:
    """Group files into time-sequential streams, each in the order of its date folders and
    stamps (numbers compared as numbers: ``2024/1/9`` before ``2024/1/10``), whatever the
    order they were given in: ``replay $(ls … | sort -r)`` read a day's files newest first,
    and 97 % of the events came later than the reorder window."""
    groups: dict[str, list[str]] = {}
    for path in files:
        groups.setdefault(stream_key(path), []).append(path)
    return [sorted(group, key=_in_time_order) if len(group) > 1 else group
            for group in groups.values()]


def _in_time_order(path: str) -> list[str | int]:
    """``path`` as text and numbers in turn (``re.split`` keeps the text first), so dated
    paths sort by date whether their numbers are zero-padded or not."""
    parts: list[str | int] = _DIGITS.split(path)
    parts[1::2] = [int(run) for run in parts[1::2]]
    return parts


def merge_streams(streams: list[Iterator[Event]]) -> Iterator[Event]:
    """Interleave streams that are each roughly in time order into one such stream."""
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=attrgetter("ts"))
