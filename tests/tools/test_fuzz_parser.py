"""``tools/fuzz_parser.py`` judges records by the parser's own envelope keys."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from detector.sources.parser import _ENVELOPE_KEYS

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "fuzz_parser.py"


def fuzzer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_parser", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("key", sorted(_ENVELOPE_KEYS))
def test_an_object_with_an_envelope_key__no_single_record_expected(key: str) -> None:
    assert fuzzer()._plain({key: [], "eventName": "GetObject"}) is False


@pytest.mark.parametrize("wrapper", [
    {"received_messages": []},
    {"data": "bm90IGpzb24=", "messageId": "1"},
], ids=["empty-pull-response", "bare-message"])
def test_pubsub_wrapper_as_a_json_line__no_false_silent_loss(wrapper: dict) -> None:
    """The fuzzer's hand copy of the keys lacked these two: it expected each wrapper to
    be one record and reported the parser's correct reading as "silent loss"."""
    tool = fuzzer()
    data = orjson.dumps(wrapper)
    assert tool.check(data, 1 if tool._plain(wrapper) else None) is None


def test_a_plain_record__one_record_expected_and_read() -> None:
    tool = fuzzer()
    record = {"eventVersion": "1.08", "eventName": "GetObject", "eventTime":
              "2024-03-04T10:00:00Z", "eventSource": "s3.amazonaws.com", "eventID": "e1",
              "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/u"}}
    assert tool._plain(record) is True
    assert tool.check(orjson.dumps(record), 1) is None
