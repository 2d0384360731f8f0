"""Time parsing, network classes and user-agent families: never raise, exact results."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detector.sources.common import (
    _PRIVATE_NETWORKS,
    _dotted_quad,
    classify_network,
    parse_time,
    read_only_from_operation,
    user_agent,
)

UTC = timezone.utc


@pytest.mark.parametrize("digits", range(10))
def test_zero_to_nine_fraction_digits(digits: int) -> None:
    fraction = "123456789"[:digits]
    text = f"2024-03-04T10:00:00{'.' + fraction if digits else ''}Z"
    micros = int((fraction + "000000")[:6]) if digits else 0
    assert parse_time(text) == datetime(2024, 3, 4, 10, 0, 0, micros, tzinfo=UTC)


@pytest.mark.parametrize("value, expected", [
    ("2024-03-04T12:00:00+02:00", datetime(2024, 3, 4, 10, tzinfo=UTC)),
    ("2024-03-04T10:00:00-0130", datetime(2024, 3, 4, 11, 30, tzinfo=UTC)),
    ("2024-03-04 10:00:00", datetime(2024, 3, 4, 10, tzinfo=UTC)),
    ("2024-03-04T10:00:00", datetime(2024, 3, 4, 10, tzinfo=UTC)),
    ("1709546400", datetime(2024, 3, 4, 10, tzinfo=UTC)),
    (1709546400.5, datetime(2024, 3, 4, 10, 0, 0, 500000, tzinfo=UTC)),
    (1709546400000000, datetime(2024, 3, 4, 10, tzinfo=UTC)),
    ("\u0661\u0667\u0660\u0669\u0665\u0664\u0666\u0664\u0660\u0660",  # Arabic-Indic
     datetime(2024, 3, 4, 10, tzinfo=UTC)),
])
def test_time_forms(value: object, expected: datetime) -> None:
    assert parse_time(value) == expected


@pytest.mark.parametrize("value", ["redacted", "", "null", "2024-13-45T99:00:00Z", None, True,
                                   float("nan"), -5, 10**30, [], {}, "Foo 1, 2024 1:00:00 PM",
                                   "\u00b2", "17\u00b9"])
def test_unparseable_times_give_none(value: object) -> None:
    assert parse_time(value) is None


def test_network_classes() -> None:
    assert classify_network("203.0.113.7") == ("203.0.113.7", "public", "203.0.113.0/24")
    assert classify_network("100.64.1.2")[1] == "private"
    assert classify_network("::ffff:10.1.2.3") == ("10.1.2.3", "private", "10.1.2.0/24")
    assert classify_network("storage.googleapis.com") == (None, "cloud_service",
                                                         "storage.googleapis.com")
    assert classify_network(12345) == (None, "unknown", None)


def _by_ipaddress(text: str) -> tuple[str | None, str, str | None]:
    """What ``ipaddress`` makes of an address: the definition ``_dotted_quad`` follows."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None, "unknown", None
    if address.version != 4:
        return str(address), "ipv6", None
    private = any(address in network for network in _PRIVATE_NETWORKS[4])
    prefix = str(ipaddress.ip_network(f"{address}/24", strict=False))
    return str(address), "private" if private else "public", prefix


_OCTET = st.one_of(st.integers(0, 300).map(str), st.sampled_from(
    ["", "00", "01", "007", "0255", "1234", "+1", "-1", " 1", "1 ", "\u0663", "1e2", "0x1"]))


@given(st.lists(_OCTET, min_size=3, max_size=5).map(".".join))
def test_dotted_quad_reads_ipv4_as_ipaddress_does(text: str) -> None:
    fast = _dotted_quad(text)
    expected = _by_ipaddress(text)
    if fast is None:  # left to the general path: not an IPv4 address in ipaddress's form
        assert expected[1] != "public" and expected[1] != "private"
    else:
        assert fast == expected


@given(st.sampled_from([10, 100, 127, 169, 172, 192, 203]), st.integers(0, 255),
       st.integers(0, 255), st.integers(0, 255))
def test_dotted_quad_private_ranges_match_ipaddress(a: int, b: int, c: int, d: int) -> None:
    text = f"{a}.{b}.{c}.{d}"
    assert _dotted_quad(text) == _by_ipaddress(text)
    assert classify_network(f" {text} ") == _by_ipaddress(text)


@pytest.mark.parametrize("agent, family", [
    ("aws-cli/2.15.0 Python/3.11.6", "aws-cli"),
    ("Boto3/1.34.0 md/Botocore#1.34.0", "boto3"),
    ("APN/1.0 HashiCorp/1.0 Terraform/1.6.6", "terraform"),
    ("kubectl/v1.29.0 (linux/amd64)", "kubectl"),
    ("google-cloud-sdk gcloud/460.0.0", "gcloud"),
    ("Mozilla/5.0 (X11; Linux x86_64)", "browser"),
    ("signin.amazonaws.com", "console"),
    ("something-else/1.0", "other"),
    ("   ", "none"),
])
def test_user_agent_families(agent: str, family: str) -> None:
    assert user_agent(agent)[1] == family


@pytest.mark.parametrize("operation, expected", [
    ("Microsoft.Compute/virtualMachines/read", True),
    ("Microsoft.Compute/virtualMachines/write", False),
    ("Microsoft.Storage/storageAccounts/listKeys/action", False),
    ("google.iam.admin.v1.ListServiceAccounts", True),
    ("v1.compute.instances.insert", False),
    ("SomethingOdd", None),
])
def test_read_only_from_operation(operation: str, expected: bool | None) -> None:
    assert read_only_from_operation(operation) is expected


def test_recent_map_is_bounded_and_remembers_the_latest() -> None:
    from detector.sources.common import RecentMap

    recent = RecentMap(3)
    for key in range(10):
        recent.put(key, key * 10)
    assert len(recent) <= 6
    assert recent.get(9) == 90 and 9 in recent
    assert recent.get(0) is None and 0 not in recent


def test_recent_map_add_reports_new_keys_in_either_generation() -> None:
    """add is True once per key while the key is remembered, in the new or old half."""
    from detector.sources.common import RecentMap

    recent = RecentMap(3)
    assert [recent.add(key) for key in (1, 2, 1, 3)] == [True, True, False, True]
    assert len(recent) == 3  # the third key filled the generation: 1, 2, 3 are now old
    assert [recent.add(key) for key in (2, 4, 4, 5, 6)] == [False, True, False, True, True]
    assert 1 not in recent and recent.add(1)  # 1, 2, 3 were dropped when 4, 5, 6 filled up
    assert recent.get(5) is True

def test_s3_console_agent_is_the_console() -> None:
    assert user_agent("[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.488]")[1] == "console"
