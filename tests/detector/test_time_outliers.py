"""Time outliers: one record stamped far from its stream must not move event time for
everyone (``Parser._place``).

Before: in a replay, a record dated 2099 or five days ahead in the middle of a CloudTrail
stream stalled the merge of file streams behind it (2,100 and 722 late events on
replay_data's AWS logs instead of 25), and the detector's clock then made every identity
dormant. A record ahead of the machine's clock that its stream does not follow is a
``future_time`` dead letter; one far from its stream's range that the next records do not
follow is a ``time_outlier``."""

from __future__ import annotations

import gzip
import time
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from detector.sources import ListDeadLetters, Parser, parse_payload
from detector.sources.parser import OUTLIER_STRIKES, TIME_LEAP_SECONDS
from detector.stats import RunStats
from tests.detector.sources_helpers import record
from tests.replay import logs

T0 = 1_704_067_200.0  # 2024-01-01T00:00:00Z
DAY = 86400.0


def at(index: int, ts: float) -> dict:
    return record(index, eventTime=logs.iso(ts))


def lines(records: list[dict]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in records)


def parse(data: bytes) -> tuple[list[str], RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(data, origin="f", stats=stats, dead_letters=dead)
    assert stats.balanced()
    return [e.event_id for e in events], stats, dead


def steady(count: int, start: float = T0, step: float = 60.0, first: int = 0) -> list[dict]:
    return [at(first + i, start + i * step) for i in range(count)]


@pytest.mark.parametrize("framing", ["lines", "records"])
def test_one_record_days_ahead__time_outlier_the_rest_in_place(framing: str) -> None:
    before, after = steady(10), steady(OUTLIER_STRIKES, T0 + 600, first=10)
    outlier = at(99, T0 + 5 * DAY)
    stream = before + [outlier] + after
    data = lines(stream) if framing == "lines" else orjson.dumps({"Records": stream})
    ids, stats, dead = parse(data)
    assert ids == [r["eventID"] for r in before + after]
    assert [(d["reason"], d["source"]) for d in dead.items] == [
        ("time_outlier", "aws.cloudtrail")]
    where = "f:11" if framing == "lines" else "f#Records[10]"
    assert dead.items[0]["origin"] == where
    assert dead.items[0]["message"].endswith(
        "2024-01-06T00:00:00Z is 5.0 days after the stream's 2024-01-01T00:00:00Z .. "
        f"2024-01-01T00:24:00Z, and the {OUTLIER_STRIKES} records after it stayed there "
        "(an archive of samples from many years is read with --archive)")
    assert orjson.loads(dead.items[0]["raw"])["eventID"] == "id-99"


def test_one_record_years_behind__time_outlier() -> None:
    stream = steady(5) + [at(99, T0 - 23 * 365 * DAY)] + steady(OUTLIER_STRIKES, first=5)
    ids, _, dead = parse(lines(stream))
    assert "id-99" not in ids and len(ids) == 5 + OUTLIER_STRIKES
    assert dead.reasons() == ["time_outlier"]
    assert " days before the stream's 2024-01-01T00:00:00Z" in dead.items[0]["message"]


@pytest.mark.parametrize("position", [0, 5])
def test_record_after_the_machine_clock__future_time_at_once(position: int) -> None:
    stream = steady(10)
    stream.insert(position, record(99, eventTime="2099-01-01T00:00:00Z"))
    ids, stats, dead = parse(lines(stream))
    assert ids == [f"id-{i}" for i in range(10)]
    assert dead.reasons() == ["future_time"]
    assert dead.items[0]["message"].startswith(
        "record's event time is more than a day after the reading machine's clock: "
        "2099-01-01T00:00:00Z is after ")
    assert stats.dead_letters[("aws.cloudtrail", "future_time")] == 1


def test_stream_wholly_after_the_machine_clock__read_not_lost() -> None:
    # a reading machine whose clock is wrong (or data stamped ahead on purpose): the first
    # record waits, its follower confirms it, and the stream is read whole
    ahead = time.time() + 400 * DAY
    stream = steady(OUTLIER_STRIKES + 4, start=ahead)
    ids, _, dead = parse(lines(stream))
    assert dead.items == [] and ids == [r["eventID"] for r in stream]


def test_lone_future_record_alone_in_its_stream__future_time() -> None:
    # nothing came after it to confirm it
    ids, _, dead = parse(lines([record(99, eventTime="2099-01-01T00:00:00Z")]))
    assert ids == [] and dead.reasons() == ["future_time"]


def test_tomorrow_by_the_clock__still_an_event() -> None:
    soon = time.time() + TIME_LEAP_SECONDS / 2
    ids, _, dead = parse(lines([at(0, soon), at(1, soon + 60)]))
    assert ids == ["id-0", "id-1"] and dead.items == []


def test_logs_resuming_after_a_gap__the_jump_is_taken_in_order() -> None:
    # three quiet days, then the stream goes on: the first record after the gap waits for
    # the next, which confirms it; a straggler from before the gap does not count against it
    before, after = steady(5), steady(20, T0 + 3 * DAY, first=5)
    straggler = at(99, T0 + 300)
    stream = before + after[:1] + [straggler] + after[1:]
    ids, _, dead = parse(lines(stream))
    assert dead.items == []
    assert ids == [r["eventID"] for r in before + [straggler] + after]


def test_newest_first_export_with_gaps__every_record_kept_in_order() -> None:
    stream = [at(i, T0 - i * 2 * DAY) for i in range(30)]  # every two days, backwards
    ids, _, dead = parse(lines(stream))
    assert dead.items == [] and ids == [f"id-{i}" for i in range(30)]


def test_sparse_stream__weekly_records_all_kept() -> None:
    stream = [at(i, T0 + i * 7 * DAY) for i in range(10)]
    ids, _, dead = parse(lines(stream))
    assert dead.items == [] and ids == [f"id-{i}" for i in range(10)]


def test_rising_scattered_records__each_confirmed_by_the_next() -> None:
    # a record ten days after the last waits; the next, later still, confirms it; the last
    # waits for nothing and comes out at the end of input
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    out = parser.feed(lines([at(i, T0 + i * 10 * DAY) for i in range(6)]), "f")
    assert [e.event_id for e in out] == [f"id-{i}" for i in range(5)]
    assert parser.pending_origins() == ["f:6"]
    assert [e.event_id for e in parser.finish()] == ["id-5"]
    assert parser.pending_origins() == [] and parser.stats.balanced()


def test_long_lived_parser__a_waiting_record_is_a_pending_origin_until_judged() -> None:
    # the worker feeds one message at a time and must not commit past a waiting record
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    assert len(parser.feed(lines(steady(3)), "raw[0]@10")) == 3
    assert parser.feed(lines([at(50, T0 + 4 * DAY)]), "raw[0]@11") == []
    assert parser.pending_origins() == ["raw[0]@11"]
    out = parser.feed(lines([at(51, T0 + 4 * DAY + 60)]), "raw[0]@12")
    assert [e.event_id for e in out] == ["id-50", "id-51"]
    assert parser.pending_origins() == []
    assert parser.stats.balanced()


def test_kubernetes_and_gcp_streams_are_judged_alike() -> None:
    def k8s(index: int, ts: float) -> dict:
        return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": f"a{index}",
                "stage": "ResponseComplete", "verb": "get", "user": {"username": "u"},
                "objectRef": {"resource": "pods"}, "requestReceivedTimestamp": logs.iso(ts)}

    def gcp(index: int, ts: float) -> dict:
        return {"insertId": f"g{index}", "timestamp": logs.iso(ts),
                "protoPayload": {"serviceName": "iam.googleapis.com", "methodName": "m",
                                 "authenticationInfo": {"principalEmail": "a@b.c"}}}

    for make in (k8s, gcp):
        stream = [make(i, T0 + i * 60) for i in range(5)] + [make(99, T0 + 9 * DAY)] + [
            make(i, T0 + i * 60) for i in range(5, 5 + OUTLIER_STRIKES)]
        ids, stats, dead = parse(lines(stream))
        assert len(ids) == 5 + OUTLIER_STRIKES and dead.reasons() == ["time_outlier"]


def test_kubernetes_stage_days_ahead__waiting_requests_are_not_made_partial() -> None:
    # the stage merger expired waiting requests by the time of the last stage: one stage
    # stamped days ahead made them all partial, and their final stages were then dropped
    def stage(audit: str, name: str, ts: float) -> dict:
        return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": audit,
                "stage": name, "verb": "get", "user": {"username": "u"},
                "objectRef": {"resource": "pods"}, "requestReceivedTimestamp": logs.iso(ts),
                "stageTimestamp": logs.iso(ts + 1)}

    earlier = [stage(f"c{i}", "ResponseComplete", T0 - 60 + i) for i in range(3)]
    waiting = [stage(f"a{i}", "RequestReceived", T0 + i) for i in range(3)]
    outlier = stage("x", "ResponseComplete", T0 + 5 * DAY)
    done = [stage(f"a{i}", "ResponseComplete", T0 + i) for i in range(3)]
    more = [stage(f"b{i}", "ResponseComplete", T0 + 10 + i) for i in range(OUTLIER_STRIKES)]
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(lines(earlier + waiting + [outlier] + done + more), origin="f",
                           stats=stats, dead_letters=dead)
    assert stats.balanced()
    assert [(e.event_id, e.partial) for e in events[3:6]] == [
        ("a0", False), ("a1", False), ("a2", False)]
    assert len(events) == 6 + OUTLIER_STRIKES and not any(e.partial for e in events)
    assert dead.reasons() == ["time_outlier"]
    assert stats.skipped[("k8s.audit", "merged_stage")] == 3


def test_insight_context_far_from_the_stream__left_out(edge_cases: Path) -> None:
    # context events come beside the accounting and never wait: one far off is left out
    insights = orjson.loads((edge_cases / "B03.json").read_bytes())["Records"]
    start = insights[0]
    near = record(0, eventTime=start["eventTime"])
    ids, stats, _ = parse(lines([near, start]))
    assert ids == ["id-0", ""]
    far = dict(start, eventTime="2099-01-01T00:00:00Z")
    ids, stats, _ = parse(lines([near, far]))
    assert ids == ["id-0"] and stats.insights[("ApiCallRateInsight", "start")] == 1
    long_arn = "arn:aws:sts::1:assumed-role/" + "r" * 2100 + "/s"
    context = start["insightDetails"]["insightContext"]["attributions"]
    named = dict(start, insightDetails=dict(start["insightDetails"], insightContext=dict(
        start["insightDetails"]["insightContext"], attributions=[
            dict(a, insight=[{"value": long_arn, "average": 1.0}]) for a in context])))
    ids, _, _ = parse(lines([near, named]))
    assert ids == ["id-0"]


def test_salvaged_partial_event_far_from_the_stream__left_out_and_counted(
        edge_cases: Path) -> None:
    body = orjson.loads((edge_cases / "B10.json").read_bytes())
    cut = body["logEvents"][0]["message"]
    early = dict(body, logEvents=[body["logEvents"][1]])
    late = dict(body, logEvents=[dict(body["logEvents"][0], message=cut.replace(
        "2024-03-04T10:30:00", "2024-03-14T10:30:00"))])
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    assert len(parser.feed(orjson.dumps(early), "a")) == 1
    assert parser.feed(orjson.dumps(late), "b") == []
    assert stats.salvage == {("k8s.audit", "time_outlier"): 1}
    assert dead.reasons() == ["truncated"]


def test_replay__one_record_days_ahead_no_longer_makes_its_stream_late(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    logs.build_logs(root, days=4)
    files = sorted((root / "cloudtrail").rglob("*.json.gz"))
    middle = files[len(files) // 2]
    body = orjson.loads(gzip.decompress(middle.read_bytes()))
    first = body["Records"][0]
    when = datetime.fromisoformat(first["eventTime"].replace("Z", "+00:00")).timestamp()
    outlier = dict(first, eventID="outlier", eventTime=logs.iso(when + 5 * DAY))
    body["Records"].append(outlier)
    middle.write_bytes(gzip.compress(orjson.dumps(body), mtime=0))
    code, summary = logs.run_replay([root], tmp_path, "--dead-letters",
                                    str(tmp_path / "dead.jsonl"))
    assert code == 0
    assert summary["late_events"] == 0
    dead = [orjson.loads(line) for line in (tmp_path / "dead.jsonl").read_bytes().splitlines()]
    assert [(d["reason"], orjson.loads(d["raw"])["eventID"]) for d in dead] == [
        ("time_outlier", "outlier")]



class TestArchive:
    """An archive of samples gathered over years, in no time order, is not a stream: read
    with ``archive`` (``--archive``), each record counts at its own time."""

    def stream(self) -> list[dict]:
        return steady(5) + [at(99, T0 + 400 * DAY), at(98, T0 - 900 * DAY)] + \
            steady(OUTLIER_STRIKES, first=5)

    def test_default__the_stream_rule(self) -> None:
        ids, _, dead = parse(lines(self.stream()))
        assert dead.reasons() == ["time_outlier", "time_outlier"]
        assert "id-99" not in ids

    def test_archive__every_sample_at_its_own_time(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead, archive=True)
        out = parser.feed(lines(self.stream()), "f") + parser.finish()
        assert [e.event_id for e in out] == [r["eventID"] for r in self.stream()]
        assert dead.items == [] and parser.pending_origins() == []

    def test_archive__a_record_after_the_machine_clock_is_still_future_time(self) -> None:
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead, archive=True)
        data = lines([record(97, eventTime="2099-01-01T00:00:00Z")] + steady(3))
        out = parser.feed(data, "f") + parser.finish()
        assert [e.event_id for e in out] == ["id-0", "id-1", "id-2"]
        assert dead.reasons() == ["future_time"]

    def test_archive__the_clock_is_read_for_records_near_it_only(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Newest first, every record widens the archive's range and was judged against a
        reading of the clock of its own; a reading covers every time a day before it."""
        readings = []

        def clock() -> float:
            readings.append(1)
            return T0 + 1000 * DAY
        monkeypatch.setattr("detector.sources.parser.time.time", clock)
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead, archive=True)
        newest_first = [at(i, T0 - i * 30 * DAY) for i in range(40)]
        future = record(97, eventTime=logs.iso(T0 + 1002 * DAY))
        out = parser.feed(lines(newest_first + [future]), "f")
        assert [e.event_id for e in out] == [r["eventID"] for r in newest_first]
        assert dead.reasons() == ["future_time"]
        assert len(readings) == 2  # the first record, then the one judged future

    @pytest.mark.parametrize("archive", [False, True])
    def test_replay_command__archive_flag(self, tmp_path: Path, archive: bool) -> None:
        from detector.cli import main

        path, summary = tmp_path / "samples.jsonl", tmp_path / "summary.json"
        path.write_bytes(lines(self.stream()))
        flags = ["--archive"] if archive else []
        assert main(["replay", str(path), "--alerts", str(tmp_path / "alerts.jsonl"),
                     "--summary-json", str(summary), "--no-progress", *flags]) == 0
        figures = orjson.loads(summary.read_bytes())
        assert figures["events"]["total"] == len(self.stream()) - (0 if archive else 2)
        assert figures["dead_letters"] == ({} if archive else
                                           {"aws.cloudtrail/time_outlier": 2})

    def test_parse_command__archive_flag(self, tmp_path: Path, capsys) -> None:
        from detector.cli import main

        path = tmp_path / "samples.jsonl"
        path.write_bytes(lines(self.stream()))
        assert main(["parse", str(path), "--archive"]) == 0
        events = [orjson.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert len(events) == len(self.stream())


@pytest.mark.shared
@pytest.mark.parametrize(("name", "outliers"), [
    ("aws_cloudtrail", 2), ("gcp_auditlog", 1), ("azure_entra_audit_signin", 1)])
def test_panther_samples__kept_as_an_archive(real_logs: Path, name: str,
                                              outliers: int) -> None:
    """Panther's test files are archives: their cases are dated 2018 to 2026 in no order.
    Read as a stream, the cases the next 16 do not follow are ``time_outlier`` dead
    letters; read as an archive, every one of them is an event."""
    from detector.sources import read_paths

    path = real_logs / "panther-analysis-tests" / f"{name}.panther_tests.jsonl"
    found = {}
    for archive in (False, True):
        stats, dead = RunStats(), ListDeadLetters()
        events = list(read_paths([str(path)], stats=stats, dead_letters=dead, archive=archive))
        assert stats.balanced()
        found[archive] = (len(events), dead.reasons().count("time_outlier"))
    assert found[False][1] == outliers and found[True] == (found[False][0] + outliers, 0)
