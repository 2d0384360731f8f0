"""Schedule: activity in an hour where the identity has never been active.

State: for each of the 168 hours of the week, the last day (event time) the identity was
active in it. An hour counts as active while that day is within twice the novelty horizon.
Per hour of the day, the days it was active; and two counts: the hour-days after the
identity's first day, and how many of them were in an hour not active then.

Scores (only after the learning period):

- an hour of the day never active on any weekday:
  ``(1 − active hours / 24) × settled² × (1 − 2^−gap)``.
  The first factor is the identity's *regularity*: a job active in 2 hours of the day
  firing at 03:00 gets 0.92, a runner active in 20 hours 0.17, a 24/7 service never fires.
  ``settled`` is one minus the identity's measured rate of new hours: of the hour-days it
  was active after its first day, the share that fell in an hour it had never used
  ((new + 1) / (hour-days + 2)). A job seen at the same hours for ten days is settled
  (about 0.9); an identity driven by people (an AI assistant, a chat bot, a CI job run
  by hand) keeps turning up at hours it had not used yet, within its wide daily band,
  and is not (0.5 or less), so a new hour is weak evidence against it. The first day
  does not count: every hour of it is new, whatever kind of identity it is.
  ``gap`` is how many hours the new hour lies from the nearest active one (1 to 12, round
  the clock): a job whose run spills into the next hour, a schedule moved by a clock
  change or a queue, a person starting an hour early all land next to known activity
  (halved), while a nightly job seen in the afternoon is 11 hours away (nearly whole);
- with at least 14 days of history, an hour of the day that is active on other weekdays but
  never on this one: ``0.5 × (1 − active hours of the week / 168) × settled²
  × (1 − 2^−gap)``, ``gap`` here being how many hours of the week the hour lies from the
  nearest active one (1 to 12): a schedule moved by an hour (a job whose cron follows a
  daylight-saving clock) fills its new hour of the week one weekday at a time, next to the
  hour it left, and was a new hour of the week on each of them; a weekday job seen on a
  Saturday is a day away from its nearest hour and keeps its whole score.

The rate is measured, never assumed from the identity's kind. Both counts are halved once
the hour-days reach ``RATE_WINDOW``, so the rate follows the identity's recent habits.

Poisoning policy: an hour first seen in a held event is quarantined and becomes active
once it recurs in ``accept_windows`` distinct windows, or when marked expected ("03:00"
for the hour on every day, "Sat 03:00" for one hour of the week). A quarantined hour is
signalled once per window, not on every event.
"""

from __future__ import annotations

import array
import logging

from detector.event import Event
from models.base import Signal
from models.common import clamp01, span_words
from models.context import Context
from models.settings import ModelSettings
from models.table import HELD_CAP

logger = logging.getLogger(__name__)

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY_HISTORY_DAYS = 2
"""History needed before an hour of the day can be called unusual."""
WEEK_HISTORY_DAYS = 14
RATE_WINDOW = 1024
"""Hour-days after which the new-hour counts are halved (a 10-hour identity: ~100 days)."""


def hour_of_week(ts: float) -> int:
    """0 = Monday 00:00 UTC … 167 = Sunday 23:00 UTC (1970-01-01 was a Thursday)."""
    day = int(ts // 86400)
    return ((day + 3) % 7) * 24 + int(ts // 3600) % 24


def slot_label(how: int) -> str:
    return f"{DAYS[how // 24]} {how % 24:02d}:00"


def _context_how(ctx: Context) -> int:
    """``hour_of_week(ctx.ts)`` from the context's own day and hour, which are the very
    ``int(ts // 86400)`` and ``int(ts // 3600)`` it computes."""
    return ((ctx.day + 3) % 7) * 24 + ctx.hour % 24


class ScheduleModel:
    """Hour-of-week activity memory with a regularity-weighted surprise."""

    __slots__ = ("settings", "slots", "hod", "days", "held", "horizon_days", "_fast_hour",
                 "seen", "new")

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.slots = array.array("H", bytes(2 * 168))
        self.hod = array.array("H", bytes(2 * 24))
        self.days = array.array("H", bytes(2 * 24))  # active days seen per hour of day
        self.held: dict[int, int] = {}
        self.horizon_days = int(2 * settings.novelty_horizon_days)
        self._fast_hour = -1  # an hour already learned as active: nothing to score or learn
        self.seen = 0  # hour-days learned after the identity's first day …
        self.new = 0  # … of which in an hour that was not active then

    def _active(self, last_day: int, day: int) -> bool:
        # ``min(max(day, 1), 0xFFFF)`` (the stored day, see ``_set``) written out: per event
        stored = day if day > 1 else 1
        if stored > 0xFFFF:
            stored = 0xFFFF
        return last_day > 0 and stored - last_day <= self.horizon_days

    def _count_active(self, lasts: array.array, day: int) -> int:
        """``sum(1 for last in lasts if self._active(last, day))`` with the test solved for
        ``last`` once (integers: ``d - last <= h`` is ``last >= d - h``; and ``last > 0``)."""
        lowest = max(min(max(day, 1), 0xFFFF) - self.horizon_days, 1)
        return sum(map(lowest.__le__, lasts))  # counts ``last >= lowest`` at C speed

    def score(self, event: Event, ctx: Context) -> list[Signal]:
        """A signal when the event falls in an hour never active before (pure)."""
        if ctx.learning or ctx.hour == self._fast_hour:
            return []
        if ctx.history_seconds < DAY_HISTORY_DAYS * 86400:
            return []  # too short a history to call an hour unusual
        how = _context_how(ctx)
        packed = self.held.get(how)
        if packed is not None and packed >> 8 == ctx.bucket:
            return []  # already said in this window; the hour stays quarantined
        day = ctx.day
        hour = ctx.hour % 24
        if not self._active(self.hod[hour], day):
            active = self._count_active(self.hod, day)
            near = 1.0 - 0.5 ** self._gap(hour, day)
            score = (1.0 - active / 24) * self._settled() ** 2 * near
            return self._signal(ctx, how, score, active, 24, "day")
        if ctx.history_seconds < WEEK_HISTORY_DAYS * 86400:
            return []
        if self._active(self.slots[how], day):
            return []
        active = self._count_active(self.slots, day)
        near = 1.0 - 0.5 ** self._week_gap(how, day)
        score = 0.5 * (1.0 - active / 168) * self._settled() ** 2 * near
        return self._signal(ctx, how, score, active, 168, "week")

    def _week_gap(self, how: int, day: int) -> int:
        """Hours of the week from ``how`` to the nearest active one, round the week (1 to
        12; 12 when none is nearer)."""
        return self._nearest(self.slots, how, 168, day)

    def _gap(self, hour: int, day: int) -> int:
        """Hours from ``hour`` to the nearest active hour of the day, round the clock (1 to
        12; 12 when none is active)."""
        return self._nearest(self.hod, hour, 24, day)

    def _nearest(self, lasts: array.array, at: int, size: int, day: int) -> int:
        """Steps from ``at`` to the nearest active entry of ``lasts`` (``size`` of them,
        round the ring), 1 to 12; 12 when none is nearer."""
        for gap in range(1, 12):
            if (self._active(lasts[(at + gap) % size], day)
                    or self._active(lasts[(at - gap) % size], day)):
                return gap
        return 12

    def _settled(self) -> float:
        """1 − the identity's rate of new hours, (new + 1) / (hour-days + 2), counted after
        its first day: near 1 for a job that runs at the same hours every day, low for an
        identity whose hours follow people and keep spreading over its day."""
        return 1.0 - (self.new + 1) / (self.seen + 2)

    def _signal(
        self, ctx: Context, how: int, score: float, active: int, slots: int, per: str
    ) -> list[Signal]:
        """The signal for hour of the week ``how``, labelled by its hour of the day
        (``per`` "day") or of the week, when ``score`` reaches ``min_score``."""
        score = clamp01(score)
        if score < self.settings.min_score:
            return []
        label = f"{how % 24:02d}:00" if per == "day" else slot_label(how)
        what = "of the day" if per == "day" else "of the week"
        held = self._held_windows(how)
        sentence = (
            f"first activity at {label} UTC in {span_words(ctx.history_seconds)} of history; "
            f"active in {active} of {slots} hours {what} so far"
        )
        if held:
            sentence += f"; seen in {held} window(s), held out of learning"
        return [
            Signal(
                detector="schedule.off_hours",
                score=score,
                observed=f"activity at {label} UTC",
                baseline=f"active in {active} of {slots} hours {what}",
                sentence=sentence,
                value=label,
                details={"regularity": score, "per": per},
            )
        ]

    def _held_windows(self, how: int) -> int:
        packed = self.held.get(how)
        return 0 if packed is None else packed & 0xFF

    def learn(self, event: Event, ctx: Context, held: bool) -> None:
        """Mark the hour active, unless the event is held and the hour is new (quarantine)."""
        if ctx.hour == self._fast_hour:
            return
        how = _context_how(ctx)
        day = ctx.day
        quarantined = how in self.held and not self._active(self.slots[how], day)
        if quarantined or (held and not ctx.learning and self.score(event, ctx)):
            if not self._hold(how, ctx.bucket):  # only an hour that was itself flagged
                return
        if ctx.first_ts is not None and day > int(ctx.first_ts // 86400):
            self._count(how % 24, day)
        self._set(how, day)
        self._fast_hour = ctx.hour

    def _count(self, hour: int, day: int) -> None:
        """Count a first activity of the day in ``hour``, and whether the hour was new."""
        last = self.hod[hour]
        if last >= min(max(day, 1), 0xFFFF):
            return  # this hour-day is already counted
        self.seen += 1
        self.new += not self._active(last, day)
        if self.seen >= RATE_WINDOW:
            self.seen //= 2
            self.new //= 2

    def _set(self, how: int, day: int) -> None:
        day = min(max(day, 1), 0xFFFF)  # uint16 days: 1970 … 2149; odd clocks are clamped
        self.held.pop(how, None)
        if day > self.slots[how]:
            self.slots[how] = day
        hour = how % 24
        if day > self.hod[hour]:
            self.hod[hour] = day
            self.days[hour] = min(self.days[hour] + 1, 0xFFFF)

    def _hold(self, how: int, bucket: int) -> bool:
        packed = self.held.get(how)
        windows = 1
        if packed is not None:
            windows = packed & 0xFF
            if bucket != packed >> 8:
                windows = min(windows + 1, 0xFF)
            bucket = max(bucket, packed >> 8)
        elif len(self.held) >= HELD_CAP:
            del self.held[min(self.held, key=lambda k: (self.held[k] >> 8, k))]
        self.held[how] = (bucket << 8) | windows
        return windows >= self.settings.accept_windows

    def mark_expected(self, detector: str, value: str, ctx: Context) -> bool:
        """'03:00' marks that hour on every day; 'Sat 03:00' one hour of the week."""
        if detector != "schedule.off_hours":
            return False
        day_name, _, clock = value.strip().rpartition(" ")
        try:
            hour = int(clock.split(":")[0])
        except ValueError:
            return False
        if not 0 <= hour < 24:
            return False
        days = [DAYS.index(day_name)] if day_name in DAYS else range(7)
        for d in days:
            self._set(d * 24 + hour, max(ctx.day, 1))
        self._fast_hour = -1
        return True

    def size_estimate(self) -> int:
        return 410 + 12 * len(self.held)

    def to_state(self) -> dict:
        state = {"s": self.slots, "h": self.hod, "d": self.days, "n": [self.seen, self.new]}
        if self.held:
            state["q"] = [[k, v] for k, v in self.held.items()]
        return state

    @classmethod
    def from_state(cls, state: dict, settings: ModelSettings) -> ScheduleModel:
        model = cls(settings)
        model.slots = state["s"]
        model.hod = state["h"]
        model.days = state["d"]
        model.held = {k: v for k, v in state.get("q", [])}
        counts = state.get("n")
        if counts is None:  # a snapshot from before the counts: start from what it holds
            counts = model._counts_from_days()
        model.seen, model.new = counts
        return model

    def _counts_from_days(self) -> list[int]:
        """Hour-days and hours seen on one day only, from the per-hour day counts: the
        estimate used before the new-hour counts existed (then over active hours only), so
        an older snapshot scores close to how it did, not as an unknown identity."""
        seen = new = 0
        for count in self.days:
            seen += count
            new += count == 1
        return [seen, new]
