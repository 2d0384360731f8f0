"""What a new user's trial of ``nhi-detector replay`` found (round 8).

Input out of order by days passed with a bare "Late events" count; the summary left out the
minutes a big snapshot took to load; a read-only folder for the snapshot, inventory or
report failed only after the whole replay; two replays writing one snapshot both ended well
and the last one silently won.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from detector.replay import SnapshotLock
from detector.summary import build_summary, late_warning, render_summary
from detector.stats import RunStats
from tests.detector.test_break_replay_outputs import GCP_RECORD
from tests.replay.logs import run_replay


def write_log(path: Path, days: list[int]) -> Path:
    """One GCP record per hour for each day in ``days``, in that order (a day's own
    records oldest first), days counted from 2024-03-01."""
    lines = []
    for day in days:
        for hour in range(24):
            record = {**GCP_RECORD, "insertId": f"id-{day}-{hour}",
                      "timestamp": f"2024-03-{day + 1:02d}T{hour:02d}:00:00Z"}
            lines.append(orjson.dumps(record) + b"\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(lines))
    return path


# ---------------------------------------------------------------------------- 1. late share


def test_days_newest_first__the_summary_and_the_log_warn(tmp_path, capsys, caplog):
    log = write_log(tmp_path / "logs" / "days.jsonl", [4, 3, 2, 1, 0])
    code, summary = run_replay([log], tmp_path)
    assert code == 0
    assert summary["late_events"] == 96  # every day but the first read is late
    warning = summary["late_warning"]
    assert warning.startswith("96 of 120 events (80.0%) came later than the reorder window")
    assert "must be in event-time order" in warning and "docs/replay.md" in warning
    assert f"  WARNING: {warning}" in capsys.readouterr().out
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [warning]


@pytest.mark.parametrize(("alerts", "stdout_count", "stderr_count"), [
    ("-", 0, 1),  # the summary on stderr says it, and the log would say it there again
    ("alerts.jsonl", 1, 1),  # the summary on stdout, the log on stderr
])
def test_days_newest_first__warned_once_per_stream(tmp_path, alerts, stdout_count,
                                                    stderr_count):
    """With the alerts on stdout, the summary goes to stderr, where the log goes too: the
    late warning was printed there twice, once by the summary and once by the log."""
    log = write_log(tmp_path / "logs" / "days.jsonl", [4, 3, 2, 1, 0])
    target = alerts if alerts == "-" else str(tmp_path / alerts)
    done = subprocess.run([sys.executable, "-m", "detector.cli", "replay", str(log),
                           "--alerts", target, "--no-progress"], capture_output=True,
                          check=False)
    assert done.returncode == 0
    assert done.stdout.count(b"came later than the reorder window") == stdout_count
    assert done.stderr.count(b"came later than the reorder window") == stderr_count


def test_days_in_order__no_warning(tmp_path, capsys):
    log = write_log(tmp_path / "logs" / "days.jsonl", [0, 1, 2, 3, 4])
    code, summary = run_replay([log], tmp_path)
    assert code == 0
    assert summary["late_events"] == 0
    assert summary["late_warning"] is None
    assert "WARNING" not in capsys.readouterr().out


@pytest.mark.parametrize(("late", "total", "warns"), [
    (9, 10, False),  # too few to say anything
    (10, 1000, True),  # one in a hundred
    (10, 1001, False),
    (0, 0, False),
])
def test_late_warning__share_and_count(late, total, warns):
    assert (late_warning(late, total) is not None) is warns


# ---------------------------------------------------------------------------- 2. load/save


def test_snapshot_load_and_save_times__in_the_summary(tmp_path, capsys):
    log = write_log(tmp_path / "logs" / "days.jsonl", [0, 1])
    state = tmp_path / "state.bin"
    code, first = run_replay([log], tmp_path, "--save-state", str(state))
    assert code == 0
    assert sorted(first["state_snapshot"]) == ["save_cpu_seconds", "save_seconds"]
    out = capsys.readouterr().out
    assert "State snapshot saved in " in out and "loaded" not in out
    code, second = run_replay([log], tmp_path, "--load-state", str(state))
    assert code == 0
    assert sorted(second["state_snapshot"]) == ["load_cpu_seconds", "load_seconds"]
    assert second["state_snapshot"]["load_seconds"] >= 0
    assert "State snapshot loaded in " in capsys.readouterr().out


def test_summary_without_snapshot__no_state_line():
    summary = build_summary(RunStats(), wall_seconds=1.0, cpu_seconds=1.0)
    assert summary["state_snapshot"] == {}
    assert "State snapshot" not in render_summary(summary)


def test_state_line__figures():
    summary = build_summary(RunStats(), wall_seconds=1.0, cpu_seconds=1.0, state_timings={
        "load_seconds": 240.04, "load_cpu_seconds": 76.0, "save_seconds": 3.0,
        "save_cpu_seconds": 2.5})
    assert ("State snapshot loaded in 240.0s (76.0s CPU), saved in 3.0s (2.5s CPU) (not in "
            "the figures above)") in render_summary(summary).splitlines()


# ---------------------------------------------------------------------------- 3. outputs


@pytest.fixture
def read_only(tmp_path, monkeypatch):
    """A folder this process may not write into. ``chmod`` does not stop root, so the
    refusal of the file system is played by ``os.open`` for paths in that folder."""
    folder = tmp_path / "ro"
    folder.mkdir()
    real_open = os.open

    def refusing_open(path, flags, *args, **kwargs):
        if Path(path).parent == folder and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    return folder


@pytest.mark.parametrize(("option", "what"), [
    ("--save-state", "state snapshot"), ("--inventory", "inventory"), ("--report", "report"),
    ("--dead-letters", "dead-letter file"), ("--alerts", "alerts file"),
])
def test_output_in_a_read_only_folder__exit_2_before_reading(tmp_path, capsys, read_only,
                                                             option, what):
    log = write_log(tmp_path / "logs" / "days.jsonl", [0])
    target = read_only / "out"
    code, summary = run_replay([log], tmp_path, option, str(target))
    assert code == 2
    assert capsys.readouterr().err == (
        f"nhi-detector replay: cannot write {what} {target}: Permission denied\n"
    )
    assert summary == {}
    assert not (tmp_path / "alerts.jsonl").exists() or option == "--alerts"
    assert os.listdir(read_only) == []


def test_existing_alerts_file_that_refuses_writes__exit_2(tmp_path, capsys, read_only):
    """The alerts are written in place: the file, not only its folder, must take writes."""
    log = write_log(tmp_path / "logs" / "days.jsonl", [0])
    target = read_only / "alerts.jsonl"
    target.write_bytes(b"kept\n")
    code = run_replay([log], tmp_path, "--alerts", str(target))[0]
    assert code == 2
    assert "cannot write alerts file" in capsys.readouterr().err
    assert target.read_bytes() == b"kept\n"


def test_writable_outputs__nothing_left_by_the_check(tmp_path):
    log = write_log(tmp_path / "logs" / "days.jsonl", [0])
    out = tmp_path / "out"
    out.mkdir()
    code, _ = run_replay([log], tmp_path, "--inventory", str(out / "inv.jsonl"),
                         "--save-state", str(out / "state.bin"))
    assert code == 0
    assert sorted(os.listdir(out)) == ["inv.jsonl", "state.bin"]


# ---------------------------------------------------------------------------- 6. one writer


def test_second_replay_saving_the_same_snapshot__refused(tmp_path, capsys):
    """A run that holds the lock (here, this test) makes another replay exit 2 at once."""
    log = write_log(tmp_path / "logs" / "days.jsonl", [0])
    state = tmp_path / "state.bin"
    holder = SnapshotLock(str(state))
    holder.acquire()
    try:
        code, summary = run_replay([log], tmp_path, "--save-state", str(state))
    finally:
        holder.release()
    assert code == 2
    assert capsys.readouterr().err == (
        f"nhi-detector replay: --save-state {state} is being written by another run "
        f"(process {os.getpid()}): its snapshot would be overwritten by whichever ends "
        "last; wait for it to end or name another file\n"
    )
    assert summary == {} and not state.exists()
    code, _ = run_replay([log], tmp_path, "--save-state", str(state))
    assert code == 0 and state.exists()
    assert sorted(os.listdir(tmp_path)) == ["alerts.jsonl", "logs", "state.bin",
                                            "summary.json"]


def test_lock_held_for_the_run__released_at_the_end(tmp_path, monkeypatch):
    """While the replay runs, its lock sibling is locked; afterwards it is gone."""
    from detector import replay

    log = write_log(tmp_path / "logs" / "days.jsonl", [0])
    state = tmp_path / "state.bin"
    lock_path = tmp_path / ".state.bin.lock"
    seen = []
    real = replay.run_loop

    def probing_loop(*args, **kwargs):
        fd = os.open(lock_path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            seen.append(os.read(fd, 32))
        finally:
            os.close(fd)
        return real(*args, **kwargs)

    monkeypatch.setattr(replay, "run_loop", probing_loop)
    code, _ = run_replay([log], tmp_path, "--save-state", str(state))
    assert code == 0
    assert seen == [f"{os.getpid()}\n".encode()]
    assert not lock_path.exists()


def test_lock_released_after_a_failed_run(tmp_path):
    """A run that stops on a bad snapshot to load releases the lock too."""
    log = write_log(tmp_path / "logs" / "days.jsonl", [0])
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"not a snapshot")
    state = tmp_path / "state.bin"
    code, _ = run_replay([log], tmp_path, "--load-state", str(bad), "--save-state", str(state))
    assert code == 2
    again = SnapshotLock(str(state))
    again.acquire()
    again.release()
    assert not (tmp_path / ".state.bin.lock").exists()
