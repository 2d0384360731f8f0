"""Stolen instance credentials without a baseline: one EC2 instance's role session seen
from two networks within the burst window is ``aws.instance_credentials_elsewhere``; the
instance's own calls (one address, VPC endpoints, services on its behalf, dual-stack
endpoints) and other instances of the same role are not."""

from __future__ import annotations

from typing import Any

import orjson

from detector.engine import Detector
from detector.sources import ListDeadLetters, Parser
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Tally, as_tallies
from tests.detector.sources_helpers import record

ACCOUNT = "123456789012"
RULE = "aws.instance_credentials_elsewhere"


def instance_call(instance: str, address: str, second: int, **extra: Any) -> dict:
    fields = {"eventName": "DescribeInstances", "eventSource": "ec2.amazonaws.com", **extra}
    identity = {"type": "AssumedRole", "accountId": ACCOUNT,
                "principalId": f"AROAEXAMPLE:{instance}",
                "arn": f"arn:aws:sts::{ACCOUNT}:assumed-role/web-ec2/{instance}",
                "accessKeyId": "ASIAEXAMPLE0000001",
                "sessionContext": {"sessionIssuer": {
                    "type": "Role", "arn": f"arn:aws:iam::{ACCOUNT}:role/web-ec2"},
                    "ec2RoleDelivery": "2.0"}}
    return record(second, eventTime=f"2024-03-04T10:{second // 60:02d}:{second % 60:02d}Z",
                  userIdentity=identity, sourceIPAddress=address, userAgent="aws-cli/2.0",
                  **fields)


def events_of(*records: dict) -> list:
    parser = Parser(stats=RunStats(), dead_letters=ListDeadLetters())
    return parser.feed(b"".join(orjson.dumps(r) + b"\n" for r in records), "t") + \
        parser.finish()


def detectors_of(*records: dict) -> list[str]:
    detector = Detector({}, stats=RunStats())
    alerts = [a for e in events_of(*records) for a in detector.process(e)]
    return [d for a in alerts for d in a.detectors]


def test_each_call_of_an_instance_session_is_tallied_per_instance() -> None:
    events = events_of(instance_call("i-0abc1234", "3.225.16.109", 0),
                       instance_call("i-0abc1234", "10.0.1.5", 1))
    tallies = [as_tallies(e.attributes.get(ATTRIBUTE)) for e in events]
    assert [[(t.rule, t.values, t.scope, t.limit) for t in found] for found in tallies] == [
        [(RULE, ("public 3.225.16.0/24",), "i-0abc1234/4", 2)],
        [(RULE, ("private 10.0.0.0/16",), "i-0abc1234/4", 2)],
    ]


def test_calls_that_say_nothing_about_the_network_are_not_tallied() -> None:
    events = events_of(
        instance_call("i-0abc1234", "10.0.1.5", 0, vpcEndpointId="vpce-1"),
        instance_call("i-0abc1234", "AWS Internal", 1),
        instance_call("i-0abc1234", "ssm.amazonaws.com", 2),
        record(3, sourceIPAddress="3.225.16.109"),  # an IAM user's key: no instance
    )
    assert [e.attributes.get(ATTRIBUTE) for e in events] == [None] * 4


def test_one_session_from_two_networks_alerts() -> None:
    """Stratus ec2-steal-instance-credentials: the instance's agent from its own public
    address, then the stolen credentials from the attacker's host."""
    found = detectors_of(instance_call("i-0abc1234", "3.225.16.109", 0),
                         instance_call("i-0abc1234", "192.168.10.20", 6))
    assert found == [f"technique.{RULE}"]


def test_the_alert_names_both_networks() -> None:
    detector = Detector({}, stats=RunStats())
    alerts = [a for e in events_of(instance_call("i-0abc1234", "3.225.16.109", 0),
                                   instance_call("i-0abc1234", "45.155.205.7", 30))
              for a in detector.process(e)]
    sentence = alerts[0].to_native()["signals"][0]["sentence"]
    assert sentence == ("2 distinct networks for the credentials of instance i-0abc1234 "
                        "within 10 minutes: public 3.225.16.0/24, public 45.155.205.0/24")


def test_the_instance_at_work_is_quiet() -> None:
    """Its own address again and again, VPC endpoints alongside, an IPv6 address of a
    dual-stack endpoint, and a second instance of the same role elsewhere."""
    calls = [instance_call("i-0abc1234", "3.225.16.109", n) for n in range(0, 300, 20)]
    calls += [instance_call("i-0abc1234", "10.0.1.5", 301, vpcEndpointId="vpce-1"),
              instance_call("i-0abc1234", "2600:1f18::5", 302),
              instance_call("i-0def5678", "52.45.102.28", 303)]
    assert detectors_of(*calls) == []


def test_two_networks_further_apart_than_the_window_are_quiet() -> None:
    """An instance stopped and started gets a new public address: by then the old one is
    out of the window."""
    assert detectors_of(instance_call("i-0abc1234", "3.225.16.109", 0),
                        instance_call("i-0abc1234", "54.1.2.3", 1200)) == []


def test_scope_and_limit_cross_the_wire() -> None:
    tally = Tally(RULE, "high", ("T1552.005",), "networks", ("public 3.225.16.0/24",),
                  scope="i-0abc1234/4", limit=2)
    assert as_tallies(orjson.loads(orjson.dumps([tally]))) == [tally]
    odd = {"rule": RULE, "severity": "high", "noun": "n", "values": ["v"], "limit": 1}
    assert as_tallies([odd])[0].limit == 0  # a limit below two is no limit


def test_an_instance_acting_on_itself_names_one_resource_for_the_whole_fleet() -> None:
    """The SSM agent of each instance reports on itself with the instance's id: a role
    whose instances are replaced must not see a first access at every replacement."""
    def agent(instance: str, target: str, second: int) -> dict:
        return instance_call(instance, "10.0.1.5", second,
                             eventName="UpdateInstanceInformation",
                             eventSource="ssm.amazonaws.com",
                             requestParameters={"instanceId": target})

    events = events_of(agent("i-0abc1234", "i-0abc1234", 0),
                       agent("i-0def5678", "i-0def5678", 1),
                       agent("i-0abc1234", "i-0def5678", 2))
    assert [e.resource for e in events] == ["{own-instance}", "{own-instance}", "i-0def5678"]
    named = events_of(agent("i-0abc1234", "arn:aws:ec2:us-east-1:1:instance/i-0abc1234", 3),
                      agent("i-0abc1234", "backup-i-0abc1234", 4),
                      agent("i-0abc1234", "i-0abc1234567", 5),
                      agent("i-0abc1234", "prod/i-0abc1234/db", 6))
    assert [e.resource for e in named] == ["arn:aws:ec2:us-east-1:1:instance/{own-instance}",
                                           "backup-i-0abc1234", "i-0abc1234567",
                                           "prod/i-0abc1234/db"]
    assert [e.attributes["instance_id"] for e in events] == ["i-0abc1234", "i-0def5678",
                                                            "i-0abc1234"]
