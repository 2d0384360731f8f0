"""Group membership from answered heartbeats (streams.membership; no broker needed)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from streams.membership import Membership


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_membership_is_current_only_within_the_window_after_an_answered_heartbeat(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    membership = Membership(session_timeout=10.0, heartbeat_interval=3.0, clock=clock)
    assert membership.current() is False  # no heartbeat answered yet
    membership.confirm(100.0)
    clock.now = 106.9
    assert membership.current() is True
    membership.confirm(95.0)  # an older beat answered late moves nothing back
    assert membership.confirmed_at == 100.0
    clock.now = 107.0  # 10 s session minus one 3 s heartbeat interval
    with caplog.at_level(logging.INFO, logger="streams.membership"):
        assert membership.current() is False
        assert membership.current() is False
        membership.confirm(107.5)
        assert membership.current() is True
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert "no heartbeat answered for 7.0 s (the group drops a member 10.0 s" in said[0]
    assert "confirmed" in said[1]


def watched(answers: list[bool], clock: Clock, freeze: float) -> tuple[Membership, object]:
    """A membership watching a fake aiokafka consumer whose coordinator answers each
    heartbeat with the next of ``answers``, ``freeze`` seconds after it was sent."""

    async def do_heartbeat() -> bool:
        clock.now += freeze
        return answers.pop(0)

    consumer = SimpleNamespace(_coordinator=None)

    async def start() -> None:
        consumer._coordinator = SimpleNamespace(_do_heartbeat=do_heartbeat)

    consumer.start = start
    membership = Membership(10.0, 3.0, clock=clock)
    membership.watch(consumer)
    asyncio.run(consumer.start())
    return membership, consumer._coordinator


def test_a_heartbeat_counts_from_when_it_was_sent() -> None:
    # answered after a 20 s freeze: the broker may have dropped the member meanwhile, so
    # the answer proves membership only as of the send
    clock = Clock()
    membership, coordinator = watched([True], clock, freeze=20.0)
    assert asyncio.run(coordinator._do_heartbeat()) is True
    assert membership.confirmed_at == 100.0 and clock.now == 120.0
    assert membership.current() is False


def test_only_answered_heartbeats_confirm() -> None:
    clock = Clock()
    membership, coordinator = watched([False, True], clock, freeze=0.5)
    assert asyncio.run(coordinator._do_heartbeat()) is False  # dropped: unknown member
    assert membership.confirmed_at is None and membership.current() is False
    assert asyncio.run(coordinator._do_heartbeat()) is True
    assert membership.confirmed_at == 100.5 and membership.current() is True


def test_a_consumer_without_a_group_is_left_alone() -> None:
    consumer = SimpleNamespace(_coordinator=None)

    async def start() -> None:
        consumer._coordinator = SimpleNamespace()  # aiokafka's NoGroupCoordinator

    consumer.start = start
    Membership(10.0, 3.0).watch(consumer)
    asyncio.run(consumer.start())
    assert not hasattr(consumer._coordinator, "_do_heartbeat")
