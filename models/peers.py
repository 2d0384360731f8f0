"""Peer groups: identities grouped by how they are deployed, and how common a value is there.

``group_of(event)`` names the group: an explicit ``attributes["peer_group"]`` tag or the
owner from the ownership map when present, else ``kind / name stem / namespace / tenant``.
The stem is the last segment of the identity key with digits and hash-like runs removed,
so ``role/ci-runner-7f3a9c21`` and ``role/ci-runner-2`` share ``ci-runner``.

Profiles feed the index: a profile joins its group on its first event and calls ``note``
the first time it learns a value, so ``prevalence`` is the fraction of the group's
identities that have used the value. ``observe(event)`` only registers the identity in its
group (idempotent) and is cheap enough to call per event, but profiles already do it.

Bounded: at most ``peer_max_groups`` groups (later groups are not tracked, counted in
``degradations``), at most 1,024 remembered members per group (beyond it the size is
counted, not remembered), at most ``peer_values`` values per group and attribute (the least
shared quarter is evicted when full).
"""

from __future__ import annotations

import array
import logging
import re
from collections import Counter

from detector.event import Event
from models.common import pack_blob, unpack_blob, vhash
from models.settings import ModelSettings

logger = logging.getLogger(__name__)

VERSION = 1
MEMBER_CAP = 1024
_STEM_NOISE = re.compile(r"[0-9a-f]{6,}|\d+")
_STEM_SEPS = re.compile(r"[-_.]{2,}")
_GROUP_CACHE_MAX = 100_000


def name_stem(identity: str) -> str:
    """The identity's name without digits and hash-like runs (``ci-runner-7f3a9c21`` →
    ``ci-runner``)."""
    last = identity.rstrip("/:").rsplit("/", 1)[-1].rsplit(":", 1)[-1].lower()
    stem = _STEM_SEPS.sub("-", _STEM_NOISE.sub("", last)).strip("-_.")
    return stem or "unnamed"


class _Group:
    __slots__ = ("members", "overflow", "values")

    def __init__(self) -> None:
        self.members: set[int] = set()
        self.overflow = 0
        self.values: dict[str, dict[int, int]] = {}

    @property
    def size(self) -> int:
        return len(self.members) + self.overflow


class PeerIndex:
    """Shared across identities: group sizes and per-group value prevalence (bounded)."""

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        self.groups: dict[str, _Group] = {}
        self.degradations: Counter = Counter()
        self._group_cache: dict[str, str] = {}

    def group_of(self, event: Event) -> str:
        """The peer group name of the event's identity (see the module docstring)."""
        tag = event.attributes.get("peer_group") if event.attributes else None
        if tag:
            return f"tag:{tag}"
        if event.owner:
            return f"owner:{event.owner}"
        key = event.identity
        found = self._group_cache.get(key)
        if found is None:
            if len(self._group_cache) >= _GROUP_CACHE_MAX:
                self._group_cache.clear()
            attrs = event.attributes or {}
            namespace = attrs.get("k8s_namespace") or attrs.get("namespace") or "-"
            found = f"{event.identity_kind}/{name_stem(key)}/{namespace}/{event.tenant or '-'}"
            self._group_cache[key] = found
        return found

    def join(self, group: str, identity: str) -> None:
        """Register an identity as a member of ``group`` (idempotent while remembered)."""
        entry = self.groups.get(group)
        if entry is None:
            if len(self.groups) >= self.settings.peer_max_groups:
                self.degradations[("peers", "group_not_tracked")] += 1
                return
            entry = self.groups[group] = _Group()
        h = vhash(identity)
        if h in entry.members:
            return
        if len(entry.members) < MEMBER_CAP:
            entry.members.add(h)
        else:
            entry.overflow += 1

    def observe(self, event: Event) -> str:
        """Register the event's identity in its group; returns the group name."""
        group = self.group_of(event)
        self.join(group, event.identity)
        return group

    def note(self, group: str, attribute: str, value_hash: int) -> None:
        """One more identity of ``group`` has started using a value of ``attribute``."""
        entry = self.groups.get(group)
        if entry is None:
            return
        table = entry.values.get(attribute)
        if table is None:
            table = entry.values[attribute] = {}
        table[value_hash] = table.get(value_hash, 0) + 1
        if len(table) > self.settings.peer_values:
            self._evict(table)

    def note_shared(self, scope: str, attribute: str, value_hash: int) -> None:
        """Count a value in a scope that is not a peer group (e.g. a tenant's instance
        egress prefixes): no members, just how many identities started using it."""
        if scope not in self.groups:
            if len(self.groups) >= self.settings.peer_max_groups:
                self.degradations[("peers", "group_not_tracked")] += 1
                return
            self.groups[scope] = _Group()
        self.note(scope, attribute, value_hash)

    def count(self, group: str, attribute: str, value_hash: int) -> int:
        """How many identities of ``group`` (or a shared scope) started using the value."""
        entry = self.groups.get(group)
        if entry is None:
            return 0
        return entry.values.get(attribute, {}).get(value_hash, 0)

    def _evict(self, table: dict[int, int]) -> None:
        ranked = sorted(table.items(), key=lambda kv: (kv[1], kv[0]))
        for h, _ in ranked[: max(1, len(table) // 4)]:
            del table[h]
        self.degradations[("peers", "evicted")] += 1

    def group_size(self, group: str) -> int:
        entry = self.groups.get(group)
        return 0 if entry is None else entry.size

    def prevalence(self, group: str, attribute: str, value: str | int) -> float:
        """Fraction in [0, 1] of the group's identities that have used ``value``."""
        entry = self.groups.get(group)
        if entry is None or not entry.size:
            return 0.0
        h = value if isinstance(value, int) else vhash(value)
        count = entry.values.get(attribute, {}).get(h, 0)
        return min(1.0, count / entry.size)

    def size_bytes(self) -> int:
        return len(self.to_bytes())

    def to_bytes(self) -> bytes:
        groups = {}
        for name, entry in self.groups.items():
            values = {
                attr: [array.array("I", table.keys()), array.array("I", table.values())]
                for attr, table in entry.values.items()
            }
            groups[name] = {
                "m": array.array("I", sorted(entry.members)),
                "o": entry.overflow,
                "v": values,
            }
        return pack_blob(VERSION, {"g": groups})

    @classmethod
    def from_bytes(cls, data: bytes, settings: ModelSettings | None = None) -> PeerIndex:
        state = unpack_blob(data, VERSION, "peer index")
        index = cls(settings)
        for name, item in state["g"].items():
            entry = _Group()
            entry.members = set(item["m"])  # serialised sorted, so bytes round-trip
            entry.overflow = item["o"]
            entry.values = {
                attr: dict(zip(keys, counts, strict=True))
                for attr, (keys, counts) in item["v"].items()
            }
            index.groups[name] = entry
        return index
