"""The labelled attack scenarios. Each one owns its identities: they are simulated with a
normal baseline from day 0 (like every other identity of their archetype), then act out the
attack after the three-week baseline. Every attack record carries its scenario id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import archetypes as A
from . import aws, gcp, k8s, world
from .core import HOUR, MINUTE, Identity, Rng, Session
from .gen import Gen
from .writers import ISOLATED


@dataclass
class Scenario:
    id: str
    title: str
    description: str
    techniques: list[str]
    identities: list[str] = field(default_factory=list)


SCENARIOS: list[Scenario] = []


def attack_day(g: Gen, d30: int) -> int:
    """Days are given for a 30-day run; longer runs keep them at the end, shorter scale."""
    return d30 + g.days - 30 if g.days >= 30 else round(d30 * g.days / 30)


def at(g: Gen, d30: int, hour: int, minute: int) -> float:
    return g.day_t(attack_day(g, d30)) + hour * HOUR + minute * MINUTE


def _scenario(sid: str, title: str, description: str, techniques: list[str],
              identities: list[Identity]) -> str:
    SCENARIOS.append(Scenario(sid, title, description, techniques,
                              [ident.key for ident in identities]))
    return sid


def _steps(g: Gen, ident: Identity, rng: Rng, t: float, sid: str, steps: list[Any],
           gap: tuple[float, float], **kw: Any) -> float:
    """Emit (action, error, extra) steps as one actor; returns the time after the last."""
    for step in steps:
        action, error, extra = (step + (None, {}))[:3] if isinstance(step, tuple) else \
            (step, None, {})
        g.emit(ident, rng, t, action, error=error, scenario=sid,
               extra={**kw.pop("extra", {}), **(extra or {})}, **kw)
        t += rng.uniform(*gap)
    return t


DENY = ("AccessDenied", "")
KALI_CLI = ("aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/linux#6.6.9-amd64 md/arch#x86_64 "
            "lang/python#3.11.8 md/pyimpl#CPython exe/x86_64.kali.2024 prompt/off command/{}")
PACU_UA = ("Boto3/1.34.51 md/Botocore#1.34.51 ua/2.0 os/linux#6.6.9-amd64 md/arch#x86_64 "
           "lang/python#3.11.8 md/pyimpl#CPython cfg/retry-mode#legacy Botocore/1.34.51")


def build(g: Gen, handles: dict[str, Any] | None = None) -> list[Scenario]:
    """Every scenario; ``handles`` are the estate's actors (``estate.build``) that a
    scenario attacks without owning them (S11 validates the legacy users' keys)."""
    SCENARIOS.clear()
    s01_instance_credentials(g)
    s02_leaked_key(g)
    s03_ci_self_escalation(g)
    s04_logging_tampering(g)
    s05_secret_harvesting(g)
    s06_exfiltration(g)
    s07_dormant_user(g)
    s08_rogue_agent(g)
    s09_k8s_token(g)
    s10_gcp_impersonation(g)
    s11_key_validation_sweep(g, handles or {})
    return list(SCENARIOS)


# --- AWS ----------------------------------------------------------------------------------

def s01_instance_credentials(g: Gen) -> None:
    actor = A.ec2_role(g, "prod", "prod-api-gateway-ec2", A_EC2_WEIGHTS, 0.5, instances=2,
                       bucket="nw-prod-api-gateway", parameter="/prod/api-gateway/config",
                       secret="prod/api-gateway/db")
    sid = _scenario(
        "S01-instance-credentials-outside",
        "EC2 instance-role credentials used from outside AWS",
        "The temporary ASIA key of an instance of prod-api-gateway-ec2 (stolen through SSRF "
        "to the metadata service) is used from a VPS: no ec2RoleDelivery, a Kali aws-cli, "
        "discovery with denials, then reads from the role's bucket.",
        ["T1552.005", "T1078.004", "T1580", "T1530"], [actor.ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 22, 14, 7)
    live = actor.extra["slots"][0][0].at(t)
    stolen = Session(name=live.name, key_id=live.key_id, created=live.created)
    ip = rng.host(world.ATTACKER[1])
    steps: list[Any] = [("sts:GetCallerIdentity",), ("s3:ListBuckets",),
                        ("iam:ListAttachedRolePolicies", DENY, {"role_name": actor.ident.name}),
                        ("iam:GetRole", DENY), ("ec2:DescribeInstances",),
                        ("ec2:DescribeSecurityGroups",), ("secretsmanager:ListSecrets", DENY),
                        ("ssm:DescribeParameters", DENY)]
    steps += [("s3:ListObjects",)] * 4 + [("s3:GetObject",)] * 18
    for action, *rest in steps:
        cmd = action.replace(":", ".").lower()
        _steps(g, actor.ident, rng, t, sid, [(action, *rest)], (0, 0), session=stolen, ip=ip,
               ua=KALI_CLI.format(cmd), region=world.HOME_REGION)
        t += rng.uniform(8, 70)


A_EC2_WEIGHTS = [("s3:GetObject", 3), ("s3:PutObject", 2), ("kms:Decrypt", 2),
                 ("ssm:GetParameter", 1), ("logs:CreateLogStream", 1),
                 ("ssm:UpdateInstanceInformation", 2)]

ENUM = ["iam:ListUsers", "iam:ListRoles", "iam:ListPolicies", "iam:ListGroups",
        "iam:GetAccountAuthorizationDetails", "iam:ListAccessKeys", "iam:GetUser",
        "iam:ListAttachedUserPolicies", "iam:ListUserPolicies", "iam:ListMFADevices",
        "ec2:DescribeInstances", "ec2:DescribeRegions", "ec2:DescribeVpcs",
        "ec2:DescribeSecurityGroups", "ec2:DescribeSnapshots", "ec2:DescribeImages",
        "s3:ListBuckets", "lambda:ListFunctions20150331", "rds:DescribeDBInstances",
        "rds:DescribeDBClusters", "secretsmanager:ListSecrets", "ssm:DescribeParameters",
        "dynamodb:ListTables", "kms:ListAliases", "cloudtrail:DescribeTrails",
        "guardduty:ListDetectors", "eks:ListClusters", "ecs:DescribeClusters",
        "logs:DescribeLogGroups", "route53:ListHostedZones", "sns:ListTopics",
        "monitoring:DescribeAlarms", "cloudformation:DescribeStacks", "acm:ListCertificates",
        "glue:GetDatabases", "athena:ListWorkGroups", "ecr:DescribeRepositories",
        "elasticloadbalancing:DescribeLoadBalancers", "autoscaling:DescribeAutoScalingGroups",
        "iam:GetAccountSummary", "iam:ListAccountAliases", "organizations:DescribeOrganization"]
ALLOWED_FOR_REPORTING = {"s3:ListBuckets", "athena:ListWorkGroups", "glue:GetDatabases",
                         "iam:GetUser", "iam:ListAccessKeys"}


def s02_leaked_key(g: Gen) -> None:
    actor = A.legacy_user(g, "prod", "svc-analytics-sync", world.ONPREM_DC, world.java_ua(
        Rng(f"{g.seed}|s02ua")), [("athena:StartQueryExecution", 1),
                                  ("athena:GetQueryExecution", 2), ("athena:GetQueryResults", 1),
                                  ("s3:GetObject", 2)], 0.5, shape="business",
        bucket="nw-analytics-curated", workgroup="reporting")
    rng = Rng(f"{g.seed}|S02")
    t = at(g, 23, 3, 41)
    new_user = "backup-svc-admin"
    created, _ = _new_iam_user(g, "prod", new_user, t + 900)
    sid = _scenario(
        "S02-leaked-key-enumeration-persistence",
        "Leaked long-term key: enumeration, then a new admin user",
        "The AKIA key of svc-analytics-sync (found in a public repository) is used at night "
        "from a VPS with a Pacu-like boto3 client: ~120 List/Describe/Get calls across many "
        "services in a few minutes, most denied, then CreateUser, CreateAccessKey and "
        "AttachUserPolicy(AdministratorAccess) for a new user whose key is tried at once.",
        ["T1078.004", "T1087.004", "T1580", "T1136.003", "T1098.001"],
        [actor.ident, created])
    ip = rng.host(world.ATTACKER[2])
    kw = dict(session=actor.key, ip=ip, ua=PACU_UA, region=world.HOME_REGION)
    t = _steps(g, actor.ident, rng, t, sid, [("sts:GetCallerIdentity",)], (2, 5), **kw)
    for _ in range(118):
        action = rng.choice(ENUM)
        err = None if action in ALLOWED_FOR_REPORTING else DENY
        if action.startswith("ec2:") and err:
            err = ("Client.UnauthorizedOperation", "")
        t = _steps(g, actor.ident, rng, t, sid, [(action, err)], (0.2, 2.5), **kw)
    t += rng.uniform(300, 500)
    new_key = "AKIA" + rng.b32(16)
    t = _steps(g, actor.ident, rng, t, sid, [
        ("iam:CreateUser", None, {"user_name": new_user}),
        ("iam:CreateAccessKey", None, {"user_name": new_user, "new_key": new_key}),
        ("iam:AttachUserPolicy", None, {"user_name": new_user,
                                        "policy_arn": aws.ADMIN_POLICY}),
        ("iam:ListAttachedUserPolicies", None, {"user_name": new_user})], (4, 20), **kw)
    key = Session(name=None, key_id=new_key, created=t)
    _steps(g, created, rng, t + rng.uniform(60, 200), sid, [
        ("sts:GetCallerIdentity",), ("iam:ListUsers",), ("s3:ListBuckets",),
        ("secretsmanager:ListSecrets",), ("ec2:DescribeInstances",)], (3, 30),
        session=key, ip=ip, ua=PACU_UA, region=world.HOME_REGION)


def _new_iam_user(g: Gen, env: str, name: str, created: float) -> tuple[Identity, Rng]:
    from .gen import aws_user
    ident, rng = aws_user(g, env, name, "iam_user_key", first_day=10**6)
    return ident, rng


def s03_ci_self_escalation(g: Gen) -> None:
    actor = A.ci_role(g, "prod", "gha-deploy-settlement", "settlement", "lambda", 0.9,
                      function="prod-settlement")
    sid = _scenario(
        "S03-ci-role-self-escalation",
        "CI deploy role escalates its own privileges",
        "A workflow from a pull-request branch of the settlement repository (the role's trust "
        "policy accepts any ref) runs at night and makes the deploy role grant itself "
        "AdministratorAccess and an inline '*' policy, then passes an admin role to a new "
        "Lambda function.",
        ["T1098.003", "T1078.004", "T1648"], [actor.ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 24, 1, 15)
    actor.extra["subject"] = (f"repo:{world.GITHUB_ORG}/settlement:ref:refs/heads/"
                              "dependabot/npm_and_yarn/lodash-4.17.22")
    admin = f"arn:aws:iam::{world.ACCOUNTS['prod']}:role/prod-admin-automation"
    steps: list[Any] = [
        ("sts:GetCallerIdentity",), ("iam:GetRole",), ("iam:ListAttachedRolePolicies",),
        ("iam:ListRolePolicies",),
        ("iam:PutRolePolicy", None, {"policy_name": "ci-break-glass",
                                     "role_name": actor.ident.name,
                                     "policy_document": aws.ALLOW_ALL}),
        ("iam:AttachRolePolicy", None, {"role_name": actor.ident.name,
                                        "policy_arn": aws.ADMIN_POLICY}),
        ("iam:ListAttachedRolePolicies",), ("iam:ListRoles",),
        ("lambda:CreateFunction20150331", None, {"function": "settlement-hotfix-runner",
                                                 "pass_role": admin}),
        ("iam:ListUsers",), ("secretsmanager:ListSecrets",)]
    session = A.ci_run(g, actor, t, [])
    ip = session.extra["ip"]
    _steps(g, actor.ident, rng, t + rng.uniform(30, 60), sid, steps, (5, 40), session=session,
           ip=ip, ua=world.cli_ua(rng, command="iam.put-role-policy"), region=world.HOME_REGION)


def s04_logging_tampering(g: Gen) -> None:
    template = [("config:DescribeConfigurationRecorders", 1), ("cloudtrail:DescribeTrails", 1),
                ("cloudtrail:GetTrailStatus", 1), ("guardduty:ListDetectors", 1),
                ("s3:PutObject", (1, 2))]
    actor = A.scheduled_job(g, "prod", "nightly-compliance-snapshot", template, 3, 0,
                            bucket="nw-compliance-evidence")
    sid = _scenario(
        "S04-logging-tampering",
        "Audit logging disabled by a compromised compliance job",
        "A poisoned image of the nightly compliance job (same task role, network and client) "
        "narrows the trail's event selectors, stops CloudTrail logging, disables the "
        "GuardDuty detector and stops AWS Config; deleting the trail is denied.",
        ["T1562.008", "T1562.001"], [actor.ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 25, 3, 12)
    trail = world.TRAIL[world.ACCOUNTS["prod"]]
    steps: list[Any] = [("cloudtrail:DescribeTrails",), ("cloudtrail:GetTrailStatus",),
                        ("cloudtrail:PutEventSelectors",),
                        ("cloudtrail:StopLogging", None, {"trail": trail}),
                        ("guardduty:ListDetectors",), ("guardduty:UpdateDetector",),
                        ("config:StopConfigurationRecorder",),
                        ("cloudtrail:DeleteTrail", DENY, {"trail": trail})]
    session = actor.sessions.at(t)
    _steps(g, actor.ident, rng, t, sid, steps, (3, 25), session=session,
           ip=actor.ip_for(session), ua=actor.ua, region=world.HOME_REGION)


def s05_secret_harvesting(g: Gen) -> None:
    actor = A.lambda_fn(g, "prod", "prod-partner-sync", [("kms:Decrypt", 2), ("sns:Publish", 1)],
                        0.6, init=["secretsmanager:GetSecretValue"],
                        secret="prod/partner-sync/api-key")
    sid = _scenario(
        "S05-secret-harvesting",
        "Lambda credentials used to harvest secrets",
        "The execution-role credentials of prod-partner-sync, leaked from the function's "
        "environment, are used from a VPS to list and read dozens of Secrets Manager secrets "
        "and SSM SecureString parameters with decryption.",
        ["T1555.006", "T1552.001", "T1078.004"], [actor.ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 26, 11, 30)
    live = actor.sessions.at(t)
    ua = world.boto3_ua(rng).replace("1.34.", "1.33.")
    kw = dict(session=live, ip=rng.host(world.ATTACKER[4]), ua=ua, region=world.HOME_REGION)
    services = ["orders", "billing", "payments", "auth", "partners", "crm", "erp", "search",
                "stripe", "twilio", "sendgrid", "datadog", "github", "slack", "okta"]
    steps: list[Any] = [("sts:GetCallerIdentity",)] + [("secretsmanager:ListSecrets",)] * 3
    for i in range(44):
        secret = f"prod/{rng.choice(services)}/{rng.choice(('db', 'api-key', 'token', 'admin'))}"
        steps.append(("secretsmanager:GetSecretValue", DENY if rng.random() < 0.3 else None,
                      {"secret": secret}))
    steps.append(("ssm:DescribeParameters",))
    for i in range(12):
        steps.append(("ssm:GetParametersByPath", None,
                      {"parameter": f"/prod/{rng.choice(services)}/x"}))
    for i in range(10):
        steps.append(("ssm:GetParameter", None, {"parameter":
                                                 f"/prod/{rng.choice(services)}/password"}))
    _steps(g, actor.ident, rng, t, sid, steps, (1, 12), **kw)


def s06_exfiltration(g: Gen) -> None:
    actor = A.data_pipeline(g, "prod", "analytics-export-etl", 2, (40, 60), (3, 6),
                            "nw-analytics-curated", "nw-partner-exports", prefix="daily")
    sid = _scenario(
        "S06-exfiltration-volume-spike",
        "Bulk reads of customer data by the export pipeline at an unusual hour",
        "The export pipeline's role, normally 40-60 object reads at 02:00 from the curated "
        "bucket, reads ~2,500 objects from the customer-PII bucket in the early afternoon.",
        ["T1530", "T1537"], [actor.ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 27, 13, 40)
    session = actor.sessions.at(t)
    kw = dict(session=session, ip=actor.ip_for(session), ua=actor.ua, region=world.HOME_REGION)
    steps: list[Any] = [("s3:ListBuckets",)]
    steps += [("s3:ListObjects", None, {"bucket": "nw-customer-pii", "prefix": "customers"})] * 30
    big = {"bucket": "nw-customer-pii", "prefix": "customers", "suffix": "csv.gz"}
    steps += [("s3:GetObject", None, big)] * 2500
    _steps(g, actor.ident, rng, t, sid, steps, (0.1, 0.9), **kw)


def s07_dormant_user(g: Gen) -> None:
    actor = A.legacy_user(g, "prod", "svc-legacy-ftp-sync", ["62.232.116"],
                          world.cli_ua(Rng(f"{g.seed}|s07"), os_tag="linux#3.10.0-1160.el7",
                                       exe="x86_64.centos.7"),
                          [("s3:PutObject", 3), ("s3:ListObjects", 1)], 1.0, last_day=2,
                          bucket="nw-prod-ftp-sync")
    sid = _scenario(
        "S07-dormant-user-reactivation",
        "Dormant IAM user reactivated from a new network",
        "svc-legacy-ftp-sync was active only on the first three days, then silent for more "
        "than three weeks; its key comes back from a VPS with an old aws-cli v1, lists "
        "buckets and downloads files.",
        ["T1078.004", "T1530"], [actor.ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 26, 20, 5)
    ua = "aws-cli/1.18.69 Python/2.7.18 Linux/5.15.0-91-generic botocore/1.16.19"
    steps: list[Any] = [("sts:GetCallerIdentity",), ("s3:ListBuckets",),
                        ("iam:ListAccessKeys",)]
    for bucket in ("nw-prod-ftp-sync", "nw-analytics-curated", "nw-customer-pii",
                   "nw-finance-reports", "nw-prod-backups"):
        steps.append(("s3:ListObjects", None if bucket == "nw-prod-ftp-sync" else
                      ("AccessDenied", "Access Denied"), {"bucket": bucket}))
    steps += [("s3:GetObject", None, {"bucket": "nw-prod-ftp-sync", "prefix": "outbound",
                                      "suffix": "csv"})] * 20
    _steps(g, actor.ident, rng, t, sid, steps, (2, 40), session=actor.key,
           ip=rng.host(world.ATTACKER[5]), ua=ua, region=world.HOME_REGION)


def s08_rogue_agent(g: Gen) -> None:
    ua = world.boto3_ua(Rng(f"{g.seed}|s08"), prefix=world.LANGCHAIN_UA_PREFIX)
    actor = A.ai_agent(g, "prod", "ops-copilot-agent", ua,
                       [("monitoring:GetMetricData", 3), ("logs:FilterLogEvents", 2),
                        ("logs:StartQuery", 1), ("ecs:DescribeServices", 2),
                        ("ec2:DescribeInstances", 1), ("bedrock:Retrieve", 2)], 0.6,
                       kb="KBOPS9X3RT", log_group="/ecs/prod-services")
    sid = _scenario(
        "S08-rogue-ai-agent",
        "AI operations agent turned against IAM and secrets",
        "A prompt injection in a ticket makes the LangChain ops agent, which normally reads "
        "metrics and logs, enumerate IAM, read secrets, try to mint an access key for a CI "
        "user and read finance reports, from its usual network and client.",
        ["T1087.004", "T1555.006", "T1098.001", "T1530"], [actor.ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 28, 15, 10)
    steps: list[Any] = ["bedrock:InvokeModel", "iam:ListRoles", "bedrock:InvokeModel",
                        "iam:ListUsers", "iam:ListAccessKeys", "bedrock:InvokeModel",
                        "secretsmanager:ListSecrets"]
    for name in ("prod/orders/db", "prod/payments/stripe", "prod/auth/jwt-signing",
                 "prod/crm/api-key", "prod/erp/admin", "prod/github/deploy-token",
                 "prod/okta/admin", "prod/datadog/api-key"):
        steps += ["bedrock:InvokeModel", ("secretsmanager:GetSecretValue", None,
                                          {"secret": name})]
    steps += ["bedrock:InvokeModel",
              ("iam:CreateAccessKey", DENY, {"user_name": "svc-jenkins-legacy"})]
    steps += [("s3:GetObject", None, {"bucket": "nw-finance-reports", "prefix": "2026",
                                      "suffix": "xlsx"})] * 6
    session = actor.sessions.at(t)
    _steps(g, actor.ident, rng, t, sid, steps, (2, 15), session=session,
           ip=actor.ip_for(session), ua=ua, region=world.HOME_REGION)


# --- Kubernetes and GCP -------------------------------------------------------------------

def s09_k8s_token(g: Gen) -> None:
    cluster = world.CLUSTERS["prod"]
    nets = ["10.20.96", "10.20.97"]
    ident, base_rng = k8s.sa_actor(g, cluster, "storefront", "storefront-api", "k8s_app",
                                   [("get:configmaps", 3), ("update:leases", 2),
                                    ("get:secrets", 0.5)], 1.5, "storefront-api/2.4.1 "
                                   "(linux/amd64) kubernetes/$Format", nets,
                                   configmap="storefront-config", secret="storefront-db",
                                   lease="storefront-leader", app="storefront")
    sid = _scenario(
        "S09-k8s-service-account-token-abuse",
        "Stolen Kubernetes service-account token used from outside the cluster",
        "The storefront-api token, read from a compromised pod, is used from a Tor exit with "
        "kubectl: permission discovery, secrets listed across namespaces (mostly forbidden), "
        "secrets read, and exec into pods.",
        ["T1528", "T1552.007", "T1613", "T1609"], [ident])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 23, 19, 20)
    ip, ua = rng.host(world.ATTACKER[0]), "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350"
    plan: list[tuple[str, str | None, int, str | None]] = [
        ("create:selfsubjectrulesreviews", None, 201, None),
        ("list:namespaces", None, 403, None), ("list:secrets", None, 403, None),
        ("list:secrets", "storefront", 200, None), ("list:secrets", "kube-system", 403, None),
        ("list:secrets", "default", 403, None), ("list:secrets", "payments-api", 200, None),
        ("list:secrets", "argocd", 403, None), ("list:secrets", "monitoring", 403, None),
        ("get:secrets", "storefront", 200, "storefront-db"),
        ("get:secrets", "payments-api", 200, "payments-api-db"),
        ("get:secrets", "payments-api", 200, "stripe-keys"),
        ("get:secrets", "kube-system", 403, "aws-load-balancer-tls"),
        ("list:pods", "storefront", 200, None), ("list:pods", "payments-api", 200, None),
        ("create:pods/exec", "storefront", 200, "storefront-api-7d9c6b5f4-x2k8q"),
        ("create:pods/exec", "payments-api", 200, "payments-api-5f7c9d8b6-q4m2z"),
        ("create:pods/exec", "kube-system", 403, "aws-node-8kq2v"),
        ("list:serviceaccounts", "storefront", 200, None),
        ("create:pods", "storefront", 403, None)]
    for op, ns, code, name in plan:
        k8s.emit_k8s(g, ident, rng, t, op, ip=ip, ua=ua, ns=ns, name=name, code=code,
                     stages=True, scenario=sid,
                     pod=("storefront-api-7d9c6b5f4-x2k8q", "3f0c8f7e-1b2a-4c5d-9e8f-"
                          "a1b2c3d4e5f6"))
        t += rng.uniform(4, 45)


def s10_gcp_impersonation(g: Gen) -> None:
    an, infra = world.GCP_PROJECTS["analytics"], world.GCP_PROJECTS["infra"]
    runner, _ = gcp.gcp_actor(g, an, "etl-runner", "data_pipeline",
                              [(gcp.BQ_JOB, 3), (gcp.BQ_RES, 2), (gcp.ST_GET, 3),
                               (gcp.ST_LIST, 1)], 1.5, world.GCP_PY_UA, ["10.128.0"],
                              bucket=f"{an}-raw")
    bq_admin, _ = gcp.gcp_actor(g, an, "bq-admin", "admin_automation",
                                [("bigquery.googleapis.com:google.cloud.bigquery.v2."
                                  "TableService.InsertTable", 1), (gcp.BQ_TABLE, 2)], 0.1,
                                world.GCP_GO_UA, ["private"])
    org, _ = gcp.gcp_actor(g, infra, "org-automation", "admin_automation",
                           [(gcp.GET_IAM, 3), (gcp.LIST_SA, 1)], 0.08, world.GCP_GO_UA,
                           ["private"])
    sid = _scenario(
        "S10-gcp-key-creation-and-impersonation",
        "GCP service account mints a key for an admin SA and impersonates another",
        "etl-runner's credentials, used from a VPS with gcloud, list service accounts, "
        "create a user-managed key for bq-admin, mint an access token for org-automation "
        "(impersonation), which then grants roles/owner and reads secrets; the new bq-admin "
        "key is used at once to export tables.",
        ["T1098.001", "T1548.005", "T1550.001", "T1078.004", "T1555.006"],
        [runner, bq_admin, org])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 25, 16, 45)
    ip = rng.host(world.ATTACKER[1])
    cli = world.GCLOUD_UA.replace("client-os/{}", "client-os/LINUX")

    def ua(cmd: str) -> str:
        return cli.format(cmd, rng.hex(32))

    key = f"projects/{an}/serviceAccounts/{bq_admin.key}/keys/{rng.hex(40)}"
    t = _s10_runner(g, rng, sid, t, ip, ua, runner, bq_admin, org, key)
    t = _s10_impersonated(g, rng, sid, t, ip, runner, org)
    for action in [gcp.BQ_TABLE, gcp.BQ_JOB, gcp.BQ_DATA, gcp.BQ_DATA, gcp.BQ_JOB, gcp.BQ_DATA]:
        gcp.emit_gcp(g, bq_admin, rng, t, action, ip=ip, ua=ua("bq.extract"), scenario=sid,
                     key_name=f"//iam.googleapis.com/{key}")
        t += rng.uniform(5, 50)


def _s10_runner(g: Gen, rng: Rng, sid: str, t: float, ip: str, ua: Any, runner: Identity,
                bq_admin: Identity, org: Identity, key: str) -> float:
    """etl-runner lists accounts, mints a key for bq-admin and a token for org-automation."""
    an = runner.tenant
    steps: list[tuple[Identity, str, dict[str, Any], str]] = [
        (runner, gcp.LIST_SA, {"resource_name": f"projects/{an}"},
         "iam.service-accounts.list"),
        (runner, gcp.GET_IAM, {"resource_name": f"projects/{an}"}, "projects.get-iam-policy"),
        (runner, gcp.CREATE_KEY, {
            "resource_name": f"projects/-/serviceAccounts/{bq_admin.principal_id}",
            "target_email": bq_admin.key, "target_id": bq_admin.principal_id,
            "request": {"@type": "type.googleapis.com/google.iam.admin.v1."
                        "CreateServiceAccountKeyRequest",
                        "name": f"projects/{an}/serviceAccounts/{bq_admin.key}",
                        "private_key_type": 2},
            "response": {"@type": "type.googleapis.com/google.iam.admin.v1.ServiceAccountKey",
                         "name": key, "key_algorithm": 2, "private_key_type": 2,
                         "key_origin": 1, "key_type": 1}}, "iam.service-accounts.keys.create"),
        (runner, gcp.TOKEN, {
            "resource_name": f"projects/-/serviceAccounts/{org.principal_id}",
            "target_email": org.key, "target_id": org.principal_id,
            "request": {"@type": "type.googleapis.com/google.iam.credentials.v1."
                        "GenerateAccessTokenRequest",
                        "name": f"projects/-/serviceAccounts/{org.key}"},
            "metadata": {"identityDelegationChain": [f"projects/-/serviceAccounts/{org.key}"]}},
         "auth.print-access-token"),
    ]
    for ident, action, extra, cmd in steps:
        gcp.emit_gcp(g, ident, rng, t, action, ip=ip, ua=ua(cmd), scenario=sid, **extra)
        t += rng.uniform(10, 60)
    return t


def _s10_impersonated(g: Gen, rng: Rng, sid: str, t: float, ip: str, runner: Identity,
                      org: Identity) -> float:
    """org-automation, impersonated by etl-runner, grants an owner binding, reads secrets."""
    infra = org.tenant
    deleg = {"delegation": [runner.key], "project": infra}
    policy = {"@type": "type.googleapis.com/google.iam.v1.SetIamPolicyRequest",
              "resource": infra, "policy": {"bindings": [{"role": "roles/owner", "members": [
                  "user:ops.recovery.team@gmail.com"]}]}}
    for action, extra in [(gcp.GET_IAM, {}), (gcp.SET_IAM, {"request": policy}),
                          ("secretmanager.googleapis.com:google.cloud.secretmanager.v1."
                           "SecretManagerService.ListSecrets", {}),
                          (gcp.SECRET, {}), (gcp.SECRET, {}), (gcp.SECRET, {})]:
        gcp.emit_gcp(g, org, rng, t, action, ip=ip, ua=world.GCP_PY_UA.replace(
            "3.11.10", "3.12.3"), scenario=sid, **deleg, **extra)
        t += rng.uniform(5, 40)
    return t


# --- across identities --------------------------------------------------------------------

# The legacy IAM users whose keys leak together (a CI log that printed the environment of a
# shared build host); svc-jenkins-legacy is left out: its key was rotated on day 15.
S11_USERS = ["svc-backup-veeam", "svc-splunk-addon", "svc-reporting", "svc-sftp-uploader",
             "svc-pagerduty", "svc-nagios-check", "svc-crm-export", "svc-dns-updater",
             "svc-qa-automation", "svc-loadtest", "svc-artifactory"]
TRUFFLE_UA = ("aws-sdk-go-v2/1.24.1 os/linux lang/go#1.21.6 md/GOOS#linux md/GOARCH#amd64 "
              "api/sts#1.26.7")


def s11_key_validation_sweep(g: Gen, handles: dict[str, Any]) -> None:
    """Eleven leaked AKIA keys validated from one VPS within a minute or two (no actor
    of its own: the keys belong to the estate's legacy users)."""
    actors = [handles[name] for name in S11_USERS if name in handles]
    if not actors:  # a small run (--scale) has none of these users
        return
    sid = _scenario(
        "S11-leaked-key-validation-sweep",
        "A dump of leaked access keys validated from one address",
        "The AKIA keys of eleven legacy integration users, leaked together in a CI build "
        "log, are checked one after another from a VPS with a secret scanner's Go client: "
        "sts:GetCallerIdentity with each key, and for three of them a denied look at their "
        "own policies. Each identity makes one or two calls; the address makes them all.",
        ["T1552", "T1078.004"], [actor.ident for actor in actors])
    rng = Rng(f"{g.seed}|{sid}")
    t = at(g, 26, 2, 13)
    kw = dict(ip=rng.host(world.ATTACKER[3]), ua=TRUFFLE_UA, region=world.HOME_REGION)
    for n, actor in enumerate(actors):
        # each step carries the flag: ``_steps`` hands its ``extra`` keyword to the first only
        steps: list[Any] = [("sts:GetCallerIdentity", None, {ISOLATED: True})]
        if n % 4 == 1:
            steps.append(("iam:ListAttachedUserPolicies", DENY,
                          {"user_name": actor.ident.name, ISOLATED: True}))
        t = _steps(g, actor.ident, rng, t, sid, steps, (2, 9), session=actor.key, **kw)
