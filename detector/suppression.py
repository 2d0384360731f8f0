"""Suppression rules: known-benign signals an operator has decided not to see.

A rules file is YAML, a list of rules (or a mapping with a ``rules`` list)::

    - identity: "arn:aws:iam::123456789012:role/backup-*"   # glob on the identity key
      detector: "novelty.resource"                           # glob on Signal.detector
      value: "arn:aws:s3:::backup-*"                         # glob on Signal.value
      expires: 2026-06-30                                    # date or RFC 3339 time (UTC)
      reason: "nightly backup writes to a new bucket each month (CHG-1234)"

``identity`` and ``reason`` are required; ``detector`` and ``value`` default to ``*``;
``expires`` is optional but recommended. An expired rule stops applying: the signal it
would have suppressed goes through, is counted as ``RunStats.suppressed["expired_rule"]``
(which the summary shows apart, as signals matching an expired rule, not as suppressed) and
the rule is logged once: at start when it had already expired, else at its first match, so
stale rules are visible instead of silently hiding alerts.
Expiry is judged by the detector's wall clock, not by event time.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from detector.errors import ConfigError

logger = logging.getLogger(__name__)

RULE_KEYS = frozenset({"identity", "detector", "value", "expires", "reason", "id"})
# the verdict of ``check`` (and the ``RunStats.suppressed`` reason) when only an expired
# rule matched: the signal was not suppressed (``detector.summary`` counts it apart)
EXPIRED_RULE = "expired_rule"
# the one wording for an expired rule, whether it had expired at start or expires mid-run
EXPIRED_WARNING = "suppression rule has expired and will not apply: %s"


@dataclass(frozen=True)
class SuppressionRule:
    """One rule; ``matches`` tests identity, detector and value globs."""

    identity: str
    reason: str
    detector: str = "*"
    value: str = "*"
    expires: float | None = None  # epoch seconds, None = never
    rule_id: str = ""

    def __post_init__(self) -> None:
        compiled = [re.compile(fnmatch.translate(p)) for p in (self.identity, self.detector)]
        object.__setattr__(self, "_identity_rx", compiled[0])
        object.__setattr__(self, "_detector_rx", compiled[1])
        # values compare without case: an action is one operation in any case (AWS, and
        # Azure, whose operations the sources write in lower case, ``arm_case``)
        object.__setattr__(self, "_value_rx", re.compile(fnmatch.translate(self.value),
                                                         re.IGNORECASE))

    def matches(self, identity: str, detector: str, value: str) -> bool:
        return bool(
            self._identity_rx.match(identity)  # type: ignore[attr-defined]
            and self._detector_rx.match(detector)  # type: ignore[attr-defined]
            and self._value_rx.match(value)  # type: ignore[attr-defined]
        )

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires

    def describe(self) -> str:
        name = self.rule_id or f"{self.identity} / {self.detector} / {self.value}"
        return f"{name} ({self.reason})"


class SuppressionRules:
    """An ordered set of rules with expiry reporting."""

    def __init__(self, rules: Iterable[SuppressionRule] = (), *, clock: Callable[[], float]):
        self.rules = list(rules)
        self.clock = clock
        self._reported: set[int] = set()

    def __len__(self) -> int:
        return len(self.rules)

    @classmethod
    def from_config(
        cls, items: Any, *, clock: Callable[[], float], origin: str = "suppressions"
    ) -> SuppressionRules:
        """Rules from a parsed YAML value (a list, or a mapping with ``rules``/``file``)."""
        if items is None:
            return cls((), clock=clock)
        rules: list[SuppressionRule] = []
        if isinstance(items, Mapping):
            _check_container(items, origin, {"file", "rules"})
            if items.get("file"):
                if not isinstance(items["file"], str):
                    raise ConfigError(f"{origin}.file must be a file path, got {items['file']!r}")
                rules.extend(load_rules_file(items["file"]))
            items = items.get("rules") or []
        if not isinstance(items, list):
            raise ConfigError(f"{origin}: expected a list of rules, got {type(items).__name__}")
        rules.extend(parse_rule(item, f"{origin}[{n}]") for n, item in enumerate(items))
        return cls(rules, clock=clock)

    def extend(self, rules: Iterable[SuppressionRule]) -> None:
        self.rules.extend(rules)

    def check_detectors(self, config: Mapping[str, Any] | None) -> None:
        """Refuse a rule whose detector glob matches no detector name (``novelty`` for
        ``novelty.*``): it would suppress nothing, and nothing would say so. The same check
        and message as ``scoring.shadow_detectors``."""
        from detector.config import check_detector_patterns

        check_detector_patterns(
            ((f"suppression rule {rule.describe()}: detector", rule.detector)
             for rule in self.rules), dict(config or {}))

    def expired_rules(self) -> list[SuppressionRule]:
        """The rules expired now; the caller reports them (the detector warns at start),
        so they are marked reported and the first signal one matches adds no second
        warning."""
        now = self.clock()
        expired = [(index, rule) for index, rule in enumerate(self.rules) if rule.expired(now)]
        self._reported.update(index for index, _ in expired)
        return [rule for _, rule in expired]

    def check(
        self, identity: str, detector: str, value: str
    ) -> tuple[str | None, SuppressionRule | None]:
        """("suppressed", rule) for an active match, ("expired_rule", rule) when only an
        expired rule matched (the signal goes through), (None, None) otherwise."""
        expired: SuppressionRule | None = None
        now: float | None = None
        for index, rule in enumerate(self.rules):
            if not rule.matches(identity, detector, value):
                continue
            now = self.clock() if now is None else now
            if not rule.expired(now):
                return "suppressed", rule
            if expired is None:
                expired = rule
                self._report(index, rule)
        if expired is not None:
            return EXPIRED_RULE, expired
        return None, None

    def _report(self, index: int, rule: SuppressionRule) -> None:
        if index in self._reported:
            return
        self._reported.add(index)
        logger.warning(EXPIRED_WARNING, rule.describe())


def load_rules_file(path: str | Path) -> list[SuppressionRule]:
    """Read a suppression YAML file; errors name the file and the rule."""
    from detector.config import read_yaml

    path = Path(path)
    data = read_yaml(path, "suppression file")
    if data is None:
        return []
    if isinstance(data, Mapping):
        _check_container(data, f"suppression file {path}", {"rules"})
        data = data.get("rules") or []
    if not isinstance(data, list):
        raise ConfigError(f"suppression file {path}: expected a list of rules, each starting "
                          f"with '- ', got {type(data).__name__}")
    return [
        parse_rule(item, f"suppression file {path}: rule[{n}]") for n, item in enumerate(data)
    ]


def _check_container(items: Mapping[str, Any], where: str, known: set[str]) -> None:
    """Refuse unknown keys of the mapping that holds the rules; one rule written there (its
    list dash forgotten) would otherwise be read as no rule at all, and said so."""
    unknown = sorted(str(key) for key in set(items) - known)
    if not unknown:
        return
    if set(unknown) <= RULE_KEYS:
        raise ConfigError(f"{where}: expected a list of rules, each starting with '- ' "
                          f"('- identity: GLOB' with 'reason: ...' under it); got one "
                          f"mapping with the rule key(s) {unknown} (is the list dash missing?)")
    raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")


def parse_rule(item: Any, where: str) -> SuppressionRule:
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: a rule must be a mapping")
    unknown = sorted(set(item) - RULE_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(RULE_KEYS)}")
    for key in ("identity", "reason"):
        if not item.get(key):
            raise ConfigError(f"{where}: missing required key {key!r}")
    for key in ("identity", "reason", "detector", "value"):
        value = item.get(key, "*")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    rule_id = item.get("id", "")
    if isinstance(rule_id, bool) or not isinstance(rule_id, str | int):
        raise ConfigError(f"{where}: id must be a string, got {rule_id!r}")
    return SuppressionRule(
        identity=item["identity"],
        reason=item["reason"],
        detector=item.get("detector", "*"),
        value=item.get("value", "*"),
        expires=parse_expiry(item.get("expires"), where),
        rule_id=str(rule_id),
    )


def parse_expiry(value: Any, where: str) -> float | None:
    """A date expires at the end of that day (UTC); a datetime at that instant."""
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            when = value if value.tzinfo else value.replace(tzinfo=UTC)
            return when.timestamp()
        if isinstance(value, date):
            return datetime.combine(value, time.max, tzinfo=UTC).timestamp()
    except (ValueError, OverflowError, OSError) as err:
        raise ConfigError(f"{where}: expires {value!r} is out of range") from err
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as err:
            raise ConfigError(f"{where}: expires {value!r} is not a date or time") from err
        if len(value) == 10:
            return parse_expiry(parsed.date(), where)
        return parse_expiry(parsed, where)
    raise ConfigError(f"{where}: expires {value!r} is not a date or time")
