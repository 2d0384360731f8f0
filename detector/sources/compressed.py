"""Inputs that are neither plain UTF-8 nor gzip: told by their first bytes, decoded here.

``parser`` judges gzip itself (members, cut files, bombs) but inflates it with this
module's ``inflate``, the one multi-stream loop of every format. Other containers a user gets
logs in are read with the standard library when it can, and otherwise refused with a
dead letter that names the format and the command that makes it readable, so a folder of
``.zst`` files never vanishes as "not a log file":

- bzip2 (``BZh``) and xz (``FD 37 7A 58 5A 00``): decompressed, every stream of a
  multi-stream file, at most the parser's ``max_decompressed_bytes`` (a bomb stops there);
- zstd (``28 B5 2F FD``): decompressed where Python has ``compression.zstd`` (3.14 on),
  else an ``unsupported_compression`` dead letter saying how to decompress it;
- text with a UTF-16 or UTF-32 byte-order mark (Windows tools write it): decoded to UTF-8,
  or a ``bad_encoding`` dead letter when it does not decode.
"""

from __future__ import annotations

import bz2
import codecs
import lzma
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

try:  # the standard library has zstd from Python 3.14
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:
    _zstd = None
ZSTD_READABLE = _zstd is not None

BZIP2, XZ, ZSTD, UTF16, UTF32 = "bzip2", "xz", "zstd", "UTF-16", "UTF-32"
# The first byte of every input this module reads: one look keeps JSON off this path.
FIRST_BYTES = frozenset(bytes([byte]) for byte in b"B\xfd(\xff\xfe\x00")
# A bzip2 stream: "BZh", the block size digit, then a block's or the end's magic number.
_BZIP2 = re.compile(rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)")
_BOMS = ((codecs.BOM_UTF32_LE, UTF32), (codecs.BOM_UTF32_BE, UTF32),
         (codecs.BOM_UTF16_LE, UTF16), (codecs.BOM_UTF16_BE, UTF16))
ZSTD_HINT = ("input is zstd-compressed, which this Python's standard library cannot read "
             "(it can from Python 3.14): decompress it first, e.g. `zstd -d FILE` or "
             "`zstdcat FILE | nhi-detector replay -`")

Problem = tuple[str, str]  # dead-letter reason and message


def kind_of(head: bytes) -> str | None:
    """The format the first bytes of an input announce, or ``None`` (JSON, gzip, text)."""
    if head[:1] not in FIRST_BYTES:
        return None
    if _BZIP2.match(head):
        return BZIP2
    if head[:6] == b"\xfd7zXZ\x00":
        return XZ
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return ZSTD
    return next((name for bom, name in _BOMS if head.startswith(bom)), None)


def decode(data: bytes, kind: str, budget: int) -> tuple[bytes | None, Problem | None]:
    """``data`` (of ``kind_of``'s ``kind``) as UTF-8 JSON text, and the problem to
    dead-letter if any. With a problem the bytes are what could be kept (the whole lines
    before a cut), or ``None``."""
    if kind in (UTF16, UTF32):
        try:  # the codec reads the byte-order mark and drops it
            return data.decode(kind.lower().replace("-", "")).encode(), None
        except UnicodeDecodeError as err:
            return None, ("bad_encoding", f"input has a {kind} byte-order mark but is not "
                          f"{kind} text ({err.reason} at byte {err.start}); save it as "
                          "UTF-8")
    if kind == ZSTD and _zstd is None:
        return None, ("unsupported_compression", ZSTD_HINT)
    make: Any = {BZIP2: bz2.BZ2Decompressor, XZ: lzma.LZMADecompressor}.get(kind) or \
        _zstd.ZstdDecompressor
    return _inflate(data, make, kind, budget)


def _inflate(data: bytes, make: Any, kind: str, budget: int
             ) -> tuple[bytes | None, Problem | None]:
    """Every stream of ``data`` (tools such as pbzip2 write several), never more than
    ``budget`` bytes out; xz pads streams with zero bytes, which are skipped."""
    done = inflate(data, make, budget, (OSError, EOFError, ValueError, lzma.LZMAError),
                   lambda rest: rest.lstrip(b"\x00"))
    if done.error is not None:
        return _kept(done.parts), ("bad_compression", f"{kind} stream is corrupt: "
                                   f"{done.error}")
    if done.over:
        return None, ("decompression_limit", f"{kind} input inflates beyond the "
                      f"{budget:,}-byte limit for one payload and was not parsed")
    if done.cut is not None:
        return _kept(done.parts + done.cut), ("bad_compression", f"{kind} stream ends "
                                              "early; the rest of the file is lost")
    return b"".join(done.parts), None


STEP = 64 * 1024 * 1024  # output asked of a decompressor at a time


@dataclass(slots=True)
class Inflated:
    """What ``inflate`` got from an input: the output of its whole streams, and how it
    stopped (at most one of ``error``, ``over``, ``cut`` set; else ``rest`` is the input
    left after the last stream, empty or not a stream)."""

    parts: list[bytes] = field(default_factory=list)
    size: int = 0  # bytes in ``parts``
    streams: int = 0  # whole streams inflated
    error: Exception | None = None  # a stream is corrupt
    over: bool = False  # the output passed the budget
    cut: list[bytes] | None = None  # the output of a stream that ends early
    rest: bytes = b""


def inflate(data: bytes, make: Callable[[], Any], budget: int,
            errors: tuple[type[Exception], ...],
            after: Callable[[bytes], bytes | None]) -> Inflated:
    """Inflate the streams of ``data`` one after another, a new decompressor from ``make``
    for each (zlib, bz2, lzma and zstd decompressors share the calls used here), never
    holding more than ``budget`` bytes of output and one ``STEP``. ``after`` turns the
    bytes that follow a stream into the next stream's input (``b""``: nothing left), or
    gives ``None`` when they are no stream: the loop stops and leaves them in ``rest``
    for the caller to judge. ``errors``: the decompressor's exceptions for bad input."""
    done = Inflated(rest=data)
    while done.rest:
        decomp = make()
        try:
            out = _stream(decomp, done.rest, budget - done.size)
        except errors as err:
            done.error = err
            return done
        if out is None:
            done.over = True
            return done
        if not decomp.eof:
            done.cut = out
            return done
        done.parts += out
        done.size += sum(map(len, out))
        done.streams += 1
        following = after(decomp.unused_data)
        if following is None:
            done.rest = decomp.unused_data
            return done
        done.rest = following
    return done


def _stream(decomp: Any, data: bytes, budget: int) -> list[bytes] | None:
    """One stream's output, in steps so that a bomb is refused (``None``) once it passes
    ``budget`` bytes, holding no more than that and one step. zlib hands back the input
    it did not read yet (``unconsumed_tail``); the others keep it and are called with no
    new input."""
    parts: list[bytes] = []
    size = 0
    while True:
        out = decomp.decompress(data, STEP)
        size += len(out)
        if size > budget:
            return None
        parts.append(out)
        data = getattr(decomp, "unconsumed_tail", b"")
        if decomp.eof or (not data and len(out) < STEP):
            return parts


def _kept(parts: list[bytes]) -> bytes | None:
    """The whole lines inflated before a stream failed (JSON lines survive a cut)."""
    data = b"".join(parts)
    cut = data.rfind(b"\n")
    return data[:cut + 1] if cut >= 0 else None
