"""Replay outputs never destroy what they are pointed at by mistake.

Found by attacking ``nhi-detector replay``: ``--alerts`` naming a log emptied it before it
was read, ``--report`` naming the labels file replaced it, ``--summary-json /dev/stdout``
(or a pipe, or a symbolic link) was replaced by a plain file, a file named twice was read
twice, and a folder that is a file was reported as "File exists".
"""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import orjson
import pytest

from detector.errors import SinkError
from detector.replay import (
    INPUT_OPTIONS,
    OUTPUT_FILES,
    add_arguments,
    flag,
    own_files,
    write_atomic,
)
from tests.replay.logs import run_replay

GCP_RECORD = {
    "insertId": "id-0",
    "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
    "protoPayload": {
        "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
        "authenticationInfo": {"principalEmail": "etl@p1.iam.gserviceaccount.com"},
        "methodName": "storage.objects.get",
        "serviceName": "storage.googleapis.com",
        "resourceName": "projects/_/buckets/b1/objects/o1",
        "requestMetadata": {"callerIp": "198.51.100.7",
                            "callerSuppliedUserAgent": "gcloud/460.0.0"},
    },
    "resource": {"type": "gcs_bucket", "labels": {"project_id": "p1"}},
    "timestamp": "2024-03-04T10:00:00Z",
}


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    """Five GCP records, a format the parser has no duplicate check for."""
    lines = []
    for n in range(5):
        record = {**GCP_RECORD, "insertId": f"id-{n}", "timestamp": f"2024-03-04T10:0{n}:00Z"}
        lines.append(orjson.dumps(record) + b"\n")
    path = tmp_path / "logs" / "gcp.jsonl"
    path.parent.mkdir()
    path.write_bytes(b"".join(lines))
    return path


def test_alerts_naming_the_log__exit_2_and_the_log_is_intact(log_file, tmp_path, capsys):
    before = log_file.read_bytes()
    code = run_replay([log_file], tmp_path, "--alerts", str(log_file))[0]
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: --alerts {log_file} is the same file as the input "
        f"{log_file}: writing it would destroy it; name another file"
    )
    assert log_file.read_bytes() == before


def test_report_naming_the_labels_file__exit_2_and_labels_intact(log_file, tmp_path,
                                                                 capsys):
    labels = tmp_path / "labels.json"
    labels.write_bytes(b'{"version": 1, "scenarios": []}')
    link = tmp_path / "labels-link.json"
    link.symlink_to(labels)
    code = run_replay([log_file], tmp_path, "--labels", str(labels), "--report", str(link))[0]
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: --report {link} is the same file as --labels {labels}: "
        "writing it would destroy it; name another file"
    )
    assert labels.read_bytes() == b'{"version": 1, "scenarios": []}'


def test_two_outputs_naming_one_new_file__exit_2(log_file, tmp_path, capsys):
    out = tmp_path / "out.json"
    code = run_replay([log_file], tmp_path, "--inventory", str(out), "--report", str(out))[0]
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: --report {out} is the same file as --inventory {out}: "
        "writing it would destroy it; name another file"
    )
    assert not out.exists()


def replay_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser


def test_file_options__all_in_the_one_table():
    """The options that name a file are listed once (``INPUT_OPTIONS``, ``OUTPUT_FILES``)
    for every check made of them; an option left out would be checked by none."""
    options = {action.dest for action in replay_parser()._actions if action.metavar == "FILE"}
    assert options == set(INPUT_OPTIONS) | {output.name for output in OUTPUT_FILES}


def test_file_options__never_read_as_logs(tmp_path):
    names = INPUT_OPTIONS + tuple(output.name for output in OUTPUT_FILES)
    argv = [str(tmp_path)] + [part for name in names
                              for part in (flag(name), str(tmp_path / name))]
    assert own_files(replay_parser().parse_args(argv)) == [str(tmp_path / name)
                                                           for name in names]


@pytest.mark.parametrize("output", OUTPUT_FILES, ids=lambda output: output.name)
def test_each_output_naming_the_log__exit_2(log_file, tmp_path, capsys, output):
    before = log_file.read_bytes()
    code = run_replay([log_file], tmp_path, flag(output.name), str(log_file))[0]
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: {flag(output.name)} {log_file} is the same file as the input "
        f"{log_file}: writing it would destroy it; name another file"
    )
    assert log_file.read_bytes() == before


@pytest.mark.parametrize("output", OUTPUT_FILES, ids=lambda output: output.name)
def test_each_output_naming_a_folder__exit_2(log_file, tmp_path, capsys, output):
    folder = tmp_path / "folder"
    folder.mkdir()
    code = run_replay([log_file], tmp_path, flag(output.name), str(folder))[0]
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: cannot write {output.what} {folder}: Is a directory")


def test_save_state_over_the_loaded_snapshot__still_allowed(log_file, tmp_path):
    state = tmp_path / "state.snap"
    assert run_replay([log_file], tmp_path, "--save-state", str(state))[0] == 0
    first = state.read_bytes()
    code = run_replay([log_file], tmp_path, "--load-state", str(state),
                      "--save-state", str(state))[0]
    assert code == 0
    assert state.read_bytes()[:7] == b"NHISNAP" and state.read_bytes() != first


def test_file_named_twice__read_once(log_file, tmp_path):
    once = run_replay([log_file], tmp_path)[1]["events"]["total"]
    twice = run_replay([log_file, log_file.parent, Path(f"{log_file.parent}/./gcp.jsonl")],
                       tmp_path)[1]
    assert once == 5
    assert twice["events"]["total"] == 5
    assert twice["dead_letters"] == {} and twice["skipped"] == {}


def test_write_atomic__symbolic_link_stays_a_link(tmp_path):
    target = tmp_path / "real.json"
    target.write_bytes(b"old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_atomic(link, b"new")
    assert link.is_symlink()
    assert target.read_bytes() == b"new"


def test_write_atomic__a_pipe_is_written_into_not_replaced(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    reader = os.open(pipe, os.O_RDONLY | os.O_NONBLOCK)  # a reader, as `>(gzip)` has
    try:
        write_atomic(pipe, b'{"events": 5}')
        assert stat.S_ISFIFO(os.stat(pipe).st_mode)
        assert os.read(reader, 100) == b'{"events": 5}'
    finally:
        os.close(reader)


def test_write_atomic__folder_that_is_a_file__says_so(tmp_path):
    (tmp_path / "afile").write_bytes(b"x")
    with pytest.raises(SinkError) as caught:
        write_atomic(tmp_path / "afile" / "state.snap", b"data")
    assert str(caught.value) == (
        f"cannot write {tmp_path}/afile/state.snap: {tmp_path}/afile is not a directory"
    )


@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_dead_letters_that_cannot_be_written__refused_before_reading(log_file, tmp_path,
                                                                     capsys, where):
    """The file is opened at the first bad record; a clean run used to pass with a path
    that could never be written, and a later run failed at its first bad record."""
    (tmp_path / "afile").write_bytes(b"x")
    path = tmp_path / "afile" / "dead.jsonl" if where == "under a file" else tmp_path
    reason = f"{tmp_path}/afile is not a directory" if where == "under a file" else \
        "Is a directory"
    code, summary = run_replay([log_file], tmp_path, "--dead-letters", str(path))
    assert code == 2  # a bad argument, found before anything is read
    assert capsys.readouterr().err == (
        f"nhi-detector replay: cannot write dead-letter file {path}: {reason}\n"
    )
    assert summary == {}


@pytest.mark.parametrize(("option", "what"), [
    ("--report", "report"), ("--save-state", "state snapshot"), ("--inventory", "inventory"),
])
def test_late_output_naming_a_folder__refused_before_reading(log_file, tmp_path, capsys,
                                                             option, what):
    """Written after the whole replay, such an output used to fail only at the end."""
    folder = tmp_path / "out"
    folder.mkdir()
    code, summary = run_replay([log_file], tmp_path, option, str(folder))
    assert code == 2
    assert capsys.readouterr().err == (
        f"nhi-detector replay: cannot write {what} {folder}: Is a directory\n"
    )
    assert summary == {}


def test_alerts_to_dev_stdout_redirected_to_a_file_lose_nothing(tmp_path):
    """``--alerts /dev/stdout > file`` opened the file a second time with its own offset,
    so the summary written through stdout overwrote the first alert."""
    import subprocess
    import sys

    record = {
        "eventVersion": "1.08", "eventTime": "2024-03-04T10:00:00Z",
        "eventSource": "cloudtrail.amazonaws.com", "eventName": "StopLogging",
        "awsRegion": "us-east-1", "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15.0", "eventID": "e-1", "eventType": "AwsApiCall",
        "recipientAccountId": "111122223333",
        "requestParameters": {"name": "arn:aws:cloudtrail:us-east-1:111122223333:trail/t"},
        "userIdentity": {"type": "IAMUser", "userName": "ops", "accountId": "111122223333",
                         "arn": "arn:aws:iam::111122223333:user/ops",
                         "accessKeyId": "AKIAEXAMPLEEXAMPLE01"},
    }
    log = tmp_path / "trail.json"
    log.write_bytes(orjson.dumps({"Records": [record]}))
    out = tmp_path / "out.jsonl"
    with out.open("wb") as handle:
        done = subprocess.run([sys.executable, "-m", "detector.cli", "replay", str(log),
                               "--alerts", "/dev/stdout"], stdout=handle,
                              stderr=subprocess.PIPE, check=False)
    assert done.returncode == 0, done.stderr
    lines = out.read_bytes().splitlines()
    alerts = [orjson.loads(line) for line in lines]
    assert len(alerts) == 1
    assert alerts[0]["identity"]["key"].endswith("user/ops")
    assert b"Events per source" in done.stderr  # the summary went to stderr instead


@pytest.mark.parametrize("option", ["--report", "--alerts", "--save-state", "--inventory",
                                    "--summary-json"])
def test_output_naming_a_log_inside_an_input_folder__exit_2_and_the_log_is_intact(
        log_file, tmp_path, capsys, option):
    # only paths named on the command line were checked: a log found by walking the folder
    # was overwritten (a report replaced it with HTML) and the run said nothing, exit 0
    from detector.cli import main

    before = log_file.read_bytes()
    folder = log_file.parent
    assert main(["replay", str(folder), "--no-progress", option, str(log_file)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: {option} {log_file} is a file under the input folder "
        f"{folder}: the replay reads it as a log, and writing it would destroy it; name a "
        f"file outside the input folders")
    assert log_file.read_bytes() == before


def test_outputs_of_an_earlier_run_inside_the_input_folder__written_again(log_file,
                                                                         tmp_path):
    # a folder of logs often holds the last run's outputs: those are not logs to keep
    folder = log_file.parent
    outputs = {"--alerts": "alerts.jsonl", "--summary-json": "summary.json",
               "--inventory": "inventory.jsonl", "--report": "report.html",
               "--dead-letters": "dead.jsonl", "--save-state": "state.snap"}
    argv = [a for option, name in outputs.items() for a in (option, str(folder / name))]
    from detector.cli import main

    for run in (1, 2):
        assert main(["replay", str(folder), "--no-progress", *argv]) == 0, run
        inventory = (folder / "inventory.jsonl").read_bytes()
        assert inventory.count(b"\n") == 1  # the one GCP identity, not read back as a log
    summary = orjson.loads((folder / "summary.json").read_bytes())
    assert summary["events"]["total"] == 5


def test_metrics_port_in_use__exit_2_before_any_output_is_touched(log_file, tmp_path,
                                                                  capsys):
    import socket

    from detector.cli import main

    alerts = tmp_path / "alerts.jsonl"
    alerts.write_bytes(b"last run's alerts\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["replay", str(log_file), "--alerts", str(alerts), "--no-progress",
                     "--metrics-port", str(port)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"nhi-detector replay: cannot serve metrics on port {port}: ")
    assert alerts.read_bytes() == b"last run's alerts\n"


@pytest.mark.parametrize("name", [*INPUT_OPTIONS, *(output.name for output in OUTPUT_FILES)])
def test_empty_path_for_a_file_option__exit_2_naming_it(log_file, tmp_path, capsys, name):
    # --load-state "" started cold and --save-state "" saved nothing, both with exit 0
    from detector.cli import main

    code = main(["replay", str(log_file), "--no-progress", flag(name), ""])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: {flag(name)} was given an empty path: name a file (an unset "
        f"variable in a script?)")


def test_output_through_a_link_to_an_unwritable_place__exit_2_before_the_run(log_file,
                                                                             tmp_path,
                                                                             capsys):
    # the check looked at the link's folder, so the whole replay ran and then failed
    from detector.cli import main

    blocker = tmp_path / "afile"
    blocker.write_text("a file where a folder would be")
    link = tmp_path / "report.html"
    link.symlink_to(blocker / "report.html")
    code = main(["replay", str(log_file), "--no-progress", "--report", str(link)])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: cannot write report {link}: {blocker} is not a directory")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_one_output_failing__the_others_still_written_then_exit_1(log_file, tmp_path, capsys):
    # a full disk under the snapshot cost the inventory, the report and the summary too
    from detector.cli import main

    report, summary_path, inventory = (tmp_path / "r.html", tmp_path / "s.json",
                                       tmp_path / "inv.jsonl")
    code = main(["replay", str(log_file), "--no-progress", "--save-state", "/dev/full",
                 "--inventory", str(inventory), "--report", str(report), "--summary-json",
                 str(summary_path)])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "nhi-detector replay: cannot write /dev/full: No space left on device"
    summary = orjson.loads(summary_path.read_bytes())
    assert summary["output_errors"] == [err[-1].removeprefix("nhi-detector replay: ")]
    assert summary["written"] == {"inventory": str(inventory), "report": str(report),
                                  "summary JSON": str(summary_path)}
    assert inventory.read_bytes().count(b"\n") == 1
    assert report.read_bytes().lower().startswith(b"<!doctype html>")


@pytest.mark.parametrize("name", [n for n in (*INPUT_OPTIONS, *(o.name for o in OUTPUT_FILES))
                                  if n != "alerts"])
def test_dash_for_a_file_other_than_the_alerts__exit_2(log_file, tmp_path, capsys,
                                                       monkeypatch, name):
    # --report - made a file named '-', --labels - looked for one
    from detector.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["replay", str(log_file), "--no-progress", flag(name), "-"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"nhi-detector replay: {flag(name)} -: only the alerts go to standard output; name a "
        f"file (or /dev/stdout)")
    assert not (tmp_path / "-").exists()
