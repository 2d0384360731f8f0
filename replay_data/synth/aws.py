"""Render a ``Call`` as a complete CloudTrail record (eventVersion 1.08+).

The record keeps CloudTrail's own key order and shapes: ``userIdentity`` per principal type
(``AssumedRole`` with ``sessionContext.sessionIssuer``, ``IAMUser``, ``AWSService``,
``WebIdentityUser``, ``AWSAccount``, and the type-less ``AwsServiceEvent`` identity),
``requestParameters``/``responseElements`` per API, errors, ``resources``, ``tlsDetails``.
"""

from __future__ import annotations

from typing import Any, Callable

from .core import Call, Rng, aws_human_date, iso_s

READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup", "BatchGet", "Filter", "Retrieve",
                 "Search", "Query", "Scan", "GenerateCredentialReport", "BatchCheck")
DATA_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:ListObjects", "s3:HeadObject",
                "s3:DeleteObject", "sns:Publish"}
NOT_READ = {"kms:Decrypt", "kms:GenerateDataKey", "ecr:GetAuthorizationToken",
            "s3:HeadObject", "sts:AssumeRole"}
ALWAYS_READ = {"kms:Decrypt", "kms:GenerateDataKey", "bedrock:InvokeModel",
               "athena:GetQueryResults", "sts:GetCallerIdentity"}
VERSION_BY_SERVICE = {"s3": "1.10", "sts": "1.08", "iam": "1.09", "kms": "1.08",
                      "bedrock": "1.10", "secretsmanager": "1.09"}
NO_TLS_IPS = ("AWS Internal",)

Builder = Callable[[Call, Rng], None]
BUILDERS: dict[str, Builder] = {}


def builds(*actions: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        for action in actions:
            BUILDERS[action] = fn
        return fn
    return register


def read_only(action: str) -> bool:
    if action in ALWAYS_READ:
        return True
    name = action.partition(":")[2]
    return action not in NOT_READ and name.startswith(READ_PREFIXES)


def role_session_arn(c: Call) -> str:
    ident = c.ident
    if ident.res.get("ptype") == "IAMUser":
        return ident.key
    name = c.session.name if c.session else "session"
    return f"arn:aws:sts::{ident.tenant}:assumed-role/{ident.name}/{name}"


def denied(c: Call, resource: str = "*") -> tuple[str, str]:
    """The AccessDenied wording IAM uses for a missing identity-based permission."""
    svc, _, name = c.action.partition(":")
    perm = f"{svc}:{name}"
    if svc == "ec2":
        return ("Client.UnauthorizedOperation", "You are not authorized to perform this "
                "operation. User: " + role_session_arn(c) + " is not authorized to perform: "
                + perm + " because no identity-based policy allows the " + perm + " action")
    code = "AccessDenied" if svc in ("iam", "s3", "sts", "cloudtrail") else "AccessDeniedException"
    return (code, f"User: {role_session_arn(c)} is not authorized to perform: {perm} on "
            f"resource: {resource} because no identity-based policy allows the {perm} action")


# --- userIdentity -------------------------------------------------------------------------

def user_identity(c: Call) -> dict[str, Any]:
    if "ui" in c.extra:
        return c.extra["ui"]
    ident, s = c.ident, c.session
    ptype = ident.res.get("ptype", "AssumedRole")
    if ptype == "IAMUser":
        return {"type": "IAMUser", "principalId": ident.principal_id, "arn": ident.key,
                "accountId": ident.tenant, "accessKeyId": s.key_id if s else "",
                "userName": ident.name}
    ui: dict[str, Any] = {
        "type": "AssumedRole", "principalId": f"{ident.principal_id}:{s.name}",
        "arn": role_session_arn(c), "accountId": ident.tenant, "accessKeyId": s.key_id,
        "sessionContext": {
            "sessionIssuer": {"type": "Role", "principalId": ident.principal_id,
                              "arn": ident.key, "accountId": ident.tenant,
                              "userName": ident.name},
            "webIdFederationData": ({"federatedProvider": s.web_provider, "attributes": {}}
                                    if s.web_provider else {}),
            "attributes": {"creationDate": iso_s(s.created),
                           "mfaAuthenticated": "true" if s.mfa else "false"},
        },
    }
    if s.ec2_delivery:
        ui["sessionContext"]["ec2RoleDelivery"] = s.ec2_delivery
    if s.extra.get("source_identity"):
        ui["sessionContext"]["sourceIdentity"] = s.extra["source_identity"]
    if c.extra.get("invoked_by"):
        ui["invokedBy"] = c.extra["invoked_by"]
    return ui


# --- the record ---------------------------------------------------------------------------

def render(c: Call, rng: Rng) -> dict[str, Any]:
    """Build the CloudTrail record of ``c`` (``rng`` only fills request ids and payload)."""
    build = BUILDERS.get(c.action)
    if build is not None and c.params is None and c.response is None:
        build(c, rng)
    svc, _, name = c.action.partition(":")
    acct = c.extra.get("recipient", c.ident.tenant)
    if c.error and not c.error[1]:
        c.error = denied(c)
    rec: dict[str, Any] = {
        "eventVersion": VERSION_BY_SERVICE.get(svc, "1.09"),
        "userIdentity": user_identity(c),
        "eventTime": iso_s(c.t),
        "eventSource": f"{svc}.amazonaws.com",
        "eventName": name,
        "awsRegion": c.region,
        "sourceIPAddress": c.ip,
        "userAgent": c.ua,
    }
    if c.error:
        rec["errorCode"], rec["errorMessage"] = c.error
    rec["requestParameters"] = c.params
    rec["responseElements"] = None if c.error else c.response
    if "additional" in c.extra:
        rec["additionalEventData"] = c.extra["additional"]
    if c.extra.get("event_type", "AwsApiCall") == "AwsApiCall":
        rec["requestID"] = c.extra.get("request_id") or rng.uuid()
    rec["eventID"] = c.eid
    rec["readOnly"] = read_only(c.action)
    if "resources" in c.extra:
        rec["resources"] = c.extra["resources"]
    rec["eventType"] = c.extra.get("event_type", "AwsApiCall")
    rec["managementEvent"] = c.action not in DATA_ACTIONS
    rec["recipientAccountId"] = acct
    if "shared_event_id" in c.extra:
        rec["sharedEventID"] = c.extra["shared_event_id"]
    if "vpce" in c.extra:
        rec["vpcEndpointId"] = c.extra["vpce"]
        rec["vpcEndpointAccountId"] = acct
    if "service_details" in c.extra:
        rec["serviceEventDetails"] = c.extra["service_details"]
    rec["eventCategory"] = "Data" if c.action in DATA_ACTIONS else "Management"
    if c.ip not in NO_TLS_IPS and not c.ip.endswith(".amazonaws.com"):
        rec["tlsDetails"] = tls(svc, c.region, c.extra.get("host"))
    return rec


def tls(svc: str, region: str, host: str | None) -> dict[str, str]:
    if host is None:
        host = f"{svc}.amazonaws.com" if svc in ("iam", "route53") else \
            f"{svc}.{region}.amazonaws.com"
    return {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": host}


# --- request/response payloads -------------------------------------------------------------

def _pick(c: Call, rng: Rng, key: str, default: str) -> str:
    value = c.extra.get(key) or c.ident.res.get(key) or default
    return rng.choice(value) if isinstance(value, (list, tuple)) else value


def _stable(c: Call, rng: Rng, kind: str, make: Callable[[Rng], str], n: int = 2) -> str:
    """One of the ``n`` long-lived resources of this kind an identity works with (its KMS
    keys, target groups, hosted zones): fixed per identity, not new on every call."""
    if kind in c.extra or kind in c.ident.res:
        return _pick(c, rng, kind, "")
    return make(Rng(f"{c.ident.key}|{kind}|{rng.randrange(n)}"))


@builds("s3:GetObject", "s3:PutObject", "s3:HeadObject", "s3:DeleteObject")
def _s3_object(c: Call, rng: Rng) -> None:
    bucket = _pick(c, rng, "bucket", f"nw-{c.ident.name}-data")
    key = c.extra.get("object_key") or _object_key(c, rng)
    c.params = {"bucketName": bucket, "Host": f"{bucket}.s3.{c.region}.amazonaws.com",
                "key": key}
    if c.action == "s3:PutObject":
        c.params["x-amz-server-side-encryption"] = "aws:kms"
    size = c.extra.get("bytes") or int(rng.lognormvariate(10.5, 1.2))
    out = size if c.action == "s3:GetObject" else 0
    c.extra["additional"] = {
        "SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256",
        "bytesTransferredIn": size if c.action == "s3:PutObject" else 0,
        "AuthenticationMethod": "AuthHeader", "x-amz-id-2": rng.b32(24),
        "bytesTransferredOut": out}
    c.extra["request_id"] = rng.b32(16)
    c.extra["resources"] = [
        {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
        {"accountId": c.ident.tenant, "type": "AWS::S3::Bucket",
         "ARN": f"arn:aws:s3:::{bucket}"}]
    c.extra.setdefault("host", f"{bucket}.s3.{c.region}.amazonaws.com")


def _object_key(c: Call, rng: Rng) -> str:
    prefix = _pick(c, rng, "prefix", "data")
    return (f"{prefix}/dt={iso_s(c.t)[:10]}/part-{rng.randint(0, 199):05d}."
            f"{_pick(c, rng, 'suffix', 'snappy.parquet')}")


@builds("s3:ListObjects")
def _s3_list(c: Call, rng: Rng) -> None:
    bucket = _pick(c, rng, "bucket", f"nw-{c.ident.name}-data")
    c.params = {"list-type": "2", "bucketName": bucket, "prefix": _pick(c, rng, "prefix", ""),
                "Host": f"{bucket}.s3.{c.region}.amazonaws.com"}
    c.extra["request_id"] = rng.b32(16)
    c.extra["resources"] = [{"accountId": c.ident.tenant, "type": "AWS::S3::Bucket",
                             "ARN": f"arn:aws:s3:::{bucket}"}]


@builds("s3:GetBucketPolicy", "s3:GetBucketAcl", "s3:GetBucketLocation",
        "s3:GetBucketVersioning", "s3:GetBucketTagging", "s3:GetBucketEncryption",
        "s3:PutBucketPolicy", "s3:GetBucketPublicAccessBlock")
def _s3_bucket(c: Call, rng: Rng) -> None:
    bucket = _pick(c, rng, "bucket", f"nw-{c.ident.name}-data")
    sub = c.action.partition(":")[2].replace("GetBucket", "").replace("PutBucket", "").lower()
    c.params = {"bucketName": bucket, "Host": f"{bucket}.s3.amazonaws.com", sub: ""}
    c.extra["resources"] = [{"accountId": c.ident.tenant, "type": "AWS::S3::Bucket",
                             "ARN": f"arn:aws:s3:::{bucket}"}]


@builds("s3:ListBuckets")
def _s3_list_buckets(c: Call, rng: Rng) -> None:
    c.params = {"Host": f"s3.{c.region}.amazonaws.com"}


@builds("kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt", "kms:DescribeKey")
def _kms(c: Call, rng: Rng) -> None:
    key = _stable(c, rng, "kms_key", lambda r: r.uuid(), n=1)
    arn = f"arn:aws:kms:{c.region}:{c.ident.tenant}:key/{key}"
    c.params = {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    if c.action == "kms:GenerateDataKey":
        c.params = {"keyId": arn, "keySpec": "AES_256"}
    elif c.action == "kms:DescribeKey":
        c.params = {"keyId": f"alias/{c.ident.name}"}
    else:
        c.params["encryptionContext"] = {"aws:lambda:FunctionArn": arn.replace("kms", "lambda")
                                         } if "lambda" in c.ident.archetype else {}
    c.extra["resources"] = [{"accountId": c.ident.tenant, "type": "AWS::KMS::Key", "ARN": arn}]


@builds("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret",
        "secretsmanager:PutSecretValue")
def _secret(c: Call, rng: Rng) -> None:
    c.params = {"secretId": _pick(c, rng, "secret", f"prod/{c.ident.name}/config")}
    if c.action == "secretsmanager:PutSecretValue":
        c.params["clientRequestToken"] = rng.uuid()


@builds("secretsmanager:ListSecrets")
def _list_secrets(c: Call, rng: Rng) -> None:
    c.params = {"maxResults": 100}


@builds("ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath")
def _ssm(c: Call, rng: Rng) -> None:
    name = _pick(c, rng, "parameter", f"/{c.ident.name}/config")
    decrypt = c.extra.get("decrypt", True)
    if c.action == "ssm:GetParametersByPath":
        c.params = {"path": name.rsplit("/", 1)[0] or "/", "recursive": True,
                    "withDecryption": decrypt}
    elif c.action == "ssm:GetParameters":
        c.params = {"names": [name], "withDecryption": decrypt}
    else:
        c.params = {"name": name, "withDecryption": decrypt}


@builds("ssm:UpdateInstanceInformation")
def _ssm_agent(c: Call, rng: Rng) -> None:
    c.params = {"instanceId": c.session.name if c.session else "", "agentVersion": "3.3.987.0",
                "agentStatus": "Active", "platformType": "Linux",
                "platformName": "Amazon Linux", "platformVersion": "2023"}


@builds("sts:GetCallerIdentity")
def _whoami(c: Call, rng: Rng) -> None:
    c.params = None


@builds("ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets",
        "ec2:DescribeVpcs", "ec2:DescribeVolumes", "ec2:DescribeSnapshots",
        "ec2:DescribeImages", "ec2:DescribeTags", "ec2:DescribeInstanceTypes",
        "ec2:DescribeRegions", "ec2:DescribeAvailabilityZones",
        "ec2:DescribeLaunchTemplateVersions", "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeInstanceStatus", "ec2:DescribeRouteTables")
def _ec2_describe(c: Call, rng: Rng) -> None:
    what = c.action.partition(":")[2][len("Describe"):]
    set_name = what[0].lower() + what[1:] + "Set"
    c.params = {set_name: {}, "filterSet": {}}
    if what == "Tags":
        c.params = {"filterSet": {"items": [{"name": "resource-id", "valueSet": {
            "items": [{"value": c.session.name if c.session else "i-0"}]}}]}}
    elif what == "Snapshots":
        c.params = {"snapshotSet": {}, "ownersSet": {"items": [{"owner": "self"}]},
                    "filterSet": {}}


@builds("ec2:CreateSnapshot", "ec2:DeleteSnapshot", "ec2:CreateTags", "ec2:CreateVolume",
        "ec2:AttachVolume", "ec2:DetachVolume", "ec2:DeleteVolume")
def _ec2_volume(c: Call, rng: Rng) -> None:
    vol, snap = f"vol-0{rng.hex(16)}", f"snap-0{rng.hex(16)}"
    name = c.action.partition(":")[2]
    if name == "CreateSnapshot":
        c.params = {"volumeId": vol, "description": f"{c.ident.name} {iso_s(c.t)[:10]}"}
        c.response = {"requestId": rng.uuid(), "snapshotId": snap, "volumeId": vol,
                      "status": "pending", "startTime": int(c.t) * 1000, "progress": "",
                      "volumeSize": rng.choice((20, 50, 100, 200)), "encrypted": True}
    elif name == "DeleteSnapshot":
        c.params = {"snapshotId": snap}
        c.response = {"requestId": rng.uuid(), "_return": True}
    elif name == "CreateTags":
        c.params = {"resourcesSet": {"items": [{"resourceId": snap}]},
                    "tagSet": {"items": [{"key": "managed-by", "value": c.ident.name}]}}
        c.response = {"requestId": rng.uuid(), "_return": True}
    else:
        c.params = {"volumeId": vol, "zone": c.region + rng.choice("abc")}
        c.response = {"requestId": rng.uuid(), "volumeId": vol, "status": "in-use"}


@builds("ec2:RunInstances")
def _run_instances(c: Call, rng: Rng) -> None:
    iid = c.extra.get("instance_id") or f"i-0{rng.hex(16)}"
    c.params = {"instancesSet": {"items": [{"imageId": f"ami-0{rng.hex(16)}", "minCount": 1,
                                            "maxCount": 1}]},
                "launchTemplate": {"launchTemplateId": f"lt-0{rng.hex(16)}", "version": "$Latest"},
                "clientToken": rng.uuid()}
    c.response = {"requestId": rng.uuid(), "reservationId": f"r-0{rng.hex(16)}",
                  "ownerId": c.ident.tenant,
                  "instancesSet": {"items": [{"instanceId": iid, "instanceState": {
                      "code": 0, "name": "pending"}}]}}


@builds("ec2:TerminateInstances")
def _terminate(c: Call, rng: Rng) -> None:
    iid = c.extra.get("instance_id") or f"i-0{rng.hex(16)}"
    c.params = {"instancesSet": {"items": [{"instanceId": iid}]}}
    c.response = {"requestId": rng.uuid(), "instancesSet": {"items": [{
        "instanceId": iid, "currentState": {"code": 32, "name": "shutting-down"},
        "previousState": {"code": 16, "name": "running"}}]}}


@builds("ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress")
def _sg(c: Call, rng: Rng) -> None:
    c.params = {"groupId": f"sg-0{rng.hex(16)}", "ipPermissions": {"items": [{
        "ipProtocol": "tcp", "fromPort": 443, "toPort": 443,
        "ipRanges": {"items": [{"cidrIp": "10.20.0.0/16"}]}}]}}
    c.response = {"requestId": rng.uuid(), "_return": True}


@builds("ecs:DescribeServices", "ecs:UpdateService", "ecs:ListTasks", "ecs:DescribeTasks",
        "ecs:DescribeClusters")
def _ecs(c: Call, rng: Rng) -> None:
    cluster = _pick(c, rng, "ecs_cluster", "prod-services")
    service = _pick(c, rng, "ecs_service", c.ident.name.split("-")[-1])
    name = c.action.partition(":")[2]
    if name == "UpdateService":
        c.params = {"cluster": cluster, "service": service,
                    "taskDefinition": f"{service}:{rng.randint(100, 999)}",
                    "forceNewDeployment": False}
        c.response = {"service": {"serviceName": service, "status": "ACTIVE",
                                  "desiredCount": rng.choice((2, 3, 4, 6))}}
    elif name == "DescribeClusters":
        c.params = {"clusters": [cluster]}
    elif name == "ListTasks":
        c.params = {"cluster": cluster, "serviceName": service}
    elif name == "DescribeTasks":
        c.params = {"cluster": cluster, "tasks": [rng.hex(32)]}
    else:
        c.params = {"cluster": cluster, "services": [service]}


@builds("ecs:DescribeTaskDefinition", "ecs:RegisterTaskDefinition", "ecs:RunTask")
def _ecs_taskdef(c: Call, rng: Rng) -> None:
    family = _pick(c, rng, "ecs_service", c.ident.name)
    if c.action == "ecs:RunTask":
        c.params = {"cluster": _pick(c, rng, "ecs_cluster", "prod-jobs"),
                    "taskDefinition": family, "count": 1, "launchType": "FARGATE"}
    elif c.action == "ecs:RegisterTaskDefinition":
        c.params = {"family": family, "networkMode": "awsvpc", "cpu": "512", "memory": "1024",
                    "requiresCompatibilities": ["FARGATE"],
                    "taskRoleArn": c.ident.res.get("task_role", ""),
                    "containerDefinitions": [{"name": family, "essential": True,
                                              "image": f"{family}:{rng.hex(7)}"}]}
        c.response = {"taskDefinition": {"family": family, "revision": rng.randint(100, 999),
                                         "status": "ACTIVE"}}
    else:
        c.params = {"taskDefinition": family}


@builds("ecr:GetAuthorizationToken")
def _ecr_token(c: Call, rng: Rng) -> None:
    c.params = None


@builds("ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload", "ecr:PutImage", "ecr:BatchGetImage",
        "ecr:DescribeImages", "ecr:GetDownloadUrlForLayer")
def _ecr(c: Call, rng: Rng) -> None:
    repo = _pick(c, rng, "ecr_repo", c.ident.name)
    c.params = {"repositoryName": repo, "registryId": c.ident.tenant}
    if c.action == "ecr:PutImage":
        c.params["imageTag"] = rng.hex(7)
        c.response = {"image": {"registryId": c.ident.tenant, "repositoryName": repo,
                                "imageId": {"imageDigest": "sha256:" + rng.hex(64)}}}
    c.extra["resources"] = [{"accountId": c.ident.tenant, "ARN": (
        f"arn:aws:ecr:{c.region}:{c.ident.tenant}:repository/{repo}")}]


@builds("lambda:UpdateFunctionCode20150331v2", "lambda:GetFunction20150331v2",
        "lambda:PublishVersion20150331", "lambda:UpdateAlias20150331",
        "lambda:GetFunctionConfiguration20150331v2")
def _lambda(c: Call, rng: Rng) -> None:
    fn = _pick(c, rng, "function", c.ident.name)
    c.params = {"functionName": fn}
    if c.action.startswith("lambda:UpdateFunctionCode"):
        c.params.update({"s3Bucket": "nw-lambda-artifacts", "s3Key": f"{fn}/{rng.hex(12)}.zip",
                         "publish": False, "dryRun": False})
        c.response = {"functionName": fn, "runtime": "python3.12", "codeSize":
                      rng.randint(2 * 10**5, 9 * 10**6), "state": "Pending"}
    elif c.action.startswith("lambda:UpdateAlias"):
        c.params.update({"name": "live", "functionVersion": str(rng.randint(10, 400))})


@builds("lambda:CreateFunction20150331")
def _lambda_create(c: Call, rng: Rng) -> None:
    fn = c.extra.get("function") or f"fn-{rng.hex(6)}"
    role = c.extra.get("pass_role", "")
    c.params = {"functionName": fn, "runtime": "python3.12", "role": role,
                "handler": "index.handler", "code": {}, "timeout": 900, "publish": True}
    c.response = {"functionName": fn, "functionArn":
                  f"arn:aws:lambda:{c.region}:{c.ident.tenant}:function:{fn}", "role": role,
                  "state": "Pending"}


@builds("logs:CreateLogStream", "logs:CreateLogGroup", "logs:DescribeLogGroups",
        "logs:FilterLogEvents", "logs:StartQuery", "logs:GetQueryResults",
        "logs:DescribeLogStreams")
def _logs(c: Call, rng: Rng) -> None:
    group = _pick(c, rng, "log_group", f"/ecs/{c.ident.name}")
    name = c.action.partition(":")[2]
    if name == "CreateLogStream":
        c.params = {"logGroupName": group, "logStreamName": f"{iso_s(c.t)[:10]}/{rng.hex(32)}"}
    elif name == "FilterLogEvents":
        c.params = {"logGroupName": group, "startTime": int(c.t - 3600) * 1000,
                    "endTime": int(c.t) * 1000, "filterPattern": "ERROR"}
    elif name == "StartQuery":
        c.params = {"logGroupName": group, "startTime": int(c.t - 3600),
                    "endTime": int(c.t), "queryString": "fields @timestamp, @message | "
                    "filter @message like /Exception/ | limit 50"}
        c.response = {"queryId": rng.uuid()}
    elif name == "GetQueryResults":
        c.params = {"queryId": rng.uuid()}
    else:
        c.params = {"logGroupNamePrefix": group.rsplit("/", 1)[0]}


@builds("monitoring:GetMetricData", "monitoring:GetMetricStatistics",
        "monitoring:DescribeAlarms", "monitoring:ListMetrics")
def _cloudwatch(c: Call, rng: Rng) -> None:
    ns = _pick(c, rng, "metric_ns", "AWS/ECS")
    if c.action == "monitoring:DescribeAlarms":
        c.params = {"alarmNamePrefix": c.ident.name.split("-")[0], "maxRecords": 100}
    elif c.action == "monitoring:ListMetrics":
        c.params = {"namespace": ns}
    else:
        c.params = {"startTime": iso_s(c.t - 900), "endTime": iso_s(c.t),
                    "metricDataQueries": [{"id": "m1", "metricStat": {"metric": {
                        "namespace": ns, "metricName": _pick(c, rng, "metric", "CPUUtilization")},
                        "period": 60, "stat": "Average"}}]}


@builds("autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeScalingActivities",
        "autoscaling:SetDesiredCapacity", "autoscaling:UpdateAutoScalingGroup")
def _asg(c: Call, rng: Rng) -> None:
    asg = _pick(c, rng, "asg", f"{c.ident.name}-asg")
    c.params = {"autoScalingGroupNames": [asg]} if "Describe" in c.action else {
        "autoScalingGroupName": asg, "desiredCapacity": rng.randint(2, 8), "honorCooldown": False}


@builds("elasticloadbalancing:DescribeTargetHealth", "elasticloadbalancing:DescribeTargetGroups",
        "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:RegisterTargets",
        "elasticloadbalancing:DeregisterTargets", "elasticloadbalancing:DescribeListeners",
        "elasticloadbalancing:DescribeRules")
def _elb(c: Call, rng: Rng) -> None:
    tg = _stable(c, rng, "target_group", lambda r: (
        f"arn:aws:elasticloadbalancing:{c.region}:{c.ident.tenant}:targetgroup/"
        f"k8s-{r.choice(('default', 'prod', 'ingress'))}-{r.hex(10)}/{r.hex(16)}"), n=3)
    if "Targets" in c.action:
        c.params = {"targetGroupArn": tg, "targets": [{"id": f"10.20.{rng.randint(64, 127)}."
                                                             f"{rng.randint(2, 250)}",
                                                       "port": 8080}]}
    elif c.action.endswith("TargetHealth"):
        c.params = {"targetGroupArn": tg}
    else:
        c.params = {"pageSize": 400}


@builds("rds:DescribeDBInstances", "rds:DescribeDBClusters", "rds:CreateDBSnapshot",
        "rds:DescribeDBSnapshots", "rds:DeleteDBSnapshot", "rds:CopyDBSnapshot",
        "rds:CreateDBClusterSnapshot")
def _rds(c: Call, rng: Rng) -> None:
    db = _pick(c, rng, "db", "orders-db")
    snap = f"{db}-{iso_s(c.t)[:10]}-{rng.hex(4)}"
    name = c.action.partition(":")[2]
    if name in ("CreateDBSnapshot", "CreateDBClusterSnapshot"):
        c.params = {"dBSnapshotIdentifier": snap, "dBInstanceIdentifier": db}
        c.response = {"dBSnapshotIdentifier": snap, "dBInstanceIdentifier": db,
                      "status": "creating", "engine": "postgres", "allocatedStorage": 500,
                      "snapshotType": "manual", "encrypted": True}
    elif name == "CopyDBSnapshot":
        c.params = {"sourceDBSnapshotIdentifier": f"arn:aws:rds:us-east-1:{c.ident.tenant}"
                    f":snapshot:{snap}", "targetDBSnapshotIdentifier": snap + "-dr",
                    "kmsKeyId": "alias/rds-dr", "sourceRegion": "us-east-1"}
        c.response = {"dBSnapshotIdentifier": snap + "-dr", "status": "pending"}
    elif name == "DeleteDBSnapshot":
        c.params = {"dBSnapshotIdentifier": snap}
    else:
        c.params = {"dBInstanceIdentifier": db} if "Instances" in name else {}


@builds("route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets",
        "route53:ListHostedZones", "route53:GetChange")
def _route53(c: Call, rng: Rng) -> None:
    zone = _stable(c, rng, "zone", lambda r: "Z0" + Rng(c.ident.tenant).b32(12), n=1)
    if c.action == "route53:ChangeResourceRecordSets":
        host = f"{rng.choice(('api', 'app', 'grafana', 'argocd', 'auth'))}.northwind-eng.com"
        c.params = {"hostedZoneId": zone, "changeBatch": {"changes": [{
            "action": "UPSERT", "resourceRecordSet": {"name": host, "type": "A",
                                                      "aliasTarget": {"evaluateTargetHealth": True}}
        }]}}
        c.response = {"changeInfo": {"id": "/change/C0" + rng.b32(12), "status": "PENDING"}}
    elif c.action == "route53:ListHostedZones":
        c.params = None
    else:
        c.params = {"hostedZoneId": zone}


@builds("iam:ListRoles", "iam:ListUsers", "iam:ListPolicies", "iam:ListGroups",
        "iam:GetAccountAuthorizationDetails", "iam:GenerateCredentialReport",
        "iam:GetCredentialReport", "iam:GetAccountSummary", "iam:ListAccountAliases")
def _iam_list(c: Call, rng: Rng) -> None:
    c.params = None if "Credential" in c.action or "Summary" in c.action \
        or "Aliases" in c.action else {"maxItems": 100}


@builds("iam:GetRole", "iam:ListAttachedRolePolicies", "iam:ListRolePolicies",
        "iam:GetRolePolicy")
def _iam_role(c: Call, rng: Rng) -> None:
    c.params = {"roleName": c.extra.get("role_name") or c.ident.name}
    if c.action == "iam:GetRolePolicy":
        c.params["policyName"] = c.extra.get("policy_name", "inline")


@builds("iam:ListAccessKeys", "iam:GetUser", "iam:ListAttachedUserPolicies",
        "iam:ListUserPolicies", "iam:ListGroupsForUser", "iam:ListMFADevices")
def _iam_user(c: Call, rng: Rng) -> None:
    c.params = {"userName": c.extra.get("user_name") or c.ident.name}


@builds("iam:GetAccessKeyLastUsed")
def _iam_key_used(c: Call, rng: Rng) -> None:
    c.params = {"accessKeyId": c.extra.get("key_id") or "AKIA" + rng.b32(16)}


@builds("iam:CreateAccessKey")
def _create_key(c: Call, rng: Rng) -> None:
    user = c.extra.get("user_name") or c.ident.name
    key = c.extra.get("new_key") or "AKIA" + rng.b32(16)
    c.params = {"userName": user}
    c.response = {"accessKey": {"userName": user, "accessKeyId": key, "status": "Active",
                                "createDate": aws_human_date(c.t)}}


@builds("iam:UpdateAccessKey", "iam:DeleteAccessKey")
def _update_key(c: Call, rng: Rng) -> None:
    c.params = {"userName": c.extra.get("user_name") or c.ident.name,
                "accessKeyId": c.extra.get("key_id", "")}
    if c.action == "iam:UpdateAccessKey":
        c.params["status"] = "Inactive"


@builds("iam:CreateUser")
def _create_user(c: Call, rng: Rng) -> None:
    user = c.extra.get("user_name", "svc-" + rng.hex(6))
    pid = "AIDA" + rng.b32(17)
    c.params = {"userName": user}
    c.response = {"user": {"path": "/", "userName": user, "userId": pid,
                           "arn": f"arn:aws:iam::{c.ident.tenant}:user/{user}",
                           "createDate": aws_human_date(c.t)}}


ADMIN_POLICY = "arn:aws:iam::aws:policy/AdministratorAccess"
ALLOW_ALL = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}'
MANAGED_ROLES = ("orders-api-task", "checkout-web-task", "batch-worker-task", "reporting-task",
                 "search-indexer-task")


@builds("iam:AttachUserPolicy", "iam:AttachRolePolicy")
def _attach(c: Call, rng: Rng) -> None:
    """Routine attachments are read-only policies on application roles; the scenarios pass
    their own target and policy."""
    policy = c.extra.get("policy_arn", "arn:aws:iam::aws:policy/ReadOnlyAccess")
    if c.action == "iam:AttachUserPolicy":
        c.params = {"userName": c.extra.get("user_name", c.ident.name), "policyArn": policy}
    else:
        c.params = {"roleName": c.extra.get("role_name") or rng.choice(MANAGED_ROLES),
                    "policyArn": policy}


@builds("iam:PutRolePolicy")
def _put_role_policy(c: Call, rng: Rng) -> None:
    """Routine inline policies grant an application role one bucket; the scenarios pass
    their own (self-targeted, allow-all) document."""
    role = c.extra.get("role_name") or rng.choice(MANAGED_ROLES)
    doc = c.extra.get("policy_document") or (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject",'
        f'"s3:PutObject"],"Resource":"arn:aws:s3:::nw-{role}-data/*"}}]}}')
    c.params = {"roleName": role, "policyName": c.extra.get("policy_name", f"{role}-s3"),
                "policyDocument": doc}


@builds("cloudtrail:StopLogging", "cloudtrail:DeleteTrail", "cloudtrail:GetTrailStatus",
        "cloudtrail:UpdateTrail")
def _trail(c: Call, rng: Rng) -> None:
    c.params = {"name": c.extra.get("trail",
                                    f"arn:aws:cloudtrail:us-east-1:{c.ident.tenant}:trail/"
                                    "org-audit-trail")}


@builds("cloudtrail:PutEventSelectors")
def _selectors(c: Call, rng: Rng) -> None:
    c.params = {"trailName": f"arn:aws:cloudtrail:us-east-1:{c.ident.tenant}:trail/"
                "org-audit-trail", "eventSelectors": [{"readWriteType": "ReadOnly",
                                                       "includeManagementEvents": False,
                                                       "dataResources": []}]}


@builds("cloudtrail:DescribeTrails", "cloudtrail:LookupEvents")
def _trail_read(c: Call, rng: Rng) -> None:
    c.params = {"includeShadowTrails": True} if "Describe" in c.action else {
        "maxResults": 50, "startTime": iso_s(c.t - 86400), "endTime": iso_s(c.t)}


@builds("guardduty:ListDetectors", "guardduty:DeleteDetector", "guardduty:UpdateDetector",
        "guardduty:GetDetector")
def _guardduty(c: Call, rng: Rng) -> None:
    det = c.extra.get("detector", "b6c2a7d9e4f1a3b5c8d0e2f4a6b8c0d2")
    c.params = None if c.action.endswith("ListDetectors") else {"detectorId": det}
    if c.action.endswith("UpdateDetector"):
        c.params["enable"] = False


@builds("config:StopConfigurationRecorder", "config:DescribeConfigurationRecorders",
        "config:DescribeConfigurationRecorderStatus")
def _config(c: Call, rng: Rng) -> None:
    c.params = {"configurationRecorderName": "default"} if "Stop" in c.action else {}


@builds("athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults")
def _athena(c: Call, rng: Rng) -> None:
    if c.action == "athena:StartQueryExecution":
        c.params = {"queryString": _pick(c, rng, "query", "SELECT count(*) FROM events"),
                    "workGroup": _pick(c, rng, "workgroup", "primary"),
                    "queryExecutionContext": {"database": _pick(c, rng, "database",
                                                                "analytics")}}
        c.response = {"queryExecutionId": rng.uuid()}
    else:
        c.params = {"queryExecutionId": rng.uuid()}


@builds("glue:GetTable", "glue:GetPartitions", "glue:BatchCreatePartition",
        "glue:StartJobRun", "glue:GetJobRun", "glue:GetDatabase")
def _glue(c: Call, rng: Rng) -> None:
    db, table = _pick(c, rng, "database", "analytics"), _pick(c, rng, "table", "events")
    name = c.action.partition(":")[2]
    if name in ("StartJobRun", "GetJobRun"):
        c.params = {"jobName": _pick(c, rng, "glue_job", c.ident.name)}
        c.response = {"jobRunId": "jr_" + rng.hex(64)} if name == "StartJobRun" else None
    elif name == "GetDatabase":
        c.params = {"name": db}
    else:
        c.params = {"databaseName": db, "tableName": table}


@builds("bedrock:InvokeModel", "bedrock:Converse")
def _bedrock(c: Call, rng: Rng) -> None:
    c.params = {"modelId": _pick(c, rng, "model",
                                 "anthropic.claude-3-5-sonnet-20240620-v1:0")}
    c.extra["additional"] = {"inputTokens": rng.randint(400, 6000),
                             "outputTokens": rng.randint(50, 900)}


@builds("bedrock:Retrieve")
def _retrieve(c: Call, rng: Rng) -> None:
    c.params = {"knowledgeBaseId": _pick(c, rng, "kb", "KB" + rng.b32(8))}


@builds("cloudformation:DescribeStacks", "cloudformation:CreateChangeSet",
        "cloudformation:ExecuteChangeSet", "cloudformation:DescribeChangeSet",
        "cloudformation:DescribeStackEvents")
def _cfn(c: Call, rng: Rng) -> None:
    stack = _pick(c, rng, "stack", c.ident.name)
    c.params = {"stackName": stack}
    if c.action.endswith("CreateChangeSet"):
        c.params.update({"changeSetName": f"deploy-{rng.hex(8)}", "changeSetType": "UPDATE",
                         "capabilities": ["CAPABILITY_IAM"]})
        c.response = {"id": f"arn:aws:cloudformation:{c.region}:{c.ident.tenant}:changeSet/"
                      f"deploy/{rng.uuid()}"}


@builds("cloudfront:CreateInvalidation")
def _cf(c: Call, rng: Rng) -> None:
    c.params = {"distributionId": _stable(c, rng, "distribution", lambda r: "E" + r.b32(13),
                                          n=1),
                "invalidationBatch": {"paths": {"quantity": 1, "items": ["/*"]},
                                      "callerReference": str(int(c.t))}}


@builds("acm:ListCertificates", "acm:DescribeCertificate")
def _acm(c: Call, rng: Rng) -> None:
    cert = _stable(c, rng, "certificate", lambda r: Rng(f"{c.ident.tenant}|{r.random()}").uuid(),
                   n=4)
    c.params = {"certificateArn": f"arn:aws:acm:{c.region}:{c.ident.tenant}:certificate/"
                f"{cert}"} if "Describe" in c.action else {"includes": {}}


@builds("dynamodb:DescribeTable", "dynamodb:ListTables", "dynamodb:CreateBackup",
        "dynamodb:DescribeContinuousBackups")
def _ddb(c: Call, rng: Rng) -> None:
    table = _pick(c, rng, "ddb_table", c.ident.name)
    c.params = {"limit": 100} if c.action.endswith("ListTables") else {"tableName": table}
    if c.action.endswith("CreateBackup"):
        c.params["backupName"] = f"{table}-{iso_s(c.t)[:10]}"


@builds("sns:Publish")
def _sns(c: Call, rng: Rng) -> None:
    topic = _pick(c, rng, "topic", c.ident.name)
    c.params = {"topicArn": f"arn:aws:sns:{c.region}:{c.ident.tenant}:{topic}"}
    c.response = {"messageId": rng.uuid()}


@builds("pricing:GetProducts")
def _pricing(c: Call, rng: Rng) -> None:
    c.params = {"serviceCode": "AmazonEC2", "maxResults": 100}


@builds("eks:DescribeCluster", "eks:ListClusters")
def _eks(c: Call, rng: Rng) -> None:
    c.params = {"name": _pick(c, rng, "eks_cluster", "prod-eks-use1")} \
        if "Describe" in c.action else {"maxResults": 100}
