"""Worker settings: flags over environment over the config file over defaults."""

from __future__ import annotations

import argparse
import re

import pytest

from detector.errors import ConfigError
from streams.settings import (
    BY_NAME,
    DEFAULT_BOOTSTRAP,
    SETTINGS,
    add_arguments,
    load_settings,
)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


class TestLoadSettings:
    def test_defaults__without_any_layer(self) -> None:
        settings = load_settings(parse(), {}, {})
        assert settings.bootstrap_servers == DEFAULT_BOOTSTRAP
        assert settings.raw_topics == ("nhi.raw",)
        assert settings.shadow is False

    def test_precedence__flag_beats_env_beats_file(self) -> None:
        env = {"NHI_PARTITIONS": "6", "NHI_ALERTS_TOPIC": "env.alerts"}
        section = {"partitions": 3, "alerts_topic": "file.alerts", "inventory_topic": "file.inv"}
        settings = load_settings(parse("--partitions", "12"), env, section)
        assert settings.partitions == 12
        assert settings.alerts_topic == "env.alerts"
        assert settings.inventory_topic == "file.inv"

    def test_kafka_bootstrap_env__is_a_fallback_for_nhi_one(self) -> None:
        only_kafka = load_settings(parse(), {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}, {})
        both = load_settings(parse(), {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                                       "NHI_BOOTSTRAP_SERVERS": "127.0.0.1:2"}, {})
        assert only_kafka.bootstrap_servers == "127.0.0.1:1"
        assert both.bootstrap_servers == "127.0.0.1:2"

    def test_raw_topics__pin_a_source_per_topic(self) -> None:
        settings = load_settings(parse("--raw-topics", "ct:aws.cloudtrail, mixed"), {}, {})
        assert settings.topic_sources() == {"ct": "aws.cloudtrail", "mixed": None}
        short = load_settings(parse("--raw-topics", "ct:aws,kube:k8s"), {}, {})
        assert short.topic_sources() == {"ct": "aws", "kube": "k8s"}

    def test_booleans__from_env_text_and_flags(self) -> None:
        assert load_settings(parse(), {"NHI_SHADOW": "yes"}, {}).shadow is True
        assert load_settings(parse("--no-shadow"), {"NHI_SHADOW": "1"}, {}).shadow is False

    def test_data_dir__holds_the_worker_id(self) -> None:
        settings = load_settings(parse("--state-dir", "/var/lib/nhi", "--worker-id", "w7"), {},
                                 {})
        assert str(settings.data_dir) == "/var/lib/nhi/w7"

    def test_password__is_redacted_in_the_log_form(self) -> None:
        settings = load_settings(parse(), {"NHI_SECURITY_PROTOCOL": "SASL_SSL",
                                           "NHI_SASL_USERNAME": "u", "NHI_SASL_PASSWORD": "s3"},
                                 {})
        assert settings.sasl_password == "s3"
        assert settings.redacted()["sasl_password"] == "***"


class TestInvalidSettings:
    def test_bad_number__names_the_source(self) -> None:
        with pytest.raises(ConfigError, match="NHI_PARTITIONS: invalid value 'many'"):
            load_settings(parse(), {"NHI_PARTITIONS": "many"}, {})

    def test_unknown_file_key__is_refused(self) -> None:
        with pytest.raises(ConfigError, match=r"unknown key\(s\) \['partitons'\]"):
            load_settings(parse(), {}, {"partitons": 4})

    def test_unknown_file_key__same_words_as_the_config_file_check(self, tmp_path) -> None:
        """The worker and the config loader each checked the section's keys, in other
        words: the worker's message had neither the close name nor the known keys."""
        from detector.config import load_config

        path = tmp_path / "c.yaml"
        path.write_text("worker: {partitons: 4}\n")
        with pytest.raises(ConfigError) as from_file:
            load_config(path)
        with pytest.raises(ConfigError) as from_worker:
            load_settings(parse(), {}, {"partitons": 4})
        assert str(from_file.value) == f"config file {path}: {from_worker.value}"
        assert "did you mean 'partitions'?; known: accounting_topic, " in str(from_worker.value)

    def test_unbounded_poll__is_refused(self) -> None:
        with pytest.raises(ConfigError, match="^--max-poll-records: must be in 1..10000, not 0$"):
            load_settings(parse("--max-poll-records", "0"), {}, {})

    def test_ingest_window_size__is_bounded(self) -> None:
        assert load_settings(parse(), {}, {}).ingest_max_messages == 5000
        expected = "^NHI_INGEST_MAX_MESSAGES: must be in 1..100000, not 0$"
        with pytest.raises(ConfigError, match=expected):
            load_settings(parse(), {"NHI_INGEST_MAX_MESSAGES": "0"}, {})

    def test_fetch_size__below_a_broker_message_is_refused(self) -> None:
        assert load_settings(parse(), {}, {}).max_fetch_bytes == 4 << 20
        expected = "^--max-fetch-bytes: must be in 1048576..67108864 bytes, not 65536$"
        with pytest.raises(ConfigError, match=expected):
            load_settings(parse("--max-fetch-bytes", "65536"), {}, {})

    def test_choice__outside_the_list(self) -> None:
        with pytest.raises(ConfigError, match="alert_format='cef' is not one of"):
            load_settings(parse(), {"NHI_ALERT_FORMAT": "cef"}, {})

    def test_output_topic_used_as_input__is_refused(self) -> None:
        with pytest.raises(ConfigError, match="used both as raw input and as output"):
            load_settings(parse("--raw-topics", "nhi.alerts"), {}, {})

    def test_sasl_without_user__is_refused(self) -> None:
        with pytest.raises(ConfigError, match="needs sasl_username"):
            load_settings(parse("--security-protocol", "SASL_PLAINTEXT"), {}, {})


class TestYamlTypes:
    """A config file's YAML value of another type than the setting's is refused, never
    converted with ``str()`` or ``int()`` into something nobody wrote."""

    @pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.kind is str])
    @pytest.mark.parametrize("value, got, hidden", [
        (83, "the number 83", "a number"), (False, "the boolean False", "a boolean"),
        (1.5, "the number 1.5", "a number"), (None, "null", "null"),
        (["a"], "the list ['a']", "a list"), ({"a": 1}, "the mapping {'a': 1}", "a mapping"),
    ])
    def test_text_setting__refuses_every_other_type(self, name, value, got, hidden) -> None:
        if name == "sasl_password" and value is not None:
            got = f"{hidden} (value hidden)"
        with pytest.raises(ConfigError, match=f"^worker.{name}: expected text, got "
                                              f"{re.escape(got)}"):
            load_settings(None, {}, {name: value})

    def test_digits_user_name__says_why_and_to_quote_it(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(None, {}, {"sasl_username": 123})
        assert str(caught.value) == (
            "worker.sasl_username: expected text, got the number 123 (YAML reads unquoted "
            "digits as a number, so a leading 0 is lost: 0123 is 123); write it in quotes "
            "(sasl_username: \"...\")")

    def test_password__is_never_shown(self) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings(None, {}, {"sasl_password": ["nhi-local-secret", 1]})
        assert str(caught.value) == "worker.sasl_password: expected text, got a list " \
                                    "(value hidden)"

    @pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.kind in (int, float)])
    def test_number_setting__refuses_booleans_lists_and_maps(self, name) -> None:
        expected = "a whole number" if BY_NAME[name].kind is int else "a number"
        for value, got in ((True, "the boolean True"), ([5], "the list [5]"),
                           ({"a": 5}, "the mapping {'a': 5}"), (None, "null")):
            with pytest.raises(ConfigError, match=f"^worker.{name}: expected {expected}, "
                                                  f"got {re.escape(got)}"):
                load_settings(None, {}, {name: value})

    @pytest.mark.parametrize("name", [s.name for s in SETTINGS if s.kind is bool])
    def test_switch__refuses_numbers_lists_and_maps(self, name) -> None:
        for value, got in ((1, "the number 1"), (["yes"], "the list ['yes']"), (None, "null")):
            with pytest.raises(ConfigError, match=f"^worker.{name}: expected true or false, "
                                                  f"got {re.escape(got)}"):
                load_settings(None, {}, {name: value})

    def test_topic_list__refuses_a_number_inside_and_a_mapping(self) -> None:
        with pytest.raises(ConfigError, match=r"^worker.raw_topics: .* got the number 83 in "
                                              r"the list"):
            load_settings(None, {}, {"raw_topics": ["a", 83]})
        with pytest.raises(ConfigError, match=r"^worker.raw_topics: .* got the mapping"):
            load_settings(None, {}, {"raw_topics": {"a": "aws"}})

    def test_right_types__still_load(self) -> None:
        settings = load_settings(None, {}, {"sasl_username": "0123", "app_id": "no",
                                            "partitions": 4, "ingest_window": 1,
                                            "shadow": True, "raw_topics": ["a", "b:aws"],
                                            "commit_interval": "5"})
        assert (settings.sasl_username, settings.app_id, settings.partitions) == (
            "0123", "no", 4)
        assert (settings.ingest_window, settings.shadow, settings.raw_topics) == (
            1.0, True, ("a", "b:aws"))
        assert settings.commit_interval == 5.0
