"""Identity inventory: what the detector has seen of each identity, cheaply kept per event.

One ``InventoryRecord`` per identity, updated on every event with a handful of field
writes: kind and its reason, owner, tenant, the credentials used (id, type, first and
last use, bounded to ``MAX_CREDENTIALS``), first and last seen, event count. The
``inventory()`` view adds what is computed at query time: the dormant flag and whether
the identity is still in its learning period.

Two rules keep the record right for identities that mix kinds of use:

- Temporary credentials (one per console sign-in or STS session) never crowd out a
  long-term key: when the list is full, the temporary credential used longest ago makes
  room, so the keys whose dormancy matters stay listed however many sessions an IAM user
  opens. Only when no temporary credential is left is a new one counted, not kept.
- The kind an IAM user earned by console use is not taken back by a later event that only
  says "not yet conclusive" or "SDK key only": the resolver that saw the console sign-in may
  be gone (a worker restarted from a snapshot), and the inventory is what remembers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from detector.alerts import NO_OWNER, iso
from detector.event import Event
from detector.identity import CONSOLE_USER_REASONS, IAM_USER_USAGE_REASONS

logger = logging.getLogger(__name__)

MAX_CREDENTIALS = 16  # credentials remembered per identity; more are counted, not kept


@dataclass(slots=True)
class InventoryRecord:
    """Per-identity facts for the inventory (part of the identity's state blob)."""

    kind: str = "unknown"
    kind_reason: str = ""
    owner: str | None = None
    tenant: str | None = None
    principal_type: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    events: int = 0
    # credential id -> [type, first use, last use, events]
    credentials: dict[str, list[Any]] = field(default_factory=dict)
    credentials_dropped: int = 0
    last_actor: str | None = None

    def update(self, event: Event) -> None:
        ts = event.ts
        if self.events == 0 or ts < self.first_seen:
            self.first_seen = ts
        if ts > self.last_seen:
            self.last_seen = ts
        self.events += 1
        if not (event.kind_reason in IAM_USER_USAGE_REASONS
                and self.kind_reason in CONSOLE_USER_REASONS):
            self.kind = event.identity_kind
            self.kind_reason = event.kind_reason
        if event.owner:
            self.owner = event.owner
        if event.tenant:
            self.tenant = event.tenant
        if event.principal_type:
            self.principal_type = event.principal_type
        if event.actor:
            self.last_actor = event.actor
        if event.credential_id:
            self._credential(event)

    def touch(self, event: Event) -> None:
        """What a partial event may tell the inventory: that the identity was active then.

        Credentials, actor and the event count stay as complete events left them: a
        salvaged record may have lost fields that change who acted (an ``impersonatedUser``
        after the cut). Only an identity with no complete event yet takes its description
        (kind, reason, tenant, owner, principal type) from the partial one, which names the
        same key."""
        ts = event.ts
        if self.events == 0:
            if self.first_seen == 0.0 or ts < self.first_seen:
                self.first_seen = ts
            self.kind, self.kind_reason = event.identity_kind, event.kind_reason
            self.tenant = event.tenant or self.tenant
            self.owner = event.owner or self.owner
            self.principal_type = event.principal_type or self.principal_type
        if ts > self.last_seen:
            self.last_seen = ts

    def _credential(self, event: Event) -> None:
        entry = self.credentials.get(event.credential_id)
        ts = event.ts
        if entry is None:
            if len(self.credentials) >= MAX_CREDENTIALS and not self._evict_temporary():
                self.credentials_dropped += 1
                return
            self.credentials[event.credential_id] = [event.credential_type, ts, ts, 1]
            return
        entry[0] = event.credential_type
        if ts < entry[1]:  # what min() and max() keep, without two calls per event
            entry[1] = ts
        if ts > entry[2]:
            entry[2] = ts
        entry[3] += 1

    def _evict_temporary(self) -> bool:
        """Drop the temporary credential used longest ago (counted); False when none is."""
        oldest = None
        for cred_id, entry in self.credentials.items():
            if entry[0] == "temporary" and (oldest is None or entry[2] < oldest[1]):
                oldest = (cred_id, entry[2])
        if oldest is None:
            return False
        del self.credentials[oldest[0]]
        self.credentials_dropped += 1
        return True

    def view(self, key: str, *, now: float, dormant_after: float, in_learning: bool,
             thin_history: bool = False) -> dict:
        """The inventory entry as JSON-ready data (``thin_history``: out of learning on few
        events, see ``IdentityProfile.thin_history``)."""
        credentials = [
            {
                "id": cred_id,
                "type": entry[0],
                "first_use": iso(entry[1]),
                "last_use": iso(entry[2]),
                "events": entry[3],
                "dormant": now - entry[2] > dormant_after,
            }
            for cred_id, entry in sorted(self.credentials.items())
        ]
        return {
            "identity": key,
            "kind": self.kind,
            "kind_reason": self.kind_reason,
            "owner": self.owner or NO_OWNER,
            "tenant": self.tenant,
            "principal_type": self.principal_type,
            "credentials": credentials,
            "credentials_not_listed": self.credentials_dropped,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
            "dormant": now - self.last_seen > dormant_after,
            "events": self.events,
            "in_learning": in_learning,
            "thin_history": thin_history,
            "last_actor": self.last_actor,
        }

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InventoryRecord:
        """The record saved by ``to_dict``; a wrong-typed field raises ``TypeError``.

        A snapshot's checksum proves it is whole, not that its writer was this build: a
        wrong type loaded here would fail later, at that identity's next event, with the
        replay half done. Loading refuses it instead (``StateError``)."""
        record = cls(**{k: v for k, v in data.items() if k in cls.__slots__})
        for name in ("kind", "kind_reason"):
            _check(name, getattr(record, name), str)
        for name in ("owner", "tenant", "principal_type", "last_actor"):
            _check(name, getattr(record, name), (str, type(None)))
        for name in ("first_seen", "last_seen"):
            _check(name, getattr(record, name), (int, float))
        _check("events", record.events, int)
        _check("credentials_dropped", record.credentials_dropped, int)
        _check("credentials", record.credentials, dict)
        for cred_id, entry in record.credentials.items():
            if not (isinstance(entry, list) and len(entry) == 4):
                raise TypeError(f"inventory credential {cred_id!r} is not [type, first, "
                                "last, events]")
            _check("credential type", entry[0], (str, type(None)))
            _check("credential first use", entry[1], (int, float))
            _check("credential last use", entry[2], (int, float))
            _check("credential events", entry[3], int)
        return record


def _check(name: str, value: Any, types: type | tuple[type, ...]) -> None:
    if isinstance(value, bool) or not isinstance(value, types):
        raise TypeError(f"inventory {name} has the wrong type: {value!r:.40}")
