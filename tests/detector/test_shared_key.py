"""A storage account's shared key (account key, SAS token, anonymous access) used for the
first time after its subscription has been watched for ``shared_key_watch_days``: the key
is a new identity, in learning, so this finding is what reports a leaked key's first use."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from detector.engine import Detector
from detector.errors import ConfigError
from detector.stats import RunStats
from tests.detector.test_corpus_azure import parse, storage
from tests.detector.test_engine import run

T0 = datetime(2024, 12, 1, tzinfo=UTC)
RULE = "technique.azure.storage_shared_key_first_use"
APP = {"type": "OAuth", "requester": {"objectId": "ABCD", "appId": "a", "tenantId": "t"}}
KEY = {"type": "AccountKey", "tokenHash": "key1(5D1A)"}


def call(when: datetime, identity: dict, address: str = "10.1.2.3", **extra: object):
    """One Storage resource log record of account ``acct`` (subscription 1), parsed."""
    record = storage(identity, time=when.isoformat().replace("+00:00", "Z"),
                     callerIpAddress=f"{address}:40000", **extra)
    [event], _ = parse(record)
    return event


def oauth_days(days: int) -> list:
    """The application's reads of the account through Entra ID, hourly for ``days``."""
    return [call(T0 + timedelta(hours=h), APP) for h in range(24 * days)]


def first_use_alerts(alerts: list) -> list:
    return [a for a in alerts if RULE in a.detectors]


def test_first_account_key_call_after_weeks_of_entra_id_calls_is_a_finding() -> None:
    detector = Detector({}, stats=RunStats())
    assert first_use_alerts(run(detector, oauth_days(20))) == []
    leaked = [call(T0 + timedelta(days=20, seconds=s), KEY, "103.75.190.12",
                   properties={"accountName": "acct", "objectKey": f"/acct/c/img-{s}.jpg",
                               "userAgentHeader": "AzCopy/10.26.0 Windows 10"})
              for s in range(30)]
    found = first_use_alerts(run(detector, leaked))
    assert len(found) == 1  # the first call only: the key's later calls are its own history
    native = found[0].to_native()
    assert (native["severity"], native["identity"]["key"]) == ("medium",
                                                               "azure-storage:acct")
    sentence = native["signals"][0]["sentence"]
    assert sentence.startswith("first call to storage account acct with the account key "
                               "key1 (storage:GetBlob from 103.75.190.12, AzCopy/10.26.0) "
                               "after 20 days of its subscription's logs")
    assert {t["id"] for t in native["techniques"]} >= {"T1550.001", "T1078.004"}


def test_a_key_in_use_from_the_first_days_is_not_a_finding() -> None:
    detector = Detector({}, stats=RunStats())
    events = oauth_days(2) + [call(T0 + timedelta(days=2), KEY)]
    events += oauth_days(20)[48:]
    events.append(call(T0 + timedelta(days=21), KEY, "103.75.190.12"))
    assert first_use_alerts(run(detector, events)) == []


@pytest.mark.parametrize(("identity", "words"), [
    ({"type": "SAS", "tokenHash": "key1(ABC)"}, "with a SAS token"),
    ({"type": "Anonymous"}, "with anonymous (public) access"),
])
def test_sas_and_anonymous_calls_say_how_they_came(identity: dict, words: str) -> None:
    detector = Detector({}, stats=RunStats())
    run(detector, oauth_days(15))
    [alert] = first_use_alerts(run(detector, [call(T0 + timedelta(days=15), identity,
                                                   "198.51.100.7")]))
    assert words in alert.to_native()["signals"][0]["sentence"]


def test_zero_days_turns_it_off_and_a_bad_value_is_refused() -> None:
    detector = Detector({"scoring": {"shared_key_watch_days": 0}}, stats=RunStats())
    run(detector, oauth_days(15))
    assert first_use_alerts(run(detector, [call(T0 + timedelta(days=15), KEY)])) == []
    with pytest.raises(ConfigError, match="shared_key_watch_days"):
        Detector({"scoring": {"shared_key_watch_days": -1}}, stats=RunStats())


def test_a_restart_from_a_snapshot_keeps_how_long_the_subscription_was_watched() -> None:
    before = Detector({}, stats=RunStats())
    run(before, oauth_days(15))
    after = Detector({}, stats=RunStats())
    after.load_state(before.export_state())
    found = first_use_alerts(run(after, [call(T0 + timedelta(days=15), KEY)]))
    assert [a.to_native()["identity"]["key"] for a in found] == ["azure-storage:acct"]
    # a fresh detector has watched nothing: the same call is a first day's call
    fresh = Detector({}, stats=RunStats())
    assert first_use_alerts(run(fresh, [call(T0 + timedelta(days=15), KEY)])) == []


def test_a_subscription_is_watched_from_any_identitys_call_naming_it() -> None:
    """The application's first event was its sign-in, in the directory's tenant: the
    subscription its storage calls name was never an identity's first tenant, so a
    continuous run found nothing where a restarted one did (break-it trial)."""
    reads = oauth_days(20)
    sign_in = replace(reads[0], tenant="72f988bf-86f1-41af-91ab-2d7cd011db47",
                      action="azure:Sign-in activity", event_id="sign-in")
    detector = Detector({}, stats=RunStats())
    run(detector, [sign_in, *reads])
    found = first_use_alerts(run(detector, [call(T0 + timedelta(days=20), KEY)]))
    assert [a.to_native()["identity"]["key"] for a in found] == ["azure-storage:acct"]


def test_an_account_key_first_used_after_sas_tokens_is_its_own_finding() -> None:
    """A SAS token on day 2 made the shared-key identity; the account key's first use on
    day 20 was then a known identity's call (break-it trial)."""
    detector = Detector({}, stats=RunStats())
    sas = {"type": "SAS", "tokenHash": "key1(ABC)"}
    events = oauth_days(2) + [call(T0 + timedelta(days=2), sas)] + oauth_days(20)[48:]
    assert first_use_alerts(run(detector, events)) == []
    found = first_use_alerts(run(detector, [call(T0 + timedelta(days=20), KEY, "103.75.190.12"),
                                            call(T0 + timedelta(days=20, seconds=5), KEY)]))
    assert len(found) == 1
    assert "with the account key key1" in found[0].to_native()["signals"][0]["sentence"]
