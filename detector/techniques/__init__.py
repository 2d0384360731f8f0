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
