"""``nhi-detector worker``: run the streaming detector on Kafka (Faust).

Startup, in order: settings (flags > ``NHI_*`` environment > ``worker:`` section of
``--config`` > defaults); the health endpoint (answers probes from the first second); the
per-worker data directory lock (B20); the detector; the broker and topic checks with
backoff (``streams.admin``); the optional warm start (``streams.warmstart``); then the Faust
worker until SIGTERM or SIGINT, which finish the buffered messages, commit, flush and close.

Exit codes: 0 stopped on a signal, 2 invalid configuration or state file, 3 broker or
topics unavailable past ``--startup-timeout``, 70 a send kept failing at run time (the
worker then ends at once, see ``streams.app.Runtime.fatal``).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from detector.errors import ConfigError, StateError
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
    return Detector(config, stats=stats)


def identity_rules(config: dict[str, Any]) -> Any:
    from detector.identity import IdentityRules

    return IdentityRules.from_config(config.get("identities"))


def run(args: argparse.Namespace) -> int:
    """Entry point; returns the exit code (see the module docstring)."""
    from detector.config import load_config

    try:
        config = load_config(args.config or os.environ.get("NHI_CONFIG") or None)
        settings = worker_settings.load_settings(args, os.environ, config.get("worker"))
    except ConfigError as err:
        print(f"nhi-detector worker: {err}", file=sys.stderr)
        return EXIT_CONFIG
    log.info("worker settings: %s", settings.redacted())
    return _run(settings, config)


def _run(settings: WorkerSettings, config: dict[str, Any]) -> int:
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
    try:
        lock.acquire(wait=settings.lock_wait)
        return _start(settings, config, stats, state, server, holder)
    except (ConfigError, StateError) as err:
        log.error("%s", err)
        print(f"nhi-detector worker: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as err:
        log.error("%s", err)
        print(f"nhi-detector worker: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    finally:
        state.set_phase("stopped", ready=False, reason="worker stopped")
        lock.release()
        server.stop()


def _worker_values(holder: dict[str, Any], state: Any) -> dict[str, Any]:
    pipeline = holder.get("pipeline")
    if pipeline is None:
        return {"ready": state.ready}
    return {"failed": dict(pipeline.failed), "redelivered": pipeline.redelivered,
            "ready": state.ready}


def _start(settings: WorkerSettings, config: dict[str, Any], stats: RunStats, state: Any,
           server: Any, holder: dict[str, Any]) -> int:
    from streams.admin import connect_admin, prepare_topics
    from streams.app import Runtime, create_app, install_commit_sensor
    from streams.pipeline import Pipeline

    detector = build_detector(config, settings, stats)
    server.metrics.attach(detector)
    state.set_phase("connecting", ready=False, reason=f"connecting to {settings.bootstrap_servers}")
    admin = connect_admin(settings)
    try:
        prepare_topics(settings, admin)
    finally:
        admin.close()
    if settings.load_state:
        from streams.warmstart import apply_snapshot

        apply_snapshot(settings, detector, settings.load_state)
    pipeline = Pipeline(detector, stats, partitions=settings.partitions,
                        topic_sources=settings.topic_sources(),
                        alert_format=settings.alert_format, shadow=settings.shadow,
                        accounting=bool(settings.accounting_topic),
                        rules=identity_rules(config))
    holder["pipeline"] = pipeline
    runtime = Runtime(settings, pipeline, state, server.metrics)
    app = create_app(settings, runtime)
    install_commit_sensor(app, runtime)
    state.set_phase("recovering", ready=False, reason="starting Faust")
    return _run_faust(app, runtime)


def _run_faust(app: Any, runtime: Any) -> int:
    import faust

    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False,
                          override_logging=False)
    code: Any = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code
    runtime.health.set_phase("stopping", ready=False, reason="worker stopped")
    log.info("worker stopped (exit %s)", code or 0)
    return int(code or 0)
