"""GCP entries judged when refused, and GKE anonymous requests named only by the
authority selector (trial 7, item 3)."""

from __future__ import annotations

from typing import Any

import orjson

from detector.sources import ListDeadLetters, parse_payload
from detector.stats import RunStats
from detector.techniques import ATTRIBUTE, Tally
from tests.detector.test_techniques_gcp import entry
from tests.detector.test_techniques_k8s import findings, gke

GPU = [{"acceleratorType": "projects/p/zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4",
        "acceleratorCount": 1}]


def launch(code: int, **extra: Any) -> dict:
    return entry("v1.compute.instances.insert", "compute.googleapis.com",
                 principal="ci@corp-prod.iam.gserviceaccount.com", code=code,
                 resource="projects/p/zones/us-central1-a/instances/miner",
                 request={"machineType": "zones/us-central1-a/machineTypes/n1-standard-4",
                          "guestAccelerators": GPU}, **extra)


def attributes(*records: dict) -> list[list[Any]]:
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps(list(records)), origin="t", stats=stats,
                           dead_letters=dead)
    assert len(dead) == 0 and len(events) == len(records)
    return [list(event.attributes.get(ATTRIBUTE) or []) for event in events]


def test_a_gpu_launch_refused_by_quota_or_permission_is_an_attempt_one_level_lower() -> None:
    assert findings(launch(0), launch(8), launch(7)) == [
        ("gcp.unusual_instances", "medium", "nvidia-tesla-t4"),
        ("gcp.unusual_instances", "low", "nvidia-tesla-t4"),
        ("gcp.unusual_instances", "low", "nvidia-tesla-t4")]
    quota, denied = attributes(launch(8), launch(7))
    assert "attempt refused: RESOURCE_EXHAUSTED" in quota[0].sentence
    assert "attempt refused: PERMISSION_DENIED" in denied[0].sentence
    # a permission refusal still counts toward the probing burst; a quota is no probe
    assert [type(item) for item in quota] == [type(quota[0])]
    assert [item.rule for item in denied if type(item) is Tally] == ["gcp.permission_probing"]


def test_a_project_move_out_of_its_organisation_refused_is_an_attempt() -> None:
    """Stratus Red Team's project removal is refused by the organisation's policy: the
    attempt itself is the finding (one level lower), not only a probing tally."""
    def move(code: int) -> dict:
        return entry("google.cloud.resourcemanager.v3.Projects.MoveProject",
                     "cloudresourcemanager.googleapis.com", code=code,
                     resource="projects/corp-prod", request={
                         "name": "projects/corp-prod", "destinationParent": "organizations/9"})

    assert findings(move(0), move(7)) == [("gcp.project_moved", "high", "organizations/9"),
                                          ("gcp.project_moved", "medium", "organizations/9")]
    (denied,) = attributes(move(7))
    assert "attempt refused: PERMISSION_DENIED" in denied[0].sentence


def test_refused_entries_of_other_rules_and_other_errors_stay_as_they_were() -> None:
    ordinary = entry("v1.compute.instances.insert", "compute.googleapis.com", code=8,
                     request={"machineType": "zones/us-central1-a/machineTypes/e2-small"})
    not_found = launch(5)
    public = entry("storage.setIamPermissions", "storage.googleapis.com", code=7,
                   resource="projects/_/buckets/exports",
                   serviceData={"policyDelta": {"bindingDeltas": [
                       {"action": "ADD", "role": "roles/storage.objectViewer",
                        "member": "allUsers"}]}})
    found = attributes(ordinary, not_found, public)
    assert found[0] == [] and found[1] == []
    assert [type(item) for item in found[2]] == [Tally]  # the probing count alone


def test_gke_anonymous_named_only_by_the_authority_selector_is_anonymous() -> None:
    selector = {"authenticationInfo": {"authoritySelector": "system:anonymous"}}
    read = gke("io.k8s.core.v1.secrets.list", "core/v1/namespaces/default/secrets",
               **selector)
    probe = gke("io.k8s.core.v1.healthz.get", "core/v1/healthz", **selector)
    assert findings(read, probe) == [("k8s.anonymous_access", "high", "k8s:secrets.list")]
    stats, dead = RunStats(), ListDeadLetters()
    events = parse_payload(orjson.dumps([read, probe]), origin="t", stats=stats,
                           dead_letters=dead)
    assert [event.identity for event in events] == ["prod/system:anonymous"] * 2
