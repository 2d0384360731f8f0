"""The table census behind the identity gauges, without a broker."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.app import table_census


class Table:
    """What the census uses of a Faust table: ``items()``, and ``data.data`` for the
    memory store's dict."""

    def __init__(self, items: dict[bytes, bytes], memory_store: bool = False) -> None:
        self._items = items
        self.data = type("Store", (), {"data": items if memory_store else None})()

    def items(self) -> Any:
        return self._items.items()


STATES = {b"a": b"12", b"b": b"345", b"c": b"6", b"d": b"7890", b"e": b""}


def test_counts_identities_in_the_table_or_in_memory_and_the_bytes_of_the_rest() -> None:
    # a, b in both; c, d, e only in the table; x only in memory
    counted = asyncio.run(table_census(Table(STATES), {"a", "b", "x"}, chunk=2))
    assert counted == (6, 5)


def test_the_scan_gives_the_event_loop_a_turn_between_chunks() -> None:
    async def run() -> list[str]:
        order: list[str] = []

        class Watched(Table):
            def items(self) -> Any:
                for item in super().items():
                    order.append("read")
                    yield item

        async def other() -> None:
            order.append("other")

        census = asyncio.ensure_future(table_census(Watched(STATES), set(), chunk=2))
        asyncio.ensure_future(other())
        await census
        return order

    assert asyncio.run(run()) == ["read", "read", "other", "read", "read", "read"]


def test_a_rebalance_during_the_scan_gives_no_figures() -> None:
    stops = iter([False, True])
    counted = asyncio.run(table_census(Table(STATES), set(), lambda: next(stops), chunk=2))
    assert counted is None


def test_the_memory_store_may_change_while_it_is_counted() -> None:
    async def run() -> tuple[int, int] | None:
        states = dict(STATES)
        census = asyncio.ensure_future(
            table_census(Table(states, memory_store=True), set(), chunk=2))
        await asyncio.sleep(0)
        states[b"new"] = b"later"  # written between two chunks
        return await census

    assert asyncio.run(run()) == (5, 10)
