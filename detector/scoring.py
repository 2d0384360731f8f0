"""Scoring: fuse one event's model signals into one score and a severity.

Method (documented for analysts in ``docs/alerts.md``):

1. Drop signals below ``signal_floor``; weigh each by its detector weight and damp it by
   peer prevalence (a value new for this identity but common in its peer group is less
   surprising) unless the model already applied the peer context.
2. Fuse the ``fusion_top_k`` strongest signals with a noisy-OR,
   ``1 - prod(1 - s_i)``: one strong signal dominates, corroborating signals add to it
   without ever exceeding 1.
3. Amplify by the sensitivity of the action (``detector/data/sensitive_actions.yaml``):
   ``score * (1 + sensitivity_gain * category.weight)``, then weigh by identity kind, clip
   to [0, 1].
4. Severity from the score thresholds, capped by the category's level (or by
   ``plain_ceiling`` for uncatalogued actions), stepped down one level when a known deploy
   identity just changed this identity (never for catalogued actions). An action of a
   ``policy`` category (logging or detection tampering) that the identity has never made
   before (an exact ``unseen`` novelty signal on the action itself) takes the category's
   level whatever its score: the same severity the identity would have had during its
   learning period, so the identity the detector knows best does not get a weaker alert.
   A verdict whose only signals are schedule signals (a new hour, nothing else unusual)
   is capped at ``schedule_ceiling``: activity at an odd hour alone is a lead to look at,
   not a finding; with any other deviation the usual ceilings apply.

The alert's own score (``alert_score``) is not an event's: it ranks alerts. It lies in
the band of the alert's severity (``thresholds``: a high alert scores in [0.75, 0.9)),
placed in the band by the alert's weight of evidence, summed in log-odds over its
independent lines of evidence (correlated readings of one line count less and less), so
that a SIEM sorting by score sorts by severity first and, within one severity, puts the
alert with more corroboration first. It never reaches 1.0.

Every threshold and weight lives in ``ScoringSettings``, built once from the ``scoring``
section of the configuration.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from detector.config import check_known_keys
from detector.errors import ConfigError
from detector.event import Event
from models.base import Signal

logger = logging.getLogger(__name__)

SEVERITIES = ("info", "low", "medium", "high", "critical")
SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}

DEFAULT_THRESHOLDS = {"low": 0.4, "medium": 0.55, "high": 0.75, "critical": 0.9}
DEFAULT_KIND_WEIGHTS = {
    "workload": 1.0,
    "ai_agent": 1.0,
    "external": 1.0,
    "unknown": 0.9,
    "cloud_service": 1.0,
    "human": 0.5,
}
DEFAULT_DEPLOY_AGENTS = ("terraform", "helm", "pulumi", "cloudformation", "cdk", "argocd", "flux")
DEFAULT_CHANGE_ACTIONS = (
    "lambda:UpdateFunctionCode*",
    "lambda:UpdateFunctionConfiguration*",
    "lambda:CreateFunction*",
    "iam:PutRolePolicy",
    "iam:AttachRolePolicy",
    "iam:UpdateAssumeRolePolicy",
    "ecs:UpdateService",
    "ecs:RegisterTaskDefinition",
    "cloudformation:UpdateStack",
    "cloudformation:ExecuteChangeSet",
    "k8s:deployments.*",
    "k8s:daemonsets.*",
    "k8s:statefulsets.*",
    "k8s:cronjobs.*",
    "k8s:serviceaccounts.*",
    "*:*SetIamPolicy",
    "*run*:*ReplaceService",
    "*functions*:*UpdateFunction",
)
# Detectors whose signal is about the action itself (or a credential that looks stolen):
# only with one of them does the action's sensitivity amplify the score.
DEFAULT_ACTION_DETECTORS = (
    "novelty.action*",
    "novelty.service",
    "novelty.resource",
    "novelty.target_tenant",
    "volume.*",
    "dormancy.*",
    "credential.new_network",
    "credential.instance_outside_cloud",
    "multivariate.*",
    "policy.*",
)
# Detectors that see the same evidence fuse as one (glob -> group; the first match wins;
# a detector matching none is its own group).
DEFAULT_FUSION_GROUPS = {
    "novelty.action*": "action",
    "novelty.service": "action",
    "novelty.network": "network",
    "novelty.credential_network": "network",
    "credential.*": "network",
    "volume.*": "volume",
}
CACHE_CAP = 65_536  # distinct actions remembered by the catalogue lookup cache
# Weight of evidence of an alert (``alert_score``). A signal's strength s is read in
# log-odds above the signal floor, logit(s) - logit(floor): a signal at the floor is no
# evidence, and the models clip their strongest readings at 1.0, which is read as
# EVIDENCE_CAP (about 5.7 nats with the default floor) so that one clipped reading is not
# infinitely sure.
EVIDENCE_CAP = 0.99
# Readings of one line of evidence (one fusion group: the novelty of several actions, two
# windows of one volume model) are correlated: the strongest counts fully, each next one
# half as much as the one before, and only the EVIDENCE_PER_LINE strongest are kept.
EVIDENCE_DECAY = 0.5
EVIDENCE_PER_LINE = 3
# Evidence (nats) that places an alert halfway up its severity band: one clipped reading
# (5.7) lands a third of the way, a full line (three clipped readings, 10) near half,
# three independent full lines near three quarters.
EVIDENCE_HALF = 12.0


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """One catalogue category an action belongs to."""

    category: str
    level: str
    weight: float
    policy: bool = False
    volume_only: bool = False
    condition: str | None = None
    techniques: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.category.replace("_", " ")

    def applies(self, event: Event) -> bool:
        """Whether the category's condition holds for this event."""
        if self.condition == "success":
            return not event.failed
        if self.condition == "cross_tenant":
            target = event.target_tenant
            return bool(target) and target != event.tenant
        return True


@cache
def _packaged_catalogue() -> Mapping[str, Any]:
    """The packaged catalogue's data, read once per process (every ``Detector``, the
    technique checks and feedback build their catalogue from it; none of them changes it).

    With libyaml's C loader where PyYAML has it: 2 ms instead of 17 ms for the same data
    (the file is plain mappings, lists and strings, which both loaders read alike)."""
    text = resources.files("detector").joinpath("data/sensitive_actions.yaml").read_text()
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


class SensitivityCatalogue:
    """The action catalogue: ``classify(event)`` gives the event's category, or None."""

    def __init__(self, data: Mapping[str, Any], *, origin: str = "catalogue") -> None:
        self.data = data
        self.origin = origin
        self.categories: list[tuple[re.Pattern[str], Sensitivity]] = []
        for name, spec in (data.get("categories") or {}).items():
            self.categories.append(_category(name, spec, origin))
        self.detector_techniques = [
            (re.compile(fnmatch.translate(pattern)), tuple(ids))
            for pattern, ids in (data.get("detectors") or {}).items()
        ]
        self._cache: dict[str, Sensitivity | None] = {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> SensitivityCatalogue:
        """Read the packaged catalogue, or a replacement file given by the configuration."""
        if path is None:
            return cls(_packaged_catalogue(), origin="sensitive_actions.yaml")
        from detector.config import read_yaml

        data = read_yaml(path, "sensitivity catalogue")
        if not isinstance(data, dict):
            raise ConfigError(f"sensitivity catalogue {path}: top level must be a mapping")
        try:
            return cls(data, origin=str(path))
        except (AttributeError, TypeError, ValueError, re.error) as err:
            raise ConfigError(f"sensitivity catalogue {path} is malformed: {err}") from err

    def lookup(self, action: str) -> Sensitivity | None:
        """The first category whose patterns match ``action`` (cached per action)."""
        try:
            return self._cache[action]
        except KeyError:
            pass
        lowered = action.lower()
        found = next((sens for rx, sens in self.categories if rx.match(lowered)), None)
        if len(self._cache) < CACHE_CAP:
            self._cache[action] = found
        return found

    def classify(self, event: Event) -> Sensitivity | None:
        """The event's category when its condition holds (cross-tenant, success …)."""
        sens = self.lookup(event.action)
        if sens is None or not sens.applies(event):
            return None
        return sens

    def category(self, name: str) -> Sensitivity | None:
        return next((sens for _, sens in self.categories if sens.category == name), None)

    def techniques_for_detector(self, detector: str) -> tuple[str, ...]:
        for rx, ids in self.detector_techniques:
            if rx.match(detector):
                return ids
        return ()


POLICY_RULE_KEYS = frozenset({"action", "identity", "severity", "name", "reason", "always"})
CATEGORY_KEYS = frozenset({"actions", "level", "weight", "policy", "volume_only", "condition",
                           "techniques"})
CONDITIONS = (None, "success", "cross_tenant")


def _flag(origin: str, name: str, spec: Mapping[str, Any], key: str) -> bool:
    """A true/false setting of a category: ``policy: 'false'`` (a quoted string) was read
    as true."""
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"{origin}: category {name}: {key} must be true or false, got "
                          f"{value!r}")
    return value


def _category(name: str, spec: Mapping[str, Any], origin: str) -> tuple[re.Pattern, Sensitivity]:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{origin}: category {name} must be a mapping, got {spec!r:.60}")
    check_known_keys(f"{origin}: category {name}", spec, CATEGORY_KEYS)
    actions = spec.get("actions") or ()
    if isinstance(actions, str):  # one string matched nothing: it was read letter by letter
        raise ConfigError(f"{origin}: category {name}: actions must be a list of globs, got "
                          f"the string {actions!r} (write it as [{actions}])")
    weight = spec.get("weight", 0.5)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not (
            math.isfinite(weight) and 0 <= weight <= 1):
        raise ConfigError(f"{origin}: category {name}: weight must be a number from 0 to 1, "
                          f"got {weight!r}")
    if spec.get("condition") not in CONDITIONS:
        raise ConfigError(f"{origin}: category {name}: condition {spec['condition']!r} is not "
                          f"one of success, cross_tenant (or none)")
    level = spec.get("level", "medium")
    if level not in SEVERITY_RANK:
        raise ConfigError(f"{origin}: category {name}: level {level!r} is not a severity")
    patterns = [fnmatch.translate(str(p).lower()) for p in actions]
    if not patterns:
        raise ConfigError(f"{origin}: category {name} lists no actions")
    sens = Sensitivity(
        category=name,
        level=level,
        weight=float(weight),
        policy=_flag(origin, name, spec, "policy"),
        volume_only=_flag(origin, name, spec, "volume_only"),
        condition=spec.get("condition"),
        techniques=tuple(spec.get("techniques") or ()),
    )
    return re.compile("|".join(f"(?:{p})" for p in patterns)), sens


@dataclass(frozen=True)
class ScoringSettings:
    """Every threshold and weight of scoring and noise control (``scoring`` config section).

    Times are seconds of event time.
    """

    signal_floor: float = 0.25
    fusion_top_k: int = 3
    sensitivity_gain: float = 0.6
    peer_damping: float = 0.6
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    min_severity: str = "low"  # alerts are emitted from this severity up
    track_severity: str = "low"  # verdicts from here up open or extend (pending) groups
    plain_ceiling: str = "medium"
    schedule_ceiling: str = "low"  # a verdict of schedule signals only (a new hour alone)
    kind_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_KIND_WEIGHTS))
    detector_weights: Mapping[str, float] = field(default_factory=dict)
    platform_kinds: tuple[str, ...] = ("cloud_service",)
    platform_detectors: tuple[str, ...] = ("novelty.action",)
    platform_ceiling: str = "low"
    shadow_detectors: tuple[str, ...] = ()
    action_detectors: tuple[str, ...] = DEFAULT_ACTION_DETECTORS
    fusion_groups: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_FUSION_GROUPS))
    group_window: float = 3600.0  # a group closes after this much event time without signals
    group_max: float = 86400.0  # … or at the latest this long after it opened
    cooldown: float = 6 * 3600.0
    change_window: float = 2 * 3600.0
    recurrence_days: int = 3  # a deviation seen at this hour on N earlier days is lowered (0: off)
    recurrence_lookback_days: int = 7
    deploy_identities: tuple[str, ...] = ()
    deploy_agent_families: tuple[str, ...] = DEFAULT_DEPLOY_AGENTS
    change_actions: tuple[str, ...] = DEFAULT_CHANGE_ACTIONS
    policy_rules: tuple[Mapping[str, Any], ...] = ()
    max_evidence_ids: int = 20
    max_signals: int = 5
    catalogue_path: str | None = None
    dormant_after_days: float = 30.0
    # technique bursts (detector.techniques.Tally): reads counted per identity and rule
    technique_burst_window: float = 600.0  # seconds of event time
    technique_burst_distinct: int = 20  # distinct secrets (or instances) read in the window
    technique_burst_calls: int = 10  # calls, for rules where repeats count (password data)
    # a storage account's shared key first used this long after its subscription was first
    # seen is a finding (``Detector._shared_key_first_use``); 0 turns it off
    shared_key_watch_days: float = 14.0

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> ScoringSettings:
        """Validate the ``scoring`` section; unknown keys fail loudly with their name.

        Every key is checked against ``FIELDS`` (its type and range) here, once, so a bad
        value stops the run at start-up instead of at the first alert.
        """
        if section is None:
            section = {}
        if not isinstance(section, Mapping):
            raise ConfigError(
                f"config section 'scoring' must be a mapping, got {type(section).__name__}"
            )
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(key) for key in set(section) - known)
        if unknown:
            raise ConfigError(f"scoring: unknown key(s) {unknown}; known: {sorted(known)}")
        values: dict[str, Any] = {}
        for key, value in section.items():
            values[key] = _coerce(key, value)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for n, rule in enumerate(self.policy_rules):
            if not isinstance(rule, Mapping) or not rule.get("action"):
                raise ConfigError(f"scoring.policy_rules[{n}]: a rule needs at least 'action'")
            # a misspelt key was ignored: 'idenity:' made the rule apply to every identity
            check_known_keys(f"scoring.policy_rules[{n}]", rule, POLICY_RULE_KEYS)
            for key in ("action", "identity", "name", "reason"):
                if key in rule and not isinstance(rule[key], str):
                    raise ConfigError(f"scoring.policy_rules[{n}].{key} must be a string, got "
                                      f"{rule[key]!r}")
            if not isinstance(rule.get("always", False), bool):
                raise ConfigError(f"scoring.policy_rules[{n}].always must be true or false, "
                                  f"got {rule['always']!r}")
            severity = rule.get("severity", "high")
            if not isinstance(severity, str) or severity not in SEVERITY_RANK:
                raise ConfigError(f"scoring.policy_rules[{n}]: severity {rule['severity']!r} "
                                  "is not a severity")
        for key in ("min_severity", "track_severity", "plain_ceiling", "platform_ceiling",
                    "schedule_ceiling"):
            if getattr(self, key) not in SEVERITY_RANK:
                raise ConfigError(f"scoring.{key}: {getattr(self, key)!r} is not a severity")
        if SEVERITY_RANK[self.track_severity] > SEVERITY_RANK[self.min_severity]:
            raise ConfigError(
                f"scoring.track_severity ({self.track_severity!r}) must not be above "
                f"min_severity ({self.min_severity!r})"
            )
        bad = sorted(set(self.thresholds) - set(SEVERITIES))
        if bad:
            raise ConfigError(f"scoring.thresholds: unknown severities {bad}")
        if not 0.0 <= self.signal_floor <= 1.0:
            raise ConfigError(f"scoring.signal_floor must be in [0, 1], got {self.signal_floor}")
        if self.fusion_top_k < 1 or self.group_window <= 0 or self.group_max <= 0:
            raise ConfigError("scoring: fusion_top_k, group_window, group_max must be positive")
        if self.cooldown < 0 or self.change_window < 0:
            raise ConfigError("scoring: cooldown and change_window must not be negative")
        # The alert score's bands lie between consecutive thresholds, and a configuration
        # such as {low: 0.9, medium: 0.5} made 0.6 medium and 0.95 critical, never low:
        # not what anyone writing it meant. The defaults fill in the severities not given.
        merged = self.merged_thresholds
        ordered = [(name, merged[name]) for name in SEVERITIES[1:]]
        for (lower, low), (higher, high) in zip(ordered, ordered[1:], strict=False):
            if not low < high:
                given = ", ".join(f"{name} {value:g}"
                                  + ("" if name in self.thresholds else " (default)")
                                  for name, value in ordered)
                raise ConfigError(f"scoring.thresholds must rise with severity ({lower} "
                                  f"below {higher}), got {given}")

    @cached_property
    def merged_thresholds(self) -> dict[str, float]:
        """The configured thresholds over the defaults (read per alert by ``band``)."""
        return {**DEFAULT_THRESHOLDS, **self.thresholds}

    @cached_property
    def ordered_thresholds(self) -> tuple[tuple[float, str], ...]:
        merged = self.merged_thresholds
        return tuple(sorted(((v, k) for k, v in merged.items()), reverse=True))

    @cached_property
    def _detector_weight_rx(self) -> tuple[tuple[re.Pattern[str], float], ...]:
        return tuple(
            (re.compile(fnmatch.translate(k)), float(v)) for k, v in self.detector_weights.items()
        )

    @cached_property
    def _change_rx(self) -> re.Pattern[str]:
        return re.compile("|".join(fnmatch.translate(p.lower()) for p in self.change_actions))

    @cached_property
    def _deploy_rx(self) -> re.Pattern[str] | None:
        if not self.deploy_identities:
            return None
        return re.compile("|".join(fnmatch.translate(p) for p in self.deploy_identities))

    @cached_property
    def _shadow_rx(self) -> re.Pattern[str] | None:
        if not self.shadow_detectors:
            return None
        return re.compile("|".join(fnmatch.translate(p) for p in self.shadow_detectors))

    @cached_property
    def policy_matchers(self) -> tuple[tuple[re.Pattern[str], re.Pattern[str], Mapping], ...]:
        """Compiled (action glob, identity glob, rule) of ``policy_rules``."""
        return tuple(
            (
                # an action in any case (Azure's are written in lower case, ``arm_case``)
                re.compile(fnmatch.translate(str(rule.get("action", "*"))), re.IGNORECASE),
                re.compile(fnmatch.translate(str(rule.get("identity", "*")))),
                rule,
            )
            for rule in self.policy_rules
        )

    @cached_property
    def _action_rx(self) -> re.Pattern[str]:
        return re.compile("|".join(fnmatch.translate(p) for p in self.action_detectors) or "$^")

    @cached_property
    def _fusion_rx(self) -> tuple[tuple[re.Pattern[str], str], ...]:
        return tuple((re.compile(fnmatch.translate(k)), v) for k, v in self.fusion_groups.items())

    @cached_property
    def _fusion_cache(self) -> dict[str, str]:
        return {}

    def fusion_group(self, detector: str) -> str:
        cache = self._fusion_cache
        group = cache.get(detector)
        if group is None:
            group = next((g for rx, g in self._fusion_rx if rx.match(detector)), detector)
            if len(cache) < CACHE_CAP:
                cache[detector] = group
        return group

    def is_action_linked(self, detector: str) -> bool:
        return bool(self._action_rx.match(detector))

    def is_shadow(self, detector: str) -> bool:
        """Whether a detector is on trial (``shadow_detectors`` globs)."""
        return self._shadow_rx is not None and bool(self._shadow_rx.match(detector))

    def detector_weight(self, detector: str) -> float:
        for rx, weight in self._detector_weight_rx:
            if rx.match(detector):
                return weight
        return 1.0

    def band(self, severity: str) -> tuple[float, float]:
        """The scores an alert of ``severity`` takes: from its threshold up to the next
        severity's (info from 0, critical up to 1, never reached)."""
        merged = self.merged_thresholds
        rank = SEVERITY_RANK[severity]
        low = merged[severity] if rank else 0.0
        high = merged[SEVERITIES[rank + 1]] if rank + 1 < len(SEVERITIES) else 1.0
        return low, high

    def severity_for(self, score: float) -> str:
        for threshold, name in self.ordered_thresholds:
            if score >= threshold:
                return name
        return "info"

    def is_change_action(self, action: str) -> bool:
        return bool(self._change_rx.match(action.lower()))

    def is_deployer(self, event: Event) -> bool:
        """A known deploy identity: configured pattern, deploy tool, or a CI identity."""
        if self._deploy_rx is not None and self._deploy_rx.match(event.identity):
            return True
        if event.agent_family and event.agent_family.lower() in self.deploy_agent_families:
            return True
        reason = event.kind_reason.lower()
        return "ci " in reason or "ci/" in reason or "pipeline" in reason or "github" in reason


# The type and range of every ``scoring`` key: (kind, low, high). Kinds: "float" and "int"
# (finite numbers in [low, high]), "severity", "globs" (a list of strings), "rules" (a list
# of mappings), "weights" (a mapping of names to numbers in [low, high]), "groups" (a
# mapping of globs to names), "path" (a string or null).
DAY = 86400.0
FIELDS: dict[str, tuple[str, float, float]] = {
    "signal_floor": ("float", 0.0, 1.0),
    "fusion_top_k": ("int", 1, 100),
    "sensitivity_gain": ("float", 0.0, 100.0),
    "peer_damping": ("float", 0.0, 1.0),
    "thresholds": ("weights", 0.0, 1.0),
    "min_severity": ("severity", 0, 0),
    "track_severity": ("severity", 0, 0),
    "plain_ceiling": ("severity", 0, 0),
    "schedule_ceiling": ("severity", 0, 0),
    "kind_weights": ("weights", 0.0, 100.0),
    "detector_weights": ("weights", 0.0, 100.0),
    "platform_kinds": ("globs", 0, 0),
    "platform_detectors": ("globs", 0, 0),
    "platform_ceiling": ("severity", 0, 0),
    "shadow_detectors": ("globs", 0, 0),
    "action_detectors": ("globs", 0, 0),
    "fusion_groups": ("groups", 0, 0),
    "group_window": ("float", 1e-9, 365 * DAY),
    "group_max": ("float", 1e-9, 365 * DAY),
    "cooldown": ("float", 0.0, 365 * DAY),
    "change_window": ("float", 0.0, 365 * DAY),
    "recurrence_days": ("int", 0, 366),
    "recurrence_lookback_days": ("int", 0, 366),
    "deploy_identities": ("globs", 0, 0),
    "deploy_agent_families": ("globs", 0, 0),
    "change_actions": ("globs", 0, 0),
    "policy_rules": ("rules", 0, 0),
    "max_evidence_ids": ("int", 1, 100_000),
    "max_signals": ("int", 1, 1000),
    "catalogue_path": ("path", 0, 0),
    "dormant_after_days": ("float", 0.0, 3650.0),
    "technique_burst_window": ("float", 1.0, DAY),
    "technique_burst_distinct": ("int", 2, 100_000),
    "technique_burst_calls": ("int", 2, 100_000),
    "shared_key_watch_days": ("float", 0.0, 3650.0),
}


def check_number(name: str, value: Any, kind: str, low: float, high: float) -> int | float:
    """A finite number of the wanted kind within [low, high], else ``ConfigError``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if kind == "int":
        if not low <= value <= high:  # as written: 1e99 made whole is 100 digits long
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
        if value != int(value):
            raise ConfigError(f"{name} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value!r}")
    return value


def _coerce(key: str, value: Any) -> Any:
    """Check one ``scoring`` value against ``FIELDS`` and return it in its stored form."""
    kind, low, high = FIELDS[key]
    name = f"scoring.{key}"
    if kind in ("float", "int"):
        return check_number(name, value, kind, low, high)
    if kind == "severity":
        if not isinstance(value, str) or value not in SEVERITY_RANK:
            raise ConfigError(f"{name}: {value!r} is not a severity ({', '.join(SEVERITIES)})")
        return value
    if kind == "path":
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{name} must be a file path, got {value!r}")
        return value
    if kind in ("globs", "rules"):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} must be a list, got {type(value).__name__}")
        for n, item in enumerate(value):
            if kind == "globs" and not isinstance(item, str):
                raise ConfigError(f"{name}[{n}] must be a string, got {item!r}")
            if kind == "rules":
                _check_rule(f"{name}[{n}]", item)
        return tuple(value)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{name} must be a mapping, got {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise ConfigError(f"{name}: key {item!r} must be a string")
    if kind == "groups":
        for item, group in value.items():
            if not isinstance(group, str) or not group:
                raise ConfigError(f"{name}.{item} must be a group name, got {group!r}")
        return dict(value)
    return {item: check_number(f"{name}.{item}", v, "float", low, high)
            for item, v in value.items()}


def _check_rule(where: str, rule: Any) -> None:
    """A policy rule: a mapping with string globs and, optionally, a severity."""
    if not isinstance(rule, Mapping):
        raise ConfigError(f"{where}: a rule must be a mapping, got {type(rule).__name__}")
    for key, value in rule.items():
        if key in ("action", "identity") and not isinstance(value, str):
            raise ConfigError(f"{where}.{key} must be a string, got {value!r}")


@dataclass(slots=True)
class Weighted:
    """A signal after weighting: the adjusted score and the peer prevalence used."""

    signal: Signal
    score: float
    peer_prevalence: float | None = None
    line: str = ""  # its line of evidence (fusion group); empty: the detector's own


@dataclass(slots=True)
class Verdict:
    """The fused result for one event: what the alerting stage acts on."""

    score: float
    severity: str
    signals: list[Weighted]
    sensitivity: Sensitivity | None
    notes: list[str] = field(default_factory=list)
    cap: str = ""  # the ceiling this verdict was held to (empty: its own severity)

    @property
    def ceiling(self) -> str:
        return self.cap or self.severity

    @property
    def top(self) -> Weighted:
        return self.signals[0]


def weigh_signals(
    signals: Iterable[Signal], settings: ScoringSettings, *, platform: bool
) -> tuple[list[Weighted], int]:
    """Step 1: floor, detector weight, peer damping. Returns the kept signals, strongest
    first, and how many were dropped as routine platform novelty."""
    kept: list[Weighted] = []
    routine = 0
    for signal in signals:
        if signal.score < settings.signal_floor:
            continue
        if platform and signal.detector not in settings.platform_detectors:
            routine += 1
            continue
        score = signal.score * settings.detector_weight(signal.detector)
        prevalence = signal.details.get("peer_prevalence")
        if prevalence is not None and not signal.details.get("peer_adjusted", False):
            score *= 1.0 - settings.peer_damping * min(max(float(prevalence), 0.0), 1.0)
        kept.append(Weighted(signal, score, prevalence, settings.fusion_group(signal.detector)))
    kept.sort(key=lambda w: (-w.score, w.signal.detector))
    return kept, routine


def evidence_scores(kept: Iterable[Weighted], settings: ScoringSettings) -> list[float]:
    """One score per independent line of evidence: the strongest signal of each fusion
    group (a new action also makes a new action-with-network pair; counting both would
    corroborate a finding with itself)."""
    best: dict[str, float] = {}
    for weighted in kept:
        key = weighted.line or settings.fusion_group(weighted.signal.detector)
        if weighted.score > best.get(key, -1.0):
            best[key] = weighted.score
    return list(best.values())


def fuse(scores: Iterable[float], top_k: int) -> float:
    """Noisy-OR of the ``top_k`` largest scores."""
    remaining = 1.0
    for score in sorted(scores, reverse=True)[:top_k]:
        remaining *= 1.0 - min(max(score, 0.0), 1.0)
    return 1.0 - remaining


def evidence_nats(strength: float, floor: float) -> float:
    """One reading's weight of evidence: its log-odds above the signal floor's, never
    negative (a reading damped below the floor by its peers adds nothing)."""
    top = EVIDENCE_CAP
    strength = min(max(strength, 0.0), top)
    base = min(max(floor, 1.0 - top), top)
    if strength <= base:
        return 0.0
    return math.log(strength / (1.0 - strength)) - math.log(base / (1.0 - base))


def evidence_weight(lines: Mapping[str, Mapping[str, float]], floor: float) -> float:
    """The alert's weight of evidence in nats: per line of evidence the strongest reading
    fully, each next one ``EVIDENCE_DECAY`` times the one before, summed over lines (they
    are independent: an action never made, from a network never seen)."""
    total = 0.0
    for readings in lines.values():
        weight = 1.0
        for strength in sorted(readings.values(), reverse=True)[:EVIDENCE_PER_LINE]:
            total += weight * evidence_nats(strength, floor)
            weight *= EVIDENCE_DECAY
    return total


def evidence_place(weight: float) -> float:
    """Where a weight of evidence places an alert, from 0 (none) towards 1 (never reached):
    ``weight / (weight + EVIDENCE_HALF)``, half way at ``EVIDENCE_HALF`` nats."""
    return weight / (weight + EVIDENCE_HALF) if weight > 0 else 0.0


def alert_score(severity: str, weight: float, settings: ScoringSettings) -> float:
    """The alert's score: inside its severity's band (``ScoringSettings.band``), the more
    evidence the higher, ``evidence_place`` of the way up. Monotone in the severity and in
    the evidence, below the band's top, so never 1.0."""
    low, high = settings.band(severity)
    score = round(low + (high - low) * evidence_place(weight), 4)
    if score >= high:  # rounding must not lift an alert into the next band, nor to 1.0
        score = round(high - 0.0001, 4)
    if score < low:
        # nor drop it below its own: a threshold off the four-decimal grid (0.55004) rounds
        # down out of its band, and so does the top of a band narrower than 0.0001; the
        # threshold itself is then the score (the band's lowest, still below the next)
        score = low
    return score


def score_event(
    event: Event,
    signals: Iterable[Signal],
    settings: ScoringSettings,
    *,
    sensitivity: Sensitivity | None,
    change_context: bool = False,
) -> Verdict | None:
    """Steps 1–4 of the module docstring; None when no signal is left after step 1."""
    platform = event.identity_kind in settings.platform_kinds
    kept, _ = weigh_signals(signals, settings, platform=platform)
    if not kept:
        return None
    fused = fuse(evidence_scores(kept, settings), settings.fusion_top_k)
    sens = sensitivity if _sensitivity_applies(sensitivity, kept, settings) else None
    gain = 1.0 + settings.sensitivity_gain * sens.weight if sens else 1.0
    weight = settings.kind_weights.get(event.identity_kind, 1.0)
    score = min(max(fused * gain * weight, 0.0), 1.0)
    severity, notes, cap = _severity(score, settings, sens, platform, change_context)
    if all(w.signal.detector.startswith("schedule.") for w in kept):
        cap = min_severity(cap, settings.schedule_ceiling)
        if severity != min_severity(severity, cap):
            severity = cap
            notes.append(f"where only the hour was unusual, severity held at {cap}")
    if (sens is not None and sens.policy and severity != sens.level
            and _first_use(event, kept)):
        severity = max_severity(severity, sens.level)
        notes.append(f"first {sens.label} action by this identity: "
                     f"severity raised to the category's level ({sens.level})")
    return Verdict(round(score, 4), severity, kept, sens, notes, cap)


def _first_use(event: Event, kept: list[Weighted]) -> bool:
    """Whether a kept signal says this very action is new for the identity: an exact
    ``unseen`` status (a value only probably evicted from a bounded table, or forgotten
    beyond the horizon, does not count)."""
    for weighted in kept:
        signal = weighted.signal
        if (signal.detector == "novelty.action" and signal.value == event.action
                and not signal.degraded and signal.details.get("status") == "unseen"):
            return True
    return False


def _sensitivity_applies(
    sens: Sensitivity | None, kept: list[Weighted], settings: ScoringSettings
) -> bool:
    """A sensitive action weighs in only when it is part of the deviation: a signal about
    the action itself, its volume, or a credential that looks stolen. A routine
    ``kms:Decrypt`` during an off-hours window is not made more severe by being sensitive."""
    if sens is None:
        return False
    if sens.volume_only:
        return any(w.signal.detector.startswith("volume.") for w in kept)
    return any(settings.is_action_linked(w.signal.detector) for w in kept)


def _severity(
    score: float,
    settings: ScoringSettings,
    sens: Sensitivity | None,
    platform: bool,
    change_context: bool,
) -> tuple[str, list[str], str]:
    """(severity, notes, ceiling): the ceiling also bounds the alert group's severity when
    its evidence accumulates (see ``detector.engine``)."""
    notes: list[str] = []
    severity = settings.severity_for(score)
    ceiling = sens.level if sens else settings.plain_ceiling
    if platform and sens is None:
        ceiling = settings.platform_ceiling
        notes.append("platform identity: new action outside its historical set")
    severity = min_severity(severity, ceiling)
    floor = SEVERITY_RANK[settings.min_severity]
    if change_context and sens is None and SEVERITY_RANK[severity] >= floor:
        # Lowered, never dropped: a change-explained deviation still reaches the alert
        # topic at no less than ``min_severity``.
        severity = SEVERITIES[max(SEVERITY_RANK[severity] - 1, floor)]
        ceiling = SEVERITIES[max(SEVERITY_RANK[ceiling] - 1, floor)]
        notes.append("severity lowered one level: a recent deploy change explains it")
    return severity, notes, ceiling


ORIGIN_DETECTORS = frozenset({"novelty.network", "novelty.credential_network",
                              "novelty.agent_family", "novelty.action_network"})
"""Readings of where a call came from, and with what client (``corroborated``), with every
``credential.*`` reading. A known action from a known network that never met is a
reading of where, not of what."""
CONDUCT_DETECTORS = frozenset({"novelty.action", "novelty.service", "novelty.error_code",
                               "novelty.target_tenant"})
"""Readings of what the identity did, with every ``volume.*`` (how much) and ``dormancy.*``
(after how long a silence) reading."""


def corroborated(verdict: Verdict) -> bool:
    """Whether the verdict has the two lines of evidence a *thin history* needs (an
    identity that left its learning period on few events, ``IdentityProfile.thin_history``):
    a new origin (network, client, a credential seen somewhere new) *and* new conduct (an
    action or service never made, an error never had, another tenant, a volume spike, a
    return from dormancy). Few events leave gaps in every baseline, so one new thing
    alone is expected (an instance role's first secret read after a release); a stolen
    session replayed from a laptop is new in both at once."""
    origin = conduct = False
    for weighted in verdict.signals:
        detector = weighted.signal.detector
        origin = origin or detector in ORIGIN_DETECTORS or detector.startswith("credential.")
        conduct = (conduct or detector in CONDUCT_DETECTORS
                   or detector.startswith(("volume.", "dormancy.")))
    return origin and conduct


def min_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK[a] <= SEVERITY_RANK[b] else b


def max_severity(a: str, b: str) -> str:
    return a if SEVERITY_RANK[a] >= SEVERITY_RANK[b] else b
