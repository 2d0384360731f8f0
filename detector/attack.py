"""MITRE ATT&CK mapping for alerts: technique ids with names and tactics.

The mapping is data in ``detector/data/sensitive_actions.yaml``: each sensitive-action
category lists its techniques, and detector-name globs give techniques for behavioural
signals that are not about a catalogued action (a dormant identity waking up, a key used
from a new network). This module only resolves ids to names and tactics.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from detector.errors import ConfigError
from detector.scoring import Sensitivity, SensitivityCatalogue

logger = logging.getLogger(__name__)


class AttackMap:
    """Resolve ATT&CK technique ids for an alert's sensitivity category and detectors."""

    def __init__(self, catalogue: SensitivityCatalogue) -> None:
        data = catalogue.data
        self.catalogue = catalogue
        self.version = str(data.get("attack_version", ""))
        self.tactics: Mapping[str, str] = dict(data.get("tactics") or {})
        self.techniques: dict[str, dict[str, Any]] = {}
        for tid, spec in (data.get("techniques") or {}).items():
            self.techniques[tid] = self._technique(tid, spec)
        self._check_references()

    def _technique(self, tid: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        tactics = []
        for tactic_id in spec.get("tactics") or ():
            if tactic_id not in self.tactics:
                raise ConfigError(f"ATT&CK technique {tid}: unknown tactic {tactic_id}")
            tactics.append({"id": tactic_id, "name": self.tactics[tactic_id]})
        return {"id": tid, "name": str(spec["name"]), "tactics": tactics}

    def _check_references(self) -> None:
        used = [t for _, sens in self.catalogue.categories for t in sens.techniques]
        used += [t for _, ids in self.catalogue.detector_techniques for t in ids]
        missing = sorted(set(used) - set(self.techniques))
        if missing:
            raise ConfigError(f"{self.catalogue.origin}: techniques without a definition {missing}")

    def ids_for(
        self,
        sensitivity: Sensitivity | Iterable[Sensitivity] | None,
        detectors: Iterable[str],
    ) -> list[str]:
        """Technique ids in a stable order: the action categories' first, then detectors'."""
        if sensitivity is None:
            categories: list[Sensitivity] = []
        elif isinstance(sensitivity, Sensitivity):
            categories = [sensitivity]
        else:
            categories = list(sensitivity)
        ids: list[str] = []
        for sens in categories:
            ids.extend(t for t in sens.techniques if t not in ids)
        for detector in detectors:
            for tid in self.catalogue.techniques_for_detector(detector):
                if tid not in ids:
                    ids.append(tid)
        return ids

    def describe(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        """Full technique records (id, name, tactics) for ids, unknown ids skipped."""
        return [self.techniques[tid] for tid in ids if tid in self.techniques]
