"""Large inputs in bounded memory (trial 7, item 1): a file above the streaming threshold,
or stdin, is judged from its start before anything is read whole; JSON lines stream, and
what only whole framing reads is held up to ``max_decompressed_bytes`` and no more."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from detector.sources import ListDeadLetters, Parser, compressed
from detector.stats import RunStats
from tests.detector.sources_helpers import read, record

SPARSE = 300 * 1024 * 1024
# Runs ``nhi-detector parse`` in a fresh interpreter and prints its peak RSS in bytes on
# the last line of stderr. VmHWM is the peak of this process's own memory; getrusage's
# ru_maxrss is not: Linux carries the RSS of the process that ran exec (here pytest, a
# few hundred MB into a full run) into it.
_MEASURE = """
import resource, sys
from detector.cli import main
code = main(sys.argv[1:])
try:
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(peak * 1024, file=sys.stderr)
sys.exit(code)
"""


def parse_peak(path: Path, stdin: bool = False) -> tuple[int, list[dict]]:
    """Peak RSS of ``parse`` on ``path`` (given as stdin: ``-``), and its dead letters."""
    dead = path.with_suffix(".dead.jsonl")
    args = ["-"] if stdin else [str(path)]
    with open(path if stdin else "/dev/null", "rb") as handle:
        done = subprocess.run([sys.executable, "-c", _MEASURE, "parse", "--dead-letters",
                               str(dead), *args], stdin=handle, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
    assert done.returncode == 0, done.stderr
    letters = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    return int(done.stderr.strip().splitlines()[-1]), letters


def sparse(path: Path, prefix: bytes = b"", suffix: bytes = b"") -> Path:
    """``prefix``, then zeros up to ``SPARSE`` bytes (a hole: no disk used), then ``suffix``."""
    with open(path, "wb") as handle:
        handle.write(prefix)
        handle.truncate(SPARSE)
    with open(path, "ab") as handle:
        handle.write(suffix)
    return path


class TestMemory:
    def test_a_sparse_file_is_one_binary_dead_letter_of_its_real_size(self, tmp_path: Path
                                                                      ) -> None:
        path = sparse(tmp_path / "zeros.json")
        peak, letters = parse_peak(path)
        assert peak < SPARSE // 4
        assert [(d["reason"], d["raw_size"], d["raw_truncated"]) for d in letters] == [
            ("binary", SPARSE, True)]

    def test_the_same_on_stdin(self, tmp_path: Path) -> None:
        path = sparse(tmp_path / "zeros.json")
        peak, letters = parse_peak(path, stdin=True)
        assert peak < SPARSE // 4
        assert [(d["reason"], d["raw_size"]) for d in letters] == [("binary", SPARSE)]

    def test_a_huge_line_among_json_lines_streams_past(self, tmp_path: Path) -> None:
        good = orjson.dumps(record(1)) + b"\n"
        path = sparse(tmp_path / "lines.jsonl", good, b"\n" + orjson.dumps(record(2)) + b"\n")
        peak, letters = parse_peak(path)
        assert peak < SPARSE // 4
        assert [(d["reason"], d["origin"]) for d in letters] == [
            ("oversized_record", f"{path}:2")]
        assert f"({SPARSE - len(good)} bytes" in letters[0]["message"]


def stream(data: bytes, **limits: int) -> tuple[list, RunStats, ListDeadLetters]:
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead, **limits)
    events = [e for batch in parser.feed_stream(io.BufferedReader(io.BytesIO(data)), "s")
              for e in batch]
    events += parser.finish()
    assert stats.balanced()
    return events, stats, dead


class TestStreams:
    def test_a_document_is_read_whole_up_to_the_payload_limit_and_refused_above(self
                                                                                ) -> None:
        document = orjson.dumps({"Records": [record(i) for i in range(400)]})
        events, _, dead = stream(document, max_decompressed_bytes=len(document))
        assert len(events) == 400 and len(dead) == 0
        events, _, dead = stream(document, max_decompressed_bytes=len(document) - 1)
        assert events == []
        assert [(d["reason"], d["raw_size"]) for d in dead.items] == [
            ("oversized_record", len(document))]
        assert "JSON lines are read at any size" in dead.items[0]["message"]

    def test_a_gzip_larger_than_the_limit_is_refused_unread(self) -> None:
        data = gzip.compress(orjson.dumps({"Records": [record(i) for i in range(400)]}))
        events, _, dead = stream(data, max_decompressed_bytes=len(data) - 1)
        assert events == [] and dead.reasons() == ["decompression_limit"]
        assert dead.items[0]["raw_size"] == len(data)

    def test_binary_with_json_lines_keeps_the_lines(self) -> None:
        data = b"\x00\x01\x02\x03" * 3000 + b"\n" + orjson.dumps(record(1)) + b"\n" + \
            b"\x00\x05" * 10 + b"\n" + orjson.dumps(record(2)) + b"\n"
        events, _, dead = stream(data)
        assert [e.event_id for e in events] == ["id-1", "id-2"]
        assert [(d["reason"], d["origin"]) for d in dead.items] == [
            ("binary", "s:1-1"), ("binary", "s:3-3")]

    @pytest.mark.parametrize("data", [b"", b" \n" * 40_000, b"\x00\x01" * 100])
    def test_small_or_blank_streams_end_as_the_same_bytes_in_a_file(self, data: bytes
                                                                   ) -> None:
        events, stats, dead = stream(data)
        stats2, dead2 = RunStats(), ListDeadLetters()
        Parser(stats=stats2, dead_letters=dead2).feed(data, "s")
        assert events == [] and dead.items == dead2.items and len(dead) == 1
        assert dead.items[0]["reason"] == ("binary" if data[:1] == b"\x00" else "empty_file")

    @pytest.mark.parametrize("chunk", [1, 3])
    def test_lines_stream_as_they_would_read_whole(self, chunk: int) -> None:
        lines = [orjson.dumps(record(i)) for i in range(7)]
        lines[3] = b'{"eventName": "cut'
        data = b"\n".join(lines) + b"\n"
        stats, dead = RunStats(), ListDeadLetters()
        parser = Parser(stats=stats, dead_letters=dead)
        events = [e for batch in parser.feed_stream(io.BufferedReader(io.BytesIO(data)),
                                                    "s", chunk_lines=chunk) for e in batch]
        assert [e.event_id for e in events] == [f"id-{i}" for i in (0, 1, 2, 4, 5, 6)]
        assert [(d["reason"], d["origin"]) for d in dead.items] == [("truncated", "s:4")]
        assert stats.bytes_read == len(data)

    def test_a_large_file_is_judged_from_its_start(self, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
        """Files above the threshold go through ``feed_stream`` with their size."""
        monkeypatch.setattr("detector.sources._STREAM_THRESHOLD", 10)
        text = b"GET /index.html 200\n" * 5000
        (tmp_path / "access.log").write_bytes(text)
        exported = b"".join(b"2024-03-04T10:00:00.000Z " + orjson.dumps(record(i)) + b"\n"
                            for i in range(3))
        (tmp_path / "export.log").write_bytes(exported)
        events, _, dead = read([tmp_path / "access.log", tmp_path / "export.log"])
        assert [(d["reason"], d["raw_size"]) for d in dead.items] == [
            ("unknown_format", len(text))]
        assert [e.event_id for e in events] == ["id-0", "id-1", "id-2"]


class TestOtherKinds:
    """A stream decoded whole is named by its kind when refused (a UTF-16 file was "a gzip
    file"), and one that decodes to nothing is an empty file, not silence."""

    @pytest.mark.parametrize(("data", "reason", "what"), [
        (gzip.compress(b"{}\n" * 2000), "decompression_limit", "a gzip file of "),
        (bz2.compress(b"{}\n" * 2000), "decompression_limit", "a bzip2 file of "),
        (lzma.compress(b"{}\n" * 2000), "decompression_limit", "an xz file of "),
        ("{}\n".encode("utf-16") * 2000, "oversized_record", "a UTF-16 file of "),
    ])
    def test_over_the_limit__named_by_kind(self, data: bytes, reason: str, what: str
                                           ) -> None:
        events, _, dead = stream(data, max_decompressed_bytes=len(data) - 1)
        assert events == [] and dead.reasons() == [reason]
        assert f"{what}{len(data):,} bytes is over the" in dead.items[0]["message"]

    @pytest.mark.parametrize("data", [bz2.compress(b""), lzma.compress(b""),
                                      "".encode("utf-16")])
    def test_decoding_to_nothing__is_an_empty_file(self, data: bytes) -> None:
        dead = ListDeadLetters()
        events = Parser(stats=RunStats(), dead_letters=dead).feed(data, "f")
        assert events == [] and dead.reasons() == ["empty_file"]


class TestOneInflateLoop:
    """gzip, bzip2 and xz go through ``compressed.inflate``: many small steps give the
    bytes one large step gives, every stream is read, and each stop is reported."""

    @pytest.mark.parametrize("pack", [gzip.compress, bz2.compress, lzma.compress])
    def test_small_steps__every_stream_whole(self, monkeypatch: pytest.MonkeyPatch,
                                             pack: Any) -> None:
        lines = [orjson.dumps(record(i)) + b"\n" for i in range(40)]
        data = pack(b"".join(lines[:25])) + pack(b"".join(lines[25:]))
        dead = ListDeadLetters()
        big = Parser(stats=RunStats(), dead_letters=dead).feed(data, "f")
        monkeypatch.setattr(compressed, "STEP", 7)
        small = Parser(stats=RunStats(), dead_letters=dead).feed(data, "f")
        assert [e.event_id for e in small] == [e.event_id for e in big] == [
            f"id-{i}" for i in range(40)]
        assert dead.items == []

    def test_stops__corrupt_over_budget_cut(self) -> None:
        raw = b"{}\n" * 1000
        make = bz2.BZ2Decompressor
        errors = (OSError, EOFError, ValueError)
        corrupt = compressed.inflate(b"BZh9" + b"\x00" * 40, make, 10**6, errors, bytes)
        assert corrupt.error is not None and corrupt.parts == []
        over = compressed.inflate(bz2.compress(raw), make, len(raw) - 1, errors, bytes)
        assert over.over and over.parts == []
        two = bz2.compress(raw) * 2
        cut = compressed.inflate(two[:-20], make, 10**6, errors, bytes)
        assert cut.streams == 1 and cut.size == len(raw) and cut.cut is not None
        whole = compressed.inflate(two + b"tail", make, 10**6, errors,
                                   lambda rest: None if rest == b"tail" else rest)
        assert whole.streams == 2 and whole.size == 2 * len(raw) and whole.rest == b"tail"
