"""The README is part of the contract: its commands and its config example must work."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from detector.config import load_config
from detector.identity import IdentityRules
from detector.scoring import ScoringSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(marker: str, lang: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"<!-- {marker} -->\s*```{lang}\n(.*?)```", text, re.S)
    assert match, f"no ```{lang} block after <!-- {marker} --> in README.md"
    return match.group(1)


def test_config_example__is_accepted_by_every_section(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_block_after("config-example", "yaml"), encoding="utf-8")
    config = load_config(path)
    rules = IdentityRules.from_config(config["identities"])
    scoring = ScoringSettings.from_config(config["scoring"])
    assert len(rules.owners) == 1 and len(rules.kinds) == 1
    assert scoring.min_severity == "medium"


@pytest.mark.parametrize("marker", ["main-command", "test-command"])
def test_quickstart_commands__need_only_python_and_the_repo(marker: str) -> None:
    command = _block_after(marker, "sh").strip()
    assert command.startswith("python3 -m venv .venv && .venv/bin/pip install")
    assert "\n" not in command, "each quickstart command is one line"


def test_readme__has_no_placeholders() -> None:
    text = README.read_text(encoding="utf-8")
    assert "PLACEHOLDER" not in text
    assert "TODO" not in text
