"""Replay with standard output closed or full: one line and an exit code, files kept.

Found by attacking ``nhi-detector replay``: started with stdout closed (``>&-``) it ended
in an ``AttributeError`` traceback whether alerts went to stdout or to a file, and with
stdout on a full device (``>/dev/full``) in an ``OSError`` traceback after every file
had been written.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.detector.test_break_replay_outputs import GCP_RECORD


def replay(tmp_path: Path, *args: str, stdout: object = None, close_stdout: bool = False,
           close_stderr: bool = False) -> subprocess.CompletedProcess:
    log = tmp_path / "gcp.jsonl"
    log.write_bytes(orjson.dumps(GCP_RECORD) + b"\n")
    closed = [fd for fd, close in ((1, close_stdout), (2, close_stderr)) if close]
    return subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", str(log), *args],
        stdout=stdout, stderr=None if close_stderr else subprocess.PIPE, check=False,
        preexec_fn=(lambda: [os.close(fd) for fd in closed]) if closed else None,
    )


def test_stdout_closed__alerts_to_stdout__one_line_exit_1(tmp_path):
    done = replay(tmp_path, "--no-progress", close_stdout=True)
    assert done.returncode == 1
    assert done.stderr == (
        b"nhi-detector replay: cannot write alerts to standard output: it is closed\n"
    )


def test_stdout_closed__alerts_to_a_file__summary_on_stderr(tmp_path):
    alerts, summary = tmp_path / "alerts.jsonl", tmp_path / "summary.json"
    done = replay(tmp_path, "--no-progress", "--alerts", str(alerts), "--summary-json",
                  str(summary), close_stdout=True)
    assert done.returncode == 0
    assert done.stderr.startswith(b"Replay: 1 events in ")
    assert orjson.loads(summary.read_bytes())["events"]["total"] == 1
    assert alerts.exists()


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_full__one_line_exit_1_files_written(tmp_path):
    summary = tmp_path / "summary.json"
    with open("/dev/full", "wb") as full:
        done = replay(tmp_path, "--no-progress", "--alerts", str(tmp_path / "alerts.jsonl"),
                      "--summary-json", str(summary), stdout=full)
    assert done.returncode == 1
    assert done.stderr == b"nhi-detector replay: cannot write the summary: No space left " \
                          b"on device\n"
    assert orjson.loads(summary.read_bytes())["events"]["total"] == 1


def test_stderr_closed__the_run_still_happens(tmp_path):
    """Asking stderr whether it is a terminal (for the progress line) failed when it is
    closed, so a replay started by a daemon with stderr closed did nothing, exit 1."""
    summary = tmp_path / "summary.json"
    done = replay(tmp_path, "--alerts", str(tmp_path / "alerts.jsonl"), "--summary-json",
                  str(summary), stdout=subprocess.PIPE, close_stderr=True)
    assert done.returncode == 0
    assert done.stdout.startswith(b"Replay: 1 events in ")
    assert orjson.loads(summary.read_bytes())["events"]["total"] == 1
