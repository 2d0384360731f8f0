"""The AWS machine population: how many of each archetype, their API sets and rhythms,
and the benign changes (a new role, a deploy adding one API, a maintenance burst, a weekly
job, a key rotation, a tool upgrade)."""

from __future__ import annotations

from typing import Any

from . import archetypes as A
from . import world
from .core import DAY, HOUR, Identity, Rng
from .gen import Gen, Sessions, aws_role, cross_account_assume, rare_errors

POLLERS = [
    ("ecs-health-poller", 300, ["ecs:DescribeServices"], {"ecs_cluster": "prod-services"}),
    ("tg-health-poller", 3600, ["elasticloadbalancing:DescribeTargetHealth"], {}),
    ("asg-capacity-watch", 7200, ["autoscaling:DescribeAutoScalingGroups",
                                  "ec2:DescribeInstanceStatus"], {}),
    ("queue-depth-monitor", 3600, ["monitoring:GetMetricData"],
     {"metric_ns": "AWS/SQS", "metric": "ApproximateNumberOfMessagesVisible"}),
    ("rds-replica-lag-check", 10800, ["rds:DescribeDBInstances", "monitoring:GetMetricData"],
     {"metric_ns": "AWS/RDS", "metric": "ReplicaLag"}),
    ("cert-expiry-watch", 21600, ["acm:ListCertificates", "acm:DescribeCertificate",
                                 "acm:DescribeCertificate"], {}),
    ("dns-drift-check", 21600, ["route53:ListHostedZones", "route53:ListResourceRecordSets",
                               "route53:ListResourceRecordSets"], {}),
    ("cost-guard", 21600, ["ec2:DescribeInstances", "ec2:DescribeVolumes",
                          "rds:DescribeDBInstances", "ecs:ListTasks"], {}),
]

JOBS: dict[str, list[tuple[str, Any]]] = {
    "rds-snapshot": [("rds:DescribeDBInstances", 1), ("rds:CreateDBSnapshot", (1, 3)),
                     ("rds:DescribeDBSnapshots", (2, 5)), ("rds:DeleteDBSnapshot", (1, 2))],
    "ebs-snapshot": [("ec2:DescribeVolumes", 1), ("ec2:CreateSnapshot", (2, 5)),
                     ("ec2:CreateTags", (2, 5)), ("ec2:DescribeSnapshots", 1),
                     ("ec2:DeleteSnapshot", (1, 3))],
    "report": [("athena:StartQueryExecution", (1, 3)), ("athena:GetQueryExecution", (2, 6)),
               ("athena:GetQueryResults", (1, 3)), ("s3:PutObject", (1, 2))],
    "ecr-cleanup": [("ecr:DescribeImages", (1, 3)), ("ecr:BatchGetImage", (0, 2))],
    "cert-audit": [("acm:ListCertificates", 1), ("acm:DescribeCertificate", (3, 8))],
    "ddb-backup": [("dynamodb:ListTables", 1), ("dynamodb:CreateBackup", (2, 4)),
                   ("dynamodb:DescribeContinuousBackups", (2, 4))],
    "export": [("s3:ListObjects", 1), ("s3:GetObject", (4, 12)), ("s3:PutObject", (1, 4)),
               ("kms:Decrypt", 1)],
    "config-sync": [("secretsmanager:GetSecretValue", (1, 3)), ("ssm:GetParametersByPath", 1),
                    ("ssm:GetParameter", (1, 3))],
    "log-archive": [("logs:DescribeLogGroups", 1), ("s3:PutObject", (2, 5))],
}
WEEKLY_REVIEW = [("iam:GenerateCredentialReport", 1), ("iam:GetCredentialReport", 1),
                 ("iam:ListUsers", 1), ("iam:ListAccessKeys", (6, 12)),
                 ("iam:GetAccessKeyLastUsed", (6, 12)), ("iam:ListRoles", 1)]

LAMBDA_PROFILES: list[tuple[str, list[tuple[str, float]], list[str], dict[str, Any]]] = [
    ("api", [("kms:Decrypt", 3), ("sns:Publish", 1)], ["secretsmanager:GetSecretValue"], {}),
    ("stream", [("kms:Decrypt", 2), ("s3:PutObject", 2)], ["ssm:GetParameter"],
     {"bucket": "nw-events-archive", "prefix": "stream"}),
    ("webhook", [("sns:Publish", 2), ("kms:GenerateDataKey", 1)],
     ["secretsmanager:GetSecretValue", "ssm:GetParameter"], {}),
    ("thumbnail", [("s3:GetObject", 2), ("s3:PutObject", 2)], [],
     {"bucket": "nw-media-uploads", "prefix": "images", "suffix": "jpg"}),
    ("auth", [("kms:Decrypt", 3), ("secretsmanager:GetSecretValue", 0.2)],
     ["secretsmanager:GetSecretValue"], {}),
    ("etl", [("s3:GetObject", 2), ("s3:PutObject", 1), ("glue:GetTable", 0.5)],
     ["ssm:GetParameter"], {"bucket": "nw-analytics-raw"}),
]
LAMBDA_NAMES = ["orders-api", "cart-api", "invoice-renderer", "search-indexer", "email-sender",
                "sms-sender", "image-resizer", "pdf-export", "stripe-webhook", "auth-token",
                "session-cleanup", "price-sync", "stock-sync", "audit-forwarder", "slack-notify",
                "geo-lookup", "tax-calc", "fx-rates", "coupon-api", "returns-api",
                "shipping-quote", "label-printer", "catalog-feed", "sitemap-builder",
                "review-moderation", "loyalty-points", "fraud-precheck", "kyc-verify",
                "partner-webhook", "billing-events", "usage-meter", "quota-check",
                "signup-verify", "password-reset", "report-mailer", "cdn-purge", "dlq-replayer",
                "metrics-forwarder", "feature-flags", "ab-assign", "clickstream-enrich",
                "order-events", "refund-api", "wishlist-api", "gift-cards", "store-locator",
                "support-ticket", "chat-router", "survey-collector", "nps-ingest"]
EC2_ROLES = ["web-api", "checkout-web", "admin-portal", "batch-worker", "queue-consumer",
             "media-transcoder", "legacy-monolith", "reporting-server", "search-node",
             "cache-warmer", "ftp-gateway", "vpn-gateway", "jenkins-agent", "bastion",
             "kafka-broker", "zookeeper", "airflow-worker", "grafana", "nginx-edge",
             "mail-relay", "build-cache", "ldap-proxy", "partner-sftp", "erp-connector"]
EC2_WEIGHTS = [("s3:GetObject", 3), ("s3:PutObject", 2), ("kms:Decrypt", 2),
               ("ssm:GetParameter", 1), ("logs:CreateLogStream", 1),
               ("ec2:DescribeTags", 0.5), ("secretsmanager:GetSecretValue", 0.5),
               ("ssm:UpdateInstanceInformation", 2)]
CI_REPOS = ["checkout", "payments", "orders", "catalog", "search", "web-frontend", "admin-ui",
            "notifications", "billing", "pricing", "inventory", "shipping", "auth-service",
            "gateway", "reporting", "fraud", "ledger", "media", "partners", "loyalty",
            "docs-site", "marketing-site", "infra-lambdas", "data-jobs", "mobile-bff",
            "tax-service", "returns", "subscriptions", "emails", "exports"]
CI_KINDS = ["ecs", "ecs", "lambda", "ecs", "static", "cfn"]
LEGACY_USERS = [
    ("prod", "svc-jenkins-legacy", "onprem", "java", [("ecr:GetAuthorizationToken", 2),
                                                       ("ecr:PutImage", 1),
                                                       ("ecs:UpdateService", 0.5),
                                                       ("s3:PutObject", 1)], 0.6, "business"),
    ("prod", "svc-backup-veeam", "onprem", "java", [("s3:PutObject", 4), ("s3:ListObjects", 1)],
     0.5, "flat"),
    ("prod", "svc-splunk-addon", "vendor", "boto3", [("s3:ListObjects", 1),
                                                      ("s3:GetObject", 3),
                                                      ("monitoring:GetMetricData", 1)], 1.5,
     "flat"),
    ("prod", "svc-reporting", "onprem", "java", [("athena:StartQueryExecution", 1),
                                                  ("athena:GetQueryResults", 1),
                                                  ("s3:GetObject", 2)], 0.4, "business"),
    ("prod", "svc-sftp-uploader", "onprem", "cli", [("s3:PutObject", 3), ("s3:ListObjects", 1)],
     0.4, "flat"),
    ("prod", "svc-pagerduty", "vendor", "go", [("monitoring:DescribeAlarms", 2),
                                                ("monitoring:GetMetricData", 1)], 0.8, "flat"),
    ("prod", "svc-nagios-check", "onprem", "cli", [("ec2:DescribeInstanceStatus", 2),
                                                    ("elasticloadbalancing:DescribeTargetHealth",
                                                     1)], 1.0, "flat"),
    ("prod", "svc-crm-export", "vendor", "java", [("s3:GetObject", 2), ("s3:ListObjects", 1)],
     0.3, "flat"),
    ("prod", "svc-dns-updater", "onprem", "boto3", [("route53:ChangeResourceRecordSets", 1),
                                                     ("route53:GetChange", 1),
                                                     ("route53:ListResourceRecordSets", 1)],
     0.3, "flat"),
    ("staging", "svc-qa-automation", "onprem", "boto3", [("s3:GetObject", 2),
                                                          ("lambda:GetFunction20150331v2", 1)],
     0.4, "business"),
    ("staging", "svc-loadtest", "onprem", "go", [("monitoring:GetMetricData", 1),
                                                  ("ecs:DescribeServices", 1)], 0.2,
     "business"),
    ("shared", "svc-artifactory", "onprem", "java", [("s3:PutObject", 2), ("s3:GetObject", 3)],
     0.6, "flat"),
]
IRSA = [
    ("eks-external-dns", "system:serviceaccount:kube-system:external-dns",
     [("route53:ListResourceRecordSets", 5), ("route53:ChangeResourceRecordSets", 0.3),
      ("route53:ListHostedZones", 1)], 1.0, world.go_sdk_ua("external-dns", "v0.15.0"), "go"),
    ("eks-aws-load-balancer-controller", "system:serviceaccount:kube-system:"
     "aws-load-balancer-controller",
     [("elasticloadbalancing:DescribeTargetGroups", 2),
      ("elasticloadbalancing:DescribeTargetHealth", 3),
      ("elasticloadbalancing:RegisterTargets", 0.5),
      ("elasticloadbalancing:DeregisterTargets", 0.5),
      ("ec2:DescribeSecurityGroups", 1)], 2.0,
     world.go_sdk_ua("elbv2.k8s.aws", "v2.9.2"), "go"),
    ("eks-karpenter", "system:serviceaccount:karpenter:karpenter",
     [("ec2:DescribeInstanceTypes", 1), ("ec2:DescribeSubnets", 1), ("ec2:DescribeImages", 1),
      ("pricing:GetProducts", 0.5), ("ec2:DescribeLaunchTemplateVersions", 1)], 1.5,
     world.go_v2_ua("ec2") + " karpenter.sh-v1.0.6", "go"),
    ("eks-external-secrets", "system:serviceaccount:external-secrets:external-secrets",
     [("secretsmanager:GetSecretValue", 4), ("secretsmanager:DescribeSecret", 1)], 1.2,
     world.go_v2_ua("secretsmanager") + " external-secrets/v0.10.4", "go"),
    ("eks-ebs-csi-driver", "system:serviceaccount:kube-system:ebs-csi-controller-sa",
     [("ec2:DescribeVolumes", 3), ("ec2:CreateVolume", 0.2), ("ec2:AttachVolume", 0.3),
      ("ec2:DetachVolume", 0.3)], 1.0, world.go_v2_ua("ec2") + " ebs-csi-driver/v1.36.0", "go"),
    ("eks-velero", "system:serviceaccount:velero:velero",
     [("ec2:CreateSnapshot", 1), ("ec2:DescribeSnapshots", 1), ("s3:PutObject", 2)], 0.3,
     world.go_sdk_ua("velero", "v1.14.1"), "go"),
    ("eks-fluent-bit", "system:serviceaccount:logging:fluent-bit",
     [("logs:CreateLogStream", 2), ("logs:DescribeLogStreams", 1)], 0.8,
     "aws-fluent-bit-plugins/1.9.10", "go"),
]
SERVICE_LINKED = [
    ("prod", "ecs.amazonaws.com", "AWSServiceRoleForECS", "ecs-service-scheduler",
     [("ec2:CreateNetworkInterface", 1), ("ec2:DescribeNetworkInterfaces", 1),
      ("elasticloadbalancing:RegisterTargets", 0.5)], 0.8),
    ("prod", "elasticloadbalancing.amazonaws.com", "AWSServiceRoleForElasticLoadBalancing",
     "ElasticLoadBalancing", [("ec2:DescribeNetworkInterfaces", 1),
                              ("ec2:DescribeSubnets", 0.5)], 0.4),
    ("prod", "rds.amazonaws.com", "AWSServiceRoleForRDS", "SLRManagement",
     [("ec2:DescribeNetworkInterfaces", 1), ("ec2:DescribeSecurityGroups", 0.5)], 0.2),
    ("prod", "config.amazonaws.com", "AWSServiceRoleForConfig", "AWSConfig-Describe",
     [("ec2:DescribeInstances", 1), ("iam:GetRole", 1), ("s3:GetBucketPolicy", 1),
      ("rds:DescribeDBInstances", 0.5), ("lambda:GetFunction20150331v2", 0.5)], 1.5),
    ("prod", "guardduty.amazonaws.com", "AWSServiceRoleForAmazonGuardDuty", "GuardDuty",
     [("ec2:DescribeInstances", 1), ("ec2:DescribeImages", 0.3)], 0.3),
    ("prod", "trustedadvisor.amazonaws.com", "AWSServiceRoleForTrustedAdvisor",
     "TrustedAdvisor", [("ec2:DescribeVolumes", 1), ("iam:GetAccountSummary", 1),
                        ("s3:GetBucketAcl", 1)], 0.2),
    ("prod", "eks.amazonaws.com", "AWSServiceRoleForAmazonEKS", "EKS",
     [("ec2:DescribeNetworkInterfaces", 1), ("ec2:CreateNetworkInterface", 0.2)], 0.3),
    ("staging", "ecs.amazonaws.com", "AWSServiceRoleForECS", "ecs-service-scheduler",
     [("ec2:CreateNetworkInterface", 1), ("ec2:DescribeNetworkInterfaces", 1)], 0.3),
    ("staging", "config.amazonaws.com", "AWSServiceRoleForConfig", "AWSConfig-Describe",
     [("ec2:DescribeInstances", 1), ("iam:GetRole", 1)], 0.6),
    ("shared", "config.amazonaws.com", "AWSServiceRoleForConfig", "AWSConfig-Describe",
     [("ec2:DescribeInstances", 1), ("iam:GetRole", 1)], 0.4),
]


def build(g: Gen, rate: float = 1.0) -> dict[str, Any]:
    """Simulate the AWS machine estate; returns handles the scenarios and humans reuse."""
    rng = Rng(f"{g.seed}|estate")
    h: dict[str, Any] = {}
    _pollers(g, rng)
    _jobs(g, rng)
    slr = _service_linked(g)
    h["asg_slr"] = {env: A.service_linked(g, env, "autoscaling.amazonaws.com",
                                          "AWSServiceRoleForAutoScaling", "AutoScaling",
                                          [("autoscaling:DescribeScalingActivities", 1)], 0.05)
                    for env in ("prod", "staging")}
    h["slr"] = slr
    _lambdas(g, rng, rate)
    _ec2(g, rng, rate, h["asg_slr"])
    _ci(g, rng, rate)
    _irsa(g)
    _legacy(g, rng, h)
    h["terraform"] = terraform(g, rng)
    _pipelines(g)
    _key_rotations(g)
    A.ai_agent(g, "prod", "support-assistant-bedrock", world.BEDROCK_AGENT_UA,
               [("bedrock:Retrieve", 3), ("dynamodb:DescribeTable", 0.5),
                ("s3:GetObject", 1)], 0.4, bucket="nw-support-kb", kb="KB7QX2M4ZP",
               model="anthropic.claude-3-haiku-20240307-v1:0")
    return h


def _pollers(g: Gen, rng: Rng) -> None:
    for name, period, actions, res in g.pick(POLLERS):
        A.poller(g, "prod", name, period, actions, **res)
    A.poller(g, "shared", "org-health-check", 10800, ["sts:GetCallerIdentity"], ua_kind="go")


def _jobs(g: Gen, rng: Rng) -> None:
    names = list(JOBS)
    specs = [("prod", f"nightly-{n}", n) for n in names] + \
        [("staging", f"nightly-{n}", n) for n in names[:2]] + \
        [("prod", f"nightly-{n}-eu", n) for n in ("rds-snapshot",)] + \
        [("shared", f"nightly-{n}", n) for n in ("log-archive", "ecr-cleanup", "config-sync")]
    for i, (env, name, tmpl) in enumerate(g.pick(specs)):
        hour = 1 + (i * 5) % 6
        kinds = ("boto3", "boto3", "java", "cli", "go")
        bursts = {18: 6.0} if name == "nightly-rds-snapshot" and env == "prod" else None
        region = "eu-west-1" if name.endswith("-eu") else world.HOME_REGION
        A.scheduled_job(g, env, name, JOBS[tmpl], hour, (i * 13) % 60,
                        ua_kind=kinds[i % len(kinds)], bursts=bursts, region=region,
                        bucket=f"nw-{env}-{tmpl}", db=rng.choice(("orders-db", "billing-db",
                                                                  "catalog-db")))
    A.scheduled_job(g, "prod", "weekly-access-review", WEEKLY_REVIEW, 5, 30, weekdays=(6,))
    A.scheduled_job(g, "staging", "weekly-cost-report", JOBS["report"], 6, 0, weekdays=(0,))


def _key_rotations(g: Gen) -> None:
    """KMS rotates customer keys on its own: ``AwsServiceEvent`` records whose
    ``userIdentity`` has no type, only the account and the invoking service."""
    for env, acct in world.ACCOUNTS.items():
        rng = Rng(f"{g.seed}|kms-rotation|{env}")
        kms = Identity(key=f"aws-service:kms.amazonaws.com@{acct}", source="aws",
                       archetype="aws_service_event", kind="machine", tenant=acct,
                       name="kms.amazonaws.com")
        keys = [rng.uuid() for _ in range(3)]
        for day in range(rng.randint(0, 9), g.days, 10):
            for key in keys:
                t = g.day_t(day) + rng.uniform(0, DAY)
                arn = f"arn:aws:kms:us-east-1:{acct}:key/{key}"
                g.emit(kms, rng, t, "kms:RotateKey", ip="kms.amazonaws.com",
                       ua="kms.amazonaws.com", region="us-east-1", params=None,
                       extra={"ui": {"accountId": acct, "invokedBy": "kms.amazonaws.com"},
                              "event_type": "AwsServiceEvent", "additional": {"keyId": key},
                              "resources": [{"accountId": acct, "type": "AWS::KMS::Key",
                                             "ARN": arn}],
                              "service_details": {"keyOrigin": "AWS_KMS",
                                                  "keyRotationMode": "AUTOMATIC"}})


def _service_linked(g: Gen) -> dict[str, A.Actor]:
    out = {}
    for env, svc, role, session, weights, rate in SERVICE_LINKED:
        out[f"{env}/{role}"] = A.service_linked(g, env, svc, role, session, weights, rate * 0.3)
    return out


def _lambdas(g: Gen, rng: Rng, rate: float) -> None:
    for i, name in enumerate(g.pick(LAMBDA_NAMES)):
        env = "staging" if i % 12 == 3 else "prod"
        prof, weights, init, res = LAMBDA_PROFILES[i % len(LAMBDA_PROFILES)]
        region = "eu-west-1" if i % 25 == 5 else world.HOME_REGION
        added = (24, "kms:GenerateDataKey") if name == "invoice-renderer" else None
        runtime = "nodejs20.x" if i % 5 == 2 else rng.choice(("python3.12", "python3.11"))
        scale = 0.4 if env == "staging" or region != world.HOME_REGION else 1.0
        A.lambda_fn(g, env, f"{env}-{name}", weights, scale * rate * rng.uniform(0.03, 0.15),
                    init=init, runtime=runtime, added=added, region=region,
                    shape="business" if env == "staging" else "traffic",
                    secret=f"{env}/{name}/config", parameter=f"/{env}/{name}/settings",
                    topic=f"{env}-{name}-events", **res)
    A.lambda_fn(g, "prod", "prod-fraud-scorer", [("kms:Decrypt", 2), ("sns:Publish", 1)],
                0.25 * rate, init=["secretsmanager:GetSecretValue"], first_day=14,
                secret="prod/fraud-scorer/model-key")


def _ec2(g: Gen, rng: Rng, rate: float, asg: dict[str, A.Actor]) -> None:
    for i, name in enumerate(g.pick(EC2_ROLES)):
        env = "staging" if i == 3 else "prod"
        if name in ("bastion", "vpn-gateway", "ldap-proxy"):
            env = "shared"
        weights = [(a, w * rng.uniform(0.3, 1.5)) for a, w in EC2_WEIGHTS]
        quiet = 0.3 if env != "prod" else 1.0
        A.ec2_role(g, env, f"{env}-{name}-ec2", weights, quiet * rate * rng.uniform(0.04, 0.2),
                   instances=1 + (rng.random() < 0.3), delivery="1.0" if name == "legacy-monolith"
                   else "2.0", asg_slr=asg.get(env), bucket=f"nw-{env}-{name}",
                   parameter=f"/{env}/{name}/config", secret=f"{env}/{name}/db")


def _ci(g: Gen, rng: Rng, rate: float) -> None:
    for i, repo in enumerate(g.pick(CI_REPOS)):
        kind = CI_KINDS[i % len(CI_KINDS)]
        res = {"ecr_repo": repo, "ecs_service": repo, "function": f"prod-{repo}",
               "bucket": f"nw-{repo}-site", "stack": f"{repo}-stack",
               "ecs_cluster": "prod-services"}
        A.ci_role(g, "prod", f"gha-deploy-{repo}", repo, kind, rate * rng.uniform(0.1, 0.45),
                  **res)
        if i % 2 == 0:
            res["ecs_cluster"] = "staging-services"
            A.ci_role(g, "staging", f"gha-deploy-{repo}", repo, kind,
                      rate * rng.uniform(0.1, 0.4), **res)
    A.ci_role(g, "prod", "gha-deploy-recommendations", "recommendations", "ecs", rate * 0.8,
              first_day=12, ecr_repo="recommendations", ecs_service="recommendations")


def _irsa(g: Gen) -> None:
    for name, sa, weights, rate, ua, style in IRSA:
        A.irsa_role(g, "prod", name, sa, weights, rate * 0.3, ua, session_style=style)


def _legacy(g: Gen, rng: Rng, h: dict[str, Any]) -> None:
    vendor = [world.aws_public24(rng), world.aws_public24(rng)]
    for env, name, where, ua_kind, weights, rate, shape in LEGACY_USERS:
        nets = world.ONPREM_DC if where == "onprem" else vendor
        ua = {"java": world.java_ua(rng), "boto3": world.boto3_ua(rng),
              "cli": world.cli_ua(rng, os_tag="linux#4.18.0-513.el8.x86_64",
                                  exe="x86_64.rhel.8"),
              "go": world.go_v2_ua("cloudwatch")}[ua_kind]
        rotate = (15, 15, 40) if name == "svc-jenkins-legacy" else None
        actor = A.legacy_user(g, env, name, nets, ua, weights, rate * 0.2, shape=shape,
                              rotate=rotate,
                              bucket=f"nw-{env}-{name.removeprefix('svc-')}")
        h[name] = actor


def terraform(g: Gen, rng: Rng) -> dict[str, Any]:
    """Atlantis in shared-services assuming plan/apply roles in prod and staging."""
    ident, arng = aws_role(g, "shared", "atlantis-terraform", "terraform_runner")
    runner = A.Actor(ident, arng, ips=g.nat["shared"], ua=world.cli_ua(arng))
    runner.sessions = Sessions(g, ident, 2 * DAY, A._task_id, phase=arng.uniform(0, DAY))
    targets = {}
    for env in ("prod", "staging"):
        for mode in ("plan", "apply"):
            t_ident, t_rng = aws_role(g, env, f"terraform-{mode}", "terraform_role")
            targets[(env, mode)] = A.Actor(t_ident, t_rng, ips=g.nat["shared"])
    reads = ["ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups",
             "ec2:DescribeRouteTables", "iam:GetRole", "iam:ListAttachedRolePolicies",
             "iam:ListRolePolicies", "iam:GetRolePolicy", "s3:GetBucketPolicy",
             "s3:GetBucketVersioning", "s3:GetBucketEncryption", "s3:GetBucketTagging",
             "rds:DescribeDBInstances", "ecs:DescribeServices", "ecs:DescribeClusters",
             "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeListeners",
             "route53:ListResourceRecordSets", "kms:DescribeKey", "logs:DescribeLogGroups",
             "lambda:GetFunction20150331v2", "eks:DescribeCluster", "secretsmanager:DescribeSecret"]
    writes = ["ec2:AuthorizeSecurityGroupIngress", "iam:PutRolePolicy", "ecs:UpdateService",
              "s3:PutBucketPolicy", "route53:ChangeResourceRecordSets"]
    errors = rare_errors(0.01)
    for day in range(g.days):
        if g.is_weekend(g.day_t(day) + 12 * HOUR):
            continue
        tf, provider = ("1.9.8", "5.76.0") if day < 19 else ("1.10.0", "5.80.0")
        for _ in range(rng.randint(0, 3)):
            t = g.day_t(day) + rng.uniform(14, 22) * HOUR
            env = rng.choice(("prod", "staging", "staging"))
            apply = rng.random() < 0.4
            target = targets[(env, "apply" if apply else "plan")]
            _terraform_run(g, runner, target, t, tf, provider, reads,
                           writes if apply else [], errors)
    return {"runner": runner, **{f"{e}/{m}": a for (e, m), a in targets.items()}}


def _terraform_run(g: Gen, runner: A.Actor, target: A.Actor, t: float, tf: str,
                   provider: str, reads: list[str], writes: list[str], errors: Any) -> None:
    rng = target.rng
    if target.sessions is None:
        target.sessions = Sessions(g, target.ident, HOUR, lambda i, r, tt: f"atlantis-{int(tt)}")
    target.sessions.mint = cross_account_assume(g, runner.ident, runner.sessions, target.ident,
                                                world.terraform_ua(tf, provider, "sts"),
                                                lambda r, s: runner.ip_for(s))
    s = target.sessions.at(t)
    ip = runner.ip_for(runner.sessions.at(t))
    actions = [rng.choice(reads) for _ in range(rng.randint(12, 28))] + writes[:rng.randint(0, 3)]
    for action in actions:
        t += rng.uniform(0.05, 2.0)
        g.emit(target.ident, rng, t, action, session=s, ip=ip,
               ua=world.terraform_ua(tf, provider, action.partition(":")[0]),
               region=world.HOME_REGION, error=errors(action, rng))


def _pipelines(g: Gen) -> None:
    A.data_pipeline(g, "prod", "etl-orders-nightly", 2, (15, 30), (3, 6),
                    "nw-analytics-raw", "nw-analytics-curated", prefix="orders")
    A.data_pipeline(g, "prod", "etl-clickstream-nightly", 3, (10, 20), (2, 5),
                    "nw-analytics-raw", "nw-analytics-curated", prefix="clickstream")
    A.data_pipeline(g, "staging", "etl-orders-nightly", 2, (8, 16), (2, 4),
                    "nw-staging-analytics", "nw-staging-analytics", prefix="orders")
