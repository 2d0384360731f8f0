"""A loopback TCP proxy in front of a test broker that can hold chosen Kafka requests, and
a broker that tells its clients to connect through it (test_b19_kafka, test_takeover_kafka).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import pytest

from tests.streams.conftest import apache_kafka_only, started_or_skip
from tests.streams.kafka_helpers import free_port

PRODUCE_API_KEY = 0
WORKER_CLIENT_PREFIX = "nhi-detector-"  # the worker's client id: nhi-detector-<worker id>


class StallingProxy:
    """A TCP proxy 127.0.0.1:port -> the broker, in a thread of its own.

    Client-to-broker bytes are read as Kafka requests (4-byte size, then api_key,
    api_version, correlation id, client id). Until ``release()``:

    - after ``stall(topic)``, a Produce request from a worker (its client id starts with
      ``WORKER_CLIENT_PREFIX``) that writes to ``topic`` is held, and the requests
      behind it on the same connection wait too, as on a real connection to a stuck
      broker. The topic is found by its name in the request: Kafka frames topic names
      uncompressed, and no payload of these tests contains a topic's name;
    - after ``cut_off(client_id)``, every request of that client is held (heartbeats,
      fetches, produce requests), as when the network between one worker and the broker
      stalls; they reach the broker in order once released.

    Everything else flows.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.target_port = 0
        self.held = 0
        self.topic = b""
        self.client = ""
        self.only = ""
        self.loop = asyncio.new_event_loop()
        self._open: asyncio.Event | None = None
        self._started = threading.Event()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._run, name="stalling-proxy", daemon=True)

    def start(self, target_port: int) -> StallingProxy:
        self.target_port = target_port
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._open = asyncio.Event()
        self._open.set()
        self._server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port))
        self._started.set()
        self.loop.run_forever()

    def stall(self, topic: str, client_id: str = "") -> None:
        """Hold produce requests to ``topic`` from workers (only ``client_id``, if given)."""
        self.topic, self.client, self.only = topic.encode("utf-8"), "", client_id
        self.loop.call_soon_threadsafe(self._open.clear)

    def cut_off(self, client_id: str) -> None:
        self.topic, self.client = b"", client_id
        self.loop.call_soon_threadsafe(self._open.clear)

    def release(self) -> None:
        self.loop.call_soon_threadsafe(self._open.set)

    def stop(self) -> None:
        def close() -> None:
            self._open.set()
            self._server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(close)
        self._thread.join(timeout=10)

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._requests(reader, up_writer),
                             self._pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            w.close()

    async def _requests(self, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(4)
                body = await reader.readexactly(int.from_bytes(head, "big"))
                if not self._open.is_set() and self._holds(body):
                    self.held += 1
                    await self._open.wait()
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    def _holds(self, body: bytes) -> bool:
        api_key = int.from_bytes(body[0:2], "big")
        size = int.from_bytes(body[8:10], "big", signed=True)
        client_id = body[10:10 + size].decode("utf-8", "replace") if size > 0 else ""
        if self.client:
            return client_id == self.client
        if self.only and client_id != self.only:
            return False
        return (api_key == PRODUCE_API_KEY and client_id.startswith(WORKER_CLIENT_PREFIX)
                and self.topic in body[10 + max(size, 0):])

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def proxied_broker(tmp_path_factory: pytest.TempPathFactory,
                   name: str) -> Iterator[tuple[StallingProxy, str]]:
    """Apache Kafka whose PLAINTEXT listener advertises a ``StallingProxy``'s port; yields
    ``(proxy, bootstrap through the proxy)`` (for a module-scoped fixture)."""
    apache_kafka_only("cannot advertise a test proxy")
    proxy = StallingProxy(free_port())
    workdir = tmp_path_factory.mktemp(name)

    def start(helper):
        version = os.environ.get("NHI_KAFKA_VERSION", helper.DEFAULT_VERSION)
        libs, kind = helper.apache_kafka_libs(version)
        return helper.start_from_jars(libs, workdir, kind=kind, advertised_port=proxy.port)

    broker = started_or_skip(f"the {name} broker did not start", start)
    proxy.start(int(broker.bootstrap.rpartition(":")[2]))
    try:
        yield proxy, f"127.0.0.1:{proxy.port}"
    finally:
        proxy.stop()
        broker.stop()
