"""DailyModel (``volume.daily``): calls per UTC day against the identity's usual day."""

from __future__ import annotations

from collections import Counter

import pytest

from models.common import pack_blob, unpack_blob
from models.context import Context
from models.daily import DAY_EXCESS, DETECTOR, MAX_SILENT_DAYS, NO_DAY, WARM_DAYS, DailyModel
from models.profile import IdentityProfile
from models.settings import ModelSettings
from tests.models.helpers import ROLE, T0, make_event

DAY = 86400.0
SETTINGS = ModelSettings()


def ctx_at(ts: float, degradations: Counter | None = None, learning: bool = False) -> Context:
    ctx = Context(ts, SETTINGS.bucket_seconds)
    ctx.learning = learning
    ctx.degradations = Counter() if degradations is None else degradations
    return ctx


def feed(model: DailyModel, times: list[float], held: bool = False, **kw) -> list:
    """Score then learn each call, as the profile does; the signals raised."""
    out = []
    for ts in times:
        event = make_event(ts)
        ctx = ctx_at(ts, **kw)
        out += model.score(event, ctx, held)
        model.learn(event, ctx, held)
    return out


def usual_days(days: int = 21, per_day: int = 4) -> list[float]:
    """``per_day`` calls on each day, from 09:00, an hour apart."""
    return [T0 + d * DAY + 9 * 3600 + k * 3600 for d in range(days) for k in range(per_day)]


def slow_reader(day: int, calls: int = 432, per: int = 9) -> list[float]:
    """``per`` reads every ten minutes from 08:00 (nine: the paced exfiltration)."""
    return [T0 + day * DAY + 8 * 3600 + (i // per) * 600 + i % per for i in range(calls)]


def learned(days: int = 21) -> DailyModel:
    model = DailyModel(SETTINGS)
    assert feed(model, usual_days(days)) == []
    return model


class TestSlowReader:
    def test_a_paced_reader_is_found_within_the_day(self):
        model = learned()
        signals = feed(model, slow_reader(21))
        assert signals, "432 reads against a usual 4 a day"
        first = signals[0]
        assert first.detector == DETECTOR
        assert first.value == "2026-01-22"
        # found where the day passes twice the usual day plus the excess: 58 calls
        calls = int(first.observed.split()[0])
        assert 2 * 4 + DAY_EXCESS <= calls <= 2 * 4 + DAY_EXCESS + 1
        assert "usual 4.0 a day" in first.sentence
        assert first.score == 1.0
        # one signal per new tenth of score: the first is already 1.0, so just one
        assert len(signals) == 1

    def test_the_same_day_at_the_usual_volume_is_quiet(self):
        model = learned()
        assert feed(model, usual_days(1, per_day=8)) == []  # a busy day, not a pattern

    def test_quiet_while_learning_and_before_a_week_of_days(self):
        model = DailyModel(SETTINGS)
        feed(model, usual_days(WARM_DAYS))  # the last of the days is still open
        assert model.learned == WARM_DAYS - 1 and model.limit == float("inf")
        assert feed(model, slow_reader(WARM_DAYS - 1)) == []  # that open day
        model = learned()
        assert feed(model, slow_reader(21), learning=True) == []

    def test_a_day_with_a_held_call_is_another_models_finding(self):
        model = learned()
        reads = slow_reader(21)
        assert feed(model, reads[:5], held=True) == []
        assert feed(model, reads[5:]) == []
        assert model.count == len(reads) - 5  # held calls are not counted
        assert feed(model, slow_reader(22)) != []  # the next day is looked at again

    def test_silent_days_count_as_zero(self):
        model = learned()
        before = model.mean
        feed(model, [T0 + 40 * DAY])  # 19 silent days in between
        assert model.mean < before / 2
        assert model.day == int((T0 + 40 * DAY) // DAY)

    def test_a_long_silence_is_folded_in_bounded_steps(self):
        model = learned()
        learned_before = model.learned
        feed(model, [T0 + 5000 * DAY])
        assert model.learned == learned_before + 1 + MAX_SILENT_DAYS


class TestEventTime:
    def test_a_call_of_an_earlier_day_is_too_late(self):
        model = learned()
        degradations: Counter = Counter()
        feed(model, [T0 + 21 * DAY + 60])
        count = model.count
        assert feed(model, [T0 + 20 * DAY + DAY - 1], degradations=degradations) == []
        assert degradations[(DETECTOR, "too_late")] == 1
        assert model.count == count


class TestPoisoning:
    def test_an_anomalous_day_is_not_learned(self):
        model = learned()
        mean, peak = model.mean, model.peak
        feed(model, slow_reader(21))
        feed(model, [T0 + 22 * DAY + 60])  # folds the anomalous day
        assert model.run == [432]
        assert (model.mean, model.peak) == (mean, peak)

    def test_a_steady_new_level_is_accepted(self):
        model = learned()
        for day in range(21, 21 + SETTINGS.accept_windows):
            feed(model, slow_reader(day, 300))
        feed(model, [T0 + 40 * DAY])  # the sixth held day folds: the run is accepted
        assert model.run == []
        assert model.peak == pytest.approx(300.0 * model.decay ** 13)  # 13 silent days
        assert feed(model, slow_reader(40, 300)) == []  # the new usual day

    def test_feedback_accepts_the_day(self):
        model = learned()
        reads = slow_reader(21)
        assert feed(model, reads[:100])
        ctx = ctx_at(reads[99])
        assert model.mark_expected(DETECTOR, "2026-01-22", ctx)
        assert feed(model, reads[100:]) == []
        assert not model.mark_expected("volume.rate", "2026-01-22", ctx)

    def test_feedback_on_yesterday_leaves_today_judged(self):
        model = learned()
        assert feed(model, slow_reader(21))  # 2026-01-22: 432 paced reads, alerted
        feed(model, [T0 + 22 * DAY + 300])  # 2026-01-23 opens; the 22nd is held
        ctx = ctx_at(T0 + 22 * DAY + 300)
        assert model.run == [432]
        assert model.mark_expected(DETECTOR, "2026-01-22", ctx)
        assert model.run == [] and model.peak == 432.0
        # three times the accepted day is still a finding
        assert feed(model, slow_reader(22, 1300, per=30)) != []

    @pytest.mark.parametrize("value", ["2026-01-10", "2027-01-22", "yesterday", ""])
    def test_feedback_on_another_day_changes_nothing(self, value):
        model = learned()
        feed(model, slow_reader(21))
        before = model.to_state()
        assert not model.mark_expected(DETECTOR, value, ctx_at(T0 + 21 * DAY))
        assert model.to_state() == before


class TestState:
    def test_round_trip_keeps_the_open_day(self):
        model = learned()
        feed(model, slow_reader(21)[:30])
        copy = DailyModel.from_state(unpack_blob(pack_blob(1, model.to_state()), 1, "t"),
                                     SETTINGS)
        rest = slow_reader(21)[30:]
        assert feed(copy, rest) == feed(model, rest)
        assert copy.to_state() == model.to_state()

    def test_a_profile_saved_before_the_daily_model_loads_with_empty_days(self):
        profile = IdentityProfile(ROLE, "workload", SETTINGS)
        for ts in usual_days(3):
            profile.observe(make_event(ts))
        state = unpack_blob(profile.to_bytes(), 1, "t")
        del state["daily"]
        old = IdentityProfile.from_bytes(pack_blob(1, state), SETTINGS)
        daily = old.models[-1]
        assert isinstance(daily, DailyModel)
        assert (daily.day, daily.learned) == (NO_DAY, 0)
        assert old.models[0].to_state() == profile.models[0].to_state()


class TestInTheProfile:
    def test_the_profile_raises_it_for_a_paced_reader(self):
        profile = IdentityProfile(ROLE, "workload", SETTINGS)
        for ts in usual_days(21, per_day=6):
            profile.observe(make_event(ts))
        found = []
        for ts in slow_reader(21):
            found += [s for s in profile.observe(make_event(ts)) if s.detector == DETECTOR]
        assert len(found) == 1
        later = profile.score_one(make_event(T0 + 21 * DAY + 23 * 3600))
        assert DETECTOR not in {s.detector for s in later}  # one signal at the top tenth
