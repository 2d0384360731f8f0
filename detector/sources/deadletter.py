"""Dead letters: records that could not become events, kept with the reason and position.

A ``DeadLetterSink`` receives ``write(reason, message, origin, raw, source)`` once per bad
record. ``origin`` names the position (``path:line 12``, ``path#Records[3]``,
``topic[2]@1234``); ``raw`` is the record's bytes or text when there is any, capped at
``MAX_RAW_BYTES`` with the full size and sha256 kept so a huge record can still be
identified (an input judged from its start, a ``Sample``, keeps its real size only).
Reasons are a fixed vocabulary (``REASONS``) so they can label metrics. An origin or
message holding bytes that are not UTF-8 (a Latin-1 file name) is written with
each such byte in backslash form, ``\\xe9``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import Any, Protocol

import orjson

from detector.errors import SinkError
from detector.jsonl import WholeLinesFile

logger = logging.getLogger(__name__)

MAX_RAW_BYTES = 64 * 1024

# reason -> the one message used for it (callers may add a short detail after a colon).
REASONS: dict[str, str] = {
    "invalid_json": "record is not valid JSON",
    "invalid_utf8": "record is not valid UTF-8",
    "truncated_gzip": "gzip stream ends early; the rest of the file is lost",
    "bad_gzip": "gzip stream is corrupt",
    "decompression_limit": "compressed input inflates beyond the size limit and was not "
                           "parsed",
    "binary": "input is binary, not JSON text",
    "bad_compression": "bzip2, xz or zstd stream is corrupt or cut short",
    "unsupported_compression": "input is compressed in a format this Python cannot read",
    "bad_encoding": "input's byte-order mark names an encoding its bytes do not follow",
    "empty_file": "input is empty",
    "oversized_record": "record exceeds the size limit and was not parsed",
    "oversized_field": "a field that identifies the record (identity, action, tenant, "
                       "credential) is longer than any real audit log writes",
    "missing_identity": "record has no usable identity",
    "missing_time": "record has no event time",
    "bad_time": "record has an event time that cannot be parsed or is not in 2000-2100",
    "future_time": "record's event time is more than a day after the reading machine's clock",
    "time_outlier": "record's event time is far from its stream's and the records after it "
                    "did not follow",
    "unknown_format": "record shape is not a supported audit-log format",
    "wrong_source": "record is of another supported format than the one forced (--source)",
    "truncated": "record was cut off in transport (JSON ends early)",
    "bad_base64": "Pub/Sub message data is not valid base64",
    "invalid_record": "record has the right shape but wrong field types",
    "read_error": "input cannot be read",
    "internal_error": "parser failed on this record (a bug; please report it)",
}


class DeadLetterSink(Protocol):
    """Where bad records go. Implementations must not raise for a single bad record."""

    def write(self, reason: str, message: str, origin: str, raw: bytes | str | None,
              source: str) -> None: ...


def dead_letter_dict(reason: str, message: str, origin: str, raw: bytes | str | None,
                     source: str) -> dict[str, Any]:
    """The JSON-ready form of one dead letter (used by the file and Kafka sinks)."""
    entry: dict[str, Any] = {"reason": reason, "message": printable(message),
                             "origin": printable(origin), "source": source}
    if raw is None:
        return entry
    data = _encode(raw) if isinstance(raw, str) else bytes(raw)
    if type(raw) is Sample:  # the start of an input too large to keep: its real size
        entry["raw_size"] = raw.size
        entry["raw_truncated"] = raw.size > len(data)
        entry["raw"] = data[:MAX_RAW_BYTES].decode("utf-8", "replace")
        return entry
    entry["raw_size"] = len(data)
    if len(data) > MAX_RAW_BYTES:
        entry["raw_sha256"] = hashlib.sha256(data).hexdigest()
        entry["raw_truncated"] = True
        data = data[:MAX_RAW_BYTES]
    entry["raw"] = data.decode("utf-8", "replace")
    return entry


class Sample(bytes):
    """The first bytes of an input, standing for all of it in a dead letter: ``raw_size``
    says the input's real ``size`` (a 2 GB binary file is judged from its start and never
    held whole). No ``raw_sha256``: the input is named by its origin, and hashing what was
    never read would cost a pass over all of it."""

    size: int

    @classmethod
    def of(cls, data: bytes, keep: int, size: int | None = None) -> Sample:
        """The first ``keep`` bytes of ``data``, for an input of ``size`` bytes (by
        default ``len(data)``)."""
        sample = cls(data[:keep])
        sample.size = len(data) if size is None else size
        return sample


def printable(text: str) -> str:
    """``text`` as valid UTF-8 for JSON: a file name that is not UTF-8 reaches here with its
    bad bytes as surrogates (``surrogateescape``), which orjson refuses; each such byte is
    written in backslash form (``\\xff``), so the name stays recognisable. Valid text is
    returned as it is, at the cost of one scan."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _encode(text).decode("utf-8", "backslashreplace")
    return text


def _encode(text: str) -> bytes:
    """The original bytes of text decoded with ``surrogateescape``; never raises."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that no byte produced
        return text.encode("utf-8", "replace")


class ListDeadLetters:
    """Keeps dead letters in memory as dicts (tests, small tools)."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def write(self, reason: str, message: str, origin: str, raw: bytes | str | None,
              source: str) -> None:
        self.items.append(dead_letter_dict(reason, message, origin, raw, source))

    def reasons(self) -> list[str]:
        return [item["reason"] for item in self.items]

    def __len__(self) -> int:
        return len(self.items)


class JsonlDeadLetters:
    """Appends dead letters to a JSON-lines file, one object per line; opened lazily."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.count = 0
        self._handle: Any = None
        self._lock = threading.Lock()

    def write(self, reason: str, message: str, origin: str, raw: bytes | str | None,
              source: str) -> None:
        line = orjson.dumps(dead_letter_dict(reason, message, origin, raw, source)) + b"\n"
        with self._lock:
            if self._handle is None:
                self._handle = self._open()
            self._handle.write(line)
            self.count += 1

    def _open(self) -> Any:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return WholeLinesFile(self.path, append=True)  # never a torn last line
        except OSError as err:
            raise SinkError(f"cannot open dead-letter file {self.path}: {err.strerror}") from err

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def __enter__(self) -> JsonlDeadLetters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullDeadLetters:
    """Discards dead letters (they are still counted in RunStats)."""

    def write(self, reason: str, message: str, origin: str, raw: bytes | str | None,
              source: str) -> None:
        return None
