"""Robustness of replay: damaged snapshots are refused (exit 2), arguments are checked,
failed outputs give one message (exit 1), SIGTERM stops like Ctrl-C (exit 143), stale
temporary files are removed, the report stays bounded, duplicates across streams count
once."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import struct
from pathlib import Path

import orjson
import pytest

from detector.cli import main
from detector.engine import SNAPSHOT_MAGIC, Detector
from detector.errors import StateError
from detector.evaluation import AlertRecord
from detector.replay import remove_stale_tmp, write_atomic
from detector.report import MAX_SPAN_SECONDS, render_report
from detector.stats import RunStats
from tests.replay import logs

HEAD = len(SNAPSHOT_MAGIC) + struct.calcsize(">HI")


replay = logs.run_replay


@pytest.fixture(scope="module")
def snap(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("robust")
    first, later = base / "days0-3", base / "day4"
    logs.build_logs(first, first_day=0, days=4)
    logs.build_logs(later, first_day=4, days=1)
    state = base / "state.snap"
    code, _ = replay([first], base, "--save-state", str(state))
    assert code == 0
    return {"state": state, "later": later, "first": first}


def rebuild(data: bytes, header: bytes) -> bytes:
    """The snapshot with another JSON header and a valid checksum."""
    body = data[:-32]
    (header_len,) = struct.unpack(">I", body[HEAD - 4:HEAD])
    new = body[:HEAD - 4] + struct.pack(">I", len(header)) + header + body[HEAD + header_len:]
    return new + hashlib.sha256(new).digest()


def header_of(data: bytes) -> dict:
    (header_len,) = struct.unpack(">I", data[HEAD - 4:HEAD])
    return orjson.loads(data[HEAD:HEAD + header_len])


def load(snap: dict[str, Path], tmp_path: Path, data: bytes, capsys) -> tuple[int, str]:
    bad = tmp_path / "bad.snap"
    bad.write_bytes(data)
    code, summary = replay([snap["later"]], tmp_path, "--load-state", str(bad))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if code == 2:
        assert summary == {}
    return code, err


class TestSnapshots:
    def test_bit_flip__refused_by_checksum(self, snap, tmp_path, capsys):
        data = bytearray(snap["state"].read_bytes())
        data[len(data) // 2] ^= 0x10
        code, err = load(snap, tmp_path, bytes(data), capsys)
        assert code == 2
        assert "refused: snapshot is damaged (checksum mismatch)" in err

    @pytest.mark.parametrize("data,message", [
        (b"", "not an nhi-detector state snapshot (the file is empty)"),
        (b"{}\n", "not an nhi-detector state snapshot (bad magic bytes)"),
        (b"NH", "not an nhi-detector state snapshot (bad magic bytes)"),
        (b"NHISNA", "snapshot is truncated at byte 0 (wanted 8 more)"),
    ])
    def test_short_files__named_for_what_they_are(self, snap, tmp_path, capsys, data, message):
        code, err = load(snap, tmp_path, data, capsys)
        assert code == 2 and message in err

    def test_random_bit_flips__never_load(self, snap):
        data = snap["state"].read_bytes()
        rng = random.Random(7)
        for _ in range(200):
            flipped = bytearray(data)
            flipped[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            with pytest.raises(StateError):
                Detector({}, stats=RunStats()).load_state(bytes(flipped))

    @pytest.mark.parametrize("header,message", [
        (b"null", "snapshot header must be a mapping, got NoneType"),
        (b"[1, 2]", "snapshot header must be a mapping, got list"),
        (b'{"identities": "3", "now": 0}', "snapshot header: identities must be a count, got '3'"),
        (b'{"identities": -1, "now": 0}', "snapshot header: identities must be a count, got -1"),
    ])
    def test_bad_header__refused(self, snap, tmp_path, capsys, header, message):
        code, err = load(snap, tmp_path, rebuild(snap["state"].read_bytes(), header), capsys)
        assert code == 2 and message in err

    @pytest.mark.parametrize("delta", [-100, "zero"])
    def test_identity_count_lowered__refused(self, snap, tmp_path, capsys, delta):
        data = snap["state"].read_bytes()
        header = header_of(data)
        header["identities"] = 0 if delta == "zero" else max(0, header["identities"] + delta)
        code, err = load(snap, tmp_path, rebuild(data, orjson.dumps(header)), capsys)
        assert code == 2
        assert f"unexpected bytes after its {header['identities']} identities" in err

    def test_trailing_garbage__refused(self, snap, tmp_path, capsys):
        code, err = load(snap, tmp_path, snap["state"].read_bytes() + b"junk", capsys)
        assert code == 2 and "checksum mismatch" in err

    def test_old_format_version__refused_as_different_version(self, snap, tmp_path, capsys):
        data = bytearray(snap["state"].read_bytes())
        data[len(SNAPSHOT_MAGIC):len(SNAPSHOT_MAGIC) + 2] = struct.pack(">H", 2)
        code, err = load(snap, tmp_path, bytes(data[:-32]), capsys)
        assert code == 2
        assert "snapshot format version 2 is not supported by this build (it reads version 3)" \
            in err and "different version" in err

    def test_intact_snapshot__still_loads(self, snap, tmp_path, capsys):
        code, _ = load(snap, tmp_path, snap["state"].read_bytes(), capsys)
        assert code == 0

    def test_identity_blob__corruption_is_state_error(self, snap):
        detector = Detector({}, stats=RunStats())
        detector.load_state(snap["state"].read_bytes())
        key = sorted(detector.store)[0]
        blob = detector.identity_state(key)
        rng = random.Random(3)
        for _ in range(300):
            flipped = bytearray(blob)
            flipped[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
            try:
                Detector({}, stats=RunStats()).set_identity_state(key, bytes(flipped))
            except StateError:
                pass
        with pytest.raises(StateError, match="identity profile: corrupt state"):
            profile_len = struct.unpack(">I", blob[6:10])[0]
            cut = bytearray(blob)
            cut[10 + 12:10 + 12 + 4] = b"[1]}"  # the profile header is no longer a state
            assert profile_len > 16
            Detector({}, stats=RunStats()).set_identity_state(key, bytes(cut))


class TestArguments:
    @pytest.mark.parametrize("option,value,message", [
        ("--metrics-port", "-1", "--metrics-port must be between 0 and 65535, got -1"),
        ("--metrics-port", "70000", "--metrics-port must be between 0 and 65535, got 70000"),
        ("--reorder-window", "nan", "--reorder-window must be between 0 and 604800 seconds, "
                                    "got nan"),
        ("--reorder-window", "inf", "--reorder-window must be between 0 and 604800 seconds, "
                                    "got inf"),
    ])
    def test_bad_number__exit_2(self, tmp_path, capsys, option, value, message):
        code, _ = replay([tmp_path], tmp_path, option, value)
        assert code == 2
        assert capsys.readouterr().err.strip() == f"nhi-detector replay: {message}"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
class TestSinks:
    def test_replay_dead_letters_to_full_device__exit_1(self, tmp_path, capsys):
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(b"{oops\n" * 5000)
        code, _ = replay([bad], tmp_path, "--dead-letters", "/dev/full")
        err = capsys.readouterr().err
        assert code == 1
        assert "nhi-detector replay: cannot write dead-letter file /dev/full: No space left " \
               "on device" in err and "Traceback" not in err

    def test_parse_dead_letters_to_full_device__exit_1(self, tmp_path, capsys):
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(b"{oops\n" * 5000)
        code = main(["parse", str(bad), "--dead-letters", "/dev/full"])
        err = capsys.readouterr().err
        assert code == 1
        assert "nhi-detector parse: cannot write dead-letter file /dev/full" in err

    def test_parse_dead_letters_to_a_directory__exit_1(self, tmp_path, capsys):
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(b"{oops\n")
        code = main(["parse", str(bad), "--dead-letters", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 1
        assert f"nhi-detector parse: cannot open dead-letter file {tmp_path}: Is a directory" \
            in err


class TestSignals:
    def test_sigterm__summary_exit_143_no_snapshot(self, snap, monkeypatch, tmp_path):
        from detector import replay as replay_module

        real_open = replay_module.open_events
        handler_before = signal.getsignal(signal.SIGTERM)

        def terminated_after_300(*args, **kwargs):
            for n, event in enumerate(real_open(*args, **kwargs), 1):
                yield event
                if n == 300:
                    os.kill(os.getpid(), signal.SIGTERM)

        monkeypatch.setattr(replay_module, "open_events", terminated_after_300)
        state = tmp_path / "state.snap"
        code, summary = replay([snap["first"]], tmp_path, "--save-state", str(state))
        assert code == 143
        assert summary["interrupted"] is True
        assert not state.exists()
        assert signal.getsignal(signal.SIGTERM) is handler_before  # the replay restored it

    def test_sigterm_while_outputs_are_written__they_are_finished_then_143(
            self, snap, monkeypatch, tmp_path, caplog):
        # after the event loop the default handler was back: SIGTERM killed the run with
        # no snapshot, no report and no word (exit 143 from the kernel)
        from detector import replay as replay_module

        real_inventory = replay_module._write_inventory
        handler_before = signal.getsignal(signal.SIGTERM)

        def terminated_while_writing(detector, path):
            os.kill(os.getpid(), signal.SIGTERM)
            real_inventory(detector, path)

        monkeypatch.setattr(replay_module, "_write_inventory", terminated_while_writing)
        state, report = tmp_path / "state.snap", tmp_path / "report.html"
        code, summary = replay([snap["first"]], tmp_path, "--save-state", str(state),
                               "--inventory", str(tmp_path / "inv.jsonl"), "--report",
                               str(report))
        assert code == 143
        assert summary["interrupted"] is False  # every event was processed
        assert state.exists() and report.exists() and (tmp_path / "inv.jsonl").exists()
        assert ("SIGTERM came while the outputs were being written: they were finished "
                "first") in caplog.messages
        assert signal.getsignal(signal.SIGTERM) is handler_before

    def test_interrupt__processed_count_agrees_with_warning(self, snap, monkeypatch, tmp_path,
                                                            caplog):
        from detector import replay as replay_module

        real_open = replay_module.open_events

        def interrupted_after_300(*args, **kwargs):
            for n, event in enumerate(real_open(*args, **kwargs), 1):
                yield event
                if n == 300:
                    raise KeyboardInterrupt

        monkeypatch.setattr(replay_module, "open_events", interrupted_after_300)
        code, summary = replay([snap["first"]], tmp_path)
        assert code == 130
        events = summary["events"]
        assert events["processed"] <= 300 <= events["total"]
        warning = next(r.getMessage() for r in caplog.records if "interrupted" in r.getMessage())
        assert f"{events['total']} events read" in warning
        assert f"{events['processed']} of them processed" in warning


class TestStaleTemporaryFiles:
    def test_save_removes_tmp_left_by_a_killed_run(self, tmp_path):
        target = tmp_path / "x.state"
        dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
        stale = tmp_path / f".x.state.{dead_pid}.tmp"
        stale.write_bytes(b"half a snapshot")
        other = tmp_path / f".y.state.{dead_pid}.tmp"  # another target's: left alone
        other.write_bytes(b"")
        write_atomic(target, b"data")
        assert target.read_bytes() == b"data"
        assert not stale.exists() and other.exists()
        assert remove_stale_tmp(target) == []


class TestReport:
    def test_absurd_timestamp__timelines_bounded(self, snap, tmp_path):
        code, summary = replay([snap["later"]], tmp_path)
        assert code == 0
        base = 1_790_000_000.0
        far = 253_402_000_000.0  # the year 9999
        hourly = {"id": {int(base // 3600) + h: 5 for h in range(200)}}
        hourly["id"][int(far // 3600)] = 1
        alerts = [
            AlertRecord(alert_id=f"a{n}", identity="id", detector="volume.rate",
                        severity="high", score=0.9, start=ts, end=ts, raised_ts=ts)
            for n, ts in enumerate((base + 3600.0, far))
        ]
        page = render_report(summary=summary, alerts=alerts, sweep=[], hourly=hourly,
                             t_range=(base, far), scenarios=None)
        assert len(page) < 2_000_000
        assert f"Event time spans more than {MAX_SPAN_SECONDS / 86400:,.0f} days" in page

    def test_timeline_headings_count_alerts_in_words(self, snap, tmp_path):
        from detector.evaluation import Scenario

        code, summary = replay([snap["later"]], tmp_path)
        assert code == 0
        base = 1_790_000_000.0
        hourly = {i: {int(base // 3600) + h: 3 for h in range(5)} for i in ("one", "two", "q")}
        alerts = [AlertRecord(alert_id=f"a{n}", identity=who, detector="volume.rate",
                              severity="high", score=0.9 - n / 10, start=base, end=base,
                              raised_ts=base)
                  for n, who in enumerate(("one", "two", "two"))]
        missed = Scenario(id="S1", title="t", identities=frozenset({"q"}), start=base,
                          end=base + 3600)
        page = render_report(summary=summary, alerts=alerts, sweep=[], hourly=hourly,
                             t_range=(base, base + 5 * 3600), scenarios=[missed])
        assert "<h3>one (1 alert)</h3>" in page
        assert "<h3>two (2 alerts)</h3>" in page
        assert "<h3>q (no alert)</h3>" in page


class TestCrossStreamDuplicates:
    def test_same_file_in_two_folders__processed_once(self, snap, tmp_path):
        one, two = tmp_path / "one", tmp_path / "two"
        shutil.copytree(snap["later"], one)
        shutil.copytree(snap["later"], two)
        code, single = replay([one], tmp_path / "s1")
        assert code == 0
        code, double = replay([one, two], tmp_path / "s2")
        assert code == 0
        assert double["events"]["total"] == single["events"]["total"]
        assert double["accounting_balanced"] is True

        def duplicates(summary):
            return sum(n for reason, n in summary["skipped"].items()
                       if reason.endswith("/duplicate_event"))

        # every event of the second copy is skipped as a duplicate, nothing else changes
        assert duplicates(double) - duplicates(single) == single["events"]["total"] > 0

    def test_a_duplicate_salvaged_event_leaves_the_event_counts_alone(self):
        from datetime import UTC, datetime

        from detector.event import Event
        from detector.replay import CrossStreamDuplicates

        when = datetime(2024, 3, 4, 10, 30, tzinfo=UTC)

        def salvaged() -> Event:
            return Event(event_id="a1", time=when, ts=when.timestamp(), source="k8s.audit",
                         identity="prod/system:serviceaccount:ci:deployer",
                         identity_kind="workload", action="k8s:deployments.update",
                         partial=True, attributes={"salvaged": "truncated"})

        stats = RunStats()
        stats.salvage[("k8s.audit", "emitted")] = 2  # as the two streams' parsers count
        kept = list(CrossStreamDuplicates(stats).filter([salvaged(), salvaged()]))
        assert [e.event_id for e in kept] == ["a1"]
        assert dict(stats.salvage) == {("k8s.audit", "emitted"): 1,
                                       ("k8s.audit", "duplicate"): 1}
        assert sum(stats.events.values()) == 0 and not stats.skipped


class TestNoEvents:
    """A run that reads no event says so, and why, instead of a quiet table of zeros."""

    def test_a_text_file_names_its_dead_letter(self, tmp_path: Path, capsys) -> None:
        notes = tmp_path / "notes.txt"
        notes.write_text("remember to rotate the deploy key\n")
        code, summary = replay([notes], tmp_path)
        out = capsys.readouterr().out
        warning = summary["no_events_warning"]
        assert code == 0 and warning == ("no events were read: 1 dead letter (unknown_format; "
                                         "each with its message in the --dead-letters file)")
        assert f"  WARNING: {warning}" in out and "Event time: none (no events)" in out
        assert "None .. None" not in out

    def test_an_empty_folder(self, tmp_path: Path) -> None:
        empty = tmp_path / "empty"
        empty.mkdir()
        code, summary = replay([empty], tmp_path)
        assert code == 0
        assert summary["no_events_warning"] == "no events were read: no input held a record"

    def test_a_run_with_events_has_none(self, tmp_path: Path) -> None:
        logs.build_logs(tmp_path / "logs", days=1)
        code, summary = replay([tmp_path / "logs"], tmp_path)
        assert code == 0 and summary["events"]["total"] > 0
        assert summary["no_events_warning"] is None and summary["snapshot_warning"] is None
