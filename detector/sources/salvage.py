"""Best-effort salvage of a Kubernetes audit event cut off in transport (edge case B10).

EKS audit events read from CloudWatch Logs are sometimes cut mid-string, and the rest never
arrives. The cut message stays a ``truncated`` dead letter; this module reads what its
intact prefix says, so the request can still be scored as a ``partial`` event.

The prefix is walked as JSON, not searched with patterns: a key is only taken at its place
in the event (``user.username``, not a ``username`` inside ``requestObject`` or inside an
annotation an attacker padded), and a string only when its closing quote is there. Values
that are not wanted are skipped by the json module's C scanner; one that does not end
inside the prefix is where the cut is, and the walk stops there.
"""

from __future__ import annotations

import json
import re
from typing import Any

# Where in an audit event each wanted value sits (an int is a list index).
WANTED: frozenset[tuple[Any, ...]] = frozenset({
    ("auditID",), ("verb",), ("requestURI",), ("requestReceivedTimestamp",), ("userAgent",),
    ("user", "username"), ("impersonatedUser", "username"), ("sourceIPs", 0),
    ("objectRef", "resource"), ("objectRef", "namespace"), ("objectRef", "name"),
    ("objectRef", "apiGroup"), ("objectRef", "apiVersion"), ("objectRef", "subresource"),
    ("responseStatus", "code"), ("user", "extra", "sessionName", 0),
    ("user", "extra", "accessKeyId", 0),
})
_LAST = frozenset({("sourceIPs",)})
"""Lists whose last item is wanted, kept as item 0: the API server appends the address it
saw the request come from to the client's own ``X-Forwarded-For`` entries (the whole
event's ``k8s._peer_ip`` reads the same one)."""
# Containers worth entering: every proper prefix of a wanted path.
_ENTER = frozenset(path[:n] for path in WANTED for n in range(1, len(path)))
_MAX_DEPTH = 4  # deeper than any wanted path: never entered
_CODE = ("responseStatus", "code")  # the one wanted number; every other value is a string

_SPACE = re.compile(r"[ \t\r\n]*")
_SKIP = json.JSONDecoder()  # finds where an unwanted value ends (C scanner)
_scanstring = json.decoder.scanstring  # type: ignore[attr-defined]


class _Cut(Exception):
    """The prefix ends (or stops being JSON) here: nothing after it can be read."""


def salvage_prefix(text: str) -> dict[str, Any]:
    """The wanted values found in the intact prefix of a cut JSON object, as a nested dict
    shaped like the audit event (``{"user": {"username": ...}, "sourceIPs": [...]}``)."""
    found: dict[tuple[Any, ...], Any] = {}
    start = _SPACE.match(text).end()
    if not text.startswith("{", start):
        return {}
    try:
        _walk_object(text, start + 1, (), found)
    except (_Cut, RecursionError):
        pass
    return _nest(found)


def _walk_object(text: str, pos: int, path: tuple[Any, ...], found: dict) -> int:
    pos = _SPACE.match(text, pos).end()
    if text.startswith("}", pos):
        return pos + 1
    while True:
        if not text.startswith('"', pos):
            raise _Cut
        key, pos = _string(text, pos + 1)
        pos = _SPACE.match(text, pos).end()
        if not text.startswith(":", pos):
            raise _Cut
        pos = _value(text, _SPACE.match(text, pos + 1).end(), path + (key,), found)
        pos = _SPACE.match(text, pos).end()
        if text.startswith("}", pos):
            return pos + 1
        if not text.startswith(",", pos):
            raise _Cut
        pos = _SPACE.match(text, pos + 1).end()


def _walk_array(text: str, pos: int, path: tuple[Any, ...], found: dict) -> int:
    pos = _SPACE.match(text, pos).end()
    if text.startswith("]", pos):
        return pos + 1
    index = 0
    last = path in _LAST  # every item read as item 0: the last one read stays
    items: dict[tuple[Any, ...], Any] = {} if last else found
    while True:
        pos = _value(text, pos, path + (0 if last else index,), items)
        pos = _SPACE.match(text, pos).end()
        if text.startswith("]", pos):
            if last:  # only a whole list: a cut one may have lost its last item
                found.update(items)
            return pos + 1
        if not text.startswith(",", pos):
            raise _Cut
        pos = _SPACE.match(text, pos + 1).end()
        index += 1


def _value(text: str, pos: int, path: tuple[Any, ...], found: dict) -> int:
    """Read or skip the value at ``pos``; returns where it ends."""
    if path in _ENTER and len(path) < _MAX_DEPTH:
        if text.startswith("{", pos):
            return _walk_object(text, pos + 1, path, found)
        if text.startswith("[", pos):
            return _walk_array(text, pos + 1, path, found)
    if path in WANTED and text.startswith('"', pos):
        found[path], end = _string(text, pos + 1)
        return end
    try:
        value, end = _SKIP.raw_decode(text, pos)
    except (ValueError, RecursionError):
        raise _Cut from None
    if end >= len(text):  # a number running into the cut may have lost digits
        raise _Cut
    if path == _CODE and type(value) is int:
        found[path] = value
    return end


def _string(text: str, pos: int) -> tuple[str, int]:
    try:
        return _scanstring(text, pos, True)
    except ValueError:  # no closing quote: the cut is inside this string
        raise _Cut from None


def _nest(found: dict[tuple[Any, ...], Any]) -> dict[str, Any]:
    """Paths back to the event's shape; every wanted list index is 0, a one-item list."""
    out: dict[str, Any] = {}
    for path, value in found.items():
        if path[-1] == 0:
            path, value = path[:-1], [value]
        node = out
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return out
