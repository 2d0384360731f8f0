"""Window models: volume, distinct-count spikes, failure bursts and the multivariate HST.

Events are counted into time buckets of ``bucket_minutes`` keyed by *event* time. Each
bucket is scored *while it fills*: every event compares the bucket's counts so far
(including itself) with the identity's baseline, so a burst is flagged within seconds of
event time, not when the bucket closes.

Baselines (``Reference``), one fold per complete bucket, empty buckets included:

- calls: an EWMA of the count per bucket, plus an EWMA per seasonal slot (hour of day ×
  weekday/weekend, 48 slots) blended in as the slot gathers samples, and an EWMA of the
  squared residual. ``z = (c − e) / sqrt(residual var + e + 1)`` (the ``e`` term is the
  Poisson floor that keeps sparse identities calm); score ``(z − 4) / 8`` clipped, and
  only when ``c ≥ 2e + 10`` and ``c > 2 ×`` the series' *peak*: the largest learned
  bucket, decaying by half in 30 days, so a nightly batch, a deploy or a weekly report
  that the identity has done before is not a spike, whatever the averages say
  (``EXCESS`` and ``PEAK_RATIOS`` hold the per-series values);
- distinct actions, distinct resources (enumeration) and failures (reconnaissance with
  stolen credentials): the same test against their own EWMA, without seasonality (for
  distinct actions ``c ≥ 2e + 5`` above 1.75 × the peak, for failures ``c ≥ 2e + 5``:
  ten kinds of calls at once, or five denied calls, are already a pattern).
  Calls, distinct actions and distinct resources spike only once ``MIN_BUSY_WINDOWS``
  (20) non-empty windows are learned (a bursty identity's peak needs samples).
  Distinct counts are exact up to ``DISTINCT_CAP`` (64) per window and read "64+"
  (degraded) beyond, so an identity whose usual peak is above 32 gets rate spikes but no
  distinct-count spikes;
- the multivariate HST (``models.multivariate``) scored at count milestones of the bucket
  (4, 8, 16, 32, then every 50 events), never per event.

Event-time semantics: a bucket ``S`` is compared with the fold of all buckets up to
``S − lag_buckets``; those are complete (no event more than ``lateness_minutes`` late can
still reach them), so the same events give the same scores whatever their order within
the lateness. The committed baseline trails the newest bucket by ``2 × lag − 1`` buckets
and the few complete buckets in between are folded on the fly (cached per bucket). When
a sparse identity's new bucket is far from the cached one, the reference is folded from
the committed baseline instead and the baseline's own next state is kept on the way, so
each bucket (empty ones included) is folded once for both (``WindowModel.reference``).
A bucket holding at most ``QUIET_COUNT`` events cannot signal, so its events build no
reference at all (most events of a sparse identity; ``WindowModel._defer``).

Poisoning and drift policy (B21): a complete bucket whose own score reaches
``holdout_score`` is not learned; it joins a quarantine run. ``accept_windows``
consecutive held buckets at a steady level (each series within a factor of two of its
median) are accepted as the new level: the baselines move to it and alerts stop.
``mark_expected("volume.…", …)`` accepts the current run at once. A held bucket never
feeds the HST nor its scaler. The first ``WARM_BUCKETS`` buckets are always learned: an
empty baseline would otherwise hold everything out and never learn.

Signals are emitted when a bucket's score for a detector first reaches a new tenth
(0.1, 0.2 …), so a burst of 500 events yields a handful of escalating signals.
"""

from __future__ import annotations

import array
import functools
import logging
import math
import time

from detector.event import Event
from models.base import Signal
from models.common import clamp01, vhash
from models.context import Context
from models.multivariate import FEATURES, WINDOW_SIZE, MultivariateModel, raw_values
from models.settings import ModelSettings

logger = logging.getLogger(__name__)

ALPHA = 0.02
SLOT_ALPHA = 0.1
SLOT_SAMPLES = 6
DISTINCT_CAP = 64
Z_START = 4.0
Z_SPAN = 8.0
MAX_ZERO_FOLDS = 7 * 24 * 6
WARM_BUCKETS = 12
"""Buckets a baseline learns unconditionally before it may hold any out (cold start)."""
PEAK_RATIOS = (2.0, 1.75, 2.0, 2.0)
"""How far above its recent peak a series must go: calls, distinct actions, distinct
resources, failures (a burst of new kinds of calls is the enumeration pattern)."""
PEAK_HALF_LIFE_DAYS = 30.0
"""A series' peak (decayed maximum of learned buckets) halves in 30 days without a new one,
so a weekly or monthly job still remembers its last run."""
EXCESS = (10.0, 5.0, 10.0, 5.0)
"""Minimum excess over twice the expectation: calls, distinct actions, distinct resources,
failures (five denied calls are already a reconnaissance pattern; ten calls are not)."""
MIN_BUSY_WINDOWS = 20
"""Busy (non-empty) windows learned before calls, distinct actions and distinct resources
may spike: an identity that works in bursts (a Terraform runner: a dozen applies in
three weeks, each as big as its change) has a peak from a few samples, and its next
apply is "twice the peak" by chance. Failures spike from the start: five denied calls are
a pattern however young the baseline. The busy windows are those the multivariate model
learned (non-empty, not held), so the count needs no state of its own."""
MILESTONES = frozenset({4, 8, 16, 32})
QUIET_COUNT = 3
"""A bucket with at most this many events cannot signal, whatever its baseline, so its
events are scored without building the reference (most events of a sparse identity).

Why: every count of such a bucket (calls, distinct actions, distinct resources, failures;
each event adds at most one to each) is at most 3, and a series scores above 0 only from
``2 e + EXCESS`` on, where ``e`` (an expectation: EWMAs and seasonal means of counts,
never negative) is >= 0 and the smallest ``EXCESS`` is 5. The first HST milestone is 4
events. Must stay below both (checked by the tests)."""
MILESTONE_EVERY = 50
DETECTORS = ("volume.rate", "volume.distinct_actions", "volume.distinct_resources",
             "volume.failures")


def seasonal_slot(bucket: int, bucket_seconds: float) -> int:
    """0–23 weekday hours, 24–47 weekend hours (UTC)."""
    ts = bucket * bucket_seconds
    day = int(ts // 86400)
    weekend = (day + 3) % 7 >= 5
    return int(ts // 3600) % 24 + (24 if weekend else 0)


@functools.cache
def week_slots(bucket_seconds: float) -> tuple[int, ...]:
    """``seasonal_slot`` of the buckets of one week (shared by all models), or ``()``.

    Only when a week is a whole number of whole-second buckets: then ``index *
    bucket_seconds`` is exact and a week later is the same hour and weekday, so
    ``seasonal_slot(i, bucket_seconds) == week_slots(bucket_seconds)[i % len(...)]``.
    """
    seconds = float(bucket_seconds)
    per_week = 7 * 86400 / seconds
    if not (seconds.is_integer() and per_week.is_integer()):
        return ()
    return tuple(seasonal_slot(i, seconds) for i in range(int(per_week)))


def _count(n: int, noun: str) -> str:
    """``1 resource``, ``2 resources``: the observed line is read by people."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def window_words(start: float) -> tuple[str, str]:
    """(signal value, clock words) of the window starting at ``start``: the value names the
    window for feedback and suppression (``2026-11-29T13:40Z``), the words are for the
    sentence (``13:40 UTC``), so two windows' signals never read alike."""
    when = time.gmtime(start)
    return time.strftime("%Y-%m-%dT%H:%MZ", when), time.strftime("%H:%M UTC", when)


def _median(values: list[int]) -> float:
    ordered = sorted(values)
    return float(ordered[len(ordered) // 2])


def _steady(values: list[int]) -> bool:
    """All values within a factor of two of their median (+1 so small counts can agree)."""
    middle = _median(values) + 1
    return min(values) + 1 >= middle / 2 and max(values) + 1 <= 2 * middle


def spike_score(count: float, expected: float, var: float, peak: float = 0.0,
                excess: float = 5.0, ratio: float = 2.0) -> float:
    """Score of ``count`` against an expectation; 0.0 unless it is at least twice the
    expectation plus ``excess`` and above ``ratio`` times the identity's recent peak (a
    recurring burst is not a spike)."""
    if count < 2 * expected + excess or count <= ratio * peak:
        return 0.0
    z = (count - expected) / math.sqrt(max(var, 0.0) + expected + 1.0)
    return clamp01((z - Z_START) / Z_SPAN)


def _may_spike(ref: Reference, bucket: Bucket, expected: float) -> bool:
    """False only when every ``ref.scores(bucket, ...)`` is exactly 0.0: each series fails
    ``spike_score``'s own early-return test (same comparisons, ``expected`` being
    ``ref.expected(slot)``). The scores are then skipped: ``holdout_score`` > 0 (checked by
    ``ModelSettings``), so max(0.0, ...) cannot reach it."""
    s, p = ref.stats, ref.peaks
    x0, x1, x2, x3 = EXCESS
    n, a, res, f = bucket.n, len(bucket.actions), len(bucket.resources), bucket.fails
    e1, e2, e3 = s[0], s[2], s[4]  # (doubles in the compiled build: one read each)
    r = PEAK_RATIOS
    return not ((n < 2 * expected + x0 or n <= r[0] * p[0])
                and (a < 2 * e1 + x1 or a <= r[1] * p[1])
                and (res < 2 * e2 + x2 or res <= r[2] * p[2])
                and (f < 2 * e3 + x3 or f <= r[3] * p[3]))


class Bucket:
    """Counts of one open or pending time bucket."""

    __slots__ = ("n", "fails", "actions", "resources", "novel", "emitted")

    def __init__(self) -> None:
        self.n = 0
        self.fails = 0
        self.actions: set[int] = set()
        self.resources: set[int] = set()
        self.novel = 0
        self.emitted: dict[str, int] = {}

    def to_state(self) -> list:
        return [self.n, self.fails, array.array("I", sorted(self.actions)),
                array.array("I", sorted(self.resources)), self.novel,
                [[k, v] for k, v in sorted(self.emitted.items())]]

    @classmethod
    def from_state(cls, state: list) -> Bucket:
        bucket = cls()
        bucket.n, bucket.fails, actions, resources, bucket.novel, emitted = state
        bucket.actions = set(actions)
        bucket.resources = set(resources)
        bucket.emitted = {k: v for k, v in emitted}
        return bucket


class Reference:
    """The folded baseline: EWMAs, seasonal slots, quarantine run and the HST."""

    __slots__ = ("through", "folds", "learned", "mean", "rvar", "slot_mean", "slot_n", "stats",
                 "peaks", "run", "hst", "hst_pending", "_sm", "_sn", "_s", "_p")

    def __init__(self, seed: int) -> None:
        self.through = -1
        self.folds = 0
        self.learned = 0
        self.mean = 0.0
        self.rvar = 0.0
        self.slot_mean = array.array("f", bytes(4 * 48))
        self.slot_n = array.array("H", bytes(2 * 48))
        self.stats = array.array("d", bytes(8 * 6))  # mean/var: actions, resources, fails
        self.peaks = array.array("d", bytes(8 * 4))  # calls, actions, resources, fails
        self.run: list[int] = []
        self.hst = MultivariateModel(seed)
        self.hst_pending: list[list[float]] | None = None  # see ``windows_model``
        self._bind()

    def _bind(self) -> None:
        """The four arrays again, for ``WindowModel._fold`` and ``_fold_zeros``: the compiled
        build keeps these as typed views, made here once instead of in every call there.
        Called whenever the arrays are replaced (otherwise they are changed in place,
        never resized, so the views stay the arrays' own memory)."""
        self._sm, self._sn, self._s, self._p = (self.slot_mean, self.slot_n, self.stats,
                                                self.peaks)

    def copy(self) -> Reference:
        other = Reference.__new__(Reference)
        other.through, other.folds, other.learned = self.through, self.folds, self.learned
        other.mean, other.rvar = self.mean, self.rvar
        other.slot_mean = array.array("f", self.slot_mean)
        other.slot_n = array.array("H", self.slot_n)
        other.stats = array.array("d", self.stats)
        other.peaks = array.array("d", self.peaks)
        other._bind()
        other.run = list(self.run)
        # A copy never learns into its HST (it lists windows, see ``windows_model``) and
        # may share one; the committed baseline learns into its own in place, so a copy
        # of it gets the trees as they are now (sharing them let later learning leak
        # into a cached reference, which then counted those windows twice).
        other.hst = self.hst.copy() if self.hst_pending is None else self.hst
        other.hst_pending = list(self.hst_pending or ())
        return other

    def hst_cold(self) -> bool:
        """Whether the HST has no full reference window yet, pending windows included."""
        hst = self.hst
        pending = len(self.hst_pending or ())
        return hst.first_window and hst.counter + pending < WINDOW_SIZE

    def windows_model(self) -> MultivariateModel:
        """The HST with this reference's pending windows learned (built once, on demand).

        A reference copy folds its few pending buckets into the cheap statistics at once
        but only *lists* their windows for the HST; the trees are copied and taught only
        when a milestone needs an HST score and one of those windows fills up a window of
        masses (otherwise ``_hst_signal`` scores through ``scoring_ahead``).
        """
        if self.hst_pending:
            hst = self.hst.copy()
            for values in self.hst_pending:
                hst.learn_values(values)
            self.hst = hst
            self.hst_pending = []
        return self.hst

    def expected(self, slot: int) -> float:
        """Expected calls in a bucket of this seasonal slot."""
        weight = self.slot_n[slot] / SLOT_SAMPLES
        if not weight < 1.0:  # min(1.0, weight), as in ``_fold``
            weight = 1.0
        slot_mean = float(self.slot_mean[slot])
        if slot >= 24 and weight < 1.0:  # a young weekend slot borrows the weekday hour
            wd = slot - 24
            wd_weight = min(1.0, self.slot_n[wd] / SLOT_SAMPLES)
            fallback = wd_weight * float(self.slot_mean[wd]) + (1 - wd_weight) * self.mean
        else:
            fallback = self.mean
        return weight * slot_mean + (1 - weight) * fallback

    def scores(self, bucket: Bucket, slot: int) -> tuple[float, float, float, float]:
        """(rate, distinct actions, distinct resources, failures) scores of a bucket; the
        first three are 0.0 until ``MIN_BUSY_WINDOWS`` busy windows are learned."""
        s, p, x, r = self.stats, self.peaks, EXCESS, PEAK_RATIOS
        fails = spike_score(bucket.fails, s[4], s[5], p[3], x[3], r[3])
        if self.hst.learned + len(self.hst_pending or ()) < MIN_BUSY_WINDOWS:
            return 0.0, 0.0, 0.0, fails
        return (
            spike_score(bucket.n, self.expected(slot), self.rvar, p[0], x[0], r[0]),
            spike_score(len(bucket.actions), s[0], s[1], p[1], x[1], r[1]),
            spike_score(len(bucket.resources), s[2], s[3], p[2], x[2], r[2]),
            fails,
        )

    def to_state(self) -> dict:
        return {"t": self.through, "f": self.folds, "n": self.learned, "m": self.mean,
                "v": self.rvar, "sm": self.slot_mean, "sn": self.slot_n, "s": self.stats,
                "p": self.peaks, "r": self.run, "h": self.hst.to_state()}

    @classmethod
    def from_state(cls, state: dict, seed: int) -> Reference:
        ref = cls(seed)
        ref.through, ref.folds, ref.learned = state["t"], state["f"], state["n"]
        ref.mean, ref.rvar = state["m"], state["v"]
        ref.slot_mean, ref.slot_n, ref.stats = state["sm"], state["sn"], state["s"]
        ref.peaks = state["p"]
        ref._bind()
        ref.run = list(state["r"])
        ref.hst = MultivariateModel.from_state(state["h"], seed)
        return ref


def _ewm(mean: float, var: float, x: float, alpha: float, n: int) -> tuple[float, float]:
    """One step of a weighted mean and variance (West's update) after ``n`` samples.

    The weight is ``max(alpha, 1 / (n + 1))``: the plain mean and population variance of
    the first ``1 / alpha`` samples (no bias towards the zero start), then exponential.
    """
    weight = max(alpha, 1.0 / (n + 1))
    diff = x - mean
    incr = weight * diff
    return mean + incr, (1 - weight) * (var + diff * incr)



class WindowModel:
    """Per-bucket counts scored against a lagged, seasonal, poisoning-resistant baseline."""

    __slots__ = ("settings", "main", "open", "newest", "_cache", "bucket_seconds", "lag",
                 "_limits_cache", "peak_decay", "_week_slots", "_next_main", "_chain_exact")

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.main = Reference(settings.seed)
        self.open: dict[int, Bucket] = {}
        self.newest = -1
        self.bucket_seconds = settings.bucket_seconds
        self.lag = settings.lag_buckets
        half_life = PEAK_HALF_LIFE_DAYS * 86400 / self.bucket_seconds
        self.peak_decay = 0.5 ** (1.0 / half_life)
        self._week_slots = week_slots(self.bucket_seconds)
        self._cache: tuple[int, Reference | None] | None = None  # None: see ``_defer``
        self._limits_cache: tuple | None = None
        self._next_main: tuple[int, int, Reference, tuple] | None = None  # see ``reference``
        self._chain_exact = False  # see ``reference``

    # -- folding ------------------------------------------------------------------------

    def _fold(self, ref: Reference, index: int, bucket: Bucket | None) -> None:
        """Fold one complete bucket (``None`` = empty) into ``ref``; see the policy."""
        week = self._week_slots  # same slot as seasonal_slot (see ``week_slots``)
        slot = week[index % len(week)] if week else seasonal_slot(index, self.bucket_seconds)
        ref.through = index
        ref.folds += 1
        warm = ref.learned >= WARM_BUCKETS  # a young baseline learns everything (cold start)
        expected = ref.expected(slot)  # read-only: the same before and after the check
        if (warm and bucket is not None and _may_spike(ref, bucket, expected)
                and max(ref.scores(bucket, slot)) >= self.settings.holdout_score):
            self._hold(ref, bucket)
            return
        ref.run.clear()
        count = 0 if bucket is None else bucket.n
        n = ref.learned
        ref.learned += 1
        # _ewm inlined (same expressions, same order): one weight for all four series.
        # ``y if y > x else x`` is ``max(x, y)`` and ``y if y < x else x`` is ``min(x, y)``,
        # the very comparison the builtins make (the first argument wins a tie), without a
        # call: this runs for every non-empty bucket of every identity.
        weight = 1.0 / (n + 1)
        if not weight > ALPHA:
            weight = ALPHA
        mean = ref.mean
        ref.mean = mean + weight * (count - mean)
        if n:  # the first residual is against an empty baseline: skipped
            rate = 1.0 / n
            ref.rvar += (rate if rate > ALPHA else ALPHA) * ((count - expected) ** 2 - ref.rvar)
        slot_mean, slot_n = ref._sm, ref._sn  # (typed views in the compiled build)
        sn = slot_n[slot]
        rate = 1.0 / (sn + 1)
        sm = slot_mean[slot]  # a double: ``count - sm`` must not be worked out in float32
        slot_mean[slot] = sm + (rate if rate > SLOT_ALPHA else SLOT_ALPHA) * (count - sm)
        slot_n[slot] = sn + 1 if sn < 0xFFFF else 0xFFFF
        s = ref._s
        if bucket is None:
            a, r, f = 0, 0, 0
        else:
            a, r, f = len(bucket.actions), len(bucket.resources), bucket.fails
        m, v = s[0], s[1]
        diff = a - m
        incr = weight * diff
        s[0], s[1] = m + incr, (1 - weight) * (v + diff * incr)
        m, v = s[2], s[3]
        diff = r - m
        incr = weight * diff
        s[2], s[3] = m + incr, (1 - weight) * (v + diff * incr)
        m, v = s[4], s[5]
        diff = f - m
        incr = weight * diff
        s[4], s[5] = m + incr, (1 - weight) * (v + diff * incr)
        peaks, decay = ref._p, self.peak_decay
        p = peaks[0] * decay
        peaks[0] = p if p > count else float(count)
        p = peaks[1] * decay
        peaks[1] = p if p > a else float(a)
        p = peaks[2] * decay
        peaks[2] = p if p > r else float(r)
        p = peaks[3] * decay
        peaks[3] = p if p > f else float(f)
        if bucket is not None:
            if ref.hst_pending is None:
                ref.hst.learn_values(self._window_values(bucket, index))
            else:
                ref.hst_pending.append(self._window_values(bucket, index))

    def _fold_zeros(self, ref: Reference, start: int, stop: int) -> None:
        """Fold the empty buckets ``start … stop - 1``: ``_fold(ref, i, None)`` for each.

        Sparse identities fold up to a week of empty buckets between two events, so this
        is the replay's hottest loop. It performs exactly the arithmetic of ``_fold`` with
        a count of 0 (same operations, same order, same float32 rounding of the slot
        means), only with locals instead of attribute look-ups, tuples and ``_ewm`` calls,
        so every baseline is bit-for-bit what the general path computes. Simplifications
        that keep the bits: an empty bucket is never held out (no scores needed), its
        peaks become ``max(0.0, p * decay) == p * decay`` (peaks are never negative), and
        a series whose mean and variance are both 0.0 stays at 0.0. The difference from
        the count, ``0 - x``, is the exact negation of ``x``, and IEEE rounding is
        symmetric, so it is carried into the next operation instead of computed:
        ``m + w * (0 - m)`` is ``m - w * m``, ``(0 - e) ** 2`` is ``e ** 2`` and
        ``(0 - m) * (w * (0 - m))`` is ``m * (w * m)``, bit for bit (zeros included: both
        sides give +0.0), one float operation fewer each.
        """
        slot_mean, slot_n, s, peaks = ref._sm, ref._sn, ref._s, ref._p
        decay, week, alpha, slot_alpha = self.peak_decay, self._week_slots, ALPHA, SLOT_ALPHA
        mean, rvar, n = ref.mean, ref.rvar, ref.learned
        p0, p1, p2, p3 = peaks[0], peaks[1], peaks[2], peaks[3]
        m0, v0, m1, v1, m2, v2 = s[0], s[1], s[2], s[3], s[4], s[5]
        # the slots of ``start … stop - 1`` (the index itself is not needed otherwise)
        if week and stop - start <= len(week):
            first, last = start % len(week), (stop - 1) % len(week)
            slots = (week[first:last + 1] if first <= last
                     else week[first:] + week[:last + 1])
        else:
            slots = [seasonal_slot(i, self.bucket_seconds) for i in range(start, stop)]
        keep_alpha = 1 - alpha
        for slot in slots:
            sn = slot_n[slot]
            # (an array('f') item is already a Python float: float() of it is a no-op;
            # the same item is read once here and reused for the slot's own update)
            sm = slot_mean[slot]
            if n >= 50 and sn >= 9:
                # The steady state, the general branch below with its constants: from
                # n = 50 on, max(ALPHA, 1 / (n + 1)) and max(ALPHA, 1 / n) are both ALPHA
                # (1.0 / 50 rounds to the same double as the literal 0.02); from sn = 9
                # (>= SLOT_SAMPLES) on, the slot's weight is 1.0, so the expectation
                # 1.0 * slot mean + 0.0 * fallback == slot mean (both finite, >= 0), and
                # max(SLOT_ALPHA, 1 / (sn + 1)) is SLOT_ALPHA.
                w, keep = alpha, keep_alpha
                mean -= w * mean
                # (a slot never active keeps a mean of exactly 0.0, whose square is
                # 0.0: pow is only called for the others)
                rvar += w * ((sm ** 2 if sm else 0.0) - rvar)
                slot_mean[slot] = sm - slot_alpha * sm
            else:
                # ref.expected(slot), before this fold's updates (see above for sn >= 6)
                if sn >= SLOT_SAMPLES:
                    expected = sm
                else:
                    weight = min(1.0, sn / SLOT_SAMPLES)
                    if slot >= 24:
                        wd = slot - 24
                        wd_weight = min(1.0, slot_n[wd] / SLOT_SAMPLES)
                        fallback = wd_weight * float(slot_mean[wd]) + (1 - wd_weight) * mean
                    else:
                        fallback = mean
                    expected = weight * sm + (1 - weight) * fallback
                # _ewm(mean, 0.0, 0, ALPHA, n) keeping the mean, then the residual
                if n >= 50:
                    w = alpha
                    mean -= w * mean
                    rvar += w * (expected ** 2 - rvar)
                else:
                    w = max(ALPHA, 1.0 / (n + 1))
                    mean -= w * mean
                    if n:
                        rvar += max(ALPHA, 1.0 / n) * (expected ** 2 - rvar)
                keep = 1 - w
                slot_weight = slot_alpha if sn >= 9 else max(SLOT_ALPHA, 1.0 / (sn + 1))
                slot_mean[slot] = sm - slot_weight * sm
            n += 1
            if sn < 0xFFFF:
                slot_n[slot] = sn + 1
            # _ewm(m, v, 0, ALPHA, n - 1) for actions, resources, failures
            if m0 or v0:
                incr = w * m0
                m0, v0 = m0 - incr, keep * (v0 + m0 * incr)  # keep == 1 - w
            if m1 or v1:
                incr = w * m1
                m1, v1 = m1 - incr, keep * (v1 + m1 * incr)
            if m2 or v2:
                incr = w * m2
                m2, v2 = m2 - incr, keep * (v2 + m2 * incr)
            p0 *= decay
            p1 *= decay
            p2 *= decay
            p3 *= decay
        count = stop - start
        ref.folds += count
        ref.through = stop - 1
        ref.mean, ref.rvar, ref.learned = mean, rvar, n
        s[0], s[1], s[2], s[3], s[4], s[5] = m0, v0, m1, v1, m2, v2
        peaks[0], peaks[1], peaks[2], peaks[3] = p0, p1, p2, p3
        ref.run.clear()

    def _hold(self, ref: Reference, bucket: Bucket) -> None:
        """Quarantine a held bucket; accept the run once it is steady (see the policy)."""
        ref.run.append([bucket.n, len(bucket.actions), len(bucket.resources), bucket.fails])
        k = self.settings.accept_windows
        if len(ref.run) >= k and all(_steady([row[i] for row in ref.run[-k:]])
                                     for i in range(4)):
            self._accept(ref)

    def _accept(self, ref: Reference) -> None:
        """A steady new level: every series of the run becomes the baseline (drift learned).

        Calls: the seasonal slots are rescaled by the new level over the old one. Distinct
        actions, distinct resources and failures: their means move to the run's median.
        """
        medians = [_median([row[i] for row in ref.run]) for i in range(4)]
        spreads = [float(max(r[i] for r in ref.run) - min(r[i] for r in ref.run))
                   for i in range(4)]
        level = medians[0]
        ratio = level / ref.mean if ref.mean > 0 else 1.0
        for i in range(48):
            ref.slot_mean[i] = ref.slot_mean[i] * ratio if ref.mean > 0 else level
        ref.mean = level
        ref.rvar = max(ref.rvar * ratio * ratio, spreads[0] ** 2)
        s = ref.stats
        for i in range(3):
            s[2 * i] = medians[i + 1]
            s[2 * i + 1] = max(s[2 * i + 1], spreads[i + 1] ** 2)
        for i in range(4):
            ref.peaks[i] = max(ref.peaks[i], float(max(row[i] for row in ref.run)))
        ref.run.clear()

    def _window_values(self, bucket: Bucket, index: int) -> list[float]:
        """The bucket's HST features as ``raw_values`` gives them."""
        hour = int(index * self.bucket_seconds // 3600)
        return raw_values(bucket.n, bucket.fails, len(bucket.actions), len(bucket.resources),
                          bucket.novel, hour)

    def _fold_until(self, ref: Reference, target: int, pending: dict[int, Bucket]) -> bool:
        """Fold buckets ``ref.through + 1 … target`` (empty ones capped to a week); returns
        whether a run of empty buckets was cut to the cap."""
        capped = False
        index = ref.through + 1
        if ref.through < 0:
            index = min(pending) if pending else target + 1
        while index <= target:
            bucket = pending.get(index)
            if bucket is None:
                later = [i for i in pending if index < i <= target]
                stop = min(later) if later else target + 1
                start = stop - MAX_ZERO_FOLDS
                if not start > index:  # max(index, start), as in ``_fold``
                    start = index
                capped = capped or start > index
                if start < stop:
                    self._fold_zeros(ref, start, stop)
                ref.through = stop - 1
                index = stop
                continue
            self._fold(ref, index, bucket)
            index += 1
        return capped

    def reference(self, index: int) -> Reference:
        """The baseline bucket ``index`` is compared with (all buckets ≤ index − lag).

        Built from the committed baseline plus the complete buckets after it, and cached
        by how far it reaches, so the next bucket's reference costs one more fold.

        A cached reference is extended only while it is ahead of where ``main`` goes next;
        when it is not (a sparse identity: the new bucket is several buckets after the
        cached one), the reference is built from ``main`` instead and ``main``'s own next
        folds are kept on the way (``_keep_next_main``), so the buckets in between are
        folded once, not once here and again in ``_advance``. Both ways give the same
        reference, bit for bit, while ``_chain_exact`` holds: every bucket was folded
        complete and unchanged (no later event into a bucket the cached chain has folded)
        and no run of empty buckets was cut to ``MAX_ZERO_FOLDS`` (where a cut falls
        depends on how the folds are split).
        """
        target = index - self.lag
        main = self.main
        if target <= main.through or main.through < 0:
            return main
        cache = self._cache
        if cache is not None and main.through <= cache[0] <= target:
            if cache[1] is None and (cache[0] == target or not self._can_build(index)):
                cache = self._build()
            if cache[0] == target:
                return cache[1]
            if not self._can_build(index):
                ref = cache[1].copy()
                return self._extend(ref, target)
        ref = main.copy()
        self._chain_exact = True
        self._keep_next_main(ref, index)
        return self._extend(ref, target)

    def _can_build(self, index: int) -> bool:
        """Whether ``reference`` builds bucket ``index``'s reference from ``main`` rather
        than from the usable cached one (read only when that cache stops short of it)."""
        return (self._chain_exact and self._cache[0] < index - 2 * self.lag + 1
                and self._can_keep(index))

    def _defer(self, index: int) -> bool:
        """Skip ``reference(index)`` for an event that cannot signal (see ``QUIET_COUNT``),
        leaving the cache as that call would; False when it cannot.

        The call would cache the reference folded to ``index - lag``; it is recorded as
        ``(index - lag, None)`` and built by ``_build`` only when read. That is the same
        reference, bit for bit, while the chain is exact and no run is capped (the split of
        the folds then does not matter, see ``reference``), hence the two refusals: with
        ``_chain_exact`` off the call would extend an inexact chain, and over
        ``MAX_ZERO_FOLDS`` it would cap a run. A late event into the skipped chain's span
        builds it first (``learn``), without the event, as the call had. An ``_advance``
        that caps a run moves ``main`` past the record (a span that stays short of it is
        within the one checked here), so the record is never read again. ``_next_main``
        is dropped: ``_advance`` then makes the very folds the kept copy would have made.
        """
        target = index - self.lag
        through = self.main.through
        if target <= through:
            return True  # the reference is ``main`` itself: nothing to cache
        if not self._chain_exact or target - through > MAX_ZERO_FOLDS:
            return False
        cache = self._cache
        if cache is None or cache[0] != target:
            self._cache = (target, None)
        self._limits_cache = None
        self._next_main = None
        return True

    def _build(self) -> tuple[int, Reference]:
        """Build the cached reference ``_defer`` left unbuilt, from ``main`` (no run is
        capped: the span was within ``MAX_ZERO_FOLDS`` and ``main`` only moves closer)."""
        target = self._cache[0]
        self._extend(self.main.copy(), target)
        return self._cache

    def _extend(self, ref: Reference, target: int) -> Reference:
        """Fold a fresh reference copy up to ``target`` and cache it."""
        pending = {i: b for i, b in self.open.items() if ref.through < i <= target}
        if self._fold_until(ref, target, pending):
            self._chain_exact = False
        self._cache = (target, ref)
        return ref

    def _can_keep(self, index: int) -> bool:
        """Whether ``_keep_next_main`` can keep ``main``'s next state for bucket ``index``:
        it is the newest (so ``_advance`` targets ``index - 2 lag + 1``), that target is
        ahead of ``main``, and the whole span up to the reference's target is within
        ``MAX_ZERO_FOLDS``, so neither the split fold nor ``_advance`` caps a run: folding
        ``a … m`` then ``m + 1 … t`` is then the very sequence of ``_fold`` calls as
        folding ``a … t`` in one go."""
        through = self.main.through
        return (index > self.newest and through < index - 2 * self.lag + 1
                and index - self.lag - through <= MAX_ZERO_FOLDS)

    def _keep_next_main(self, ref: Reference, index: int) -> None:
        """Fold ``ref`` (a fresh copy of ``main``) up to where ``main`` will be once bucket
        ``index`` is learned, and keep a copy there for ``_advance`` (see ``_can_keep``).

        The copy folds the buckets exactly as ``_advance`` would (same pending buckets,
        same calls), except that it lists the HST windows instead of learning them;
        ``_advance`` teaches them to ``main``'s own trees, in order, when it takes the
        copy, and only if the pending buckets are still those counted here (``n`` grows
        with every event of a bucket, so equal counts mean equal contents).
        """
        self._next_main = None
        if not self._can_keep(index):
            return
        mid = index - 2 * self.lag + 1
        pending = {i: b for i, b in self.open.items() if i <= mid}
        self._fold_until(ref, mid, pending)  # within MAX_ZERO_FOLDS: never capped
        counts = tuple(sorted((i, b.n) for i, b in pending.items()))
        self._next_main = (self.main.through, self.main.folds, ref.copy(), counts)

    # -- scoring ------------------------------------------------------------------------

    def _with_event(self, event: Event, bucket: Bucket | None) -> Bucket:
        """A copy of the bucket's counts as they are once the event is added."""
        after = Bucket()
        if bucket is not None:
            after.n, after.fails, after.novel = bucket.n, bucket.fails, bucket.novel
            after.actions, after.resources = bucket.actions, bucket.resources
        after.n += 1
        if event.outcome == "failure":
            after.fails += 1
        if event.action:
            h = vhash(event.action)
            if h not in after.actions and len(after.actions) < DISTINCT_CAP:
                after.actions = after.actions | {h}
        if event.resource:
            h = vhash(event.resource)
            if h not in after.resources and len(after.resources) < DISTINCT_CAP:
                after.resources = after.resources | {h}
        return after

    def _limits(self, index: int) -> tuple[Reference, tuple[float, float, float, float]]:
        """The reference of bucket ``index`` and the counts below which it cannot signal."""
        cache = self._limits_cache
        if cache is not None and cache[0] == index and cache[1] == self.main.through:
            return cache[2], cache[3]
        ref = self.reference(index)
        s = ref.stats
        zmin = Z_START + Z_SPAN * self.settings.min_score
        slot = seasonal_slot(index, self.bucket_seconds)
        p = ref.peaks
        sqrt = math.sqrt
        x, r = EXCESS, PEAK_RATIOS
        # per series (e, v, k, x, r): max(2e + x, e + zmin sqrt(max(v, 0) + e + 1), r k) - 1e-6
        # written out for the four series (calls, actions, resources, failures)
        e, v = ref.expected(slot), ref.rvar
        l0 = max(2 * e + x[0], e + zmin * sqrt(max(v, 0.0) + e + 1.0), r[0] * p[0]) - 1e-6
        e, v = s[0], s[1]
        l1 = max(2 * e + x[1], e + zmin * sqrt(max(v, 0.0) + e + 1.0), r[1] * p[1]) - 1e-6
        e, v = s[2], s[3]
        l2 = max(2 * e + x[2], e + zmin * sqrt(max(v, 0.0) + e + 1.0), r[2] * p[2]) - 1e-6
        e, v = s[4], s[5]
        l3 = max(2 * e + x[3], e + zmin * sqrt(max(v, 0.0) + e + 1.0), r[3] * p[3]) - 1e-6
        limits = (l0, l1, l2, l3)
        self._limits_cache = (index, self.main.through, ref, limits)
        return ref, limits

    def score(self, event: Event, ctx: Context) -> list[Signal]:
        """Signals for the event's bucket as it fills (pure)."""
        ctx.window = None
        if ctx.learning or self.main.folds == 0:
            return []
        index = ctx.bucket
        bucket = self.open.get(index)
        if (bucket is None or bucket.n < QUIET_COUNT) and self._defer(index):
            return []  # at most QUIET_COUNT events: nothing can signal (see QUIET_COUNT)
        cache = self._limits_cache  # the hit of ``_limits`` written out (most events)
        if cache is not None and cache[0] == index and cache[1] == self.main.through:
            ref, limits = cache[2], cache[3]
        else:
            ref, limits = self._limits(index)
        if bucket is None:
            n, fails, actions, resources = 1, 0, 1, 1
        else:
            n, fails = bucket.n + 1, bucket.fails
            actions, resources = len(bucket.actions) + 1, len(bucket.resources) + 1
        if event.outcome == "failure":
            fails += 1
        milestone = (n in MILESTONES or n % MILESTONE_EVERY == 0) and not ref.hst_cold()
        if (n < limits[0] and actions < limits[1] and resources < limits[2]
                and fails < limits[3] and not milestone):
            return []  # fast path: counts (upper bounds) below every signalling level
        return self._score_slow(event, ctx, bucket, ref, index, milestone)

    def _score_slow(self, event: Event, ctx: Context, bucket: Bucket | None, ref: Reference,
                    index: int, milestone: bool) -> list[Signal]:
        after = self._with_event(event, bucket)
        emitted = bucket.emitted if bucket is not None else {}
        slot = seasonal_slot(index, self.bucket_seconds)
        out = []
        levels = {}
        for detector, score in zip(DETECTORS, ref.scores(after, slot), strict=True):
            level = int(score * 10) + 1
            if score >= self.settings.min_score and level > emitted.get(detector, 0):
                out.append(self._signal(detector, score, after, ref, slot, index))
                levels[detector] = level
        ctx.window = (index, levels)
        if milestone:
            out.extend(self._hst_signal(ref, after, index))
        return out

    def _signal(self, detector: str, score: float, after: Bucket, ref: Reference, slot: int,
                index: int) -> Signal:
        minutes = f"{self.settings.bucket_minutes:g}-minute window"
        s = ref.stats
        if detector == "volume.rate":
            observed, usual, what = after.n, ref.expected(slot), "calls"
        elif detector == "volume.distinct_actions":
            observed, usual, what = len(after.actions), s[0], "distinct actions"
        elif detector == "volume.distinct_resources":
            observed, usual, what = len(after.resources), s[2], "distinct resources"
        else:
            observed, usual, what = after.fails, s[4], "failed calls"
        capped = what.startswith("distinct") and observed >= DISTINCT_CAP
        shown = f"{observed}+" if capped else str(observed)
        start = index * self.bucket_seconds
        value, clock = window_words(start)
        return Signal(
            detector=detector,
            score=score,
            observed=f"{shown} {what} in a {minutes}",
            baseline=f"usually {usual:.1f}",
            sentence=f"{shown} {what} in the {minutes} from {clock} so far, "
                     f"against a usual {usual:.1f}",
            value=value,
            degraded=capped,
            details={"window_start": start, "level": int(score * 10)},
        )

    def _hst_signal(self, ref: Reference, after: Bucket, index: int) -> list[Signal]:
        # a milestone only reads the HST: when no pending window completes a window of
        # masses, the trees need not be copied and taught (``scoring_ahead``)
        hst = None
        if ref.hst_pending:
            hst = ref.hst.scoring_ahead(ref.hst_pending)
        if hst is None:
            hst = ref.windows_model()
        if hst.cold:
            return []
        values = self._window_values(after, index)
        score = hst.signal_score_values(values)
        if score < self.settings.min_score:
            return []
        start = index * self.bucket_seconds
        value, clock = window_words(start)
        return [Signal(
            detector="multivariate.hst",
            score=clamp01(score),
            observed=f"{_count(after.n, 'call')}, {after.fails} failed, "
            f"{_count(len(after.actions), 'action')}, "
            f"{_count(len(after.resources), 'resource')}, {after.novel} novel so far",
            baseline=f"{hst.learned} learned windows of this identity",
            sentence="an unusual combination of volume, failures, breadth and novelty "
            f"in the window from {clock}, compared with {hst.learned} past windows of this "
            "identity",
            value=value,
            details={"features": hst.scaled(dict(zip(FEATURES, values, strict=True))),
                     "window_start": start},
        )]

    # -- learning -----------------------------------------------------------------------

    def learn(self, event: Event, ctx: Context, held: bool) -> None:
        """Count the event into its bucket and advance the committed baseline.

        ``held`` is not used: whether a *bucket* teaches is decided when it is folded,
        from its own complete counts (see the module docstring).
        """
        index = ctx.bucket
        if index <= self.main.through:
            ctx.degradations[("volume", "too_late")] += 1
            return
        cache = self._cache
        if cache is not None and index <= cache[0]:
            if cache[1] is None and self.main.through <= cache[0]:
                self._build()  # as the skipped chain was: without this event
            self._chain_exact = False  # the cached chain folded this bucket without it
        bucket = self.open.get(index)
        if bucket is None:
            bucket = self.open[index] = Bucket()
        bucket.n += 1
        if event.outcome == "failure":
            bucket.fails += 1
        if event.action and len(bucket.actions) < DISTINCT_CAP:
            bucket.actions.add(vhash(event.action))
        if event.resource and len(bucket.resources) < DISTINCT_CAP:
            bucket.resources.add(vhash(event.resource))
        if ctx.novel:
            bucket.novel += 1
        if ctx.window is not None and ctx.window[0] == index:
            bucket.emitted.update(ctx.window[1])
        if index > self.newest:
            self.newest = index
            self._advance(index)

    def _advance(self, newest: int) -> None:
        target = newest - 2 * self.lag + 1
        if target <= self.main.through:
            return
        pending = {i: b for i, b in self.open.items() if i <= target}
        kept, self._next_main = self._next_main, None
        if (kept is not None and kept[2].through == target
                and kept[0] == self.main.through and kept[1] == self.main.folds
                and kept[3] == tuple(sorted([(i, b.n) for i, b in pending.items()]))):
            # the very folds this call would make, already made by ``reference``; the
            # windows it listed are learned into main's trees in their order
            ref = kept[2]
            windows = ref.hst_pending or ()
            ref.hst, ref.hst_pending = self.main.hst, None
            for values in windows:
                ref.hst.learn_values(values)
            self.main = ref
        elif self._fold_until(self.main, target, pending):
            self._chain_exact = False
        for i in pending:
            del self.open[i]
        # the caches check ``main.through`` themselves: a reference reaching further than
        # the committed baseline stays valid

    def mark_expected(self, detector: str, value: str, ctx: Context) -> bool:
        """Accept the quarantined level (any of the window detectors) at once."""
        if detector not in DETECTORS or not self.main.run:
            return False
        self._accept(self.main)
        self._cache = None
        self._limits_cache = None
        self._next_main = None
        return True

    def size_estimate(self) -> int:
        # the sum over open buckets of 120 + 4 * (distinct actions + resources), in
        # integers, so gathered in any order
        distinct = 0
        for bucket in self.open.values():
            distinct += len(bucket.actions) + len(bucket.resources)
        return 1400 + 24 * len(self.main.run) + 120 * len(self.open) + 4 * distinct

    def to_state(self) -> dict:
        return {
            "m": self.main.to_state(),
            "o": [[i, b.to_state()] for i, b in sorted(self.open.items())],
            "n": self.newest,
        }

    @classmethod
    def from_state(cls, state: dict, settings: ModelSettings) -> WindowModel:
        model = cls(settings)
        model.main = Reference.from_state(state["m"], settings.seed)
        model.open = {i: Bucket.from_state(b) for i, b in state["o"]}
        model.newest = state["n"]
        return model
