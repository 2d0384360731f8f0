"""Worker settings: flags over environment over the config file over defaults."""

from __future__ import annotations

import argparse

import pytest

from detector.errors import ConfigError
from streams.settings import DEFAULT_BOOTSTRAP, add_arguments, load_settings


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
