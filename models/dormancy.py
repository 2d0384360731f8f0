"""Dormancy: an identity, or one of its credentials, active again after a long silence.

Score of a return after ``gap`` days with threshold ``N`` (``dormancy_days``)::

    0.5 + 0.5 × min(1, (gap − N) / 3N)

so a 30-day threshold gives 0.5 at 30 days and 1.0 at 120 days. The identity's own silence
is measured against its latest event before this one; a credential's silence is only
reported when the identity itself was active meanwhile (otherwise the identity signal says
it all). Dormancy has nothing to hold out: the return is learned at once (last seen moves).
It is reported during the learning period too (flagged ``cold_start``), because an
identity with three events ninety days ago is exactly the one to watch.
"""

from __future__ import annotations

import array
import logging

from detector.event import Event
from models.base import Signal
from models.common import clamp01, span_words
from models.context import Context
from models.settings import ModelSettings

logger = logging.getLogger(__name__)

CREDENTIAL_CAP = 16


class DormancyModel:
    """Remembers when each credential of the identity was last used (bounded)."""

    __slots__ = ("settings", "creds", "limit")

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.creds: dict[int, int] = {}
        self.limit = settings.dormancy_days * 86400  # seconds (settings are frozen)

    def _score(self, gap: float) -> float:
        limit = self.limit
        return clamp01(0.5 + 0.5 * min(1.0, (gap - limit) / (3 * limit)))

    def score(self, event: Event, ctx: Context) -> list[Signal]:
        """A signal when the identity or the credential was silent too long (pure)."""
        limit = self.limit
        last_ts = ctx.last_ts
        if last_ts is None or limit <= 0:
            return []
        ts = ctx.ts
        gap = ts - last_ts
        if gap >= limit:
            return [self._identity_signal(ctx, gap)]
        cred = event.credential_id
        if not cred:
            return []
        h = ctx.cred_hash  # computed once per event (``Context.credential_hash``)
        if h < 0:
            h = ctx.credential_hash(cred)
        last = self.creds.get(h)
        if last is None or ts - last < limit:
            return []
        return [self._credential_signal(ctx, cred, ts - last)]

    def _identity_signal(self, ctx: Context, gap: float) -> Signal:
        words = span_words(gap)
        return Signal(
            detector="dormancy.identity",
            score=self._score(gap),
            observed=f"active after {words} of silence",
            baseline=f"{ctx.n_events} events before; dormant after "
            f"{span_words(self.settings.dormancy_days * 86400)}",
            sentence=f"identity active again after {words} without any activity",
            value="identity",
            cold_start=ctx.learning,
            details={"gap_seconds": gap},
        )

    def _credential_signal(self, ctx: Context, cred: str, gap: float) -> Signal:
        words = span_words(gap)
        return Signal(
            detector="dormancy.credential",
            score=self._score(gap),
            observed=f"credential {cred} used after {words}",
            baseline=f"{len(self.creds)} credentials seen for this identity",
            sentence=f"credential {cred} used again after {words} unused, "
            "while the identity stayed active",
            value=cred,
            cold_start=ctx.learning,
            details={"gap_seconds": gap},
        )

    def learn(self, event: Event, ctx: Context, held: bool) -> None:
        """Move the credential's last-seen time (a return is never held out)."""
        cred = event.credential_id
        if not cred:
            return
        h = ctx.cred_hash
        if h < 0:
            h = ctx.credential_hash(cred)
        now = int(ctx.ts)
        creds = self.creds
        last = creds.get(h)
        if last is not None:
            if now > last:
                creds[h] = now
            return
        creds[h] = now
        if len(creds) > CREDENTIAL_CAP:
            # the least recently used credential (then the smallest hash): the smallest
            # (last use, hash) pair, built and compared at C speed
            oldest = min(zip(creds.values(), creds.keys()))[1]
            del creds[oldest]
            ctx.degradations[("dormancy.credential", "evicted")] += 1

    def mark_expected(self, detector: str, value: str, ctx: Context) -> bool:
        return False

    def size_estimate(self) -> int:
        return 16 + 12 * len(self.creds)

    def to_state(self) -> dict:
        return {
            "k": array.array("I", self.creds.keys()),
            "v": array.array("q", self.creds.values()),
        }

    @classmethod
    def from_state(cls, state: dict, settings: ModelSettings) -> DormancyModel:
        model = cls(settings)
        model.creds = dict(zip(state["k"], state["v"], strict=True))
        return model
