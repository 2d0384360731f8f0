"""The worker's settings: declared once, each with its flag, environment variable and default.

Precedence, highest first: command-line flag, environment variable (``NHI_*``), the
``worker:`` section of the ``--config`` file, the default below. The result is a frozen
``WorkerSettings`` built before anything connects to Kafka. ``docs/worker.md`` lists the
same table for operators.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from detector.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_APP_ID = "nhi-detector"
DEFAULT_RAW_TOPICS = ("nhi.raw",)
DEFAULT_PARTITIONS = 8
# Bounded so one poll never holds more than a few seconds of work: an unbounded poll
# during a slow batch lets the group declare the member dead and livelock (B19).
DEFAULT_MAX_POLL_RECORDS = 500
# Measured on 6,000 single-record messages: windows capped at 500 messages cost 630 us of
# worker CPU per event, windows of 3,000 cost 420 us (each identity's state is written
# once per repartition message, so fewer, fuller messages write it less often). The time
# window still bounds latency; this only stops a backlog from being cut into small windows.
DEFAULT_INGEST_MAX_MESSAGES = 5000
# Faust's default (1 MiB per partition) returns two 450 kB batched messages or about a
# thousand single-record ones per fetch, and the worker idles between fetches. With 4 MiB:
# 40,000 events in 500-record messages at 2,325 -> 7,738 and 5,040 -> 8,300 events/s
# (5,900-7,800 -> 11,500 events per worker CPU second); 6,000 single-record messages at
# 1,166 -> 1,607, 977 -> 1,180 and 1,548 -> 1,550 events/s (A/B pairs in the same minutes).
# aiokafka's fetch_max_bytes (50 MB) still caps one whole fetch response.
DEFAULT_MAX_FETCH_BYTES = 4 * 1024 * 1024
DEFAULT_IO_TIMEOUT_S = 30.0
DEFAULT_LIVENESS_COMMIT_AGE_S = 300.0
DEFAULT_WEB_PORT = 6066

STORES = ("auto", "rocksdb", "memory")
ALERT_FORMATS = ("native", "ocsf")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class Setting:
    """One setting: attribute name, flag, environment variable, type, default, help line."""

    name: str
    env: str
    kind: type
    default: Any
    help: str
    flag: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("bootstrap_servers", "NHI_BOOTSTRAP_SERVERS", str, DEFAULT_BOOTSTRAP,
            "Kafka bootstrap servers, host:port[,host:port] (also KAFKA_BOOTSTRAP_SERVERS)"),
    Setting("app_id", "NHI_APP_ID", str, DEFAULT_APP_ID,
            "consumer group and prefix of internal topics (repartition, changelog)"),
    Setting("raw_topics", "NHI_RAW_TOPICS", list, list(DEFAULT_RAW_TOPICS),
            "raw audit-log topics, comma separated; TOPIC:SOURCE pins a source "
            "(e.g. ct-raw:aws.cloudtrail), a bare name auto-detects per record",
            flag="--raw-topics"),
    Setting("alerts_topic", "NHI_ALERTS_TOPIC", str, "nhi.alerts", "alerts output topic"),
    Setting("shadow_topic", "NHI_SHADOW_TOPIC", str, "nhi.alerts.shadow",
            "alerts topic used in shadow mode and for detectors configured as shadow"),
    Setting("inventory_topic", "NHI_INVENTORY_TOPIC", str, "nhi.inventory",
            "identity inventory topic (compacted, keyed by identity)"),
    Setting("dead_letter_topic", "NHI_DEAD_LETTER_TOPIC", str, "nhi.dead-letters",
            "dead-letter topic: raw record, reason, topic, partition, offset"),
    Setting("accounting_topic", "NHI_ACCOUNTING_TOPIC", str, "",
            "optional topic receiving the event ids of every processed batch (audits that "
            "no input is lost); empty disables it"),
    Setting("partitions", "NHI_PARTITIONS", int, DEFAULT_PARTITIONS,
            "partitions of the repartition topic and the state table (the unit of scale-out)"),
    Setting("replication_factor", "NHI_REPLICATION_FACTOR", int, 1,
            "replication factor of the topics the worker creates"),
    Setting("alert_format", "NHI_ALERT_FORMAT", str, "native",
            "alert payload format", choices=ALERT_FORMATS),
    Setting("shadow", "NHI_SHADOW", bool, False,
            "write every alert to the shadow topic instead of the alerts topic"),
    Setting("state_dir", "NHI_STATE_DIR", str, "./nhi-worker-data",
            "parent of the per-worker data directory (state_dir/<worker_id>)"),
    Setting("worker_id", "NHI_WORKER_ID", str, "",
            "this worker's name in its data directory (default: the host name)"),
    Setting("store", "NHI_STORE", str, "auto",
            "table store: rocksdb, memory, or auto (rocksdb when rocksdict imports)",
            choices=STORES),
    Setting("config", "NHI_CONFIG", str, "", "core configuration file (YAML)"),
    Setting("suppressions", "NHI_SUPPRESSIONS", str, "", "suppression rules file (YAML)"),
    Setting("load_state", "NHI_LOAD_STATE", str, "",
            "warm start: replay snapshot whose identities seed the state table, applied once"),
    Setting("web_host", "NHI_WEB_HOST", str, "127.0.0.1",
            "address of the health and metrics endpoint (0.0.0.0 inside a pod)"),
    Setting("web_port", "NHI_WEB_PORT", int, DEFAULT_WEB_PORT,
            "port of /livez, /readyz and /metrics; 0 picks a free port"),
    Setting("max_poll_records", "NHI_MAX_POLL_RECORDS", int, DEFAULT_MAX_POLL_RECORDS,
            "Kafka messages per poll, 1 to 10000 (a bounded poll cannot hold the worker past "
            "its session timeout)"),
    Setting("max_fetch_bytes", "NHI_MAX_FETCH_BYTES", int, DEFAULT_MAX_FETCH_BYTES,
            "bytes per partition one fetch may return (at least the largest raw message)"),
    Setting("ingest_window", "NHI_INGEST_WINDOW", float, 0.5,
            "seconds of raw messages split together into one repartition message per "
            "partition (amortises Faust's per-message cost for single-record input)"),
    Setting("ingest_max_messages", "NHI_INGEST_MAX_MESSAGES", int,
            DEFAULT_INGEST_MAX_MESSAGES,
            "raw messages at most in one ingest window: a backlog is split in windows this "
            "large instead of one per --ingest-window"),
    Setting("io_timeout", "NHI_IO_TIMEOUT", float, DEFAULT_IO_TIMEOUT_S,
            "timeout in seconds of every send and flush made by a handler"),
    Setting("liveness_commit_age", "NHI_LIVENESS_COMMIT_AGE", float,
            DEFAULT_LIVENESS_COMMIT_AGE_S,
            "liveness fails when a partition has lag and no commit for this many seconds"),
    Setting("startup_timeout", "NHI_STARTUP_TIMEOUT", float, 0.0,
            "give up (exit 3) when the broker or raw topics are missing this long; 0 waits "
            "forever, retrying with backoff"),
    Setting("lock_wait", "NHI_LOCK_WAIT", float, 30.0,
            "seconds to wait for another process to release the data directory"),
    Setting("create_topics", "NHI_CREATE_TOPICS", bool, False,
            "create missing raw topics instead of waiting for them"),
    Setting("allow_changelog_retention", "NHI_ALLOW_CHANGELOG_RETENTION", bool, False,
            "start even when a changelog topic has delete retention (not advised: "
            "identity state can be lost)"),
    Setting("session_timeout", "NHI_SESSION_TIMEOUT", float, 30.0,
            "consumer group session timeout: how fast a dead worker's partitions move"),
    Setting("commit_interval", "NHI_COMMIT_INTERVAL", float, 2.8,
            "seconds between offset commits"),
    Setting("security_protocol", "NHI_SECURITY_PROTOCOL", str, "PLAINTEXT",
            "Kafka security protocol", choices=SECURITY_PROTOCOLS),
    Setting("sasl_mechanism", "NHI_SASL_MECHANISM", str, "PLAIN",
            "SASL mechanism", choices=SASL_MECHANISMS),
    Setting("sasl_username", "NHI_SASL_USERNAME", str, "", "SASL user name"),
    Setting("sasl_password", "NHI_SASL_PASSWORD", str, "",
            "SASL password (prefer the environment variable to the flag)"),
    Setting("ssl_cafile", "NHI_SSL_CAFILE", str, "", "CA bundle for TLS"),
    Setting("ssl_certfile", "NHI_SSL_CERTFILE", str, "", "client certificate for mutual TLS"),
    Setting("ssl_keyfile", "NHI_SSL_KEYFILE", str, "", "client key for mutual TLS"),
)
BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class WorkerSettings:
    """The frozen result of flags + environment + config file + defaults."""

    bootstrap_servers: str
    app_id: str
    raw_topics: tuple[str, ...]
    alerts_topic: str
    shadow_topic: str
    inventory_topic: str
    dead_letter_topic: str
    accounting_topic: str
    partitions: int
    replication_factor: int
    alert_format: str
    shadow: bool
    state_dir: str
    worker_id: str
    store: str
    config: str
    suppressions: str
    load_state: str
    web_host: str
    web_port: int
    max_poll_records: int
    max_fetch_bytes: int
    ingest_window: float
    ingest_max_messages: int
    io_timeout: float
    liveness_commit_age: float
    startup_timeout: float
    lock_wait: float
    create_topics: bool
    allow_changelog_retention: bool
    session_timeout: float
    commit_interval: float
    security_protocol: str
    sasl_mechanism: str
    sasl_username: str
    sasl_password: str
    ssl_cafile: str
    ssl_certfile: str
    ssl_keyfile: str

    @property
    def repartition_topic(self) -> str:
        return f"{self.app_id}-events-by-identity"

    @property
    def table_name(self) -> str:
        return "identity-state"

    @property
    def changelog_topic(self) -> str:
        """The name Faust gives the state table's changelog topic."""
        return f"{self.app_id}-{self.table_name}-changelog"

    @property
    def warm_start_topic(self) -> str:
        return f"{self.app_id}-warm-start"

    @property
    def data_dir(self) -> Path:
        """One data directory per worker (B20): the worker id is part of the path."""
        return Path(self.state_dir) / (self.worker_id or socket.gethostname())

    @property
    def store_dir(self) -> Path:
        """Faust's directory inside ``data_dir``, per app id: two apps' tables share a
        name, and one's RocksDB files must never be read as the other's."""
        return self.data_dir / self.app_id

    def topic_sources(self) -> dict[str, str | None]:
        """Raw topic name -> pinned source (None: auto-detect per record)."""
        result: dict[str, str | None] = {}
        for item in self.raw_topics:
            name, _, source = item.partition(":")
            result[name] = source or None
        return result

    def resolved_store(self) -> str:
        """``rocksdb://`` when asked for (or auto and rocksdict imports), else ``memory://``."""
        if self.store == "memory":
            return "memory://"
        try:
            import rocksdict  # noqa: F401 - availability check
        except ImportError:
            if self.store == "rocksdb":
                raise ConfigError("store=rocksdb but the rocksdict package is not installed")
            return "memory://"
        return "rocksdb://"

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict for the startup log line, with the password hidden."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if values["sasl_password"]:
            values["sasl_password"] = "***"
        return values


def default_text(setting: Setting) -> str:
    """The default as ``--help`` and the table in docs/worker.md show it."""
    value = setting.default
    if setting.kind is bool:
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        value = ",".join(value)
    return str(value) if value != "" else "(empty)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults stay None so the lower layers can fill them in (the
    help shows the built-in default, which a lower layer may still replace)."""
    for setting in SETTINGS:
        shown = default_text(setting).replace("%", "%%")
        help_text = f"{setting.help} [env {setting.env}; default {shown}]"
        if setting.kind is bool:
            parser.add_argument(setting.option, dest=setting.name, default=None,
                                action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(setting.option, dest=setting.name, default=None,
                                choices=setting.choices, help=help_text,
                                type=float if setting.kind is float else
                                int if setting.kind is int else str)


def load_settings(args: argparse.Namespace | None = None,
                  environ: Mapping[str, str] | None = None,
                  file_section: Mapping[str, Any] | None = None) -> WorkerSettings:
    """Merge the four layers and validate; raises ``ConfigError`` naming the bad value."""
    environ = os.environ if environ is None else environ
    file_section = file_section or {}
    unknown = sorted(set(file_section) - set(BY_NAME))
    if unknown:
        raise ConfigError(f"worker section: unknown key(s) {unknown}")
    values = {}
    for setting in SETTINGS:
        raw, where = _pick(setting, args, environ, file_section)
        values[setting.name] = _convert(setting, raw, where)
    settings = WorkerSettings(**values)
    _validate(settings)
    return settings


def _pick(setting: Setting, args: argparse.Namespace | None, environ: Mapping[str, str],
          file_section: Mapping[str, Any]) -> tuple[Any, str]:
    from_flag = getattr(args, setting.name, None) if args is not None else None
    if from_flag is not None:
        return from_flag, setting.option
    if setting.env in environ:
        return environ[setting.env], setting.env
    if setting.name == "bootstrap_servers" and "KAFKA_BOOTSTRAP_SERVERS" in environ:
        return environ["KAFKA_BOOTSTRAP_SERVERS"], "KAFKA_BOOTSTRAP_SERVERS"
    if setting.name in file_section:
        return file_section[setting.name], f"worker.{setting.name}"
    return setting.default, "default"


def _convert(setting: Setting, raw: Any, where: str) -> Any:
    try:
        if setting.kind is list:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if setting.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in {"1", "true", "yes", "on", "0", "false", "no", "off", ""}:
                raise ValueError(f"not a boolean: {raw!r}")
            return text in {"1", "true", "yes", "on"}
        value = setting.kind(raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: invalid value {raw!r} for {setting.name}: {err}") from err
    if setting.choices and value not in setting.choices:
        raise ConfigError(f"{where}: {setting.name}={value!r} is not one of {setting.choices}")
    return value


def _validate(settings: WorkerSettings) -> None:
    if not settings.raw_topics:
        raise ConfigError("raw_topics: at least one raw topic is needed")
    if settings.partitions < 1:
        raise ConfigError(f"partitions must be at least 1, not {settings.partitions}")
    if not 1 <= settings.max_poll_records <= 10_000:
        raise ConfigError(f"max_poll_records must be in 1..10000 (a bounded poll keeps the "
                          f"worker in its group), not {settings.max_poll_records}")
    if settings.ingest_window <= 0:
        raise ConfigError("ingest_window must be positive")
    if not 1 << 20 <= settings.max_fetch_bytes <= 64 << 20:
        raise ConfigError(f"max_fetch_bytes must be in 1 MiB..64 MiB (1048576..67108864), "
                          f"not {settings.max_fetch_bytes}")
    if not 1 <= settings.ingest_max_messages <= 100_000:
        raise ConfigError(f"ingest_max_messages must be in 1..100000, "
                          f"not {settings.ingest_max_messages}")
    if settings.io_timeout <= 0:
        raise ConfigError("io_timeout must be positive: every handler I/O has a timeout")
    outputs = [settings.alerts_topic, settings.shadow_topic, settings.inventory_topic,
               settings.dead_letter_topic]
    clash = set(settings.topic_sources()) & set(outputs)
    if clash:
        raise ConfigError(f"topic(s) {sorted(clash)} used both as raw input and as output")
    if settings.security_protocol.startswith("SASL") and not settings.sasl_username:
        raise ConfigError(f"security_protocol={settings.security_protocol} needs sasl_username")
