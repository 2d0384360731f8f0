"""A bad configuration or rules file gives one clear message naming the file, section and
key, and exit code 2, before any data is read: never a traceback, never a crash mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.cli import main
from detector.config import load_config
from detector.errors import ConfigError
from detector.scoring import ScoringSettings
from detector.suppression import load_rules_file
from models.settings import ModelSettings

BAD_CONFIGS = [
    ('scoring: {signal_floor: "abc"}', "scoring.signal_floor must be a number, got 'abc'"),
    ("scoring: {cooldown: [1, 2]}", "scoring.cooldown must be a number, got [1, 2]"),
    ("scoring: {group_window: null}", "scoring.group_window must be a number, got None"),
    ("scoring: {thresholds: {high: abc}}", "scoring.thresholds.high must be a number, got 'abc'"),
    ("scoring: [1, 2]", "section 'scoring' must be a mapping, got list"),
    ("models: {learning_min_events: .nan}",
     "models.learning_min_events must be a finite number, got nan"),
    ("models: {lateness_minutes: .inf}",
     "models.lateness_minutes must be a finite number, got inf"),
    ("models: {novelty_horizon_days: .inf}",
     "models.novelty_horizon_days must be a finite number, got inf"),
    ('scoring: {max_signals: "lots"}', "scoring.max_signals must be a number, got 'lots'"),
    ('scoring: {max_evidence_ids: "many"}',
     "scoring.max_evidence_ids must be a number, got 'many'"),
    ('scoring: {recurrence_days: "3"}', "scoring.recurrence_days must be a number, got '3'"),
    ("scoring: {max_signals: 0}", "scoring.max_signals must be between 1 and 1000, got 0"),
    ("models: 7", "section 'models' must be a mapping, got int"),
    ("outputs: {alerts: a.jsonl}",
     "unknown section(s) ['outputs']; known: identities, models, scoring, suppressions, "
     "sweeps, worker"),
    ('worker: "x"', "section 'worker' must be a mapping, got str"),
    ("scoring: {kind_weights: {human: -1}}",
     "scoring.kind_weights.human must be between 0 and 100, got -1.0"),
    ("scoring: {detector_weights: {'novelty.*': -0.5}}",
     "scoring.detector_weights.novelty.* must be between 0 and 100, got -0.5"),
    ("scoring: {thresholds: {high: .nan}}",
     "scoring.thresholds.high must be a finite number, got nan"),
    ("scoring: {shadow_detectors: [1]}", "scoring.shadow_detectors[0] must be a string, got 1"),
    ("scoring: {min_severity: [high]}", "scoring.min_severity: ['high'] is not a severity"),
    ("scoring: {policy_rules: [{action: x, severity: [1]}]}",
     "scoring.policy_rules[0]: severity [1] is not a severity"),
    ("models: {bucket_minutes: 1.0e+9}", "models.bucket_minutes must be between 1 and 10080"),
    ("models: {bucket_minutes: 0.01}", "models.bucket_minutes must be between 1 and 10080"),
    # YAML 1.1 read 1:30 as 90 (base 60): now text, refused by name
    ("models: {lateness_minutes: 1:30}", "models.lateness_minutes must be a number, got '1:30'"),
    # a misspelt key was ignored: the rule then matched every identity (4 -> 471 alerts)
    ("scoring: {policy_rules: [{action: 'iam:*', idenity: 'role/ci-*'}]}",
     "scoring.policy_rules[0]: unknown key 'idenity'; did you mean 'identity'? (known: "
     "action, always, identity, name, reason, severity)"),
    ("identities: {owner: [{match: '*', owner: team}]}",
     "identities: unknown key 'owner'; did you mean 'owners'? (known: ai_agents, kinds, "
     "owners)"),
    ("identities: {ai_agents: {user_agent: [langchain]}}",
     "identities.ai_agents: unknown key 'user_agent'; did you mean 'user_agents'? (known: "
     "identities, user_agents)"),
    ("identities: {kinds: [{match: '*', kind: human, reson: x}]}",
     "identities.kinds[0]: unknown key 'reson'; did you mean 'reason'? (known: kind, match, "
     "reason)"),
    ("scoring: {policy_rules: [{action: 'iam:*', always: 'yes'}]}",
     "scoring.policy_rules[0].always must be true or false, got 'yes'"),
    ("scoring: {policy_rules: [{action: 'iam:*', identity: [a, b]}]}",
     "scoring.policy_rules[0].identity must be a string, got ['a', 'b']"),
    ("suppressions: [{identity: x, reason: r, expires: 2026-02-30}]",
     "suppressions[0]: expires '2026-02-30' is not a date or time"),
    ("suppressions: [{identity: x, reason: r, expires: 2026-12-31T25:00:00Z}]",
     "suppressions[0]: expires '2026-12-31T25:00:00Z' is not a date or time"),
    ("suppressions: [{identity: {a: 1}, reason: r}]",
     "suppressions[0]: identity must be a non-empty string, got {'a': 1}"),
    ("suppressions: {file: [1]}", "suppressions.file must be a file path, got [1]"),
    ('identities:\n  owners: {match: "*", owner: team}',
     "identities.owners: expected a list of rules, each starting with '- ' ('- match: GLOB' "
     "with 'owner: ...' under it), or the short form {GLOB: OWNER}; got one mapping with the "
     "rule key(s) ['match', 'owner'] (is the list dash missing?)"),
    ('identities:\n  kinds: {match: "*", kind: human, reason: x}',
     "identities.kinds: expected a list of rules, each starting with '- ' ('- match: GLOB' "
     "with 'kind: ...' under it), or the short form {GLOB: KIND}; got one mapping with the "
     "rule key(s) ['kind', 'match', 'reason'] (is the list dash missing?)"),
    ("scoring:\n  min_severity: medium\nscoring:\n  min_severity: high",
     "key 'scoring' is given twice (lines 1 and 3); give it once, with everything under it, "
     "as only one can be used"),
    ("scoring:\n  thresholds: {high: 0.7, low: 0.2, high: 0.8}",
     "key 'scoring.thresholds.high' is given twice (lines 2 and 2)"),
    ("suppressions: {identity: x, reason: r}",
     "suppressions: expected a list of rules, each starting with '- ' ('- identity: GLOB' "
     "with 'reason: ...' under it); got one mapping with the rule key(s) ['identity', "
     "'reason'] (is the list dash missing?)"),
    ("suppressions:\n  - identity: x\n    reason: r\n  - identity: y\n    reason: r\n"
     "    identity: z", "key 'suppressions[1].identity' is given twice (lines 4 and 6)"),
]


def replay_with(tmp_path: Path, *extra: str) -> int:
    empty = tmp_path / "empty.json"
    empty.write_text('{"Records": []}')
    return main(["replay", str(empty), "--alerts", str(tmp_path / "a.jsonl"), "--no-progress",
                 *extra])


@pytest.mark.parametrize("text,message", BAD_CONFIGS)
def test_bad_config__one_message_naming_file_and_key__exit_2(tmp_path, capsys, text, message):
    config = tmp_path / "bad.yaml"
    config.write_text(text + "\n")
    assert replay_with(tmp_path, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert f"nhi-detector replay: config file {config}: {message}" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_non_utf8_config__exit_2(tmp_path, capsys):
    config = tmp_path / "latin.yaml"
    config.write_bytes(b"scoring:\n  min_severity: \"h\xe9\"\n")
    assert replay_with(tmp_path, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert f"config file {config} is not UTF-8 text (byte 27: invalid continuation byte)" in err


def test_deeply_nested_config__exit_2(tmp_path, capsys):
    config = tmp_path / "deep.yaml"
    config.write_text("x: " + "[" * 10_000 + "\n")
    assert replay_with(tmp_path, "--config", str(config)) == 2
    assert f"config file {config} is nested too deeply to read" in capsys.readouterr().err


def test_suppression_file__bad_date__names_file_rule_and_key(tmp_path, capsys):
    rules = tmp_path / "rules.yaml"
    rules.write_text("- identity: x\n  reason: r\n- identity: y\n  reason: r\n"
                     "  expires: 2026-02-30\n")
    assert replay_with(tmp_path, "--suppressions", str(rules)) == 2
    err = capsys.readouterr().err
    assert (f"nhi-detector replay: suppression file {rules}: rule[1]: expires '2026-02-30' "
            "is not a date or time") in err


def test_short_form_owners__still_accepted(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text('identities:\n  owners: {"arn:aws:iam::*:role/gha-*": platform}\n')
    assert load_config(config)["identities"]["owners"] == {"arn:aws:iam::*:role/gha-*": "platform"}


def test_suppression_file__duplicate_key_named(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("- identity: a\n  reason: r\n  expires: 2030-01-01\n  expires: 2020-01-01\n")
    with pytest.raises(ConfigError, match=r"suppression file .*rules.yaml: key '\[0\]\.expires' "
                       r"is given twice \(lines 3 and 4\)"):
        load_rules_file(rules)


def test_suppression_file__one_rule_without_its_dash__refused(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text('identity: "*"\nreason: r\ndetector: "volume.*"\n')
    with pytest.raises(ConfigError, match=r"rules.yaml: expected a list of rules, each starting "
                       r"with '- ' .*rule key\(s\) \['detector', 'identity', 'reason'\] "
                       r"\(is the list dash missing\?\)"):
        load_rules_file(rules)
    rules.write_text("rule: {identity: x, reason: r}\n")
    with pytest.raises(ConfigError, match=r"rules.yaml: unknown key\(s\) \['rule'\]; known: rules"):
        load_rules_file(rules)


def test_suppression_file__identity_not_a_string(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("- identity: {a: 1}\n  reason: r\n")
    with pytest.raises(ConfigError, match=r"rule\[0\]: identity must be a non-empty string"):
        load_rules_file(rules)


def test_parse__config_error_names_the_file(tmp_path, capsys):
    config = tmp_path / "parse.yaml"
    config.write_text("identities: {kinds: 5}\n")
    log = tmp_path / "empty.json"
    log.write_text('{"Records": []}')
    assert main(["parse", str(log), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert (f"nhi-detector parse: config file {config}: identities.kinds: must be a list of "
            "mappings or a mapping") in err


def test_valid_config__still_loads(tmp_path):
    config = tmp_path / "ok.yaml"
    config.write_text("scoring: {max_signals: 7, thresholds: {high: 0.8}, cooldown: 60}\n"
                      "models: {learning_min_events: 10, lateness_minutes: 5}\n"
                      "suppressions: [{identity: x, reason: r, expires: 2026-06-30}]\n"
                      "worker: {}\n")
    data = load_config(config)
    assert ScoringSettings.from_config(data["scoring"]).max_signals == 7
    assert ModelSettings.from_config(data["models"]).lateness_minutes == 5.0


MALFORMED_YAML = [
    ("scoring: [1", "line 2, column 1: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence started at line 1, column 10)"),
    ("a: b: c", "line 1, column 5: mapping values are not allowed here"),
    ("a:\n\tb: 1", "line 2, column 1: found character '\\t' that cannot start any token "
     "(while scanning for the next token)"),
    ('a: "\x01"', "character 5: unacceptable character #x0001: special characters are not "
     "allowed"),
]


@pytest.mark.parametrize("text,problem", MALFORMED_YAML)
def test_malformed_yaml__one_line_naming_file_line_and_column(tmp_path, capsys, text, problem):
    config = tmp_path / "bad.yaml"
    config.write_text(text + "\n")
    for flag, what in (("--config", "config file"), ("--suppressions", "suppression file")):
        assert replay_with(tmp_path, flag, str(config)) == 2
        err = capsys.readouterr().err
        assert err == f"nhi-detector replay: {what} {config} is not valid YAML: {problem}\n"


@pytest.mark.parametrize("category, message", [
    # a quoted 'false' was read as true: 4 -> 2,232 alerts outside scenarios
    ("{actions: ['iam:*'], policy: 'false'}", "policy must be true or false, got 'false'"),
    ("{actions: ['iam:*'], weight: .nan}", "weight must be a number from 0 to 1, got nan"),
    ("{actions: ['iam:*'], weight: -1.0e+9}",
     "weight must be a number from 0 to 1, got -1000000000.0"),
    ("{actions: ['iam:*'], condition: sucess}",
     "condition 'sucess' is not one of success, cross_tenant (or none)"),
    ("{actions: 'iam:CreateUser'}",
     "actions must be a list of globs, got the string 'iam:CreateUser' (write it as "
     "[iam:CreateUser])"),
    ("{actions: ['iam:*'], levle: high}",
     "unknown key 'levle'; did you mean 'level'? (known: actions, condition, level, policy, "
     "techniques, volume_only, weight)"),
])
def test_bad_catalogue__one_message_naming_the_category__exit_2(tmp_path, capsys, category,
                                                                message):
    catalogue = tmp_path / "catalogue.yaml"
    catalogue.write_text(f"categories:\n  identity_admin: {category}\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"scoring: {{catalogue_path: '{catalogue}'}}\n")
    assert replay_with(tmp_path, "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"nhi-detector replay: {catalogue}: category identity_admin: "
                           f"{message}")


def test_whole_numbers_read_as_written__not_yaml_1_1_octal(tmp_path):
    # 050 was octal (40) under YAML 1.1; 0o and 0x prefixes keep their bases
    config = tmp_path / "c.yaml"
    config.write_text("models: {learning_min_events: 050, novelty_cap: 0x40, seed: 0o17}\n")
    models = load_config(str(config))["models"]
    assert (models["learning_min_events"], models["novelty_cap"], models["seed"]) == (50, 64,
                                                                                      15)


ENDLESS = Path("/dev/zero")


@pytest.mark.skipif(not ENDLESS.exists(), reason="needs /dev/zero")
@pytest.mark.parametrize("flag, message", [
    ("--config", "config file /dev/zero is larger than 64 MiB: is it the right file?"),
    ("--labels", "labels file /dev/zero is larger than 64 MiB: is it the right file?"),
    ("--suppressions",
     "suppression file /dev/zero is larger than 64 MiB: is it the right file?"),
    ("--load-state", "state snapshot /dev/zero refused: not an nhi-detector state snapshot "
                     "(bad magic bytes)"),
])
def test_endless_settings_file__one_line_exit_2(tmp_path, capsys, flag, message):
    # these files are read whole: /dev/zero (or a huge log named by mistake) ended in a
    # MemoryError traceback after eating the machine's memory
    logs = tmp_path / "logs"
    logs.mkdir()
    code = main(["replay", str(logs), flag, str(ENDLESS), "--no-progress",
                 "--alerts", str(tmp_path / "a.jsonl")])
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"nhi-detector replay: {message}"


def test_settings_file_over_the_bound__refused_at_the_bound(tmp_path, monkeypatch):
    import detector.config

    monkeypatch.setattr(detector.config, "MAX_SETTINGS_FILE_BYTES", 64)
    path = tmp_path / "c.yaml"
    path.write_text("models: {}\n" + "#" * 53)  # 64 bytes: read
    assert load_config(path) == {"models": {}}
    path.write_text("models: {}\n" + "#" * 54)  # 65 bytes: refused
    with pytest.raises(ConfigError, match="is larger than 0 MiB"):
        load_config(path)
