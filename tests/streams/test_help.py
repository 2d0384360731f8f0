"""What a user reads: ``worker --help``, ``produce --help`` and docs/worker.md agree on the
defaults and carry no internal ticket ids."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detector.cli import main
from streams.settings import BY_NAME, SETTINGS, default_text, meaning_text

DOC = Path(__file__).resolve().parents[2] / "docs" / "worker.md"
# edge-case ids (B06, B19...) and issue numbers belong in code comments and tests only
TICKET = re.compile(r"\bB\d\d\b|\bissue \d+")


def _help(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
          command: str) -> str:
    monkeypatch.setenv("COLUMNS", "2000")  # argparse also breaks lines after hyphens
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def _doc_rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`NHI_"):
            rows[cells[0].strip("`")] = [cell.strip("`") for cell in cells[1:]]
    return rows


def test_default_text__as_the_table_writes_them() -> None:
    assert default_text(BY_NAME["max_poll_records"]) == "500"
    assert default_text(BY_NAME["raw_topics"]) == "nhi.raw"
    assert default_text(BY_NAME["create_topics"]) == "off"
    assert default_text(BY_NAME["worker_id"]) == "(empty)"


def test_worker_help__shows_every_default_and_no_ticket_ids(capsys, monkeypatch) -> None:
    text = _help(capsys, monkeypatch, "worker")
    for setting in SETTINGS:
        assert f"[env {setting.env}; default {default_text(setting)}]" in text, setting.name
    assert "[env NHI_LOCK_WAIT; default 30.0]" in text
    assert TICKET.findall(text) == []


def test_worker_doc_table__matches_the_settings() -> None:
    rows = _doc_rows()
    assert list(rows) == [setting.option for setting in SETTINGS]
    for setting in SETTINGS:
        env, default, meaning = rows[setting.option]
        choices = f" ({'/'.join(setting.choices)})" if setting.choices else ""
        assert (env, default, meaning) == (setting.env, default_text(setting),
                                           meaning_text(setting) + choices)


def test_worker_doc__has_no_ticket_ids() -> None:
    assert TICKET.findall(DOC.read_text(encoding="utf-8")) == []


def test_produce_help__shows_the_defaults(capsys, monkeypatch) -> None:
    monkeypatch.setenv("NHI_SASL_PASSWORD", "s3cret")
    text = _help(capsys, monkeypatch, "produce")
    for shown in ("(1: one per message; in 1..100000; default 500)",
                  "(0: as fast as possible; in 0..1000000000 records per second; default 0)",
                  "JSON array (default lines)",
                  "a bigger record is skipped and named (in 1024..67108864 bytes; default "
                  "900000)",
                  "producer compression (default none)", "default 127.0.0.1:9092]",
                  "[env NHI_SECURITY_PROTOCOL; default PLAINTEXT]",
                  "[env NHI_SASL_PASSWORD; default (empty)]"):
        assert shown in text
    assert "s3cret" not in text
    assert TICKET.findall(text) == []
