"""The replay's event-time reorder buffer: order, equivalence under shuffling, late events."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from detector.event import Event
from detector.reorder import ReorderBuffer
from detector.stats import RunStats

T0 = 1_700_000_000.0


def make_event(ts: float, event_id: str) -> Event:
    return Event(
        event_id=event_id,
        time=datetime.fromtimestamp(ts, UTC),
        ts=ts,
        source="aws.cloudtrail",
        identity="arn:aws:iam::111122223333:role/app",
        action="s3:GetObject",
    )


def events_at(offsets: list[float]) -> list[Event]:
    return [make_event(T0 + off, f"e{i:04d}") for i, off in enumerate(offsets)]


class TestReorderBuffer:
    def test_reorder__sorted_input_passes_through_in_order(self):
        events = events_at([float(i * 10) for i in range(50)])
        out = list(ReorderBuffer(60, stats=RunStats()).reorder(events))
        assert [e.event_id for e in out] == [e.event_id for e in events]

    def test_reorder__shuffle_within_window_gives_sorted_output(self):
        # 400 events, 5 s apart; each displaced by at most 100 s, window 300 s.
        events = events_at([float(i * 5) for i in range(400)])
        rng = random.Random(7)
        jittered = sorted(events, key=lambda e: e.ts + rng.uniform(-100, 100))
        assert jittered != events
        stats = RunStats()
        out = list(ReorderBuffer(300, stats=stats).reorder(jittered))
        assert [e.event_id for e in out] == [e.event_id for e in events]
        assert stats.late_events == 0

    def test_reorder__equal_times_order_does_not_depend_on_arrival(self):
        same = [make_event(T0, f"id-{c}") for c in "dbca"]
        out_a = list(ReorderBuffer(60, stats=RunStats()).reorder(same))
        out_b = list(ReorderBuffer(60, stats=RunStats()).reorder(list(reversed(same))))
        assert [e.event_id for e in out_a] == ["id-a", "id-b", "id-c", "id-d"]
        assert [e.event_id for e in out_b] == ["id-a", "id-b", "id-c", "id-d"]

    def test_reorder__event_later_than_window_is_processed_and_counted(self):
        events = events_at([0, 100, 200, 1000, 1100, 50, 1200, 1150])
        stats = RunStats()
        out = list(ReorderBuffer(300, stats=stats).reorder(events))
        # e0005 (t=50) arrives when the newest time is 1100: 1050 s late, beyond 300 s.
        # e0007 (t=1150) is 50 s behind 1200: inside the window, put back in order.
        assert stats.late_events == 1
        assert len(out) == len(events)
        ids = [e.event_id for e in out]
        assert ids == ["e0000", "e0001", "e0002", "e0005", "e0003", "e0004", "e0007", "e0006"]

    def test_push__releases_only_below_watermark(self):
        buffer = ReorderBuffer(100, stats=RunStats())
        assert buffer.push(make_event(T0 + 50, "a")) == []
        assert buffer.push(make_event(T0, "b")) == []
        released = buffer.push(make_event(T0 + 120, "c"))
        assert [e.event_id for e in released] == ["b"]
        assert len(buffer) == 2
        assert [e.event_id for e in buffer.drain()] == ["a", "c"]
        assert len(buffer) == 0

    def test_push__late_event_counted(self):
        stats = RunStats()
        buffer = ReorderBuffer(10, stats=stats)
        buffer.push(make_event(T0 + 100, "new"))
        released = buffer.push(make_event(T0, "old"))
        assert [e.event_id for e in released] == ["old"]
        assert stats.late_events == 1

    def test_zero_window__releases_everything_older_than_newest(self):
        events = events_at([0, 1, 2])
        out = list(ReorderBuffer(0, stats=RunStats()).reorder(events))
        assert [e.event_id for e in out] == ["e0000", "e0001", "e0002"]

    def test_negative_window__refused(self):
        with pytest.raises(ValueError, match="reorder window must be >= 0"):
            ReorderBuffer(-1, stats=RunStats())
