"""Seeded mutation fuzzer for the parser: real record shapes in, invariants checked.

    python tools/fuzz_parser.py [--seed N] [--cases N] [--corpus DIR ...] [--show N]
    python tools/fuzz_parser.py --sweep            # every field of every seed, each type
    python tools/fuzz_parser.py --dump CASE:FILE   # write one case's payload

Records are taken from the corpus directories (by default ``replay_data`` and, when they
exist, ``real_logs`` and ``edge_cases`` of ``../shared`` or ``NHI_SHARED_DIR``), then each
case mutates one or a few of them in one of these ways and frames them in one of the
shapes the parser reads (a JSON line, JSON lines, ``{"Records": [...]}``, an array,
pretty-printed, gzip, a CloudWatch Logs, EventBridge, SQS or Pub/Sub envelope):

- structure: a field's value swapped for another JSON type (string, integer, float, list,
  object, null, boolean), removed, made huge or nested thousands deep;
- text: NaN and Infinity, a lone surrogate escape, a byte-order mark, CRLF line ends, a
  NUL byte, Latin-1 or UTF-16 instead of UTF-8;
- bytes: flips, insertions, deletions and truncation anywhere in the framed payload.

Checked for every case: ``Parser`` raises nothing and writes no ``internal_error``; every
record read is an event, a dead letter or a skip (``RunStats.balanced``), and as many dead
letters are written as counted; every event and dead letter serialises to JSON; structural
mutations of JSON lines read exactly one record per line (nothing lost silently); the same
input gives the same events and dead letters twice, read as one payload or as a stream
(``Parser.feed_stream``, what stdin and large files take), and JSON lines the same again
fed one line per message to one parser (a worker's topic). Pure Python and seeded, so a failure
is reproduced by its seed and case number; ``--show`` prints the failing payloads.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import io
import logging
import os
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from detector.sources import ListDeadLetters, Parser  # noqa: E402
# the parser's own list of the keys that make an object an envelope rather than a record:
# a copy kept here fell behind it (no ``data``, no ``received_messages``) and reported
# Pub/Sub wrappers as records silently lost
from detector.sources.parser import _ENVELOPE_KEYS  # noqa: E402
from detector.stats import RunStats  # noqa: E402

# The shared real logs and edge cases live beside the repository, as for the tests
# (tests/conftest.py); absent ones are left out.
SHARED = Path(os.environ.get("NHI_SHARED_DIR", REPO.parent / "shared"))
DEFAULT_CORPORA = (str(REPO / "replay_data"), str(SHARED / "real_logs"),
                   str(SHARED / "edge_cases"))
_MAX_SEEDS = 2000
_MAX_FILE_BYTES = 2 * 1024 * 1024


# ---------------------------------------------------------------------------- corpus


def load_seeds(corpora: list[str], rng: random.Random) -> list[dict[str, Any]]:
    """Plain records (objects) found in the corpus files, a seeded sample of at most
    ``_MAX_SEEDS`` so that every dialect present is kept."""
    seeds: list[dict[str, Any]] = []
    for corpus in corpora:
        for path in sorted(_files(corpus)):
            seeds.extend(_records_of(path))
    rng.shuffle(seeds)
    by_shape: dict[frozenset[str], list[dict[str, Any]]] = {}
    for seed in seeds:
        by_shape.setdefault(frozenset(list(seed)[:6]), []).append(seed)
    picked = [group[0] for group in by_shape.values()]  # one of each shape first
    rest = [seed for group in by_shape.values() for seed in group[1:4]]
    return (picked + rest)[:_MAX_SEEDS]


def _files(top: str) -> Iterator[Path]:
    root = Path(top)
    if root.is_file():
        yield root
        return
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".log", ".gz") and \
                path.stat().st_size <= _MAX_FILE_BYTES:
            yield path


def _records_of(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError):
            return []
    try:
        values = [orjson.loads(data)]
    except orjson.JSONDecodeError:
        values = []
        for line in data.splitlines():
            try:
                values.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    out: list[dict[str, Any]] = []
    for value in values:
        _collect(value, out, 0)
    return out[:50]


def _collect(value: Any, out: list[dict[str, Any]], depth: int) -> None:
    """The records inside a value: elements of ``Records``, ``records``, ``items`` and
    plain arrays, or the object itself."""
    if depth > 3:
        return
    if isinstance(value, list):
        for item in value:
            _collect(item, out, depth + 1)
    elif isinstance(value, dict):
        for key in ("Records", "records", "items"):
            if isinstance(value.get(key), list):
                _collect(value[key], out, depth + 1)
                return
        out.append(value)


# ---------------------------------------------------------------------------- mutations

_SWAPS: tuple[Callable[[random.Random], Any], ...] = (
    lambda r: "", lambda r: "x" * r.choice((1, 300, 5000)),
    lambda r: r.randint(-2**63, 2**63 - 1), lambda r: _raw(b"123456789012345678901234567890"),
    lambda r: _raw(b"1e400"), lambda r: r.random() * 1e300, lambda r: -0.0, lambda r: [],
    lambda r: ["a", 1, None], lambda r: {}, lambda r: {"a": {"b": []}}, lambda r: None,
    lambda r: True, lambda r: False, lambda r: "2024-03-04T10:00:00Z", lambda r: 1709546400,
    lambda r: "1709546400000", lambda r: "arn:aws:iam::1:role/x", lambda r: "\u202e\u0000",
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            out.append(prefix + (key,))
            if len(prefix) < 4:
                out.extend(_paths(child, prefix + (key,)))
    elif isinstance(value, list):
        for index, child in enumerate(value[:4]):
            out.append(prefix + (index,))
            if len(prefix) < 4:
                out.extend(_paths(child, prefix + (index,)))
    return out


def _set(record: Any, path: tuple[Any, ...], value: Any, remove: bool = False) -> None:
    target = record
    for key in path[:-1]:
        target = target[key]
    if remove:
        del target[path[-1]]
    else:
        target[path[-1]] = value


def _deep(depth: int) -> str:
    """A value nested ``depth`` deep (too deep for orjson to write, or for Python to hold
    without recursion), as raw JSON for ``_dumps``."""
    return _raw(b'{"a":[' * (depth // 2) + b'"leaf"' + b"]}" * (depth // 2))


def _raw(text: bytes) -> str:
    """A placeholder string that ``_dumps`` replaces with the JSON text ``text``."""
    return _RAW + base64.b16encode(text).decode() + "."


_RAW = "\u2063raw:"


_TIMES = (
    "", "0", "NaN", "2024-02-30T10:00:00Z", "0000-00-00T00:00:00Z", "9999-12-31T23:59:59Z",
    "2024-03-04T10:00:00+25:00", "2024-03-04T10:00:00.1234567890123Z", "2024-03-04 10:00:00",
    "1709546400", "1709546400123", "2024-03-04T10:00:00\u0000Z", "+002024-03-04T10:00:00Z",
    "2024-03-04T10:00:00Z" * 50, "Mon, 04 Mar 2024 10:00:00 GMT", "redacted",
)
_TIME_VALUES = (1709546400, 1709546400123, -1, 0, 1e20, 2**63 - 1, -2**63, 1.5, True, None)
# Fields that decide a record's time, identity and shape: hit more often than the rest.
_KEY_FIELDS = frozenset({
    "eventTime", "timestamp", "receiveTimestamp", "time", "requestReceivedTimestamp",
    "stageTimestamp", "TimeGenerated", "createdDateTime", "p_event_time", "userIdentity",
    "protoPayload", "authenticationInfo", "principalEmail", "user", "username", "auditID",
    "stage", "eventName", "eventSource", "eventID", "insertId", "methodName", "serviceName",
    "arn", "type", "sessionContext", "sessionIssuer", "accessKeyId", "category", "identity",
    "callerIpAddress", "operationName", "properties", "verb", "objectRef", "sourceIPs",
    "sourceIPAddress", "userAgent", "requestMetadata", "callerIp", "resource", "labels",
})


def mutate_structure(record: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A copy of ``record`` with one to three fields swapped, removed, huge or deep; the
    fields that decide time, identity and shape are chosen more often."""
    record = orjson.loads(orjson.dumps(record))
    for _ in range(rng.randint(1, 3)):
        paths = _paths(record)
        if not paths:
            return record
        keyed = [path for path in paths if path[-1] in _KEY_FIELDS]
        path = rng.choice(keyed if keyed and rng.random() < 0.6 else paths)
        if "time" in str(path[-1]).lower() and rng.random() < 0.7:
            _set(record, path, rng.choice(_TIMES + _TIME_VALUES))
            continue
        roll = rng.random()
        if roll < 0.15:
            _set(record, path, None, remove=True)
        elif roll < 0.2:
            _set(record, path, _deep(rng.choice((50, 300, 2000))))
        elif roll < 0.25:
            _set(record, path, {f"k{i}": i for i in range(rng.choice((100, 5000)))})
        else:
            _set(record, path, rng.choice(_SWAPS)(rng))
    return record


def _dumps(value: Any) -> bytes:
    """JSON of ``value``, with each ``_raw`` placeholder written as its JSON text."""
    data = orjson.dumps(value)
    marker = orjson.dumps(_RAW)[:-1]
    while (at := data.find(marker)) >= 0:
        end = data.index(b'."', at)
        data = data[:at] + base64.b16decode(data[at + len(marker):end]) + data[end + 2:]
    return data


def mutate_text(data: bytes, rng: random.Random) -> bytes:
    """Text-level damage that JSON serialisers never produce."""
    kind = rng.randrange(9)
    if kind == 0:  # a number made NaN / Infinity
        for token in (b":0", b":1", b":2", b"e"):
            at = data.find(token)
            if at >= 0 and token[:1] == b":":
                return data[:at + 1] + rng.choice((b"NaN", b"Infinity", b"-Infinity")) + \
                    data[at + 2:]
        return data.replace(b'":', b'":NaN,"x":', 1)
    if kind == 1:  # a lone surrogate escape inside a string
        at = data.find(b'":"')
        return data if at < 0 else data[:at + 3] + rng.choice((b"\\ud800", b"\\udfff",
                                                               b"\\ud83d")) + data[at + 3:]
    if kind == 2:
        return b"\xef\xbb\xbf" + data
    if kind == 3:
        return data.replace(b"\n", b"\r\n") + b"\r\n"
    if kind == 4:
        at = rng.randrange(len(data) + 1)
        return data[:at] + b"\x00" + data[at:]
    if kind == 5:  # Latin-1 text where UTF-8 is expected
        at = data.find(b'":"')
        return data if at < 0 else data[:at + 3] + b"caf\xe9 \xff" + data[at + 3:]
    if kind == 6:
        try:
            return data.decode("utf-8").encode(rng.choice(("utf-16", "utf-16-le", "utf-32")))
        except UnicodeDecodeError:
            return data
    if kind == 7:  # raw (unescaped) control characters in a string
        at = data.find(b'":"')
        return data if at < 0 else data[:at + 3] + b"\t\x01\x1f" + data[at + 3:]
    return data.replace(b"}", b"}" * rng.randint(2, 5), 1)


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flips, insertions, deletions or a cut anywhere."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not buf:
            break
        at = rng.randrange(len(buf))
        roll = rng.random()
        if roll < 0.4:
            buf[at] ^= 1 << rng.randrange(8)
        elif roll < 0.6:
            buf[at:at] = bytes([rng.randrange(256)])
        elif roll < 0.8:
            del buf[at:at + rng.randint(1, 16)]
        else:
            del buf[at:]
    return bytes(buf)


# ---------------------------------------------------------------------------- framings


def _pubsub(record: bytes) -> bytes:
    message = {"data": base64.b64encode(record).decode(), "messageId": "1",
               "publishTime": "2024-03-04T10:00:01Z", "attributes": {"a": "b"}}
    return orjson.dumps({"message": message, "subscription": "projects/p/subscriptions/s"})


FRAMINGS: dict[str, Callable[[list[bytes]], bytes]] = {
    "line": lambda recs: recs[0],
    "lines": lambda recs: b"\n".join(recs) + b"\n",
    "records": lambda recs: b'{"Records":[' + b",".join(recs) + b"]}",
    "array": lambda recs: b"[" + b",".join(recs) + b"]",
    "pretty": lambda recs: b"\n".join(map(_pretty, recs)),
    "gzip": lambda recs: gzip.compress(b"\n".join(recs), mtime=0),
    "cwl": lambda recs: orjson.dumps({
        "messageType": "DATA_MESSAGE", "logGroup": "aws-cloudtrail-logs",
        "logEvents": [{"id": str(i), "timestamp": 0, "message": r.decode("utf-8", "replace")}
                      for i, r in enumerate(recs)]}),
    "eventbridge": lambda recs: b'{"detail-type":"AWS API Call via CloudTrail","detail":' +
    recs[0] + b"}",
    "sqs": lambda recs: orjson.dumps({"Body": recs[0].decode("utf-8", "replace")}),
    "pubsub": lambda recs: _pubsub(recs[0]),
}
LINE_FRAMINGS = ("line", "lines")  # one record per line: counted exactly


def _pretty(record: bytes) -> bytes:
    try:
        return orjson.dumps(orjson.loads(record), option=orjson.OPT_INDENT_2)
    except (orjson.JSONDecodeError, TypeError):  # too deep to write again: as it is
        return record


def _decodes(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


# ---------------------------------------------------------------------------- checks


def run_once(data: bytes, stream: bool = False
             ) -> tuple[list[bytes], list[dict[str, Any]], RunStats]:
    """The events (as JSON) and dead letters of ``data`` read as one payload, or as a
    stream (``Parser.feed_stream``, what large files and stdin take)."""
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    if stream:
        events = [e for batch in parser.feed_stream(io.BytesIO(data), "fuzz") for e in batch]
    else:
        events = parser.feed(data, "fuzz")
    events += parser.finish()
    return [orjson.dumps(event.to_dict()) for event in events], dead.items, stats


def _check_once(data: bytes, expect_records: int | None) -> str | None:
    """The checks of one run (``check`` without the second run and the stream)."""
    try:
        events, dead, stats = run_once(data)
    except Exception as err:  # noqa: BLE001 - reported as the finding
        return f"raised {type(err).__name__}: {err}"[:300]
    return _judge(events, dead, stats, expect_records)


def check(data: bytes, expect_records: int | None) -> str | None:
    """What is wrong with the parser's result for ``data`` (``None``: nothing)."""
    try:
        events, dead, stats = run_once(data)
    except Exception as err:  # noqa: BLE001 - reported as the finding
        return f"raised {type(err).__name__}: {err}"[:300]
    problem = _judge(events, dead, stats, expect_records)
    if problem is not None:
        return problem
    try:
        again = run_once(data)
    except Exception as err:  # noqa: BLE001
        return f"second run raised {type(err).__name__}"
    if again[0] != events or again[1] != dead:
        return "not deterministic: a second run gave other events or dead letters"
    try:
        streamed = run_once(data, stream=True)
    except Exception as err:  # noqa: BLE001 - reported as the finding
        return f"raised as a stream {type(err).__name__}: {err}"[:300]
    if streamed[0] != events or [d["reason"] for d in streamed[1]] != [d["reason"] for d in dead]:
        return f"stream differs: as a payload {len(events)} events " \
               f"{Counter(d['reason'] for d in dead)}, as a stream {len(streamed[0])} events " \
               f"{Counter(d['reason'] for d in streamed[1])}"
    if expect_records is not None:
        try:
            messages = run_messages(data)
        except Exception as err:  # noqa: BLE001 - reported as the finding
            return f"raised a message per line {type(err).__name__}: {err}"[:300]
        if messages[0] != events or [d["reason"] for d in messages[1]] != \
                [d["reason"] for d in dead] or not messages[2].balanced():
            return f"messages differ: as a payload {len(events)} events " \
                   f"{Counter(d['reason'] for d in dead)}, a message per line " \
                   f"{len(messages[0])} events {Counter(d['reason'] for d in messages[1])}"
    return None


def run_messages(data: bytes) -> tuple[list[bytes], list[dict[str, Any]], RunStats]:
    """``data``'s lines fed one by one to one long-lived parser, as a worker reads a
    topic with one record per Kafka message."""
    stats, dead = RunStats(), ListDeadLetters()
    parser = Parser(stats=stats, dead_letters=dead)
    events = []
    for line in data.split(b"\n"):
        if line.strip():
            events += parser.feed(line, "fuzz")
    events += parser.finish()
    return [orjson.dumps(event.to_dict()) for event in events], dead.items, stats


def _judge(events: list[bytes], dead: list[dict[str, Any]], stats: RunStats,
           expect_records: int | None) -> str | None:
    internal = [item for item in dead if item["reason"] == "internal_error"]
    if internal:
        return f"internal_error: {internal[0]['message']}"
    if not stats.balanced():
        return f"unbalanced: read {dict(stats.records_read)} events {dict(stats.events)} " \
               f"dead {dict(stats.dead_letters)} skipped {dict(stats.skipped)}"
    if len(dead) != sum(stats.dead_letters.values()):
        return f"{len(dead)} dead letters written, {sum(stats.dead_letters.values())} counted"
    for item in dead:
        orjson.dumps(item)
    read = sum(stats.records_read.values())
    if expect_records is not None and read != expect_records:
        return f"silent loss: {expect_records} records in, {read} read " \
               f"({dict(stats.records_read)})"
    return None


_TYPE_SWAPS = ({}, {"a": 1}, [], [1, "a"], None, 0, -1, 2**63 - 1, "", "x", 1.5, True)


def sweep(seeds: list[dict[str, Any]]) -> Counter[str]:
    """Every field of every seed (to depth 4) set to each JSON type in turn, read as one
    JSON line: each result is checked once (no second run), so every field is tried."""
    failures: Counter[str] = Counter()
    for seed in seeds:
        for path in _paths(seed):
            for value in _TYPE_SWAPS:
                record = orjson.loads(orjson.dumps(seed))
                _set(record, path, value)
                problem = _check_once(orjson.dumps(record), 1 if _plain(record) else None)
                if problem is not None:
                    kind = f"{'.'.join(map(str, path))}={type(value).__name__}: " \
                           f"{problem[:120]}"
                    if not failures[kind]:
                        print(f"sweep: {kind}\n  record {orjson.dumps(record)[:300]!r}")
                    failures[kind] += 1
    return failures


def _plain(record: dict[str, Any]) -> bool:
    """Whether the parser reads ``record`` as one record, not as an envelope of others."""
    return _ENVELOPE_KEYS.isdisjoint(record)


def make_case(seeds: list[dict[str, Any]], rng: random.Random
              ) -> tuple[str, bytes, int | None]:
    """``(description, payload, records expected or None)`` for one case."""
    framing = rng.choice(list(FRAMINGS))
    count = 1 if framing in ("line", "eventbridge", "sqs", "pubsub") else rng.randint(1, 4)
    records = [rng.choice(seeds) for _ in range(count)]
    layer = rng.choice(("structure", "structure", "text", "bytes"))
    if layer == "structure":
        raw = [_dumps(mutate_structure(record, rng)) for record in records]
        data = FRAMINGS[framing](raw)
        # each line an object with no envelope: read as exactly one record
        expect = count if framing in LINE_FRAMINGS and all(
            _plain(orjson.loads(r)) for r in raw if _decodes(r)) else None
        return f"{framing}/structure", data, expect
    data = FRAMINGS[framing]([orjson.dumps(record) for record in records])
    if layer == "text":
        return f"{framing}/text", mutate_text(data, rng), None
    return f"{framing}/bytes", mutate_bytes(data, rng), None


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--seed", type=int, default=1)
    args.add_argument("--cases", type=int, default=2000)
    args.add_argument("--corpus", action="append", default=None,
                      help="a directory or file of records (repeatable)")
    args.add_argument("--show", type=int, default=3, help="failing payloads to print")
    args.add_argument("--sweep", action="store_true",
                      help="set every field of every seed to each JSON type in turn")
    args.add_argument("--dump", metavar="CASE:FILE", default=None,
                      help="write the payload of case CASE to FILE and stop (to reproduce "
                           "a failure without the fuzzer)")
    opts = args.parse_args(argv)
    dump_case, _, dump_file = (opts.dump or "-1:").partition(":")
    if opts.dump is not None and not (dump_case.isdigit() and dump_file
                                      and int(dump_case) < opts.cases):
        args.error(f"--dump wants CASE:FILE with CASE below --cases ({opts.cases}), "
                   f"got {opts.dump!r}")
    logging.disable(logging.WARNING)  # the parser's one-line notes on skipped vendors
    rng = random.Random(opts.seed)
    seeds = load_seeds(opts.corpus or [c for c in DEFAULT_CORPORA if os.path.exists(c)], rng)
    if not seeds:
        print("no records found in the corpus", file=sys.stderr)
        return 2
    if opts.sweep:
        found = sweep(seeds)
        print(f"sweep of {len(seeds)} seed records: {sum(found.values())} failures of "
              f"{len(found)} kinds")
        return 1 if found else 0
    failures: Counter[str] = Counter()
    shown = 0
    for case in range(opts.cases):
        what, data, expect = make_case(seeds, rng)
        if case == int(dump_case):
            Path(dump_file).write_bytes(data)
            print(f"case {case} ({what}): {len(data)} bytes written to {dump_file}")
            return 0
        problem = check(data, expect)
        if problem is None:
            continue
        kind = problem.split(":")[0]
        failures[f"{what}: {kind}"] += 1
        if shown < opts.show:
            shown += 1
            print(f"case {case} ({what}): {problem}\n  payload {data[:400]!r}")
    print(f"{opts.cases} cases from {len(seeds)} seed records, seed {opts.seed}: "
          f"{sum(failures.values())} failures")
    for kind, count in failures.most_common():
        print(f"  {count:5d}  {kind}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
