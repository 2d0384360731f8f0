"""Ctrl-C outside the event loop: the command says it was interrupted, and a file being
written is left as it was, with no temporary file behind.

Found by attacking ``nhi-detector replay`` with SIGINT at random moments: while starting
(loading a snapshot) or while writing the last files it exited 130 with nothing on
stderr, and an interrupted snapshot write left ``.<name>.<pid>.tmp`` next to it.
"""

from __future__ import annotations

import pytest

import detector.replay
from detector.cli import main
from detector.replay import write_atomic


def test_interrupt_outside_the_loop__says_so_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(args, stats):
        raise KeyboardInterrupt

    monkeypatch.setattr(detector.replay, "_replay", interrupted)
    log = tmp_path / "empty.jsonl"
    log.write_bytes(b"")
    assert main(["replay", str(log), "--alerts", str(tmp_path / "a.jsonl")]) == 130
    assert capsys.readouterr().err == "nhi-detector replay: interrupted\n"


def test_interrupted_write__target_kept_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "state.snap"
    target.write_bytes(b"the good snapshot")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(detector.replay.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"half of a new one")
    assert target.read_bytes() == b"the good snapshot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.snap"]
