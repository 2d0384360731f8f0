"""The contract every model follows.

A model sees ``Event``s of one identity in (roughly) event-time order. For each event the
profile first *scores* it against what is known (``score_one``: pure, never changes state),
then decides whether the event teaches the baseline (``learn_one``). Scores are in [0, 1];
higher means more anomalous; 0.0 on a cold start, never None or NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Signal:
    """One model's verdict on one event or one time window of an identity.

    ``detector`` is a dotted, bounded name (``novelty.action``, ``volume.rate``,
    ``credential.new_network``) that alerts, suppression rules and metrics use as a label.
    ``observed`` and ``baseline`` are short human strings; ``sentence`` is the one plain
    sentence an analyst reads ("first call of iam:CreateAccessKey in 41 days of history").
    ``value`` is the raw observed value used for suppression patterns and feedback.
    """

    detector: str
    score: float
    observed: str
    baseline: str
    sentence: str
    value: str = ""
    degraded: bool = False
    cold_start: bool = False
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
