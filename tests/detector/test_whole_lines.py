"""JSON-lines outputs hold whole lines only, even when the disk fills under them.

A file-size limit (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored) makes the kernel refuse a
write part-way, with ``EFBIG``, exactly as a full disk does with ``ENOSPC``: real files,
real failed writes, in a child process so the limit binds nothing else. Before
``detector.jsonl``, the alerts and dead-letter files then ended in a torn line that any
reader (a SIEM forwarder, ``jq``) fails on.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from detector.jsonl import WholeLinesFile

resource = pytest.importorskip("resource")
REPO = Path(__file__).resolve().parents[2]
LIMIT = 300_000


def limited() -> None:  # runs in the child, before exec
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def whole_json_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert data.endswith(b"\n"), data[-80:]
    return [orjson.loads(line) for line in data.splitlines()]


def test_failed_write__file_cut_back_to_its_last_whole_line(tmp_path):
    out = tmp_path / "lines.jsonl"
    script = (
        "import sys\n"
        "from detector.jsonl import WholeLinesFile\n"
        "f = WholeLinesFile(sys.argv[1])\n"
        "try:\n"
        "    for n in range(20000):\n"
        "        f.write(b'{\"n\": %d, \"pad\": \"' % n + b'y' * (n % 97) + b'\"}\\n')\n"
        "    f.close()\n"
        "except OSError as err:\n"
        "    print(err.strerror)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(out)], cwd=REPO,
                          preexec_fn=limited, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.stdout.strip() == "File too large", done.stderr
    lines = whole_json_lines(out)
    assert [line["n"] for line in lines] == list(range(len(lines)))  # in order, none lost
    assert LIMIT - 200 < out.stat().st_size <= LIMIT  # as far as the limit let it go


def test_replay_dead_letters_on_a_full_disk__whole_lines_and_exit_1(tmp_path):
    logs = tmp_path / "garbage.jsonl"
    pad = "x" * 150
    logs.write_text("".join(f'{{"not": "a log", "n": {n}, "pad": "{pad}"}}\n'
                            for n in range(5000)))
    dead = tmp_path / "dead.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "detector.cli", "replay", str(logs), "--no-progress",
         "--alerts", str(tmp_path / "alerts.jsonl"), "--dead-letters", str(dead)],
        cwd=REPO, preexec_fn=limited, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"nhi-detector replay: cannot write dead-letter file {dead}: File too large")
    letters = whole_json_lines(dead)
    assert len(letters) > 100
    assert {letter["reason"] for letter in letters} == {"unknown_format"}


def test_append_keeps_what_the_file_held_and_truncate_empties_it(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"old": 1}\n')
    with WholeLinesFile(path, append=True) as handle:
        handle.write(b'{"new": 2}\n')
    assert whole_json_lines(path) == [{"old": 1}, {"new": 2}]
    with WholeLinesFile(path) as handle:
        handle.write(b'{"only": 3}\n')
    assert whole_json_lines(path) == [{"only": 3}]
    with pytest.raises(ValueError):
        handle.write(b"{}\n")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe__lines_pass_through(tmp_path):
    # a named pipe cannot seek: nothing to cut back, but it must still be writable (a
    # SIEM forwarder reading --alerts from a FIFO)
    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with WholeLinesFile(fifo) as handle:
        for n in range(3):
            handle.write(b'{"n": %d}\n' % n)
    reader.join(timeout=30)
    assert got == [b'{"n": 0}\n{"n": 1}\n{"n": 2}\n']


def test_an_earlier_torn_last_line__the_first_new_line_is_not_glued_to_it(tmp_path):
    path = tmp_path / "dead.jsonl"
    path.write_bytes(b'{"reason": "x"}\n{"reason": "cut off')  # another run's torn line
    with WholeLinesFile(path, append=True) as handle:
        handle.write(b'{"reason": "new"}\n')
    lines = path.read_bytes().splitlines()
    assert lines == [b'{"reason": "x"}', b'{"reason": "cut off', b'{"reason": "new"}']


def test_cut_back__only_its_own_torn_bytes_at_the_end_of_the_file(tmp_path):
    # two runs append dead letters to one file; the one whose write fails must not cut
    # away lines the other appended after its own bytes
    path = tmp_path / "dead.jsonl"
    path.write_bytes(b'{"n": 0}\n')
    handle = WholeLinesFile(path, append=True)
    os.write(handle.fileno(), b'{"n": 1}\n{"n": 2, "to')  # a write that stopped part-way
    handle._cut_back(len(b'{"n": 2, "to'))  # noqa: SLF001 (what a failed flush does)
    assert path.read_bytes() == b'{"n": 0}\n{"n": 1}\n'
    os.write(handle.fileno(), b'{"n": 3, "to')
    with open(path, "ab") as other:  # another run's line lands after the torn bytes
        other.write(b'{"other": 1}\n')
    handle._cut_back(len(b'{"n": 3, "to'))  # noqa: SLF001
    assert path.read_bytes().endswith(b'{"other": 1}\n')  # nothing of the other run lost
    handle.close()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_reader_gone__exit_1_said(tmp_path, capsys, monkeypatch):
    # a SIEM forwarder reading --alerts from a FIFO crashed: the run ended with exit 0 and
    # nothing said, as if it were ``| head`` on standard output
    import detector.jsonl
    from tests.replay import logs

    monkeypatch.setattr(detector.jsonl, "FLUSH_BYTES", 1)  # every alert written at once

    attack_at = logs.T0 + 2 * 86400 + 3600
    logs.build_logs(tmp_path / "logs", days=3, attack_at=attack_at)
    fifo = tmp_path / "alerts.fifo"
    os.mkfifo(fifo)

    def reader_that_dies() -> None:
        with open(fifo, "rb"):
            pass  # opens, reads nothing, goes away

    reader = threading.Thread(target=reader_that_dies)
    reader.start()
    from detector.cli import main

    code = main(["replay", str(tmp_path / "logs"), "--alerts", str(fifo), "--no-progress"])
    reader.join(timeout=30)
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == (f"nhi-detector replay: cannot write alerts to {fifo}: the reader went "
                    "away (Broken pipe)")
