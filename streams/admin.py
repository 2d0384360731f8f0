"""Startup checks against the broker, before Faust starts: reach it, find topics, vet configs.

- The broker is retried with exponential backoff (1 s doubling to 30 s) and one clear log
  line per attempt, never a crash loop; ``startup_timeout`` > 0 turns a long outage into
  exit code 3 with the reason.
- Missing raw topics are waited for the same way (or created with ``--create-topics``).
- Output topics are created when absent: inventory and the warm-start marker compacted.
- B16: the state table's changelog must be ``cleanup.policy=compact`` only; a changelog that
  also deletes by time or size loses baselines under a slow recovery, so the worker
  refuses to start (or warns loudly with ``--allow-changelog-retention``).
- The repartition topic must have ``partitions`` partitions: a different count would move
  identities to other partitions than their state.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from detector.errors import ConfigError, NhiError
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

BACKOFF_START_S = 1.0
BACKOFF_MAX_S = 30.0
# Every record of the compacted topics the workers write (state changelog, inventory) stays
# at least this long before the log cleaner may drop an older record of its key for it
# (``min.compaction.lag.ms``). A state or inventory record that a worker the group dropped
# sends late lands after the owner's newer one; the owner finds it within an audit
# (``streams.fencing``, every 10 s) and writes the identity again, and this lag keeps the
# cleaner from dropping the owner's record in favour of the late one meanwhile. Five
# minutes leaves room for an owner that is busy or restarting; the cleaner never touches
# the active segment anyway, so on most topics it holds nothing back.
COMPACTION_LAG_MS = 300_000
COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": str(COMPACTION_LAG_MS)}


# How long each broker is given to accept a TCP connection before it counts as gone
# (``unreachable``): a live broker on a sound network answers in milliseconds.
BROKER_PROBE_TIMEOUT_S = 1.0


def unreachable(servers: str, timeout: float = BROKER_PROBE_TIMEOUT_S) -> str | None:
    """Why none of ``servers`` (``host:port,...``) accepts a connection, or None when one
    does. A TCP connection is enough to tell: a broker that is gone refuses it or never
    answers; TLS or SASL would only fail later on a live one."""
    reasons = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return None
        except (OSError, ValueError) as err:
            reasons.append(f"{server.strip()}: {getattr(err, 'strerror', None) or err}")
    return "; ".join(reasons)


class StartupError(NhiError):
    """The broker or a topic stayed unavailable past ``startup_timeout``."""


def client_options(settings: WorkerSettings) -> dict[str, Any]:
    """kafka-python connection options (security included) shared by admin and producer."""
    return {
        "bootstrap_servers": settings.bootstrap_servers.split(","),
        "request_timeout_ms": int(settings.io_timeout * 1000),
        **security_options(settings),
    }


def security_options(settings: Any) -> dict[str, Any]:
    """kafka-python security options from anything with the worker's security attributes
    (``WorkerSettings``, or the parsed flags of ``nhi-detector produce``)."""
    options: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol.startswith("SASL"):
        options.update(sasl_mechanism=settings.sasl_mechanism,
                       sasl_plain_username=settings.sasl_username,
                       sasl_plain_password=settings.sasl_password)
    if settings.security_protocol.endswith("SSL"):
        options.update(ssl_cafile=settings.ssl_cafile or None,
                       ssl_certfile=settings.ssl_certfile or None,
                       ssl_keyfile=settings.ssl_keyfile or None)
    return options


class Waiting(NhiError):
    """An attempt found the thing not ready yet, with the line that says what is missing
    (``retry`` logs it as it is, without an exception class name)."""


def retry(what: str, attempt: Callable[[], Any], *, timeout: float,
          sleep: Callable[[float], None] | None = None,
          clock: Callable[[], float] = time.monotonic) -> Any:
    """Call ``attempt`` until it returns a value (not None), backing off between tries.

    With ``timeout`` > 0 the last pause is cut to the time left and the attempt after it is
    the last: the whole budget is used, not given up early because the next doubled pause
    would overrun it."""
    sleep = sleep or time.sleep
    delay, started = BACKOFF_START_S, clock()
    while True:
        try:
            result = attempt()
            if result is not None:
                return result
            problem = "not available yet"
        except ConfigError:
            raise
        except Waiting as err:
            problem = str(err)
        except Exception as err:  # noqa: BLE001 - any client error means "try again"
            problem = f"{type(err).__name__}: {err}"
        waited = clock() - started
        pause = delay
        if timeout:
            if waited >= timeout:
                raise StartupError(f"{what}: still failing after {waited:.0f}s: {problem}")
            pause = min(delay, timeout - waited)
        log.error("%s: %s; retrying in %s", what, problem, _seconds(pause))
        sleep(pause)
        delay = min(delay * 2, BACKOFF_MAX_S)


def _seconds(value: float) -> str:
    """``4s``, or ``0.4s`` for a pause cut short below a second."""
    return f"{value:.0f}s" if value >= 1 else f"{value:.1f}s"


def connect_admin(settings: WorkerSettings) -> Any:
    from kafka.admin import KafkaAdminClient

    # One attempt waits at most io_timeout (and never longer than the whole startup budget),
    # so the backoff loop and its one log line per attempt run, and --startup-timeout holds.
    attempt_s = settings.io_timeout
    if settings.startup_timeout:
        attempt_s = min(attempt_s, settings.startup_timeout)
    options = {**client_options(settings), "bootstrap_timeout_ms": int(attempt_s * 1000)}
    # kafka-python logs every failed connection at ERROR; our retry loop already says it
    # once per attempt with the backoff, so its own lines are only noise here. They are
    # kept back, not printed, because only they say why it failed (its exception is just
    # "Unable to bootstrap"): the retry line names that cause, e.g. a rejected password.
    causes = ConnectionCauses()
    client_log = logging.getLogger("kafka")
    level, propagate = client_log.level, client_log.propagate
    client_log.setLevel(logging.WARNING)
    client_log.propagate = False
    client_log.addHandler(causes)

    def attempt() -> Any:
        causes.clear()
        # a broker that is down or a wrong port refuses the connection at once: say so now,
        # not after the client's bootstrap has waited out the whole attempt (io_timeout)
        down = unreachable(settings.bootstrap_servers)
        if down is not None:
            raise Waiting(f"no broker accepts a connection ({down})")
        try:
            return KafkaAdminClient(**options)
        except Exception as err:
            message = causes.explain(settings)
            if message is None:
                raise
            raise BrokerConnectionError(message) from err

    try:
        return retry(f"cannot reach Kafka at {settings.bootstrap_servers}", attempt,
                     timeout=settings.startup_timeout)
    finally:
        client_log.removeHandler(causes)
        client_log.setLevel(level)
        client_log.propagate = propagate


class BrokerConnectionError(NhiError):
    """The broker could not be used, with the reason kafka-python gave for its connections."""


class ConnectionCauses(logging.Handler):
    """Keeps the exceptions kafka-python logs while it connects: an authentication failure
    first (a broker closes the connection after one, so later tries only see "socket
    disconnected"), else the last one seen. Timeouts are left out: the attempt's own time
    limit cuts requests short, and "Unable to bootstrap" is the outcome being explained."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.auth: BaseException | None = None
        self.last: BaseException | None = None

    def clear(self) -> None:
        self.auth = self.last = None

    def emit(self, record: logging.LogRecord) -> None:
        from kafka.errors import (
            AuthorizationError,
            KafkaTimeoutError,
            RequestTimedOutError,
            SaslAuthenticationFailedError,
        )

        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, SaslAuthenticationFailedError | AuthorizationError):
                self.auth = arg
            elif isinstance(arg, BaseException) and not isinstance(
                    arg, KafkaTimeoutError | RequestTimedOutError):
                self.last = arg

    def explain(self, settings: Any) -> str | None:
        protocol = settings.security_protocol
        check = "check sasl_username, sasl_password and sasl_mechanism"
        if protocol.startswith("SASL"):
            login = (f"SASL user {settings.sasl_username!r}, {settings.sasl_mechanism} over "
                     f"{protocol}")
            if self.auth is not None:
                return f"authentication failed ({login}): {self.auth}; {check}"
            if self.last is not None and "socket disconnected" in str(self.last):
                # Apache Kafka often closes the connection without sending its "failed
                # authentication" answer, so this is how most rejected logins look
                return (f"the broker closed the connection ({login}): {self.last}; Kafka "
                        f"does that when authentication fails: {check}")
        if self.auth is not None:
            return f"not authorised ({protocol}): {self.auth}"
        if self.last is not None:
            return f"connection failed ({protocol}): {self.last}"
        return None


def prepare_topics(settings: WorkerSettings, admin: Any,
                   on_missing: Callable[[list[str]], None] | None = None) -> None:
    """Run every startup check in order; raises ``StartupError`` or ``ConfigError``.

    The checks that can refuse the start come first and only read, so a worker refused
    for its partition count creates nothing: with the raw topics created first
    (``--create-topics``) they would be left with the refused count."""
    _check_repartition(settings, admin)
    check_changelog(settings, admin)
    _wait_for_raw_topics(settings, admin, on_missing)
    _create_outputs(settings, admin)


def _wait_for_raw_topics(settings: WorkerSettings, admin: Any,
                         on_missing: Callable[[list[str]], None] | None = None) -> None:
    """Wait for every raw topic (or create them); ``on_missing`` hears the missing ones
    (none at the end) at every look, for the health endpoint and its gauge."""
    wanted = sorted(settings.topic_sources())

    def missing_or_none() -> bool | None:
        missing = [t for t in wanted if t not in set(admin.list_topics())]
        if missing and settings.create_topics:
            _create(admin, missing, settings.partitions, settings.replication_factor)
            return True
        if on_missing is not None:
            on_missing(missing)
        if missing:
            raise Waiting(f"raw topic(s) {', '.join(missing)} do not exist on "
                          f"{settings.bootstrap_servers} (create them, or pass "
                          f"--create-topics)")
        return True

    retry(f"raw topics {wanted}", missing_or_none, timeout=settings.startup_timeout)


def _create_outputs(settings: WorkerSettings, admin: Any) -> None:
    existing = set(admin.list_topics())
    # the repartition topic is created here (not left to Faust) so warm-start seeds can be
    # sent to it before the app starts, with the right partition count
    plain = [settings.alerts_topic, settings.shadow_topic, settings.dead_letter_topic,
             settings.repartition_topic]
    if settings.accounting_topic:
        plain.append(settings.accounting_topic)
    _create(admin, [t for t in plain if t not in existing], settings.partitions,
            settings.replication_factor)
    compacted = [settings.inventory_topic, settings.warm_start_topic]
    _create(admin, [t for t in compacted if t not in existing], settings.partitions,
            settings.replication_factor, COMPACTED)
    if settings.inventory_topic in existing:
        check_compaction_lag(admin, settings.inventory_topic)


def _create(admin: Any, topics: list[str], partitions: int, replication: int,
            configs: dict[str, str] | None = None) -> None:
    from kafka.admin import NewTopic
    from kafka.errors import InvalidReplicationFactorError, TopicAlreadyExistsError

    for name in topics:
        try:
            admin.create_topics([NewTopic(name, partitions, replication,
                                          topic_configs=dict(configs or {}))])
            log.info("created topic %s (%d partitions%s)", name, partitions,
                     f", {configs}" if configs else "")
        except TopicAlreadyExistsError:
            pass
        except InvalidReplicationFactorError:
            # retrying cannot help, and the broker's answer is a page of request repr
            raise ConfigError(f"replication_factor: {replication} is more than the "
                              f"{_broker_count(admin)} broker(s) of the cluster: topic "
                              f"{name} cannot be created") from None


def _broker_count(admin: Any) -> str:
    try:
        return str(len(admin.describe_cluster()["brokers"]))
    except Exception:  # noqa: BLE001 - only for the message; the error stands without it
        return "available"


def _check_repartition(settings: WorkerSettings, admin: Any) -> None:
    name = settings.repartition_topic
    if name not in set(admin.list_topics()):
        return
    described = admin.describe_topics([name])
    count = len(described[0].get("partitions") or []) if described else 0
    if count and count != settings.partitions:
        raise ConfigError(
            f"repartition topic {name} has {count} partitions but partitions="
            f"{settings.partitions}: identities would no longer meet their state; use "
            f"--partitions {count} or a new --app-id")


def changelog_problems(configs: dict[str, str]) -> list[str]:
    """What makes a changelog config unsafe for baselines (B16); empty when it is fine."""
    problems = []
    policy = {p.strip() for p in configs.get("cleanup.policy", "compact").split(",")}
    if policy != {"compact"}:
        problems.append(f"cleanup.policy={configs.get('cleanup.policy')} (must be compact)")
    return problems


def topic_configs(admin: Any, topic: str) -> dict[str, str] | None:
    """The topic's explicit configs (name -> value) or None when they cannot be read."""
    from kafka.admin import ConfigResource, ConfigResourceType

    result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    if isinstance(result, dict):
        entries = (result.get("topic") or {}).get(topic) or {}
        return {k: str(v.get("value")) for k, v in entries.items() if isinstance(v, dict)}
    return None


def short_compaction_lag(configs: dict[str, str]) -> bool:
    """Whether a compacted topic's config lets the cleaner drop records younger than
    ``COMPACTION_LAG_MS`` (a value that is not a number counts as short)."""
    try:
        return int(configs.get("min.compaction.lag.ms", "0")) < COMPACTION_LAG_MS
    except ValueError:
        return True


def check_compaction_lag(admin: Any, topic: str, configs: dict[str, str] | None = None) -> None:
    """Warn, with the command that fixes it, when ``topic`` (made by an earlier release, or
    by hand) lets the cleaner compact records younger than ``COMPACTION_LAG_MS``."""
    if configs is None:
        configs = topic_configs(admin, topic)
    if configs is None or not short_compaction_lag(configs):
        return
    log.warning("topic %s has min.compaction.lag.ms=%s: a state or inventory record that a "
                "worker dropped from the group writes late can then win over its owner's "
                "newer one before the owner writes it again (docs/worker.md, Delivery and "
                "state). Fix with: kafka-configs --alter --entity-type topics --entity-name "
                "%s --add-config min.compaction.lag.ms=%d", topic,
                configs.get("min.compaction.lag.ms", "0"), topic, COMPACTION_LAG_MS)


def check_changelog(settings: WorkerSettings, admin: Any) -> None:
    name = settings.changelog_topic
    if name not in set(admin.list_topics()):
        return
    configs = topic_configs(admin, name)
    if configs is None:
        log.warning("could not read the configuration of changelog %s; B16 check skipped", name)
        return
    check_compaction_lag(admin, name, configs)
    problems = changelog_problems(configs)
    if not problems:
        return
    message = (f"changelog topic {name} is unsafe for baselines: {'; '.join(problems)}. "
               f"Retention would delete identity state while a worker recovers it. Fix with: "
               f"kafka-configs --alter --entity-type topics --entity-name {name} "
               f"--add-config cleanup.policy=compact")
    if settings.allow_changelog_retention:
        log.warning("%s (starting anyway: --allow-changelog-retention)", message)
        return
    raise ConfigError(message)
