"""Small helpers shared by the models: stable value hashes, time wording, the blob codec.

Values (actions, resources, networks …) are kept as 32-bit CRC hashes, not strings: state
stays small and its size does not depend on how long an ARN is. A false "known" needs a
collision with one of at most a few hundred kept hashes (about 1 in 10 million per lookup),
which is an acceptable price for a bounded profile.

The blob format is a small container: ``MAGIC``, a format version (uint16), the length of an
orjson header, the header (plain dicts, lists, numbers, strings), then the raw bytes of every
``array.array`` the header refers to as ``{"@a": [typecode, offset, count]}``. No pickle.
"""

from __future__ import annotations

import array
import struct
import zlib
from typing import Any

import orjson

from detector.errors import StateError

_HASH_CACHE_MAX = 200_000
MASK32 = 0xFFFFFFFF
LEARNING, THIN, LEARNED = 0, 1, 2
"""Where an identity stands (``IdentityProfile._stage``, ``scored_stage``)."""


class _HashCache(dict):
    """Value → CRC-32, filled on first use and cleared whole when full (bounded)."""

    __slots__ = ()

    def __missing__(self, value: str) -> int:
        if len(self) >= _HASH_CACHE_MAX:
            self.clear()
        found = self[value] = zlib.crc32(value.encode("utf-8", "surrogatepass"))
        return found


_HASH_CACHE = _HashCache()
vhash = _HASH_CACHE.__getitem__
"""Stable 32-bit hash of a value (same in every process, unlike ``hash``): the cache's own
lookup, so a known value costs one C call (several models hash the same values per event)."""


def pair_term(left: int) -> int:
    """The left value's term of ``pair_hash``, worked out once when one left value pairs
    with several right ones (an action with its network and its resource)."""
    return (left * 0x01000193) ^ 0x5BD1E995


def pair_with(term: int, right: int) -> int:
    """``pair_hash(left, right)`` from ``pair_term(left)``."""
    return (term ^ (right * 0x9E3779B1 >> 7)) & MASK32


def pair_hash(left: int, right: int) -> int:
    """Hash of an ordered pair of hashed values."""
    return pair_with(pair_term(left), right)


def span_words(seconds: float) -> str:
    """'41 days', '5 hours', '12 minutes' for a span of event time."""
    seconds = max(0.0, seconds)
    if seconds >= 2 * 86400:
        return f"{int(seconds // 86400)} days"
    if seconds >= 2 * 3600:
        return f"{int(seconds // 3600)} hours"
    if seconds >= 120:
        return f"{int(seconds // 60)} minutes"
    whole = int(seconds)
    return "1 second" if whole == 1 else f"{whole} seconds"


def clamp01(value: float) -> float:
    """Clip to [0, 1]; NaN becomes 0.0 so no score is ever NaN."""
    if value != value:  # NaN
        return 0.0
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value


MAGIC = b"NHIP"
_HEAD = struct.Struct("<4sHI")


def pack_blob(version: int, state: dict[str, Any]) -> bytes:
    """Serialise a plain state dict (arrays allowed) into a versioned blob."""
    chunks: list[bytes] = []
    offset = [0]

    def encode_array(obj: Any) -> Any:
        if isinstance(obj, array.array):
            raw = obj.tobytes()
            chunks.append(raw)
            ref = {"@a": [obj.typecode, offset[0], len(obj)]}
            offset[0] += len(raw)
            return ref
        raise TypeError(f"cannot serialise {type(obj).__name__} in a model state")

    header = orjson.dumps(state, default=encode_array)
    return _HEAD.pack(MAGIC, version, len(header)) + header + b"".join(chunks)


def unpack_blob(data: bytes, version: int, what: str) -> dict[str, Any]:
    """Inverse of ``pack_blob``; a wrong magic or version raises ``StateError``."""
    if len(data) < _HEAD.size:
        raise StateError(f"{what}: blob of {len(data)} bytes is too short to be a state")
    magic, found, length = _HEAD.unpack_from(data)
    if magic != MAGIC:
        raise StateError(f"{what}: not a serialised model state (bad magic {magic!r})")
    if found != version:
        raise StateError(
            f"{what}: state format version {found} cannot be loaded by this build, which "
            f"reads version {version}; rebuild the state by replaying the logs"
        )
    start = _HEAD.size
    if start + length > len(data):
        raise StateError(f"{what}: header of {length} bytes runs past the blob")
    try:
        header = orjson.loads(data[start : start + length])
    except orjson.JSONDecodeError as err:
        raise StateError(f"{what}: corrupt state header: {err}") from err
    body = memoryview(data)[start + length :]
    nested = (dict, list)

    def decode(obj: Any) -> Any:
        """Replace array references in place (plain values are left untouched)."""
        if type(obj) is dict:
            if len(obj) == 1 and "@a" in obj:
                code, off, count = obj["@a"]
                if type(off) is not int or type(count) is not int or off < 0 or count < 0:
                    raise ValueError(f"bad array reference {obj['@a']!r}")
                arr = array.array(code)
                raw = body[off : off + count * arr.itemsize]
                if len(raw) != count * arr.itemsize:
                    raise ValueError(f"array of {count} {code!r} items runs past the blob")
                arr.frombytes(raw)
                return arr
            for key, item in obj.items():
                if type(item) in nested:
                    obj[key] = decode(item)
        else:
            for i, item in enumerate(obj):
                if type(item) in nested:
                    obj[i] = decode(item)
        return obj

    if not isinstance(header, dict):
        raise StateError(f"{what}: corrupt state header (not a mapping)")
    try:
        return decode(header)
    except (ValueError, TypeError, KeyError, RecursionError) as err:
        raise StateError(f"{what}: corrupt state body: {err}") from err
