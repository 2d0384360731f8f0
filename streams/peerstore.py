"""The worker's peer index across restarts: one file in its store directory.

Each identity's baselines live in the state table and its changelog, so a restarted worker
recovers them. The peer index (``models.peers``: which values and egress networks an
identity's peers use, by peer group and tenant) is shared by the identities a worker
processes and lived only in memory: after a restart it was empty, and the first events
of instance credentials behind a shared NAT gateway, or of a network every peer uses,
scored as new. An SRE trial saw four alerts within a second of a restarted worker's
``ready`` that no uninterrupted run raised.

The worker now writes the index to ``<data dir>/<app id>/peers.bin`` (beside the state
store, per app id: another app's index in the same data directory is not this one's) every
``SAVE_INTERVAL_S`` seconds and when it stops, through a temporary file (a crash never
leaves half of one), and reads it at start. After SIGKILL it starts with the index of at
most ``SAVE_INTERVAL_S`` before the crash, which the events read again fill in. A file that
cannot be read (another build's format, damaged) is said in one WARNING and the worker
starts with an empty index, as before; a warm start (``--load-state``, applied once)
replaces it with the snapshot's. Each worker keeps its own: its data directory is its own
(``streams.datadir``), and the index describes the identities it has processed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from detector.errors import SinkError, StateError

log = logging.getLogger(__name__)

PEERS_FILE = "peers.bin"
SAVE_INTERVAL_S = 30.0


def peers_path(store_dir: Path | str) -> Path:
    return Path(store_dir) / PEERS_FILE


def load_peers(store_dir: Path | str, detector: Any) -> bool:
    """Put the saved index into ``detector``; False (and the index left as it is) when
    there is none or it cannot be read."""
    from detector.engine import DECODE_ERRORS
    from models.peers import PeerIndex

    path = peers_path(store_dir)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as err:
        log.warning("cannot read the peer index %s (%s): starting with an empty one",
                    path, err.strerror or err)
        return False
    try:
        peers = PeerIndex.from_bytes(data, detector.model_settings)
    except (StateError, *DECODE_ERRORS) as err:
        log.warning("the peer index %s cannot be used (%s): starting with an empty one; it "
                    "is written again within %.0f s", path, err, SAVE_INTERVAL_S)
        return False
    detector.peers = peers
    log.info("peer index loaded from %s (%d peer groups)", path, len(peers.groups))
    return True


def save_peers(store_dir: Path | str, data: bytes) -> None:
    """Write ``data`` (the index's ``to_bytes``, taken in the detector's thread) atomically;
    safe to run in another thread. Any failure is a ``SinkError``."""
    from detector.replay import write_atomic

    try:
        Path(store_dir).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SinkError(f"cannot write {peers_path(store_dir)}: {err.strerror or err}") from err
    write_atomic(peers_path(store_dir), data)
