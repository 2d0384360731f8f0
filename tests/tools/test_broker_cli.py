"""`python3 tools/kafka/broker.py` removes its work directory on exit unless asked not to."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "kafka" / "broker.py"
STOP_WAIT_S = 120


def _run_until_ready(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """Start the script with its temporary directory under ``tmp_path``; return it once it
    printed the bootstrap line (skip when no broker starts, unless NHI_REQUIRE_KAFKA=1)."""
    # only the jars: a broker given by KAFKA_BOOTSTRAP_SERVERS has no work directory
    env = {**os.environ, "TMPDIR": str(tmp_path), "NHI_KAFKA_SKIP": "env,testcontainers,tansu"}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    process = subprocess.Popen([sys.executable, str(SCRIPT), *extra], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    if not first.startswith("KAFKA_BOOTSTRAP_SERVERS="):
        out, err = process.communicate(timeout=STOP_WAIT_S)
        if os.environ.get("NHI_REQUIRE_KAFKA") == "1":
            pytest.fail(f"no broker started: {first}{out}{err}")
        pytest.skip(f"no broker from the jars: {err.strip()[-300:]}")
    return process, first


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=STOP_WAIT_S)
    assert process.returncode == 0
    return out


@pytest.mark.kafka
def test_broker_script__sigterm_removes_the_work_directory(tmp_path: Path) -> None:
    process, first = _run_until_ready(tmp_path)
    workdir = re.search(r"log (\S*/nhi-kafka-[^/]+)/", first).group(1)
    assert Path(workdir).parent == tmp_path
    assert Path(workdir).is_dir()
    out = _stop(process)
    assert out.strip().splitlines()[-2:] == ["broker stopped on SIGTERM",
                                             f"removed the work directory {workdir}"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.kafka
def test_broker_script__keep_workdir_keeps_data_and_log(tmp_path: Path) -> None:
    process, first = _run_until_ready(tmp_path, "--keep-workdir")
    workdir = Path(re.search(r"log (\S*/nhi-kafka-[^/]+)/", first).group(1))
    out = _stop(process)
    assert out.strip().splitlines()[-1] == f"kept the work directory {workdir}"
    assert (workdir / "apache-kafka" / "broker.log").stat().st_size > 0


def test_broker_script__no_broker_still_removes_the_work_directory(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path),
           "NHI_KAFKA_SKIP": "env,jars,testcontainers,tansu"}
    result = subprocess.run([sys.executable, str(SCRIPT)], env=env, text=True,
                            capture_output=True, timeout=STOP_WAIT_S)
    assert result.returncode == 1
    assert "no Kafka broker could be started" in result.stderr
    assert result.stdout.startswith("removed the work directory ")
    assert list(tmp_path.iterdir()) == []


def test_broker_script__help_says_the_directory_is_removed() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--help"], text=True,
                            capture_output=True, timeout=60)
    text = " ".join(result.stdout.split())
    assert "remove its work directory" in text
    assert "--keep-workdir" in text


def test_cluster_ids_never_look_like_an_option() -> None:
    """One random id in 64 starts with "-", which kafka-storage format refuses as a
    missing --cluster-id argument; 2,000 draws would meet about 31 of them."""
    from tests.streams.conftest import load_broker_helper

    ids = [load_broker_helper()._cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) for i in ids)
