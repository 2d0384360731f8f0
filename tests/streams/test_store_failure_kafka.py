"""A state store that stops taking writes mid-stream: the worker stops with one line and
exit 74, dead-letters nothing, and a restart on a writable store applies every event.

The store is made unwritable the way an operator found it in a trial: ``chattr +i`` on the
RocksDB directory (as root, ``chmod`` does not stop writes). Where chattr cannot be used
(not root, or a file system without the flag) the test is skipped; docs/worker.md
("State store failures") describes the same behaviour.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.streams import scenario
from tests.streams.kafka_helpers import (
    WorkerProcess,
    accounted_ids,
    create_topic,
    framed_batches,
    free_port,
    produce,
    read_topic,
    start_worker,
    worker_args,
)

pytestmark = pytest.mark.kafka


def chattr(flag: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["chattr", "-R", flag, str(path)], capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[list[Path]]:
    """Paths made immutable by the test; always made writable again afterwards."""
    made: list[Path] = []
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        tried = chattr("+i", probe)
    except FileNotFoundError:
        pytest.skip("chattr is not installed")
    if tried.returncode != 0:
        pytest.skip(f"chattr +i is not possible here: {tried.stderr.strip()}")
    made.append(probe)
    try:
        yield made
    finally:
        for path in made:
            chattr("-i", path)


def _started_on_first_part(bootstrap: str, story: scenario.Scenario, tmp_path: Path,
                           app_id: str, parts: int
                           ) -> tuple[list[str], WorkerProcess, list[bytes], int]:
    """A RocksDB worker started on the first ``1/parts`` of the story's batches and ready
    once it applied them: its arguments, the running worker, the batches, the cut."""
    create_topic(bootstrap, f"{app_id}.raw")
    payloads = framed_batches(story.records, 5)
    cut = len(payloads) // parts
    produce(bootstrap, f"{app_id}.raw", payloads[:cut])
    args = worker_args(bootstrap, app_id, tmp_path / "state", free_port(), "--store", "rocksdb")
    worker = start_worker(args, tmp_path / "worker1.log")
    try:
        worker.wait_ready()
        accounted_ids(bootstrap, app_id, set(story.event_ids[:cut * 5]), timeout=120)
    except BaseException:
        worker.stop(signal.SIGKILL)
        raise
    return args, worker, payloads, cut


def _the_one_stop_line(code: int | None, worker: WorkerProcess, log_path: Path) -> str:
    """The worker stopped with exit 74, no traceback and exactly one stop line: that line."""
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert code == 74, worker.log_tail()
    assert "Traceback" not in log, worker.log_tail()
    stops = [line for line in log.splitlines() if "stopping the worker" in line]
    assert len(stops) == 1, log
    return stops[0]


def test_unwritable_store__stops_with_one_line_and_dead_letters_nothing(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path,
        immutable: list[Path]) -> None:
    app_id = "store-fails"
    args, worker, payloads, cut = _started_on_first_part(kafka_bootstrap, story, tmp_path,
                                                         app_id, 3)
    try:
        store = tmp_path / "state" / "w1" / app_id
        assert chattr("+i", store).returncode == 0
        immutable.append(store)
        produce(kafka_bootstrap, f"{app_id}.raw", payloads[cut:])
        code = worker.exit_code(timeout=120)
    finally:
        worker.stop(signal.SIGKILL)
    stop = _the_one_stop_line(code, worker, tmp_path / "worker1.log")
    assert f"(exit 74, nothing more is committed): the state store in {store} cannot be " \
           f"written: IO error" in stop
    assert "Operation not permitted" in stop
    dead = [orjson.loads(m.value) for m in read_topic(kafka_bootstrap, f"{app_id}.dlq",
                                                      timeout=5)]
    assert dead == []

    chattr("-i", store)
    again = start_worker(args, tmp_path / "worker2.log")
    try:
        again.wait_ready()
        accounted = accounted_ids(kafka_bootstrap, app_id, set(story.event_ids), timeout=180)
    finally:
        assert again.stop(signal.SIGTERM, timeout=90) == 0, again.log_tail()
    assert set(story.event_ids) <= accounted


def test_damaged_store_at_start__exit_74_then_rebuilt_from_the_changelog(
        kafka_bootstrap: str, story: scenario.Scenario, tmp_path: Path) -> None:
    """A RocksDB store that cannot be opened when the worker starts (here its CURRENT file
    overwritten): one line and exit 74, no traceback and no crash loop with exit 1; with
    the directory removed, the next start rebuilds every identity's state from the
    changelog (no baseline is learned again) and applies the rest."""
    import shutil

    from tests.streams.kafka_helpers import latest_inventory

    app_id = "store-damaged"
    args, first, payloads, cut = _started_on_first_part(kafka_bootstrap, story, tmp_path,
                                                        app_id, 2)
    assert first.stop(signal.SIGTERM, timeout=90) == 0, first.log_tail()
    store = tmp_path / "state" / "w1" / app_id
    damaged = sorted(store.rglob("CURRENT"))
    assert damaged
    for path in damaged:
        path.write_text("not a manifest name\n", encoding="utf-8")

    broken = start_worker(args, tmp_path / "worker2.log")
    stop = _the_one_stop_line(broken.exit_code(timeout=120), broken,
                              tmp_path / "worker2.log")
    assert (f"(exit 74, nothing more is committed): the state store in {store} cannot be "
            f"opened: Corruption") in stop
    assert "remove the directory and the worker rebuilds it from the changelog" in stop

    shutil.rmtree(store)
    produce(kafka_bootstrap, f"{app_id}.raw", payloads[cut:])
    rebuilt = start_worker(args, tmp_path / "worker3.log")
    try:
        rebuilt.wait_ready()
        accounted = accounted_ids(kafka_bootstrap, app_id, set(story.event_ids), timeout=180)
        # each identity counts every event once: the first half from the recovered state
        inventory = latest_inventory(kafka_bootstrap, app_id, story)
    finally:
        assert rebuilt.stop(signal.SIGTERM, timeout=90) == 0, rebuilt.log_tail()
    assert set(story.event_ids) <= accounted, rebuilt.log_tail(120)
    want = {scenario.role_arn(role): len(story.records_of(role)) for role in scenario.ROLES}
    assert {arn: inventory.get(arn, {}).get("events") for arn in want} == want
