"""The benchmarks' stand-ins for the models keep up with what the engine asks of a
profile: a profile method the engine starts calling broke bench_replay's null-model
stage with an AttributeError, which no test ran."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" /
                                                  f"bench_{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def engine_profile_calls() -> set[str]:
    """The profile methods ``detector/engine.py`` calls (``profile.x(`` and
    ``state.profile.x(``)."""
    text = (ROOT / "detector" / "engine.py").read_text()
    return set(re.findall(r"\bprofile\.([a-z_]+)\(", text))


@pytest.mark.parametrize("name", ["replay", "engine"])
def test_null_profile_answers_every_call_the_engine_makes(name: str) -> None:
    calls = engine_profile_calls()
    assert {"observe", "scored_stage", "in_learning", "thin_history"} <= calls
    null = load(name).NullProfile
    # the stand-in needs what the engine calls on every event and on its verdicts; the
    # rest (feedback, snapshots, size) the null-model stage never reaches
    needed = calls & {"observe", "scored_stage", "in_learning", "thin_history",
                      "learning_progress"}
    assert sorted(m for m in needed if not callable(getattr(null, m, None))) == []
