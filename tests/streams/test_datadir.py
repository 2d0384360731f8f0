"""B20: one data directory per worker, refused to a second process while held."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from detector.errors import ConfigError
from streams.datadir import DataDirLock


def test_lock__second_holder_is_refused_with_the_first_pid(tmp_path) -> None:
    first = DataDirLock(tmp_path / "w1").acquire(wait=0)
    sleeps: list[float] = []
    now = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    try:
        with pytest.raises(ConfigError, match=f"in use by another worker \\(pid {os.getpid()}\\)"):
            DataDirLock(tmp_path / "w1").acquire(wait=5.0, sleep=sleep, clock=lambda: now[0])
    finally:
        first.release()
    # backed off, growing, and the whole wait used: the last pause is cut to what is left
    assert sleeps == [0.5, 1.0, 2.0, 1.5]


def test_lock__free_again_after_release(tmp_path) -> None:
    DataDirLock(tmp_path / "w1").acquire(wait=0).release()
    again = DataDirLock(tmp_path / "w1").acquire(wait=0)
    assert (tmp_path / "w1" / "worker.lock").read_text().strip() == str(os.getpid())
    again.release()


def test_lock__a_killed_holder_never_blocks_its_successor(tmp_path) -> None:
    code = textwrap.dedent(f"""
        import os, signal
        from streams.datadir import DataDirLock
        DataDirLock({str(tmp_path / 'w1')!r}).acquire(wait=0)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert done.returncode == -9
    DataDirLock(tmp_path / "w1").acquire(wait=0).release()


def test_lock__different_directories_do_not_conflict(tmp_path) -> None:
    a = DataDirLock(tmp_path / "a").acquire(wait=0)
    b = DataDirLock(tmp_path / "b").acquire(wait=0)
    assert a.path != b.path
    a.release()
    b.release()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_lock__a_directory_that_cannot_be_made_is_one_config_error() -> None:
    # /proc takes no new directories, not even from root, whom os.access lets through
    with pytest.raises(ConfigError) as raised:
        DataDirLock("/proc/nhi-detector-state").acquire(wait=0)
    assert str(raised.value).startswith(
        "cannot use /proc/nhi-detector-state as the worker's data directory: No such file or "
        "directory (/proc/nhi-detector-state); give a writable --state-dir")
