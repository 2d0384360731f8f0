"""streams.app.raised_by_store: an error is told to come from Faust's table store by where
it was raised, so a store failure inside Faust's own callbacks (the offset it stores for
each acknowledged changelog record) stops the worker like one in our own writes."""

from __future__ import annotations

import pytest
from faust.stores.memory import Store

from streams.app import raised_by_store


class Unwritable:
    """A store whose data cannot be cleared: the failure happens inside faust/stores/."""
    data = None


def failing_put(key: bytes, value: bytes) -> None:
    raise OSError(1, "Operation not permitted")


def test_error_raised_in_a_faust_store__is_the_store() -> None:
    with pytest.raises(AttributeError) as caught:
        Store._clear(Unwritable())
    assert raised_by_store(caught.value) is True


def test_error_raised_elsewhere__is_not_the_store() -> None:
    with pytest.raises(OSError) as caught:
        failing_put(b"k", b"v")
    assert raised_by_store(caught.value) is False
    assert raised_by_store(Exception("never raised")) is False


# -- streams.app.state_table: the store's failures at an assignment and in recovery -------

class Stopped(Exception):
    """What the test's ``failed`` raises instead of ending the process."""


@pytest.fixture
def table_and_calls():
    import faust

    from streams.app import state_table

    calls: list[tuple[str, BaseException]] = []

    def failed(action: str, err: BaseException):
        calls.append((action, err))
        raise Stopped(action)

    app = faust.App("store-errors-test", store="memory://", Table=state_table(failed))
    table = app.Table("state", key_type=bytes, value_type=bytes)
    return table, calls


def no_space(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_state_table__a_recovery_write_that_fails_stops_the_worker(table_and_calls,
                                                                   monkeypatch) -> None:
    """Faust's recovery loop logged such a failure as a WARNING and went on without the
    batch; the table stops the worker instead."""
    table, calls = table_and_calls
    monkeypatch.setattr(table.data, "apply_changelog_batch", no_space)
    with pytest.raises(Stopped, match=r"written \(table recovery\)"):
        table.apply_changelog_batch([])
    assert [(action, str(err)) for action, err in calls] == [
        ("written (table recovery)", "[Errno 28] No space left on device")]


def test_state_table__a_store_that_cannot_be_opened_stops_the_worker(table_and_calls,
                                                                     monkeypatch) -> None:
    import asyncio

    table, calls = table_and_calls

    async def corrupt(*args, **kwargs):
        raise Exception("Corruption: CURRENT file corrupted")

    monkeypatch.setattr(table.data, "on_rebalance", corrupt)
    with pytest.raises(Stopped, match="opened"):
        asyncio.run(table.on_rebalance(set(), set(), set(), 1))
    assert [action for action, _ in calls] == ["opened"]


def test_state_table__faust_s_rebalance_signals_pass_through(table_and_calls,
                                                             monkeypatch) -> None:
    import asyncio

    from faust.tables.recovery import RebalanceAgain

    table, calls = table_and_calls

    async def again(*args, **kwargs):
        raise RebalanceAgain()

    monkeypatch.setattr(table.data, "on_rebalance", again)
    with pytest.raises(RebalanceAgain):
        asyncio.run(table.on_rebalance(set(), set(), set(), 1))
    assert calls == []


def test_state_table__reading_the_persisted_offset_fails(table_and_calls,
                                                         monkeypatch) -> None:
    table, calls = table_and_calls
    monkeypatch.setattr(table.data, "persisted_offset", no_space)
    with pytest.raises(Stopped, match="read"):
        table.persisted_offset(("t", 0))
    assert [action for action, _ in calls] == ["read"]
