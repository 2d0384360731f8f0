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

Some techniques show only as a burst (twenty secrets read in minutes): one such read is a
``Tally``, put in the same attribute list; the engine counts an identity's tallies per
rule over a short window (``scoring.technique_burst_*``) and raises a finding-like signal
when the burst is reached.
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


@dataclass(frozen=True, slots=True)
class Tally:
    """One read that counts toward a burst rule.

    ``values`` are the things read (secret names, instance ids); ``noun`` names them in
    the alert ("secrets"). With ``calls`` the number of calls also counts (re-reading one
    instance's password data is as telling as reading many); otherwise only distinct
    values do (an application re-reading its own secret is routine).
    """

    rule: str
    severity: str
    attack: tuple[str, ...]
    noun: str
    values: tuple[str, ...]
    calls: bool = False


def as_findings(value: Any) -> list[Finding]:
    """The findings of ``Event.attributes["findings"]``: ``Finding`` objects from a parser
    in the same process, or their dict form after an event crossed Kafka (orjson writes a
    dataclass as a dict). Malformed entries are dropped, never raised on."""
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for item in value:
        if type(item) is Tally:
            continue
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


def as_tallies(value: Any) -> list[Tally]:
    """The ``Tally`` items of the findings attribute (objects, or dicts off the wire)."""
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for item in value:
        if type(item) is Tally:
            out.append(item)
        elif isinstance(item, dict) and isinstance(item.get("values"), (list, tuple)):
            rule, severity, noun = item.get("rule"), item.get("severity"), item.get("noun")
            if isinstance(rule, str) and severity in SEVERITIES and isinstance(noun, str):
                attack = tuple(t for t in item.get("attack") or () if isinstance(t, str))
                values = tuple(str(v)[:256] for v in item["values"][:64])
                out.append(Tally(rule[:128], severity, attack, noun[:64], values,
                                 bool(item.get("calls"))))
    return out
