"""Where the worker's CPU goes: ``NHI_WORKER_PROFILE=FILE`` samples a worker run.

A thread looks at every thread's Python stack every ``SAMPLE_INTERVAL_S`` and adds the
CPU microseconds the thread used since the previous look to that stack, from the moment
the worker is ready to its stop signal (start-up, table recovery and shutdown stay out);
when the worker has stopped the totals go to ``FILE`` as folded stacks
(``thread;outer;...;inner microseconds`` per line, what flame-graph tools read),
and ``python -m streams.profiling FILE`` prints the split by part. Sampling rather than
``cProfile``: cProfile's cost per Python call inflates the detector core (many small
calls) two or three times more than the C-heavy parts (orjson, RocksDB, the Kafka
client), which would distort exactly the split it is meant to show; a look every 5 ms
costs a few per cent of one core.

Weighing by CPU time leaves out threads that wait (for the GIL, a lock, the network). CPU
of a thread found waiting (``select``, a lock, a queue) cannot be placed and is shown
apart. The split names, for each sample, the innermost frame that belongs to a known part
(``PARTS``), so a table write made by the worker counts as the table, and the JSON work of
``streams.codecs`` (orjson is C, without frames of its own) as the codecs.

This is a diagnostic for benchmarks and tuning, not a setting: it is read from the
environment only and is off when unset.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ENV = "NHI_WORKER_PROFILE"
_NUMBERED = re.compile(r"Thread-[0-9]+")
SAMPLE_INTERVAL_S = 0.005

# (part, path fragments): the first part one of whose fragments is in a frame's file name
# names the frame; parts earlier in the list win over later ones for the same file.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("parse (core)", ("/detector/sources/",)),
    ("detector core", ("/detector/", "/models/", "/river/")),
    ("codecs (ours)", ("/streams/codecs.py",)),
    ("worker glue (ours)", ("/streams/",)),
    ("table and changelog", ("/faust/tables/", "/faust/stores/", "/rocksdict/")),
    ("producer", ("/aiokafka/producer/", "/faust/transport/producer",
                  "/faust/topics.py", "/faust/channels.py")),
    ("kafka client", ("/aiokafka/", "/kafka/")),
    ("faust", ("/faust/", "/mode/")),
)
# innermost frames (file name end, function) that wait instead of working
IDLE = frozenset({("selectors.py", "select"), ("threading.py", "wait"),
                  ("threading.py", "_wait_for_tstate_lock"), ("queue.py", "get"),
                  ("socketserver.py", "serve_forever")})


class Sampler:
    """Counts the folded stacks of every thread, every ``interval`` seconds."""

    def __init__(self, interval: float = SAMPLE_INTERVAL_S) -> None:
        self.interval = interval
        self.stacks: Counter[str] = Counter()
        # cleared while the CPU is not to be counted (the worker: until it is ready, and
        # from the stop signal on, so start-up and shutdown stay out of the split)
        self.counting = threading.Event()
        self.counting.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="profiler", daemon=True)

    def start(self) -> Sampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        last: dict[int, float] = {}
        while not self._stop.wait(self.interval):
            names = {thread.ident: thread.name for thread in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                if ident == me:
                    continue
                # Weigh the stack by the CPU the thread used since the last look: a thread
                # waiting for the GIL or for I/O shows a stack but uses no CPU.
                try:
                    used = time.clock_gettime(time.pthread_getcpuclockid(ident))
                except (OSError, OverflowError):
                    continue  # the thread ended
                spent = used - last.get(ident, used)
                last[ident] = used
                if spent <= 0 or not self.counting.is_set():
                    continue
                parts = []
                while frame is not None:
                    code = frame.f_code
                    parts.append(f"{code.co_filename}:{code.co_name}")
                    frame = frame.f_back
                parts.append(names.get(ident, "thread"))
                self.stacks[";".join(reversed(parts))] += round(spent * 1e6)

    def dump(self, target: str) -> None:
        lines = [f"{stack} {count}" for stack, count in self.stacks.most_common()]
        Path(target).write_text("\n".join(lines) + "\n", encoding="utf-8")


@contextlib.contextmanager
def profiled(target: str | None = None) -> Iterator[Sampler | None]:
    """Sample every thread while the body runs when ``NHI_WORKER_PROFILE`` (or
    ``target``) names a file, and give the sampler to the body; give None otherwise."""
    target = target or os.environ.get(ENV, "")
    if not target:
        yield None
        return
    sampler = Sampler().start()
    try:
        yield sampler
    finally:
        sampler.stop()
        sampler.dump(target)


def part_of(stack: list[str]) -> str:
    """The part a sample's CPU belongs to (``"idle"`` when it waits), from its frames
    (outermost first, each ``file:function``)."""
    if stack:
        filename, function = stack[-1].rsplit(":", 1)
        if (filename.rsplit("/", 1)[-1], function) in IDLE:
            return "idle"
    for frame in reversed(stack):
        filename = frame.rsplit(":", 1)[0]
        for part, fragments in PARTS:
            if any(fragment in filename for fragment in fragments):
                return part
    return "other (asyncio, stdlib)"


def split(lines: list[str]) -> dict[str, Counter[str]]:
    """Samples per thread and part, from the lines of a dumped profile."""
    result: dict[str, Counter[str]] = {}
    for line in lines:
        stack, _, count = line.rpartition(" ")
        thread, *frames = stack.split(";")
        # threads started per request (the health endpoint) count as one
        thread = _NUMBERED.sub("Thread-N", thread)
        result.setdefault(thread, Counter())[part_of(frames)] += int(count)
    return result


def report(path: str) -> str:
    """The split of a dumped profile as text: per thread, the CPU per part. CPU used by a
    thread found waiting when looked at cannot be placed: it shows as unplaced."""
    threads = split(Path(path).read_text(encoding="utf-8").splitlines())
    busy_all = sum(n for parts in threads.values() for n in parts.values())
    out = [f"{path}: {busy_all / 1e6:.2f} CPU seconds sampled"]
    for thread, parts in sorted(threads.items(), key=lambda t: -sum(t[1].values())):
        busy = sum(parts.values())
        if busy < busy_all / 1000:
            continue
        out.append(f"  thread {thread}: {busy / 1e6:.2f} s ({100 * busy / busy_all:.0f} %)")
        for part, count in parts.most_common():
            name = "unplaced (waiting when looked at)" if part == "idle" else part
            out.append(f"    {100 * count / busy_all:5.1f} %  {name}")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    for path in argv or [os.environ.get(ENV, "")]:
        print(report(path))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
