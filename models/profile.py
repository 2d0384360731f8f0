"""``IdentityProfile``: everything learned about one identity, and the per-event loop.

For each event, ``observe``:

1. builds a ``Context`` (event-time hour and bucket, learning state, peer group);
2. asks every model to *score* the event against what is known (what ``score_one`` does;
   novelty also counts the uses of already known values in the same pass, which cannot
   change any score of the event);
3. decides whether the event is *held*: outside the learning period, a signal scoring at
   least ``holdout_score`` keeps its new values out of the baselines (quarantine, see each
   model's docstring), so an attacker cannot teach the model their own behaviour;
4. lets every model *learn* the event (partial events never teach);
5. returns the signals (only those with a score above ``min_score``).

During the learning period (``learning_min_events`` events *and* ``learning_min_days`` of
event time) the models learn and stay quiet, except ``identity.new`` on the very first
event and dormancy (both flagged ``cold_start``). One event leaves it early: a long-term
key or certificate with ``RETURN_MIN_EVENTS`` events behind it, back after
``dormancy_days`` of silence, is scored as learned and judged as a thin history.

State is serialised by ``to_bytes`` into a versioned blob (``models.common.pack_blob``);
``from_bytes`` refuses any other version with ``detector.errors.StateError``. The blob is
kept under ``max_state_bytes``: when a profile grows past it, its largest value table is
halved into its bloom filter and the trim is counted in ``degradations``.

``held_count()`` says how much is quarantined right now, for a "stuck in an anomalous
state" gauge (B21).
"""

from __future__ import annotations

import logging
from collections import Counter

from detector.errors import StateError
from detector.event import Event
from models.base import Signal
from models.common import LEARNED, LEARNING, THIN, pack_blob, span_words, unpack_blob
from models.context import Context
from models.credential import CredentialModel
from models.daily import DailyModel
from models.dormancy import DormancyModel
from models.novelty import LASTING_CREDENTIALS, NoveltyModel
from models.schedule import ScheduleModel
from models.settings import ModelSettings
from models.volume import WindowModel

logger = logging.getLogger(__name__)

STATE_VERSION = 1
MODEL_CLASSES = (NoveltyModel, WindowModel, ScheduleModel, DormancyModel, CredentialModel,
                 DailyModel)
MODEL_KEYS = ("novelty", "window", "schedule", "dormancy", "credential", "daily")
ADDED_MODELS = frozenset({"daily"})
"""Models a profile state written before them may lack: they start empty (``_from_state``)."""
NEW_IDENTITY_SCORE = 0.1
RETURN_MIN_EVENTS = 5
"""Events a long-term key or certificate needs before the dormancy period for its return
to be judged while it is still learning (``_context``): a legacy key used a few times a
month ago, back from a new network, is what dormancy detection is for."""


class IdentityProfile:
    """The learned behaviour of one identity; see the module docstring for the loop."""

    __slots__ = (
        "identity",
        "kind",
        "settings",
        "first_ts",
        "last_ts",
        "n_events",
        "group",
        "models",
        "degradations",
        "_size_check",
        "_bucket_seconds",
        "_learning_seconds",
        "_learning_events",
        "_thin_seconds",
        "_thin_events",
        "scored_n",
        "scored_first",
        "scored_return",
        "_dormant_seconds",
    )

    def __init__(self, identity: str, kind: str, settings: ModelSettings) -> None:
        self.identity = identity
        self.kind = kind
        self.settings = settings
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.n_events = 0
        self.group = ""
        self.models = [cls(settings) for cls in MODEL_CLASSES]
        self.degradations: Counter = Counter()
        self._size_check = 0
        # per-event constants (the settings are frozen; ``bucket_seconds`` is a property)
        self._bucket_seconds = settings.bucket_seconds
        self._learning_seconds = settings.learning_min_days * 86400
        self._learning_events = settings.learning_min_events
        # a thin history (see ``thin_history``): never when its days are 0
        self._thin_seconds = settings.thin_history_min_days * 86400
        self._thin_events = (settings.thin_history_min_events
                             if settings.thin_history_min_days > 0 else 1 << 62)
        # the history the last event was scored against (``_context``; ``scored_stage``)
        self.scored_n = 0
        self.scored_first: float | None = None
        self.scored_return = False  # a lasting key's return ended its learning (``_context``)
        self._dormant_seconds = settings.dormancy_days * 86400

    # -- the per-event loop -------------------------------------------------------------

    def observe(self, event: Event, peers=None) -> list[Signal]:
        """Score the event, then learn it (see the module docstring); returns the signals.

        ``_score`` is written out here, and the six models called one by one: this runs
        for every event."""
        ctx = self._context(event, peers)
        ts = event.ts
        first, last, n = self.first_ts, self.last_ts, self.n_events
        if event.partial:
            return self._score(event, ctx)
        novelty, window, schedule, dormancy, credential, daily = self.models
        if n == 0:
            signals = [self._new_identity(event)]
        else:
            signals = novelty.score(event, ctx, True)  # learns known values, see its docstring
            found = window.score(event, ctx)
            if found:
                signals.extend(found)
            found = schedule.score(event, ctx)
            if found:
                signals.extend(found)
            found = dormancy.score(event, ctx)
            if found:
                signals.extend(found)
            found = credential.score(event, ctx)
            if found:
                signals.extend(found)
        held = False
        if signals:
            # one loop instead of ``sum`` and ``any`` over generators, which the compiled
            # build cannot hold in a typed method (same counts, same verdict)
            novel, top, holdout = 0, False, self.settings.holdout_score
            for s in signals:
                if s.detector.startswith("novelty."):
                    novel += 1
                if s.score >= holdout:
                    top = True
            ctx.novel = novel
            held = not ctx.learning and top
        if n:  # after ``held``: a held call is not counted into its day (see models.daily)
            found = daily.score(event, ctx, held)
            if found:
                signals.extend(found)
        if peers is not None and not self.group:
            self.group = ctx.group
            peers.join(ctx.group, self.identity)
        novelty.learn(event, ctx, held)
        window.learn(event, ctx, held)
        schedule.learn(event, ctx, held)
        dormancy.learn(event, ctx, held)
        credential.learn(event, ctx, held)
        daily.learn(event, ctx, held)
        self.n_events = n + 1
        if first is None or ts < first:
            self.first_ts = ts
        if last is None or ts > last:
            self.last_ts = ts
        if ctx.hour != self._size_check:  # hourly: the caps bound growth in between
            self._size_check = ctx.hour
            self._enforce_cap(ctx)
        return signals

    def score_one(self, event: Event, peers=None) -> list[Signal]:
        """The signals ``observe`` would return for this event, without learning it."""
        return self._score(event, self._context(event, peers))

    def _context(self, event: Event, peers) -> Context:
        ts = event.ts
        first, n = self.first_ts, self.n_events
        # ``in_learning(ts)`` written out
        learning = first is None or (
            (n < self._learning_events or ts - first < self._learning_seconds)
            and (n < self._thin_events or ts - first < self._thin_seconds))
        back = False
        if (learning and n >= RETURN_MIN_EVENTS and self._dormant_seconds > 0
                and ts - self.last_ts >= self._dormant_seconds
                and event.credential_type in LASTING_CREDENTIALS):
            # a key used a few times, silent for the dormancy period, back: judged on what
            # it showed, as a thin history (``scored_stage``), not waved through as learning
            learning, back = False, True
        self.scored_n, self.scored_first, self.scored_return = n, first, back
        ctx = Context(ts, self._bucket_seconds, first, self.last_ts, n, learning,
                      self.degradations)
        if peers is not None:
            ctx.peers = peers
            ctx.group = self.group or peers.group_of(event)
        return ctx

    def _score(self, event: Event, ctx: Context, learn_known: bool = False) -> list[Signal]:
        if self.n_events == 0:
            return [self._new_identity(event)]
        models = self.models
        signals = models[0].score(event, ctx, learn_known)  # novelty, see its docstring
        for model in models[1:-1]:
            signals.extend(model.score(event, ctx))
        holdout = self.settings.holdout_score
        held = not ctx.learning and any(s.score >= holdout for s in signals)
        signals.extend(models[-1].score(event, ctx, held))  # daily, after ``held``
        return signals

    def _new_identity(self, event: Event) -> Signal:
        kind = self.kind or event.identity_kind
        return Signal(
            detector="identity.new",
            score=NEW_IDENTITY_SCORE,
            observed=f"first event of {kind} identity",
            baseline="no history",
            sentence=f"first event of a new {kind} identity, calling {event.action or '?'}; "
            "its baseline is being learned",
            value=self.identity,
            cold_start=True,
        )

    def _enforce_cap(self, ctx: Context) -> None:
        """Trim until the serialised size is under ``max_state_bytes`` (checked once per
        hour of event time; the exact size is only computed when the cheap estimate comes
        near). The per-table caps keep even adversarial input under the cap in between
        (``tests/models/test_profile.py``), so this is the safety net."""
        cap = self.settings.max_state_bytes
        if self.size_estimate() <= 0.7 * cap:
            return
        novelty = self.models[0]
        for _ in range(16):
            if self.size_bytes() <= cap:
                return
            novelty.trim(ctx)

    # -- learning period and feedback ---------------------------------------------------

    def in_learning(self, ts: float) -> bool:
        """True while the identity has too few events or too short a history to alert on:
        short of ``learning_min_events`` or ``learning_min_days``, and short of a thin
        history too (``thin_history``)."""
        return self._stage(ts) == LEARNING

    def thin_history(self, ts: float) -> bool:
        """True when the identity left its learning period on a thin history only: at least
        ``thin_history_min_events`` events over ``thin_history_min_days``, but short of
        ``learning_min_events`` or ``learning_min_days``. Its baselines are incomplete (a
        CI role that deploys twice a week), so the engine alerts on it only when two
        lines of evidence agree (``detector.scoring.corroborated``)."""
        return self._stage(ts) == THIN

    def scored_stage(self, ts: float) -> int:
        """The stage the models scored the last observed event (at ``ts``) in: that of the
        history before it, which ``observe`` has since grown by the event. The engine
        judges the event at this stage too, so the event that ends the learning period is
        not judged learned by the engine after the models scored it as learning (a policy
        action on it would then have alerted neither way). A lasting key back after the
        dormancy period with ``RETURN_MIN_EVENTS`` events before it is judged as a thin
        history (two lines of evidence: its return, and a new origin)."""
        stage = self._stage(ts, self.scored_n, self.scored_first)
        if stage == LEARNING and self.scored_return:
            return THIN
        return stage

    def _stage(self, ts: float, n: int = -1, first: float | None = None) -> int:
        """``LEARNING``, ``THIN`` or ``LEARNED`` at event time ``ts`` with ``n`` events
        since ``first`` (by default the whole history; ``_context`` writes the same test
        out for every event)."""
        if n < 0:
            first, n = self.first_ts, self.n_events
        if first is None:
            return LEARNING
        span = ts - first
        if n >= self._learning_events and span >= self._learning_seconds:
            return LEARNED
        if n >= self._thin_events and span >= self._thin_seconds:
            return THIN
        return LEARNING

    def learning_progress(self, ts: float, scored: bool = False) -> str:
        """'learning: 12/50 events, 5 hours of 3 days', 'learning: 45/50 events, 24 days of
        history (enough)', 'learned on a thin history: 20 events over 19 days (its models
        alert when two lines of evidence agree)' or 'learned: 812 events over 41 days'.
        ``scored``: at the stage the last event was scored in (``scored_stage``); still
        learning then, the counts are those of the history it was scored against."""
        s = self.settings
        n, first = self.n_events, self.first_ts
        stage = self.scored_stage(ts) if scored else self._stage(ts)
        if scored and stage == LEARNING:
            n, first = self.scored_n, self.scored_first
        span = 0.0 if first is None else max(0.0, ts - first)
        if stage == THIN:
            return (f"learned on a thin history: {n} events over "
                    f"{span_words(span)} (its models alert when two lines of evidence agree)")
        if stage == LEARNED:
            return f"learned: {n} events over {span_words(span)}"
        # each requirement says whether it is met, so "45/50 events" never sits next to
        # "24 days of 3 days" (the span is met; the events are what it waits for)
        if n >= s.learning_min_events:
            events = f"{n} events (enough)"
        else:
            events = f"{n}/{s.learning_min_events} events"
        if span >= s.learning_min_days * 86400:
            history = f"{span_words(span)} of history (enough)"
        else:
            history = f"{span_words(span)} of {span_words(s.learning_min_days * 86400)}"
        return f"learning: {events}, {history}"

    def mark_expected(self, detector: str, value: str) -> bool:
        """Feedback: the analyst says ``value`` is expected for ``detector``; learn it now."""
        ts = self.last_ts or 0.0
        ctx = Context(ts, self.settings.bucket_seconds)
        ctx.degradations = self.degradations
        changed = False
        for model in self.models:
            changed = model.mark_expected(detector, value, ctx) or changed
        logger.debug("mark_expected detector=%s changed=%s", detector, changed)
        return changed

    def held_count(self) -> int:
        """How much is quarantined right now: held values and hours, plus held windows of
        the current volume run and held days of the daily one. Non-zero for long means the
        identity is stuck in an anomalous state (the B21 gauge the engine may export)."""
        novelty, window, schedule, daily = (self.models[0], self.models[1], self.models[2],
                                            self.models[5])
        values = sum(len(table.held) for table in novelty.tables)
        return values + len(schedule.held) + len(window.main.run) + len(daily.run)

    # -- state --------------------------------------------------------------------------

    def size_estimate(self) -> int:
        """A cheap upper estimate of ``size_bytes`` (used to enforce the cap)."""
        novelty, window, schedule, dormancy, credential, daily = self.models
        return (200 + len(self.identity) + novelty.size_estimate() + window.size_estimate()
                + schedule.size_estimate() + dormancy.size_estimate()
                + credential.size_estimate() + daily.size_estimate())

    def size_bytes(self) -> int:
        return len(self.to_bytes())

    def to_bytes(self) -> bytes:
        state = {
            "id": self.identity,
            "kind": self.kind,
            "f": self.first_ts,
            "l": self.last_ts,
            "n": self.n_events,
            "g": self.group,
            "c": self._size_check,
            "d": [[m, w, n] for (m, w), n in sorted(self.degradations.items())],
        }
        for key, model in zip(MODEL_KEYS, self.models, strict=True):
            state[key] = model.to_state()
        return pack_blob(STATE_VERSION, state)

    @classmethod
    def _from_state(cls, state: dict, settings: ModelSettings) -> IdentityProfile:
        profile = cls(state["id"], state["kind"], settings)
        profile.first_ts = state["f"]
        profile.last_ts = state["l"]
        profile.n_events = state["n"]
        profile.group = state["g"]
        profile._size_check = state["c"]
        profile.degradations = Counter({(m, w): n for m, w, n in state["d"]})
        profile.models = [
            model_cls(settings) if key in ADDED_MODELS and key not in state
            else model_cls.from_state(state[key], settings)
            for key, model_cls in zip(MODEL_KEYS, MODEL_CLASSES, strict=True)
        ]
        return profile

    @classmethod
    def from_bytes(cls, data: bytes, settings: ModelSettings) -> IdentityProfile:
        """Rebuild a profile from ``to_bytes``; raises ``StateError`` on another version."""
        state = unpack_blob(data, STATE_VERSION, "identity profile")
        try:
            profile = cls._from_state(state, settings)
        except (KeyError, ValueError, TypeError, IndexError, OverflowError, AttributeError,
                RecursionError, MemoryError) as err:
            raise StateError(f"identity profile: corrupt state ({type(err).__name__}: {err})"
                             ) from err
        return profile
