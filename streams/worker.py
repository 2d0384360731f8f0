"""``nhi-detector worker``: run the streaming detector on Kafka (Faust).

Startup, in order: settings (flags > ``NHI_*`` environment > ``worker:`` section of
``--config`` > defaults); the health endpoint (answers probes from the first second); the
per-worker data directory lock (B20); the detector; the broker and topic checks with
backoff (``streams.admin``); the optional warm start (``streams.warmstart``); then the Faust
worker until SIGTERM or SIGINT, which finish the buffered messages, commit, flush and close
(or end at once when no broker answers: nothing could be committed, see ``stop_at_once``).

Exit codes: 0 stopped on a signal, 2 invalid configuration or state file, 3 broker or
topics unavailable past ``--startup-timeout``, 70 a send kept failing at run time (the
worker then ends at once, see ``streams.app.Runtime.fatal``), 74 the state store could not
be opened, read or written, at an assignment, in table recovery or at run time
(``streams.datadir.store_failure``; ended the same way).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any, NoReturn

from detector import __version__
from detector.errors import ConfigError, StateError
from detector.replay import relaxed_gc
from detector.stats import RunStats
from streams import settings as worker_settings
from streams.settings import WorkerSettings

log = logging.getLogger(__name__)

EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    worker_settings.add_arguments(parser)


def build_detector(config: dict[str, Any], settings: WorkerSettings, stats: RunStats) -> Any:
    from detector.engine import Detector

    if settings.suppressions:
        config = {**config, "suppressions_file": settings.suppressions}
    return Detector(config, stats=stats, shadow=settings.shadow)


def identity_rules(config: dict[str, Any]) -> Any:
    from detector.identity import IdentityRules

    return IdentityRules.from_config(config.get("identities"))


def run(args: argparse.Namespace) -> int:
    """Entry point; returns the exit code (see the module docstring)."""
    from detector.config import load_config

    try:
        config = load_config(args.config or os.environ.get("NHI_CONFIG") or None)
        settings = worker_settings.load_settings(args, os.environ, config.get("worker"),
                                                 check_paths=True)
    except ConfigError as err:
        print(f"nhi-detector worker: {err}", file=sys.stderr)
        return EXIT_CONFIG
    from streams import logs

    noise = logs.install()
    if logging.getLogger().isEnabledFor(logging.INFO):  # -v: not one of the default lines
        log.info("worker settings: %s", settings.redacted())
    log.info("nhi-detector worker %s started: broker %s, topics %s, state dir %s, mode %s",
             __version__, settings.bootstrap_servers, ", ".join(settings.raw_topics),
             settings.data_dir, _mode(settings))
    return _run(settings, config, noise)


def _mode(settings: WorkerSettings) -> str:
    target = settings.shadow_topic if settings.shadow else settings.alerts_topic
    kind = "shadow" if settings.shadow else "live"
    return f"{kind} ({settings.alert_format} alerts to {target})"


def _run(settings: WorkerSettings, config: dict[str, Any], noise: Any = None) -> int:
    from streams.admin import StartupError
    from streams.datadir import DataDirLock
    from streams.health import HealthServer, HealthState

    stats = RunStats()
    state = HealthState(settings.liveness_commit_age)
    holder: dict[str, Any] = {}
    try:
        server = HealthServer(state, stats, host=settings.web_host, port=settings.web_port,
                              worker_values=lambda: _worker_values(holder, state)).start()
    except OSError as err:
        print(f"nhi-detector worker: cannot serve health on {settings.web_host}:"
              f"{settings.web_port}: {err.strerror} (another worker on this host needs its "
              f"own --web-port)", file=sys.stderr)
        return EXIT_CONFIG
    lock = DataDirLock(settings.data_dir)
    signals = StartupSignals().install()
    holder["signals"] = signals
    try:
        lock.acquire(wait=settings.lock_wait)
        return _start(settings, config, stats, state, server, holder, noise)
    except StoppedWhileStarting as stopped:
        log.info("stopping (%s) while starting (%s): nothing was read or committed yet",
                 stopped.signal_name, state.reason)
        log.info("stopped (exit 0; no offsets committed)")
        return 0
    except (ConfigError, StateError) as err:
        log.error("%s", err)
        print(f"nhi-detector worker: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as err:
        log.error("%s", err)
        print(f"nhi-detector worker: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        signals.restore()
        state.set_phase("stopped", ready=False, reason="worker stopped")
        lock.release()
        server.stop()


class StoppedWhileStarting(BaseException):  # a stop, not an error: no "Error" in its name
    """SIGTERM or SIGINT before Faust runs (broker or topics waited for, a warm start).
    A ``BaseException``, as ``KeyboardInterrupt``: the retry loops and the Kafka client
    treat every ``Exception`` as a failed attempt to try again."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


class StartupSignals:
    """SIGTERM and SIGINT while the worker starts: a clean stop (exit 0, logged), not the
    bare exit 143 of Python's default handler while it waits for a broker or a topic.
    Faust's worker sets its own handlers once it runs; ``restore`` comes before that."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    def install(self) -> StartupSignals:
        def stop(signum: int, _frame: Any) -> None:
            raise StoppedWhileStarting(signal.Signals(signum).name)

        if threading.current_thread() is threading.main_thread():  # tests run it in one
            self._previous = {sig: signal.signal(sig, stop) for sig in self.SIGNALS}
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def _worker_values(holder: dict[str, Any], state: Any) -> dict[str, Any]:
    values = {"ready": state.ready, "raw_topics": state.raw_topics,
              "offset_resets": state.offset_resets}
    pipeline = holder.get("pipeline")
    if pipeline is not None:
        values.update(failed=dict(pipeline.failed), redelivered=pipeline.redelivered)
    topics = holder.get("topics")
    if topics is not None:
        values["broker_silence"] = topics.broker_silence()
    late = holder.get("late_writes")
    if late is not None:
        values.update(late_writes=late.count, stale_states_skipped=late.stale_skipped)
    return values


def _start(settings: WorkerSettings, config: dict[str, Any], stats: RunStats, state: Any,
           server: Any, holder: dict[str, Any], noise: Any = None) -> int:
    from streams.admin import connect_admin, prepare_topics
    from streams.app import Runtime, create_app
    from streams.peerstore import load_peers
    from streams.pipeline import Pipeline
    from streams.topics import watch_raw_topics

    detector = build_detector(config, settings, stats)
    snapshot = None
    if settings.load_state:  # refused before a topic exists (or is created) for it
        from streams.warmstart import check_snapshot

        snapshot = check_snapshot(detector, settings.load_state)
    load_peers(settings.store_dir, detector)  # what its peers use, kept across restarts
    server.metrics.attach(detector)
    servers = settings.bootstrap_servers
    state.set_phase("connecting", ready=False, reason=f"connecting to {servers}")
    admin = connect_admin(settings)
    wanted = sorted(settings.topic_sources())

    def on_missing(missing: list[str]) -> None:
        # the probes and nhi_worker_raw_topic_missing tell a topic the worker waits for
        # from a broker it cannot reach
        waited = sorted(topic for topic, gone in state.raw_topics.items() if gone)
        state.raw_topics = {topic: topic in missing for topic in wanted}
        if waited and not missing:
            log.info("raw topic(s) %s exist now: starting", ", ".join(waited))
        if missing:
            state.set_phase("connecting", ready=False, reason=f"waiting for raw topic(s) "
                            f"{', '.join(missing)} on {servers}")

    try:
        prepare_topics(settings, admin, on_missing)
    finally:
        admin.close()
    if settings.load_state:
        from streams.warmstart import apply_snapshot

        apply_snapshot(settings, detector, settings.load_state, snapshot)
    pipeline = Pipeline(detector, stats, partitions=settings.partitions,
                        topic_sources=settings.topic_sources(),
                        alert_format=settings.alert_format, shadow=settings.shadow,
                        accounting=bool(settings.accounting_topic),
                        rules=identity_rules(config))
    holder["pipeline"] = pipeline
    runtime = Runtime(settings, pipeline, state, server.metrics)
    runtime.on_ready = lambda assignment: log.info(
        "ready (partitions %s)", assigned_text(assignment))
    app = create_app(settings, runtime)
    holder["late_writes"] = runtime.late_writes
    state.set_phase("recovering", ready=False, reason="starting Faust")
    # Faust installs its own handlers as it starts; restored before the topic watcher's
    # thread starts, which only the ``finally`` below stops
    holder["signals"].restore()
    runtime.topics = holder["topics"] = watch_raw_topics(settings)
    try:
        return _run_faust(app, runtime, noise)
    finally:
        runtime.topics.stop()


def _run_faust(app: Any, runtime: Any, noise: Any = None) -> int:
    import faust

    from streams.profiling import profiled

    sampler: Any = None

    class Worker(faust.Worker):
        def _on_sigint(self) -> None:
            self._stopping("SIGINT")
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            self._stopping("SIGTERM")
            super()._on_sigterm()

        def _stopping(self, signal_name: str) -> None:
            if sampler is not None:
                sampler.counting.clear()
            from streams.admin import unreachable

            down = unreachable(runtime.settings.bootstrap_servers)
            if down is not None:
                stop_at_once(app, runtime, signal_name, down)
            log.info("stopping (%s): finishing buffered messages, committing offsets",
                     signal_name)

    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    worker = Worker(app, loglevel=level, quiet=True, redirect_stdouts=False,
                    override_logging=False)
    # Faust's progress spinner writes terminal escapes ("\b\x1b[?25h") to stdout even when
    # it is a file or a pipe; the lifecycle log lines say what it would show.
    worker.spinner = None
    code: Any = 0
    with profiled() as sampler:
        if sampler is not None:
            # profile the running worker only: from ready to the stop signal
            sampler.counting.clear()
            announce = runtime.on_ready

            def on_ready(assignment: Any) -> None:
                sampler.counting.set()
                if announce is not None:
                    announce(assignment)

            runtime.on_ready = on_ready
        try:
            # the replay's collector policy (detector.replay.relaxed_gc): every event
            # allocates many containers (here also Faust's per-message events and
            # futures), nearly all freed by reference counting; measured in
            # docs/worker.md (Throughput)
            with relaxed_gc():
                worker.execute_from_commandline()
        except SystemExit as exc:
            code = exc.code
    runtime.health.set_phase("stopping", ready=False, reason="worker stopped")
    log.info("stopped (exit %s; %s%s)", code or 0, committed_text(app, runtime),
             _buffer_text(noise))
    return int(code or 0)


def stop_at_once(app: Any, runtime: Any, signal_name: str, down: str) -> NoReturn:
    """End the worker now, on a stop signal while no broker answers.

    Faust's graceful stop commits offsets and flushes the producer, which needs the broker:
    with it gone, each step waits for its timeout (a minute in all) while the client logs
    a connection error every 100 ms, and the consumer thread ends with a traceback. Nothing
    can be committed anyway, and nothing is lost by leaving: a restart reads again every
    message after the last commit (at least once), as after a crash."""
    from streams.app import exit_now

    log.info("stopping (%s): no broker answers (%s), so nothing can be committed: "
             "exiting now; a restart reads again what was not committed",
             signal_name, down)
    runtime.health.set_phase("stopping", ready=False, reason="worker stopped")
    log.info("stopped (exit 0; %s)", committed_text(app, runtime))
    exit_now(0)


def assigned_text(assignment: Any) -> str:
    """Partitions assigned per topic, e.g. ``a 1, app-events-by-identity 2``: the raw topics'
    and the identity topic's are told apart (``--partitions`` counts the latter only)."""
    counts: dict[str, int] = {}
    for tp in assignment:
        counts[tp.topic] = counts.get(tp.topic, 0) + 1
    return ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items())) or "none"


def committed_text(app: Any, runtime: Any) -> str:
    """The raw topics' committed offsets, e.g. ``committed offsets a[0]=12 a[1]=30``."""
    raw = set(runtime.settings.topic_sources())
    # Faust keeps the committed offsets only in this attribute (see streams.app)
    committed = getattr(getattr(app, "_consumer", None), "_committed_offset", None) or {}
    offsets = sorted((tp.topic, tp.partition, offset) for tp, offset in committed.items()
                     if tp.topic in raw and offset is not None)
    if not offsets:
        return "no offsets committed"
    return "committed offsets " + " ".join(f"{t}[{p}]={o}" for t, p, o in offsets)


def _buffer_text(noise: Any) -> str:
    full = noise.counts["producer_buffer_full"] if noise is not None else 0
    return f"; the producer buffer filled {full} times and waited for the broker" if full else ""
