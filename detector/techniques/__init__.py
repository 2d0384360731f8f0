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

A request refused for lack of permission (AWS ``AccessDenied``, Kubernetes 403, GCP status 7,
Azure ``AuthorizationFailed``) changed nothing, but an attempt at a technique says as much
about intent as a success: ``attempted`` turns a check's findings on such a record into
attempt findings, one severity lower, and ``refused_tampering`` names a refused action of a
``policy`` category of the sensitivity catalogue (disabling audit logs or detection), which
no check reads because its success is already alerted by the catalogue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detector.scoring import Sensitivity

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
    values do (an application re-reading its own secret is routine). ``scope`` counts
    apart within the identity (one instance session of a role); ``limit`` replaces
    ``technique_burst_distinct`` for rules where two distinct values are already the
    evidence (one instance's credentials from two networks).
    """

    rule: str
    severity: str
    attack: tuple[str, ...]
    noun: str
    values: tuple[str, ...]
    calls: bool = False
    scope: str = ""
    limit: int = 0


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
                limit = item.get("limit")
                limit = limit if type(limit) is int and 2 <= limit <= 1000 else 0
                out.append(Tally(rule[:128], severity, attack, noun[:128], values,
                                 bool(item.get("calls")), str(item.get("scope") or "")[:128],
                                 limit))
    return out


# Error codes (lower-cased) of a request refused for lack of permission, in the spellings
# of the four sources: AWS ``AccessDenied``, ``AccessDeniedException``,
# ``Client.UnauthorizedOperation``; Kubernetes ``Forbidden`` or 403; GCP status 7
# (PERMISSION_DENIED); Azure ``AuthorizationFailed``, ``Forbidden``.
_REFUSAL_MARKS = ("accessdenied", "unauthorizedoperation", "unauthorizedaccess", "forbidden",
                  "authorizationfailed", "permission_denied")
_REFUSAL_CODES = frozenset({"403", "7"})


def refused(error: Any) -> bool:
    """Whether an error code says the caller was not allowed (not a missing resource, a
    bad parameter or throttling: those say nothing about intent)."""
    if not isinstance(error, str) or not error:
        return False
    lowered = error.lower()
    return lowered in _REFUSAL_CODES or any(mark in lowered for mark in _REFUSAL_MARKS)


def lower(severity: str) -> str:
    """One severity level down, never below ``low``."""
    return SEVERITIES[max(SEVERITIES.index(severity) - 1, 0)]


def attempted(found: list[Any], error: str) -> list[Any]:
    """The findings of a refused request as attempt findings: one severity lower, the
    refusal named in the sentence. Tallies are kept as they are (a refused read still
    counts toward its burst)."""
    note = f" (attempt refused: {error[:64]})"
    return [Finding(f.rule, lower(f.severity), f.attack, f.sentence + note, f.value)
            if type(f) is Finding else f for f in found]


@cache
def _policy_categories() -> tuple[tuple[re.Pattern[str], Sensitivity], ...]:
    """The packaged catalogue's ``policy`` categories with their compiled action patterns
    (read once, by the catalogue's own loader)."""
    from detector.scoring import SensitivityCatalogue  # models and scoring: only when needed

    return tuple((rx, sens) for rx, sens in SensitivityCatalogue.load().categories
                 if sens.policy)


def refused_tampering(cloud: str, action: str, error: str) -> Finding | None:
    """A finding for a refused ``policy`` action (stopping a trail, deleting a log sink or
    a detector): the attempt to blind the defenders, one level below the category's
    success. None for any other action."""
    lowered = action.lower()
    for rx, sens in _policy_categories():
        if rx.match(lowered):
            level = sens.level if sens.level in SEVERITIES else "high"
            return Finding(f"{cloud}.tampering_attempt", lower(level), sens.techniques,
                           f"refused attempt at {sens.label}: {action[:128]} "
                           f"(attempt refused: {error[:64]})", action[:128])
    return None


# Object names ransom notes use (HOW_TO_DECRYPT_FILES.txt, FILES-DELETED.txt,
# RECOVER-YOUR-DATA.html): read only on text-like names, never on data objects.
_RANSOM_NOTE_RX = re.compile(
    r"decrypt|ransom|(recover|restore|unlock|get[_ .-]?back)[_ .-]?(your|my|all|the)?[_ .-]?"
    r"(files|data)|(files|data)[_ .-]?(were[_ .-]?)?(deleted|encrypted|stolen|locked)"
    r"|your[_ .-]?(files|data)")
_NOTE_EXTENSIONS = frozenset({"txt", "html", "htm", "hta", "md", "rtf", ""})


def ransom_note(key: str) -> bool:
    """Whether an object key's last part is named like a ransom note (S3 and GCS)."""
    name = key.rpartition("/")[2].lower()
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    return (len(name) <= 80 and extension in _NOTE_EXTENSIONS
            and _RANSOM_NOTE_RX.search(stem) is not None)


PROBING = ("T1580", "T1087.004")  # Cloud Infrastructure Discovery, Account Discovery


def refusal(cloud: str, action: str, error: str) -> list[Any]:
    """What a refused request of the Kubernetes, GCP and Azure sources adds: a
    ``refused_tampering`` finding for a logging or detection change, and one count toward
    ``<cloud>.permission_probing``, the burst of distinct refused actions that a stolen
    credential trying what it may do leaves behind (the engine counts it, see ``Tally``)."""
    out: list[Any] = []
    tampering = refused_tampering(cloud, action, error)
    if tampering is not None:
        out.append(tampering)
    out.append(Tally(f"{cloud}.permission_probing", "medium", PROBING, "refused actions",
                     (action[:128],)))
    return out
