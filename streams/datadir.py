"""One data directory per worker, guarded by a lock file (B20).

Two workers on one RocksDB directory corrupt each other or die on RocksDB's own LOCK. The
worker takes an exclusive ``flock`` on ``<data_dir>/worker.lock`` before Faust opens any
store, writes its pid into it, and keeps it until the process exits (the kernel drops the
lock even after SIGKILL, so a crashed worker never blocks its successor). While another
live process holds it, the worker retries with backoff for ``wait`` seconds (a previous
instance may still be shutting down), then refuses to start with a clear message.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO

from detector.errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = "worker.lock"


class DataDirLock:
    """An exclusive lock on one worker data directory; ``release()`` or exit frees it."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self._handle: IO[str] | None = None

    def acquire(self, *, wait: float = 30.0, sleep=time.sleep,
                clock=time.monotonic) -> DataDirLock:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held until release
        except OSError as err:  # /proc/x, a read-only mount, no permission: one line, exit 2
            where = f" ({err.filename})" if err.filename else ""
            raise ConfigError(f"cannot use {self.data_dir} as the worker's data directory: "
                              f"{err.strerror or err}{where}; give a writable --state-dir"
                              ) from None
        delay, deadline = 0.5, clock() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder()
                left = deadline - clock()
                if left <= 0:  # the whole wait is used: the last pause is cut to what is left
                    handle.close()
                    raise ConfigError(
                        f"data directory {self.data_dir} is in use by another worker "
                        f"(pid {holder}); give each worker its own --worker-id or "
                        f"--state-dir") from None
                pause = min(delay, left)
                log.warning("data directory %s is locked by pid %s; retrying in %.1fs",
                            self.data_dir, holder, pause)
                sleep(pause)
                delay = min(delay * 2, 5.0)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


# sysexits' EX_IOERR: the worker stopped because its state store failed (streams.app)
STORE_EXIT_CODE = 74


def store_failure(store_dir: Path | str, action: str, err: BaseException) -> str:
    """One line for a state store that cannot be read or written: where, the OS error, and
    what happens to the messages.

    RocksDB reports an I/O failure as a plain ``Exception('IO error: While appending to
    file: <path>: Operation not permitted')``, opening a partition's database as an
    ``OSError``; either way it is the disk, not a record, that failed, so no message is
    dead-lettered: none is committed either, and the next owner reads them again. A store
    that cannot be opened at an assignment may be damaged rather than unwritable: RocksDB
    keeps only a copy of the changelog, so the line says it can be removed."""
    if isinstance(err, OSError) and err.strerror:
        where = f" ({err.filename})" if err.filename else ""
        error = f"{err.strerror}{where}"
    else:
        error = str(err) or type(err).__name__
    if action == "opened":
        # the store is only a copy of the changelog: a damaged one can go
        return (f"the state store in {store_dir} cannot be opened: {error}; nothing is read "
                f"or committed: make the directory writable, or, if the store is damaged, "
                f"remove the directory and the worker rebuilds it from the changelog")
    return (f"the state store in {store_dir} cannot be {action}: {error}; no message is "
            f"dead-lettered or committed, a restart (or the next owner) reads them again "
            f"once the directory is writable")
