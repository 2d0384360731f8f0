"""The replay's event-time reorder buffer: order, equivalence under shuffling, late events."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.event import Event
from detector.reorder import ReorderBuffer, merge_streams, plan_streams, stream_key
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


def released(buffer: ReorderBuffer, arrivals: list[Event], api: str) -> list[Event]:
    """Everything ``buffer`` releases for ``arrivals``, through the replay's loop
    (``reorder``) or event by event (``push`` then ``drain``)."""
    if api == "reorder":
        return list(buffer.reorder(arrivals))
    return [e for event in arrivals for e in buffer.push(event)] + buffer.drain()


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

    @pytest.mark.parametrize("api", ["reorder", "push"])
    def test_one_record_far_ahead__waits_instead_of_making_the_rest_late(self, api):
        # a record dated 2099 in a 2023 stream: it must not move the watermark for everyone
        events = events_at([float(i * 60) for i in range(100)])
        outlier = make_event(4_070_908_800.0, "future")  # 2099-01-01
        arrivals = events[:10] + [outlier] + events[10:]
        stats = RunStats()
        buffer = ReorderBuffer(900, stats=stats)
        out = released(buffer, arrivals, api)
        assert [e.event_id for e in out] == [e.event_id for e in events] + ["future"]
        assert stats.late_events == 0

    @pytest.mark.parametrize("api", ["reorder", "push"])
    def test_logs_resuming_after_a_gap__the_jump_is_taken(self, api):
        # three days without logs, then the stream goes on: the first record after the gap
        # waits for the second, and stragglers from before the gap are still in order
        before = events_at([float(i * 60) for i in range(20)])
        after = [make_event(T0 + 3 * 86400 + i * 60, f"a{i:04d}") for i in range(20)]
        straggler = make_event(T0 + 20 * 60, "straggler")
        arrivals = before + after[:1] + [straggler] + after[1:]
        stats = RunStats()
        buffer = ReorderBuffer(900, stats=stats)
        out = released(buffer, arrivals, api)
        assert [e.ts for e in out] == sorted(e.ts for e in arrivals)
        assert stats.late_events == 0
        assert buffer.newest == after[-1].ts

    def test_negative_window__refused(self):
        with pytest.raises(ValueError, match="reorder window must be >= 0"):
            ReorderBuffer(-1, stats=RunStats())


class TestStreams:
    def test_stream_key__s3_layout_groups_by_account_and_region(self):
        a = "/d/AWSLogs/1111/CloudTrail/eu-west-1/2024/01/02/1111_CloudTrail_eu-west-1_" \
            "20240102T0005Z_ab.json.gz"
        b = "/d/AWSLogs/1111/CloudTrail/eu-west-1/2024/01/03/1111_CloudTrail_eu-west-1_" \
            "20240103T2355Z_cd.json.gz"
        c = "/d/AWSLogs/1111/CloudTrail/us-east-1/2024/01/02/1111_CloudTrail_us-east-1_" \
            "20240102T0005Z_ab.json.gz"
        assert stream_key(a) == stream_key(b)
        assert stream_key(a) != stream_key(c)

    def test_stream_key__gcs_export_and_hive_folders(self):
        g1 = "/e/cloudaudit.googleapis.com/activity/2024/01/01/00:00:00_00:59:59_S0.json"
        g2 = "/e/cloudaudit.googleapis.com/activity/2024/01/02/13:00:00_13:59:59_S1.json"
        assert stream_key(g1) == stream_key(g2) == "/e/cloudaudit.googleapis.com/activity/"
        h1 = "/h/dt=2024-01-01/hour=05/part-1.json.gz"
        h2 = "/h/dt=2024-01-02/hour=00/part-1.json.gz"
        assert stream_key(h1) == stream_key(h2)

    def test_stream_key__undated_files_are_their_own_streams(self):
        assert stream_key("/k/cluster-a.log") == "/k/cluster-a.log"
        assert stream_key("/k/cluster-b.log") == "/k/cluster-b.log"
        assert stream_key("-") == "-"
        # rotated files stamped with a date follow each other
        assert stream_key("/k/audit-2024-01-01T00-00.log") == stream_key("/k/audit-2024-02-01.log")

    def test_plan_streams__keeps_file_order_inside_a_stream(self):
        files = ["/k/a.log", "/x/2024/01/01/f.json", "/x/2024/01/02/f.json", "/k/b.log"]
        assert plan_streams(files) == [["/k/a.log"], ["/x/2024/01/01/f.json",
                                                      "/x/2024/01/02/f.json"], ["/k/b.log"]]

    def test_plan_streams__puts_a_streams_files_in_date_order_whatever_the_order_given(self):
        """``replay $(ls … | sort -r)``: files named on the command line in reverse."""
        days = [f"/k/prod/2026/11/{d:02d}/audit.json.gz" for d in range(1, 31)]
        assert plan_streams(list(reversed(days))) == [days]
        unpadded = ["/x/2024/1/10/f.json", "/x/2024/1/9/f.json", "/x/2024/2/1/f.json"]
        assert plan_streams(unpadded) == [["/x/2024/1/9/f.json", "/x/2024/1/10/f.json",
                                           "/x/2024/2/1/f.json"]]
        stamped = ["/k/audit-2024-01-02T00-00.log", "/k/audit-2024-01-01T12-00.log"]
        assert plan_streams(stamped) == [list(reversed(stamped))]

    def test_merge_streams__interleaves_by_time_then_buffer_sorts(self):
        first = events_at([0, 20, 10, 40, 30])  # e0000..e0004, unordered within the window
        second = [make_event(T0 + off, f"k{i}") for i, off in enumerate([5, 15, 25, 35])]
        stats = RunStats()
        merged = merge_streams([iter(first), iter(second)])
        out = list(ReorderBuffer(60, stats=stats).reorder(merged))
        assert [e.ts - T0 for e in out] == [0, 5, 10, 15, 20, 25, 30, 35, 40]
        assert stats.late_events == 0

    def test_merge_streams__single_stream_untouched(self):
        stream = iter(events_at([3, 1, 2]))
        assert merge_streams([stream]) is stream


class TestReorderProperties:
    @staticmethod
    def displaced(offsets: list[int], jitter: list[int]) -> list[Event]:
        events = [make_event(T0 + off, f"p{i:04d}") for i, off in enumerate(sorted(offsets))]
        keyed = sorted(zip(events, jitter, strict=False), key=lambda pair: pair[0].ts + pair[1])
        return [event for event, _ in keyed]

    @given(
        offsets=st.lists(st.integers(0, 5000), min_size=1, max_size=200),
        jitter=st.lists(st.integers(-150, 150), min_size=200, max_size=200),
    )
    @settings(max_examples=150, deadline=None)
    def test_displacement_within_window__sorted_output_nothing_late(self, offsets, jitter):
        arrivals = self.displaced(offsets, jitter)
        stats = RunStats()
        out = list(ReorderBuffer(300, stats=stats).reorder(arrivals))
        assert [e.ts for e in out] == sorted(e.ts for e in arrivals)
        assert stats.late_events == 0

    @given(
        offsets=st.lists(st.integers(0, 5000), min_size=1, max_size=200),
        window=st.integers(0, 400),
    )
    @settings(max_examples=150, deadline=None)
    def test_any_order__every_event_once_and_late_counted_by_definition(self, offsets, window):
        rng = random.Random(len(offsets) * 7919 + window)
        arrivals = [make_event(T0 + off, f"q{i:04d}") for i, off in enumerate(offsets)]
        rng.shuffle(arrivals)
        stats = RunStats()
        out = list(ReorderBuffer(window, stats=stats).reorder(arrivals))
        assert sorted(e.event_id for e in out) == sorted(e.event_id for e in arrivals)
        newest, late = float("-inf"), 0
        for e in arrivals:
            newest = max(newest, e.ts)
            late += e.ts < newest - window
        assert stats.late_events == late
