"""Configuration mistakes a new user's trial found accepted (round 8): thresholds that do
not rise with severity, detector patterns matching no detector, a ``worker:`` key that only
the worker refused, and ``1e9`` read as text."""

from __future__ import annotations

import pytest

from detector.config import load_config, read_yaml
from detector.errors import ConfigError


def load(tmp_path, text: str) -> dict:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path)


def refused(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    return str(caught.value).split(": ", 1)[1]


def test_inverted_thresholds__refused_naming_the_pair(tmp_path):
    assert refused(tmp_path, "scoring: {thresholds: {low: 0.9, medium: 0.5}}") == (
        "scoring.thresholds must rise with severity (low below medium), got low 0.9, "
        "medium 0.5, high 0.75 (default), critical 0.9 (default)")


def test_threshold_against_a_default__refused(tmp_path):
    message = refused(tmp_path, "scoring: {thresholds: {high: 0.95}}")
    assert message.startswith("scoring.thresholds must rise with severity (high below "
                              "critical), got")
    assert "high 0.95, critical 0.9 (default)" in message


def test_rising_thresholds__loaded(tmp_path):
    config = load(tmp_path, "scoring: {thresholds: {low: 0.2, medium: 0.3, high: 0.6}}")
    assert config["scoring"]["thresholds"] == {"low": 0.2, "medium": 0.3, "high": 0.6}


@pytest.mark.parametrize(("text", "start"), [
    ('scoring: {shadow_detectors: ["nonexistent.detector"]}',
     "scoring.shadow_detectors: 'nonexistent.detector' matches no detector name (names: "),
    ("scoring: {detector_weights: {'nosuch.*': 2}}",
     "scoring.detector_weights: 'nosuch.*' matches no detector name (names: "),
    ('scoring: {shadow_detectors: ["novelty.actoin"]}',
     "scoring.shadow_detectors: 'novelty.actoin' matches no detector name; did you mean "
     "'novelty.action'"),
])
def test_detector_pattern_matching_nothing__refused(tmp_path, text, start):
    message = refused(tmp_path, text)
    assert message.startswith(start)
    assert "technique.aws.*" in message


def test_detector_patterns_that_match__loaded(tmp_path):
    config = load(tmp_path, "scoring: {shadow_detectors: ['novelty.*', "
                            "'technique.aws.secrets_burst'], detector_weights: {'volume.*': 2}}")
    assert config["scoring"]["detector_weights"] == {"volume.*": 2}


def test_worker_unknown_key__refused_by_the_replay_too(tmp_path):
    assert refused(tmp_path, "worker: {bogus_key: 1}").startswith(
        "worker section: unknown key(s) ['bogus_key']; known: accounting_topic, ")
    assert "did you mean 'app_id'" in refused(tmp_path, "worker: {app_idd: x}")


def test_worker_known_keys__loaded(tmp_path):
    assert load(tmp_path, "worker: {app_id: x, partitions: 4}")["worker"] == {
        "app_id": "x", "partitions": 4}


@pytest.mark.parametrize(("written", "value"), [
    ("1e9", 1e9), ("1.0e9", 1e9), ("2.5E-3", 0.0025), ("-1e2", -100.0), (".5e1", 5.0),
    ("10", 10), ("1_000", 1000), ("1e", "1e"), ("e9", "e9"),
])
def test_exponent_numbers__read_as_numbers(tmp_path, written, value):
    """YAML 1.1 (PyYAML) read 1e9 and 1.0e9 as text; an integer stays an integer."""
    path = tmp_path / "v.yaml"
    path.write_text(f"v: {written}\n")
    read = read_yaml(path, "file")["v"]
    assert read == value and type(read) is type(value)


def test_learning_days_1e9__a_range_error_not_a_type_error(tmp_path):
    assert refused(tmp_path, "models: {learning_min_days: 1e9}") == (
        "models.learning_min_days must be between 0 and 3650, got 1000000000.0")
