"""Settings of the per-identity models, read once from the ``models`` config section.

Every knob has a ``DEFAULT_*`` constant, a type and one line of explanation below. The
object is frozen: it is built before the stream starts and shared by every profile.

Time is always *event* time (``Event.ts``), never the wall clock.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from typing import Any

from detector.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_LEARNING_MIN_EVENTS = 50
"""An identity is in its learning period until it has at least this many events …"""
DEFAULT_LEARNING_MIN_DAYS = 3.0
"""… and at least this much event time between its first and latest event (both needed)."""
DEFAULT_THIN_HISTORY_MIN_EVENTS = 15
"""An identity short of ``learning_min_events`` leaves its learning period all the same once
it has this many events …"""
DEFAULT_THIN_HISTORY_MIN_DAYS = 14.0
"""… over this much event time: a *thin history*, whose alerts need two lines of evidence
(see ``detector.scoring.corroborated``). A CI role that deploys twice a week never reaches
50 events in a month. 0 days turns thin histories off."""
DEFAULT_NOVELTY_HORIZON_DAYS = 30.0
"""A value unseen for longer than this counts as new again (forgetting)."""
DEFAULT_NOVELTY_CAP = 48
"""Exact values kept per attribute; beyond it, entries are evicted to a bloom filter."""
DEFAULT_NOVELTY_CAP_RESOURCE = 80
"""Exact values kept for the high-cardinality attributes (resource, action with resource)."""
DEFAULT_DORMANCY_DAYS = 30.0
"""An identity or credential silent longer than this is dormant; its return is flagged."""
DEFAULT_BUCKET_MINUTES = 10.0
"""Length of the volume / multivariate window (a time bucket keyed by event time)."""
DEFAULT_LATENESS_MINUTES = 15.0
"""Events may arrive this much out of event-time order and still give the same signals."""
DEFAULT_SEED = 42
"""Seed of the multivariate model; same seed and same events give the same scores."""
DEFAULT_HOLDOUT_SCORE = 0.7
"""A signal at or above this score keeps its event or window out of learning (quarantine)."""
DEFAULT_ACCEPT_WINDOWS = 6
"""A quarantined value or level is learned once it recurs in this many distinct windows."""
DEFAULT_CONCURRENT_MINUTES = 5.0
"""One credential used from two networks within this many minutes is flagged."""
DEFAULT_MAX_STATE_BYTES = 16384
"""Enforced cap on one serialised profile; beyond it the largest tables are trimmed."""
DEFAULT_PEER_MAX_GROUPS = 10000
"""Peer groups tracked by the shared ``PeerIndex``; new groups beyond it are not tracked."""
DEFAULT_PEER_VALUES = 64
"""Values tracked per (peer group, attribute)."""
DEFAULT_MIN_SCORE = 0.05
"""Signals below this score carry no information and are not emitted."""


DAYS_MAX = 3650.0  # ten years
MINUTES_MAX = 10080.0  # one week
RANGES: dict[str, tuple[float, float]] = {
    "learning_min_events": (0, 1_000_000_000),
    "learning_min_days": (0, DAYS_MAX),
    "thin_history_min_events": (0, 1_000_000_000),
    "thin_history_min_days": (0, DAYS_MAX),
    "novelty_horizon_days": (0, DAYS_MAX),
    "novelty_cap": (4, 1_000_000),
    "novelty_cap_resource": (4, 1_000_000),
    "dormancy_days": (0, DAYS_MAX),
    "bucket_minutes": (1, MINUTES_MAX),  # below a minute, sparse identities fold for ever
    "lateness_minutes": (0, MINUTES_MAX),
    "seed": (0, 2**32 - 1),
    "holdout_score": (0, 1),
    "accept_windows": (1, 1_000_000),
    "concurrent_minutes": (0, MINUTES_MAX),
    "max_state_bytes": (0, 1 << 30),
    "peer_max_groups": (0, 100_000_000),
    "peer_values": (0, 1_000_000),
    "min_score": (0, 1),
}
"""The allowed range of every setting (both ends included, finite numbers only)."""


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Immutable settings shared by every ``IdentityProfile`` (see the module constants)."""

    learning_min_events: int = DEFAULT_LEARNING_MIN_EVENTS
    learning_min_days: float = DEFAULT_LEARNING_MIN_DAYS
    thin_history_min_events: int = DEFAULT_THIN_HISTORY_MIN_EVENTS
    thin_history_min_days: float = DEFAULT_THIN_HISTORY_MIN_DAYS
    novelty_horizon_days: float = DEFAULT_NOVELTY_HORIZON_DAYS
    novelty_cap: int = DEFAULT_NOVELTY_CAP
    novelty_cap_resource: int = DEFAULT_NOVELTY_CAP_RESOURCE
    dormancy_days: float = DEFAULT_DORMANCY_DAYS
    bucket_minutes: float = DEFAULT_BUCKET_MINUTES
    lateness_minutes: float = DEFAULT_LATENESS_MINUTES
    seed: int = DEFAULT_SEED
    holdout_score: float = DEFAULT_HOLDOUT_SCORE
    accept_windows: int = DEFAULT_ACCEPT_WINDOWS
    concurrent_minutes: float = DEFAULT_CONCURRENT_MINUTES
    max_state_bytes: int = DEFAULT_MAX_STATE_BYTES
    peer_max_groups: int = DEFAULT_PEER_MAX_GROUPS
    peer_values: int = DEFAULT_PEER_VALUES
    min_score: float = DEFAULT_MIN_SCORE

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"models.{item.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"models.{item.name} must be a finite number, got {value!r}")
            if value < 0:
                raise ConfigError(f"models.{item.name} must not be negative, got {value!r}")
            _check_range(item.name, value)
        if self.bucket_minutes <= 0:
            raise ConfigError("models.bucket_minutes must be positive")
        if not 0 < self.holdout_score <= 1:
            raise ConfigError("models.holdout_score must be in (0, 1]")
        if self.accept_windows < 1:
            raise ConfigError("models.accept_windows must be at least 1")
        if self.novelty_cap < 4 or self.novelty_cap_resource < 4:
            raise ConfigError("models.novelty_cap* must be at least 4")

    @classmethod
    def from_config(cls, section: dict[str, Any] | None) -> ModelSettings:
        """Build settings from the ``models`` config section; unknown keys are an error."""
        if section is None:
            return cls()
        if not isinstance(section, dict):
            raise ConfigError(
                f"config section 'models' must be a mapping, got {type(section).__name__}"
            )
        known = {item.name for item in fields(cls)}
        unknown = sorted(str(key) for key in set(section) - known)
        if unknown:
            raise ConfigError(f"models: unknown key(s) {unknown}; known: {sorted(known)}")
        values = {}
        for item in fields(cls):
            if item.name in section:
                values[item.name] = _coerce(item.name, section[item.name], item.type)
        return cls(**values)

    def snapshot_record(self) -> dict[str, int | float]:
        """Every setting, for a snapshot's header (``check_snapshot_settings``)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    @property
    def bucket_seconds(self) -> float:
        return self.bucket_minutes * 60.0

    @property
    def lag_buckets(self) -> int:
        """Buckets between a window and the newest window its reference may include.

        A bucket is only complete once no late event can still fall into it, so the
        reference of bucket ``S`` holds buckets up to ``S - lag_buckets``: that makes the
        signals independent of arrival order within ``lateness_minutes``.
        """
        whole = -(-self.lateness_minutes // self.bucket_minutes)
        return int(whole) + 1


def _check_range(name: str, value: int | float) -> None:
    low, high = RANGES[name]
    if not low <= value <= high:
        raise ConfigError(f"models.{name} must be between {low:g} and {high:g}, got {value!r}")


def _coerce(name: str, value: Any, kind: Any) -> int | float:
    wanted = int if kind in (int, "int") else float
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"models.{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"models.{name} must be a finite number, got {value!r}")
    if wanted is int and value > RANGES[name][1]:
        _check_range(name, value)  # as written: 1e99 made whole is 100 digits long
    if wanted is int and value != int(value):
        raise ConfigError(f"models.{name} must be a whole number, got {value!r}")
    return wanted(value)


SNAPSHOT_REFUSED = {
    "bucket_minutes": "its volume and multivariate baselines count events per window of "
                      "that length, which this config would read as windows of another length",
    "seed": "its multivariate model learned through the random structure of that seed, which "
            "this config would replace with another one",
}
"""Model settings a snapshot must have been written with: a change makes its baselines mean
something else, so loading it is refused. A change of any other setting only applies from
now on to baselines that keep their meaning (a learning period ends earlier or later, a
table keeps more or fewer values, a value is forgotten sooner), so it is a warning."""


def check_snapshot_settings(recorded: Any, current: ModelSettings) -> list[str]:
    """Compare a snapshot header's ``models`` record with this config's settings.

    Returns the warnings for harmless differences (logged by the caller); raises
    ``StateError`` naming every refused difference. A record that is not a mapping (a
    snapshot written before the record existed) gives one warning that nothing could be
    checked."""
    from detector.errors import StateError

    if not isinstance(recorded, dict):
        return ["snapshot records no model settings (written before they were recorded): "
                "it cannot be checked against this config's models section; if the snapshot "
                "was written with other settings, rebuild it"]
    refused, warned = [], []
    for name, value in sorted(current.snapshot_record().items()):
        if name not in recorded or recorded[name] == value:
            continue
        change = f"models.{name} was {recorded[name]!r} for the snapshot, is {value!r} now"
        if name in SNAPSHOT_REFUSED:
            refused.append(f"{change}: {SNAPSHOT_REFUSED[name]}")
        else:
            warned.append(f"snapshot loaded although {change}; the loaded baselines are kept "
                          "and the new value applies from now on")
    if refused:
        raise StateError(f"snapshot was written with other model settings: "
                         f"{'; '.join(refused)}. Use the snapshot's values or rebuild the "
                         f"snapshot with this config")
    return warned
