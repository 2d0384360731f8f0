"""Sweeps (detector.sweeps): one source acting as many identities, through the engine.

Each attack shape of the module docstring fires one alert keyed by its source; each
benign lookalike (shared egress, cloud services, controllers on a node address, a
Terraform runner, key checks from inside) raises none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from detector.engine import Detector
from detector.errors import ConfigError
from detector.event import Event
from detector.stats import RunStats
from detector.sweeps import MAX_IDENTITIES, Sweeps, SweepSettings, attempt_kind
from tests.detector.alert_schema import assert_valid_alert

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
ACCOUNT = "111122223333"
ATTACKER = "203.0.113.7"


def ev(n: int, identity: str, action: str = "sts:GetCallerIdentity", *, seconds: float = 0,
       **fields: Any) -> Event:
    when = T0 + timedelta(seconds=seconds if seconds else n * 10)
    values: dict[str, Any] = {
        "event_id": f"e{n}", "time": when, "ts": when.timestamp(),
        "source": "aws.cloudtrail", "identity": identity, "identity_kind": "workload",
        "tenant": ACCOUNT, "action": action, "source_ip": ATTACKER, "network": "public",
        "network_prefix": "203.0.113.0/24", "credential_type": "long_term",
        "user_agent": "aws-cli/2.15", "agent_family": "aws-cli",
    }
    values.update(fields)
    return Event(**values)


def user(n: int) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/svc-{n:02d}"


def role(n: int) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/app-{n:02d}"


def run(events: list[Event], config: dict[str, Any] | None = None
        ) -> tuple[list[Any], RunStats]:
    stats = RunStats()
    detector = Detector(config or {}, stats=stats)
    alerts = [a for e in events for a in detector.process(e)]
    alerts += detector.finish()
    return [a for a in alerts if a.group == "sweep"], stats


def test_key_validation__one_alert_keyed_by_the_source_names_the_keys():
    events = [ev(n, user(n)) for n in range(12)]
    alerts, stats = run(events)
    assert [a.revision for a in alerts] == [1, 2]  # 5 identities, then 10
    first, last = alerts
    assert first.alert_id == last.alert_id
    assert first.identity == f"source:{ATTACKER}" and first.identity_kind == "external"
    assert first.severity == "high"
    assert first.detectors == ("sweep.key_check",)
    assert [t["id"] for t in first.techniques] == ["T1552", "T1078.004"]
    sweep = last.context["sweep"]
    assert sweep["distinct_identities"] == 10
    assert [i["identity"] for i in sweep["identities"]] == [user(n) for n in range(10)]
    assert sweep["attempts"] == sweep["calls"] == 10
    assert last.evidence["event_ids"][:3] == ["e0", "e1", "e2"]
    assert last.title == ("sweep from 203.0.113.7: 10 identities within 15 minutes "
                          "(10 key checks)")
    assert last.signals[0]["sentence"].startswith(
        "one source, 203.0.113.7, acted as 10 distinct identities within 15 minutes")
    assert stats.alerts[("high", "sweep.key_check")] == 1 and stats.alert_updates == 1
    for alert in alerts:
        assert_valid_alert(alert.to_native())


def test_entra_spray__medium_then_high_when_a_secret_works():
    def signin(n: int, sp: int, outcome: str = "failure", code: str | None = "7000215"):
        return ev(n, f"sp-{sp:02d}", "entra:SignIn", source="azure.signin",
                  credential_type="unknown", outcome=outcome, error_code=code)

    events = [signin(n, n) for n in range(6)] + [signin(6, 3, "success", None)]
    alerts, _ = run(events)
    assert [(a.revision, a.severity) for a in alerts] == [(1, "medium"), (2, "high")]
    assert alerts[0].detectors == ("sweep.bad_credential",)
    assert alerts[0].techniques[0]["id"] == "T1110.003"
    assert alerts[1].context["sweep"]["succeeded_after_failing"] == ["sp-03"]
    assert "then succeeded as sp-03" in alerts[1].signals[0]["sentence"]
    assert "T1078.004" in [t["id"] for t in alerts[1].techniques]


def test_refusals_as_many_identities__sweep_refused():
    events = [ev(n, role(n), "iam:ListUsers", credential_type="temporary",
                 outcome="failure", error_code="AccessDenied") for n in range(5)]
    alerts, _ = run(events)
    assert len(alerts) == 1 and alerts[0].detectors == ("sweep.refused",)
    assert alerts[0].severity == "medium"
    assert alerts[0].context["sweep"]["identities"][0]["error_codes"] == ["AccessDenied"]


def k8s(n: int, account: str, agent: str, action: str = "k8s:secrets.get",
        **fields: Any) -> Event:
    return ev(n, f"system:serviceaccount:apps:{account}", action,
              source="k8s.audit", credential_type="token", outcome="failure",
              error_code="403", source_ip="10.1.2.3", network="private", user_agent=agent,
              **fields)


def test_k8s_client_as_many_service_accounts__keyed_by_address_and_agent():
    agent = "kubectl/v1.29.1 (linux/amd64) kubernetes/abc"
    alerts, _ = run([k8s(n, f"sa-{n}", agent) for n in range(6)])
    assert len(alerts) == 1
    assert alerts[0].identity == f"source:10.1.2.3 ua:{agent}"
    assert alerts[0].context["sweep"]["user_agent"] == agent


def test_controllers_on_a_node_address__no_alert():
    # each controller has its own agent, and controllers are cloud services anyway
    own_agents = [k8s(n, f"ctl-{n}", f"kube-controller-manager/v1.29 ctl-{n}")
                  for n in range(8)]
    system = [k8s(10 + n, f"ctl-{n}", "kube-controller-manager/v1.29",
                  identity_kind="cloud_service") for n in range(8)]
    watches = [k8s(20 + n, f"app-{n}", "app/1.0", "k8s:pods.watch")
               for n in range(8)]
    assert run(own_agents + system + watches)[0] == []


def test_nat_gateway_many_roles_succeeding__no_alert():
    events = [ev(n, role(n % 30), "s3:GetObject", credential_type="temporary")
              for n in range(300)]
    assert run(events)[0] == []


def test_shared_egress_with_a_few_refusals__share_too_low():
    events = []
    for n in range(400):
        refused = n % 40 == 0  # ten refusals, each as another role, among 390 successes
        events.append(ev(n, role(n % 40 if not refused else 100 + n // 40), "ec2:Describe",
                         seconds=n, credential_type="temporary",
                         outcome="failure" if refused else "success",
                         error_code="AccessDenied" if refused else None))
    alerts, _ = run(events)
    assert alerts == []


def test_terraform_runner_assuming_many_roles__no_alert():
    events = []
    for n in range(240):
        account = n // 20  # twelve roles in turn, twenty calls each, the last one refused
        last = n % 20 == 19
        events.append(ev(n, f"arn:aws:iam::{account:012d}:role/terraform", "ec2:Describe",
                         seconds=n, credential_type="temporary", agent_family="terraform",
                         outcome="failure" if last else "success",
                         error_code="AccessDenied" if last else None))
    assert run(events)[0] == []


def test_cloud_service_principals_as_many_roles__no_alert():
    # sourceIPAddress "ec2.amazonaws.com": no address, no source
    events = [ev(n, role(n), "kms:Decrypt", source_ip=None, network="cloud_service",
                 credential_type="temporary", outcome="failure", error_code="AccessDenied")
              for n in range(10)]
    assert run(events)[0] == []


def test_key_checks_from_inside_or_a_known_source__no_alert():
    inside = [ev(n, user(n), source_ip="10.0.0.9", network="private") for n in range(8)]
    assert run(inside)[0] == []
    known = [ev(n, user(n)) for n in range(8)]
    config = {"sweeps": {"known_sources": ["203.0.113.0/28"]}}
    assert run(known, config)[0] == []
    assert len(run(known, {"sweeps": {"known_sources": ["198.51.100.0/24"]}})[0]) == 1


def test_identities_spread_beyond_the_window__no_alert():
    events = [ev(n, user(n), seconds=n * 400) for n in range(8)]  # one per 6.7 minutes
    assert run(events)[0] == []
    alerts, _ = run(events, {"sweeps": {"window_seconds": 3600}})
    assert [a.context["sweep"]["distinct_identities"] for a in alerts] == [5]


def test_disabled_or_suppressed__no_alert():
    events = [ev(n, user(n)) for n in range(8)]
    assert run(events, {"sweeps": {"enabled": False}})[0] == []
    rule = {"identity": f"source:{ATTACKER}", "detector": "sweep.*",
            "reason": "our own key scanner"}
    alerts, stats = run(events, {"suppressions": [rule]})
    assert alerts == [] and stats.suppressed["suppression_rule"] >= 1


def test_attempt_kinds():
    assert attempt_kind(ev(0, user(0))) == "key_check"
    assert attempt_kind(ev(0, user(0), "s3:GetObject")) is None
    assert attempt_kind(ev(0, role(0), credential_type="temporary")) is None
    failed = {"outcome": "failure"}
    assert attempt_kind(ev(0, user(0), "s3:GetObject", error_code="InvalidClientTokenId",
                           **failed)) == "bad_credential"
    assert attempt_kind(ev(0, user(0), "s3:GetObject", error_code="NoSuchKey",
                           **failed)) is None
    assert attempt_kind(ev(0, "sp", "entra:SignIn", error_code="50140", **failed)) is None
    assert attempt_kind(ev(0, "sp", "entra:SignIn", error_code="50126",
                           **failed)) == "bad_credential"


def test_memory_is_bounded():
    stats = RunStats()
    detector = Detector({"sweeps": {"max_sources": 3}}, stats=stats)
    sweeps = detector._sweeps
    assert isinstance(sweeps, Sweeps)
    for n in range(10):  # ten sources, one refusal each
        detector.process(ev(n, role(0), "iam:ListUsers", source_ip=f"198.51.100.{n}",
                            credential_type="temporary", outcome="failure",
                            error_code="AccessDenied"))
    assert list(sweeps.sources) == [f"source:198.51.100.{n}" for n in (7, 8, 9)]
    assert sorted(sweeps.addresses) == [f"198.51.100.{n}" for n in (7, 8, 9)]
    many = [ev(n, user(n)) for n in range(MAX_IDENTITIES + 10)]
    for event in many:
        detector.process(event)
    source = sweeps.sources[f"source:{ATTACKER}"]
    assert len(source.identities) == MAX_IDENTITIES and len(source.untracked) == 10
    # the untracked identities are counted once each, however many attempts they make
    for n in range(MAX_IDENTITIES, MAX_IDENTITIES + 10):
        detector.process(ev(n, user(n), seconds=800))
    assert len(source.untracked) == 10
    assert source.attempting(T0.timestamp()) == MAX_IDENTITIES + 10
    # and forgotten with the window, like the named ones
    detector.process(ev(998, user(998), seconds=1650))
    assert len(source.untracked) == 10  # attempted at 800, within the window of 1650
    detector.process(ev(999, user(999), seconds=1750))
    assert sweeps.sources[f"source:{ATTACKER}"] is source and source.untracked == {}


def test_quiet_sources_are_dropped_after_a_window():
    stats = RunStats()
    detector = Detector({}, stats=stats)
    detector.process(ev(0, role(0), "iam:ListUsers", credential_type="temporary",
                        outcome="failure", error_code="AccessDenied"))
    assert detector._sweeps is not None and len(detector._sweeps.sources) == 1
    # the next event the sweeps see, a window later, drops the quiet source
    detector.process(ev(1, role(1), "s3:GetObject", seconds=2000, source_ip="198.51.100.1",
                        credential_type="temporary", outcome="failure",
                        error_code="AccessDenied"))
    assert list(detector._sweeps.sources) == ["source:198.51.100.1"]
    assert detector._sweeps.addresses == {"198.51.100.1": 1}


@pytest.mark.parametrize(("section", "message"), [
    ({"min_identity": 3}, r"unknown key\(s\) \['min_identity'\]"),
    ({"min_identities": 1}, r"sweeps.min_identities must be between 2 and 10000"),
    ({"min_share": "half"}, r"sweeps.min_share must be a number"),
    ({"min_identities": float("inf")}, r"sweeps.min_identities must be a finite number"),
    ({"max_sources": float("-inf")}, r"sweeps.max_sources must be a finite number"),
    ({"max_sources": 1e99}, r"sweeps.max_sources must be between 1 and 1e\+07"),
    ({"min_identities": 2.5}, r"sweeps.min_identities must be a whole number"),
    ({"known_sources": ["not-an-ip"]}, r"'not-an-ip' is not an address or network"),
    ({"known_sources": "10.0.0.0/8"}, r"must be a list of addresses or networks"),
    ({"enabled": "yes"}, r"sweeps.enabled must be true or false"),
])
def test_settings_refuse_bad_values(section: dict[str, Any], message: str):
    with pytest.raises(ConfigError, match=message):
        SweepSettings.from_config(section)


def test_config_file_section(tmp_path):
    from detector.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text("sweeps:\n  min_identities: 8\n  known_sources: [192.0.2.0/24]\n")
    assert load_config(path)["sweeps"]["min_identities"] == 8
    path.write_text("sweeps:\n  window: 60\n")
    with pytest.raises(ConfigError, match=r"config.yaml: sweeps: unknown key"):
        load_config(path)


def shadow_key_checks(config: dict[str, Any]) -> tuple[list[Any], RunStats]:
    return run([ev(n, user(n)) for n in range(6)], config)


def test_shadow_detectors__a_sweep_on_trial_is_a_shadow_alert():
    alerts, stats = shadow_key_checks({"scoring": {"shadow_detectors": ["sweep.*"]}})
    assert [a.shadow for a in alerts] == [True]
    assert alerts[0].to_native()["shadow"] is True
    assert stats.shadow_alerts["sweep.key_check"] == 1 and not stats.alerts


def test_shadow_worker__every_sweep_alert_is_shadow():
    stats = RunStats()
    detector = Detector({}, stats=stats, shadow=True)
    alerts = [a for n in range(6) for a in detector.process(ev(n, user(n)))]
    assert [a.group for a in alerts] == ["sweep"]
    assert stats.shadow_alerts["sweep.key_check"] == 1 and not stats.alerts


def test_min_severity__a_sweep_below_it_is_not_sent():
    refusals = [ev(n, role(n), "iam:ListUsers", credential_type="temporary",
                   outcome="failure", error_code="AccessDenied") for n in range(8)]
    alerts, stats = run(refusals, {"scoring": {"min_severity": "high"}})
    assert alerts == [] and not stats.alerts  # refusals are medium
    alerts, stats = run(refusals, {"scoring": {"min_severity": "medium"}})
    assert [a.severity for a in alerts] == ["medium"]
    alerts, _ = shadow_key_checks({"scoring": {"min_severity": "high"}})
    assert [a.severity for a in alerts] == ["high"]  # key checks are high


@pytest.mark.parametrize("pattern", ["sweep.*", "sweep.key_check"])
def test_detector_weights__sweep_patterns_refused(tmp_path, pattern):
    from detector.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text(f"scoring: {{detector_weights: {{'{pattern}': 2.0}}}}\n")
    with pytest.raises(ConfigError, match=r"only matches sweep detectors, which have no "
                                          r"weights"):
        load_config(path)
    path.write_text("scoring: {detector_weights: {'*': 2.0}, shadow_detectors: [sweep.*]}\n")
    assert load_config(path)["scoring"]["detector_weights"] == {"*": 2.0}


def test_feedback_detector__sweep_refused():
    from detector.feedback import check_detector, known_detectors

    with pytest.raises(ConfigError, match=r"sweeps have no per-identity feedback"):
        check_detector("sweep.refused", known_detectors())
    assert check_detector("novelty.action", known_detectors()) is None
