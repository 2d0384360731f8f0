"""A JSON-lines output file that never ends in a torn line.

Alerts and dead letters are read by other programs while they are written (a SIEM
forwarder tailing ``--alerts``, ``jq`` over ``--dead-letters``). Through a plain buffered
file, a full disk or a quota left the last line cut where the write stopped: the reader
then fails on a line that is no JSON at all, after the run has already said why it
stopped. ``WholeLinesFile`` buffers whole lines and, when a write fails, cuts the file back
to the end of the last line written in full before it raises, so the file holds whole
lines only, whatever stopped it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Self

FLUSH_BYTES = 8 * 1024
"""Lines are written in blocks of about this size (what ``open``'s buffer did), so a reader
tailing the file sees them about as soon as before."""


def _last_byte(path: str | Path) -> bytes:
    """The file's last byte (b"" when it cannot be read: then nothing is added)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1)
    except OSError:
        return b""


class WholeLinesFile:
    """A binary file written line by line; ``write`` takes whole lines (ending in ``\\n``).

    ``append``: keep what the file holds (dead letters accumulate over runs); otherwise it
    is emptied first. Only the caller's own lines are ever cut back, never earlier bytes.
    The errors are ``OSError``, as a file's.
    """

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if append
                                                          else os.O_TRUNC)
        self.name = str(path)
        self._fd: int | None = os.open(path, flags, 0o666)
        try:
            self._seekable = True
            end = os.lseek(self._fd, 0, os.SEEK_END)
        except OSError:  # a named pipe or a terminal: nothing to cut back, lines go as made
            self._seekable, end = False, 0
        self._pending: list[bytes] = []
        self._size = 0
        if append and end and self._seekable and _last_byte(path) not in (b"\n", b""):
            # an earlier writer's torn last line: end it, so the first line of this run
            # is not glued to it
            self._pending.append(b"\n")

    def write(self, line: bytes) -> int:
        if self._fd is None:
            raise ValueError("write to a closed file")
        self._pending.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        return len(line)

    def flush(self) -> None:
        """Write the buffered lines; on failure cut the file back to whole lines, raise."""
        if self._fd is None or not self._pending:
            return
        block = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        done = 0
        try:
            while done < len(block):
                done += os.write(self._fd, block[done:])
        except OSError:
            torn = done - (block.rfind(b"\n", 0, done) + 1)  # bytes of an unfinished line
            if torn and self._seekable:
                self._cut_back(torn)
            raise

    def _cut_back(self, torn: int) -> None:
        """Drop the ``torn`` bytes of a line the failed write left at the file's end.

        Only when they are still the file's last bytes: another run appending to the same
        file (dead letters) may have written after them, and cutting to this writer's idea
        of the end would delete its lines. Best effort: a file that cannot be truncated
        keeps them, and the caller's error still says why."""
        try:
            here = os.lseek(self._fd, 0, os.SEEK_CUR)  # just after this writer's bytes
            if os.fstat(self._fd).st_size == here:
                os.ftruncate(self._fd, here - torn)
                os.lseek(self._fd, here - torn, os.SEEK_SET)
        except OSError:
            pass

    def close(self) -> None:
        """Flush and close; closed even when the flush fails (the error is raised)."""
        if self._fd is None:
            return
        try:
            self.flush()
        finally:
            fd, self._fd = self._fd, None
            self._pending.clear()
            os.close(fd)

    def fileno(self) -> int:
        if self._fd is None:
            raise ValueError("closed file")
        return self._fd

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
