"""``nhi-detector replay``: the whole detector over log files, in event-time order.

Replay is how a team tries nhi-detector on its own history, tunes it, and runs it with no
broker. One process reads files, directories (recursive, gzip) or stdin, with sources
auto-detected per record, and drives::

    read_paths per file stream ─▶ merge_streams ─▶ ReorderBuffer ─▶ Detector.process
        ─▶ alerts (JSON lines)     └▶ Activity (first/last time, hourly counts)

File streams: see ``detector.reorder`` (files that follow each other in time are read in
sequence, streams are interleaved by event time, then the bounded buffer sorts).

Alerts are written as JSON lines, native (``Alert.to_native()``) or OCSF. Grouped alerts
are *updated*: a later line may carry the same ``alert_id`` with a higher ``revision``.
Every revision is written as it happens; consumers dedupe by ``alert_id`` and keep the
highest ``revision``.

When alerts go to stdout, everything else (progress, summary) goes to stderr; when they
go to a file, the summary goes to stdout. Exit codes: 0 done, 1 an input or output failed,
2 a bad argument, configuration, labels file or state snapshot (nothing is misread), an
output naming one of the run's inputs or another output (nothing is overwritten), an
output file that cannot be written, or a ``--save-state`` file another replay is writing,
130 interrupted by SIGINT, 143 by SIGTERM (the figures of what was processed are still
written; no snapshot). A SIGTERM that comes once every event is processed, while the
outputs are written, waits for them (snapshot included) and then gives 143.

Steps of ``run``: (1) load configuration, labels and the optional warm-start snapshot,
(2) open the outputs, (3) run the event loop, (4) close groups (``Detector.finish``) and
write the snapshot and inventory, (5) evaluate against labels, print the summary and
write the summary JSON and the HTML report.
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import math
import os
import re
import signal
import stat
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from detector.errors import ConfigError, NhiError, SinkError, StateError
from detector.evaluation import (
    Activity,
    AlertLog,
    Scenario,
    evaluate,
    threshold_sweep,
    unseen_identities,
)
from detector.jsonl import WholeLinesFile
from detector.reorder import (
    DEFAULT_WINDOW_SECONDS,
    MAX_STREAMS,
    ReorderBuffer,
    merge_streams,
    plan_streams,
)
from detector.stats import RunStats
from detector.summary import TICK_EVERY, Progress, build_summary, render_summary

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process it killed
TICK_MASK = TICK_EVERY - 1
SOURCE_CHOICES = ("aws", "gcp", "k8s", "azure", "aws.cloudtrail", "gcp.audit", "k8s.audit",
                  "azure.activity", "azure.signin")  # the same spellings as ``parse``


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``replay`` options."""
    parser.epilog = (
        "Example: nhi-detector replay replay_data/ --labels replay_data/labels.json "
        "--report report.html --alerts alerts.jsonl --summary-json summary.json. "
        "Exit codes: 0 done; 1 an input or output failed; 2 a bad argument, configuration, "
        "labels file or state snapshot, or an output that cannot be written (checked "
        "before reading); 130 interrupted (SIGINT), 143 terminated (SIGTERM). "
        "Missing parent folders of output files are created; the summary ends with the "
        "files written."
    )
    add = parser.add_argument
    add("paths", nargs="+", metavar="PATH",
        help="log files, directories (recursive, .gz too) or - for stdin")
    add("--source", choices=SOURCE_CHOICES,
        help="force one source format (default: detected per record); records of another "
             "supported format are then dead letters with reason wrong_source")
    add("--config", metavar="FILE", help="YAML configuration file")
    add("--archive", action="store_true",
        help="the input is an archive of samples gathered over years, not a stream in time "
             "order (Panther's test files, a folder of examples): every record is read at "
             "its own time, never held or dead-lettered as a time_outlier (a record over a "
             "day after this machine's clock is still future_time)")
    add("--suppressions", metavar="FILE", help="YAML suppression rules file")
    add("--alerts", metavar="FILE", default="-",
        help="write alerts here as JSON lines (default: - for stdout); a grouped alert is "
             "written again at each revision: dedupe by alert_id, keep the highest revision")
    add("--format", choices=("native", "ocsf"), default="native",
        help="alert format: native JSON or OCSF Detection Finding (default: native)")
    add("--dead-letters", metavar="FILE",
        help="append records that cannot be parsed to this JSON-lines file")
    add("--inventory", metavar="FILE",
        help="write the identity inventory as JSON lines after the replay")
    add("--save-state", metavar="FILE", help="write every identity's baseline after the replay")
    add("--load-state", metavar="FILE", help="start warm from a snapshot written by --save-state")
    add("--labels", metavar="FILE",
        help="labelled scenarios (JSON): report detected/missed, time to detect and "
             "alerts outside scenarios per 1,000 identity-days")
    add("--report", metavar="FILE", help="write a self-contained HTML tuning report")
    add("--reorder-window", metavar="SECONDS", type=float, default=DEFAULT_WINDOW_SECONDS,
        help="event-time reorder window; later records are processed and counted as late "
             f"(default: {DEFAULT_WINDOW_SECONDS:g})")
    add("--metrics-port", metavar="PORT", type=int,
        help="serve Prometheus metrics on 127.0.0.1:PORT while the replay runs")
    add("--no-progress", action="store_true", help="no progress line even on a terminal")
    add("--summary-json", metavar="FILE", help="write the summary figures as JSON")


# ---------------------------------------------------------------------------- outputs


class AlertWriter:
    """Writes alerts as JSON lines and keeps what evaluation and the report need.

    Shadow alerts (from detectors on trial, marked ``"shadow": true``) are written but left
    out of the figures: they say what a detector would do, not what the team would see.
    """

    def __init__(self, handle: IO[bytes], fmt: str, log: AlertLog) -> None:
        self.handle = handle
        self.log = log
        self.to_ocsf: Callable[[Any], dict[str, Any]] | None = None
        if fmt == "ocsf":
            from detector.ocsf import to_ocsf

            self.to_ocsf = to_ocsf

    def write(self, alerts: Iterable[Any], raised_ts: float) -> None:
        for alert in alerts:
            native = alert.to_native()
            record = native if self.to_ocsf is None else self.to_ocsf(alert)
            try:
                self.handle.write(orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n")
            except BrokenPipeError as err:
                if isinstance(self.handle, WholeLinesFile):  # a named pipe's reader died
                    raise SinkError(f"cannot write alerts to {self.handle.name}: the "
                                    f"reader went away ({err.strerror})") from err
                raise  # standard output's reader went away (``| head``): ends quietly
            except OSError as err:
                raise SinkError(f"cannot write alerts: {err.strerror}") from err
            if not native.get("shadow"):
                self.log.add(native, raised_ts)


@dataclass
class Outputs:
    """The open output handles of one run; ``close`` is safe to call twice."""

    alerts: IO[bytes]
    text: IO[str]
    dead_letters: Any
    owned: list[Any] = field(default_factory=list)

    def close(self) -> None:
        """Close every owned handle; the first failure is raised as ``SinkError``."""
        failed: SinkError | None = None
        handles, self.owned = self.owned, []
        for handle in handles:
            try:
                handle.close()
            except SinkError as err:
                failed = failed or err
            except OSError as err:
                name = getattr(handle, "name", "an output")
                failed = failed or SinkError(f"cannot write {name}: {err.strerror or err}")
        if sys.stdout is not None and self.alerts is sys.stdout.buffer:
            try:
                self.alerts.flush()
            except BrokenPipeError:
                raise
            except OSError as err:
                failed = failed or SinkError(
                    f"cannot write alerts to standard output: {err.strerror or err}"
                )
        if failed is not None:
            raise failed


def _is_stdout(path: str) -> bool:
    """Whether ``path`` names the file behind standard output (``/dev/stdout``,
    ``/dev/fd/1``, or the file stdout is redirected to). Opened a second time it would
    have its own offset, and with ``> file`` the summary written through stdout would
    overwrite the first alerts, so such a target is written through stdout itself."""
    try:
        target, out = os.stat(path), os.fstat(sys.stdout.fileno())
    except (OSError, AttributeError, ValueError):  # missing, or stdout closed or replaced
        return False
    return (target.st_dev, target.st_ino) == (out.st_dev, out.st_ino)


def open_outputs(args: argparse.Namespace) -> Outputs:
    from detector.sources.deadletter import NullDeadLetters

    owned: list[Any] = []
    if args.alerts == "-" or _is_stdout(args.alerts):
        if sys.stdout is None:  # started with stdout closed (``>&-``)
            raise SinkError("cannot write alerts to standard output: it is closed")
        alerts, text = sys.stdout.buffer, sys.stderr
    else:
        try:
            Path(args.alerts).parent.mkdir(parents=True, exist_ok=True)
            alerts = WholeLinesFile(args.alerts)  # closed by Outputs.close
        except OSError as err:
            raise SinkError(f"cannot open alerts file {args.alerts}: "
                            f"{why_not_written(err)}") from err
        owned.append(alerts)
        text = sys.stdout or sys.stderr  # stdout closed: the summary goes to stderr
    if text is None:  # both closed: the summary has nowhere to go, the files still do
        text = io.StringIO()
    from detector.parse_cmd import GuardedDeadLetters

    dead: Any = NullDeadLetters()
    if args.dead_letters:
        dead = GuardedDeadLetters(args.dead_letters)
        owned.append(dead)
    return Outputs(alerts, text, dead, owned)


class OutputFile(NamedTuple):
    """One output file option of replay."""

    name: str  # the option's attribute; the flag is ``--`` and the name with dashes
    what: str  # what a message about the file calls it
    in_place: bool = False  # written into (alerts) or appended to (dead letters), not replaced


# The one list of replay's file options: each is checked before anything is read
# (``check_outputs``, ``check_writable_outputs``) and never read as a log (``own_files``).
INPUT_OPTIONS = ("labels", "config", "suppressions", "load_state")
OUTPUT_FILES = (
    OutputFile("alerts", "alerts file", in_place=True),
    OutputFile("dead_letters", "dead-letter file", in_place=True),
    OutputFile("inventory", "inventory"),
    OutputFile("report", "report"),
    OutputFile("summary_json", "summary"),
    OutputFile("save_state", "state snapshot"),
)


def flag(name: str) -> str:
    """The command-line flag of an option attribute: ``save_state`` is ``--save-state``."""
    return f"--{name.replace('_', '-')}"


def check_writable_outputs(args: argparse.Namespace) -> None:
    """``ConfigError`` (exit 2) now for an output file that could not be written, before
    the snapshot is loaded and any log is read. The dead letters are written at the first
    bad record, the snapshot, inventory, summary and report after the whole replay: a
    read-only folder there used to be found only once hours of replay were done. Nothing
    is left behind by the check."""
    for output in OUTPUT_FILES:
        path = getattr(args, output.name)
        if not path or (output.name == "alerts" and (path == "-" or _is_stdout(path))):
            continue
        try:
            check_creatable(path, output.what, in_place=output.in_place)
        except SinkError as err:
            raise ConfigError(str(err)) from err


def check_creatable(path: str, what: str, *, in_place: bool = False) -> None:
    """``SinkError`` when ``path`` could not be written: a folder, a path under a file,
    a file or folder this process may not write (read-only file system, permissions,
    which root passes, so the check tries rather than asks ``os.access``)."""
    if os.path.isdir(path):
        raise SinkError(f"cannot write {what} {path}: Is a directory")
    # a symbolic link is written through (``write_atomic``): its target's folder counts
    parent = Path(os.path.realpath(path)).parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise SinkError(f"cannot write {what} {path}: {parent} is not a directory")
    try:
        mode: int | None = os.stat(path).st_mode
    except OSError:
        mode = None
    try:
        if mode is not None and not stat.S_ISREG(mode):
            return  # a device or pipe, written into; opening a pipe here would block
        if mode is not None and in_place:
            # the alerts are written in place, the dead letters appended: the file itself
            # must take writes (opened without truncating, so nothing changes)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
            return
        # a file still to be created, or one replaced through a sibling (``write_atomic``),
        # with its missing folders: the nearest existing folder must take a new file
        probe = parent / f".{Path(path).name}.{os.getpid()}.tmp"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as err:
        raise SinkError(f"cannot write {what} {path}: {why_not_written(err)}") from err


def own_files(args: argparse.Namespace) -> list[str]:
    """Files this run reads or writes besides the logs: never to be read as logs."""
    names = INPUT_OPTIONS + tuple(output.name for output in OUTPUT_FILES)
    paths = (getattr(args, name) for name in names)
    return [path for path in paths if path and path != "-"]


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write a file through a temporary sibling so a crash never leaves half a file.

    The sibling is ``.<name>.<pid>.tmp``; a run killed while writing (``kill -9``) leaves
    one behind, so stale siblings of the same target whose process is gone are removed
    first. A symbolic link is followed, so the link stays and the file it names is
    replaced. A target that exists and is not a regular file (``/dev/stdout``,
    ``/dev/null``, a pipe such as ``>(gzip > x.gz)``) is written straight into: renaming
    over it would replace the device or pipe with a plain file, for the whole machine
    when run as root.
    """
    path = Path(path)
    try:
        mode: int | None = os.stat(path).st_mode
    except OSError:
        mode = None  # missing, or a link to nothing: written below, or failing there
    if mode is not None and not stat.S_ISREG(mode):
        _write_through(path, data)
        return
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(path)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        raise SinkError(f"cannot write {path}: {why_not_written(err)}") from err
    finally:  # also when Ctrl-C lands mid-write: the target is as it was, no leftover
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _write_through(path: Path, data: bytes) -> None:
    try:
        with open(path, "wb") as handle:
            handle.write(data)
    except OSError as err:
        raise SinkError(f"cannot write {path}: {why_not_written(err)}") from err


def why_not_written(err: OSError) -> str:
    """The reason an output failed, in words: creating the folders of ``a/b.json`` when
    ``a`` is a file fails with "File exists", which names the wrong problem."""
    if isinstance(err, FileExistsError) and err.filename:
        return f"{err.filename} is not a directory"
    return str(err.strerror or err)


def remove_stale_tmp(path: Path) -> list[Path]:
    """Delete ``.<name>.<pid>.tmp`` siblings of ``path`` left by dead processes."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.tmp$")
    removed = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    for name in names:
        found = pattern.match(name)
        if found is None or _alive(int(found.group(1))):
            continue
        try:
            (path.parent / name).unlink()
            removed.append(path.parent / name)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier failed write
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid > 0
    except OSError:
        return False
    return True


# ---------------------------------------------------------------------------- setup


class SnapshotLock:
    """An advisory lock that one replay holds on its ``--save-state`` file for the whole run.

    Two replays writing the same snapshot at once both ended well and the last writer won:
    the baselines of the other run were lost without a word. The lock is a ``flock`` on
    the hidden sibling ``.<name>.lock`` (the snapshot itself is replaced by a rename, so a
    lock on it would stay with the old file). The kernel releases it when the process ends,
    however it ends; the sibling, holding the owner's process id for the message, is
    removed on release. A lock taken on a sibling that another run removed meanwhile is
    taken again on the new one, so two runs never both hold a lock.
    """

    def __init__(self, path: str, option: str = "--save-state") -> None:
        real = Path(os.path.realpath(path))
        self.path = real.with_name(f".{real.name}.lock")
        self.target = path
        self.option = option  # how the command that takes it names the file
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock, or ``ConfigError`` (exit 2) naming the run that holds it."""
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise ConfigError(
                    f"{self.option} {self.target} is being written by another run (process "
                    f"{holder}): its snapshot would be overwritten by whichever ends last; "
                    "wait for it to end or name another file") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed that sibling as we opened it: try again
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder by now: the sibling stays, unlocked
        os.close(fd)


@contextmanager
def snapshot_locked(path: str | None, option: str) -> Iterator[None]:
    """Hold ``SnapshotLock`` on the snapshot ``path`` for the block: a replay's
    ``--save-state``, feedback's ``--state`` or ``--out``. No path, or a device or pipe
    (written into, never replaced), takes no lock."""
    if not file_key(path):
        yield
        return
    lock = SnapshotLock(path, option)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def read_snapshot(path: str) -> bytes:
    """A state snapshot's bytes; ``StateError`` when it cannot be read.

    Snapshots are read whole and may rightly be gigabytes, so there is no size bound;
    instead a file that does not begin with the snapshot magic is refused before the rest
    is read (``--load-state /dev/zero`` or a log named by mistake gave a MemoryError), and
    a snapshot larger than the memory left is one line, not a traceback."""
    from detector.engine import NOT_A_SNAPSHOT, SNAPSHOT_MAGIC

    try:
        with open(path, "rb") as handle:
            head = handle.read(len(SNAPSHOT_MAGIC))
            if head and not SNAPSHOT_MAGIC.startswith(head):
                raise StateError(f"state snapshot {path} refused: {NOT_A_SNAPSHOT}")
            return head + handle.read()
    except OSError as err:
        raise StateError(f"cannot read state snapshot {path}: {err.strerror}") from err
    except MemoryError as err:
        raise StateError(f"cannot read state snapshot {path}: not enough memory to hold "
                         "it") from err


def load_state_file(detector: Any, path: str, data: bytes | None = None, *,
                    check_only: bool = False) -> bytes:
    """Warm-start ``detector`` from a snapshot (its bytes ``data`` when already read); a
    wrong version raises ``StateError``. ``check_only``: the checks that need no decoding
    (magic, version, checksum, header, settings), nothing loaded. Returns the bytes."""
    if data is None:
        data = read_snapshot(path)
    try:
        if check_only:
            detector.check_snapshot(data)
        else:
            detector.load_state(data)
        return data
    except StateError as err:
        raise StateError(f"state snapshot {path} refused: {err}") from err
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, OverflowError,
            RecursionError, struct.error) as err:
        # a damaged file must stop the run, never start it on a half-read baseline
        raise StateError(f"state snapshot {path} refused: it is damaged ({err})") from err


def build_detector(args: argparse.Namespace, config: dict[str, Any], stats: RunStats,
                   timings: dict[str, float] | None = None) -> Any:
    """The configured ``Detector``, warm when ``--load-state`` is given; the load's wall
    and CPU seconds go to ``timings`` (a big snapshot takes minutes, which the replay's
    own throughput figures leave out)."""
    from detector.engine import Detector

    if args.suppressions:
        config = {**config, "suppressions_file": args.suppressions}
    detector = Detector(config, stats=stats)
    if args.load_state:
        with timed(timings, "load"):
            load_state_file(detector, args.load_state)
    return detector


@contextmanager
def timed(timings: dict[str, float] | None, name: str) -> Iterator[None]:
    """Record the wall and CPU seconds of the block as ``<name>_seconds`` and
    ``<name>_cpu_seconds`` in ``timings`` (nothing when it is ``None``)."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    if timings is not None:
        timings[f"{name}_seconds"] = time.perf_counter() - wall
        timings[f"{name}_cpu_seconds"] = time.process_time() - cpu


def open_events(
    paths: list[str],
    source: str | None,
    stats: RunStats,
    dead_letters: Any,
    rules_config: Any,
    exclude: Iterable[str] = (),
    archive: bool = False,
) -> Iterator[Any]:
    """Every event under ``paths``, its time-sequential file streams merged by event time.

    Files named in ``exclude`` (the labels file, the run's own outputs) are never read as
    logs, so ``replay replay_data/ --labels replay_data/labels.json`` does what it says.
    """
    from detector.identity import IdentityRules
    from detector.sources import Parser, iter_files, read_paths

    rules = IdentityRules.from_config(rules_config)
    lister = Parser(stats=stats, dead_letters=dead_letters, source=source, rules=rules)
    skip = {os.path.realpath(path) for path in exclude}
    names = {os.path.basename(path) for path in skip}
    found: dict[str, os.stat_result] = {}  # each listed file's stat, for once_each
    listed = (
        path for path in iter_files(paths, lister, found)
        if os.path.basename(path) not in names or os.path.realpath(path) not in skip
    )
    streams = plan_streams(once_each(listed, found))
    if len(streams) > MAX_STREAMS:
        logger.warning(
            "%d file streams exceed %d: reading files in path order; records out of order "
            "by more than the reorder window are counted as late", len(streams), MAX_STREAMS
        )
        streams = [[path for stream in streams for path in stream]]
    logger.info("reading %d file stream(s)", len(streams))
    readers = [
        read_paths(stream, source=source, stats=stats, dead_letters=dead_letters, rules=rules,
                   listed=True, archive=archive)
        for stream in streams
    ]
    if len(readers) > 1:
        # each stream has its own Parser, whose duplicate check sees that stream only: the
        # same file under two folders would be processed twice without a shared check
        seen = CrossStreamDuplicates(stats)
        readers = [seen.filter(reader) for reader in readers]
    return merge_streams(readers)


def once_each(paths: Iterable[str], known: dict[str, os.stat_result] | None = None
              ) -> Iterator[str]:
    """``paths`` without a file met again (named twice, or inside a named directory too).

    Read twice in one file stream, the records of a format with no duplicate check
    (GCP, Azure) would each count and teach the baselines twice. The same file is known
    by device and inode, so a link or ``./x`` is caught too. A file that cannot be
    examined is passed on for the reader to report. ``known`` holds stats already taken
    (``iter_files``'s ``found``); a path found there is not examined again (and its entry
    is dropped: a replay may list millions of files).
    """
    seen: set[tuple[int, int]] = set()
    known = known if known is not None else {}
    for path in paths:
        if path != "-":
            found = known.pop(path, None)
            try:
                found = os.stat(path) if found is None else found
            except OSError:
                yield path
                continue
            key = (found.st_dev, found.st_ino)
            if key in seen:
                logger.warning("%s was already read in this replay: not read again", path)
                continue
            seen.add(key)
        yield path


class CrossStreamDuplicates:
    """A duplicate check shared by every file stream of one replay.

    Each stream has its own Parser, whose duplicate checks (CloudTrail event ids, k8s audit
    stages) see that stream only. Here an event with an id already delivered by another
    stream, with the same source, time, action and identity (the same file under two
    folders, a trail delivered twice), is taken back out of the event counts and counted
    as skipped ``duplicate_event`` under its source, so accounting stays balanced (every
    record read is an event, a dead letter or skipped). A duplicate partial event salvaged
    from a truncated record was never counted as an event (its record is a dead letter):
    it moves from ``salvage`` ``emitted`` to ``duplicate`` instead. ``events_by_path``
    keeps counting events as each path delivered them, before this check. Memory is
    bounded like the parser's (two generations of ``MAX_SEEN_EVENT_IDS`` keys).
    """

    def __init__(self, stats: RunStats) -> None:
        from detector.sources.common import RecentMap
        from detector.sources.parser import MAX_SEEN_EVENT_IDS

        self.stats = stats
        self.seen = RecentMap(MAX_SEEN_EVENT_IDS)

    def filter(self, events: Iterable[Any]) -> Iterator[Any]:
        add, stats = self.seen.add, self.stats
        for event in events:
            if event.event_id and not add(
                (event.source, event.event_id, event.ts, event.action, event.identity)
            ):
                source = event.source
                if event.partial and event.attributes.get("salvaged"):
                    stats.salvage[(source, "emitted")] -= 1
                    stats.salvage[(source, "duplicate")] += 1
                    continue
                stats.events[source] -= 1
                stats.events_by_kind[event.identity_kind] -= 1
                stats.identity_resolution[event.identity_resolution] -= 1
                stats.skipped[(source, "duplicate_event")] += 1
                continue
            yield event


def start_metrics(port: int | None, stats: RunStats, detector: Any) -> tuple[Any, Any]:
    """Start the Prometheus endpoint when asked; returns (server, metrics) or (None, None)."""
    if port is None:
        return None, None
    from detector.metrics import start_metrics_server

    server, metrics = start_metrics_server(port, stats, detector)
    if port == 0:  # the system chose the port: the only way a user learns which one
        print(f"metrics: http://{server.address}:{server.port}/metrics", file=sys.stderr,
              flush=True)
    return server, metrics


# ---------------------------------------------------------------------------- the loop


@dataclass
class LoopResult:
    events: int
    wall_seconds: float
    cpu_seconds: float
    interrupted: bool = False
    terminated: bool = False  # interrupted by SIGTERM rather than SIGINT


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so it stops a replay the way Ctrl-C does."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def handle_sigterm(handler: Callable[[int, Any], None] = _on_sigterm) -> Callable[[], None]:
    """Treat SIGTERM like SIGINT (or as ``handler`` says) until the returned function
    restores the old handler."""
    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals to the host
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


def defer_sigterm() -> Callable[[], bool]:
    """Hold SIGTERM back (the outputs are being written); the returned function restores
    the previous handler and says whether one came meanwhile."""
    came: list[int] = []
    restore = handle_sigterm(lambda signum, _frame: came.append(signum))

    def done() -> bool:
        restore()
        return bool(came)

    return done


def run_loop(
    events: Iterable[Any],
    detector: Any,
    writer: AlertWriter,
    activity: Activity,
    progress: Progress,
    metrics: Any = None,
) -> LoopResult:
    """Feed every event to the detector, then close its open alert groups.

    Ctrl-C stops the reading only: the events already processed still get their alerts
    closed, their summary and their report (``LoopResult.interrupted`` says so).
    """
    started = time.perf_counter()
    cpu_started = time.process_time()
    interrupted = terminated = False
    count = [0, 0.0]  # events processed, event time of the last one
    try:
        with relaxed_gc():
            _consume(events, detector, writer, activity, progress, metrics, count)
    except KeyboardInterrupt as err:
        interrupted, terminated = True, isinstance(err, Terminated)
        stats = getattr(detector, "stats", None)
        read = sum(stats.events.values()) if stats is not None else count[0]
        logger.warning(
            "replay %s: %d events read (the summary's events total), %d of them processed "
            "(events.processed; the rest were still being ordered); writing what was "
            "processed", "terminated (SIGTERM)" if terminated else "interrupted", read,
            count[0],
        )
    final = detector.finish()
    if final:
        writer.write(final, count[1])
    progress.tick(count[0], len(writer.log), force=True)
    progress.close()
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return LoopResult(count[0], wall, cpu, interrupted, terminated)


GC_THRESHOLDS = (500_000, 20, 100)
"""The cyclic collector's thresholds during the event loop (Python's default: 700, 10, 10)."""


@contextmanager
def relaxed_gc(*, freeze: bool = True) -> Iterator[None]:
    """Run the event loop with the cyclic garbage collector rarely, then restore it.

    The loop allocates several container objects per event (events, signals, model
    bookkeeping), so with the default thresholds the collector ran about 500 times in a
    replay_data replay, each time rescanning the events held in the read and reorder
    buffers, and now and then every baseline built so far. The state is freed by
    reference counting, finished file streams' parsers and their duplicate-check keys
    included (they used to form a reference cycle with their Kubernetes stage merger:
    about 130,000 objects on replay_data, freed by a 0.2 s collection after the loop).
    Inside the loop the collector took
    0.56 s of CPU with the default thresholds, 0.15 s with 100,000 new objects between
    collections, and none with 500,000 (the replay never reaches it); peak memory was
    250 MB in every case. A longer replay still collects every 500,000 new objects, so
    garbage in reference cycles stays bounded.

    ``gc.freeze`` moves what exists before the loop (imported modules, configuration, a
    state snapshot loaded with ``--load-state``) out of the collector's sight, so a rare
    full collection does not rescan it either. ``gc.unfreeze`` gives it back at the end:
    a process that runs many replays (the tests) frees the cycles of earlier ones as usual.
    ``nhi-detector replay`` also relaxes the thresholds (without freezing) around the
    whole command, where importing the models and building the report allocate a few
    hundred thousand long-lived objects (0.1 to 0.2 s of collector CPU saved).
    """
    thresholds = gc.get_threshold()
    if freeze:
        gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if freeze:
            gc.unfreeze()


def _consume(
    events: Iterable[Any],
    detector: Any,
    writer: AlertWriter,
    activity: Activity,
    progress: Progress,
    metrics: Any,
    count: list[Any],
) -> None:
    """The per-event path, kept to a few dict lookups besides ``Detector.process``.

    Per event: track the identity's first/last time and hourly count, process it, write
    any alert. Every ``TICK_EVERY`` events: refresh the progress line and the metrics, and
    publish the count (read after an interrupt).
    """
    process, write, log = detector.process, writer.write, writer.log
    spans, hourly = activity.spans, activity.hourly
    n, ts = count
    batch_started = time.perf_counter()
    try:
        for event in events:
            n += 1
            ts = event.ts
            key = event.identity
            span = spans.get(key)
            if span is None:
                spans[key] = [ts, ts]
            elif ts > span[1]:
                span[1] = ts
            elif ts < span[0]:
                span[0] = ts
            counts = hourly.get(key)
            if counts is None:
                counts = hourly[key] = {}
            hour = int(ts) // 3600
            counts[hour] = counts.get(hour, 0) + 1
            alerts = process(event)
            if alerts:
                write(alerts, ts)
            if not n & TICK_MASK:
                progress.tick(n, len(log))
                if metrics is not None:
                    now = time.perf_counter()
                    metrics.observe_batch(now - batch_started, TICK_EVERY)
                    metrics.set_event_time(ts)
                    batch_started = now
    finally:
        count[0], count[1] = n, ts


# ---------------------------------------------------------------------------- run


def _warn_unseen_scenarios(evaluation: dict[str, Any], stats: RunStats,
                           interrupted: bool) -> None:
    """Say when labelled scenarios had no event at all in their time range, with the dead
    letters that may hold them: 45 generated days replayed on a machine whose clock was
    in day 35 gave "0/11 detected" and nothing else, every attack a ``future_time`` dead
    letter."""
    empty = [s["id"] for s in evaluation["scenarios"]
             if not s["detected"] and s["events_in_range"] == 0]
    if not empty or interrupted:
        return
    by_reason: Counter[str] = Counter()
    for (_, reason), n in stats.dead_letters.items():
        by_reason[reason] += n
    said = ", ".join(f"{reason} {n:,}" for reason, n in by_reason.most_common() if n) or "none"
    logger.warning("labels: %d missed scenario(s) had no event of their identities in their "
                   "time range, so the detector never saw them: %s; dead letters of this "
                   "run by reason: %s (future_time: later than this machine's clock allows)",
                   len(empty), ", ".join(empty[:8]) + (", ..." if len(empty) > 8 else ""),
                   said)


def _write_inventory(detector: Any, path: str) -> None:
    lines = b"".join(
        orjson.dumps(item, option=orjson.OPT_NON_STR_KEYS) + b"\n" for item in detector.inventory()
    )
    write_atomic(path, lines)


def _finish_outputs(
    args: argparse.Namespace,
    detector: Any,
    stats: RunStats,
    result: LoopResult,
    log: AlertLog,
    activity: Activity,
    scenarios: list[Scenario] | None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Snapshot, inventory, evaluation, summary JSON and report; returns the summary."""
    timings = {} if timings is None else timings
    written: dict[str, str] = {}  # label -> path, the summary's "written"
    if args.alerts != "-":
        written["alerts"] = args.alerts
    if args.dead_letters:  # opened on the first dead letter: a clean run writes nothing
        appended = sum(stats.dead_letters.values())
        written["dead letters"] = (args.dead_letters if appended
                                   else f"none ({args.dead_letters} not written)")
    # each output is written even when one before it fails (a full disk under the
    # snapshot used to cost the report and the summary too); the failures are reported
    # together once the summary is printed (``output_errors``, exit 1). An output is
    # listed while it is written (the report shows the list), and taken out if it fails.
    failures: list[str] = []

    def attempt(label: str, path: str, write: Callable[[], None]) -> None:
        written[label] = path
        try:
            write()
        except SinkError as err:
            failures.append(str(err))
            del written[label]

    if args.save_state and result.interrupted:
        logger.warning("interrupted: not writing %s (an identity may be half-updated)",
                       args.save_state)
    elif args.save_state:
        def save() -> None:
            with timed(timings, "save"):
                write_atomic(args.save_state, detector.export_state())

        attempt("state snapshot", args.save_state, save)
    if args.inventory:
        attempt("inventory", args.inventory, lambda: _write_inventory(detector, args.inventory))
    alerts = log.records()
    evaluation = None
    if scenarios is not None:
        evaluation = evaluate(alerts, scenarios, activity.identity_days(),
                              activity.hourly).to_dict()
        unseen = unseen_identities(scenarios, activity.spans)
        if unseen and not result.interrupted:
            logger.warning("labels: %d scenario identity key(s) had no event in this replay "
                           "(misspelt?): %s", len(unseen), "; ".join(unseen[:5])
                           + ("; ..." if len(unseen) > 5 else ""))
        _warn_unseen_scenarios(evaluation, stats, result.interrupted)
    t_range = activity.time_range()
    summary = build_summary(
        stats,
        wall_seconds=result.wall_seconds,
        cpu_seconds=result.cpu_seconds,
        interrupted=result.interrupted,
        identities=detector.identities_summary(),
        alerts=alerts,
        alert_lines=log.lines,
        time_range=t_range,
        evaluation=evaluation,
        state_timings=timings,
        snapshot=None if detector.snapshot_time is None else
        (detector.snapshot_time, activity.events_before(detector.snapshot_time)),
    )
    # events.total counts the events read; after an interrupt some of them were still in
    # the reorder buffer, so the number the detector processed is given next to it
    summary["events"]["processed"] = result.events
    # the report shows the summary and the summary JSON names the report: the summary
    # JSON is listed first, written last, with every failure before it in it
    summary["written"] = written
    if args.summary_json:
        written["summary JSON"] = args.summary_json
    if args.report:
        attempt("report", args.report,
                lambda: _write_report(args.report, summary, alerts, activity, scenarios,
                                      detector.settings.merged_thresholds.get(
                                          detector.settings.min_severity)))
    if failures:
        summary["output_errors"] = failures
    if args.summary_json:
        attempt("summary JSON", args.summary_json, lambda: write_atomic(
            args.summary_json, orjson.dumps(summary, option=orjson.OPT_INDENT_2)))
    if failures:
        summary["output_errors"] = failures
    return summary


def _write_report(
    path: str,
    summary: dict[str, Any],
    alerts: list[Any],
    activity: Activity,
    scenarios: list[Scenario] | None,
    in_force: float | None = None,
) -> None:
    from detector.report import render_report

    t_range = activity.time_range()
    span_days = max((t_range[1] - t_range[0]) / 86400.0, 1.0) if t_range else 1.0
    sweep = threshold_sweep(alerts, scenarios, span_days)
    page = render_report(summary=summary, alerts=alerts, sweep=sweep, hourly=activity.hourly,
                         t_range=t_range, scenarios=scenarios, in_force=in_force)
    write_atomic(path, page.encode("utf-8"))


MAX_REORDER_WINDOW = 7 * 86400.0  # a week of event time


def check_arguments(args: argparse.Namespace) -> None:
    """Numeric options in range, else ``ConfigError`` (exit 2) before anything is read."""
    window = args.reorder_window
    if not math.isfinite(window) or not 0 <= window <= MAX_REORDER_WINDOW:
        raise ConfigError(f"--reorder-window must be between 0 and {MAX_REORDER_WINDOW:g} "
                          f"seconds, got {window:g}")
    port = args.metrics_port
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(f"--metrics-port must be between 0 and 65535, got {port}")
    for name in (*INPUT_OPTIONS, *(output.name for output in OUTPUT_FILES)):
        # --load-state "$SNAP" with the variable unset started cold without a word
        value = getattr(args, name, None)
        if value == "":
            raise ConfigError(f"{flag(name)} was given an empty path: name a file (an unset "
                              f"variable in a script?)")
        if value == "-" and name != "alerts":  # made a file named '-' (or found none)
            raise ConfigError(f"{flag(name)} -: only the alerts go to standard output; name "
                              f"a file (or /dev/stdout)")


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before anything is opened, an output that is also an input or another output.

    ``--alerts`` naming a log file would empty it before it is read, ``--report`` naming
    the labels file would replace it, two outputs naming one file would keep only the
    last. An existing file under an input folder is an input too: the walk would read it
    as a log (a new file there is left out of the reading). ``--save-state`` may name the
    ``--load-state`` file (a warm start updated in place; the snapshot is replaced
    atomically). Files that are not regular files (``/dev/null``, a pipe) may be named by
    several outputs.
    """
    named: dict[Any, str] = {}
    folders = [(path, os.path.join(os.path.realpath(path), "")) for path in args.paths
               if path != "-" and os.path.isdir(path)]
    inputs = [("the input", path) for path in args.paths if path != "-"]
    inputs += [(flag(name), getattr(args, name)) for name in INPUT_OPTIONS]
    for option, path in inputs:
        key = file_key(path)
        if key is not None:
            named.setdefault(key, f"{option} {path}")
    for name in (output.name for output in OUTPUT_FILES):
        path = getattr(args, name)
        if name == "alerts" and path == "-":
            continue
        key = file_key(path)
        if key is None:
            continue
        other = named.get(key)
        option = flag(name)
        if other is not None and not (name == "save_state" and other.startswith("--load-state")):
            raise ConfigError(f"{option} {path} is the same file as {other}: writing it would "
                              "destroy it; name another file")
        named[key] = f"{option} {path}"
        folder = key[0] == "file" and _input_folder_of(path, folders)
        if folder and not (name == "save_state" and other is not None) and not own_file(path):
            raise ConfigError(f"{option} {path} is a file under the input folder {folder}: "
                              f"the replay reads it as a log, and writing it would destroy "
                              f"it; name a file outside the input folders")


SUMMARY_KEYS = frozenset({"interrupted", "events", "records_read"})


def own_file(path: str) -> bool:
    """Whether the existing file ``path`` is one nhi-detector wrote, or empty: a folder of
    logs often holds the last run's outputs, and writing them again loses no log. A
    snapshot, the HTML report, the summary JSON, or JSON lines whose first record is an
    alert, dead letter, inventory record or parsed event (what the parser skips as
    ``nhi_detector_output``)."""
    from detector.engine import SNAPSHOT_MAGIC
    from detector.sources.parser import own_output_kind

    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 20)
    except OSError:
        return False
    text = head.lstrip()
    if not text or head.startswith(SNAPSHOT_MAGIC):
        return True
    if text[:15].lower() == b"<!doctype html>" and b"nhi-detector" in head:
        return True
    try:
        whole = orjson.loads(head)
    except orjson.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and whole.keys() >= SUMMARY_KEYS:
        return True
    try:
        first = orjson.loads(text.split(b"\n", 1)[0])
    except orjson.JSONDecodeError:
        return False
    return isinstance(first, dict) and own_output_kind(first) is not None


def _input_folder_of(path: str, folders: list[tuple[str, str]]) -> str | None:
    """The input folder (as given) that holds the existing file ``path``, if any: the
    replay walks it and reads the file as a log, which an output would overwrite first."""
    real = os.path.realpath(path)
    return next((given for given, top in folders if real.startswith(top)), None)


def file_key(path: str | None) -> Any:
    """What identifies the file ``path`` names: device and inode for an existing regular
    file (so a link or ``./x`` is the same file), the resolved path for a file still to
    be created, ``None`` for no path or something that is not a regular file."""
    if not path:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return ("new", os.path.realpath(path))
    if not stat.S_ISREG(found.st_mode):
        return None
    return ("file", found.st_dev, found.st_ino)


def _replay(args: argparse.Namespace, stats: RunStats) -> int:
    from detector.config import load_config
    from detector.evaluation import load_labels
    from detector.sources import missing_paths

    missing = missing_paths(args.paths)
    if missing:
        raise ConfigError(missing)
    check_arguments(args)
    check_outputs(args)
    check_writable_outputs(args)
    scenarios = load_labels(args.labels) if args.labels else None
    config = load_config(args.config)
    with snapshot_locked(args.save_state, "--save-state"):
        return _locked_replay(args, stats, config, scenarios)


def _locked_replay(args: argparse.Namespace, stats: RunStats, config: dict[str, Any],
                   scenarios: list[Scenario] | None) -> int:
    timings: dict[str, float] = {}
    detector = build_detector(args, config, stats, timings)
    try:  # before any output is opened: a port in use must not have emptied --alerts
        server, metrics = start_metrics(args.metrics_port, stats, detector)
    except OSError as err:
        raise ConfigError(f"cannot serve metrics on port {args.metrics_port}: "
                          f"{err.strerror or err}") from err
    try:
        outputs = open_outputs(args)
    except BaseException:
        if server is not None:
            server.shutdown()
        raise
    restore = handle_sigterm()
    try:
        log = AlertLog()
        writer = AlertWriter(outputs.alerts, args.format, log)
        activity = Activity()
        show = not args.no_progress and sys.stderr is not None and sys.stderr.isatty()
        progress = Progress(sys.stderr, enabled=show)
        events = open_events(
            args.paths, args.source, stats, outputs.dead_letters, config.get("identities"),
            exclude=own_files(args), archive=args.archive,
        )
        buffer = ReorderBuffer(args.reorder_window, stats=stats)
        result = run_loop(buffer.reorder(events), detector, writer, activity, progress, metrics)
        restore()
        # a SIGTERM now would kill the run with half its outputs written and no word: it
        # waits until they are (a few seconds), and then the run ends as terminated
        late = defer_sigterm()
        outputs.close()
        summary = _finish_outputs(args, detector, stats, result, log, activity, scenarios,
                                  timings)
        warn_in_log(summary, outputs.text)
        write_summary(outputs.text, render_summary(summary))
        if summary.get("output_errors"):
            raise SinkError("; ".join(summary["output_errors"]))
        if late():
            logger.warning("SIGTERM came while the outputs were being written: they were "
                           "finished first")
            return EXIT_TERMINATED
    finally:
        restore()
        try:
            outputs.close()
        finally:
            if server is not None:
                server.shutdown()
    if result.terminated:
        return EXIT_TERMINATED
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def warn_in_log(summary: dict[str, Any], text: IO[str]) -> None:
    """Log the summary's warnings for whoever reads the log and not the summary, unless
    the summary goes to standard error, where the log goes too: said once is enough."""
    if text is sys.stderr:
        return
    for key in ("no_events_warning", "snapshot_warning", "late_warning"):
        if summary.get(key):
            logger.warning("%s", summary[key])


def write_summary(text: IO[str], summary: str) -> None:
    """Print the summary table; a stream that cannot take it (``>/dev/full``) is one
    ``SinkError`` (every file was written before), not a traceback."""
    try:
        text.write(summary)
        text.flush()
    except BrokenPipeError:
        raise  # the reader went away (``| head``): the CLI ends quietly
    except OSError as err:
        if text is sys.stdout:
            from detector.parse_cmd import silence_stdout

            silence_stdout()  # or exiting would fail again on the bytes still buffered
        raise SinkError(f"cannot write the summary: {err.strerror or err}") from err


def run(args: argparse.Namespace) -> int:
    """Entry point of ``nhi-detector replay``; returns the exit code."""
    stats = RunStats()
    try:
        with relaxed_gc(freeze=False):
            return _replay(args, stats)
    except (ConfigError, StateError) as err:
        print(f"nhi-detector replay: {err}", file=sys.stderr)
        return EXIT_USAGE
    except NhiError as err:
        print(f"nhi-detector replay: {err}", file=sys.stderr)
        if isinstance(err, SinkError) and args.alerts == "-" and sys.stdout is not None:
            from detector.parse_cmd import silence_stdout

            silence_stdout()
        return EXIT_FAILED
