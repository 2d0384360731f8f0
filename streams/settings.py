"""The worker's settings: declared once, each with its flag, environment variable and default.

Precedence, highest first: command-line flag, environment variable (``NHI_*``), the
``worker:`` section of the ``--config`` file, the default below. The result is a frozen
``WorkerSettings`` built before anything connects to Kafka. ``docs/worker.md`` lists the
same table for operators.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
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
class Bounds:
    """An accepted numeric range, written into the error so the operator sees the fix.

    ``open_low`` refuses the low bound itself: a duration of 0 seconds would turn a timer
    into a busy loop or a window that never closes.
    """

    low: float
    high: float
    unit: str = ""
    open_low: bool = False

    def text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        low, high = _plain(self.low), _plain(self.high)
        if self.open_low:
            return f"more than {low} and at most {high}{unit}"
        return f"in {low}..{high}{unit}"

    def check(self, where: str, value: float) -> None:
        """Raise ``ConfigError`` for a value outside the range, NaN and infinities included
        (every comparison with NaN is false, so a plain ``value < low`` lets it through)."""
        inside = math.isfinite(value) and self.low <= value <= self.high
        if not inside or (self.open_low and value == self.low):
            raise ConfigError(f"{where}: must be {self.text()}, not {value!r}")


SECONDS = "seconds"


def _plain(number: float) -> str:
    """``1048576`` and ``0.1``, never ``1.04858e+06``: the operator copies it into a flag."""
    return str(int(number)) if float(number).is_integer() else repr(number)


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
    # numbers: the accepted range, checked for every layer (flag, environment, file)
    bounds: Bounds | None = None
    # text: "topic" (a Kafka topic name), "optional_topic" (the same, or empty), "app_id",
    # "worker_id", "servers" (host:port list), "directory" or "file" (paths checked)
    check: str | None = None

    @property
    def option(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("bootstrap_servers", "NHI_BOOTSTRAP_SERVERS", str, DEFAULT_BOOTSTRAP,
            "Kafka bootstrap servers, host:port[,host:port] (also KAFKA_BOOTSTRAP_SERVERS)",
            check="servers"),
    Setting("app_id", "NHI_APP_ID", str, DEFAULT_APP_ID,
            "consumer group and prefix of internal topics (repartition, changelog)",
            check="app_id"),
    Setting("raw_topics", "NHI_RAW_TOPICS", list, list(DEFAULT_RAW_TOPICS),
            "raw audit-log topics, comma separated; TOPIC:SOURCE pins a source "
            "(e.g. ct-raw:aws.cloudtrail), a bare name auto-detects per record",
            flag="--raw-topics", check="raw_topics"),
    Setting("alerts_topic", "NHI_ALERTS_TOPIC", str, "nhi.alerts", "alerts output topic",
            check="topic"),
    Setting("shadow_topic", "NHI_SHADOW_TOPIC", str, "nhi.alerts.shadow",
            "alerts topic used in shadow mode and for detectors configured as shadow",
            check="topic"),
    Setting("inventory_topic", "NHI_INVENTORY_TOPIC", str, "nhi.inventory",
            "identity inventory topic (compacted, keyed by identity)",
            check="topic"),
    Setting("dead_letter_topic", "NHI_DEAD_LETTER_TOPIC", str, "nhi.dead-letters",
            "dead-letter topic: raw record, reason, topic, partition, offset",
            check="topic"),
    Setting("accounting_topic", "NHI_ACCOUNTING_TOPIC", str, "",
            "optional topic receiving the event ids of every processed batch (audits that "
            "no input is lost); empty disables it",
            check="optional_topic"),
    Setting("partitions", "NHI_PARTITIONS", int, DEFAULT_PARTITIONS,
            "partitions of the repartition topic and the state table (the unit of scale-out)",
            bounds=Bounds(1, 10_000)),
    Setting("replication_factor", "NHI_REPLICATION_FACTOR", int, 1,
            "replication factor of the topics the worker creates",
            bounds=Bounds(1, 32_767)),
    Setting("alert_format", "NHI_ALERT_FORMAT", str, "native",
            "alert payload format", choices=ALERT_FORMATS),
    Setting("shadow", "NHI_SHADOW", bool, False,
            "write every alert to the shadow topic instead of the alerts topic"),
    Setting("state_dir", "NHI_STATE_DIR", str, "./nhi-worker-data",
            "parent of the per-worker data directory (state_dir/<worker_id>)",
            check="directory"),
    Setting("worker_id", "NHI_WORKER_ID", str, "",
            "this worker's name in its data directory (default: the host name)",
            check="worker_id"),
    Setting("store", "NHI_STORE", str, "auto",
            "table store: rocksdb, memory, or auto (rocksdb when rocksdict imports)",
            choices=STORES),
    Setting("config", "NHI_CONFIG", str, "", "core configuration file (YAML)"),
    Setting("suppressions", "NHI_SUPPRESSIONS", str, "", "suppression rules file (YAML)",
            check="file"),
    Setting("load_state", "NHI_LOAD_STATE", str, "",
            "warm start: replay snapshot whose identities seed the state table, applied once",
            check="file"),
    Setting("web_host", "NHI_WEB_HOST", str, "127.0.0.1",
            "address of the health and metrics endpoint (0.0.0.0 inside a pod)"),
    Setting("web_port", "NHI_WEB_PORT", int, DEFAULT_WEB_PORT,
            "port of /livez, /readyz, /startupz and /metrics; 0 picks a free port",
            bounds=Bounds(0, 65_535)),
    Setting("max_poll_records", "NHI_MAX_POLL_RECORDS", int, DEFAULT_MAX_POLL_RECORDS,
            "Kafka messages per poll (a bounded poll cannot hold the worker past its session "
            "timeout)",
            bounds=Bounds(1, 10_000)),
    Setting("max_fetch_bytes", "NHI_MAX_FETCH_BYTES", int, DEFAULT_MAX_FETCH_BYTES,
            "bytes per partition one fetch may return (at least the largest raw message)",
            bounds=Bounds(1 << 20, 64 << 20, "bytes")),
    Setting("ingest_window", "NHI_INGEST_WINDOW", float, 0.5,
            "no longer used: raw messages are split together as they arrive, up to "
            "--ingest-max-messages (kept so that existing settings still load)",
            bounds=Bounds(0, 60, SECONDS, open_low=True)),
    Setting("ingest_max_messages", "NHI_INGEST_MAX_MESSAGES", int,
            DEFAULT_INGEST_MAX_MESSAGES,
            "raw messages at most in one ingest window (those fetched while the previous "
            "window was split), and at most waiting to be split",
            bounds=Bounds(1, 100_000)),
    Setting("io_timeout", "NHI_IO_TIMEOUT", float, DEFAULT_IO_TIMEOUT_S,
            "timeout in seconds of every send and flush made by a handler",
            bounds=Bounds(0, 3600, SECONDS, open_low=True)),
    Setting("liveness_commit_age", "NHI_LIVENESS_COMMIT_AGE", float,
            DEFAULT_LIVENESS_COMMIT_AGE_S,
            "liveness fails when a partition has lag and no commit for this many seconds",
            bounds=Bounds(0, 86_400, SECONDS, open_low=True)),
    Setting("startup_timeout", "NHI_STARTUP_TIMEOUT", float, 0.0,
            "give up (exit 3) when the broker or raw topics are missing this long; 0 waits "
            "forever, retrying with backoff",
            bounds=Bounds(0, 86_400, SECONDS)),
    Setting("lock_wait", "NHI_LOCK_WAIT", float, 30.0,
            "seconds to wait for another process to release the data directory",
            bounds=Bounds(0, 86_400, SECONDS)),
    Setting("create_topics", "NHI_CREATE_TOPICS", bool, False,
            "create missing raw topics instead of waiting for them"),
    Setting("allow_changelog_retention", "NHI_ALLOW_CHANGELOG_RETENTION", bool, False,
            "start even when a changelog topic has delete retention (not advised: "
            "identity state can be lost)"),
    Setting("session_timeout", "NHI_SESSION_TIMEOUT", float, 30.0,
            "consumer group session timeout: how fast a dead worker's partitions move",
            bounds=Bounds(1, 1800, SECONDS)),
    Setting("commit_interval", "NHI_COMMIT_INTERVAL", float, 2.8,
            "seconds between offset commits",
            bounds=Bounds(0.1, 3600, SECONDS)),
    Setting("security_protocol", "NHI_SECURITY_PROTOCOL", str, "PLAINTEXT",
            "Kafka security protocol", choices=SECURITY_PROTOCOLS),
    Setting("sasl_mechanism", "NHI_SASL_MECHANISM", str, "PLAIN",
            "SASL mechanism", choices=SASL_MECHANISMS),
    Setting("sasl_username", "NHI_SASL_USERNAME", str, "", "SASL user name"),
    Setting("sasl_password", "NHI_SASL_PASSWORD", str, "",
            "SASL password (prefer the environment variable to the flag)"),
    Setting("ssl_cafile", "NHI_SSL_CAFILE", str, "", "CA bundle for TLS",
            check="file"),
    Setting("ssl_certfile", "NHI_SSL_CERTFILE", str, "", "client certificate for mutual TLS",
            check="file"),
    Setting("ssl_keyfile", "NHI_SSL_KEYFILE", str, "", "client key for mutual TLS",
            check="file"),
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


def meaning_text(setting: Setting) -> str:
    """The help line with the accepted range, as ``--help`` and docs/worker.md show it."""
    return setting.help + (f" ({setting.bounds.text()})" if setting.bounds else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults stay None so the lower layers can fill them in (the
    help shows the built-in default, which a lower layer may still replace)."""
    for setting in SETTINGS:
        shown = default_text(setting).replace("%", "%%")
        help_text = f"{meaning_text(setting)} [env {setting.env}; default {shown}]"
        if setting.kind is bool:
            parser.add_argument(setting.option, dest=setting.name, default=None,
                                action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(setting.option, dest=setting.name, default=None,
                                choices=setting.choices, help=help_text,
                                type=float if setting.kind is float else
                                int if setting.kind is int else str)


def check_section_keys(section: Mapping[str, Any]) -> None:
    """Refuse a key of the ``worker:`` section that names no setting. The one check of
    those keys: the worker makes it (``load_settings``), and so does every command that
    reads the config file (``detector.config``), so a key that would stop the worker
    fails a replay of the same file first. Values are checked by the worker, where flags
    and the environment may complete them."""
    from detector.config import did_you_mean

    unknown = sorted(str(key) for key in set(section) - set(BY_NAME))
    if unknown:
        hint = did_you_mean(unknown[0], sorted(BY_NAME)) if len(unknown) == 1 else ""
        raise ConfigError(f"worker section: unknown key(s) {unknown}{hint}; known: "
                          f"{', '.join(sorted(BY_NAME))}")


def load_settings(args: argparse.Namespace | None = None,
                  environ: Mapping[str, str] | None = None,
                  file_section: Mapping[str, Any] | None = None, *,
                  check_paths: bool = False) -> WorkerSettings:
    """Merge the four layers and validate; raises ``ConfigError`` naming the bad value.

    ``check_paths`` also checks that the files exist and the state directory can be made:
    the worker asks for it before it starts; settings rendered for another host (the Helm
    chart's pod) are only checked in form.
    """
    environ = os.environ if environ is None else environ
    file_section = file_section or {}
    check_section_keys(file_section)
    values = {}
    for setting in SETTINGS:
        raw, where = _pick(setting, args, environ, file_section)
        values[setting.name] = _convert(setting, raw, where, check_paths)
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


def _convert(setting: Setting, raw: Any, where: str, check_paths: bool = False) -> Any:
    _check_type(setting, raw, where)
    try:
        if setting.kind is list:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            value = tuple(str(item).strip() for item in items if str(item).strip())
        elif setting.kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text not in {"1", "true", "yes", "on", "0", "false", "no", "off", ""}:
                raise ValueError(f"not a boolean: {raw!r}")
            return text in {"1", "true", "yes", "on"}
        elif setting.kind in (int, float):
            value = _number(setting.kind, raw)
        else:
            value = setting.kind(raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: invalid value {raw!r} for {setting.name}: {err}") from err
    if setting.choices and value not in setting.choices:
        raise ConfigError(f"{where}: {setting.name}={value!r} is not one of {setting.choices}")
    if setting.bounds is not None:
        setting.bounds.check(where, value)
    for text in value if isinstance(value, tuple) else (value,):
        if isinstance(text, str):
            _check_utf8(where, text)
    if setting.check in PATH_CHECKS:
        if check_paths:
            PATH_CHECKS[setting.check](where, value)
    elif setting.check:
        CHECKS[setting.check](where, value)
    return value


# What each kind of setting takes, in the words of the error; text is always accepted,
# since flags and environment variables are text and are converted like the file's text
EXPECTED = {str: "text", int: "a whole number", float: "a number", bool: "true or false",
            list: "text (names separated by commas) or a list of text"}
# Why YAML turned unquoted text into another type, for the types that surprise people
YAML_READS = {
    bool: "YAML reads an unquoted yes, no, on, off, true or false as a boolean",
    int: "YAML reads unquoted digits as a number, so a leading 0 is lost: 0123 is 123",
    float: "YAML reads unquoted digits with a point or an exponent as a number",
    type(None): "YAML reads an empty value or ~ as null",
}


def _check_type(setting: Setting, raw: Any, where: str) -> None:
    """Refuse a value of the wrong type before any conversion (a config file's YAML gives
    numbers, booleans, nulls, lists and mappings; flags and the environment give text).

    ``str()`` of it would be accepted silently and mean something else: ``0123`` read as
    the octal 83 becomes the user name '83', ``no`` the consumer group 'False', and a list
    a password nobody typed. The line names the key, the value as YAML read it (never a
    password's) and what was expected; quoting a text value keeps it as written."""
    kind = setting.kind
    if isinstance(raw, str) or (kind is bool and isinstance(raw, bool)):
        return
    if kind in (int, float) and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return
    inside = ""
    if kind is list and isinstance(raw, (list, tuple)):
        wrong = [item for item in raw if not isinstance(item, str)]
        if not wrong:
            return
        raw, inside = wrong[0], " in the list"
    got = _described(raw, hidden=setting.name == "sasl_password")
    text = f"{where}: expected {EXPECTED[kind]}, got {got}{inside}"
    reason = YAML_READS.get(type(raw))
    if reason and (kind in (str, list) or isinstance(raw, bool)):
        text += f" ({reason})"
    if kind in (str, list) and not isinstance(raw, (list, tuple, dict)):
        text += f"; write it in quotes ({setting.name}: \"...\")"
    raise ConfigError(text)


def _described(value: Any, *, hidden: bool) -> str:
    """``the number 83``, ``the boolean False``, ``a list`` (a secret's value hidden)."""
    if value is None:
        return "null"
    what = {bool: "boolean", int: "number", float: "number", list: "list", tuple: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)
    return f"a {what} (value hidden)" if hidden else f"the {what} {value!r}"


def _number(kind: type, raw: Any) -> float:
    """``int(2.7)`` would silently drop the fraction of a config file's ``2.7``: it is
    refused instead (a YAML boolean never gets here, ``_check_type`` refuses it)."""
    if kind is int and isinstance(raw, float):
        if not raw.is_integer():
            raise ValueError("not a whole number")
        return int(raw)
    try:
        return kind(raw)
    except ValueError:  # Python's "invalid literal for int() with base 10" says less
        raise ValueError("expected a whole number" if kind is int
                         else "expected a number") from None


def _check_utf8(where: str, text: str) -> None:
    """A flag or environment value that is not UTF-8 arrives with surrogate escapes; Kafka
    names and the log lines need real text, so it is refused here, not at the first send."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:  # the bytes as they were given, e.g. b'a\xff', rather than Python's escapes
            shown = repr(os.fsencode(text))
        except UnicodeError:
            shown = repr(text)
        raise ConfigError(f"{where}: {shown} is not valid UTF-8 text") from None


# Kafka's own rule for topic names (and so for the prefix of the worker's internal topics)
TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")
TOPIC_MAX_CHARS = 249
# the longest internal topic name is "<app_id>-identity-state-changelog"
APP_ID_MAX_CHARS = TOPIC_MAX_CHARS - len("-identity-state-changelog")


def _check_name(where: str, name: str, what: str, limit: int) -> None:
    if not name or name in (".", "..") or not TOPIC_CHARS.fullmatch(name) \
            or len(name) > limit:
        raise ConfigError(f"{where}: {name!r} is not a valid {what}: 1 to {limit} characters "
                          f"of A-Z a-z 0-9 . _ - (not . or ..)")


def _check_topic(where: str, value: str) -> None:
    _check_name(where, value, "Kafka topic name", TOPIC_MAX_CHARS)


def _check_optional_topic(where: str, value: str) -> None:
    if value:
        _check_topic(where, value)


def _check_app_id(where: str, value: str) -> None:
    _check_name(where, value, "app id (it prefixes topic names)", APP_ID_MAX_CHARS)


def _check_worker_id(where: str, value: str) -> None:
    if value:
        _check_name(where, value, "worker id (it names a directory)", 255)


def _check_raw_topics(where: str, value: tuple[str, ...]) -> None:
    from detector.sources import canonical_source

    for item in value:
        name, colon, source = item.partition(":")
        _check_topic(where, name)
        if colon:
            try:  # the parser's own names, short ones (aws, k8s) included
                canonical_source(source)
            except ValueError as err:
                raise ConfigError(f"{where}: {item!r} pins an {err}") from None


def _check_servers(where: str, value: str) -> None:
    for server in value.split(","):
        host, colon, port = server.strip().rpartition(":")
        if not (colon and host and port.isdigit() and 1 <= int(port) <= 65_535):
            raise ConfigError(f"{where}: {server!r} is not host:port with a port in 1..65535")


def _check_directory(where: str, value: str) -> None:
    """The path, or the nearest part of it that exists, must be a writable directory: the
    worker creates the rest and its lock file there."""
    if not value:
        raise ConfigError(f"{where}: a directory is needed, not an empty value")
    path = Path(value)
    for part in (path, *path.parents):
        if not os.path.lexists(part):
            continue
        if not part.is_dir():
            raise ConfigError(f"{where}: {value!r} cannot be a directory: {str(part)!r} "
                              f"is not a directory")
        if not os.access(part, os.W_OK | os.X_OK):
            raise ConfigError(f"{where}: {value!r} cannot be created: {str(part)!r} is "
                              f"not writable")
        return


def _check_file(where: str, value: str) -> None:
    if value and not Path(value).is_file():
        raise ConfigError(f"{where}: {value!r} is not a readable file")


CHECKS = {
    "topic": _check_topic, "optional_topic": _check_optional_topic, "app_id": _check_app_id,
    "worker_id": _check_worker_id, "raw_topics": _check_raw_topics, "servers": _check_servers,
}
PATH_CHECKS = {"directory": _check_directory, "file": _check_file}


def check_setting(name: str, value: Any, where: str) -> Any:
    """One worker setting's checks, paths included, for another command (produce)."""
    return _convert(BY_NAME[name], value, where, check_paths=True)


def check_text(where: str, value: str, check: str | None) -> None:
    """The text checks of the worker's settings, for another command's flag (produce)."""
    _check_utf8(where, value)
    if check:
        CHECKS[check](where, value)


def _validate(settings: WorkerSettings) -> None:
    """Rules across settings; each setting's own range and form are checked in ``_convert``."""
    if not settings.raw_topics:
        raise ConfigError("raw_topics: at least one raw topic is needed")
    outputs = [settings.alerts_topic, settings.shadow_topic, settings.inventory_topic,
               settings.dead_letter_topic]
    clash = set(settings.topic_sources()) & set(outputs)
    if clash:
        raise ConfigError(f"topic(s) {sorted(clash)} used both as raw input and as output")
    if settings.security_protocol.startswith("SASL") and not settings.sasl_username:
        raise ConfigError(f"security_protocol={settings.security_protocol} needs sasl_username")
