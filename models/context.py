"""``Context``: what every model needs to know about the event being scored, computed once.

The profile builds one ``Context`` per event (times, learning state, peer group, history)
and hands it to each model's ``score`` and ``learn``, so no model recomputes them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from models.common import vhash

_UNUSED: Counter = Counter()  # replaced by the profile's own counter before any model runs


class Context:
    """Per-event facts shared by the models of one profile (read-only for the models)."""

    __slots__ = (
        "ts",
        "hour",
        "bucket",
        "day",
        "learning",
        "first_ts",
        "last_ts",
        "n_events",
        "peers",
        "group",
        "degradations",
        "values",
        "novel",
        "window",
        "pending",
        "cred_hash",
        "cred_other",
    )

    def __init__(self, ts: float, bucket_seconds: float, first_ts: float | None = None,
                 last_ts: float | None = None, n_events: int = 0, learning: bool = True,
                 degradations: Counter = _UNUSED) -> None:
        self.ts = ts
        self.hour = int(ts // 3600)
        self.bucket = int(ts // bucket_seconds)
        self.day = int(ts // 86400)
        self.learning = learning
        self.first_ts = first_ts
        self.last_ts = last_ts
        self.n_events = n_events  # the identity's events before this one
        self.peers: Any = None
        self.group = ""
        self.degradations = degradations
        self.values: list[tuple[int, int, str, str]] | None = None
        self.novel = 0
        self.window: tuple[int, dict[str, int]] | None = None
        self.pending: list[tuple[int, int]] | None = None
        self.cred_hash = -1  # vhash of the credential id, once computed (0 … 2**32 − 1)
        self.cred_other: tuple | None = None  # credential model's concurrency finding

    def credential_hash(self, credential_id: str) -> int:
        """The credential's value hash, computed once per event for every model."""
        if self.cred_hash < 0:
            self.cred_hash = vhash(credential_id)
        return self.cred_hash

    @property
    def history_seconds(self) -> float:
        """Event time between the identity's first event and this one."""
        if self.first_ts is None:
            return 0.0
        span = self.ts - self.first_ts
        return span if span > 0.0 else 0.0  # max(0.0, span) without the call (per event)
