"""Audit-log sources: raw bytes of any supported dialect in, normalised ``Event``s out.

Reading order: ``parser`` (framing, envelopes, routing, accounting) -> one module per
format (``cloudtrail``, ``gcp``, ``k8s``, ``azure``) -> ``detector.identity`` (keys and
kinds) -> ``deadletter`` (where bad records go) -> ``common`` (time, network, user agents).

Public API:

- ``read_paths(paths, *, source=None, stats, dead_letters, rules=None, listed=False,
  archive=False)``: files, directories (recursive) or ``-`` for stdin; yields Events in
  input order (``listed``: the paths are files ``iter_files`` already found, read without a
  second look; ``archive``: an archive of samples in no time order, see Event time).
- ``parse_payload(data, *, origin, source=None, stats, dead_letters, rules=None,
  parser=None)``: one in-memory payload (a Kafka message with one record or many). Pass a
  long-lived ``Parser`` as ``parser`` to merge Kubernetes stages across messages; without
  one, requests seen only at ``RequestReceived`` are emitted as ``partial`` at once.

Accounting: every record read is counted in ``RunStats.records_read[source]`` and ends as
an event, a dead letter (reasons in ``deadletter.REASONS``) or a skip. An identifying field
longer than any real log writes is an ``oversized_field`` dead letter (bounds in
``common``). Duplicate keys in a record are not looked for: the last value wins (orjson,
like Python's ``json``); finding them costs a scan of the payload per key, 3 % of parse
time each (measured), for records no cloud writes.

Event time (``Parser._place``): a record more than a day after the machine's clock is a
``future_time`` dead letter unless the records after it follow it (a stream wholly
"in the future", from a wrong clock, is read); one more than a day outside its stream's
range of event times (one parser per replay file stream or worker partition) waits until
a later record confirms it or 16 later records stay on the stream's side (``time_outlier``
dead letter), so one stray timestamp never moves event time for every identity. An archive
of samples gathered over years, in no time order (Panther's test files), is read with
``archive`` (``--archive``): each record at its own time, none a ``time_outlier``; that is
never guessed, since nothing in the input tells it from a stream with a wrong clock for
certain. Skip reasons:
``digest`` (CloudTrail digest files, told by content, and by their S3 key when read from
files), ``insight`` (CloudTrail Insights, kept out of
baselines; each also yields context events, see ``insight``), ``control_message``
(CloudWatch Logs health checks), ``merged_stage`` and ``duplicate_stage`` (Kubernetes
stages of a request already counted), ``duplicate_event``
(a CloudTrail event delivered twice), ``unsupported_format`` (Okta, GitHub, OpenAI and
Anthropic audit records, and Panther rows of other vendors' log types: recognised, valid,
but not a supported source), ``nhi_detector_output`` (this tool's own alerts, dead
letters, inventory and labels files found among the logs). Each kind of these two is
named in one warning line the first time it is met. Input whose format cannot be told is
counted under the source ``unknown``.
Under a forced source (``--source``, ``Parser(source=...)``), a record whose shape is
another supported format is a ``wrong_source`` dead letter, counted under the forced source
(``unknown`` for ``azure``, which reads both Azure formats and AKS): read as the forced
format it would become a wrong event. A record of no known shape is read as the forced
format. ``--source k8s`` also reads GKE LogEntries and AKS records; ``--source gcp`` reads
GKE LogEntries as GCP events. Each event is also counted
under the path it came by in ``RunStats.events_by_path`` (``parser.PATHS``: ``s3``, ``cwl``,
``eventbridge``, ``bare``), the CloudWatch Logs coverage gap of edge case B13.

Salvage (edge case B10): an EKS audit message cut off in CloudWatch Logs stays a
``truncated`` dead letter (raw text kept, logged at the 1st, 10th, 100th ... such record,
never joined with the next message); beside it, ``salvage.salvage_prefix`` reads the intact
prefix and, when it names the user and the verb, a ``partial`` event with
``attributes["salvaged"] = "truncated"`` is emitted and counted in ``RunStats.salvage``
(not in ``events``, so records still balance).

Directory walks (``iter_files``) count what they do not read, under ``unknown``: a file
whose name has no log extension and whose content does not start like JSON, gzip, another
format ``compressed`` reads or names (bzip2, xz, zstd, UTF-16/32 text) or an export that
``exports`` reads (CloudWatch Logs export lines, a known CSV header) is a
``not_a_log_file`` skip (a directory where every file is skipped is named in a warning),
a hidden file (name starting with ``.``) a ``hidden_file`` skip, a symbolic link to a
directory (not followed, so a walk cannot loop) a ``directory_link``
skip. A directory that cannot be listed, a file that cannot be opened and anything that is
not a regular file (a FIFO would block forever, a socket cannot be read) are ``read_error``
dead letters; none of them is ever opened. A path named on the command line is read as
given, so ``<(zcat x.gz)`` works; one that cannot be found says why (a symbolic link
loop says so, ``path_problem``). Closed stdin is a ``read_error`` dead letter. A file
that fails in any way no record explains is one dead letter and the run goes on.

Memory: a file up to ``_STREAM_THRESHOLD`` is read whole (the fast path for delivery
files); a larger one, and stdin, go through ``Parser.feed_stream``, which judges the input
from its first 64 KiB before reading it whole: JSON lines stream (a line over the record
limit is counted and dropped as it passes), binary or unknown text is one dead letter
whose ``raw_size`` is the input's real size, and a document that only whole framing reads
is held up to ``max_decompressed_bytes`` and refused beyond. So memory is bounded by the
parser's limits, not by the input (a 2 GB sparse file took 4.2 GB to become one
``binary`` dead letter; now 27 MB).
"""

from __future__ import annotations

import errno
import io
import logging
import os
import stat
import sys
from collections.abc import Iterable, Iterator

from detector.errors import SinkError
from detector.event import Event
from detector.identity import IdentityRules
from detector.sources.deadletter import (
    REASONS,
    DeadLetterSink,
    JsonlDeadLetters,
    ListDeadLetters,
    NullDeadLetters,
)
from detector.sources.parser import Parser, canonical_source
from detector.sources import compressed, exports  # noqa: I001 - after parser, which imports them
from detector.stats import RunStats

__all__ = [
    "REASONS",
    "DeadLetterSink",
    "JsonlDeadLetters",
    "ListDeadLetters",
    "NullDeadLetters",
    "Parser",
    "canonical_source",
    "iter_files",
    "missing_paths",
    "parse_payload",
    "path_problem",
    "read_paths",
]

logger = logging.getLogger(__name__)

_EXTENSIONS = (".json", ".jsonl", ".ndjson", ".log", ".gz", ".raw")
_STREAM_THRESHOLD = 64 * 1024 * 1024


def read_paths(paths: Iterable[str | os.PathLike[str]], *, source: str | None = None,
               stats: RunStats, dead_letters: DeadLetterSink,
               rules: IdentityRules | None = None, parser: Parser | None = None,
               listed: bool = False, archive: bool = False) -> Iterator[Event]:
    """Yield the events of every file under ``paths`` (``-`` is stdin), then flush.

    ``listed``: ``paths`` are files ``iter_files`` has already found (the replay lists
    them all first to plan its streams), so they are read as they are, not examined again.
    ``archive``: the input is an archive of samples in no time order (``Parser._place``).
    """
    parser = parser or Parser(stats=stats, dead_letters=dead_letters, source=source,
                              rules=rules, archive=archive)
    for path in map(str, paths) if listed else iter_files(paths, parser):
        try:
            yield from _read_one(path, parser, stats)
        except SinkError:
            raise
        except Exception as err:  # noqa: BLE001 - last resort: one file never ends the run
            logger.warning("reading %s failed: %s: %s", path, type(err).__name__, err)
            if isinstance(err, OSError):
                parser.dead_input("read_error", f"{REASONS['read_error']}: {err}", path, None)
            else:
                parser.dead_input("internal_error", f"{REASONS['internal_error']}: "
                                  f"{type(err).__name__} while reading the file", path, None)
    yield from parser.finish()


def parse_payload(data: bytes, *, origin: str, source: str | None = None, stats: RunStats,
                  dead_letters: DeadLetterSink, rules: IdentityRules | None = None,
                  parser: Parser | None = None) -> list[Event]:
    """The events of one in-memory payload; never raises for bad input."""
    if parser is not None:
        return parser.feed(data, origin)
    parser = Parser(stats=stats, dead_letters=dead_letters, source=source, rules=rules)
    return parser.feed(data, origin) + parser.finish()


def iter_files(paths: Iterable[str | os.PathLike[str]], parser: Parser,
               found: dict[str, os.stat_result] | None = None) -> Iterator[str]:
    """Expand directories recursively (sorted); what is not read is counted (module doc).

    ``found``, when given, receives the ``os.stat`` of each path yielded (not of ``-``),
    so a caller that needs it (the replay's ``once_each``) does not ask again: replay_data
    is 11,000 small files, and each extra stat was 3 us of a 25 us share per file."""
    for raw in paths:
        path = str(raw)
        if path == "-":
            yield path
            continue
        try:  # one stat for what isdir and exists would each ask (a replay names 10,000s)
            result = os.stat(path)
        except (OSError, ValueError) as err:
            parser.dead_input("read_error", f"{REASONS['read_error']}: {path_problem(err)}",
                              path, None)
            continue
        if stat.S_ISDIR(result.st_mode):
            yield from _walk(path, parser, found)
        else:
            if found is not None:
                found[path] = result
            yield path


def path_problem(err: Exception) -> str:
    """Why a named path cannot be read, in words: a symbolic link loop says so (``stat``
    fails on it as on a missing file, and "no such file" sent users looking for a typo)."""
    if isinstance(err, OSError) and err.errno == errno.ELOOP:
        return "a symbolic link loop (too many levels of symbolic links)"
    if isinstance(err, OSError) and err.errno not in (None, errno.ENOENT) and err.strerror:
        return err.strerror.lower()
    return "no such file or directory"


def missing_paths(paths: Iterable[str]) -> str | None:
    """The usage error for named paths that cannot be read (``-`` is stdin), or ``None``:
    ``no such file or directory: a, b``, and each other problem by name."""
    problems: dict[str, list[str]] = {}
    for path in paths:
        if path == "-":
            continue
        try:
            os.stat(path)
        except (OSError, ValueError) as err:
            problems.setdefault(path_problem(err), []).append(path)
    if not problems:
        return None
    return "; ".join(f"{problem}: {', '.join(names)}" for problem, names in problems.items())


def _walk(top: str, parser: Parser, found: dict[str, os.stat_result] | None = None
          ) -> Iterator[str]:
    """The log files under ``top``; when none is and some were skipped as not logs, one
    warning says so (a folder of files in a format nothing reads was a quiet run of zero
    events)."""
    read = skipped = 0
    for path in _walk_all(top, parser, found):
        if path is None:
            skipped += 1
        else:
            read += 1
            yield path
    if not read and skipped:
        logger.warning("nothing read under %s: its %d file%s skipped or unreadable (read: "
                       "names ending %s, or content that starts like JSON, gzip, bzip2, xz, "
                       "zstd or a known export)", top, skipped,
                       "s were" if skipped > 1 else " was", "/".join(_EXTENSIONS))


def _walk_all(top: str, parser: Parser, found: dict[str, os.stat_result] | None = None
              ) -> Iterator[str | None]:
    """``_walk``'s files, with ``None`` for each file skipped as not a log."""
    def unlistable(err: OSError) -> None:
        parser.dead_input("read_error", f"{REASONS['read_error']}: cannot list the "
                          f"directory: {err.strerror}", err.filename or top, None)

    for root, dirs, files in os.walk(top, onerror=unlistable):
        dirs.sort()
        for name in [name for name in dirs if os.path.islink(os.path.join(root, name))]:
            parser.skip_input("directory_link", os.path.join(root, name))
        for name in sorted(files):
            full = os.path.join(root, name)
            if name.startswith("."):
                parser.skip_input("hidden_file", full)
                yield None
                continue
            try:
                result = os.stat(full)
            except OSError as err:  # a dangling link, a file removed meanwhile
                parser.dead_input("read_error", f"{REASONS['read_error']}: {err.strerror}",
                                  full, None)
                continue
            if not stat.S_ISREG(result.st_mode):
                parser.dead_input("read_error", f"{REASONS['read_error']}: not a regular "
                                  "file", full, None)
            elif _is_log_file(full, parser):
                if found is not None:
                    found[full] = result
                yield full
            else:
                yield None


def _is_log_file(path: str, parser: Parser) -> bool:
    if path.endswith(_EXTENSIONS):
        return True
    try:
        with open(path, "rb") as handle:
            raw = handle.read(4096)  # enough for an export's first lines (exports)
            head = raw[:64].lstrip()
    except OSError as err:
        parser.dead_input("read_error", f"{REASONS['read_error']}: {err.strerror}", path,
                          None)
        return False
    if head[:1] in (b"{", b"[") or head[:2] == b"\x1f\x8b" or compressed.kind_of(raw) or \
            exports.starts_like_export(raw):
        return True
    parser.skip_input("not_a_log_file", path)
    return False


# CloudTrail digest objects by their S3 key (edge case B01): skipped whatever their content,
# so a cut or damaged digest is a skip like any other, not a dead letter among the logs.
_DIGEST_MARKS = ("/CloudTrail-Digest/", "_CloudTrail-Digest_")


def _read_one(path: str, parser: Parser, stats: RunStats) -> Iterator[Event]:
    stats.files_read += 1
    if any(mark in path for mark in _DIGEST_MARKS):
        parser.skip_digest(path)
        return
    if path == "-":
        stdin = getattr(sys.stdin, "buffer", None)  # None when stdin is closed (<&-)
        if stdin is None:
            parser.dead_input("read_error", f"{REASONS['read_error']}: stdin is closed or "
                              "not a byte stream", "<stdin>", None)
            return
        for batch in parser.feed_stream(stdin, "<stdin>"):
            yield from batch
        return
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as err:
        parser.dead_input("read_error", f"{REASONS['read_error']}: {err.strerror}", path,
                          None)
        return
    try:
        size = os.fstat(fd).st_size
        if size > _STREAM_THRESHOLD:
            with open(fd, "rb", buffering=0) as raw:  # closes fd
                fd = -1
                for batch in parser.feed_stream(io.BufferedReader(raw), path, size=size):
                    yield from batch
            return
        data = _read_all(fd, size)
    except OSError as err:
        parser.dead_input("read_error", f"{REASONS['read_error']}: {err.strerror}", path,
                          None)
        return
    finally:
        if fd >= 0:
            os.close(fd)
    yield from parser.feed(data, path)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)


def _read_all(fd: int, size: int) -> bytes:
    """Everything left in ``fd``, whose size was ``size`` when asked: one ``os.read`` of
    ``size + 1`` bytes for a regular file, then reads until one returns nothing (a file
    that grew, a pipe whose size says 0).

    A descriptor and ``os.read`` instead of ``open(...).read()``: no file object to build
    and close per file, 3 us of a replay's 11,000 small files (0.10 s -> 0.07 s CPU)."""
    first = os.read(fd, size + 1)
    if not first:
        return first
    parts = [first]
    while chunk := os.read(fd, max(size, 65536)):
        parts.append(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)
