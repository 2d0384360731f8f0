"""A command's own error that escapes it is still one line and an exit code, never a
traceback.

Found by attacking ``nhi-detector produce``: ``--batch-records 0`` raised its
``ConfigError`` out of the command, so the user got a traceback and exit 1.
"""

from __future__ import annotations

import pytest

import detector.cli
import detector.replay
from detector.cli import main
from detector.errors import SinkError


def test_escaping_config_error__one_line_exit_2(tmp_path, capsys):
    log = tmp_path / "empty.jsonl"
    log.write_bytes(b"")
    # refused before any connection is tried: nothing listens on port 9
    code = main(["produce", str(log), "--topic", "t", "--batch-records", "0",
                 "--bootstrap-servers", "127.0.0.1:9"])
    assert code == 2
    assert capsys.readouterr().err == (
        "nhi-detector produce: --batch-records: must be in 1..100000, not 0\n"
    )


def test_escaping_sink_error__one_line_exit_1(tmp_path, monkeypatch, capsys):
    def failed(args):
        raise SinkError("cannot write x: No space left on device")

    monkeypatch.setattr(detector.replay, "run", failed)
    assert main(["replay", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "nhi-detector replay: cannot write x: No space left on device\n"
    )


def test_other_exceptions__still_raised(tmp_path, monkeypatch):
    def broken(args):
        raise ValueError("a bug")

    monkeypatch.setattr(detector.replay, "run", broken)
    with pytest.raises(ValueError, match="a bug"):
        main(["replay", str(tmp_path)])


@pytest.mark.parametrize("argv, level", [
    (["replay", "X"], 0),
    (["-v", "replay", "X"], 1),
    (["replay", "X", "-v"], 1),  # after the subcommand, where an operator appends it
    (["-v", "replay", "-v", "X"], 2),  # the two places add up
])
def test_verbose_flag__counted_before_and_after_the_subcommand(tmp_path, monkeypatch, argv,
                                                                level):
    seen: list[int] = []
    monkeypatch.setattr(detector.cli, "configure_logging", seen.append)
    monkeypatch.setattr(detector.replay, "run", lambda args: 0)
    argv = [str(tmp_path) if a == "X" else a for a in argv]
    assert main(argv) == 0
    assert seen == [level]


@pytest.mark.parametrize("command", ["replay", "parse"])
def test_paths_after_options__all_kept_in_their_order(monkeypatch, command):
    # ``replay data/ --no-progress more/`` was refused: argparse gives ``PATH...`` one run
    # of words, and the later ones came back as "unrecognized arguments"
    seen: list[list[str]] = []
    module = "detector.replay" if command == "replay" else "detector.parse_cmd"
    monkeypatch.setattr(module + ".run", lambda args: seen.append(args.paths) or 0)
    flag = "--no-progress" if command == "replay" else "--source=aws.cloudtrail"
    assert main([command, "a/", flag, "b/", "-", "c.json.gz"]) == 0
    assert seen == [["a/", "b/", "-", "c.json.gz"]]


def test_unknown_option_after_paths__still_a_usage_error(monkeypatch, capsys):
    monkeypatch.setattr(detector.replay, "run", lambda args: 0)
    with pytest.raises(SystemExit) as stop:
        main(["replay", "a/", "--no-such-flag", "b/"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --no-such-flag b/" in err


def test_double_dash_after_options__the_rest_are_paths(monkeypatch):
    seen: list[list[str]] = []
    monkeypatch.setattr(detector.replay, "run", lambda args: seen.append(args.paths) or 0)
    assert main(["replay", "a/", "--no-progress", "--", "b/", "-dash.json"]) == 0
    assert seen == [["a/", "b/", "-dash.json"]]
