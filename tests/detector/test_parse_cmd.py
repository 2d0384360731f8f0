"""``nhi-detector parse``: JSON lines on stdout, one summary line on stderr, exit 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from detector.cli import main

RECORD = {"eventTime": "2024-03-04T10:00:00Z", "eventSource": "iam.amazonaws.com",
          "eventName": "CreateAccessKey", "eventID": "ev-1", "awsRegion": "us-east-1",
          "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111111111111:user/ci",
                           "accountId": "111111111111", "accessKeyId": "AKIAEXAMPLE0000001"},
          "sourceIPAddress": "198.51.100.2", "userAgent": "Boto3/1.34.0"}


def write_inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.json").write_bytes(orjson.dumps({"Records": [RECORD]}))
    (folder / "b.jsonl").write_bytes(b'{"eventName": "x", "eventTime": "2024-03-04T10:00:00Z"'
                                     b', "eventSource": "s3.amazonaws.com", "userIdentity":'
                                     b' {"type": "Unknown"}, "eventID": "bad"}\n{oops\n')
    return folder


def test_prints_events_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_inputs(tmp_path)
    dead = tmp_path / "dead.jsonl"
    code = main(["parse", str(folder), "--dead-letters", str(dead)])
    out, err = capsys.readouterr()
    assert code == 0
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [line["event_id"] for line in lines] == ["ev-1"]
    assert lines[0]["identity"] == "arn:aws:iam::111111111111:user/ci"
    assert lines[0]["time"] == "2024-03-04T10:00:00Z"
    assert lines[0]["identity_kind"] == "workload"
    summary = err.strip().splitlines()[-1]
    assert summary.startswith("parse: files=2 records=3 events=1 dead_letters=2 skipped=0")
    assert "sources aws.cloudtrail=1" in summary
    assert "kinds workload=1" in summary
    assert "dead aws.cloudtrail/missing_identity=1,unknown/invalid_json=1" in summary
    assert summary.endswith("balanced=True")
    entries = [orjson.loads(line) for line in dead.read_bytes().splitlines()]
    assert [(e["reason"], e["origin"]) for e in entries] == [
        ("missing_identity", f"{folder}/b.jsonl:1"), ("invalid_json", f"{folder}/b.jsonl:2")]


def test_config_overrides_kind_and_owner(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_inputs(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("identities:\n  kinds:\n    - {match: '*:user/ci', kind: human, "
                      "reason: 'shared by the on-call team'}\n  owners:\n    '*:user/*': sec\n")
    assert main(["parse", str(folder / "a.json"), "--config", str(config)]) == 0
    [line] = [orjson.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (line["identity_kind"], line["kind_reason"], line["owner"]) == (
        "human", "shared by the on-call team", "sec")


def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("identities:\n  kinds:\n    - {match: x, kind: robot}\n")
    assert main(["parse", str(tmp_path), "--config", str(config)]) == 2
    assert "kind 'robot' is not one of" in capsys.readouterr().err


def test_stdin_and_forced_source(repo_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "detector", "parse", "-", "--source", "aws"],
        input=orjson.dumps(RECORD) + b"\n", capture_output=True, cwd=repo_dir, timeout=60,
        check=False)
    assert done.returncode == 0, done.stderr
    [line] = [orjson.loads(x) for x in done.stdout.splitlines()]
    assert line["action"] == "iam:CreateAccessKey"
    assert b"records=1 events=1" in done.stderr


def test_real_logs_end_to_end(real_logs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(real_logs)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) > 3400
    assert err.strip().splitlines()[-1].endswith("balanced=True")


def test_parse__missing_path_is_a_usage_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "no-such-dir"
    code = main(["parse", str(missing)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"no such file or directory: {missing}" in err
