"""Configuration mistakes a new user's trial found accepted or reported one at a time
(round 9): suppression rules whose detector glob matches no detector."""

from __future__ import annotations

import pytest

from detector.config import load_config
from detector.engine import Detector
from detector.errors import ConfigError
from detector.stats import RunStats

RULE = '- {identity: "arn:*", detector: "%s", reason: CI role rotates regions}\n'


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


@pytest.mark.parametrize("pattern", ["novelty.*", "*", "technique.aws.*", "volume.rate"])
def test_suppression_file__matching_detectors_are_loaded(tmp_path, pattern):
    assert [r.detector for r in detector_with_rules(tmp_path, pattern).suppressions.rules] == [
        pattern]


def test_inline_suppression__detector_matching_nothing_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("suppressions:\n  " + RULE % "novelty.acton")
    with pytest.raises(ConfigError, match="detector: 'novelty.acton' matches no detector "
                                          "name; did you mean 'novelty.action'"):
        load_config(path)
