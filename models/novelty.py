"""Novelty of categorical values per identity: "first call of iam:CreateAccessKey in 41 days".

Attributes: action, service, resource, region, network (prefix and class), client family,
target tenant (cross-account), error code, and three pairs that matter more than their
parts: action with network, action with resource (these two are signalled only when both
parts are known, so one new action does not raise three signals), credential with network
(long-term keys and certificates only, where it is named ``credential.new_network`` for a
long-term key; calls made by a cloud service on the identity's behalf say nothing about
where the key is and are left out; for a long-term key, signalled only when the network
is new to the identity too, so a rotated access key's first call from the identity's usual
network is not news). A new private subnet or service endpoint scores half
of a new public network.

Score of an unseen value, in [0, 1]::

    weight(attribute) × (1 − P(new)) × recency × peers

``P(new)`` is the Good-Turing estimate (singletons + 1) / (uses + 2): an identity that
touches a new resource on every call is not surprised by one more. ``recency`` is 0.8 for a
value seen before but forgotten (beyond the horizon) and 0.3 when only the bloom filter
remembers it (degraded). ``peers`` lowers the score by up to 60 % when the value is common
in the identity's peer group and raises it by 15 % when the whole group never used it; a
new network also scores 0.7 (0.4 from three users up) when other identities of the same
tenant already use it (NAT gateways, VPNs, runner pools).

Poisoning policy: values of a *held* event (one of its signals scored at least
``holdout_score``) go to the table's quarantine and are learned after they recur in
``accept_windows`` distinct windows, or at once through ``mark_expected``. A quarantined
value is signalled once per window (the first event of each window), and every sighting
goes through the quarantine, whatever the rest of its event scored. Failed calls
teach only the error code: a denied action never becomes "known". During the learning
period everything is learned and nothing is signalled.
"""

from __future__ import annotations

import logging
import math
from operator import attrgetter

from detector.event import Event
from models.base import Signal
from models.common import MASK32, clamp01, pair_hash, span_words, vhash
from models.context import Context
from models.settings import ModelSettings
from models.table import BLOOM_BITS, COUNT_MASK, RATE_ALPHA, ValueTable

logger = logging.getLogger(__name__)

# name, detector, weight, high-cardinality, learned from a failed call, phrase
ATTRIBUTES: tuple[tuple[str, str, float, bool, bool, str], ...] = (
    ("action", "novelty.action", 0.85, False, False, "first call of {}"),
    ("service", "novelty.service", 0.75, False, False, "first use of service {}"),
    ("resource", "novelty.resource", 0.5, True, False, "first access to {}"),
    ("region", "novelty.region", 0.75, False, False, "first activity in region {}"),
    ("network", "novelty.network", 0.6, False, False, "first call from network {}"),
    ("agent_family", "novelty.agent_family", 0.6, False, False, "first use of client {}"),
    ("target_tenant", "novelty.target_tenant", 0.9, False, False, "first action on tenant {}"),
    ("error_code", "novelty.error_code", 0.45, False, True, "first {} error"),
    ("action_network", "novelty.action_network", 0.45, False, False, "first call of {}"),
    ("action_resource", "novelty.action_resource", 0.35, True, False, "first {}"),
    ("credential_network", "novelty.credential_network", 0.6, False, False, "first use of {}"),
)
NAMES = tuple(item[0] for item in ATTRIBUTES)
PEER_NEW_GAIN = 1.15
"""How much a value new to the identity's whole peer group raises its score (the largest
peer factor: the others lower it)."""
ALL_TABLES = tuple(range(len(ATTRIBUTES)))
INDEX = {name: i for i, name in enumerate(NAMES)}
DETECTORS = {item[1]: i for i, item in enumerate(ATTRIBUTES)}
RESOURCE = INDEX["resource"]
ACTION_RESOURCE = INDEX["action_resource"]
RESOURCE_TABLES = (RESOURCE, ACTION_RESOURCE)
"""The tables kept out of the repeat memo (see ``NoveltyModel``): a code path touches a
new resource every few dozen calls, which would make every such call a memo miss and
flush these two tables; they are looked up and taught on every event instead."""
LAZY_TABLES = tuple(i for i in ALL_TABLES if i not in RESOURCE_TABLES)
"""The tables whose memo repeats are applied lazily (by ``_apply`` and ``_flush_tables``)."""
CRED_NETWORK = INDEX["credential_network"]
LONG_TERM_DETECTOR = "credential.new_network"
LONG_TERM_WEIGHT = 0.8
DETECTORS[LONG_TERM_DETECTOR] = CRED_NETWORK
PAIR_SEP = "|"
LASTING_CREDENTIALS = frozenset({"long_term", "certificate"})
"""Credentials that live long enough for "this key, from this network" to mean something
(a temporary session key is new every hour: pairing it with a network says nothing)."""
NETWORK_ATTRS = frozenset({4, 8, 10})
QUIET_NETWORKS = {"private": 0.5, "cloud_service": 0.5, "internal": 0.5}
"""A new private subnet or service endpoint is half as surprising as a new public network."""
ERROR_CODE = INDEX["error_code"]
TARGET_TENANT = INDEX["target_tenant"]
PAIR_PARTS = {
    INDEX["action_network"]: (1 << INDEX["action"]) | (1 << INDEX["network"]),
    INDEX["action_resource"]: (1 << INDEX["action"]) | (1 << INDEX["resource"]),
}
"""A pair signal is left out when one of its parts is itself new in the same event."""
SURPRISE_DECADES = 3.0
_SURPRISE_DECADES = SURPRISE_DECADES  # a C double in the compiled build


PEER_ATTRS = frozenset(INDEX[name] for name in (
    "action", "service", "region", "network", "agent_family", "target_tenant", "error_code"))
"""Attributes whose prevalence the peer index tracks (pairs and resources are too sparse)."""


signature = attrgetter(
    "action", "region", "network_prefix", "network", "agent_family", "target_tenant",
    "tenant", "outcome", "error_code", "credential_id", "credential_type")
"""Everything the lazy novelty tables look at in an event, as one tuple (the memo key; the
resource is left out, see ``RESOURCE_TABLES``); a C getter, since it runs for every
event."""


MEMO_CAP = 256
LOW_UNKNOWN = -(1 << 62)
LOW_NONE = 1 << 62
"""``NoveltyModel.low_hour`` when not known yet, and when no table keeps any value."""
LOG_CAP = 256
"""Log entries kept before every table is flushed, which empties the log (memory bound)."""


NETWORK = INDEX["network"]
TENANT_NETWORK_USERS = 3
"""Identities of the tenant using a network before it stops being surprising (a NAT
gateway, a VPN, a shared runner pool)."""


def _tenant_scope(event: Event) -> str:
    return f"net/{event.tenant or '-'}"


def _tenant_network(ctx: Context, event: Event, h: int) -> tuple[str, float]:
    """Lower a new network's score when other identities of the tenant already use it."""
    users = ctx.peers.count(_tenant_scope(event), "network", h)
    if users <= 0:
        return "", 1.0
    factor = 0.4 if users >= TENANT_NETWORK_USERS else 0.7
    return f"; already used by {users} other identities of tenant {event.tenant}", factor


def surprise(p_new: float) -> float:
    """How surprising a new value is when new values come with probability ``p_new``:
    ``−log10(p_new) / 3`` clipped to [0, 1] (1 in 1,000 or rarer is fully surprising)."""
    v = -math.log10(p_new if not 1e-12 > p_new else 1e-12) / _SURPRISE_DECADES
    # ``clamp01(v)`` written out (C doubles in the compiled build; NaN gives 0.0)
    if v != v:
        return 0.0
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v


def network_label(event: Event) -> str:
    """The network value used by the models: the prefix, or the class when none."""
    return event.network_prefix or event.network or "unknown"


def extract(event: Event) -> list[tuple[int, int, str, str | None]]:
    """(attribute index, value hash, value, second value of a pair or None) per value.

    Kept cheap (it runs for every event): display strings are built only for signals.
    """
    out: list[tuple[int, int, str, str | None]] = []
    action = event.action
    net = event.network_prefix or event.network or "unknown"
    hn = vhash(net)
    ha = hr = 0
    if action:
        ha = vhash(action)
        service = action.partition(":")[0]
        out.append((0, ha, action, None))
        out.append((1, vhash(service), service, None))
    resource = event.resource
    if resource:
        hr = vhash(resource)
        out.append((2, hr, resource, None))
    if event.region:
        out.append((3, vhash(event.region), event.region, None))
    out.append((4, hn, net, None))
    if event.agent_family:
        out.append((5, vhash(event.agent_family), event.agent_family, None))
    # the tenant acted on: another one when the event names it, else the identity's own,
    # so that a first foreign tenant is new against every call made at home (with only
    # the foreign ones counted, the first was a value of an empty table: P(new) 1/2)
    target = event.target_tenant or event.tenant
    if target:
        out.append((6, vhash(target), target, None))
    if event.error_code and event.outcome == "failure":
        out.append((7, vhash(event.error_code), event.error_code, None))
    # pairs last: their signal is only worth raising when both parts are known
    # (the action's term of ``pair_hash`` is shared by both action pairs)
    if action:
        left = _pair_term(ha)
        out.append((8, _pair_with(left, hn), action, net))
        if resource:
            out.append((9, _pair_with(left, hr), action, resource))
    cred = event.credential_id
    if cred and event.credential_type in LASTING_CREDENTIALS and event.network != "cloud_service":
        out.append((10, _pair_with(_pair_term(vhash(cred)), hn), cred, net))
    return out


def describe_value(event: Event, index: int, first: str, second: str | None) -> tuple[str, str]:
    """(text shown to the analyst, raw feedback value) of one extracted value."""
    def net_shown(net: str) -> str:
        return f"{net} ({event.network})" if net != event.network else net

    if second is None:
        shown = net_shown(first) if index == 4 else first
        return shown, first
    raw = first + PAIR_SEP + second
    if index == 8:
        return f"{first} from network {net_shown(second)}", raw
    if index == 9:
        return f"{first} on {second}", raw
    return f"credential {first} from network {net_shown(second)}", raw


def feedback_hash(index: int, value: str) -> int:
    """The hash ``extract`` gives to a signal's ``value`` (pairs are ``left|right``)."""
    if index in (8, 9, 10):
        left, _, right = value.partition(PAIR_SEP)
        return pair_hash(vhash(left), vhash(right))
    return vhash(value)


# C integers and doubles in the compiled build (novelty.pxd): the hot paths read these
# copies, the public names above stay plain module attributes for importers and tests
_COUNT_MASK = COUNT_MASK
_RATE_ALPHA = RATE_ALPHA
_RESOURCE = RESOURCE
_ACTION_RESOURCE = ACTION_RESOURCE
_ERROR_CODE = ERROR_CODE
_TARGET_TENANT = TARGET_TENANT
_CRED_NETWORK = CRED_NETWORK
_NETWORK = NETWORK
_NETWORK_MASK = sum(1 << i for i in NETWORK_ATTRS)
_PEER_MASK = sum(1 << i for i in PEER_ATTRS)
_PART_BITS = tuple(PAIR_PARTS.get(i, 0) for i in ALL_TABLES)
"""Per table: the bits of a pair's parts (``PAIR_PARTS``), 0 for a single value."""
_WEIGHTS = tuple(item[2] for item in ATTRIBUTES)
_N_TABLES = len(ATTRIBUTES)
_NO_PENDING = ()
"""``ctx.pending`` when nothing is left to learn (one shared empty value, no allocation)."""


class _Entry:
    """A memo entry: the values one signature taught the lazy tables, and its repeats since.

    ``period`` and ``epoch`` say when it holds (see ``NoveltyModel._period``); ``taught``
    maps a lazy table to the value taught there; ``repeats`` counts hits, ``hour`` is the
    latest of them, ``applied[i]`` how many repeats table ``i`` has already been given;
    ``settled`` the repeats every table had been given at the latest ``_apply``;
    ``logged`` is its position in the log since the latest flush (-1: none); ``left`` the
    action's term of the action-resource pair hash (-1: no action); ``teach`` whether a
    hit teaches its values (a successful call) or only counts them (a failed one)."""

    __slots__ = ("period", "epoch", "taught", "repeats", "hour", "applied", "settled",
                 "logged", "left", "teach")

    def __init__(self, period: int, epoch: int, taught: dict[int, int], hour: int, left: int,
                 teach: bool) -> None:
        self.period = period
        self.epoch = epoch
        self.taught = taught
        self.repeats = 0
        self.hour = hour
        self.applied = [0] * _N_TABLES
        self.settled = 0
        self.logged = -1
        self.left = left
        self.teach = teach


def _use_known(table: ValueTable, h: int, packed: int, hour: int) -> None:
    """One use at ``hour`` of the known value ``h`` whose entry is ``packed``: its count,
    its last hour and the moving rate of new values (see ``NoveltyModel._apply``)."""
    count = packed & _COUNT_MASK
    if count == 1:
        table.n1 -= 1
    last = packed >> 16
    table.d[h] = (((hour if hour > last else last) << 16)
                  | (count + 1 if count < _COUNT_MASK else _COUNT_MASK))
    table.total += 1
    table.rate -= _RATE_ALPHA * table.rate


def _lazy(index: int) -> bool:
    """Whether table ``index`` is a lazy one (``LAZY_TABLES``: its repeats are counted in
    the memo; the two resource tables are taught on every hit)."""
    return index != _RESOURCE and index != _ACTION_RESOURCE


def _fresh(found: int | None, hour: int, horizon: int) -> bool:
    """Whether a table entry (``found``: its packed int, or None) is a value known at
    ``hour``: last seen at most ``horizon`` hours before."""
    if found is None:
        return False
    packed = found
    return hour - (packed >> 16) <= horizon


_PAIR_LEFT, _PAIR_SALT, _PAIR_RIGHT, _MASK32 = 0x01000193, 0x5BD1E995, 0x9E3779B1, MASK32
"""The constants of ``models.common.pair_hash`` (C integers in the compiled build, where a
literal above 2**31 would be a Python object)."""


def _pair_term(left: int) -> int:
    """``models.common.pair_term`` (the same arithmetic, in C integers when compiled)."""
    return (left * _PAIR_LEFT) ^ _PAIR_SALT


def _pair_with(term: int, right: int) -> int:
    """``models.common.pair_with`` (the same arithmetic, in C integers when compiled: the
    product of two 32-bit numbers fits in an unsigned 64-bit one)."""
    return (term ^ ((right * _PAIR_RIGHT) >> 7)) & _MASK32


class NoveltyModel:
    """Per-attribute bounded tables of known values; signals values new to the identity.

    Repeats are cheap: an event whose values are all known, seen earlier in the same day
    with the same values (its *signature*), is counted in a small memo instead of
    touching nine tables; the two resource tables are looked up on every event (see
    ``RESOURCE_TABLES``), so a known code path on a resource it seldom touches is a hit
    too, and one on a resource it never touched skips the other tables all the same
    (``_resource_miss``). An entry hit during a day lives on into the next one
    (``_prune``). The memo is flushed into the tables before anything reads them (a new
    value, pruning, feedback, serialisation), so every score and every blob is exactly
    what the table-by-table path gives, bit for bit: between two such reads a table only
    sees uses of known values, whose moving-rate step is one and the same float
    operation, so replaying the memo's steps later, one by one (``_apply``), lands on the
    same float. A profile
    restored from its blob (no memo) therefore scores exactly like one that stayed in
    memory. Anything that can make a known value of a memo table unknown (eviction,
    trimming) bumps ``epoch`` and invalidates the memo. Memo hits are logged
    (``log``, bounded by ``LOG_CAP``) so that flushing one table visits only the entries
    hit since its own last flush (``_flush_tables``).
    """

    __slots__ = ("settings", "tables", "last_prune_day", "horizon_h", "memo", "epoch", "log",
                 "log_base", "cursors", "flushed_at", "low_hour")

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.tables = [ValueTable(self._cap(item[3])) for item in ATTRIBUTES]
        self.last_prune_day = 0
        self.horizon_h = int(settings.novelty_horizon_days * 24)
        self.memo: dict[tuple, list] = {}
        self.epoch = 0
        # memo entries in the order of their first hit after a flush (see _flush_tables);
        # positions are counted from the first entry ever logged
        self.log: list[list] = []
        self.log_base = 0  # position of log[0]
        self.cursors = [0] * len(ATTRIBUTES)  # per table: log position flushed up to
        self.flushed_at = 0  # log position at the latest flush of any table
        # no kept value of any table was last seen before this hour (a lower bound, kept
        # as values come; LOW_UNKNOWN until a prune works it out), so a prune with nothing
        # stale touches no table
        self.low_hour = LOW_UNKNOWN

    def _cap(self, high_cardinality: bool) -> int:
        s = self.settings
        return s.novelty_cap_resource if high_cardinality else s.novelty_cap

    def values(self, event: Event, ctx: Context) -> list[tuple[int, int, str, str | None]]:
        if ctx.values is None:
            ctx.values = extract(event)
        return ctx.values

    def flush(self) -> None:
        """Apply the repeats counted in the memo to the tables (no change to any score or
        blob: see the class docstring). Every entry with repeats to apply is in the memo:
        an entry is applied before it is replaced, and the memo is only dropped flushed."""
        for entry in self.memo.values():
            self._apply(entry)
        self.log_base += len(self.log)
        self.log = []
        self.cursors = [self.log_base] * len(ATTRIBUTES)
        self.flushed_at = self.log_base

    def _apply(self, entry: _Entry) -> None:
        """Apply one memo entry's repeats not yet applied, table by table: ``uses`` more
        uses of a known value (count, recency, and the moving rate of new values).

        The rate takes the uses one at a time with the very float operation of a single
        use: a batch of repeats then ends exactly where the event-by-event path (and a
        profile restored from its blob) does. ``rate * (1 - RATE_ALPHA) ** uses`` is the
        same number on paper, not in the last bits. ``_flush_tables`` writes this step
        out (a hot loop)."""
        repeats, applied, hour, tables = entry.repeats, entry.applied, entry.hour, self.tables
        if repeats == entry.settled:  # nothing counted since (most entries at a prune)
            return
        entry.settled = repeats
        for index, h in entry.taught.items():
            uses = repeats - applied[index]
            if not uses:
                continue
            applied[index] = repeats
            table = tables[index]
            d = table.d
            packed = d[h]
            count = packed & _COUNT_MASK
            if count == 1:
                table.n1 -= 1
            last = packed >> 16
            d[h] = ((hour if hour > last else last) << 16) | min(count + uses, _COUNT_MASK)
            table.total += uses
            rate = table.rate
            for _ in range(uses):
                rate -= _RATE_ALPHA * rate
            table.rate = rate

    def _flush_tables(self, indices: tuple) -> None:
        """Apply the memo's repeats to these tables only: enough before a table is read or
        gets a new value (uses of known values commute, in any order).

        Only the entries hit since the table's last flush can have repeats for it: those
        are in ``log`` from the table's cursor on (an entry is appended again on its first
        hit after any flush), so a flush costs what was counted since, not the memo size.
        """
        tables, log, base, cursors = self.tables, self.log, self.log_base, self.cursors
        end = base + len(log)
        for index in indices:
            start = cursors[index] - base
            cursors[index] = end
            table = tables[index]
            d = table.d
            for i in range(start, end - base):
                entry = log[i]
                repeats = entry.repeats
                applied = entry.applied
                uses = repeats - applied[index]
                if not uses:
                    continue
                applied[index] = repeats
                h = entry.taught.get(index)
                if h is None:
                    continue
                # ``uses`` uses of a known value, as in ``_apply``
                hour = entry.hour
                packed = d[h]
                count = packed & _COUNT_MASK
                if count == 1:
                    table.n1 -= 1
                last = packed >> 16
                d[h] = ((hour if hour > last else last) << 16) | min(count + uses, _COUNT_MASK)
                table.total += uses
                rate = table.rate
                for _ in range(uses):  # one use at a time (see ``_apply``)
                    rate -= _RATE_ALPHA * rate
                table.rate = rate
        self.flushed_at = end
        for index in RESOURCE_TABLES:  # never behind: nothing of theirs is in the memo
            cursors[index] = end
        passed = min(cursors) - base  # the log's head every table is past
        if passed >= LOG_CAP // 4 and 2 * passed > len(log):
            del log[:passed]
            self.log_base += passed

    def _unknown_tables(self, values: list, hour: int) -> tuple:
        """The lazy tables whose value in this event is not known within the horizon (the
        others are always exact)."""
        horizon, tables = self.horizon_h, self.tables
        out = []
        for index, h, _, _ in values:
            if not _lazy(index):
                continue
            table = tables[index]
            found = table.d.get(h)
            if not _fresh(found, hour, horizon):
                out.append(index)
        return tuple(out)

    def _period(self, hour: int) -> int:
        """Memo entries live one day (or one hour when the horizon is under two days, so a
        remembered value can never cross the forgetting horizon unnoticed)."""
        return hour // 24 if self.horizon_h >= 48 else hour

    def _remembered(self, sig: tuple, hour: int) -> _Entry | None:
        """The memo entry of ``sig`` if it holds at ``hour``, else None."""
        found = self.memo.get(sig)
        if found is None:
            return None
        entry = found
        if entry.period != self._period(hour) or entry.epoch != self.epoch:
            return None
        return entry

    def _log_hit(self, entry: _Entry) -> None:
        """Log an entry on its first hit since a flush (see ``_flush_tables``)."""
        if entry.logged < self.flushed_at:
            log = self.log
            entry.logged = self.log_base + len(log)
            log.append(entry)
            if len(log) > LOG_CAP:  # tables rarely flushed hold the log back
                self._flush_tables(LAZY_TABLES)

    def score(self, event: Event, ctx: Context, learn_known: bool = False) -> list[Signal]:
        """Signals for values this identity has not used within the horizon.

        Pure by default (a memo flush changes no logical state). With ``learn_known``
        (only ``IdentityProfile.observe`` uses it, for speed) the uses of *known* values are
        learned in the same pass, which cannot change any score of this event, and the new
        values are left in ``ctx.pending`` for ``learn``, which decides about quarantine
        once every model has scored.
        """
        sig = signature(event)
        hour = ctx.hour
        entry = self._remembered(sig, hour)
        if entry is None:
            return self._score_values(event, ctx, sig, learn_known)
        # the resource tables are not in the memo: known there too for a hit
        resource = event.resource
        if not resource:
            if learn_known:
                self._count_hit(entry, hour)
                ctx.pending = _NO_PENDING
            return []
        horizon = self.horizon_h
        hr = vhash(resource)
        table = self.tables[_RESOURCE]
        found = table.d.get(hr)
        if not _fresh(found, hour, horizon):
            if learn_known and entry.teach:
                return self._resource_miss(event, ctx, entry, hr, found)
            return self._score_values(event, ctx, sig, learn_known)
        packed = found
        left = entry.left  # the action's term of the pair hash, -1: no action
        if left >= 0:
            pairs = self.tables[_ACTION_RESOURCE]
            hp = _pair_with(left, hr)
            found = pairs.d.get(hp)
            if not _fresh(found, hour, horizon):
                if learn_known and entry.teach:
                    return self._resource_miss(event, ctx, entry, hr, packed)
                return self._score_values(event, ctx, sig, learn_known)
            if learn_known and entry.teach:
                _use_known(pairs, hp, found, hour)  # one use of each known resource value
        if learn_known:
            if entry.teach:
                _use_known(table, hr, packed, hour)
            self._count_hit(entry, hour)
            ctx.pending = _NO_PENDING
        return []

    def _count_hit(self, entry: _Entry, hour: int) -> None:
        """One more repeat of a memo entry's lazy values, applied later (``_apply``)."""
        entry.repeats += 1
        if hour > entry.hour:
            entry.hour = hour
        self._log_hit(entry)

    def _score_values(self, event: Event, ctx: Context, sig: tuple,
                      learn_known: bool) -> list[Signal]:
        """``score`` of an event without a memo entry that holds: table by table."""
        out: list[Signal] = []
        hour = ctx.hour
        horizon = self.horizon_h
        tables = self.tables
        quiet = ctx.learning
        failed = event.outcome == "failure"
        pending: list[tuple[int, int]] | None = [] if learn_known else None
        taught: dict[int, int] = {}  # table index -> known value taught (the memo entry)
        novel_parts = 0
        teach_any = learn_known and not failed  # else only the error code is taught
        unflushed = bool(self.log)  # repeats not yet applied are all in the log
        lazy_new = False  # whether a lazy table does not know its value
        values = ctx.values  # ``self.values(event, ctx)`` written out
        if values is None:
            values = ctx.values = extract(event)
        for index, h, first, second in values:
            table = tables[index]
            found = table.d.get(h)
            teach = teach_any or (learn_known and index == _ERROR_CODE)
            if _fresh(found, hour, horizon):
                if teach:
                    _use_known(table, h, found, hour)
                    if _lazy(index):
                        taught[index] = h  # (the resource tables are taught on every hit)
                continue
            if _lazy(index):
                lazy_new = True
            if unflushed:  # uses of known values commute; a new value needs exact totals
                # every table with a new value in this event at once: this is the first,
                # the later ones are not touched before their turn (one value per table)
                unknown = self._unknown_tables(values, hour)
                if unknown:
                    self._flush_tables(unknown)
                unflushed = False
            if teach:
                pending.append((index, h))
            if quiet:
                continue
            novel_parts |= 1 << index
            signal = self._novel(event, ctx, index, h, first, second, found, novel_parts)
            if signal is not None:
                out.append(signal)
        ctx.pending = pending
        # a memo entry for the lazy tables' values: when every one was known (a successful
        # call teaches them all, so they stay known for the entry's period) whatever the
        # resource tables said, so that an identity touching a new resource on most calls
        # meets its entry next time (``_resource_miss``); or when nothing is pending and
        # nothing was signalled
        if learn_known and (teach_any and not lazy_new or not pending and not out):
            old = self.memo.get(sig)
            if old is not None:
                self._apply(old)  # an entry is only replaced once its repeats are applied
            elif len(self.memo) >= MEMO_CAP:
                self.flush()
                self.memo = {}
            action = event.action
            left = -1
            if action:
                left = _pair_term(vhash(action))
            self.memo[sig] = _Entry(self._period(hour), self.epoch, taught, hour, left,
                                    teach_any)
        return out

    def _resource_miss(self, event: Event, ctx: Context, entry: _Entry, hr: int,
                       found: int | None) -> list[Signal]:
        """``score`` with ``learn_known`` of an event whose memo entry holds (every lazy
        table knows its value) but whose resource or action-resource pair is not known
        (``found``: the resource's entry in its table, or None): most events of an
        identity that touches a new resource on almost every call.

        The lazy tables' values are counted in the entry, as a hit counts them; the two
        resource values then go through ``score``'s own steps for a value, in its order
        (resource, then the pair), and give the same signals and pending values: those
        steps read only the value's own table (never a lazy one), no lazy table is
        flushed (none has an unknown value), and the entry is not replaced (a new value
        is pending). Only entries of successful calls (``entry.teach``) come here: their
        values were all known when the entry was made, so every one is taught.
        """
        hour = ctx.hour
        self._count_hit(entry, hour)
        resource = event.resource
        out: list[Signal] = []
        pending: list[tuple[int, int]] = []
        horizon, quiet, novel_parts = self.horizon_h, ctx.learning, 0
        table = self.tables[_RESOURCE]
        if _fresh(found, hour, horizon):
            _use_known(table, hr, found, hour)
        else:
            pending.append((_RESOURCE, hr))
            if not quiet:
                novel_parts = 1 << _RESOURCE
                signal = self._novel(event, ctx, _RESOURCE, hr, resource, None, found,
                                     novel_parts)
                if signal is not None:
                    out.append(signal)
        left = entry.left
        if left >= 0:
            pairs = self.tables[_ACTION_RESOURCE]
            hp = _pair_with(left, hr)
            found = pairs.d.get(hp)
            if _fresh(found, hour, horizon):
                _use_known(pairs, hp, found, hour)
            else:
                pending.append((_ACTION_RESOURCE, hp))
                if not quiet:
                    novel_parts |= 1 << _ACTION_RESOURCE
                    signal = self._novel(event, ctx, _ACTION_RESOURCE, hp, event.action,
                                         resource, found, novel_parts)
                    if signal is not None:
                        out.append(signal)
        ctx.pending = pending
        return out

    def _novel(self, event: Event, ctx: Context, index: int, h: int, first: str,
               second: str | None, packed: int | None, novel_parts: int) -> Signal | None:
        """The signal of an unknown value of table ``index`` (``novel_parts`` has the bits
        of the event's unknown values so far, this one's included), or None: a pair one of
        whose parts is new itself gets no second signal, and a quarantined value already
        said in this window is not said again."""
        if novel_parts & _PART_BITS[index]:
            return None
        if index == _TARGET_TENANT and first == event.tenant:
            return None  # its own tenant is where every identity acts: learned, never news
        if (index == _CRED_NETWORK and not novel_parts & (1 << _NETWORK)
                and event.credential_type == "long_term"):
            # an access key new to a network the identity already calls from: a rotated
            # key, or a second one of the same host; where a key is, is only news from a
            # new network (a certificate never used before is: one an attacker added)
            return None
        table = self.tables[index]
        if table.held:
            held_at = table.held.get(h)
            if held_at is not None and held_at >> 8 == ctx.bucket:
                return None
        if self._below_floor(event, index):
            return None
        shown, raw = describe_value(event, index, first, second)
        return self._signal(event, ctx, index, h, shown, raw, packed)

    def _below_floor(self, event: Event, index: int) -> bool:
        """Whether the value's score is below ``min_score`` whatever its recency and peers
        (then ``_signal`` would return None): most unseen values of an identity that
        touches a new resource on almost every call, whose words, bloom look-up and peer
        context are then never worked out.

        ``_signal`` multiplies this product, in the same order, by a recency factor of at
        most 1 and then by peer factors of at most ``PEER_NEW_GAIN``; every factor is
        non-negative and a rounded product never decreases when a factor grows, so its
        score is at most the rounded ``product * PEER_NEW_GAIN`` tested here."""
        weight = _WEIGHTS[index]
        if index == _CRED_NETWORK and event.credential_type == "long_term":
            weight = LONG_TERM_WEIGHT
        score = weight * surprise(self.tables[index].new_probability())
        if (_NETWORK_MASK >> index) & 1:
            score *= QUIET_NETWORKS.get(event.network, 1.0)
        return score * PEER_NEW_GAIN < self.settings.min_score

    def _signal(
        self, event: Event, ctx: Context, index: int, h: int, shown: str, raw: str, packed
    ) -> Signal | None:
        name, detector, weight, _, _, phrase = ATTRIBUTES[index]
        table = self.tables[index]
        if index == CRED_NETWORK and event.credential_type == "long_term":
            detector, weight = LONG_TERM_DETECTOR, LONG_TERM_WEIGHT
            phrase = "first use of long-term key {}"
            shown = shown.removeprefix("credential ")
        score = weight * surprise(table.new_probability())
        if index in NETWORK_ATTRS:
            score *= QUIET_NETWORKS.get(event.network, 1.0)
        # the score first, in the same order of operations; the words only for a signal
        # (most unseen values of a busy identity score below ``min_score``)
        in_bloom = packed is None and table.in_bloom(h)
        if packed is not None:
            score *= 0.8
        elif in_bloom:
            score *= 0.3
        peer_note, factor = self._peer_context(ctx, name, h)
        if index == NETWORK and ctx.peers is not None:
            tenant_note, tenant_factor = _tenant_network(ctx, event, h)
            peer_note, factor = peer_note + tenant_note, factor * tenant_factor
        score = clamp01(score * factor)
        if score < self.settings.min_score:
            return None
        degraded = False
        if packed is not None:
            ago = ctx.ts - (packed >> 16) * 3600
            when = f"in {span_words(self.settings.novelty_horizon_days * 86400)} "
            when += f"(last seen {span_words(ago)} ago, beyond the forgetting horizon)"
        elif in_bloom:
            when = "in the exact history; probably seen before it was evicted (approximate)"
            degraded = True
        else:
            when = f"in {span_words(ctx.history_seconds)} of history"
            degraded = table.lossy
        held = table.held_windows(h)
        sentence = f"{phrase.format(shown)} {when}{peer_note}"
        if held:
            sentence += f"; seen in {held} window(s) so far, held out of learning"
        if degraded and packed is None and table.lossy:
            sentence += "; some older values were forgotten by the bounded table"
        return Signal(
            detector=detector,
            score=score,
            observed=shown,
            baseline=self._baseline(table, name),
            sentence=sentence,
            value=raw,
            degraded=degraded,
            details={"attribute": name, "status": "forgotten" if packed else "unseen"},
        )

    def _peer_context(self, ctx: Context, name: str, h: int) -> tuple[str, float]:
        peers = ctx.peers
        if peers is None or not ctx.group:
            return "", 1.0
        size = peers.group_size(ctx.group)
        if size < 2:
            return "", 1.0
        share = peers.prevalence(ctx.group, name, h)
        if share <= 0.0:
            if size >= 3:
                return f"; new for its whole peer group of {size} identities", PEER_NEW_GAIN
            return "", 1.0
        users = max(1, round(share * size))
        return f"; common among peers ({users} of {size} identities in its group)", 1 - 0.6 * share

    @staticmethod
    def _baseline(table: ValueTable, name: str) -> str:
        words = table.summary()
        parts = [f"{words[w]} {w}" for w in ("frequent", "infrequent", "rare") if words[w]]
        detail = f" ({', '.join(parts)})" if parts else ""
        return f"{len(table.d)} known {name} values{detail}"

    def learn(self, event: Event, ctx: Context, held: bool) -> None:
        """Teach the event's values; held values go to quarantine (see module docstring)."""
        if ctx.day > self.last_prune_day:
            self._prune(ctx)
        pending = ctx.pending
        if pending is None:
            self.score(event, ctx, learn_known=True)
            pending = ctx.pending
        if not pending:
            return
        quarantine = held and not ctx.learning
        for index, h in pending:
            table = self.tables[index]
            if (quarantine or (table.held and h in table.held)) and not table.hold(
                    h, ctx.bucket, self.settings.accept_windows):
                continue  # a held value does not raise the rate of (accepted) new values
            table.rate += _RATE_ALPHA * (1.0 - table.rate)
            before = len(table.d)
            if table.learn(h, ctx.hour, ctx.degradations, NAMES[index]):
                if ctx.hour < self.low_hour:
                    self.low_hour = ctx.hour
                if len(table.d) <= before and _lazy(index):
                    self.epoch += 1  # an eviction: memo entries may name evicted values
                if (_PEER_MASK >> index) & 1 and ctx.peers is not None:
                    ctx.peers.note(ctx.group, NAMES[index], h)
                    if index == _NETWORK:
                        ctx.peers.note_shared(_tenant_scope(event), "network", h)
        ctx.pending = _NO_PENDING

    def _known(self, table: ValueTable, h: int, hour: int) -> bool:
        packed = table.d.get(h)
        return packed is not None and hour - (packed >> 16) <= self.horizon_h

    def _prune(self, ctx: Context) -> None:
        """Daily: drop values beyond twice the horizon, and carry the memo entries hit
        since the start of the day before into the new day.

        Such an entry stays exact for the whole new day: once flushed, each of its values
        was last seen at or after its latest hit, so under 48 hours before any hour of the
        new day, within the horizon (at least 48 hours when entries live a day), and far
        from being pruned; the same bound holds for the stale last-seen hour that a table
        shows between two flushes. Other entries are dropped (the memo stays small), and so
        are those of failed calls, which do not refresh the values they name."""
        self.flush()
        day = ctx.day
        self.last_prune_day = day
        oldest = ctx.hour - 2 * self.horizon_h  # kept one more horizon to say "forgotten"
        if self.low_hour < oldest:  # else no table keeps anything last seen before
            low = LOW_NONE
            for table in self.tables:
                table.prune(oldest)
                if table.d:
                    last = min(table.d.values()) >> 16  # (packed values order by hour)
                    if last < low:
                        low = last
            self.low_hour = low
        if self.horizon_h < 48:  # entries live an hour (see ``_period``): none carries over
            self.memo = {}
            return
        since = 24 * (day - 1)
        kept = {}
        for sig, entry in self.memo.items():
            if entry.hour >= since and entry.teach:  # (a failed call teaches its error code only)
                entry.period = day
                kept[sig] = entry
        self.memo = kept

    def mark_expected(self, detector: str, value: str, ctx: Context) -> bool:
        """Feedback: make ``value`` known for the detector's attribute."""
        index = DETECTORS.get(detector)
        if index is None:
            return False
        self.flush()
        self.epoch += 1
        h = feedback_hash(index, value)
        table = self.tables[index]
        table.held.pop(h, None)
        table.learn(h, ctx.hour, ctx.degradations, NAMES[index])
        if ctx.hour < self.low_hour:
            self.low_hour = ctx.hour
        return True

    def trim(self, ctx: Context) -> None:
        """Halve the biggest table and its quarantine (enforcing the profile's size cap)."""
        self.flush()
        self.epoch += 1
        biggest = max(range(len(self.tables)), key=lambda i: self.tables[i].size_estimate())
        table = self.tables[biggest]
        table.evict(len(table.d) // 2, ctx.degradations, NAMES[biggest])
        for h in list(table.held)[: (len(table.held) + 1) // 2]:
            del table.held[h]
        ctx.degradations[("profile", "trimmed")] += 1

    def size_estimate(self) -> int:
        """The sum of the tables' ``size_estimate`` (written out: it runs every hour of
        event time for every identity)."""
        total = 150 * len(self.tables)
        bloom = BLOOM_BITS // 8 + 40
        for table in self.tables:
            total += 8 * len(table.d)
            if table.held:
                total += 60 + 8 * len(table.held)
            if table.bloom is not None:
                total += bloom
        return total

    def to_state(self) -> dict:
        self.flush()
        return {"t": [t.to_state() for t in self.tables], "p": self.last_prune_day}

    @classmethod
    def from_state(cls, state: dict, settings: ModelSettings) -> NoveltyModel:
        model = cls(settings)
        model.tables = [
            ValueTable.from_state(item, model._cap(ATTRIBUTES[i][3]))
            for i, item in enumerate(state["t"])
        ]
        model.last_prune_day = state["p"]
        return model
