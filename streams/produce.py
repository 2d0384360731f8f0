"""``nhi-detector produce PATH... --topic T``: send historical audit logs into a Kafka topic.

Files are found the way replay finds them (``detector.sources.iter_files``: directories
recursively, ``.gz`` included, ``-`` for stdin). Each file is split into raw records
without normalising them (a CloudTrail ``Records`` document, a JSON array, JSON lines), so
the worker sees exactly what the log held, bad records included, and dead-letters what it
cannot parse; a file that does not split cleanly travels whole for the worker's parser to
read as replay would (``split_records``). A JSON-lines file too large for one message is
read line by line as it is sent (``_stream``), so memory does not grow with the file;
stdin is read by the same rules as a file (``Input``), so it streams too. Every message
has one key (``DEFAULT_KEY``), so the run stays on one partition in order. Records are
regrouped ``--batch-records`` per message (default 500, newline delimited or a JSON array;
1 sends one record per message) under ``--max-message-bytes``, because the worker's cost
is per Kafka message (docs/design.md). ``--rate`` caps records per second; a progress
line goes to stderr.
"""

from __future__ import annotations

import argparse
import gzip
import logging
import os
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Any

import orjson

from detector.errors import ConfigError, InputError, NhiError
from detector.sources.parser import starts_binary
from detector.sources.pieces import Pieces
from streams.settings import Bounds

log = logging.getLogger(__name__)

DEFAULT_BATCH_RECORDS = 500
# The broker's default message.max.bytes is 1 MiB; stay under it with room for headers.
DEFAULT_MAX_MESSAGE_BYTES = 900_000
FRAMINGS = ("lines", "array")
# Records per second: 0 means no limit; a billion is past any broker, so more is a typo.
RATE_BOUNDS = Bounds(0, 1e9, "records per second")
BATCH_RECORDS_BOUNDS = Bounds(1, 100_000)
# A message must hold one audit record (a few kB); the worker's --max-fetch-bytes caps
# what it can read at 64 MiB.
MAX_MESSAGE_BYTES_BOUNDS = Bounds(1024, 64 << 20, "bytes")
PROGRESS_EVERY_S = 0.5
# Every message carries this key unless --key or --spread says otherwise: the partitioner
# hashes a key to one partition, so the run keeps its order there. Without a key, the
# messages go round the partitions, the worker reads those at different speeds, and an
# identity's events reach it out of event-time order: other alerts on every run, and the
# Kubernetes stages of one request split between partitions.
DEFAULT_KEY = "nhi-detector-produce"
_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    rate, batch = RATE_BOUNDS.text(), BATCH_RECORDS_BOUNDS.text()
    size = MAX_MESSAGE_BYTES_BOUNDS.text()
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="log files or directories (recursive); - reads stdin")
    parser.add_argument("--topic", required=True, help="raw topic to write to")
    parser.add_argument("--bootstrap-servers",
                        default=os.environ.get("NHI_BOOTSTRAP_SERVERS")
                        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092",
                        help="host:port[,host:port] [env NHI_BOOTSTRAP_SERVERS or "
                             "KAFKA_BOOTSTRAP_SERVERS; default 127.0.0.1:9092]")
    parser.add_argument("--rate", type=float, default=0.0, metavar="EVENTS_PER_S",
                        help="at most this many records per second (0: as fast as possible; "
                             f"{rate}; default %(default)g)")
    parser.add_argument("--batch-records", type=int, default=DEFAULT_BATCH_RECORDS,
                        metavar="N",
                        help=f"records per Kafka message (1: one per message; {batch}; "
                             "default %(default)s)")
    parser.add_argument("--framing", choices=FRAMINGS, default="lines",
                        help="how records of one message are joined: newline-delimited JSON "
                             "or a JSON array (default %(default)s)")
    parser.add_argument("--max-message-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES,
                        help="start a new message before one grows past this size in bytes; "
                             f"a bigger record is skipped and named ({size}; default "
                             "%(default)s)")
    parser.add_argument("--key", default=DEFAULT_KEY,
                        help="message key for every message: one key puts the whole run on "
                             "one partition, in the order replay reads it (default "
                             "%(default)s)")
    parser.add_argument("--spread", action="store_true",
                        help="send without a key, spread over the partitions: faster to "
                             "consume, but events reach the worker out of order (see "
                             "docs/worker.md)")
    parser.add_argument("--compression", choices=("none", "gzip"), default="none",
                        help="producer compression (default %(default)s)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="show a progress line (default: when stderr is a terminal)")
    add_security_arguments(parser)


# The worker's connection-security settings, with the same flags and environment variables,
# so one set of NHI_SECURITY_PROTOCOL/NHI_SASL_*/NHI_SSL_* values serves both commands.
SECURITY_SETTINGS = ("security_protocol", "sasl_mechanism", "sasl_username", "sasl_password",
                     "ssl_cafile", "ssl_certfile", "ssl_keyfile")


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    from streams.settings import BY_NAME, default_text

    for name in SECURITY_SETTINGS:
        setting = BY_NAME[name]
        # the built-in default, never the environment's value: that may be a password
        shown = default_text(setting).replace("%", "%%")
        parser.add_argument(setting.option, dest=name, choices=setting.choices,
                            default=os.environ.get(setting.env, setting.default),
                            help=f"{setting.help} [env {setting.env}; default {shown}]")


# ---------------------------------------------------------------------------- framing


def split_records(data: bytes, max_bytes: int | None = None) -> list[bytes]:
    """The raw records of one file or payload, as bytes, without interpreting them.

    Only input that splits cleanly is split: a JSON document (its ``Records`` or items) or
    JSON lines that are all objects. Anything else (a binary file, a cut or corrupt gzip,
    an empty file, text with bad lines) is sent whole as one ``WholeFile`` record, so the
    worker's parser reads the very bytes replay reads and gives the same events and dead
    letters (a gzip cut short keeps its whole lines, an empty file is one ``empty_file``
    dead letter). Only a text file too large for one message (over ``max_bytes``) is
    split into its lines instead; a binary one that large raises ``InputError``."""
    whole = WholeFile(data)
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            return _whole(whole, max_bytes, "bad_gzip", f"cannot decompress: {err}")
    if data[:3] == _BOM:
        data = data[3:]
    stripped = data.strip()
    if not stripped:
        return [whole]  # the worker's parser makes it one empty_file dead letter
    if stripped[:1] in (b"{", b"["):
        try:
            document = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            document = None
        if document is not None:
            return [orjson.dumps(r) for r in _container_items(document)]
    lines = [line.strip() for line in data.split(b"\n") if line.strip()]
    if all(line[:1] == b"{" and _is_object(line) for line in lines):
        return lines
    if max_bytes is None or len(whole) <= max_bytes:
        return [whole]
    if _binary_start(data):
        return _whole(whole, max_bytes, "binary", "binary file")
    # text too large for one message: its lines, for the worker to dead-letter the bad ones
    return lines


def _whole(whole: WholeFile, max_bytes: int | None, reason: str, what: str) -> list[bytes]:
    if max_bytes is not None and len(whole) > max_bytes:
        raise _too_large(reason, what, len(whole), max_bytes)
    return [whole]


def _too_large(reason: str, what: str, size: int, max_bytes: int) -> InputError:
    return InputError(reason, f"{what} of {size:,} bytes cannot be split into records and "
                              f"is over --max-message-bytes {max_bytes}")


def _binary_start(data: bytes) -> bool:
    """Whether ``data`` starts as a binary file, by the parser's rule (``starts_binary``):
    a NUL byte inside a JSON document or line is that record's fault, for the worker to
    dead-letter alone, never the whole file's."""
    return starts_binary(data[3:] if data[:3] == _BOM else data)


class WholeFile(bytes):
    """A file's bytes sent as one record, never batched with other records: the worker's
    parser then reads it exactly as replay reads the file (see ``split_records``)."""


def _is_object(line: bytes) -> bool:
    try:
        return isinstance(orjson.loads(line), dict)
    except orjson.JSONDecodeError:
        return False


def _container_items(document: Any) -> list[Any]:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in ("Records", "records"):
            if isinstance(document.get(key), list):
                return document[key]
    return [document]


def frame(records: list[bytes], framing: str) -> bytes:
    if framing == "array":
        return b"[" + b",".join(records) + b"]"
    return b"\n".join(records) + b"\n"


def batches(records: Iterable[bytes], *, size: int, max_bytes: int) -> Iterator[list[bytes]]:
    """Group records ``size`` per batch, starting a new batch before ``max_bytes``."""
    batch: list[bytes] = []
    total = 0
    for record in records:
        if type(record) is WholeFile:  # alone in its message (see ``WholeFile``)
            if batch:
                yield batch
                batch, total = [], 0
            yield [record]
            continue
        if batch and (len(batch) >= size or total + len(record) + 1 > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(record)
        total += len(record) + 1
    if batch:
        yield batch


def read_records(paths: list[str], errors: list[str],
                 max_bytes: int | None = None) -> Iterator[bytes]:
    """Records of every file under ``paths``; unreadable files are noted in ``errors``, and
    so is each record longer than ``max_bytes``: no Kafka message could hold it, and sending
    it would abort the whole run, so it is named (file and line) and the run goes on."""
    from detector.sources import Parser, iter_files
    from detector.sources.deadletter import ListDeadLetters
    from detector.stats import RunStats

    missing = ListDeadLetters()
    parser = Parser(stats=RunStats(), dead_letters=missing)
    for path in iter_files(paths, parser):
        try:
            source = Input.open(path)
        except OSError as err:
            errors.append(f"{path}: {err}")
            continue
        with source:
            yield from _input_records(source, path, max_bytes, errors)
    errors.extend(f"{item['origin']}: {item['message']}" for item in missing.items)


def _input_records(source: Input, path: str, max_bytes: int | None,
                   errors: list[str]) -> Iterator[bytes]:
    """The records of one file or of stdin, both read by the same rules: input that fits
    in one message is read whole (``split_records``); larger JSON lines stream line by
    line (``_stream``); anything larger is refused from its start when that start is
    binary, else read whole and split."""
    try:
        if max_bytes is not None and source.over(max_bytes):
            lines = _stream(source, max_bytes)
            if lines is not None:
                yield from _streamed_records(path, lines, max_bytes, errors)
                return
        data = source.read_whole(max_bytes)
        records = split_records(data, max_bytes)
    except (OSError, InputError) as err:
        errors.append(f"{path}: {err}")
        return
    if max_bytes is None or all(len(record) <= max_bytes for record in records):
        yield from records
        return
    for place, record in zip(_places(data, records), records):
        if len(record) > max_bytes:
            errors.append(_over_limit(path, place, len(record), max_bytes))
        else:
            yield record


class Input:
    """A file, or standard input (``-``), read once from its start by the reader that
    its start calls for.

    A file can seek back to its start after its start has been judged; a pipe cannot, so
    the bytes read from stdin are kept until the reader that goes on to its end is
    chosen (``stream``): at most one message's worth (``over``) and the head a streamed
    reader judges. Before, stdin was read whole into memory whatever it held."""

    def __init__(self, handle: IO[bytes], size: int | None, owned: bool) -> None:
        self.handle, self._size, self._owned = handle, size, owned

    @classmethod
    def open(cls, path: str) -> Input:
        if path == "-":
            return cls(_KeptStdin(sys.stdin.buffer), None, False)
        handle = open(path, "rb")  # noqa: SIM115 - closed by __exit__
        return cls(handle, os.fstat(handle.fileno()).st_size, True)

    def __enter__(self) -> Input:
        return self

    def __exit__(self, *_: object) -> None:
        if self._owned:
            self.handle.close()

    def over(self, limit: int) -> bool:
        """Whether it holds more than ``limit`` bytes: a file's size says; stdin is read
        that far (and given back by ``rewind``)."""
        if self._size is not None:
            return self._size > limit
        taken = len(_read_up_to(self.handle, limit + 1))
        self.rewind()
        return taken > limit

    def rewind(self) -> None:
        self.handle.seek(0)

    def stream(self) -> None:
        """The reader chosen reads on to the end: stdin's bytes are no longer kept."""
        if isinstance(self.handle, _KeptStdin):
            self.handle.stop_keeping()

    def size(self) -> int:
        """Its size in bytes: a file's, or stdin's counted by reading on to its end."""
        if self._size is None:
            self.rewind()
            self.stream()
            self._size = 0
            while block := self.handle.read(1 << 20):
                self._size += len(block)
        return self._size

    def read_whole(self, max_bytes: int | None) -> bytes:
        """All its bytes. Input over ``max_bytes`` whose start is binary (not gzip) could
        only travel whole, which it cannot: it is refused from its first 8 KiB, without
        reading it (a 2 GB sparse file took 4 GB of memory to be told binary)."""
        if max_bytes is not None and self.over(max_bytes):
            sample = _read_up_to(self.handle, 8192)
            self.rewind()
            if sample[:2] != _GZIP_MAGIC and _binary_start(sample):
                raise _too_large("binary", "binary file", self.size(), max_bytes)
        self.stream()
        return self.handle.read()


def _read_up_to(handle: IO[bytes], size: int) -> bytes:
    """``size`` bytes of ``handle``, fewer only at its end (a pipe gives what it has)."""
    parts, taken = [], 0
    while taken < size and (block := handle.read(size - taken)):
        parts.append(block)
        taken += len(block)
    return b"".join(parts)


class _KeptStdin:
    """Standard input with what has been read of it kept, so that ``seek(0)`` gives it
    back (a pipe cannot seek) until ``stop_keeping``."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._read = getattr(handle, "read1", handle.read)  # what is there, for a live pipe
        self._kept: list[bytes] = []
        self._back = b""  # kept bytes given back by ``seek(0)``, to be read again
        self.keep = True

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            data, self._back = self._back + self._handle.read(), b""
        elif self._back:
            data, self._back = self._back[:size], self._back[size:]
        else:
            data = self._read(size)
        if self.keep:
            self._kept.append(data)
        return data

    def stop_keeping(self) -> None:
        """Nothing read is given back from now on: drop what was kept (up to
        --max-message-bytes of it, which would otherwise stay for the whole run)."""
        self.keep = False
        self._kept = []

    def seek(self, offset: int) -> int:
        if offset != 0 or not self.keep:
            raise OSError("standard input cannot seek back past what was kept of it")
        self._back = b"".join(self._kept) + self._back
        self._kept = []
        return 0


def _over_limit(path: str, place: str, size: int, max_bytes: int) -> str:
    """The error naming a record too large to send, wherever it was found."""
    return f"{path} {place}: record of {size:,} bytes is over --max-message-bytes " \
           f"{max_bytes}: not sent"


def _stream(source: Input, max_bytes: int) -> Iterator[tuple[int, bytes, int]] | None:
    """The lines of JSON lines too large for one message (plain or gzip), read as they
    are sent: ``(number, line, length)`` as ``Pieces.lines`` gives them. ``None`` for any
    other input (rewound), which ``split_records`` reads whole.

    Such input is split into its lines whatever they hold (``split_records``), so only
    two facts decide, both from its start: its first line is a JSON object and a second
    non-blank line follows (so it is not one JSON document), and it does not start as
    binary (a binary start refuses input whose lines are not all objects). Producing a
    500 MB file peaked at 2.0 GB of RSS read whole (the file, its lines and their copies
    held at once); streamed, at 141 MB, most of it the Kafka client's buffers."""
    raw = source.handle
    gzipped = raw.read(2) == _GZIP_MAGIC
    source.rewind()
    try:
        handle: Any = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        pieces = Pieces(handle)
    except (OSError, EOFError, zlib.error):  # a bad gzip start: as split_records says it
        source.rewind()
        return None
    head = pieces.head[3:] if pieces.head[:3] == _BOM else pieces.head
    whole_lines = head.split(b"\n")
    if not pieces.whole:
        whole_lines.pop()
    first, second = ([line for line in whole_lines if line.strip()] + [b"", b""])[:2]
    if not (second and _is_object(first.strip())) or _binary_start(head):
        source.rewind()
        return None
    source.stream()
    return pieces.lines(max_bytes)


def _streamed_records(path: str, lines: Iterator[tuple[int, bytes, int]], max_bytes: int,
                      errors: list[str]) -> Iterator[bytes]:
    """The records of a streamed file (``_stream``): its non-blank lines, stripped, as
    ``split_records`` gives them; a line over ``max_bytes`` is named, as ``read_records``
    names it, and a gzip stream that breaks off is one error after the lines before it."""
    try:
        for number, line, length in lines:
            if number == 1 and line[:3] == _BOM:
                line, length = line[3:], length - 3
            # a line past the limit arrives as its start only (``length`` says the rest)
            record = line.strip() if length == len(line) else line
            if length > len(line) or len(record) > max_bytes:
                size = len(record) if length == len(line) else length
                errors.append(_over_limit(path, f"line {number}", size, max_bytes))
            elif record:
                yield record
    except (OSError, EOFError, zlib.error) as err:
        errors.append(f"{path}: gzip stream broke off after the lines sent: {err}")


def _places(data: bytes, records: list[bytes]) -> list[str]:
    """Where each record of ``data`` is, for the skip message: ``line N`` of a JSON-lines
    file, else ``record N`` of the document (one line can hold a whole array)."""
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)  # split_records did it without error
    numbered = [(number, line.strip()) for number, line in enumerate(data.split(b"\n"), 1)
                if line.strip()]
    if len(numbered) == len(records):
        return [f"line {number}" for number, _ in numbered]
    return [f"record {number}" for number in range(1, len(records) + 1)]


# ---------------------------------------------------------------------------- sending


class Progress:
    """One self-rewriting line on stderr: records, messages, rate."""

    def __init__(self, stream: IO[str], enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.started = self.last = time.monotonic()

    def update(self, records: int, messages: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and (not self.enabled or now - self.last < PROGRESS_EVERY_S):
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        line = (f"sent {records:,} records in {messages:,} messages, "
                f"{records / elapsed:,.0f} records/s, {elapsed:.1f}s")
        if self.enabled:
            self.stream.write("\r" + line + ("\n" if final else ""))
        elif final:
            self.stream.write(line + "\n")
        self.stream.flush()


class RateLimiter:
    """Sleeps so that the running total stays at or under ``rate`` records per second."""

    def __init__(self, rate: float, clock=time.monotonic, sleep=time.sleep) -> None:
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.started = clock()

    def wait(self, sent: int) -> None:
        if self.rate <= 0:
            return
        ahead = sent / self.rate - (self.clock() - self.started)
        if ahead > 0:
            self.sleep(ahead)


def make_producer(args: argparse.Namespace) -> Any:
    from kafka import KafkaProducer

    from streams.admin import security_options

    if args.security_protocol.startswith("SASL") and not args.sasl_username:
        raise ConfigError(f"--security-protocol {args.security_protocol} needs --sasl-username")
    return KafkaProducer(
        **security_options(args),
        bootstrap_servers=args.bootstrap_servers.split(","),
        acks="all",
        linger_ms=20,
        batch_size=1 << 20,
        max_request_size=max(args.max_message_bytes + 4096, 1 << 20),
        compression_type=None if args.compression == "none" else args.compression,
        request_timeout_ms=30000,
    )


def send_records(producer: Any, topic: str, records: Iterable[bytes], *, batch_records: int,
                 framing: str, max_bytes: int, key: bytes | None, rate: float,
                 progress: Progress) -> tuple[int, int]:
    """Send; returns (records, messages). Waits for every send before returning."""
    limiter = RateLimiter(rate)
    sent = messages = 0
    for batch in batches(records, size=max(1, batch_records), max_bytes=max_bytes):
        alone = len(batch) == 1 and (batch_records == 1 or type(batch[0]) is WholeFile)
        # bytes(): the client refuses subclasses of bytes such as WholeFile
        payload = bytes(batch[0]) if alone else frame(batch, framing)
        producer.send(topic, key=key, value=payload)
        sent += len(batch)
        messages += 1
        progress.update(sent, messages)
        limiter.wait(sent)
    producer.flush(timeout=120)
    progress.update(sent, messages, final=True)
    return sent, messages


def missing_topic(producer: Any, topic: str) -> str | None:
    """Wait for ``topic``'s metadata (the broker may create it on this first request);
    returns why it cannot be used, or None. kafka-python logs an ERROR for each request
    that does not find the topic yet; ``streams.logs`` keeps those at DEBUG, so a topic
    created on the way shows nothing and a missing one gives only this message."""
    from kafka.errors import KafkaTimeoutError

    try:
        producer.partitions_for(topic)
    except KafkaTimeoutError:
        waited = producer.config["max_block_ms"] / 1000
        return (f"topic {topic} does not exist (waited {waited:g}s for it; the broker does "
                f"not create topics automatically: create it first)")
    return None




def check_arguments(args: argparse.Namespace) -> None:
    """Every flag checked before anything connects, with the worker's rules and wording:
    raises ``ConfigError`` naming the flag, the accepted range and the value."""
    from streams.settings import BY_NAME, check_setting, check_text

    RATE_BOUNDS.check("--rate", args.rate)
    BATCH_RECORDS_BOUNDS.check("--batch-records", args.batch_records)
    MAX_MESSAGE_BYTES_BOUNDS.check("--max-message-bytes", args.max_message_bytes)
    check_text("--topic", args.topic, "topic")
    check_text("--bootstrap-servers", args.bootstrap_servers, "servers")
    if args.key is not None:
        check_text("--key", args.key, None)
    for name in SECURITY_SETTINGS:
        # an environment value is the flag's default, which argparse does not check
        setting, value = BY_NAME[name], getattr(args, name)
        where = setting.env if value == os.environ.get(setting.env) else setting.option
        check_setting(name, value, where)


def run(args: argparse.Namespace) -> int:
    from streams import logs
    from streams.admin import ConnectionCauses

    logs.install(lifecycle=False)

    try:
        check_arguments(args)
    except ConfigError as err:
        print(f"nhi-detector produce: {err}", file=sys.stderr)
        return 2
    errors: list[str] = []
    show = sys.stderr.isatty() if args.progress is None else args.progress
    progress = Progress(sys.stderr, enabled=show)
    # kafka-python's own exception only says "Unable to bootstrap"; its log lines say why
    causes = ConnectionCauses()
    logging.getLogger("kafka").addHandler(causes)
    try:
        producer = make_producer(args)
    except ConfigError as err:
        print(f"nhi-detector produce: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - kafka-python raises several kinds here
        reason = causes.explain(args) or err
        print(f"nhi-detector produce: cannot reach Kafka at {args.bootstrap_servers}: {reason}",
              file=sys.stderr)
        return 3
    finally:
        logging.getLogger("kafka").removeHandler(causes)
    try:
        missing = missing_topic(producer, args.topic)
        if missing:
            print(f"nhi-detector produce: {missing}", file=sys.stderr)
            return 3
        key = None if args.spread or not args.key else args.key.encode("utf-8")
        send_records(producer, args.topic,
                     read_records(args.paths, errors, args.max_message_bytes),
                     batch_records=args.batch_records, framing=args.framing,
                     max_bytes=args.max_message_bytes, key=key, rate=args.rate,
                     progress=progress)
    except NhiError as err:
        print(f"nhi-detector produce: {err}", file=sys.stderr)
        return 2
    finally:
        producer.close(timeout=30)
    for line in errors:
        print(f"nhi-detector produce: skipped {line}", file=sys.stderr)
    return 1 if errors else 0
