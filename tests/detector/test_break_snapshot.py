"""A snapshot whose checksum is right but whose inventory has wrong-typed fields (written
by another build, or edited and re-signed) is refused when loaded (exit 2).

Found by attacking ``--load-state``: such a snapshot loaded, and the replay then failed
with a traceback at that identity's first event (``events: "x"`` gave a ``TypeError``,
``credentials: [1]`` an ``AttributeError``), after part of the run was done.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.detector.test_break_replay_outputs import log_file  # noqa: F401 (fixture)
from tests.replay.logs import run_replay

DIGEST = 32


def resigned(snapshot: bytes, edit: Callable[[dict], None]) -> bytes:
    """``snapshot`` with ``edit`` applied to every identity's non-profile state (inventory,
    alerts ...), signed again so that only the content checks can refuse it."""
    body = snapshot[:-DIGEST]
    (header_len,) = struct.unpack(">I", body[10:14])
    pos = 14 + header_len
    (peers_len,) = struct.unpack(">I", body[pos:pos + 4])
    pos += 4 + peers_len
    out = [body[:pos]]
    while pos < len(body):
        key_len, blob_len = struct.unpack(">II", body[pos:pos + 8])
        key = body[pos + 8:pos + 8 + key_len]
        blob = body[pos + 8 + key_len:pos + 8 + key_len + blob_len]
        pos += 8 + key_len + blob_len
        (profile_len,) = struct.unpack(">I", blob[6:10])
        rest = orjson.loads(blob[10 + profile_len:])
        edit(rest)
        blob = blob[:10 + profile_len] + orjson.dumps(rest)
        out.append(struct.pack(">II", len(key), len(blob)) + key + blob)
    new = b"".join(out)
    return new + hashlib.sha256(new).digest()


def with_inventory(snapshot: bytes, field: str, value: object) -> bytes:
    """``snapshot`` with ``field`` of every identity's inventory set to ``value``, signed."""
    return resigned(snapshot, lambda rest: rest["inventory"].__setitem__(field, value))


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("events", "x", "inventory events has the wrong type: 'x'"),
    ("credentials", [1], "inventory credentials has the wrong type: [1]"),
    ("credentials", {"AKIA1": "x"},
     "inventory credential 'AKIA1' is not [type, first, last, events]"),
    ("first_seen", "x", "inventory first_seen has the wrong type: 'x'"),
    ("kind", None, "inventory kind has the wrong type: None"),
])
def test_wrong_typed_inventory__refused_at_load(log_file, tmp_path: Path, capsys,  # noqa: F811
                                                field, value, problem):
    state = tmp_path / "state.snap"
    assert run_replay([log_file], tmp_path, "--save-state", str(state))[0] == 0
    bad = tmp_path / "bad.snap"
    bad.write_bytes(with_inventory(state.read_bytes(), field, value))
    capsys.readouterr()
    code = run_replay([log_file], tmp_path, "--load-state", str(bad))[0]
    assert code == 2
    assert capsys.readouterr().err == (
        f"nhi-detector replay: state snapshot {bad} refused: identity "
        f"'etl@p1.iam.gserviceaccount.com': identity state is corrupt (TypeError: {problem})\n"
    )


def test_intact_snapshot__loads(log_file, tmp_path: Path):  # noqa: F811
    state = tmp_path / "state.snap"
    assert run_replay([log_file], tmp_path, "--save-state", str(state))[0] == 0
    code, summary = run_replay([log_file], tmp_path, "--load-state", str(state))
    assert code == 0
    assert summary["identities"]["tracked"] == 1
