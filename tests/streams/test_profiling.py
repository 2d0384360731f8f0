"""The worker's sampling profiler (``NHI_WORKER_PROFILE``) and the split it prints."""

from __future__ import annotations

import time
from pathlib import Path

from streams import profiling


def test_part_of__innermost_known_frame_names_the_part() -> None:
    stack = ["/x/streams/app.py:detect", "/x/streams/pipeline.py:apply",
             "/x/detector/engine.py:process", "/x/models/profile.py:observe"]
    assert profiling.part_of(stack) == "detector core"
    assert profiling.part_of(stack[:2]) == "worker glue (ours)"
    table = stack[:1] + ["/v/site-packages/faust/tables/table.py:on_key_set"]
    assert profiling.part_of(table) == "table and changelog"
    assert profiling.part_of(["/usr/lib/python3.11/asyncio/events.py:_run"]) == \
        "other (asyncio, stdlib)"


def test_part_of__a_thread_waiting_in_select_is_idle() -> None:
    stack = ["/x/streams/worker.py:_run_faust", "/usr/lib/python3.11/selectors.py:select"]
    assert profiling.part_of(stack) == "idle"


def test_profiled__writes_folded_stacks_of_the_busy_thread(tmp_path: Path,
                                                           monkeypatch) -> None:
    target = tmp_path / "w.prof"
    monkeypatch.setenv(profiling.ENV, str(target))
    with profiling.profiled():
        until = time.process_time() + 0.3
        while time.process_time() < until:
            sum(range(1000))
    lines = target.read_text(encoding="utf-8").splitlines()
    threads = profiling.split(lines)
    assert sum(threads["MainThread"].values()) > 0
    assert "test_profiling.py" in "\n".join(lines)
    assert "MainThread" in profiling.report(str(target))


def test_profiled__does_nothing_when_the_variable_is_unset(tmp_path: Path,
                                                           monkeypatch) -> None:
    monkeypatch.delenv(profiling.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    with profiling.profiled():
        pass
    assert list(tmp_path.iterdir()) == []
