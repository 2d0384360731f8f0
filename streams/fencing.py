"""What keeps a state write made by a worker the group has dropped from winning.

``streams.membership`` stops a worker from making state writes once it can no longer prove
it is in the group. A write already sent when the worker is cut off (queued in the
producer just before a freeze, or held by a network stall past the session timeout) still
reaches the broker, after the writes of the partition's new owner. Kafka itself would
keep it: the changelog is compacted, and Faust recovers a table by applying its records
in order, so the stale state won the next recovery, and the inventory topic kept the
stale record as the identity's latest. The dropped worker's own store then also held it
as applied up to its offset, past the new owner's writes. Three parts undo that:

- **Newest state wins in recovery** (``newest_states``). Every state value starts with the
  raw positions its identity has applied (``codecs.pack_state``). All owners of a
  partition read the same repartition log in the same order, so of two states of one
  identity the one that applied more events has every position at least as far: a
  record whose positions are all behind the state already recovered for its key (and
  differ from it) is a stale write, and recovery skips it.
- **Late acknowledgements are not trusted** (``LateWrites.acknowledged``). A record the
  broker acknowledges while this worker's membership is not current may have landed
  after another owner's: its offset is not stored as the table's recovered position, so a
  later recovery of the partition here reads everything after the last safe one again.
- **The owner writes those identities again** (``LateWrites.take``). The dropped worker
  sends their names to their repartition partitions (``codecs.encode_reassert``);
  whichever worker owns a partition then writes the state it holds and announces the
  inventory again, after the stale records, so both topics end with the owner's. A
  recovery that skips a stale state names its identity the same way.

The acknowledgement is judged when it arrives, not when its record was sent. That is
sound because a dropped worker cannot be confirmed again before it reads them: it
rejoins only after Faust's revocation has flushed its producer, which waits for every
acknowledgement pending.

A worker that dies (or whose replies never come back) before the acknowledgement arrives
names nothing, and its record can still land later (its host sends what the process had
written to the socket). An attack run that then forced a changelog compaction within
seconds lost events this way (2 of 40 identities 3 and 4 events short): compaction keeps
the last record per key, the stale one, and drops the owner's newer state. So the owner
also audits its changelog partitions (``ChangelogAudit``): after each offset commit and
every few seconds, with every state it wrote acknowledged, a partition whose log grew by
more records than it wrote holds someone else's; it reads those and names their
identities to itself, which writes them again. The changelog keeps every record five
minutes before compaction (``streams.admin.COMPACTION_LAG_MS``), far longer than an
audit takes, so the cleaner cannot drop the owner's state for a late record first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from streams import codecs
from streams.membership import Membership

log = logging.getLogger(__name__)


def behind(marks: Mapping[str, int], than: Mapping[str, int]) -> bool:
    """Whether a state that applied ``marks`` is older than one that applied ``than``:
    no position past it, and not the same."""
    if marks == than:
        return False
    return all(pos <= than.get(src, -1) for src, pos in marks.items())


def newest_states(events: Iterable[Any], stored: Callable[[Any], bytes | None],
                  skipped: Callable[[Any], None]) -> Iterator[Any]:
    """The changelog events of one recovery batch, without those whose state is behind the
    state already recovered for their key (in this batch, else ``stored(event)``);
    ``skipped`` is told of each one left out. Tombstones and states whose positions
    cannot be read pass unchanged, as Faust would apply them."""
    latest: dict[Any, Mapping[str, int] | None] = {}
    for event in events:
        message = event.message
        key, value = message.key, message.value
        if value is None:
            latest[key] = None
            yield event
            continue
        marks = codecs.state_marks(value)
        if marks is None:
            latest.pop(key, None)
            yield event
            continue
        if key in latest:
            current = latest[key]
        else:
            current = codecs.state_marks(stored(event))
        if current is not None and behind(marks, current):
            skipped(event)
            continue
        latest[key] = marks
        yield event


class LateWrites:
    """Records acknowledged while this worker's group membership was not current, and the
    identities whose owner must write them again (see the module's text)."""

    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        self.count = 0  # records acknowledged late, since the start
        self.stale_skipped = 0  # changelog records that recovery skipped as stale
        self.identities: set[str] = set()
        self.late_by_role: dict[str, int] = {}  # late records per role since ``take``
        self.skipped_last: Any = None  # the changelog message skipped last

    def acknowledged(self, key: bytes | None, what: str) -> bool:
        """Whether a record of ``what`` (a topic role) just acknowledged surely landed
        while this worker was a member; if not, its identity (``key``) is kept for
        ``take``."""
        if self.membership.current():
            return True
        self.count += 1
        self.late_by_role[what] = self.late_by_role.get(what, 0) + 1
        if key:
            self.identities.add(key.decode("utf-8", "replace"))
        return False

    def take(self) -> set[str]:
        """The identities to send for writing again, once each; logs what was late since
        the last call (one line, however many records)."""
        taken, self.identities = self.identities, set()
        late, self.late_by_role = self.late_by_role, {}
        if late:
            log.warning("%s acknowledged after the group may have dropped this worker: "
                        "asking the owners of %d identities to write them again",
                        " and ".join(f"{n} {role} records" for role, n in sorted(late.items())),
                        len(taken))
        return taken

    def skipped(self, event: Any) -> None:
        """Recovery skipped ``event``'s stale state: its owner is asked to write the
        newer one again, so that the stale record is no longer the key's last."""
        self.stale_skipped += 1
        self.skipped_last = event.message
        key = event.message.key
        if key:
            self.identities.add(key.decode("utf-8", "replace"))


def log_skipped(late: LateWrites, before: int) -> None:
    """One line for the stale states a recovery batch skipped (``before``: the count at
    its start)."""
    skipped = late.stale_skipped - before
    if skipped and late.skipped_last is not None:
        last = late.skipped_last
        log.warning("table recovery skipped %d stale states (written by a worker after the "
                    "group had dropped it), the last of %r at %s[%s]@%s; their owners are "
                    "asked to write them again", skipped, last.key, last.topic,
                    last.partition, last.offset)


class ChangelogAudit:
    """Per active changelog partition: the offset from which every record should be this
    worker's own, and the offsets of its own records acknowledged since (see the
    module's text)."""

    def __init__(self) -> None:
        self.start: dict[Any, int] = {}
        self.own: dict[Any, set[int]] = {}

    def begin(self, tp: Any, start: int) -> None:
        """``tp`` became active with everything before ``start`` recovered."""
        self.start[tp] = start
        self.own[tp] = set()

    def forget(self) -> None:
        """A revocation: no partition is this worker's until recovered again."""
        self.start.clear()
        self.own.clear()

    def acknowledged(self, tp: Any, offset: int) -> None:
        own = self.own.get(tp)
        if own is not None and offset >= self.start[tp]:
            own.add(offset)

    def suspects(self, ends: Mapping[Any, int | None]) -> dict[Any, tuple[int, int, set[int]]]:
        """Given the partitions' end offsets: ``{tp: (start, end, own offsets)}`` for each
        whose records since the last audit outnumber this worker's own. Every partition's
        audit then starts at its end."""
        found = {}
        for tp, end in ends.items():
            start = self.start.get(tp)
            if start is None or end is None:
                continue
            own = self.own[tp]
            mine = {offset for offset in own if offset < end}
            if end - start > len(mine):
                found[tp] = (start, end, mine)
            self.start[tp] = max(start, end)
            self.own[tp] = own - mine
        return found

    def again(self, tp: Any, start: int, own: set[int]) -> None:
        """Reading a suspect range failed: the next audit covers it again."""
        if tp in self.start:
            self.start[tp] = min(self.start[tp], start)
            self.own[tp] |= own


def foreign_keys(records: Iterable[Any], own: set[int]) -> set[str]:
    """The identities of changelog ``records`` (with ``offset`` and ``key``) that are not
    at one of the ``own`` offsets."""
    return {record.key.decode("utf-8", "replace") for record in records
            if record.offset not in own and record.key}
