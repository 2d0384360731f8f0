"""``nhi-detector parse``: print normalised events of audit-log files as JSON lines.

Events go to stdout (one orjson line each), a one-line summary to stderr: counts per
source, per identity kind, per dead-letter reason and per skip reason. Bad records never
change the exit code (0); unusable arguments or an invalid config give 2 and a message that
names the file; an output that cannot be written (stdout, the dead-letter file) gives 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

import orjson

from detector.config import load_config
from detector.errors import ConfigError, NhiError, SinkError
from detector.identity import IdentityRules
from detector.sources import (
    JsonlDeadLetters,
    NullDeadLetters,
    canonical_source,
    missing_paths,
    read_paths,
)
from detector.stats import RunStats

logger = logging.getLogger(__name__)

SOURCE_CHOICES = ("aws", "gcp", "k8s", "azure", "aws.cloudtrail", "gcp.audit", "k8s.audit",
                  "azure.activity", "azure.signin")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="files, directories (recursive) or - for stdin")
    parser.add_argument("--source", choices=SOURCE_CHOICES,
                        help="force one format instead of detecting it per record; "
                             "records of another supported format are then dead letters "
                             "with reason wrong_source")
    parser.add_argument("--dead-letters", metavar="FILE",
                        help="append bad records to this JSON-lines file")
    parser.add_argument("--config", metavar="FILE",
                        help="YAML config (identities section: kind overrides, owners)")
    parser.add_argument("--archive", action="store_true",
                        help="the input is an archive of samples gathered over years, not a "
                             "stream in time order (Panther's test files, a folder of "
                             "examples): every record is read at its own time, never held "
                             "or dead-lettered as a time_outlier (a record over a day after "
                             "this machine's clock is still future_time)")


class GuardedDeadLetters:
    """A ``JsonlDeadLetters`` whose write and close failures become one ``SinkError``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.inner = JsonlDeadLetters(path)

    def write(self, reason: str, message: str, origin: str, raw: bytes | str | None,
              source: str) -> None:
        try:
            self.inner.write(reason, message, origin, raw, source)
        except OSError as err:
            raise SinkError(f"cannot write dead-letter file {self.path}: "
                            f"{err.strerror or err}") from err

    def close(self) -> None:
        try:
            self.inner.close()
        except OSError as err:
            self.inner._handle = None  # noqa: SLF001 (its buffer cannot be written anyway)
            raise SinkError(f"cannot write dead-letter file {self.path}: "
                            f"{err.strerror or err}") from err

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def silence_stdout() -> None:
    """Point stdout at /dev/null after a failed write, so exiting does not fail again on
    the bytes still buffered (which would print a second, unhelpful error)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):
        pass


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        rules = IdentityRules.from_config(config.get("identities"))
        canonical_source(args.source)
    except ConfigError as err:
        print(f"nhi-detector parse: {err}", file=sys.stderr)
        return 2
    except (NhiError, ValueError) as err:
        where = f"config file {args.config}: " if args.config else ""
        print(f"nhi-detector parse: {where}{err}", file=sys.stderr)
        return 2
    missing = missing_paths(args.paths)
    if missing:  # a typo in a path is a usage error, as in replay, not a dead letter
        print(f"nhi-detector parse: {missing}", file=sys.stderr)
        return 2
    stats = RunStats()
    sink: Any = GuardedDeadLetters(args.dead_letters) if args.dead_letters else NullDeadLetters()
    try:
        _write_events(args, rules, stats, sink)
    except SinkError as err:
        print(f"nhi-detector parse: {err}", file=sys.stderr)
        return 1
    finally:
        print(summary_line(stats), file=sys.stderr)
    return 0


def _write_events(args: argparse.Namespace, rules: IdentityRules, stats: RunStats,
                  sink: Any) -> None:
    """Events to stdout, bad records to ``sink``; a failed output raises ``SinkError``."""
    out = sys.stdout.buffer
    dumps = orjson.dumps
    option = orjson.OPT_APPEND_NEWLINE | orjson.OPT_UTC_Z
    try:
        try:
            for event in read_paths(args.paths, source=args.source, stats=stats,
                                    dead_letters=sink, rules=rules, archive=args.archive):
                out.write(dumps(event.to_dict(), option=option))
            out.flush()
        finally:
            if isinstance(sink, GuardedDeadLetters):
                sink.close()
    except BrokenPipeError:
        raise  # the reader went away (``| head``): the CLI ends quietly
    except OSError as err:
        silence_stdout()
        raise SinkError(f"cannot write events to standard output: "
                        f"{err.strerror or err}") from err


def summary_line(stats: RunStats) -> str:
    """One line: records read, events per source and kind, dead letters, skipped."""
    def fmt(counter: Any) -> str:
        items = sorted(counter.items(), key=lambda item: (-item[1], str(item[0])))
        return ",".join(f"{_label(key)}={count}" for key, count in items) or "-"

    read = sum(stats.records_read.values())
    events = sum(stats.events.values())
    dead = sum(stats.dead_letters.values())
    skipped = sum(stats.skipped.values())
    return (f"parse: files={stats.files_read} records={read} events={events} "
            f"dead_letters={dead} skipped={skipped} | sources {fmt(stats.events)} | "
            f"kinds {fmt(stats.events_by_kind)} | dead {fmt(stats.dead_letters)} | "
            f"skipped {fmt(stats.skipped)} | balanced={stats.balanced()}")


def _label(key: Any) -> str:
    return "/".join(key) if isinstance(key, tuple) else str(key)
