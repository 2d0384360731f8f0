"""Schedule, dormancy and credential-use models through the profile: quiet when stable,
flagged with the right sentence when their deviation is injected."""

from __future__ import annotations

import re

import pytest

from models.credential import is_instance_credential
from models.peers import PeerIndex
from models.profile import IdentityProfile
from models.schedule import RATE_WINDOW, ScheduleModel, hour_of_week, slot_label
from models.settings import ModelSettings
from tests.models.helpers import ROLE, T0, learned_profile, make_event


def office_hours_profile(days: int = 6, settings: ModelSettings | None = None):
    """Active 09:00–11:59 UTC every day, a call every 10 minutes."""
    profile = IdentityProfile(ROLE, "workload", settings or ModelSettings())
    for day in range(days):
        for k in range(18):
            profile.observe(make_event(T0 + day * 86400 + 9 * 3600 + k * 600))
    return profile, T0 + days * 86400


class TestSchedule:
    def test_hour_of_week__epoch_was_thursday(self):
        assert slot_label(hour_of_week(T0)) == "Thu 00:00"  # 2026-01-01 was a Thursday
        assert slot_label(hour_of_week(T0 + 4 * 86400 + 3 * 3600)) == "Mon 03:00"

    def test_usual_hours__quiet(self):
        profile, day = office_hours_profile()
        assert profile.score_one(make_event(day + 10 * 3600)) == []

    def test_new_hour__flagged_by_regularity(self):
        profile, day = office_hours_profile()
        signals = profile.score_one(make_event(day + 3 * 3600))
        found = [s for s in signals if s.detector == "schedule.off_hours"]
        assert found, signals
        # 3 active hours; after the first day, 15 hour-days, none in a new hour; 03:00 is
        # 6 hours from 09:00
        assert found[0].score == pytest.approx((1 - 3 / 24) * (1 - 1 / 17) ** 2 * (1 - 1 / 64))
        assert re.fullmatch(r"first activity at 03:00 UTC in 5 days of history; "
                            r"active in 3 of 24 hours of the day so far", found[0].sentence)

    def test_next_to_known_hours__halved_far_away__nearly_whole(self):
        """A run that spills into the next hour, or starts an hour early, is next to known
        activity; the middle of the night for an office-hours job is not."""
        profile, day = office_hours_profile()

        def off_hours(hour):
            return [s.score for s in profile.score_one(make_event(day + hour * 3600))
                    if s.detector == "schedule.off_hours"]

        whole = (1 - 3 / 24) * (1 - 1 / 17) ** 2
        assert off_hours(12) == [pytest.approx(whole / 2)]
        assert off_hours(8) == [pytest.approx(whole / 2)]
        assert off_hours(14) == [pytest.approx(whole * (1 - 1 / 8))]
        assert off_hours(22) == [pytest.approx(whole * (1 - 2 ** -11))]  # 11 h from 09:00

    def test_schedule_moved_by_an_hour__new_hours_of_the_week_are_next_to_known_ones(self):
        """A nightly job whose cron follows a daylight-saving clock runs an hour later from
        one day on: its new hour of the week is filled one weekday at a time, each next to
        the hour it left, and each was a whole new hour of the week (low alerts for a
        week). A weekday job seen on a Saturday is a day from its hours: whole."""
        nightly = IdentityProfile(ROLE, "workload", ModelSettings())
        for day in range(21):  # 02:00-02:50 every day for three weeks
            for k in range(6):
                nightly.observe(make_event(T0 + day * 86400 + 2 * 3600 + k * 600))
        week_scores = []
        for day in range(21, 26):  # then 03:00-03:50
            for k in range(6):
                event = make_event(T0 + day * 86400 + 3 * 3600 + k * 600)
                found = [s for s in nightly.score_one(event)
                         if s.detector == "schedule.off_hours" and s.details["per"] == "week"]
                week_scores += [s.score for s in found]
                nightly.observe(event)
        assert week_scores and max(week_scores) < 0.25  # halved: next to the hour it left

        weekdays = IdentityProfile(ROLE, "workload", ModelSettings())
        for day in range(28):
            if hour_of_week(T0 + day * 86400) // 24 >= 5:  # weekends off
                continue
            for k in range(6):
                weekdays.observe(make_event(T0 + day * 86400 + 2 * 3600 + k * 600))
        saturday = next(T0 + day * 86400 for day in range(28, 35)
                        if hour_of_week(T0 + day * 86400) // 24 == 5)
        found = [s for s in weekdays.score_one(make_event(saturday + 2 * 3600))
                 if s.detector == "schedule.off_hours"]
        assert [s.details["per"] for s in found] == ["week"]
        assert found[0].score > 0.4  # a day away from its nearest hour: whole

    def test_off_hours_burst__said_once_per_window(self):
        profile, day = office_hours_profile()
        flagged = [profile.observe(make_event(day + 3 * 3600 + i * 20)) for i in range(60)]
        per_event = ["schedule.off_hours" in {s.detector for s in f} for f in flagged]
        assert sum(per_event) == 2  # 20 minutes of calls: two 10-minute windows
        assert per_event[0] and per_event[30]

    def test_short_history__no_schedule_signal(self):
        settings = ModelSettings(learning_min_days=0.1)
        profile, _ = office_hours_profile(days=1, settings=settings)
        late = make_event(T0 + 86400 + 3 * 3600)
        assert not [s for s in profile.score_one(late) if s.detector == "schedule.off_hours"]

    def test_irregular_identity__new_hour_scores_low(self):
        """Active at different hours every day: still discovering its hours, not regular."""
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        day_hours = [[1, 5, 9, 13], [2, 6, 10, 14], [17, 21, 7, 11], [18, 22, 12, 15]]
        for day, hours in enumerate(day_hours):
            for hour in hours:
                for k in range(5):
                    profile.observe(make_event(T0 + day * 86400 + hour * 3600 + k * 60))
        late = make_event(T0 + 4 * 86400 + 3 * 3600)
        got = [s.score for s in profile.score_one(late) if s.detector == "schedule.off_hours"]
        regular, day = office_hours_profile()
        reference = [s.score for s in regular.score_one(make_event(day + 3 * 3600))
                     if s.detector == "schedule.off_hours"]
        assert reference and not profile.in_learning(late.ts)
        # 16 hours, each seen on one day only: not settled, so at most a faint signal
        assert not got or got[0] < reference[0] / 4

    def test_people_driven_identity__new_hour_in_its_band_scores_below_low(self):
        """An assistant used by people: a few hours a day within 13:00-22:59, a different
        few each day, so it keeps turning up at hours it had not used. A job active in as
        many hours, the same every day, is settled: the same new hour is strong there."""
        day_hours = [[14, 17, 20], [15, 18, 21], [14, 16, 22], [13, 17, 19], [15, 20, 22],
                     [14, 18, 21], [16, 19, 22], [13, 15, 20]]
        people = IdentityProfile(ROLE, "ai_agent", ModelSettings())
        for day, hours in enumerate(day_hours):
            for hour in hours:
                for k in range(8):
                    people.observe(make_event(T0 + day * 86400 + hour * 3600 + k * 300))
        job = IdentityProfile(ROLE, "workload", ModelSettings())
        for day in range(len(day_hours)):
            for hour in range(13, 23):
                job.observe(make_event(T0 + day * 86400 + hour * 3600))
        later = make_event(T0 + len(day_hours) * 86400 + 9 * 3600)

        def off_hours(profile):
            return [s.score for s in profile.score_one(later)
                    if s.detector == "schedule.off_hours"]

        # the people-driven one: 21 hour-days after its first day, 7 of them in a new hour;
        # 09:00 is 4 hours from 13:00 for both
        near = 1 - 1 / 16
        assert off_hours(people) == [pytest.approx((1 - 10 / 24) * (1 - 8 / 23) ** 2 * near)]
        assert off_hours(people)[0] < 0.4 < off_hours(job)[0]
        assert off_hours(job) == [pytest.approx((1 - 10 / 24) * (1 - 1 / 72) ** 2 * near)]

    def test_new_hour_counts__only_after_the_first_day(self):
        profile, _ = office_hours_profile(days=3)
        schedule = profile.models[2]
        assert (schedule.seen, schedule.new) == (6, 0)  # days 2 and 3, three hours each
        profile.observe(make_event(T0 + 3 * 86400 + 15 * 3600))
        assert (schedule.seen, schedule.new) == (7, 1)

    def test_new_hour_counts__halved_at_the_rate_window(self):
        profile, day = office_hours_profile(days=3)
        schedule = profile.models[2]
        schedule.seen, schedule.new = RATE_WINDOW - 1, 101
        profile.observe(make_event(day + 9 * 3600))
        assert (schedule.seen, schedule.new) == (RATE_WINDOW // 2, 50)

    def test_snapshot_without_new_hour_counts__starts_from_day_counts(self):
        profile, day = office_hours_profile(days=4)
        schedule = profile.models[2]
        schedule.days[15] = 1  # one hour seen on a single day
        state = schedule.to_state()
        del state["n"]
        restored = ScheduleModel.from_state(state, ModelSettings())
        assert (restored.seen, restored.new) == (13, 1)  # 4 days x 3 hours + 1; one single

    def test_always_on_identity__never_flagged(self):
        profile, ts = learned_profile(days=4)  # every 5 minutes, all day
        assert not [s for s in profile.score_one(make_event(ts + 3 * 3600))
                    if s.detector.startswith("schedule")]

    def test_mark_expected__hour_becomes_active(self):
        profile, day = office_hours_profile()
        assert profile.mark_expected("schedule.off_hours", "03:00")
        assert not [s for s in profile.score_one(make_event(day + 3 * 3600))
                    if s.detector == "schedule.off_hours"]


class TestDormancy:
    def test_identity_silent__flagged_with_gap(self):
        profile, ts = learned_profile(days=4)
        signals = profile.score_one(make_event(ts + 45 * 86400))
        found = [s for s in signals if s.detector == "dormancy.identity"]
        assert found and found[0].sentence == (
            "identity active again after 45 days without any activity")
        assert 0.5 < found[0].score < 1.0

    def test_credential_silent_identity_active__flagged(self):
        settings = ModelSettings(dormancy_days=10)
        profile, ts = learned_profile(settings, days=4)
        for day in range(12):  # identity busy with another key for 12 days
            profile.observe(make_event(ts + day * 86400, credential_id="ASIAOTHER"))
        signals = profile.score_one(make_event(ts + 12 * 86400 + 60))
        found = [s for s in signals if s.detector == "dormancy.credential"]
        assert found and found[0].value == "ASIAEXAMPLE"
        assert found[0].sentence.startswith("credential ASIAEXAMPLE used again after 12 days")

    def test_regular_gaps__quiet(self):
        profile, ts = learned_profile(days=4)
        assert not [s for s in profile.score_one(make_event(ts + 86400))
                    if s.detector.startswith("dormancy")]


class TestCredential:
    def test_two_networks_within_minutes__flagged_once_order_free(self):
        profile, ts = learned_profile(days=4)
        a = make_event(ts, network="public", network_prefix="203.0.113.0/24")
        b = make_event(ts + 120, network="public", network_prefix="198.51.100.0/24")
        profile.observe(a)
        found = [s for s in profile.observe(b) if s.detector == "credential.concurrent_networks"]
        assert found and found[0].value == "ASIAEXAMPLE"
        assert found[0].sentence == (
            "credential ASIAEXAMPLE used from 198.51.100.0/24 and from 203.0.113.0/24 "
            "2 minutes apart")

    def test_two_private_subnets__quiet_private_and_public__flagged(self):
        profile, ts = learned_profile(days=4)  # the stable stream runs from 10.0.1.0/24
        other_subnet = make_event(ts, network="private", network_prefix="10.0.7.0/24")
        assert "credential.concurrent_networks" not in {
            s.detector for s in profile.observe(other_subnet)}
        outside = make_event(ts + 30, network="public", network_prefix="203.0.113.0/24")
        assert "credential.concurrent_networks" in {
            s.detector for s in profile.score_one(outside)}

    def test_far_apart__quiet(self):
        profile, ts = learned_profile(days=4)
        profile.observe(make_event(ts, network="public", network_prefix="203.0.113.0/24"))
        later = make_event(ts + 3600, network="public", network_prefix="198.51.100.0/24")
        assert "credential.concurrent_networks" not in {s.detector
                                                       for s in profile.score_one(later)}

    def test_repeated_use__same_signals_as_a_profile_restored_before_every_event(self):
        """The known-use shortcut (``CredentialModel._uses``) changes no verdict: a
        credential used from one subnet while learning, then hopping between private
        subnets, a public network and a cloud service, out of order at times, scores
        exactly like one rebuilt from its blob each time (which starts without the
        shortcut)."""
        import random

        rng = random.Random(5)
        settings = ModelSettings(learning_min_days=0.2, learning_min_events=20)
        kept = IdentityProfile(ROLE, "workload", settings)
        blob = kept.to_bytes()
        networks = [("private", "10.0.1.0/24")] * 6 + [
            ("private", "10.0.2.0/24"), ("public", "203.0.113.0/24"),
            ("cloud_service", "s3.amazonaws.com")]
        ts, concurrent = T0, 0
        for i in range(1500):
            ts += rng.choice([20, 60, 400, 1200]) * (-0.5 if rng.random() < 0.05 else 1)
            network, prefix = rng.choice(networks[:1] if i < 300 else networks)
            event = make_event(ts, network=network, network_prefix=prefix,
                               credential_id=rng.choice(["ASIAONE", "ASIAONE", "ASIATWO"]))
            got = [(s.detector, s.score, s.sentence) for s in kept.observe(event)]
            restored = IdentityProfile.from_bytes(blob, settings)
            assert got == [(s.detector, s.score, s.sentence) for s in restored.observe(event)]
            blob = restored.to_bytes()
            concurrent += sum(1 for s in got if s[0] == "credential.concurrent_networks")
        assert concurrent >= 5  # the stream does raise concurrency signals
        assert kept.to_bytes() == blob

    def test_instance_credentials_outside_cloud__flagged(self):
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        inside = {"attributes": {"ec2_role_delivery": "2.0"}, "session": "i-0abc12345def67890"}
        for i in range(4 * 288):
            profile.observe(make_event(T0 + i * 300, network="private", **inside))
        ts = T0 + 4 * 86400
        outside = make_event(ts, network="public", network_prefix="203.0.113.0/24", **inside)
        found = [s for s in profile.score_one(outside)
                 if s.detector == "credential.instance_outside_cloud"]
        assert found and found[0].sentence.startswith(
            "temporary instance credentials used from 203.0.113.0/24 (public)")
        assert found[0].score >= 0.7
        assert is_instance_credential(make_event(ts, session="i-0123456789abcdef0"))
        assert not is_instance_credential(make_event(ts, session="gh-run-42"))


class TestServiceAccountToken:
    SA = "system:serviceaccount:orders:orders"

    def pod_calls(self, profile: IdentityProfile, peers=None) -> float:
        """Four days of calls from the pod network; the time after them."""
        for i in range(4 * 288):
            profile.observe(make_event(T0 + i * 300, "k8s:configmaps.get", identity=self.SA,
                                       source="k8s.audit", network="private",
                                       network_prefix="10.8.3.0/24", credential_id=None,
                                       credential_type="token", tenant="prod-cluster"), peers)
        return T0 + 4 * 86400

    def test_a_token_used_from_outside_the_cluster__flagged(self):
        profile = IdentityProfile(self.SA, "workload", ModelSettings())
        ts = self.pod_calls(profile)
        replay = make_event(ts, "k8s:configmaps.get", identity=self.SA, source="k8s.audit",
                            network="public", network_prefix="185.220.101.0/24",
                            credential_id=None, credential_type="token", tenant="prod-cluster")
        found = [s for s in profile.score_one(replay)
                 if s.detector == "credential.instance_outside_cloud"]
        assert found and found[0].sentence == (
            "service-account token used from 185.220.101.0/24 (public), outside the cluster,"
            " from a prefix no pod of the cluster uses")
        assert is_instance_credential(replay)
        assert not is_instance_credential(make_event(ts, source="k8s.audit",
                                                     identity="alice@example.com"))

    def test_a_cluster_qualified_account_is_a_pod_token(self):
        from detector.sources import k8s
        from models import credential

        assert credential.K8S_SOURCE == k8s.SOURCE  # the copy the models keep
        event = make_event(T0, identity=f"prod/{self.SA}", source="k8s.audit")
        assert is_instance_credential(event)

    def test_after_its_first_outside_use__left_to_novelty(self):
        """A deployer whose token a CI pipeline starts using from hosted runners: the first
        run from outside is flagged; the next runs, each from a new prefix, are not."""
        profile = IdentityProfile(self.SA, "workload", ModelSettings())
        self.pod_calls(profile)
        flagged = []
        for day in range(4, 8):  # a CI run a day from a new hosted-runner prefix
            run = make_event(T0 + day * 86400, identity=self.SA, source="k8s.audit",
                             network="public", network_prefix=f"20.{day}.1.0/24",
                             credential_id=None, tenant="prod-cluster")
            flagged.append("credential.instance_outside_cloud" in {
                s.detector for s in profile.observe(run)})
        assert flagged == [True, False, False, False]

    def test_a_public_egress_the_cluster_always_used__not_flagged(self):
        profile = IdentityProfile(self.SA, "workload", ModelSettings())
        for i in range(4 * 288):  # a cluster whose pods reach the API server via a NAT
            profile.observe(make_event(T0 + i * 300, identity=self.SA, source="k8s.audit",
                                       network="public", network_prefix="34.90.12.0/24",
                                       credential_id=None, tenant="prod-cluster"))
        usual = make_event(T0 + 4 * 86400, identity=self.SA, source="k8s.audit",
                           network="public", network_prefix="34.90.12.0/24",
                           credential_id=None, tenant="prod-cluster")
        assert "credential.instance_outside_cloud" not in {
            s.detector for s in profile.score_one(usual)}


class TestSharedEgress:
    def test_tenant_nat_prefix_of_other_instances__not_outside(self):
        peers = PeerIndex()
        inside = {"attributes": {"ec2_role_delivery": "2.0"}, "session": "i-0abc12345def67890"}
        nat = {"network": "public", "network_prefix": "52.30.182.0/24"}
        other = "arn:aws:iam::123456789012:role/mail-relay-ec2"
        relay = IdentityProfile(other, "workload", ModelSettings())
        for i in range(4 * 288):  # learns the tenant's NAT prefix as its own egress
            relay.observe(make_event(T0 + i * 300, identity=other, **nat, **inside), peers)
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        for i in range(4 * 288):
            profile.observe(make_event(T0 + i * 300, network="private", **inside), peers)
        ts = T0 + 4 * 86400
        via_nat = make_event(ts, **nat, **inside)
        from_vps = make_event(ts, network="public", network_prefix="203.0.113.0/24", **inside)
        outside = "credential.instance_outside_cloud"
        assert outside not in {s.detector for s in profile.score_one(via_nat, peers)}
        assert outside in {s.detector for s in profile.score_one(from_vps, peers)}


class TestRoleDeliveryMarker:
    def test_instance_session_without_marker__outside(self):
        inside = {"attributes": {"ec2_role_delivery": "2.0", "instance_id": "i-0abc12345def678"},
                  "session": "ec2-instance"}
        profile = IdentityProfile(ROLE, "workload", ModelSettings())
        for i in range(4 * 288):
            profile.observe(make_event(T0 + i * 300, network="private", **inside))
        ts = T0 + 4 * 86400
        stolen = make_event(ts, network="private", session="ec2-instance",
                            attributes={"instance_id": "i-0abc12345def678"})
        found = [s for s in profile.score_one(stolen)
                 if s.detector == "credential.instance_outside_cloud"]
        assert found and found[0].sentence.endswith(
            "without the EC2 role-delivery marker this identity's instances carry")
        usual = make_event(ts, network="private", **inside)
        assert "credential.instance_outside_cloud" not in {
            s.detector for s in profile.score_one(usual)}


def test_runbook__describes_the_two_schedule_cases_the_model_computes():
    """docs/alerts.md says what the model scores: an hour of the day never used (the common
    case, value "03:00"), or an hour of the week (value "Sat 03:00")."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text("utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `schedule.*` |"))
    assert ("activity at an hour of the day never used on any day (value `03:00`), or, with "
            "14 days of history, at an hour of the week never used although that hour of the "
            "day is used on other weekdays (value `Sat 03:00`)") in row
    assert ("weighed by how often the identity has turned up at new hours (a job at the same "
            "hours every day, not an assistant used by people) and by its distance from known "
            "activity") in " ".join(doc.split())
    profile, day = office_hours_profile()
    found = [s for s in profile.score_one(make_event(day + 3 * 3600))
             if s.detector == "schedule.off_hours"]
    assert found[0].value == "03:00" and found[0].details["per"] == "day"
    assert found[0].sentence.endswith("hours of the day so far")
