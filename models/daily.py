"""Daily volume (``volume.daily``): a day's calls against the identity's usual day.

The ten-minute windows (``models.volume``) find a burst. A patient reader stays under
them: nine objects every ten minutes for eight hours never makes ten calls in one
window, yet it is a hundred times the identity's usual day. So each UTC day of event
time is also counted as it fills, and compared with the identity's complete days:

- ``mean``: a weighted mean of calls per day (weight ``max(DAY_ALPHA, 1 / (n + 1))``, so
  the plain mean of the first days, then about the last two weeks), silent days included
  as zero; ``var``: the weighted variance around it;
- ``peak``: the busiest learned day, halving in ``PEAK_HALF_LIFE_DAYS`` without a busier
  one, so a monthly report remembers last month's.

A day at ``c`` calls so far signals only when ``c >= 2 mean + DAY_EXCESS`` and ``c >
DAY_PEAK_RATIO x peak``, scoring ``(z - 4) / 8`` clipped to [0, 1] with ``z = (c - mean)
/ sqrt(var + mean + 1)`` (the volume windows' test, on days). A signal is emitted each
time the day's score reaches a new tenth, as the windows do, and only once
``WARM_DAYS`` days are learned and the identity is out of its learning period.

A call the other models hold out (one of their signals reached ``holdout_score``) is not
counted, and its day signals no more (``learn``): that day is already their finding, and
its total would raise it again hours later. This model looks for the days no other
reading found.

Event time: a day is folded when the identity's first event of a later day arrives. An
event of an earlier day that comes after that (within the reorder lateness, across
midnight) is counted as the degradation ``("volume.daily", "too_late")`` and not scored.

Poisoning policy (as the windows'): a day whose final score reaches ``holdout_score`` is
not learned; it joins a run, and ``accept_windows`` such days in a row, each within a
factor of two of the run's median (the windows' ``_steady``), are learned as the new level.
``mark_expected("volume.daily", …)`` accepts the run at once.
"""

from __future__ import annotations

import calendar
import math
import time

from detector.event import Event
from models.base import Signal
from models.context import Context
from models.settings import ModelSettings
from models.volume import _median, _steady, spike_score

DETECTOR = "volume.daily"
DAY_ALPHA = 0.07
"""Weight of a new day in the mean once the first days are in (about two weeks)."""
DAY_EXCESS = 50.0
"""Calls above twice the usual day before a day can signal: a sparse identity's few
dozen extra calls (a retry storm, a backfill) are not a pattern; a few hundred are."""
DAY_PEAK_RATIO = 2.0
PEAK_HALF_LIFE_DAYS = 30.0
WARM_DAYS = 7
"""Days learned before any day can signal (a week, so weekends are in the mean)."""
MAX_SILENT_DAYS = 400
"""Silent days folded one by one at most; a longer silence leaves the mean at 0 anyway."""
NO_DAY = -(1 << 62)
"""``DailyModel.day`` before the first event (below every day a timestamp gives)."""
MAX_LEVEL = 11
"""Above every tenth a score can reach (``int(1.0 * 10) + 1``): a day that signals no more."""


class DailyModel:
    """Calls per UTC day of one identity; see the module docstring."""

    __slots__ = ("settings", "day", "count", "mean", "var", "peak", "learned", "emitted",
                 "run", "limit", "decay")

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.day = NO_DAY  # the open day (days since the epoch)
        self.count = 0  # its calls so far
        self.mean = 0.0
        self.var = 0.0
        self.peak = 0.0
        self.learned = 0  # days learned
        self.emitted = 0  # the open day's highest signalled tenth
        self.run: list[int] = []  # held days in a row (their calls)
        self.decay = 0.5 ** (1.0 / PEAK_HALF_LIFE_DAYS)
        self.limit = self._limit()

    def _limit(self) -> float:
        """Calls below which a day cannot signal (read per event: the fast path)."""
        if self.learned < WARM_DAYS:
            return math.inf
        return max(2.0 * self.mean + DAY_EXCESS, DAY_PEAK_RATIO * self.peak)

    def day_score(self, calls: int) -> float:
        """The score of a day at ``calls`` calls against the learned days: the windows'
        ``spike_score`` on days, once ``WARM_DAYS`` are learned."""
        if self.learned < WARM_DAYS:
            return 0.0
        return spike_score(calls, self.mean, self.var, self.peak, DAY_EXCESS, DAY_PEAK_RATIO)

    # -- scoring ------------------------------------------------------------------------

    def score(self, event: Event, ctx: Context, held: bool = False) -> list[Signal]:
        """A signal when the event's day, with it, reaches a new tenth of score (pure).

        The first call of a new day cannot signal (1 is below ``DAY_EXCESS``), a call of
        an earlier day is too late for it (``learn`` counts it), and a held call is not
        counted (see ``learn``)."""
        if ctx.day != self.day or held:
            return []
        calls = self.count + 1
        if calls < self.limit or ctx.learning:
            return []
        score = self.day_score(calls)
        level = int(score * 10) + 1
        if score < self.settings.min_score or level <= self.emitted:
            return []
        return [self._signal(ctx.day, calls, score)]

    def _signal(self, day: int, calls: int, score: float) -> Signal:
        date = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
        return Signal(
            detector=DETECTOR,
            score=score,
            observed=f"{calls} calls on {date} (UTC) so far",
            baseline=f"usually {self.mean:.1f} a day, at most {self.peak:.0f} lately",
            sentence=f"{calls} calls on {date} (UTC) so far, against a usual "
                     f"{self.mean:.1f} a day (busiest recent day {self.peak:.0f})",
            value=date,
            details={"day_start": day * 86400, "level": int(score * 10)},
        )

    # -- learning -----------------------------------------------------------------------

    def learn(self, event: Event, ctx: Context, held: bool) -> None:
        """Count the event into its day, unless the other models held it out: a call
        they signalled strongly (a stolen key's enumeration, a secrets burst) is their
        finding, and the day signals no more, since its total would only raise that
        finding again hours later. The day looks for what no other reading found.
        (Whether the whole day is learned is decided when it is folded, from its final
        count.)"""
        day = ctx.day
        if day > self.day:
            self._roll(day)
        elif day < self.day:
            ctx.degradations[(DETECTOR, "too_late")] += 1
            return
        if held:
            self.emitted = MAX_LEVEL  # the day is another model's finding: no more signals
            return
        self.count += 1
        if self.count >= self.limit and not ctx.learning:  # what ``score`` signalled
            score = self.day_score(self.count)
            if score >= self.settings.min_score and int(score * 10) + 1 > self.emitted:
                self.emitted = int(score * 10) + 1

    def _roll(self, day: int) -> None:
        """Fold the open day and the silent days before ``day``; open ``day``."""
        if self.day != NO_DAY:
            self._fold(self.count)
            for _ in range(min(day - self.day - 1, MAX_SILENT_DAYS)):
                self._fold(0)
        self.day, self.count, self.emitted = day, 0, 0
        self.limit = self._limit()

    def _fold(self, calls: int) -> None:
        """Learn one complete day, or hold it (see the policy)."""
        if (self.learned >= WARM_DAYS and calls
                and self.day_score(calls) >= self.settings.holdout_score):
            self.run.append(calls)
            k = self.settings.accept_windows
            if len(self.run) >= k and _steady(self.run[-k:]):
                self._accept()
            return
        self.run.clear()
        n = self.learned
        weight = max(DAY_ALPHA, 1.0 / (n + 1))
        diff = calls - self.mean
        incr = weight * diff
        self.mean += incr
        self.var = (1.0 - weight) * (self.var + diff * incr)
        self.peak = max(self.peak * self.decay, float(calls))
        self.learned = n + 1
        self.limit = self._limit()

    def _accept(self) -> None:
        """The held run is the new level: its median the mean, its busiest day the peak."""
        low, high = min(self.run), max(self.run)
        self.mean = _median(self.run)
        self.var = max(self.var, float(high - low) ** 2)
        self.peak = max(self.peak, float(high))
        self.learned += len(self.run)
        self.run.clear()
        self.limit = self._limit()

    def mark_expected(self, detector: str, value: str, ctx: Context) -> bool:
        """The analyst says a day's volume is usual (``value``: the alert's date). A held
        day (the run's days are the ones just before the open day: a silent day would
        have ended the run) accepts the run as the new level; the open day also counts
        its calls so far as a usual day's peak and signals no more. Another day, or a
        day that signalled nothing, changes nothing."""
        if detector != DETECTOR:
            return False
        try:
            day = int(calendar.timegm(time.strptime(value, "%Y-%m-%d")) // 86400)
        except (TypeError, ValueError, OverflowError):
            return False
        held = self.day - len(self.run) <= day < self.day
        today = day == self.day and (self.run or self.emitted)
        if not (held or today):
            return False
        if self.run:
            self._accept()
        if today:
            self.peak = max(self.peak, float(self.count))
            self.emitted = MAX_LEVEL
        self.limit = self._limit()
        return True

    def size_estimate(self) -> int:
        return 80 + 8 * len(self.run)

    def to_state(self) -> dict:
        return {"d": self.day, "c": self.count, "m": self.mean, "v": self.var, "p": self.peak,
                "n": self.learned, "e": self.emitted, "r": list(self.run)}

    @classmethod
    def from_state(cls, state: dict, settings: ModelSettings) -> DailyModel:
        model = cls(settings)
        model.day, model.count = int(state["d"]), int(state["c"])
        model.mean, model.var = float(state["m"]), float(state["v"])
        model.peak, model.learned = float(state["p"]), int(state["n"])
        model.emitted, model.run = int(state["e"]), [int(c) for c in state["r"]]
        model.limit = model._limit()
        return model

