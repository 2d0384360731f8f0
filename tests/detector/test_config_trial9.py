"""Configuration mistakes a new user's trial found accepted or reported one at a time
(round 9): suppression rules whose detector glob matches no detector."""

from __future__ import annotations

import pytest

from detector.config import load_config
from detector.engine import Detector
from detector.errors import ConfigError
from detector.stats import RunStats

RULE = '- {identity: "arn:*", detector: "%s", reason: CI role rotates regions}\n'


def refusal(tmp_path, text: str) -> tuple[object, str]:
    """(the config file written with ``text``, the message ``load_config`` refuses it with)."""
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return path, str(caught.value)


def detector_with_rules(tmp_path, pattern: str) -> Detector:
    path = tmp_path / "s.yaml"
    path.write_text(RULE % pattern)
    return Detector({"suppressions_file": str(path)}, stats=RunStats())


def test_suppression_file__detector_matching_nothing_is_refused(tmp_path):
    """``detector: novelty`` is an exact glob: no detector has that name, so the rule
    suppressed nothing (the helm chart's example had it)."""
    with pytest.raises(ConfigError) as caught:
        detector_with_rules(tmp_path, "novelty")
    assert str(caught.value).startswith(
        "suppression rule arn:* / novelty / * (CI role rotates regions): detector: 'novelty' "
        "matches no detector name; did you mean 'novelty.*'? (names: ")


@pytest.mark.parametrize("pattern", ["novelty.*", "*", "technique.aws.*", "volume.rate",
                                     "sweep.*"])
def test_suppression_file__matching_detectors_are_loaded(tmp_path, pattern):
    assert [r.detector for r in detector_with_rules(tmp_path, pattern).suppressions.rules] == [
        pattern]


def test_inline_suppression__detector_matching_nothing_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("suppressions:\n  " + RULE % "novelty.acton")
    with pytest.raises(ConfigError, match="detector: 'novelty.acton' matches no detector "
                                          "name; did you mean 'novelty.action'"):
        load_config(path)


ALL_WRONG = """\
identities:
  owners: {match: "arn:*", owner: team}
  kinds: [{match: "x*", kind: robot}]
models:
  learning_min_events: fifty
  novelty_horizon_days: -3
  novelty_cap: 1e99
scoring:
  min_severity: severe
  cooldown_minutes: 60
  shadow_detectors: [novelty.acton]
suppressions:
  - detector: novelty
    reason: no identity
worker:
  partitons: 4
alerting: {}
"""


def test_every_mistake__reported_in_one_run(tmp_path):
    """The trial's file with a dozen mistakes took a dozen runs, one message each."""
    path, refused = refusal(tmp_path, ALL_WRONG)
    head, *lines = refused.splitlines()
    assert head == f"config file {path}: 11 mistakes:"
    starts = [line.split(":")[0].split(" must")[0] for line in lines]
    assert starts == [
        "  - unknown section(s) ['alerting']; known", "  - identities.owners",
        "  - identities.kinds[0]", "  - models.learning_min_events",
        "  - models.novelty_horizon_days", "  - models.novelty_cap", "  - scoring",
        "  - scoring.min_severity", "  - scoring.shadow_detectors", "  - suppressions[0]",
        "  - worker section"]
    assert "scoring: unknown key(s) ['cooldown_minutes']" in lines[6]


@pytest.mark.parametrize(("text", "message"), [
    ("models: {novelty_cap: 1e99}", "models.novelty_cap must be between 4 and 1e+06, got 1e+99"),
    ("scoring: {max_signals: 1e99}", "scoring.max_signals must be between 1 and 1000, got 1e+99"),
])
def test_huge_number__echoed_as_written(tmp_path, text, message):
    """1e99 made a whole number was echoed with its 100 digits."""
    path, refused = refusal(tmp_path, text)
    assert refused == f"config file {path}: {message}"


def test_inverted_thresholds__reported_once_the_keys_pass(tmp_path):
    path, refused = refusal(
        tmp_path, "scoring: {thresholds: {low: 0.9, medium: 0.5}, min_severity: severe}\n")
    lines = refused.splitlines()[1:]
    assert [line.split(" ")[3] for line in lines] == ["scoring.thresholds", "scoring.min_severity:"]


def test_every_unmatched_pattern__named_in_one_message(tmp_path):
    path, refused = refusal(
        tmp_path, "scoring: {shadow_detectors: [novelty.acton, volume.rat, 'novelty.*']}\n")
    assert refused.startswith(
        f"config file {path}: scoring.shadow_detectors: 'novelty.acton' matches no detector "
        "name; did you mean 'novelty.action'?; scoring.shadow_detectors: 'volume.rat' "
        "matches no detector name; did you mean 'volume.rate' or 'volume.*'? (names: ")


def test_keys_valid_only_together__accepted(tmp_path):
    """track_severity high alone is above the default min_severity (low); with min_severity
    high in the same section it is valid, and was refused when each key was judged alone."""
    path = tmp_path / "c.yaml"
    path.write_text("scoring: {track_severity: high, min_severity: high}\n")
    assert load_config(path)["scoring"] == {"track_severity": "high", "min_severity": "high"}


def test_keys_valid_only_together__beside_an_unknown_key(tmp_path):
    """Only the unknown key is named: the known keys pass together."""
    path, refused = refusal(
        tmp_path, "scoring: {track_severity: high, min_severity: high, cooldown_minutes: 5}\n")
    assert refused.startswith(
        f"config file {path}: scoring: unknown key(s) ['cooldown_minutes']; known: ")


def test_keys_invalid_together__named_once(tmp_path):
    path, refused = refusal(
        tmp_path, "scoring: {track_severity: high, min_severity: medium}\n")
    assert refused == (
        f"config file {path}: scoring.track_severity ('high') must not be above "
        "min_severity ('medium')")
