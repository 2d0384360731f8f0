"""The worker's consumer lets the broker hold an empty fetch briefly (no broker needed)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from types import SimpleNamespace

import faust

from streams.app import FETCH_MAX_WAIT_MS, create_app, short_fetch_wait
from streams.settings import load_settings


def created_consumer(wrap: bool) -> object:
    """The aiokafka consumer that Faust's driver creates for a worker (not started)."""

    async def create() -> object:
        app = faust.App("fetch-wait", broker="kafka://127.0.0.1:9", web_enabled=False,
                        store="memory://")
        if wrap:
            app.transport.Consumer = short_fetch_wait(app.transport.Consumer)
        thread = app.consumer._thread
        return thread._create_worker_consumer(app.transport)

    return asyncio.run(create())


def test_the_worker_consumer_fetches_with_the_short_wait() -> None:
    # Faust's driver passes 1500 ms; the wrapped class hands aiokafka the worker's wait,
    # which its fetcher takes from the consumer when it starts
    assert created_consumer(wrap=False)._fetch_max_wait_ms == 1500
    assert created_consumer(wrap=True)._fetch_max_wait_ms == FETCH_MAX_WAIT_MS == 100


def test_the_worker_app_uses_the_short_wait(tmp_path: Path) -> None:
    settings = load_settings(argparse.Namespace(state_dir=str(tmp_path), worker_id="w0",
                                                store="memory"), {}, {})
    runtime = SimpleNamespace(pipeline=None, metrics=None, roles={}, holds={},
                              leave_group=None, settings=settings)

    async def create() -> object:
        app = create_app(settings, runtime)
        return app.consumer._thread._create_worker_consumer(app.transport)

    assert asyncio.run(create())._fetch_max_wait_ms == FETCH_MAX_WAIT_MS
