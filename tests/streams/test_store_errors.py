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
