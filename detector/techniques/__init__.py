"""Technique findings: attack patterns that are suspicious without any baseline.

The behavioural models need an identity's history; an attacker who acts in the first
hour of a new identity, or an attack simulation run against a fresh account, gives them
none. Some actions carry their own evidence in the request: a snapshot shared with an
account outside the organisation, a bucket policy granting ``*``, a ClusterRoleBinding to
``cluster-admin`` for a service account, a GCP policy granting ``allUsers``. Each source
module (``aws``, ``k8s``, ``gcp``, ``azure``) checks the raw record of the few actions it
knows while the parser still holds it, and returns ``Finding`` objects; the parser puts
them in ``Event.attributes["findings"]`` and the engine turns each into a signal whose
detector is ``technique.<rule>``, alerted whether or not the identity is still learning.

Checks run on the raw record, so they must be cheap for the actions they do not know (one
dict look-up of the action name) and must never raise on odd input: a check that cannot
read its field returns no finding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ATTRIBUTE = "findings"  # the Event.attributes key the parsers fill


@dataclass(frozen=True, slots=True)
class Finding:
    """One technique seen in one record.

    ``rule`` is a short dotted name (``aws.snapshot_shared_external``): the alert's detector
    is ``technique.<rule>``, so suppression rules and feedback can name it. ``severity`` is
    one of ``low``, ``medium``, ``high``, ``critical``. ``attack`` lists ATT&CK technique ids
    (each defined in ``detector/data/sensitive_actions.yaml``). ``sentence`` is the plain
    sentence an analyst reads, naming the evidence ("snapshot snap-0a1 shared with account
    012345678901, outside the account's organisation"). ``value`` is the exposed or granted
    thing, used for suppression patterns and feedback ("012345678901").
    """

    rule: str
    severity: str
    attack: tuple[str, ...]
    sentence: str
    value: str = ""


SEVERITIES = ("low", "medium", "high", "critical")


def as_findings(value: Any) -> list[Finding]:
    """The findings of ``Event.attributes["findings"]``: ``Finding`` objects from a parser
    in the same process, or their dict form after an event crossed Kafka (orjson writes a
    dataclass as a dict). Malformed entries are dropped, never raised on."""
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for item in value:
        if isinstance(item, Finding):
            out.append(item)
        elif isinstance(item, dict):
            finding = _from_dict(item)
            if finding is not None:
                out.append(finding)
    return out


def _from_dict(item: dict[str, Any]) -> Finding | None:
    rule, severity, sentence = item.get("rule"), item.get("severity"), item.get("sentence")
    attack, value = item.get("attack") or (), item.get("value") or ""
    if not (isinstance(rule, str) and rule and isinstance(sentence, str)):
        return None
    if severity not in SEVERITIES or not isinstance(attack, (list, tuple)):
        return None
    ids = tuple(str(tid) for tid in attack if isinstance(tid, str))
    return Finding(rule[:128], severity, ids, sentence[:512], str(value)[:256])
