"""``produce`` streams a JSON-lines file too large for one message: the same records and
skip messages as reading it whole (``split_records``), in bounded memory."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

import streams.produce as produce
from streams.produce import read_records

LINES = [orjson.dumps({"eventID": f"e{i}", "eventName": "GetObject", "pad": "x" * (i % 97)})
         for i in range(400)]


def whole_and_streamed(path: Path, max_bytes: int, monkeypatch: pytest.MonkeyPatch
                       ) -> tuple[tuple[list[bytes], list[str]], tuple[list[bytes], list[str]]]:
    """``read_records`` of ``path`` as it reads it now, and as it read it before (whole)."""
    streamed_errors: list[str] = []
    streamed = list(read_records([str(path)], streamed_errors, max_bytes))
    with monkeypatch.context() as patch:
        patch.setattr(produce, "_stream", lambda *_: None)
        whole_errors: list[str] = []
        whole = list(read_records([str(path)], whole_errors, max_bytes))
    return (streamed, streamed_errors), (whole, whole_errors)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_streamed__same_records_and_skips_as_whole(tmp_path: Path, compress: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    body = (b"\xef\xbb\xbf" + b"\r\n".join(LINES[:200]) + b"\r\n\n   \n" +
            b"\n".join(LINES[200:]) + b"\n{not json\n" + b"y" * 3000 + b"\n" +
            b"z" * 200_000 + b"\n" + LINES[0])
    path = tmp_path / ("big.jsonl.gz" if compress else "big.jsonl")
    path.write_bytes(gzip.compress(body) if compress else body)
    streamed, whole = whole_and_streamed(path, 2048, monkeypatch)
    assert streamed == whole
    records, errors = streamed
    assert records[0] == LINES[0] and records[-1] == LINES[0] and len(records) == 402
    assert errors == [f"{path} line 404: record of 3,000 bytes is over --max-message-bytes "
                      "2048: not sent",
                      f"{path} line 405: record of 200,000 bytes is over --max-message-bytes "
                      "2048: not sent"]


@pytest.mark.parametrize("body", [
    orjson.dumps({"Records": [orjson.loads(line) for line in LINES]}),
    b"[\n" + b",\n".join(LINES) + b"\n]\n",
    LINES[0] + b"\n" + b" " * 5000,
], ids=["records-document", "pretty-array", "one-line-and-blanks"])
def test_documents__read_whole_as_before(tmp_path: Path, body: bytes,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(body)
    streamed, whole = whole_and_streamed(path, 2048, monkeypatch)
    assert streamed == whole and streamed[0]


def test_cut_gzip__lines_before_the_cut_are_sent_then_one_error(tmp_path: Path) -> None:
    """Read whole, a cut gzip this large was refused outright; streamed, its whole lines
    go (the worker's parser keeps them too, as replay does) and the cut is named."""
    data = gzip.compress(b"\n".join(LINES * 20))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    errors: list[str] = []
    records = list(read_records([str(path)], errors, 2048))
    assert 0 < len(records) < len(LINES) * 20
    assert records == (LINES * 20)[:len(records)]
    assert len(errors) == 1 and errors[0].startswith(f"{path}: gzip stream broke off")


@pytest.mark.parametrize("via", ["file", "stdin"])
def test_large_json_lines__bounded_memory(tmp_path: Path, via: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """64 MB of JSON lines, in a file or on stdin, is sent in 3 MB of traced memory (read
    whole, as stdin was until it was read as files are: 960 MB traced, 284 MB peak RSS)."""
    line = orjson.dumps({"eventID": "e", "eventName": "GetObject", "pad": "x" * 1000})
    path = tmp_path / "big.jsonl"
    with open(path, "wb") as handle:
        for _ in range(64):
            handle.write((line + b"\n") * 1000)
    errors: list[str] = []
    with open(path, "rb") as handle, monkeypatch.context() as patch:
        stdin_from(handle, patch)
        tracemalloc.start()
        try:
            count = sum(1 for _ in read_records(["-" if via == "stdin" else str(path)],
                                                errors, 900_000))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert count == 64_000 and errors == []
    assert peak < 16 * 1024 * 1024


def stdin_from(handle: Any, patch: pytest.MonkeyPatch) -> None:
    """Make ``handle`` the bytes of standard input (``sys.stdin.buffer``)."""
    patch.setattr("sys.stdin", type("Stdin", (), {"buffer": handle})())


# ---------------------------------------------------------------------------- stdin


def from_stdin(path: Path, max_bytes: int | None,
               monkeypatch: pytest.MonkeyPatch) -> tuple[list[bytes], list[str]]:
    """``read_records(["-"])`` with ``path`` as standard input; errors named as the file's
    would be, to compare them."""
    errors: list[str] = []
    with open(path, "rb") as handle, monkeypatch.context() as patch:
        stdin_from(handle, patch)
        records = [bytes(record) for record in read_records(["-"], errors, max_bytes)]
    return records, [error.replace("- ", f"{path} ", 1).replace("-: ", f"{path}: ", 1)
                     for error in errors]


def from_file(path: Path, max_bytes: int | None) -> tuple[list[bytes], list[str]]:
    errors: list[str] = []
    return [bytes(record) for record in read_records([str(path)], errors, max_bytes)], errors


NUL_LINE = b'{"eventID": "bad\x00"}'
STDIN_BODIES = {
    "small-lines": b"\n".join(LINES[:5]) + b"\n",
    "small-bad-line": LINES[0] + b"\n{cut\n" + LINES[1],
    "small-document": orjson.dumps({"Records": [orjson.loads(line) for line in LINES[:5]]}),
    "empty": b"",
    "large-lines": b"\xef\xbb\xbf" + b"\n".join(LINES) + b"\n" + b"y" * 3000 + b"\n",
    "large-lines-gzip": gzip.compress(b"\n".join(LINES) + b"\n"),
    "large-document": orjson.dumps({"Records": [orjson.loads(line) for line in LINES]}),
    "large-pretty-array": b"[\n" + b",\n".join(LINES) + b"\n]\n",
    # past the 64 KiB a streamed reader judges by: the rest read after what was kept
    "larger-document": orjson.dumps([orjson.loads(line) for line in LINES * 4]),
    "large-binary": bytes(range(256)) * 64,
    "large-nul-text": b"log start\x00\n" + b"\n".join(LINES),
    "large-lines-nul": b"\n".join([LINES[0], NUL_LINE, *LINES[1:]]),
    "large-array-nul": b"[" + b",\n".join([LINES[0], NUL_LINE, *LINES[1:]]) + b"]",
}


@pytest.mark.parametrize("max_bytes", [2048, None], ids=["limit", "no-limit"])
@pytest.mark.parametrize("name", sorted(STDIN_BODIES))
def test_stdin__same_records_and_errors_as_the_same_bytes_in_a_file(
        tmp_path: Path, name: str, max_bytes: int | None,
        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "input"
    path.write_bytes(STDIN_BODIES[name])
    assert from_stdin(path, max_bytes, monkeypatch) == from_file(path, max_bytes)


def test_stdin__large_binary_refused_with_its_counted_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "input"
    path.write_bytes(STDIN_BODIES["large-binary"])
    records, errors = from_stdin(path, 2048, monkeypatch)
    assert records == []
    assert errors == [f"{path}: binary file of 16,384 bytes cannot be split into records "
                      "and is over --max-message-bytes 2048 (reason=binary)"]


@pytest.mark.parametrize("name", ["large-lines-nul", "large-array-nul"])
def test_nul_in_one_record__the_others_sent_as_replay_reads_them(tmp_path: Path,
                                                                  name: str) -> None:
    """A NUL byte in one record of JSON that is too large for one message made produce
    refuse the whole file as binary (its rule older than the parser's), while replay
    read every other record: now the worker gets them all, and the NUL record is its one
    dead letter, as in replay."""
    from tests.streams.test_produce import _ct, message_of, replay_parse, worker_parse

    good = [_ct(i) for i in range(20)]
    body = b"\n".join([good[0], NUL_LINE, *good[1:]]) if name == "large-lines-nul" else \
        b"[" + b",\n".join([good[0], NUL_LINE, *good[1:]]) + b"]"
    path = tmp_path / "input.json"
    path.write_bytes(body)
    records, errors = from_file(path, 4096)
    assert errors == []
    events, reasons = worker_parse([message_of(batch, "lines") for batch in
                                    produce.batches(records, size=500, max_bytes=4096)])
    want_events, want_reasons = replay_parse(path)
    assert [event.event_id for event in events] == [event.event_id for event in want_events]
    assert len(events) == 20 and set(reasons) == set(want_reasons) == {"invalid_json"}


@pytest.mark.parametrize("name", ["large-lines", "large-lines-gzip", "larger-document"])
def test_stdin__nothing_kept_once_the_reader_goes_on_to_the_end(
        tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What was read to choose the reader (up to --max-message-bytes) is dropped once it
    is chosen, not held for the rest of the run."""
    handles: list[Any] = []

    class Recorded(produce._KeptStdin):
        def __init__(self, handle: Any) -> None:
            super().__init__(handle)
            handles.append(self)

    monkeypatch.setattr(produce, "_KeptStdin", Recorded)
    path = tmp_path / "in"
    path.write_bytes(STDIN_BODIES[name])
    with open(path, "rb") as handle, monkeypatch.context() as patch:
        stdin_from(handle, patch)
        records = iter(read_records(["-"], [], 2048))
        next(records)
        kept_at_first = sum(len(part) for part in handles[0]._kept)
        count = 1 + sum(1 for _ in records)
    assert (kept_at_first, handles[0].keep) == (0, False)
    assert count == len(from_file(path, 2048)[0])
