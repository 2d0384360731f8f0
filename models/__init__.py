"""Incremental per-identity models: each turns one aspect of an identity's history into
``Signal``s. Small, deterministic for a seed, serialisable with a version tag, bounded.

Reading order:

1. ``base`` — the ``Signal`` contract (score in [0, 1], plain sentence, value);
2. ``settings`` — every knob, its default and why;
3. ``profile`` — ``IdentityProfile``: the score-then-learn loop, learning period,
   poisoning policy, state blob and size cap;
4. the models it runs, each with its scoring and hold-out policy in its docstring:
   ``novelty`` (on ``table``), ``volume`` (windows; uses ``multivariate``), ``schedule``,
   ``dormancy``, ``credential``;
5. ``peers`` — the shared ``PeerIndex``; ``context`` and ``common`` — plumbing.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from importlib.machinery import EXTENSION_SUFFIXES
from importlib.util import spec_from_file_location

COMPILED_MODULES = ("context", "table", "novelty", "volume", "profile", "dormancy",
                    "schedule", "credential", "multivariate", "daily")
"""The modules the optional compiled build makes from their ``.py`` and ``.pxd`` files
(``setup.py``; docs/architecture.md, "Compiled build")."""

_HERE = os.path.dirname(os.path.abspath(__file__))
_RECORD = os.path.join(_HERE, "_compiled.json")


def sources_crc(name: str) -> int:
    """CRC-32 of a compiled module's ``.py`` then ``.pxd``, as ``setup.py`` records it."""
    crc = 0
    for ext in (".py", ".pxd"):
        with open(os.path.join(_HERE, name + ext), "rb") as handle:
            crc = zlib.crc32(handle.read(), crc)
    return crc


def _extension(name: str) -> str | None:
    """The compiled module file of ``models.<name>`` beside its source, if any."""
    for suffix in EXTENSION_SUFFIXES:
        path = os.path.join(_HERE, name + suffix)
        if os.path.exists(path):
            return path
    return None


def _choose() -> tuple[bool, str]:
    """Whether the compiled modules load, and the words that say which build runs.

    They load only when the build recorded the very sources beside them: a ``.py`` edited
    (or checked out) since would otherwise be shadowed by a compiled module of its old
    text. ``NHI_PURE_PYTHON=1`` runs pure Python whatever is installed."""
    if not os.path.exists(_RECORD):
        return False, "pure Python"
    missing = [name for name in COMPILED_MODULES if not _extension(name)]
    if missing:
        return False, f"pure Python (compiled build incomplete: no {', '.join(missing)})"
    if os.environ.get("NHI_PURE_PYTHON") == "1":
        return False, "pure Python (NHI_PURE_PYTHON=1; a compiled build is installed)"
    try:
        with open(_RECORD, encoding="utf-8") as handle:
            record = json.load(handle)
        changed = [name for name in COMPILED_MODULES if record.get(name) != sources_crc(name)]
    except (OSError, ValueError, AttributeError) as err:
        return False, f"pure Python (compiled build record unreadable: {err})"
    if changed:
        return False, ("pure Python (sources changed since the compiled build: "
                       f"{', '.join(changed)}; rebuild with pip install -e .)")
    return True, "compiled (Cython)"


class _SourceFirst:
    """Import hook of a pure Python run beside a compiled build: loads the compiled
    modules from their ``.py`` files (an extension module would win otherwise)."""

    @staticmethod
    def find_spec(fullname: str, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in COMPILED_MODULES:
            return None
        return spec_from_file_location(fullname, os.path.join(_HERE, name + ".py"))


COMPILED, BUILD = _choose()
"""Whether the compiled models run, and the line ``nhi-detector --version`` prints."""

if not COMPILED:  # also when compiled modules lie here without their build record
    sys.meta_path.insert(0, _SourceFirst)
