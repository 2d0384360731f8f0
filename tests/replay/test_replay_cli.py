"""``nhi-detector replay`` end to end on small logs written by the test (tests/replay/logs.py).

CloudTrail in the S3 delivery layout (gzip, unordered within files) mixed with Kubernetes
audit JSON lines, stdin, both alert formats, the labels evaluation and the report.
"""

from __future__ import annotations

import gzip
import io
import os
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from detector.cli import main
from tests.replay import logs

ATTACK_AT = logs.T0 + 9 * logs.DAY + 5 * logs.HOUR + 600


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("logs")
    counts = logs.build_logs(root, days=10, attack_at=ATTACK_AT)
    return root, counts


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("labels") / "labels.json"
    path.write_bytes(orjson.dumps(logs.labels_for(ATTACK_AT)))
    return path


@pytest.fixture(scope="module")
def full_run(log_dir, labels_file, tmp_path_factory) -> dict:
    """One replay with every file output, shared by the assertions below."""
    root, counts = log_dir
    out = tmp_path_factory.mktemp("out")
    argv = ["replay", str(root), "--alerts", str(out / "alerts.jsonl"),
            "--labels", str(labels_file), "--report", str(out / "report.html"),
            "--summary-json", str(out / "summary.json"), "--inventory", str(out / "inv.jsonl"),
            "--dead-letters", str(out / "dead.jsonl"), "--no-progress"]
    code = main(argv)
    return {"code": code, "out": out, "counts": counts,
            "summary": orjson.loads((out / "summary.json").read_bytes())}


def read_lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


class TestReplayDirectory:
    def test_exit_code_and_event_counts(self, full_run):
        assert full_run["code"] == 0
        summary = full_run["summary"]
        assert summary["events"]["per_source"] == full_run["counts"]
        assert summary["records_read"] == full_run["counts"]
        assert summary["events"]["total"] == sum(full_run["counts"].values())
        assert summary["accounting_balanced"] is True
        assert summary["dead_letters"] == {}

    def test_a_clean_run_says_its_dead_letter_file_was_not_written(self, full_run):
        dead = full_run["out"] / "dead.jsonl"
        assert not dead.exists()  # opened on the first dead letter only
        assert full_run["summary"]["written"]["dead letters"] == f"none ({dead} not written)"

    def test_unordered_files_are_reordered_not_late(self, full_run):
        # records are shuffled within each hourly file and two sources interleave in time
        assert full_run["summary"]["late_events"] == 0

    def test_alert_lines_are_native_and_revisions_dedupe(self, full_run):
        lines = read_lines(full_run["out"] / "alerts.jsonl")
        assert lines, "the attack must raise at least one alert"
        assert all(line["schema"] == "nhi-detector/alert/v1" for line in lines)
        newest: dict[str, int] = {}
        for line in lines:
            newest[line["alert_id"]] = max(newest.get(line["alert_id"], 0), line["revision"])
        summary = full_run["summary"]["alerts"]
        assert summary["lines_written"] == len(lines)
        assert summary["total"] == len(newest)

    def test_attack_detected_against_labels(self, full_run):
        lines = read_lines(full_run["out"] / "alerts.jsonl")
        victims = {line["identity"]["key"] for line in lines}
        assert logs.role_arn(logs.VICTIM) in victims
        evaluation = full_run["summary"]["evaluation"]
        (scenario,) = evaluation["scenarios"]
        assert scenario["id"] == "outside-use" and scenario["detected"] is True
        assert 0 <= scenario["time_to_detect_seconds"] < 15 * 60
        # identity-days: 4 roles and 2 service accounts over ~10 days each
        assert 59.0 < evaluation["identity_days"] <= 60.0

    def test_identities_and_inventory(self, full_run):
        inventory = read_lines(full_run["out"] / "inv.jsonl")
        assert len(inventory) == len(logs.ROLES) + len(logs.SERVICE_ACCOUNTS)
        assert full_run["summary"]["identities"]

    def test_report_written(self, full_run):
        page = (full_run["out"] / "report.html").read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>")
        assert f"Events per hour of {logs.role_arn(logs.VICTIM)}" in page
        assert "Quality against the labels" in page

    def test_summary_table_on_stdout_when_alerts_go_to_a_file(self, log_dir, tmp_path,
                                                              capsys):
        root, counts = log_dir
        code = main(["replay", str(root / "k8s"), "--alerts", str(tmp_path / "a.jsonl"),
                     "--no-progress"])
        captured = capsys.readouterr()
        assert code == 0
        assert "Events per source" in captured.out
        assert f"k8s.audit  {counts['k8s.audit']}" in captured.out
        assert captured.err == ""


class TestReplayStreams:
    def test_stdin_and_ocsf_on_stdout(self, log_dir, monkeypatch, capsysbinary):
        root, counts = log_dir
        data = (root / "k8s" / "audit.log").read_bytes()
        # the attack is CloudTrail: feed it through stdin as JSON lines
        trail = sorted((root / "cloudtrail").rglob("*.json.gz"))
        records = [r for f in trail for r in orjson.loads(gzip.decompress(f.read_bytes()))
                   ["Records"]]
        data += b"".join(orjson.dumps(r) + b"\n" for r in records)
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        code = main(["replay", "-", "--format", "ocsf", "--no-progress"])
        captured = capsysbinary.readouterr()
        assert code == 0
        findings = [orjson.loads(line) for line in captured.out.splitlines()]
        assert findings and all(f["class_uid"] == 2004 for f in findings)
        # everything that is not an alert went to stderr
        assert b"Events per source" in captured.err
        assert f"aws.cloudtrail  {counts['aws.cloudtrail']:,}".encode() in captured.err

    def test_labels_and_outputs_inside_the_log_directory_are_not_read_as_logs(self, tmp_path):
        counts = logs.build_logs(tmp_path, days=4, seed=9)
        (tmp_path / "labels.json").write_bytes(orjson.dumps(logs.labels_for(ATTACK_AT)))
        code = main(["replay", str(tmp_path), "--labels", str(tmp_path / "labels.json"),
                     "--alerts", str(tmp_path / "alerts.jsonl"),
                     "--summary-json", str(tmp_path / "summary.json"), "--no-progress"])
        summary = orjson.loads((tmp_path / "summary.json").read_bytes())
        assert code == 0
        assert summary["records_read"] == counts
        assert summary["dead_letters"] == {} and summary["files_read"] > 0

    def test_suppressions_file_silences_the_victim(self, log_dir, tmp_path):
        root, _ = log_dir
        rules = tmp_path / "suppressions.yaml"
        rules.write_text(f'- identity: "{logs.role_arn(logs.VICTIM)}"\n'
                         '  reason: "red-team exercise RT-42"\n'
                         "  expires: 2099-01-01\n")
        code = main(["replay", str(root), "--suppressions", str(rules), "--no-progress",
                     "--alerts", str(tmp_path / "a.jsonl"),
                     "--summary-json", str(tmp_path / "s.json")])
        assert code == 0
        keys = {line["identity"]["key"] for line in read_lines(tmp_path / "a.jsonl")}
        assert logs.role_arn(logs.VICTIM) not in keys
        summary = orjson.loads((tmp_path / "s.json").read_bytes())
        assert sum(summary["alerts"]["suppressed"].values()) > 0

    def test_missing_input_path__exit_2(self, tmp_path, capsys):
        code = main(["replay", str(tmp_path / "nope"), "--no-progress",
                     "--alerts", str(tmp_path / "a.jsonl")])
        assert code == 2
        assert f"no such file or directory: {tmp_path / 'nope'}" in capsys.readouterr().err
        assert not (tmp_path / "a.jsonl").exists()

    def test_missing_labels_file__exit_2(self, log_dir, tmp_path, capsys):
        root, _ = log_dir
        code = main(["replay", str(root / "k8s"), "--labels", str(tmp_path / "none.json"),
                     "--alerts", str(tmp_path / "a.jsonl"), "--no-progress"])
        assert code == 2
        assert "cannot read labels file" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


class TestMetricsPort:
    def test_endpoint_counts_records_while_the_replay_runs(self, log_dir, monkeypatch,
                                                           tmp_path):
        root, counts = log_dir
        lines = (root / "k8s" / "audit.log").read_bytes().splitlines(keepends=True)
        feed = (lines * (5000 // len(lines) + 1))[:5000]  # one full parser chunk of lines
        read_end, write_end = os.pipe()
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(read_end, "rb")))
        port = free_port()
        result: dict[str, int] = {}
        argv = ["replay", "-", "--metrics-port", str(port), "--no-progress",
                "--alerts", str(tmp_path / "a.jsonl")]
        worker = threading.Thread(target=lambda: result.update(code=main(argv)))
        worker.start()
        writer = os.fdopen(write_end, "wb")
        try:
            writer.write(b"".join(feed))
            writer.flush()
            seen: dict[str, float] = {}
            deadline = time.monotonic() + 30
            key = 'nhi_records_read_total{source="k8s.audit"}'
            while time.monotonic() < deadline and seen.get(key) != 5000:
                try:
                    seen = scrape(port)
                except OSError:
                    pass
                time.sleep(0.05)
            assert seen.get(key) == 5000  # the stream is still open: mid-replay
        finally:
            writer.close()
            worker.join(timeout=60)
        assert result["code"] == 0
        with pytest.raises(OSError):
            scrape(port)  # the endpoint stops with the replay


class TestInterrupt:
    def test_ctrl_c__partial_summary_exit_130_no_snapshot(self, log_dir, monkeypatch, tmp_path):
        from detector import replay as replay_module

        real_open = replay_module.open_events

        def interrupted_after_300(*args, **kwargs):
            for n, event in enumerate(real_open(*args, **kwargs), 1):
                yield event
                if n == 300:
                    raise KeyboardInterrupt

        monkeypatch.setattr(replay_module, "open_events", interrupted_after_300)
        root, counts = log_dir
        code = main(["replay", str(root), "--no-progress", "--alerts", str(tmp_path / "a.jsonl"),
                     "--summary-json", str(tmp_path / "s.json"),
                     "--save-state", str(tmp_path / "state.snap")])
        assert code == 130
        summary = orjson.loads((tmp_path / "s.json").read_bytes())
        assert summary["interrupted"] is True
        # reading stopped early: the files parsed so far, far from all of them
        assert 300 <= summary["events"]["total"] < sum(counts.values()) // 2
        assert not (tmp_path / "state.snap").exists()


class TestLoopGarbageCollector:
    """run_loop relaxes the cyclic GC while it runs and gives back the caller's settings."""

    class Recorder:
        """Stands in for the Detector: records the GC thresholds seen while processing."""

        def __init__(self, fail_after: int | None = None) -> None:
            self.seen: list[tuple[int, int, int]] = []
            self.fail_after = fail_after

        def process(self, event):
            import gc

            self.seen.append(gc.get_threshold())
            if self.fail_after is not None and len(self.seen) >= self.fail_after:
                raise RuntimeError("detector failed")
            return []

        def finish(self):
            return []

    @staticmethod
    def loop(detector) -> None:
        from detector.evaluation import Activity, AlertLog
        from detector.event import Event
        from detector.replay import AlertWriter, run_loop
        from detector.summary import Progress

        events = [Event(event_id=str(n), time=None, ts=logs.T0 + n, source="k8s.audit",
                        identity="system:serviceaccount:prod:ingest") for n in range(3)]
        writer = AlertWriter(io.BytesIO(), "native", AlertLog())
        run_loop(events, detector, writer, Activity(),
                 Progress(io.StringIO(), enabled=False))

    def test_thresholds_raised_inside_and_restored_after(self):
        import gc

        from detector.replay import GC_THRESHOLDS

        before = gc.get_threshold()
        recorder = self.Recorder()
        self.loop(recorder)
        assert recorder.seen == [GC_THRESHOLDS] * 3
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0

    def test_restored_when_the_detector_raises(self):
        import gc

        before = gc.get_threshold()
        with pytest.raises(RuntimeError, match="detector failed"):
            self.loop(self.Recorder(fail_after=2))
        assert gc.get_threshold() == before
        assert gc.get_freeze_count() == 0
