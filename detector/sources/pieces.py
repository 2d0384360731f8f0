"""A binary stream read in bounded pieces: its start to judge it by, then lines or blocks.

``Parser.feed_stream`` reads large files and stdin through this, so that what a stream
costs in memory is bounded by the parser's limits (a line over the record limit is
counted and dropped as it streams past, a payload is only held whole up to the payload
limit) rather than by the stream's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

HEAD_BYTES = 64 * 1024
BLOCK_BYTES = 1024 * 1024
# Enough whole lines to judge the format by (the first line and the five that
# ``Parser._looks_like_json_lines`` probes), so a slow pipe is judged without waiting for
# the whole head.
_HEAD_LINES = 6
_HEAD_MIN = 8192
_KEPT = 1024  # bytes kept of a line over the limit, for its dead letter


class Pieces:
    """One stream, read once: ``head`` (up to ``HEAD_BYTES``), then ``lines``, ``rest``
    or ``size`` for what follows (only one of them)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._read = getattr(handle, "read1", handle.read)  # what is there, not a full block
        parts: list[bytes] = []
        length = newlines = 0
        while length < HEAD_BYTES:
            block = self._read(HEAD_BYTES - length)
            if not block:
                break
            parts.append(block)
            length += len(block)
            newlines += block.count(b"\n")
            if newlines >= _HEAD_LINES and length >= _HEAD_MIN:
                break
        self.head = b"".join(parts)
        self.whole = not parts or length < HEAD_BYTES and not block
        self.read_bytes = length  # bytes taken from the stream so far
        self.newlines = 0  # line ends passed by ``lines`` (not in the lines it yields)

    def _blocks(self) -> Iterator[bytes]:
        yield self.head
        if self.whole:
            return
        while block := self._read(BLOCK_BYTES):
            self.read_bytes += len(block)
            yield block

    def lines(self, limit: int) -> Iterator[tuple[int, bytes, int]]:
        """``(number, line, length)`` for each line, without its line end. A line longer
        than ``limit`` is not held: ``line`` is its first ``_KEPT`` bytes and ``length``
        its real length, read past block by block."""
        number = dropping = 0
        carry, kept = b"", b""
        for block in self._blocks():
            parts = block.split(b"\n")
            last = parts.pop()
            self.newlines += len(parts)
            for part in parts:
                number += 1
                if dropping:
                    yield number, kept, dropping + len(part)
                    dropping = 0
                    continue
                if carry:
                    part, carry = carry + part, b""
                yield number, part, len(part)
            if dropping:
                dropping += len(last)
                continue
            carry += last
            if len(carry) > limit:
                kept, dropping, carry = carry[:_KEPT], len(carry), b""
        if dropping:
            yield number + 1, kept, dropping
        elif carry:
            yield number + 1, carry, len(carry)

    def rest(self, limit: int, size: int | None = None) -> bytes | None:
        """The whole stream (head included) when it holds at most ``limit`` bytes, else
        ``None`` (what is left is then read and dropped, so ``size`` can count it). A
        file of known ``size`` is read again from its start in one piece."""
        if self.whole:
            return self.head if len(self.head) <= limit else None
        if size is not None and size > limit:
            return None
        if size is not None and self._handle.seekable():
            self._handle.seek(0)
            data = self._handle.read()
            self.read_bytes = len(data)
            return data
        parts, length = [self.head], len(self.head)
        while length <= limit and (block := self._read(BLOCK_BYTES)):
            parts.append(block)
            length += len(block)
            self.read_bytes += len(block)
        if length > limit:
            return None
        return b"".join(parts)

    def size(self, known: int | None) -> int:
        """The stream's size: ``known`` when given, else counted by reading the rest."""
        if known is not None:
            return known
        while block := self._read(BLOCK_BYTES):
            self.read_bytes += len(block)
        return self.read_bytes
